//  Two socket.io servers, each on its own sidecar of a two-sidecar mesh,
//  joined by roomcast/socket.io; clients from socket.io-client. Every
//  cross-server feature of the socket.io adapter contract.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { join } from "node:path";
import { io as ioc } from "socket.io-client";
import { connect } from "../index.js";
import { Cluster, sleep, waitFor } from "./sidecars.js";
import { IoCluster } from "./ioservers.js";

const cluster = new Cluster();
const ios = new IoCluster();
const ioServer = (...args) => ios.server(...args);
const client = (...args) => ios.client(...args);
let A;
let B;

const bounded = { timeout: 60000 }; // a hang fails its test, not the suite

before(async () => {
  const [a, b] = await cluster.mesh(["a", "b"]);
  A = await ioServer("A", a.socket);
  B = await ioServer("B", b.socket);
  await Promise.all([A.adapter.ready(10000), B.adapter.ready(10000)]);
  await waitFor("each server to count two", async () =>
    (await A.adapter.serverCount()) === 2 && (await B.adapter.serverCount()) === 2);
});

after(async () => {
  await ios.cleanup();
  await cluster.cleanup();
});

const names = (socks) => socks.map((s) => s.got.length);

test("the server count is two on both, per namespace, and namespaces stay apart", bounded, async () => {
  assert.equal(await A.adapter.serverCount(), 2);
  assert.equal(await B.adapter.serverCount(), 2);
  const chatA = A.io.of("/chat");
  const chatB = B.io.of("/chat");
  await Promise.all([chatA.adapter.ready(10000), chatB.adapter.ready(10000)]);
  await waitFor("/chat to count two", async () =>
    (await chatA.adapter.serverCount()) === 2 && (await chatB.adapter.serverCount()) === 2);
  assert.equal(chatA.adapter.client, A.adapter.client, "one roomcast client per server");
  const inChat = ioc(`${B.url}/chat`, { transports: ["websocket"], forceNew: true });
  const got = [];
  inChat.on("msg", (m) => got.push(m));
  await once(inChat, "connect");
  const inRoot = await client(B, "root");
  chatA.emit("msg", "to /chat");
  await waitFor("the /chat message", () => got.length === 1);
  await sleep(200);
  inChat.disconnect();
  assert.deepEqual(got, ["to /chat"]);
  assert.deepEqual(inRoot.got, [], "not to /");
});

test("io.to(room).emit reaches the room on both servers, once, and no one else", bounded, async () => {
  const a1 = await client(A, "a1", ["r1"]);
  const b1 = await client(B, "b1", ["r1"]);
  const b2 = await client(B, "b2", ["r1", "r2"]);
  const b3 = await client(B, "b3", ["r2"]);
  const b4 = await client(B, "b4");
  A.io.to("r1").emit("msg", "to r1");
  A.io.to(["r1", "r2"]).emit("msg", "to r1 and r2");
  A.io.to("r1").except("r2").emit("msg", "r1 except r2");
  B.io.to("r2").emit("msg", "r2 from B");
  await waitFor("deliveries", () => a1.got.length === 3 && b1.got.length === 3 &&
    b2.got.length === 3 && b3.got.length === 2);
  await sleep(200); // and nothing more
  assert.deepEqual(a1.got, [["to r1"], ["to r1 and r2"], ["r1 except r2"]]);
  assert.deepEqual(b1.got, [["to r1"], ["to r1 and r2"], ["r1 except r2"]]);
  assert.deepEqual(b2.got.sort(), [["r2 from B"], ["to r1"], ["to r1 and r2"]]);
  assert.deepEqual(b3.got.sort(), [["r2 from B"], ["to r1 and r2"]]);
  assert.deepEqual(b4.got, []);
  assert.deepEqual(names([a1, b1, b2, b3, b4]), [3, 3, 3, 2, 0]);
  assert.deepEqual(A.errors, []);
  assert.deepEqual(B.errors, []);
});

