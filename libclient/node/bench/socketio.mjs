//  The same socket.io broadcast through @socket.io/redis-adapter (a
//  redis-server this script starts on 127.0.0.1 and stops) and through
//  roomcast/socket.io (two roomcastd in a mesh): server P does
//  io.to("bench").emit("m", seq, sentAt, text) and CLIENTS socket.io
//  clients of server S, in the room, receive it. Two phases per backend:
//
//    burst    BURST broadcasts as fast as the publishing loop goes
//             (batches of 100 per event-loop turn): msgs/s is broadcasts
//             received per client per second, first send to last receipt
//    paced    RATE broadcasts per second for SECONDS: latency p50 / p99,
//             send (io.emit) to the client's handler, one monotonic clock
//
//  lost = broadcasts sent minus received, per client, summed, after 3 s of
//  quiet. Each phase runs RUNS times; the table gives the median run.
//
//    node bench/socketio.mjs        (env: ROOMCASTD, ROOMCASTCTL,
//                                    REDIS_SERVER, CLIENTS=4, BURST=20000,
//                                    RATE=2000, SECONDS=5, RUNS=3)
//  Prints a Markdown table. Every process it starts is stopped at the end.
import { execFileSync, fork, spawn } from "node:child_process";
import { createServer } from "node:http";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";

const env = (k, d) => Number(process.env[k] || d);
const CLIENTS = env("CLIENTS", 4);
const BURST = env("BURST", 20000);
const RATE = env("RATE", 2000);
const SECONDS = env("SECONDS", 5);
const RUNS = env("RUNS", 3);
const TEXT = "x".repeat(64);
const now = () => Number(process.hrtime.bigint()) / 1e3; // µs, CLOCK_MONOTONIC
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- the two child roles ----------------------------------------------------

async function adapterFor(backend, target) {
  if (backend === "redis") {
    const { createClient } = await import("redis");
    const { createAdapter } = await import("@socket.io/redis-adapter");
    const pub = createClient({ url: target });
    const sub = pub.duplicate();
    pub.on("error", (e) => console.error("redis pub:", e.message));
    sub.on("error", (e) => console.error("redis sub:", e.message));
    await Promise.all([pub.connect(), sub.connect()]);
    return createAdapter(pub, sub);
  }
  const { createAdapter } = await import("../socketio.js");
  return createAdapter({ socket: target });
}

async function child(role, backend, target) {
  const { Server } = await import("socket.io");
  const http = createServer();
  const io = new Server(http, { adapter: await adapterFor(backend, target) });
  let errors = 0;
  io.of("/").adapter.on?.("error", () => errors++);
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  const send = (m) => process.send(m);

  if (role === "sub") {
    const { io: ioc } = await import("socket.io-client");
    const url = `http://127.0.0.1:${http.address().port}`;
    io.on("connection", (s) => s.join("bench"));
    let stats;
    const reset = () => {
      stats = { got: new Array(CLIENTS).fill(0), lat: [], first: 0, last: 0, warm: 0 };
    };
    reset();
    for (let c = 0; c < CLIENTS; c++) {
      const sock = ioc(url, { transports: ["websocket"], forceNew: true });
      sock.on("m", (seq, sentAt) => {
        const t = now();
        stats.got[c]++;
        stats.lat.push(t - sentAt);
        stats.first ||= t;
        stats.last = t;
      });
      sock.on("warm", () => stats.warm++);
      await once(sock, "connect");
    }
    if (backend === "roomcast") {
      await io.of("/").adapter.ready(10000);
    }
    process.on("message", (m) => {
      if (m.cmd === "reset") {
        reset();
        send({ ok: true });
      } else if (m.cmd === "report") {
        send({ ...stats, errors });
      }
    });
    send({ ready: true });
    return;
  }

  //  role "pub"
  const emit = (seq) => io.to("bench").emit("m", seq, now(), TEXT);
  process.on("message", async (m) => {
    if (m.cmd === "warm") {
      io.to("bench").emit("warm");
      send({ ok: true });
    } else if (m.cmd === "burst") {
      const t0 = now();
      for (let seq = 0; seq < m.n;) {
        for (let i = 0; i < 100 && seq < m.n; i++) {
          emit(seq++);
        }
        await new Promise((r) => setImmediate(r));
      }
      send({ t0, t1: now(), errors });
    } else if (m.cmd === "paced") {
      const t0 = now();
      let seq = 0;
      while (seq < m.n) {
        const due = Math.min(m.n, Math.floor(((now() - t0) / 1e6) * m.rate));
        while (seq < due) {
          emit(seq++);
        }
        await sleep(1);
      }
      send({ t0, t1: now(), errors });
    }
  });
  send({ ready: true });
}

