//  Two crossws servers (crossws's node adapter), each on its own sidecar of
//  a two-sidecar mesh, synced by roomcast/crossws; WebSocket clients from
//  the ws package.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { join } from "node:path";
import nodeAdapter from "crossws/adapters/node";
import WebSocket from "ws";
import { roomcast } from "../crossws.js";
import { connect } from "../index.js";
import { Cluster, sleep, waitFor } from "./sidecars.js";

const cluster = new Cluster();
const servers = [];
const sockets = [];
let A;
let B;

//  A crossws chat server: every peer joins "room"; what a peer sends is
//  published to the room (to the others, here and on every server).
async function chatServer(sidecarSocket, options = {}) {
  const errors = [];
  const onError = (error, { stage }) => errors.push({ stage, error });
  const sync = roomcast({ channel: "chat", socket: sidecarSocket, onError, ...options });
  const drivers = []; // what crossws made of our SyncAdapter
  const track = (ctx) => {
    const driver = sync(ctx);
    drivers.push(driver);
    return driver;
  };
  const ws = nodeAdapter({
    hooks: {
      open(peer) {
        peer.subscribe("room");
      },
      message(peer, message) {
        peer.publish("room", message.rawData);
      },
    },
    sync: track,
    onError,
  });
  const http = createServer((req, res) => res.end("chat"));
  http.on("upgrade", (req, socket, head) => ws.handleUpgrade(req, socket, head));
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  const server = { ws, sync, drivers, http, errors, url: `ws://127.0.0.1:${http.address().port}/chat` };
  servers.push(server);
  return server;
}

//  A WebSocket client that records what it receives.
async function peer(server, name) {
  const sock = new WebSocket(server.url);
  sockets.push(sock);
  sock.got = [];
  sock.name = name;
  sock.on("message", (data, isBinary) => {
    sock.got.push(isBinary ? [...data] : data.toString());
  });
  await new Promise((resolve, reject) => {
    sock.once("open", resolve);
    sock.once("error", reject);
  });
  return sock;
}

before(async () => {
  const [a, b] = await cluster.mesh(["a", "b"]);
  A = await chatServer(a.socket);
  B = await chatServer(b.socket);
  await Promise.all([A.sync.ready(10000), B.sync.ready(10000)]);
  assert.equal(A.drivers.length, 1);
});

after(async () => {
  for (const s of sockets) {
    s.terminate();
  }
  for (const s of servers) {
    await s.ws.close();
    await new Promise((r) => s.http.close(r));
  }
  await cluster.cleanup();
});

test("a message from a peer on one server reaches the peers of the other, once, text and binary", async () => {
  const a1 = await peer(A, "a1");
  const a2 = await peer(A, "a2");
  const b1 = await peer(B, "b1");
  const b2 = await peer(B, "b2");
  const everyone = [a1, a2, b1, b2];

  a1.send("hello from A");
  a1.send(Buffer.from([0, 1, 2, 255]), { binary: true });
  b1.send("hello from B");
  b1.send(new Uint8Array([9, 8, 7]), { binary: true });

  const expect = {
    a1: ["hello from B", [9, 8, 7]],
    a2: ["hello from A", [0, 1, 2, 255], "hello from B", [9, 8, 7]],
    b1: ["hello from A", [0, 1, 2, 255]],
    b2: ["hello from A", [0, 1, 2, 255], "hello from B", [9, 8, 7]],
  };
  await waitFor("every peer to get its messages", () =>
    everyone.every((s) => s.got.length >= expect[s.name].length), 10000);
  await sleep(300); // and nothing more: no duplicates, no echo
  const sort = (list) => [...list].sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));
  for (const s of everyone) {
    assert.deepEqual(sort(s.got), sort(expect[s.name]), `what ${s.name} received`);
  }
  //  order per publisher holds
  assert.deepEqual(b1.got, ["hello from A", [0, 1, 2, 255]]);
  assert.deepEqual(a1.got, ["hello from B", [9, 8, 7]]);
  assert.deepEqual(A.errors, []);
  assert.deepEqual(B.errors, []);
  //  it crossed the mesh, not a shortcut
  const [a, b] = cluster.sidecars;
  assert.ok(Number((await a.status()).env_sent) >= 2);
  assert.ok(Number((await b.status()).env_received) >= 2);
});

