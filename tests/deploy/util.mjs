// What the deploy checks share: the PASS/FAIL/SKIP lines check.sh counts,
// free ports on loopback, a bounded HTTP GET, a sleep.
import { createServer } from "node:net";
import { createSocket } from "node:dgram";
import { get } from "node:http";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The kernel picks a random free port each time, and one handed out a
// moment ago is free again until roomcastd binds it: a pick repeats a given
// earlier one about once in 14,000. No port is handed out twice here.
const given = new Set();
const unique = async (pick) => {
  for (let i = 0; i < 100; i++) {
    const port = await pick();
    if (!given.has(port)) {
      given.add(port);
      return port;
    }
  }
  throw new Error("no port not handed out before");
};

// A TCP port on 127.0.0.1 that was free a moment ago.
export const freeTcp = () => unique(() => new Promise((resolve, reject) => {
  const s = createServer();
  s.on("error", reject);
  s.listen(0, "127.0.0.1", () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
}));

// Whether TCP port on 127.0.0.1 is free now.
export const tcpFree = (port) => new Promise((resolve) => {
  const s = createServer();
  s.on("error", () => resolve(false));
  s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
});

// A UDP port on 127.0.0.1 that was free a moment ago.
export const freeUdp = () => unique(() => new Promise((resolve, reject) => {
  const s = createSocket("udp4");
  s.on("error", reject);
  s.bind(0, "127.0.0.1", () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
}));

// GET http://127.0.0.1:port/path within 2 s: { status, body }, status 0
// (body: why) when nothing answered.
export const httpGet = (port, path) => new Promise((resolve) => {
  const req = get({ host: "127.0.0.1", port, path, timeout: 2000 }, (res) => {
    let body = "";
    res.on("data", (d) => (body += d));
    res.on("end", () => resolve({ status: res.statusCode, body }));
  });
  req.on("timeout", () => req.destroy(new Error("timeout")));
  req.on("error", (e) => resolve({ status: 0, body: e.message }));
});

// One line per check: "PASS name", "FAIL name: why", "SKIP name: why".
let failures = 0;
export function report(status, name, detail) {
  if (status === "FAIL") failures++;
  console.log(detail ? `${status} ${name}: ${detail}` : `${status} ${name}`);
}

// check(name, fn): fn throws (FAIL) or returns; a returned {skip} is a
// SKIP, a returned {note} is printed with the PASS.
export async function check(name, fn) {
  try {
    const r = await fn();
    if (r && r.skip) report("SKIP", name, r.skip);
    else report("PASS", name, r && r.note);
  } catch (e) {
    report("FAIL", name, e.message);
  }
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// Exit 1 if any check failed, else 0.
export const finish = () => process.exit(failures ? 1 : 0);
