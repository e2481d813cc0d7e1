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
import { mkdtempSync, rmSync } from "node:fs";
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

async function bench(backend, target) {
  const sub = start("sub", backend, target);
  await sub.ready;
  const pub = start("pub", backend, target);
  await pub.ready;
  try {
    //  warm up: until a broadcast from P reaches S's clients
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
    const burst = [];
    const paced = [];
    for (let run = 0; run < RUNS; run++) {
      const b = await phase(pub.proc, sub.proc, { cmd: "burst", n: BURST });
      const received = b.got.reduce((x, y) => x + y, 0);
      burst.push({
        rate: (received / CLIENTS) / ((b.last - b.done.t0) / 1e6),
        lost: BURST * CLIENTS - received,
      });
      const n = RATE * SECONDS;
      const p = await phase(pub.proc, sub.proc, { cmd: "paced", n, rate: RATE });
      const lat = p.lat.sort((x, y) => x - y);
      paced.push({
        p50: pct(lat, 0.5) / 1000, p99: pct(lat, 0.99) / 1000,
        lost: n * CLIENTS - p.got.reduce((x, y) => x + y, 0),
        sendRate: n / ((p.done.t1 - p.done.t0) / 1e6),
      });
      console.error(`  ${backend} run ${run + 1}: burst ${Math.round(burst.at(-1).rate)} msgs/s ` +
                    `(lost ${burst.at(-1).lost}), paced p50 ${paced.at(-1).p50.toFixed(2)} ms ` +
                    `p99 ${paced.at(-1).p99.toFixed(2)} ms (lost ${paced.at(-1).lost})`);
    }
    return {
      rate: median(burst.map((x) => x.rate)),
      burstLost: burst.reduce((a, x) => a + x.lost, 0),
      p50: median(paced.map((x) => x.p50)),
      p99: median(paced.map((x) => x.p99)),
      pacedLost: paced.reduce((a, x) => a + x.lost, 0),
    };
  } finally {
    pub.proc.kill();
    sub.proc.kill();
  }
}

async function main() {
  const { Cluster } = await import("../test/sidecars.js");
  const dir = mkdtempSync(join(tmpdir(), "roomcast-bench-socketio-"));
  const cluster = new Cluster();
  let redis = null;
  let redisVersion = "?";
  const results = {};
  try {
    const port = await freePort();
    redis = spawn(process.env.REDIS_SERVER || "redis-server",
                  ["--port", String(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", dir,
                   "--client-output-buffer-limit", "pubsub 0 0 0"],
                  { stdio: "ignore" });
    const redisUp = new Promise((resolve, reject) => {
      redis.once("error", reject);
      redis.once("exit", (c) => reject(new Error(`redis-server exited (${c})`)));
      const poll = () => {
        const s = net.connect(port, "127.0.0.1", () => { s.destroy(); resolve(); });
        s.on("error", () => setTimeout(poll, 50));
      };
      poll();
    });
    await redisUp;
    redisVersion = execFileSync(process.env.REDIS_SERVER || "redis-server", ["--version"],
                                { encoding: "utf8" }).match(/v=(\S+)/)?.[1] || "?";
    console.error(`redis-server on 127.0.0.1:${port}`);
    results.redis = await bench("redis", `redis://127.0.0.1:${port}`);

    const [a, b] = await cluster.mesh(["bench-a", "bench-b"]);
    console.error(`roomcastd mesh: ${a.socket}, ${b.socket}`);
    //  P on sidecar a, S on sidecar b: the broadcast crosses the mesh
    results.roomcast = await bench("roomcast", `${a.socket}|${b.socket}`);
  } finally {
    redis?.kill();
    await cluster.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
  const row = (name, r) => `| ${name} | ${Math.round(r.rate).toLocaleString("en")} | ` +
    `${r.burstLost} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.pacedLost} |`;
  console.log(`${CLIENTS} clients in the room on the receiving server; burst of ` +
              `${BURST.toLocaleString("en")} broadcasts, paced ${RATE}/s for ${SECONDS} s; ` +
              `median of ${RUNS} runs, lost summed over the runs\n`);
  console.log("| adapter | burst msgs/s (per client) | burst lost | paced p50 ms | paced p99 ms | paced lost |");
  console.log("|---|---:|---:|---:|---:|---:|");
  console.log(row(`@socket.io/redis-adapter 8.3.0 (redis-server ${redisVersion})`,
                  results.redis));
  console.log(row("roomcast/socket.io (two roomcastd, mesh)", results.roomcast));
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