test("adapter.publish without a namespace reaches every namespace of the other server", async () => {
  const b1 = await peer(B, "b1");
  A.ws.publish("room", "server-wide");
  await waitFor("the server-wide message", () => b1.got.length === 1);
  assert.deepEqual(b1.got, ["server-wide"]);
});

test("a message on the channel that is not a crossws envelope is a delivery error", async () => {
  const b1 = await peer(B, "b1");
  const intruder = await connect({ socket: cluster.sidecars[1].socket });
  intruder.publish("crossws", "chat", "plain text, no envelope");
  await waitFor("both servers to report it",
    () => A.errors.length >= 1 && B.errors.length >= 1);
  await intruder.close();
  for (const s of [A, B]) {
    assert.deepEqual(s.errors.map((e) => e.stage), ["delivery"]);
    assert.match(s.errors[0].error.message, /not a crossws envelope/);
    s.errors.length = 0;
  }
  assert.deepEqual(b1.got, []);
});

test("with no sidecar the publish path never throws: errors go to onError with their stage", async () => {
  const lonely = await chatServer(join(cluster.dir, "absent.sock"),
                                  { subscribeTimeoutMs: 300 });
  assert.doesNotThrow(() => lonely.ws.publish("room", "into the void"));
  await waitFor("publish and subscribe errors",
    () => lonely.errors.some((e) => e.stage === "subscribe"));
  const stages = lonely.errors.map((e) => [e.stage, e.error.code]);
  assert.deepEqual(stages, [["publish", "ENOTCONN"], ["subscribe", "ETIMEDOUT"]]);
  assert.equal(lonely.drivers.length, 1);
  assert.equal(lonely.drivers[0].client.state, "disconnected");
  await lonely.ws.close();
  assert.equal(lonely.drivers[0].client.state, "closed", "close releases the client");
  await sleep(50);
  assert.equal(lonely.errors.length, 2, "close adds no error");
});

//  docs/node.md: the sidecar's payload limit (--max-payload, 1 MiB by
//  default) applies to the envelope [1, namespace, topic, data], which adds
//  9 bytes plus the namespace and topic (names under 32 bytes, data over
//  64 KiB); a larger message reaches crossws's onError as EMSGSIZE.
test("the payload limit includes the envelope: the largest message crosses, one byte more is EMSGSIZE", async () => {
  const sender = A.drivers[0];
  const limit = sender.client.maxPayload;
  assert.equal(limit, 1024 * 1024);
  const got = [];
  const probe = B.sync({ id: "probe" });
  await probe.subscribe((m) => got.push(m));
  const namespace = "/chat";
  const topic = "room";
  const largest = limit - 9 - namespace.length - topic.length;
  assert.equal(sender.publish({ namespace, topic, data: "x".repeat(largest) }), undefined);
  assert.equal(sender.publish({ namespace, topic, data: new Uint8Array(largest) }), undefined);
  await waitFor("the two largest messages", () => got.length === 2);
  assert.equal(got[0].data.length, largest);
  assert.equal(got[1].data.length, largest);
  for (const data of ["x".repeat(largest + 1), new Uint8Array(largest + 1)]) {
    await assert.rejects(sender.publish({ namespace, topic, data }),
                         { code: "EMSGSIZE", stage: "publish" });
  }
  await probe.close();
});

test("ready() says what holds now: it waits while the sidecar is dead and resolves once it is back", async () => {
  const solo = await cluster.single("ready-solo");
  const sync = roomcast({ channel: "ready", socket: solo.socket, onError: () => {},
                          reconnectMinMs: 20, reconnectMaxMs: 100 });
  const driver = sync({ id: "r1" });
  await driver.subscribe(() => {});
  await sync.ready(5000);
  solo.child.kill("SIGKILL");
  await waitFor("the driver to see its sidecar gone", async () => driver.client.state !== "connected");
  await assert.rejects(sync.ready(300), { code: "ETIMEDOUT" });
  await solo.start();
  await sync.ready(10000);
  await driver.close();
  await assert.doesNotReject(sync.ready(100)); // a closed driver is not waited for
});
