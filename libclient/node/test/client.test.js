//  The roomcast client against a real roomcastd.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import net from "node:net";
import * as msgpack from "@msgpack/msgpack";
import { connect, Client, RoomcastError } from "../index.js";
import { Cluster, Inbox, sleep, waitFor } from "./sidecars.js";

const cluster = new Cluster();
let sidecar;
const clients = [];

async function client(options = {}) {
  const c = await connect({ socket: sidecar.socket, ...options });
  clients.push(c);
  return c;
}

before(async () => {
  sidecar = await cluster.single("solo", ["--max-payload", "65536"]);
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await cluster.cleanup();
});

test("publish reaches a subscriber once, text, with per-topic sequences from 1", async () => {
  const pub = await client({ name: "pub" });
  const sub = await client({ name: "sub" });
  const inbox = new Inbox(sub);
  await sub.subscribe("chat", "lobby");
  await sub.subscribe("chat", "other");
  assert.equal(pub.publish("chat", "lobby", "hello"), true);
  assert.equal(pub.publish("chat", "lobby", "héllo wörld ✓"), true);
  assert.equal(pub.publish("chat", "other", "first on other"), true);
  assert.equal(pub.publish("chat", "unheard", "nobody listens"), true);
  const got = await inbox.count(3);
  await sleep(100);
  assert.equal(inbox.items.length, 3);
  assert.deepEqual(got.map((m) => [m.topic, m.data, m.seq, m.binary]), [
    ["lobby", "hello", 1, false],
    ["lobby", "héllo wörld ✓", 2, false],
    ["other", "first on other", 1, false],
  ]);
  for (const m of got) {
    assert.equal(m.namespace, "chat");
    assert.equal(m.origin, pub.instanceId);
    assert.equal(m.originNode, sub.nodeId);
    assert.equal(m.echo, false);
  }
  assert.match(pub.instanceId, /^[0-9a-f]{32}$/);
  assert.notEqual(pub.instanceId, sub.instanceId);
});

test("binary and text stay apart; every byte value passes unchanged", async () => {
  const pub = await client();
  const sub = await client();
  const inbox = new Inbox(sub);
  await sub.subscribe("bin", "t");
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) {
    all[i] = i;
  }
  const big = Buffer.alloc(60000, 0xa5); // several socket reads
  pub.publish("bin", "t", all);
  pub.publish("bin", "t", new Uint8Array([0, 0, 0]));
  pub.publish("bin", "t", "");
  pub.publish("bin", "t", Buffer.alloc(0));
  pub.publish("bin", "t", big);
  pub.publish("bin", "t", Buffer.from("bytes sent as text"), { binary: false });
  pub.publish("bin", "t", new Float32Array([1.5]).buffer);
  const got = await inbox.count(7);
  assert.equal(got[0].binary, true);
  assert.ok(Buffer.isBuffer(got[0].data));
  assert.ok(got[0].data.equals(all));
  assert.deepEqual([...got[1].data], [0, 0, 0]);
  assert.deepEqual([got[2].data, got[2].binary], ["", false]);
  assert.equal(got[3].binary, true);
  assert.equal(got[3].data.length, 0);
  assert.ok(got[4].data.equals(big));
  assert.deepEqual([got[5].data, got[5].binary], ["bytes sent as text", false]);
  assert.equal(got[6].data.readFloatLE(0), 1.5);
});

test("echo: the publisher gets its own message only when it asks", async () => {
  const me = await client();
  const other = await client();
  const mine = new Inbox(me);
  const theirs = new Inbox(other);
  await me.subscribe("echo", "room");
  await other.subscribe("echo", "room");
  me.publish("echo", "room", "not to me");
  me.publish("echo", "room", "to me too", { echo: true });
  await theirs.count(2);
  await mine.count(1);
  await sleep(150);
  assert.deepEqual(theirs.items.map((m) => [m.data, m.echo]),
                   [["not to me", false], ["to me too", false]]);
  assert.deepEqual(mine.items.map((m) => [m.data, m.echo, m.seq]), [["to me too", true, 2]]);
});

