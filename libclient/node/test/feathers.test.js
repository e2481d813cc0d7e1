//  Two Feathers apps, each on its own sidecar of a two-sidecar mesh,
//  synced by roomcast/feathers-sync: service events reach both, once.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { feathers } from "@feathersjs/feathers";
import feathersSync from "feathers-sync";
import { decode, encode } from "@msgpack/msgpack";
import { roomcast } from "../feathers-sync.js";
import { Cluster, sleep, waitFor } from "./sidecars.js";

const { SYNC } = feathersSync;
const cluster = new Cluster();
const apps = [];
let A;
let B;

class Messages {
  n = 0;
  async create(data) { return { id: ++this.n, ...data }; }
  async patch(id, data) { return { id, ...data }; }
  async update(id, data) { return { id, ...data }; }
  async remove(id) { return { id }; }
}

//  A Feathers app with a "messages" service (custom event "typing"), its
//  events recorded as [event, data, context] in app.got.
export function app(name, sidecarSocket, options = {}) {
  const a = feathers();
  a.errors = [];
  a.configure(roomcast({ socket: sidecarSocket, onError: (e) => a.errors.push(e),
                         ...options }));
  a.use("messages", new Messages(), { events: ["typing"] });
  a.got = [];
  for (const ev of ["created", "patched", "updated", "removed", "typing"]) {
    a.service("messages").on(ev, (data, context) => a.got.push([ev, data, context]));
  }
  a.name = name;
  apps.push(a);
  return a;
}

const bounded = { timeout: 60000 }; // a hang fails its test, not the suite

before(async () => {
  const [sa, sb] = await cluster.mesh(["a", "b"]);
  A = app("A", sa.socket);
  B = app("B", sb.socket);
  await Promise.all([A.sync.ready, B.sync.ready]);
});

after(async () => {
  for (const a of apps) {
    await a.teardown();
  }
  await cluster.cleanup();
});

const clear = () => apps.forEach((a) => { a.got.length = 0; });

test("app.sync says the adapter, and ready resolved once subscribed everywhere", bounded, () => {
  assert.equal(A.sync.type, "roomcast");
  assert.equal(A.sync.serialize, JSON.stringify);
  assert.equal(A.sync.deserialize, JSON.parse);
  assert.equal(A.sync.client.subscriptions()[0].everywhere, true);
});

test("service events of one app reach both apps, once, with their context", bounded, async () => {
  clear();
  await A.service("messages").create({ text: "hello" });
  await B.service("messages").patch(7, { text: "patched on B" });
  await A.service("messages").update(8, { text: "updated" });
  await B.service("messages").remove(9);
  A.service("messages").emit("typing", { who: "alice" });
  await waitFor("five events on each app", () => A.got.length === 5 && B.got.length === 5);
  await sleep(200); // and no more
  for (const a of [A, B]) {
    const byEvent = Object.fromEntries(a.got.map(([ev, data, ctx]) => [ev, [data, ctx]]));
    assert.deepEqual(Object.keys(byEvent).sort(),
                     ["created", "patched", "removed", "typing", "updated"], a.name);
    assert.deepEqual(byEvent.created[0], { id: 1, text: "hello" });
    assert.equal(byEvent.created[1].method, "create");
    assert.equal(byEvent.created[1].path, "messages");
    assert.equal(byEvent.created[1].app, a, "the context is rebuilt with the local app");
    assert.deepEqual(byEvent.patched[0], { id: 7, text: "patched on B" });
    assert.deepEqual(byEvent.removed[0], { id: 9 });
    assert.deepEqual(byEvent.typing[0], { who: "alice" });
  }
  assert.deepEqual([A.errors, B.errors], [[], []]);
});

test("context[SYNC] = false keeps an event on its own app", bounded, async () => {
  clear();
  A.service("messages").hooks({
    after: { create: [(ctx) => { if (ctx.data.local) { ctx[SYNC] = false; } }] },
  });
  await A.service("messages").create({ text: "just here", local: true });
  await A.service("messages").create({ text: "everywhere" });
  await waitFor("the synced event on B", () => B.got.length === 1);
  await sleep(200);
  assert.deepEqual(A.got.map(([, d]) => d.text).sort(), ["everywhere", "just here"]);
  assert.deepEqual(B.got.map(([, d]) => d.text), ["everywhere"]);
});

test("a binary serializer travels as binary: Buffers byte-exact, Dates kept", bounded, async () => {
  clear();
  const sidecars = cluster.sidecars;
  const seen = [];
  const options = {
    key: "binary-sync",
    serialize: (v) => Buffer.from(encode(v)),
    deserialize: (raw) => {
      seen.push(Buffer.isBuffer(raw));
      return decode(raw);
    },
  };
  const C = app("C", sidecars[0].socket, options);
  const D = app("D", sidecars[1].socket, options);
  await Promise.all([C.sync.ready, D.sync.ready]);
  const blob = randomBytes(100000);
  const when = new Date("2026-12-03T10:00:00.123Z");
  await C.service("messages").create({ blob, when });
  await waitFor("the event on both", () => C.got.length === 1 && D.got.length === 1);
  for (const a of [C, D]) {
    const [[, data]] = a.got;
    assert.ok(Buffer.from(data.blob).equals(blob), `${a.name}: byte-exact`);
    assert.ok(data.when instanceof Date && data.when.getTime() === when.getTime());
  }
  assert.deepEqual(seen, [true, true], "deserialize is given Buffers");
  assert.deepEqual(A.got.length + B.got.length, 0, "another key, another topic");
});

test("with no sidecar ready rejects, and the app still sees its own events", bounded, async () => {
  const errors = [];
  const L = app("L", join(cluster.dir, "absent.sock"));
  L.errors = errors;
  await assert.rejects(L.sync.ready, (err) => err.code === "ENOTCONN" && err.stage === "connect");
  await L.service("messages").create({ text: "alone" });
  assert.deepEqual(L.got.map(([ev, d]) => [ev, d.text]), [["created", "alone"]]);
  assert.ok(L.errors.some((e) => e.stage === "publish" && e.code === "ENOTCONN"));
});
