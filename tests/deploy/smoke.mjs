// Smoke test: the settings deploy/ ships start a real roomcastd
// (tests/deploy/check.sh).
//
//   node smoke.mjs ROOMCASTD ROOMCASTCTL HELP_FILE k8s ENV_JSON
//   node smoke.mjs ROOMCASTD ROOMCASTCTL HELP_FILE systemd UNIT ENV_FILE
//
// k8s: the sidecar's effective environment (ConfigMap, then the DaemonSet's
// env, from validate.mjs --emit-env) with the key in the Secret's mode.
// systemd: the unit's Environment= lines, overridden by the example env
// file, with the key as LoadCredential hands it over (mode 0400).
// What must differ on this machine is swapped, nothing else: addresses
// become 127.0.0.1 on free ports, the seed is dns:localhost (resolved from
// /etc/hosts, no traffic leaves the machine), the socket and key live in a
// temporary directory, the socket group is ours. Then: it starts, the
// socket is mode 0660 in that group, roomcastctl status shows the channel
// and name, the probes answer (when this build has --http), and SIGTERM
// ends it with 0 within the grace period, its socket removed.
// Prints "PASS name", "FAIL name: why" or "SKIP name: why", one a line.
import { readFileSync, mkdtempSync, rmSync, statSync, existsSync, chmodSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, basename } from "node:path";
import { spawn, execFileSync } from "node:child_process";
import { sleep, freeTcp, freeUdp, httpGet, report, finish } from "./util.mjs";

const [roomcastd, ctl, helpFile, mode, ...rest] = process.argv.slice(2);
if (!mode || !["k8s", "systemd"].includes(mode)) {
  console.error("usage: smoke.mjs ROOMCASTD ROOMCASTCTL HELP_FILE k8s ENV_JSON | systemd UNIT ENV_FILE");
  process.exit(2);
}
const help = readFileSync(helpFile, "utf8");
const hasHttp = help.includes("ROOMCAST_HTTP");


// --- the settings to test ---------------------------------------------------

let label;
let env; // [[name, value]] in order; later wins
let keys = []; // [{path, mode}] key files roomcastd will read (paths as configured)
let graceSeconds;
const work = mkdtempSync(join(tmpdir(), "roomcast-deploy-smoke-"));

if (mode === "k8s") {
  label = "k8s sidecar settings";
  const j = JSON.parse(readFileSync(rest[0], "utf8"));
  env = j.env;
  graceSeconds = j.graceSeconds;
  const kf = env.find(([k]) => k === "ROOMCAST_KEY_FILE")?.[1] || "";
  keys = kf.split(",").filter(Boolean).map((p) => ({ path: p, mode: j.keyMode }));
} else {
  label = "systemd unit and env file";
  const unit = readFileSync(rest[0], "utf8");
  const creds = join(work, "credentials");
  env = [];
  for (const m of unit.matchAll(/^Environment=(.*)$/gm)) {
    for (const a of m[1].trim().split(/\s+/)) {
      const i = a.indexOf("=");
      env.push([a.slice(0, i), a.slice(i + 1).replaceAll("%d", creds)]);
    }
  }
  for (const m of unit.matchAll(/^LoadCredential=([^:\s]+):/gm)) {
    keys.push({ path: join(creds, m[1]), mode: 0o400 });
  }
  // EnvironmentFile= overrides Environment=
  for (const l of readFileSync(rest[1], "utf8").split("\n")) {
    const t = l.trim();
    if (!t || t.startsWith("#")) continue;
    const i = t.indexOf("=");
    env.push([t.slice(0, i), t.slice(i + 1)]);
  }
  const stop = /^TimeoutStopSec=(\d+)s?$/m.exec(unit);
  graceSeconds = stop ? Number(stop[1]) : 90;
}

// --- swap what must differ here ---------------------------------------------

const ports = { 7440: await freeTcp(), 7441: await freeUdp(), 9464: await freeTcp() };
const sockDir = join(work, "run");
const keyDir = join(work, "keys");
mkdirSync(sockDir);
mkdirSync(keyDir);
const group = execFileSync("id", ["-gn"], { encoding: "utf8" }).trim();
const keyMap = new Map();
for (const k of keys) {
  const local = k.path.startsWith(work) ? k.path : join(keyDir, basename(k.path));
  mkdirSync(join(local, ".."), { recursive: true });
  execFileSync(ctl, ["keygen", local], { stdio: "ignore" });
  chmodSync(local, k.mode);
  keyMap.set(k.path, local);
}
const swapAddr = (v) => v
  .replace(/\b(?:\d{1,3}\.){3}\d{1,3}\b/g, "127.0.0.1")
  .replace(/:(7440|7441|9464)\b/g, (m, p) => `:${ports[p]}`);
