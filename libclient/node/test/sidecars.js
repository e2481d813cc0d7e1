//  Real roomcastd processes for the tests, in temporary directories, on
//  free loopback ports; every process is killed at the end (and at exit).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, openSync, closeSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { connect } from "../index.js";

const top = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const ROOMCASTD = process.env.ROOMCASTD || join(top, "build/release/roomcastd");
export const ROOMCASTCTL = process.env.ROOMCASTCTL || join(top, "build/release/roomcastctl");

const live = new Set();
process.on("exit", () => {
  for (const child of live) {
    child.kill("SIGKILL");
  }
});

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

//  Retry fn until it returns a truthy value; throws after ms.
export async function waitFor(what, fn, ms = 10000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) {
        return v;
      }
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
    }
    await sleep(25);
  }
}

//  A port free a moment ago, never one handed out before in this process:
//  the kernel may pick the same one again until its sidecar binds it (a
//  pick repeats a given earlier one about once in 14,000).
const givenPorts = new Set();
export async function freePort() {
  for (let i = 0; i < 100; i++) {
    const port = await new Promise((res, rej) => {
      const srv = net.createServer();
      srv.on("error", rej);
      srv.listen(0, "127.0.0.1", () => {
        const { port } = srv.address();
        srv.close(() => res(port));
      });
    });
    if (!givenPorts.has(port)) {
      givenPorts.add(port);
      return port;
    }
  }
  throw new Error("no free port not handed out before");
}

export class Sidecar {
  constructor(dir, name, args) {
    this.dir = dir;
    this.name = name;
    this.socket = join(dir, `${name}.sock`);
    this.args = ["--channel", "test", "--name", name, "--socket", this.socket, ...args];
    this.log = join(dir, `${name}.log`);
    this.child = null;
  }

  async start() {
    const fd = openSync(this.log, "a");
    this.child = spawn(ROOMCASTD, this.args, { stdio: ["ignore", "ignore", fd] });
    closeSync(fd);
    const child = this.child;
    live.add(child);
    child.once("exit", () => live.delete(child));
    await waitFor(`${this.name} to listen (${this.log})`, async () => {
      if (child.exitCode !== null) {
        throw new Error(`roomcastd exited: ${readFileSync(this.log, "utf8").slice(-500)}`);
      }
      if (!existsSync(this.socket)) {
        return false;
      }
      try {
        const c = await connect({ socket: this.socket, connectTimeoutMs: 1000 });
        await c.close();
      } catch (err) {
        if (err.code !== "EACCES") { // refused by an allowlist: it listens
          throw err;
        }
      }
      return true;
    }, 10000);
    return this;
  }

  //  SIGTERM, then SIGKILL after 3 s; resolves when it is gone.
  async stop() {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      return;
    }
    const gone = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
    await gone;
    clearTimeout(timer);
  }

  //  "namespace\ttopic" of the topics with local subscribers matching
  //  the glob pattern
  async topics(pattern = "") {
    const c = await connect({ socket: this.socket, connectTimeoutMs: 1000 });
    try {
      return (await c.query("topics", pattern)).map(([key]) => key);
    } finally {
      await c.close();
    }
  }

  async status() {
    const c = await connect({ socket: this.socket, connectTimeoutMs: 1000 });
    try {
      return Object.fromEntries(await c.query("status"));
    } finally {
      await c.close();
    }
  }
}

//  A temporary directory with sidecars in it; cleanup() stops them all.
export class Cluster {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "roomcast-node-"));
    this.sidecars = [];
  }

  async single(name = "solo", extra = []) {
    const s = new Sidecar(this.dir, name, extra);
    this.sidecars.push(s);
    return s.start();
  }

  //  Two sidecars in a mesh; resolves when each hears the other.
  async mesh(names = ["a", "b"]) {
    const key = join(this.dir, "cluster.key");
    execFileSync(ROOMCASTCTL, ["keygen", key], { stdio: "ignore" });
    const ports = [await freePort(), await freePort()];
    const pair = names.map((name, i) => new Sidecar(this.dir, name, [
      "--bind", `tcp://127.0.0.1:${ports[i]}`,
      "--peer", `tcp://127.0.0.1:${ports[1 - i]}`,
      "--key-file", key, "--heartbeat", "100",
    ]));
    this.sidecars.push(...pair);
    await Promise.all(pair.map((s) => s.start()));
    for (const s of pair) {
      await waitFor(`${s.name} to see its peer`,
        async () => (await s.status()).live_peers === "1", 15000);
    }
    return pair;
  }

  async cleanup() {
    await Promise.all(this.sidecars.map((s) => s.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

//  Collects a client's messages.
export class Inbox {
  constructor(client) {
    this.items = [];
    client.on("message", (m) => this.items.push(m));
  }

  async count(n, ms = 5000) {
    await waitFor(`${n} messages (have ${this.items.length})`,
      () => this.items.length >= n, ms);
    return this.items;
  }
}
