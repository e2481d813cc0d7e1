//  A sidecar killed (SIGKILL) and restarted under a socket.io server and a
//  Feathers app: they keep running, report what they cannot send, and
//  resume by themselves, in both directions.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { feathers } from "@feathersjs/feathers";
import { roomcast } from "../feathers-sync.js";
import { Cluster, waitFor } from "./sidecars.js";
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

test("socket.io and feathers-sync across a sidecar kill and restart", async () => {
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

  A.io.to("r").emit("msg", "after, from A");
  B.io.to("r").emit("msg", "after, from B");
  await waitFor("both directions", () =>
    b1.got.some(([m]) => m === "after, from A") && a1.got.some(([m]) => m === "after, from B"));
  const answers = await A.io.serverSideEmitWithAck("hello", "again");
  assert.deepEqual(answers, ["B got again"]);
  await FA.service("messages").create({ text: "FA after" });
  await FB.service("messages").create({ text: "FB after" });
  await waitFor("feathers both ways", () =>
    FB.got.includes("FA after") && FA.got.includes("FB after"));
  assert.deepEqual(a1.got.map(([m]) => m).sort(), ["after, from A", "after, from B", "before"],
                   "nothing from the outage reached A");
});