test("unsubscribe stops delivery; subscribe is idempotent", async () => {
  const pub = await client();
  const sub = await client();
  const inbox = new Inbox(sub);
  await Promise.all([sub.subscribe("u", "t"), sub.subscribe("u", "t")]);
  await sub.subscribe("u", "t");
  assert.equal(sub.subscriptions().length, 1);
  pub.publish("u", "t", "one");
  await inbox.count(1);
  assert.equal(sub.unsubscribe("u", "t"), true);
  assert.equal(sub.unsubscribe("u", "t"), true);
  await sub.query("status"); // the UNSUB is in effect once this answers
  pub.publish("u", "t", "two");
  await sleep(150);
  assert.deepEqual(inbox.items.map((m) => m.data), ["one"]);
  assert.deepEqual(sub.subscriptions(), []);
});

test("publish never throws: bad input and limits go to the error event", async () => {
  const c = await client();
  const errors = [];
  c.on("error", (e) => errors.push(e));
  assert.equal(c.publish("", "t", "x"), false);
  assert.equal(c.publish("ns", "x".repeat(256), "x"), false);
  assert.equal(c.publish("ns", "bad\ntopic", "x"), false);
  assert.equal(c.publish("ns", "t", { not: "bytes" }), false);
  assert.equal(c.publish("ns", "t", Buffer.alloc(65537)), false);
  assert.equal(c.publish("ns", "t", Buffer.alloc(65536)), true);
  assert.deepEqual(errors.map((e) => [e.code, e.stage]), [
    ["EINVAL", "publish"], ["EINVAL", "publish"], ["EINVAL", "publish"],
    ["EINVAL", "publish"], ["EMSGSIZE", "publish"],
  ]);
  assert.ok(errors.every((e) => e instanceof RoomcastError));
  assert.equal(c.maxPayload, 65536);
  //  without a listener an error is dropped, not thrown
  const quiet = await client();
  assert.equal(quiet.publish("", "", ""), false);
  await assert.rejects(c.subscribe("ns", ""), { code: "EINVAL", stage: "subscribe" });
});

test("query answers status, numsub and refuses unknown questions", async () => {
  const c = await client();
  await c.subscribe("q", "room");
  const status = Object.fromEntries(await c.query("status"));
  assert.equal(status.channel, "test");
  assert.equal(status.node_id, c.nodeId);
  assert.equal(c.channel, "test");
  const numsub = await c.query("numsub", "q\troom");
  assert.equal(numsub[0][1], "1");
  await assert.rejects(c.query("no-such-question"), { code: "EINVAL", stage: "connect" });
});

test("presence: set, list, events, clear; gone when its client closes", async () => {
  const alice = await client({ name: "alice" });
  const watcher = await client({ presence: true });
  const events = [];
  watcher.on("presence", (p) => events.push([p.key, p.present, p.meta.toString()]));
  await watcher.subscribe("chat", "lobby");
  assert.equal(alice.setPresence("chat", "lobby", "alice", '{"status":"here"}'), true);
  assert.equal(alice.setPresence("chat", "lobby", "alice-bin", new Uint8Array([1, 2])), true);
  await waitFor("presence events", () => events.length >= 2);
  const list = await watcher.listPresence("chat", "lobby");
  assert.deepEqual(list.map((e) => e.key).sort(), ["alice", "alice-bin"]);
  const entry = list.find((e) => e.key === "alice");
  assert.equal(entry.meta.toString(), '{"status":"here"}');
  assert.equal(entry.node, alice.nodeId);
  assert.equal(entry.present, true);
  assert.deepEqual([...list.find((e) => e.key === "alice-bin").meta], [1, 2]);
  assert.equal(alice.clearPresence("chat", "lobby", "alice-bin"), true);
  await waitFor("the clear event", () => events.some(([k, present]) => k === "alice-bin" && !present));
  assert.deepEqual((await watcher.listPresence("chat", "lobby")).map((e) => e.key), ["alice"]);
  //  another app cannot take a key someone holds
  const errors = [];
  watcher.on("error", (e) => errors.push(e));
  watcher.setPresence("chat", "lobby", "alice", "impostor");
  await waitFor("the refusal", () => errors.length === 1);
  assert.equal(errors[0].stage, "publish");
  assert.equal(errors[0].code, "EACCES");
  await alice.close();
  await waitFor("the entry to go with its client", async () =>
    (await watcher.listPresence("chat", "lobby")).length === 0);
  assert.equal(alice.setPresence("", "lobby", "x"), false);
});