// --- the orchestra ----------------------------------------------------------

function freePort() {
  return new Promise((res) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function ask(proc, msg) {
  const reply = once(proc, "message").then(([m]) => m);
  proc.send(msg);
  return reply;
}

function start(role, backend, target) {
  const proc = fork(new URL(import.meta.url), ["--role", role, backend, target],
                    { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const ready = new Promise((resolve, reject) => {
    proc.once("message", resolve);
    proc.once("exit", (code) => reject(new Error(`${role} ${backend} exited (${code})`)));
  });
  return { proc, ready };
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

//  Send, then wait until every client has everything or 3 s of quiet.
async function phase(pub, sub, cmd) {
  await ask(sub, { cmd: "reset" });
  const done = await ask(pub, cmd);
  let seen = -1;
  let quietSince = Date.now();
  for (;;) {
    const r = await ask(sub, { cmd: "report" });
    const total = r.got.reduce((a, b) => a + b, 0);
    if (total === cmd.n * CLIENTS) {
      return { ...r, done };
    }
    if (total !== seen) {
      seen = total;
      quietSince = Date.now();
    } else if (Date.now() - quietSince > 3000) {
      return { ...r, done };
    }
    await sleep(50);
  }
}

//  CPU seconds used so far by a process of ours (/proc/PID/stat utime +
//  stime, in clock ticks of 10 ms).
function cpuOf(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

//  One backend's pair of servers, warmed up: a broadcast from P has
//  reached S's clients.
async function setup(backend, target, brokerPids) {
  const sub = start("sub", backend, target);
  await sub.ready;
  const pub = start("pub", backend, target);
  await pub.ready;
  for (let i = 0; ; i++) {
    await ask(pub.proc, { cmd: "warm" });
    await sleep(50);
    if ((await ask(sub.proc, { cmd: "report" })).warm >= CLIENTS) {
      break;
    }
    if (i > 200) {
      throw new Error(`${backend}: no broadcast crossed in 10 s`);
    }
  }
  const pids = [pub.proc.pid, sub.proc.pid, ...brokerPids];
  return { backend, pub: pub.proc, sub: sub.proc, pids, burst: [], paced: [] };
}

//  One run of both phases on one backend.
async function run(b) {
  const cpu0 = b.pids.map(cpuOf);
  const r = await phase(b.pub, b.sub, { cmd: "burst", n: BURST });
  const each = b.pids.map((pid, i) => ((cpuOf(pid) - cpu0[i]) * 1e6) / BURST);
  const cpu = each.reduce((x, y) => x + y, 0); // µs of CPU per broadcast
  const received = r.got.reduce((x, y) => x + y, 0);
  b.burst.push({
    rate: (received / CLIENTS) / ((r.last - r.done.t0) / 1e6),
    lost: BURST * CLIENTS - received,
    cpu,
    each, // P, S, then the broker's processes
  });
  const n = RATE * SECONDS;
  const p = await phase(b.pub, b.sub, { cmd: "paced", n, rate: RATE });
  const lat = p.lat.sort((x, y) => x - y);
  b.paced.push({
    p50: pct(lat, 0.5) / 1000, p99: pct(lat, 0.99) / 1000,
    lost: n * CLIENTS - p.got.reduce((x, y) => x + y, 0),
  });
  const [x, y] = [b.burst.at(-1), b.paced.at(-1)];
  console.error(`  ${b.backend}: burst ${Math.round(x.rate)} msgs/s, ` +
                `${Math.round(x.cpu)} µs CPU/broadcast (P, S, broker: ` +
                `${each.map(Math.round).join(", ")}) (lost ${x.lost}); paced p50 ` +
                `${y.p50.toFixed(2)} ms, p99 ${y.p99.toFixed(2)} ms (lost ${y.lost})`);
}

function summary(b) {
  return {
    rate: median(b.burst.map((x) => x.rate)),
    cpu: median(b.burst.map((x) => x.cpu)),
    each: b.burst[0].each.map((_, i) => median(b.burst.map((x) => x.each[i]))),
    burstLost: b.burst.reduce((a, x) => a + x.lost, 0),
    p50: median(b.paced.map((x) => x.p50)),
    p99: median(b.paced.map((x) => x.p99)),
    pacedLost: b.paced.reduce((a, x) => a + x.lost, 0),
  };
}

async function main() {
  const { Cluster } = await import("../test/sidecars.js");
  const dir = mkdtempSync(join(tmpdir(), "roomcast-bench-socketio-"));
  const cluster = new Cluster();
  let redis = null;
  let redisVersion = "?";
  const backends = [];
  try {
    const port = await freePort();
    const redisBin = process.env.REDIS_SERVER || "redis-server";
    redis = spawn(redisBin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", dir,
                             "--client-output-buffer-limit", "pubsub 0 0 0"],
                  { stdio: "ignore" });
    await new Promise((resolve, reject) => {
      redis.once("error", reject);
      redis.once("exit", (c) => reject(new Error(`redis-server exited (${c})`)));
      const poll = () => {
        const s = net.connect(port, "127.0.0.1", () => { s.destroy(); resolve(); });
        s.on("error", () => setTimeout(poll, 50));
      };
      poll();
    });
    redisVersion = execFileSync(redisBin, ["--version"], { encoding: "utf8" })
      .match(/v=(\S+)/)?.[1] || "?";
    console.error(`redis-server ${redisVersion} on 127.0.0.1:${port}`);
    const [a, b] = await cluster.mesh(["bench-a", "bench-b"]);
    console.error(`roomcastd mesh: ${a.socket}, ${b.socket}`);
    backends.push(await setup("redis", `redis://127.0.0.1:${port}`, [redis.pid]));
    //  P on sidecar a, S on sidecar b: every broadcast crosses the mesh
    backends.push(await setup("roomcast", `${a.socket}|${b.socket}`,
                              [a.child.pid, b.child.pid]));
    //  the backends take turns, so both see the same machine load
    for (let i = 0; i < RUNS; i++) {
      console.error(`run ${i + 1} of ${RUNS}`);
      for (const be of backends) {
        await run(be);
      }
    }
  } finally {
    for (const be of backends) {
      be.pub.kill();
      be.sub.kill();
    }
    redis?.kill();
    await cluster.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
  const [r, c] = backends.map(summary);
  const row = (name, x) => `| ${name} | ${Math.round(x.rate).toLocaleString("en")} | ` +
    `${Math.round(x.cpu)} (${x.each.slice(0, 2).map(Math.round).join(" + ")} + ` +
    `${Math.round(x.each.slice(2).reduce((u, v) => u + v, 0))}) | ${x.burstLost} | ${x.p50.toFixed(2)} | ${x.p99.toFixed(2)} | ` +
    `${x.pacedLost} |`;
  console.log(`${CLIENTS} clients in the room on the receiving server; burst of ` +
              `${BURST.toLocaleString("en")} broadcasts, paced ${RATE}/s for ${SECONDS} s; ` +
              `median of ${RUNS} runs taken in turns, lost summed over the runs\n`);
  console.log("| adapter | burst msgs/s (per client) | CPU µs per broadcast (P + S + broker) | burst lost | " +
              "paced p50 ms | paced p99 ms | paced lost |");
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  console.log(row(`@socket.io/redis-adapter 8.3.0, redis-server ${redisVersion}`, r));
  console.log(row("roomcast/socket.io, two roomcastd in a mesh", c));
}

if (process.argv[2] === "--role") {
  const [, , , role, backend, target] = process.argv;
  //  roomcast: the publisher on the first sidecar, the receiver on the second
  const t = backend === "roomcast" ? target.split("|")[role === "pub" ? 0 : 1] : target;
  child(role, backend, t).catch((err) => {
    console.error(`${role} ${backend}:`, err);
    process.exit(1);
  });
} else {
  main().catch((err) => {
    console.error("bench:", err);
    process.exitCode = 1;
  });
}
