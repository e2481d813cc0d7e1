// roomcastctl --json against two real sidecars (tests/deploy/check.sh).
//
//   node ctl-json.mjs ROOMCASTD ROOMCASTCTL HOLD_APP [--metrics-out FILE]
//
// Starts two roomcastd on loopback (gossip, mesh, HTTP), named
// "my node state=dead" (in zone "rack 1") and "42"; an app named "app one pid=7 uid=0"
// subscribed to a topic and present in it with text and binary meta (the
// hold_app test tool); a static link. Then every roomcastctl command with
// --json must exit 0 and print one JSON document that
//   - validates against its JSON Schema (ajv, every key required, no other
//     key, typed: numbers are numbers, booleans booleans),
//   - is canonical (JSON.stringify of the parsed value gives the same text,
//     so no object repeats a key),
//   - keeps the hostile names whole.
// --metrics-out writes the first sidecar's /metrics body (for the
// monitoring checks). Prints "PASS name" / "FAIL name: why" lines.
import { spawn, execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Ajv from "ajv";
import { sleep, freeTcp, freeUdp, httpGet, report, finish } from "./util.mjs";

const args = process.argv.slice(2);
const [roomcastd, ctl, holdApp] = args;
const metricsOut = args.includes("--metrics-out") ? args[args.indexOf("--metrics-out") + 1] : null;
const work = mkdtempSync(join(tmpdir(), "rc-ctljson-"));
const children = [];
process.on("exit", () => children.forEach((c) => c.kill("SIGKILL")));
const NODE_A = "my node state=dead";
const APP = "app one pid=7 uid=0";
const META = "hello world k=v";
const LINK_KEY = "@" + "0".repeat(40); // a CurveZMQ public key, Z85

function ctlRun(sock, ...cmd) {
  const r = spawnSync(ctl, ["-s", sock, "--timeout", "3000", ...cmd], { encoding: "utf8", timeout: 10000 });
  return { code: r.status, out: r.stdout || "", err: r.stderr || "" };
}

// --- schemas ---------------------------------------------------------------------

const str = { type: "string" };
const uint = { type: "integer", minimum: 0 };
const hex = { type: "string", pattern: "^[0-9a-f]{32}$" };
const obj = (props, extra = false) => ({
  type: "object",
  properties: props,
  required: Object.keys(props),
  additionalProperties: extra,
});
const arr = (item, minItems = 1) => ({ type: "array", items: item, minItems });
const topic = obj({ namespace: str, topic: str, subscribers: uint });
const counters = [
  "clients_accepted", "clients_refused", "publishes", "deliveries", "dropped_slow", "closed_slow",
  "closed_proto", "bad_frames", "errors_sent", "bytes_in", "bytes_out", "fanouts", "fanout_us_sum",
  "env_sent", "env_received", "env_undecryptable", "env_malformed", "env_refused_format", "env_batches", "env_duplicates", "env_own",
  "env_stale", "gaps", "missed", "control_received", "control_bad", "control_replayed", "mesh_send_failed", "gossip_in",
  "gossip_out", "gossip_undecryptable", "gossip_bad", "curve_refused", "presence_refused",
  "closed_partial", "closed_partial_budget", "partial_bytes", "refused_order", "refused_name",
  "refused_size", "refused_type", "refused_flags", "refused_query", "refused_version",
  "refused_protocol", "mesh_blocked", "mesh_blocked_ms", "mesh_peers_cut", "repair_requests_sent",
  "repair_requests_served", "repair_resent", "repaired", "repair_unrepaired", "repair_timeouts", "relinks", "relink_resent",
  "test_dropped",
];
const schemas = {
  status: obj({
    node_id: hex, name: str, channel: str, version: str,
    mode: { enum: ["mesh", "proxy", "local"] },
    curve: { enum: ["ephemeral", "static", "off"] },
    curve_key: { type: "string", pattern: "^(-|.{40})$" }, socket: str,
    readable: { type: "boolean" }, writable: { type: "boolean" },
    live_peers: uint, members_alive: uint, peers_down: uint, mesh_lost_out: uint,
    peer_table: uint,
    peer_table_cap: uint,
    peer_table_overflows: uint, health: str, clients: uint, topics: uint,
    subscriptions: uint, ...Object.fromEntries(counters.map((c) => [c, uint])),
  }),
  topics: arr(topic),
  numsub: topic,
  clients: arr(obj({
    id: uint, name: { type: ["string", "null"] }, pid: { type: "integer" }, uid: uint, gid: uint,
    topics: uint, queued: uint, published: uint, dropped: uint, age_s: uint,
  })),
  peers: arr({
    oneOf: [
      obj({
        kind: { const: "peer" }, node_id: hex, name: str, endpoint: str,
        state: { enum: ["live", "down"] }, heard_us: { type: "boolean" },
        last_ms: uint, received: uint, missed: uint, lost_to: uint,
      }),
      obj({ kind: { const: "link" }, endpoint: str }),
    ],
  }),
  members: arr(obj({
    node_id: hex, name: str, state: { enum: ["alive", "suspect", "dead", "left"] },
    incarnation: uint, endpoint: str, gossip: str, zone: { type: ["string", "null"] },
  })),
  presence: arr(obj({ key: str, node_id: hex, meta: { type: ["string", "null"] }, meta_bytes: uint })),
  publish: obj({ namespace: str, topic: str, kind: { enum: ["text", "binary"] }, bytes: uint }),
  "peer add": obj({ added: str }),
  "peer remove": obj({ removed: str }),
  keygen: obj({ key_file: str }),
  "keygen --curve": obj({ public: str, secret: str }),
  subscribe: obj({
    namespace: str, topic: str, kind: { enum: ["text", "binary"] }, origin: str,
    seq: uint, data: str,
  }),
};
// members_alive only when the sidecar gossips
schemas.status.required = schemas.status.required.filter((k) => k !== "members_alive");
const ajv = new Ajv({ allErrors: true, strict: true });

function checkJson(name, out, want) {
  const text = out.trim();
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    report("FAIL", `--json ${name}: one JSON document`, `${e.message}: ${text.slice(0, 200)}`);
    return null;
  }
  const validate = ajv.compile(schemas[name]);
  const problems = [];
  if (!validate(v)) {
    problems.push(ajv.errorsText(validate.errors, { separator: "; " }));
  }
  if (JSON.stringify(v) !== text) problems.push("not canonical: a key repeats, or odd spacing");
  if (want) {
    const msg = want(v);
    if (msg) problems.push(msg);
  }
  report(problems.length ? "FAIL" : "PASS", `--json ${name}: matches its schema, no repeated key`,
    problems.length ? problems.join("; ").slice(0, 400) : `${Array.isArray(v) ? `${v.length} objects` : "object"}`);
  return v;
}

