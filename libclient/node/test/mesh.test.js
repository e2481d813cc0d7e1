//  The client on a two-sidecar mesh: subscribe() resolves once the
//  subscription holds on the peer too, so a publish on the other host
//  right after it arrives.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../index.js";
import { Cluster, Inbox, sleep, waitFor } from "./sidecars.js";

const cluster = new Cluster();
let a;
let b;
const clients = [];

before(async () => {
  [a, b] = await cluster.mesh(["a", "b"]);
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await cluster.cleanup();
});

test("subscribe resolves when every live peer holds it; messages cross once, in order", async () => {
  const sub = await connect({ socket: a.socket, name: "sub" });
  const pub = await connect({ socket: b.socket, name: "pub" });
  clients.push(sub, pub);
  await waitFor("the client to see the peer", () => sub.status.livePeers === 1);
  const inbox = new Inbox(sub);
  for (let i = 0; i < 5; i++) {
    await sub.subscribe("mesh", `room${i}`);
    assert.deepEqual(sub.subscriptions().at(-1),
                     { namespace: "mesh", topic: `room${i}`, everywhere: true });
    pub.publish("mesh", `room${i}`, `m${i}`); // at once: no delivery lost
    pub.publish("mesh", `room${i}`, Buffer.from([i]));
  }
  await inbox.count(10);
  await sleep(200);
  assert.equal(inbox.items.length, 10);
  for (let i = 0; i < 5; i++) {
    const mine = inbox.items.filter((m) => m.topic === `room${i}`);
    assert.deepEqual(mine.map((m) => [m.seq, m.binary]), [[1, false], [2, true]]);
    assert.equal(mine[0].data, `m${i}`);
    assert.equal(mine[0].originNode, pub.nodeId);
    assert.notEqual(mine[0].originNode, sub.nodeId);
  }
});

test("presence set on one sidecar is listed and announced on the other", async () => {
  const here = await connect({ socket: a.socket, name: "here" });
  const there = await connect({ socket: b.socket, name: "there", presence: true });
  clients.push(here, there);
  const events = [];
  there.on("presence", (p) => events.push(p));
  await there.subscribe("mesh", "presence-room");
  here.setPresence("mesh", "presence-room", "carol", "on a");
  await waitFor("the entry on the other sidecar", async () =>
    (await there.listPresence("mesh", "presence-room")).length === 1);
  const [entry] = await there.listPresence("mesh", "presence-room");
  assert.deepEqual([entry.key, entry.meta.toString(), entry.node], ["carol", "on a", here.nodeId]);
  await waitFor("the event", () => events.some((p) => p.key === "carol" && p.present));
  here.clearPresence("mesh", "presence-room", "carol");
  await waitFor("the entry to go", async () =>
    (await there.listPresence("mesh", "presence-room")).length === 0);
  await waitFor("the leave event", () => events.some((p) => p.key === "carol" && !p.present));
});
