// Smoke test: the proxy settings deploy/ ships start a real `roomcastd
// proxy` (tests/deploy/check.sh).
//
//   node proxy-smoke.mjs ROOMCASTD k8s ENV_JSON
//   node proxy-smoke.mjs ROOMCASTD systemd UNIT ENV_FILE
//
// k8s: a proxy's effective environment (its ConfigMap, then the
// Deployment's env, from validate.mjs --emit-proxy-env). systemd: the
// unit's Environment= lines, overridden by the example env file. What
// must differ on this machine is swapped, nothing else: the addresses
// become 127.0.0.1 on free ports, the runtime directory a temporary one.
// Then: it starts, /healthz answers 200, /readyz answers as
// ROOMCAST_READY_PEERS says (200 with 0: nothing connected), /metrics has
// the proxy's families, and SIGTERM ends it with 0 within the grace
// period. Prints "PASS name" or "FAIL name: why", one a line.
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { sleep, freeTcp, tcpFree, httpGet, report, finish } from "./util.mjs";

const [roomcastd, mode, ...rest] = process.argv.slice(2);
if (!["k8s", "systemd"].includes(mode)) {
  console.error("usage: proxy-smoke.mjs ROOMCASTD k8s ENV_JSON | systemd UNIT ENV_FILE");
  process.exit(2);
}

let env; // [[name, value]], later wins
let grace;
if (mode === "k8s") {
  const j = JSON.parse(readFileSync(rest[0], "utf8"));
  env = j.env;
  grace = j.graceSeconds;
} else {
  const unit = readFileSync(rest[0], "utf8");
  env = [...unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)].map((m) => [m[1], m[2]]);
  for (const line of readFileSync(rest[1], "utf8").split("\n")) {
    const m = /^(ROOMCAST_[A-Z_]+)=(.*)$/.exec(line);
    if (m) env.push([m[1], m[2]]);
  }
  grace = Number((/^TimeoutStopSec=(\d+)s?$/m.exec(unit) || [])[1] ?? 90);
}
const label = `${mode} proxy settings`;
const work = mkdtempSync(join(tmpdir(), "roomcast-proxy-smoke-"));
const settings = new Map(env);
// a free pair: PORT for the frontend, PORT+1 for the backend
let port;
for (let i = 0; i < 50 && !port; i++) {
  const p = await freeTcp();
  if (p < 65535) {
    if (await tcpFree(p + 1)) port = p;
  }
}
const http = await freeTcp();
const swapped = [];
const swap = (k, v) => {
  if (settings.has(k)) swapped.push(k);
  settings.set(k, v);
};
if (!settings.get("ROOMCAST_FRONTEND")) report("FAIL", `${label}: ROOMCAST_FRONTEND`, "not set: the proxy cannot start");
swap("ROOMCAST_FRONTEND", `tcp://127.0.0.1:${port}`);
if (settings.get("ROOMCAST_BACKEND")) swap("ROOMCAST_BACKEND", `tcp://127.0.0.1:${port + 1}`);
swap("ROOMCAST_HTTP", `127.0.0.1:${http}`);
swap("ROOMCAST_RUNTIME_DIR", work);
const readyPeers = Number(settings.get("ROOMCAST_READY_PEERS") ?? 0);

const child = spawn(roomcastd, ["proxy"], {
  env: { PATH: process.env.PATH, ...Object.fromEntries(settings) },
  stdio: ["ignore", "ignore", "pipe"],
});
let stderr = "";
child.stderr.on("data", (d) => (stderr += d));
let exit = null;
child.on("exit", (code, sig) => (exit = { code, sig }));
try {
  let health = { status: 0 };
  for (let i = 0; i < 50 && exit === null; i++) {
    health = await httpGet(http, "/healthz");
    if (health.status === 200) break;
    await sleep(100);
  }
  if (health.status === 200) {
    report("PASS", `${label} start roomcastd proxy (swapped: ${swapped.join(", ")})`);
  } else {
    report("FAIL", `${label} start roomcastd proxy`, `no /healthz (exit ${JSON.stringify(exit)}): ${stderr.trim().split("\n").pop()}`);
  }
  const ready = await httpGet(http, "/readyz");
  const want = readyPeers === 0 ? 200 : 503;
  if (ready.status === want) report("PASS", `${label}: /readyz ${want} with no sidecar (ROOMCAST_READY_PEERS ${readyPeers})`);
  else report("FAIL", `${label}: /readyz`, `${ready.status} ${ready.body.trim()} (want ${want})`);
  const m = await httpGet(http, "/metrics");
  const missing = ["roomcast_proxy_messages_total", "roomcast_proxy_peers", "roomcast_proxy_subscriptions",
    "roomcast_build_info", "process_resident_memory_bytes"].filter((f) => !m.body.includes(`\n${f}`) && !m.body.startsWith(f));
  if (m.status === 200 && !missing.length) report("PASS", `${label}: /metrics has the proxy families, build_info and process_*`);
  else report("FAIL", `${label}: /metrics`, `${m.status}, missing ${missing.join(", ")}`);
  const line = stderr.split("\n").find((l) => l.includes("proxy_started")) || "";
  const fmt = settings.get("ROOMCAST_LOG_FORMAT") || "logfmt";
  const ok = fmt === "json" ? line.startsWith("{") : /^ts=\S+ level=info event=proxy_started /.test(line);
  if (ok) report("PASS", `${label}: logs proxy_started in ${fmt}`);
  else report("FAIL", `${label}: log line`, `not ${fmt}: ${line}`);
} finally {
  const t0 = Date.now();
  if (exit === null) child.kill("SIGTERM");
  for (let i = 0; i < grace * 10 && exit === null; i++) await sleep(100);
  if (exit && exit.code === 0) report("PASS", `${label}: SIGTERM: exit 0 in ${Date.now() - t0} ms (grace ${grace} s)`);
  else {
    report("FAIL", `${label}: SIGTERM`, `exit ${JSON.stringify(exit)}`);
    if (exit === null) child.kill("SIGKILL");
  }
  rmSync(work, { recursive: true, force: true });
}
finish();