const final = new Map();
for (const [k, v] of env) final.set(k, v);
let socket = final.get("ROOMCAST_SOCKET") || "/run/roomcast/roomcast.sock";
socket = join(sockDir, basename(socket));
final.set("ROOMCAST_SOCKET", socket);
if (final.get("ROOMCAST_SOCKET_GROUP")) final.set("ROOMCAST_SOCKET_GROUP", group);
if (final.has("ROOMCAST_KEY_FILE")) {
  final.set("ROOMCAST_KEY_FILE", final.get("ROOMCAST_KEY_FILE").split(",").map((p) => keyMap.get(p) || p).join(","));
}
for (const k of ["ROOMCAST_BIND", "ROOMCAST_GOSSIP", "ROOMCAST_HTTP", "ROOMCAST_ADVERTISE"]) {
  if (final.has(k)) final.set(k, swapAddr(final.get(k)));
}
if (final.has("ROOMCAST_JOIN")) final.set("ROOMCAST_JOIN", `dns:localhost:${ports[7441]}`);
const httpPort = portOf(final.get("ROOMCAST_HTTP"));
function portOf(a) {
  return Number(/:(\d+)$/.exec(a || "")?.[1]) || 0;
}

// --- run it -----------------------------------------------------------------

const childEnv = { PATH: process.env.PATH || "/usr/bin:/bin" };
for (const [k, v] of final) childEnv[k] = v;
const child = spawn(roomcastd, [], { env: childEnv, stdio: ["ignore", "ignore", "pipe"] });
let stderr = "";
child.stderr.on("data", (d) => (stderr += d));
let exited = null;
const exitP = new Promise((resolve) => child.on("exit", (code, sig) => resolve((exited = { code, sig }))));
const lastLog = () => stderr.trim().split("\n").slice(-3).join(" | ");

try {
  const t0 = Date.now();
  while (!existsSync(socket) && !exited && Date.now() - t0 < 5000) await sleep(50);
  if (!existsSync(socket)) {
    report("FAIL", `${label}: roomcastd starts`, exited ? `exited ${exited.code}: ${lastLog()}` : "no socket after 5 s");
    throw null;
  }
  report("PASS", `${label}: roomcastd starts`, [...final.keys()].join(" "));

  const st = statSync(socket);
  const gid = Number(execFileSync("id", ["-g"], { encoding: "utf8" }));
  report((st.mode & 0o777) === 0o660 && st.gid === gid ? "PASS" : "FAIL",
    `${label}: app socket mode 0660, in the socket group`, `mode 0${(st.mode & 0o777).toString(8)}, gid ${st.gid}`);

  let status = "";
  try {
    status = execFileSync(ctl, ["-s", socket, "status"], { encoding: "utf8", timeout: 5000 });
  } catch (e) {
    status = String(e.stdout || "") + String(e.message);
  }
  const field = (n) => new RegExp(`^${n}\\s+(\\S+)`, "m").exec(status)?.[1];
  const want = { channel: final.get("ROOMCAST_CHANNEL"), name: final.get("ROOMCAST_NAME") };
  const bad = Object.entries(want).filter(([k, v]) => v && field(k) !== v);
  report(bad.length ? "FAIL" : "PASS", `${label}: roomcastctl status shows the channel and name`,
    bad.length ? bad.map(([k, v]) => `${k} ${field(k)} != ${v}`).join(", ") : `channel ${field("channel")}`);

  if (!hasHttp) {
    report("SKIP", `${label}: /healthz, /readyz, /metrics answer`, "this roomcastd build has no --http yet");
  } else if (!httpPort) {
    report("FAIL", `${label}: /healthz, /readyz, /metrics answer`, "ROOMCAST_HTTP is not set");
  } else {
    let h, r, m;
    const t1 = Date.now();
    do {
      h = await httpGet(httpPort, "/healthz");
      if (h.status !== 200) await sleep(100);
    } while (h.status !== 200 && Date.now() - t1 < 3000);
    r = await httpGet(httpPort, "/readyz");
    m = await httpGet(httpPort, "/metrics");
    // alone, a sidecar with seeds or peers configured has not joined: it
    // must not say ready (health never lies); with none it is a cluster of one
    const seeded = ["ROOMCAST_JOIN", "ROOMCAST_PEERS", "ROOMCAST_PROXIES"].some((k) => final.get(k));
    const readyOk = seeded ? r.status === 503 && /not joined/.test(r.body) : r.status === 200;
    const ok = h.status === 200 && readyOk && m.status === 200 && /^# (HELP|TYPE) /m.test(m.body);
    report(ok ? "PASS" : "FAIL", `${label}: /healthz, /readyz, /metrics answer`,
      `healthz ${h.status}, readyz ${r.status} (${seeded ? "seeds configured, alone: not joined" : "cluster of one"}), metrics ${m.status}`);
  }

  const t2 = Date.now();
  child.kill("SIGTERM");
  const res = await Promise.race([exitP, sleep(graceSeconds * 1000).then(() => null)]);
  const took = Date.now() - t2;
  if (!res) {
    report("FAIL", `${label}: SIGTERM: exit 0 within the grace period, socket removed`, `still running after ${graceSeconds} s`);
  } else {
    const ok = res.code === 0 && !existsSync(socket);
    report(ok ? "PASS" : "FAIL", `${label}: SIGTERM: exit 0 within the grace period, socket removed`,
      `exit ${res.code ?? res.sig} after ${took} ms (grace ${graceSeconds} s)${existsSync(socket) ? ", socket left" : ""}`);
  }
} catch (e) {
  if (e) report("FAIL", `${label}: smoke test`, e.message);
} finally {
  if (!exited) {
    child.kill("SIGKILL");
    await exitP;
  }
  rmSync(work, { recursive: true, force: true });
}
finish();