test("presence on a sidecar that has none: ENOTSUP, not a hang", async () => {
  //  a sidecar of the first protocol: WELCOME, then ERR 3 for unknown types
  const path = join(cluster.dir, "old.sock");
  const old = net.createServer((conn) => {
    let buf = Buffer.alloc(0);
    conn.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const frame = msgpack.decode(buf.subarray(4, 4 + buf.readUInt32BE(0)));
        buf = buf.subarray(4 + buf.readUInt32BE(0));
        const send = (f) => {
          const body = msgpack.encode(f);
          const head = Buffer.alloc(4);
          head.writeUInt32BE(body.length);
          conn.write(Buffer.concat([head, body]));
        };
        if (frame[0] === 1) {
          send([2, 1, new Uint8Array(16), "old", 1048576, "0.0.1"]);
        } else if (frame[0] > 14) {
          send([7, 0, 3, `unknown frame type ${frame[0]}`]);
        }
      }
    });
  });
  await new Promise((r) => old.listen(path, r));
  try {
    const c = await connect({ socket: path });
    const errors = [];
    c.on("error", (e) => errors.push(e));
    await assert.rejects(c.listPresence("chat", "lobby"),
                         { code: "ENOTSUP", message: /presence is not supported by this sidecar/ });
    assert.equal(c.setPresence("chat", "lobby", "me"), false);
    assert.deepEqual(errors.map((e) => [e.code, e.stage]), [["ENOTSUP", "publish"], ["ENOTSUP", "publish"]]);
    await c.close();
  } finally {
    old.close();
  }
});

test("connect fails clearly when there is no sidecar; retry keeps trying", async () => {
  const path = join(cluster.dir, "nobody.sock");
  await assert.rejects(connect({ socket: path }), { code: "ENOENT", stage: "connect" });
  const c = await connect({ socket: path, retry: true, reconnectMaxMs: 100 });
  clients.push(c);
  assert.equal(c.state, "disconnected");
  assert.equal(c.publish("a", "b", "c"), false);
  const confirmed = c.subscribe("late", "room");
  const late = await cluster.single("nobody");
  await waitFor("the retrying client to connect", () => c.state === "connected");
  await confirmed;
  const pub = await connect({ socket: late.socket });
  clients.push(pub);
  const inbox = new Inbox(c);
  pub.publish("late", "room", "found you");
  await inbox.count(1);
  await late.stop();
});

test("a sidecar that refuses us at the door says why: EACCES", async () => {
  const strict = await cluster.single("strict", ["--allow-uid", "54321"]);
  await assert.rejects(connect({ socket: strict.socket }),
                       (err) => err.code === "EACCES" && err.stage === "connect");
  await strict.stop();
});

test("reconnect after a sidecar restart restores subscriptions", async () => {
  const own = await cluster.single("restart");
  const c = new Client({ socket: own.socket, reconnectMaxMs: 200 });
  clients.push(c);
  const states = [];
  const errors = [];
  c.on("status", (s) => states.push(s.state));
  c.on("error", (e) => errors.push(e));
  const inbox = new Inbox(c);
  await c.subscribe("r", "room", { timeoutMs: 5000 });
  assert.equal(c.setPresence("r", "room", "me", "meta"), true);
  const node1 = c.nodeId;

  await own.stop();
  await waitFor("disconnected", () => c.state === "disconnected");
  assert.equal(c.publish("r", "room", "into the void"), false);
  assert.equal(errors.at(-1).code, "ENOTCONN");
  assert.equal(errors.at(-1).stage, "publish");

  await own.start();
  await waitFor("reconnected", () => c.state === "connected");
  await waitFor("resubscribed", () => c.subscriptions()[0].everywhere);
  assert.notEqual(c.nodeId, node1); // a restarted sidecar is a new node
  const pub = await connect({ socket: own.socket });
  clients.push(pub);
  pub.publish("r", "room", "after restart");
  await inbox.count(1);
  assert.equal(inbox.items[0].data, "after restart");
  const present = await pub.listPresence("r", "room");
  assert.deepEqual(present.map((e) => [e.key, e.node]), [["me", c.nodeId]]);
  assert.equal(states[0], "connected");
  assert.ok(states.includes("disconnected"));
  assert.equal(states.at(-1), "connected");
});

test("close is idempotent and cancels what waits", async () => {
  const c = await client();
  const q = assert.rejects(c.query("status"), { code: "ECANCELED" });
  await c.close();
  await c.close();
  assert.equal(c.state, "closed");
  await q;
  await assert.rejects(c.subscribe("a", "b"), { code: "ECANCELED" });
  assert.equal(c.publish("a", "b", "c"), false);
});
