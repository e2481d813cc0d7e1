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