test("io.emit and io.except reach every server; io.local stays on its own", bounded, async () => {
  const a1 = await client(A, "a1", ["x"]);
  const b1 = await client(B, "b1", ["x"]);
  const b2 = await client(B, "b2");
  A.io.emit("msg", "everyone");
  A.io.except("x").emit("msg", "not x");
  A.io.local.emit("msg", "A only");
  A.io.local.to("x").emit("msg", "A's x only");
  await waitFor("deliveries", () => a1.got.length === 3 && b1.got.length === 1 &&
    b2.got.length === 2);
  await sleep(200);
  //  local deliveries are synchronous, the others follow the publish
  assert.deepEqual(a1.got.sort(), [["A only"], ["A's x only"], ["everyone"]]);
  assert.deepEqual(b1.got, [["everyone"]]);
  assert.deepEqual(b2.got, [["everyone"], ["not x"]]);
  //  a socket addressed by its id, on the other server
  A.io.to(b2.id).emit("msg", "just b2");
  await waitFor("the private message", () => b2.got.length === 3);
  assert.deepEqual(b2.got[2], ["just b2"]);
});

test("binary attachments cross byte-exact, nested and at top level", bounded, async () => {
  const b1 = await client(B, "b1", ["bin"]);
  const big = randomBytes(256 * 1024);
  const small = Buffer.from([0, 1, 2, 253, 254, 255]);
  A.io.to("bin").emit("msg", big, { nested: { small, list: [small, "text"] } });
  A.io.emit("msg", new Uint8Array([7, 8, 9]).buffer);
  await waitFor("binary messages", () => b1.got.length === 2);
  const [[gotBig, meta], [gotAb]] = b1.got;
  assert.ok(Buffer.isBuffer(gotBig));
  assert.ok(gotBig.equals(big), "256 KiB byte-exact");
  assert.ok(meta.nested.small.equals(small));
  assert.ok(meta.nested.list[0].equals(small));
  assert.equal(meta.nested.list[1], "text");
  assert.deepEqual([...gotAb], [7, 8, 9]);
  //  server-side too: handlers get Buffers
  const got = new Promise((r) => B.io.once("blob", r));
  A.io.serverSideEmit("blob", big);
  const blob = await got;
  assert.ok(Buffer.isBuffer(blob) && blob.equals(big));
});

test("fetchSockets sees the sockets of both servers, and a remote socket can be used", bounded, async () => {
  const a1 = await client(A, "fa1", ["f"]);
  const b1 = await client(B, "fb1", ["f"]);
  await client(B, "fb2");
  const sockets = await A.io.in("f").fetchSockets();
  const byName = Object.fromEntries(sockets.map((s) => [s.data.name, s]));
  assert.deepEqual(Object.keys(byName).sort(), ["fa1", "fb1"]);
  assert.equal(byName.fb1.id, b1.id);
  assert.ok(byName.fb1.rooms.has("f"));
  assert.equal(byName.fb1.handshake.auth.name, "fb1");
  byName.fb1.emit("msg", "to you, remote");
  await waitFor("the remote socket's message", () => b1.got.length === 1);
  assert.deepEqual(b1.got, [["to you, remote"]]);
  assert.deepEqual(a1.got, []);
  const local = await A.io.local.fetchSockets();
  assert.ok(local.every((s) => s.data.name.startsWith("fa") || s.data.name.startsWith("a")));
  const all = await B.io.fetchSockets();
  assert.ok(all.length >= 3);
});

test("socketsJoin, socketsLeave and disconnectSockets act on the other server", bounded, async () => {
  const b1 = await client(B, "jb1");
  A.io.in(b1.id).socketsJoin(["joined", "also"]);
  await waitFor("b1 in the rooms on B", () =>
    B.adapter.rooms.get("joined")?.has(b1.id) && B.adapter.rooms.get("also")?.has(b1.id));
  await B.adapter.ready(10000);
  A.io.to("joined").emit("msg", "after socketsJoin");
  await waitFor("the message", () => b1.got.length === 1);
  A.io.in("joined").socketsLeave("joined");
  await waitFor("b1 out of the room", () => !B.adapter.rooms.has("joined"));
  assert.ok(B.adapter.rooms.get("also").has(b1.id));
  A.io.to("joined").emit("msg", "after socketsLeave");
  A.io.to("also").emit("msg", "still in also");
  await waitFor("the message", () => b1.got.length === 2);
  await sleep(200);
  assert.deepEqual(b1.got, [["after socketsJoin"], ["still in also"]]);

  const why = new Promise((r) => b1.once("disconnect", r));
  A.io.in("also").disconnectSockets();
  assert.equal(await why, "io server disconnect");
});

