//  A sidecar killed (SIGKILL) and restarted under a socket.io server and a
//  Feathers app: they keep running, report what they cannot send, and
//  resume by themselves, in both directions.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { feathers } from "@feathersjs/feathers";
import { roomcast } from "../feathers-sync.js";
import { Cluster, sleep, waitFor } from "./sidecars.js";
import { IoCluster } from "./ioservers.js";

const cluster = new Cluster();
const ios = new IoCluster();
const apps = [];

function feathersApp(sidecarSocket) {
  const app = feathers();
  app.errors = [];
  app.configure(roomcast({ socket: sidecarSocket, onError: (e) => app.errors.push(e) }));
  app.use("messages", { async create(data) { return data; } });
  app.got = [];
  app.service("messages").on("created", (d) => app.got.push(d.text));
  apps.push(app);
  return app;
}

const bounded = { timeout: 60000 }; // a hang fails its test, not the suite

before(async () => {
  await cluster.mesh(["a", "b"]);
});

after(async () => {
  await ios.cleanup();
  for (const app of apps) {
    await app.teardown();
  }
  await cluster.cleanup();
});

test("socket.io and feathers-sync across a sidecar kill and restart", bounded, async () => {
  const [sa, sb] = cluster.sidecars;
  const A = await ios.server("A", sa.socket);
  const B = await ios.server("B", sb.socket);
  const FA = feathersApp(sa.socket);
  const FB = feathersApp(sb.socket);
  await Promise.all([A.adapter.ready(10000), B.adapter.ready(10000),
                     FA.sync.ready, FB.sync.ready]);
  const count = async (s) => s.adapter.serverCount();
  await waitFor("two servers", async () => (await count(A)) === 2 && (await count(B)) === 2);
  const a1 = await ios.client(A, "a1", ["r"]);
  const b1 = await ios.client(B, "b1", ["r"]);
  A.io.to("r").emit("msg", "before");
  await waitFor("before", () => b1.got.length === 1);

  //  the sidecar of B dies
  sb.child.kill("SIGKILL");
  await new Promise((r) => sb.child.once("exit", r));
  sb.child = null;
  await waitFor("B's client to notice", () => B.adapter.client.state !== "connected");
  B.io.to("r").emit("msg", "while down");         // cannot cross: an error
  await FB.service("messages").create({ text: "FB while down" });
  await waitFor("B's publish error", () =>
    B.errors.some((e) => e.stage === "publish" && e.code === "ENOTCONN"));
  assert.ok(FB.errors.some((e) => e.stage === "publish"));
  await waitFor("B still serving its own sockets", () => b1.got.at(-1)?.[0] === "while down");
  assert.deepEqual(FB.got, ["FB while down"], "FB still sees its own events");
  await waitFor("A to count one server", async () => (await count(A)) === 1);

  //  back: same socket, same port; everything resumes unaided
  await sb.start();
  await waitFor("the mesh", async () => (await sa.status()).live_peers === "1" &&
    (await sb.status()).live_peers === "1", 15000);
  await waitFor("two servers again", async () =>
    (await count(A)) === 2 && (await count(B)) === 2, 15000);
  await Promise.all([A.adapter.ready(10000), B.adapter.ready(10000)]);
  await waitFor("the feathers subscription", () =>
    FB.sync.client.subscriptions().every((s) => s.everywhere), 10000);

  //  A's subscriptions reach the new sidecar b as the link comes up, and
  //  nothing tells A's client when: send again until it arrives
  const until = async (what, send, arrived) => {
    for (let i = 0; !arrived(); i++) {
      assert.ok(i < 40, `${what} did not resume within 10 s`);
      send(i);
      await sleep(250);
    }
  };
  await until("A to B", (i) => A.io.to("r").emit("msg", `after, from A ${i}`),
              () => b1.got.some(([m]) => m.startsWith("after, from A")));
  await until("B to A", (i) => B.io.to("r").emit("msg", `after, from B ${i}`),
              () => a1.got.some(([m]) => m.startsWith("after, from B")));
  const answers = await A.io.serverSideEmitWithAck("hello", "again");
  assert.deepEqual(answers, ["B got again"]);
  await until("FA to FB", (i) => FA.service("messages").create({ text: `FA after ${i}` }),
              () => FB.got.some((t) => t.startsWith("FA after")));
  await until("FB to FA", (i) => FB.service("messages").create({ text: `FB after ${i}` }),
              () => FA.got.some((t) => t.startsWith("FB after")));
  assert.ok(!a1.got.some(([m]) => m === "while down"), "nothing from the outage reached A");
  assert.ok(!FA.got.includes("FB while down"));
});