// --- the cluster ---------------------------------------------------------------------

try {
  const key = join(work, "cluster.key");
  execFileSync(ctl, ["keygen", key], { stdio: "ignore" });
  const ports = {};
  for (const n of ["dataA", "dataB", "httpA", "httpB"]) ports[n] = await freeTcp();
  for (const n of ["gossipA", "gossipB"]) ports[n] = await freeUdp();
  const start = (name, extra) => {
    const dir = join(work, name);
    const sock = join(work, `${name}.sock`);
    const child = spawn(roomcastd, [
      "--channel", "ctljson", "--socket", sock, "--key-file", key,
      "--probe-interval", "200", "--probe-timeout", "100", "--heartbeat", "200", ...extra,
    ], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    child.stderr.on("data", (d) => (log += d));
    children.push(child);
    return { dir, sock, child, log: () => log };
  };
  const a = start("a", ["--name", NODE_A, "--zone", "rack 1",
    "--bind", `tcp://127.0.0.1:${ports.dataA}`, "--gossip", `127.0.0.1:${ports.gossipA}`,
    "--http", `127.0.0.1:${ports.httpA}`]);
  const b = start("b", ["--name", "42",
    "--bind", `tcp://127.0.0.1:${ports.dataB}`, "--gossip", `127.0.0.1:${ports.gossipB}`,
    "--http", `127.0.0.1:${ports.httpB}`, "--join", `127.0.0.1:${ports.gossipA}`]);
  const t0 = Date.now();
  while ((!existsSync(a.sock) || !existsSync(b.sock)) && Date.now() - t0 < 5000) await sleep(50);
  if (!existsSync(a.sock) || !existsSync(b.sock)) {
    throw new Error(`roomcastd did not start: ${a.log().slice(-300)} ${b.log().slice(-300)}`);
  }
  const app = spawn(holdApp, [a.sock, APP, "lobby", "alice", META, "5"], { stdio: ["pipe", "pipe", "pipe"] });
  children.push(app);
  let appOut = "";
  app.stdout.on("data", (d) => (appOut += d));
  // both members alive, the peer live both ways, the app ready
  let ready = false;
  for (const t1 = Date.now(); Date.now() - t1 < 15000 && !ready; await sleep(100)) {
    const m = ctlRun(a.sock, "--json", "members");
    const p = ctlRun(a.sock, "--json", "peers");
    try {
      ready = appOut.includes("ready") &&
        JSON.parse(m.out).filter((x) => x.state === "alive").length === 2 &&
        JSON.parse(p.out).some((x) => x.state === "live" && x.heard_us);
    } catch {
      ready = false;
    }
  }
  if (!ready) throw new Error(`no two-member mesh after 15 s: ${a.log().slice(-400)}`);
  // two static links: the old output repeated a "link" key for each (with
  // gossip, links are CurveZMQ by default: a static link names its key)
  for (const ep of ["tcp://127.0.0.1:9", "tcp://127.0.0.1:10"]) {
    if (ctlRun(a.sock, "peer", "add", ep + LINK_KEY).code !== 0) throw new Error(`peer add ${ep} failed`);
  }
  {
    const dup = '{"link":"tcp://a:1","link":"tcp://b:2"}';
    report(JSON.stringify(JSON.parse(dup)) !== dup ? "PASS" : "FAIL",
      "the canonical-JSON check catches a repeated key (self-test)");
  }

  const json = (...cmd) => {
    const r = ctlRun(a.sock, "--json", ...cmd);
    if (r.code !== 0) report("FAIL", `--json ${cmd.join(" ")}: exit 0`, `exit ${r.code}: ${r.err.trim()}`);
    return r.out;
  };
  checkJson("status", json("status"), (v) => (v.name !== NODE_A ? `name ${v.name}` : v.mode !== "mesh" ? `mode ${v.mode}` : null));
  {
    // a node named "42" is still a string
    const r = ctlRun(b.sock, "--json", "status");
    checkJson("status", r.out, (v) => (v.name !== "42" ? `name ${JSON.stringify(v.name)}` : null));
  }
  checkJson("topics", json("topics"), (v) =>
    v.some((t) => t.namespace === "default" && t.topic === "lobby" && t.subscribers === 1) ? null : "no lobby with 1 subscriber");
  checkJson("numsub", json("numsub", "lobby"), (v) => (v.subscribers !== 1 ? `subscribers ${v.subscribers}` : null));
  checkJson("clients", json("clients"), (v) => (v.some((c) => c.name === APP) ? null : `no client named "${APP}"`));
  checkJson("peers", json("peers"), (v) =>
    v.some((p) => p.kind === "peer" && p.name === "42") && ["tcp://127.0.0.1:9", "tcp://127.0.0.1:10"].every((ep) => v.some((p) => p.kind === "link" && p.endpoint === ep))
      ? null : `no peer "42" or not two static links: ${JSON.stringify(v)}`);
  checkJson("members", json("members"), (v) =>
    v.some((m) => m.name === NODE_A && m.zone === "rack 1") && v.some((m) => m.name === "42" && m.zone === null)
      ? null : `names or zones not kept whole: ${JSON.stringify(v.map((m) => [m.name, m.zone]))}`);
  checkJson("presence", json("presence", "lobby"), (v) =>
    v.some((p) => p.key === "alice" && p.meta === META && p.meta_bytes === META.length) &&
    v.some((p) => p.key === "alice.bin" && p.meta === null && p.meta_bytes === 5)
      ? null : `entries: ${JSON.stringify(v)}`);
  checkJson("publish", json("publish", "lobby", "hi there"), (v) => (v.bytes !== 8 ? `bytes ${v.bytes}` : null));
  checkJson("peer remove", json("peer", "remove", "tcp://127.0.0.1:9"));
  checkJson("peer add", json("peer", "add", "tcp://127.0.0.1:9" + LINK_KEY));
  checkJson("keygen", json("keygen", join(work, "k2.key")));
  checkJson("keygen --curve", json("keygen", "--curve", join(work, "c2")));
  // subscribe: one object per message
  const sub = spawn(ctl, ["-s", a.sock, "--json", "--count", "1", "--timeout", "8000", "subscribe", "room2"]);
  children.push(sub);
  let subOut = "";
  sub.stdout.on("data", (d) => (subOut += d));
  const subDone = new Promise((r) => sub.on("exit", r));
  for (const t1 = Date.now(); Date.now() - t1 < 5000; await sleep(50)) {
    try {
      if (JSON.parse(ctlRun(a.sock, "--json", "numsub", "room2").out).subscribers === 1) break;
    } catch {}
  }
  // numsub says a holds the subscription; b may not hold it yet (the
  // subscription travels to b's sidecar): publish until it arrives
  let exited = false;
  subDone.then(() => (exited = true));
  for (const t2 = Date.now(); !exited && Date.now() - t2 < 8000; await sleep(200)) {
    ctlRun(b.sock, "publish", "room2", "from b");
  }
  await subDone;
  checkJson("subscribe", subOut, (v) => (v.data !== "from b" ? `data ${v.data}` : null));
  // a refusal: exit 1, nothing on stdout
  const r = ctlRun(a.sock, "--json", "peer", "remove", "tcp://127.0.0.1:1");
  report(r.code === 1 && r.out === "" ? "PASS" : "FAIL", "--json: a refused command exits 1 and prints no JSON",
    `exit ${r.code}, stdout ${JSON.stringify(r.out.slice(0, 80))}`);

  if (metricsOut) {
    const m = await httpGet(ports.httpA, "/metrics");
    writeFileSync(metricsOut, m.body);
    report(m.status === 200 ? "PASS" : "FAIL", "a meshed sidecar's /metrics scraped for the monitoring checks",
      `status ${m.status}, ${m.body.split("\n").filter((l) => l && !l.startsWith("#")).length} samples`);
  }
  app.stdin.end();
} catch (e) {
  report("FAIL", "roomcastctl --json against two sidecars", e.message);
} finally {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
  }
  await sleep(300);
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  }
  rmSync(work, { recursive: true, force: true });
}
finish();