test("serverSideEmit with and without acks, and serverSideEmitWithAck", bounded, async () => {
  const heard = new Promise((r) => B.io.once("note", (...args) => r(args)));
  A.io.serverSideEmit("note", 1, "two", { three: 3 });
  assert.deepEqual(await heard, [1, "two", { three: 3 }]);

  const responses = await new Promise((resolve, reject) => {
    A.io.serverSideEmit("hello", "A", (err, res) => (err ? reject(err) : resolve(res)));
  });
  assert.deepEqual(responses, ["B got A"]);
  assert.deepEqual(await B.io.serverSideEmitWithAck("hello", "B"), ["A got B"]);
});

test("serverSideEmit times out when a server does not answer", bounded, async () => {
  B.io.once("silent", () => {}); // never acks
  const start = Date.now();
  const [err, responses] = await new Promise((resolve) => {
    A.io.serverSideEmit("silent", (e, r) => resolve([e, r]));
  });
  assert.match(err.message, /timeout reached: missing 1 responses/);
  assert.deepEqual(responses, []);
  assert.ok(Date.now() - start >= 4900, "after the contract's 5 s");
});

test("emitWithAck collects the acks of clients on both servers, and times out", bounded, async () => {
  await client(A, "ack-a", ["ack"]);
  await client(B, "ack-b", ["ack"]);
  const answers = await A.io.to("ack").timeout(5000).emitWithAck("ask");
  assert.deepEqual(answers.sort(), ["ack-a", "ack-b"]);
  //  a client that never acks
  const mute = await client(B, "mute", ["ack"]);
  mute.off("ask");
  mute.on("ask", () => {});
  const start = Date.now();
  await assert.rejects(A.io.to("ack").timeout(400).emitWithAck("ask"),
                       /operation has timed out/);
  assert.ok(Date.now() - start < 3000);
});

test("1,000 rooms: lazily subscribed where joined, each broadcast delivered once", bounded, async () => {
  const [sa, sb] = cluster.sidecars;
  const rooms = Array.from({ length: 1000 }, (_, i) => `room-${i}`);
  const b1 = await client(B, "many", rooms);
  const onB = await sb.topics("/#r#room-*");
  assert.equal(onB.length, 1000, "one topic per room on B");
  assert.ok(onB.includes("socket.io\t/#r#room-999"));
  assert.deepEqual(await sa.topics("/#r#room-*"), [], "none on A, where no socket joined");
  for (let i = 0; i < rooms.length; i++) {
    A.io.to(rooms[i]).emit("msg", i);
  }
  A.io.to(rooms.slice(0, 16)).emit("msg", "sixteen rooms, once");
  await waitFor("1,001 messages", () => b1.got.length >= 1001, 20000);
  await sleep(200);
  assert.equal(b1.got.length, 1001);
  const seen = b1.got.slice(0, 1000).map(([i]) => i);
  assert.deepEqual(seen, rooms.map((_, i) => i), "every room, in order, once");
  b1.disconnect();
  await waitFor("the room topics to go", async () =>
    (await sb.topics("/#r#room-*")).length === 0);
});

test("a message on the adapter's topics that is not an envelope is a delivery error", bounded, async () => {
  const intruder = await connect({ socket: cluster.sidecars[0].socket });
  intruder.publish("socket.io", "/#", "plain text");
  await waitFor("B to report it", () => B.errors.length >= 1);
  await intruder.close();
  assert.equal(B.errors[0].stage, "delivery");
  assert.match(B.errors[0].message, /not a socket.io adapter envelope/);
  B.errors.length = 0;
});

test("with no sidecar the server keeps running and errors reach the adapter's error event", bounded, async () => {
  const lonely = await ioServer("L", join(cluster.dir, "absent.sock"));
  const c = await client(lonely, "alone");
  lonely.io.emit("msg", "into the void");
  c.emit("join", ["solo"]); // joins, and subscribes in vain
  assert.deepEqual(lonely.errors.map((e) => [e.stage, e.code]), [["publish", "ENOTCONN"]]);
  await assert.rejects(lonely.adapter.ready(200), /not confirmed everywhere/);
  assert.equal(await lonely.adapter.serverCount(), 1);
  await ios.close(lonely);
  assert.equal(lonely.adapter.client.state, "closed", "close releases the client");
});
