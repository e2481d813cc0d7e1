// Offline checks of deploy/docker/Dockerfile (tests/deploy/check.sh). There
// is no Docker engine to build it and hadolint is not in Debian, so:
//  - dockerfile-utils, the linter behind the Docker language server, for
//    syntax, flags, ports, durations, references (errors and warnings fail);
//  - the rules this image promises: multi-stage, Debian 12 slim bases pinned
//    by tag (never latest), built by the Makefile into /out, non-root final
//    USER, exec-form ENTRYPOINT (SIGTERM reaches roomcastd: graceful leave),
//    apt hygiene (hadolint DL3008-like rules we can check: -y,
//    --no-install-recommends, lists removed in the same RUN), COPY sources
//    that exist, no ADD;
//  - agreement with the rest of deploy/: uid/gid and group name as the
//    DaemonSet and ROOMCAST_SOCKET_GROUP expect, EXPOSEd ports as declared,
//    runtime packages that provide every library roomcastd links (dpkg);
//  - every RUN script is written out for shellcheck (as hadolint does).
//
//   node dockerfile.mjs DOCKERFILE REPO_ROOT BASE_YAML RUN_SCRIPT_DIR [ROOMCASTD]
// Prints "PASS name", "FAIL name: why" or "SKIP name: why", one a line.
import { readFileSync, writeFileSync, existsSync, readdirSync, mkdirSync, statSync } from "node:fs";
import { join, dirname, basename } from "node:path";
import { execFileSync } from "node:child_process";
import { DockerfileParser } from "dockerfile-ast";
import { validate } from "dockerfile-utils";
import { parseAllDocuments } from "yaml";
import { check, assert, finish } from "./util.mjs";

const [file, root, baseYaml, runDir, roomcastd] = process.argv.slice(2);
if (!runDir) {
  console.error("usage: dockerfile.mjs DOCKERFILE REPO_ROOT BASE_YAML RUN_SCRIPT_DIR [ROOMCASTD]");
  process.exit(2);
}

const text = readFileSync(file, "utf8");
const df = DockerfileParser.parse(text);
const instrs = df.getInstructions();
const froms = df.getFROMs();
// stages: [{from, instrs}]
const stages = [];
for (const i of instrs) {
  if (i.getKeyword() === "FROM") stages.push({ from: i, instrs: [] });
  else if (stages.length) stages[stages.length - 1].instrs.push(i);
}
const final = stages[stages.length - 1];
const of = (stage, kw) => stage.instrs.filter((i) => i.getKeyword() === kw);
const runText = (i) => i.getArgumentsContent() || "";
const line = (i) => i.getRange().start.line + 1;

const k8s = parseAllDocuments(readFileSync(baseYaml, "utf8")).map((d) => d.toJS()).filter(Boolean);
const ds = k8s.find((o) => o.kind === "DaemonSet");
const pod = ds.spec.template.spec;
const sidecar = pod.containers.find((c) => c.name === "roomcastd");
const cm = k8s.find((o) => o.kind === "ConfigMap");

function lint(content) {
  return validate(content).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
}

await check("Dockerfile: dockerfile-utils finds no error or warning", () => {
  const diags = lint(text);
  assert(!diags.length, diags.join("; "));
});

await check("Dockerfile: the linter catches a broken Dockerfile (self-test)", () => {
  const broken = "FROM debian:bookworm-slim\nEXPOSE 99999/tcpx\nHEALTHCHECK --interval=ten CMD true\nUSER\n";
  assert(lint(broken).length >= 3, `only ${lint(broken).length} problems found in a broken file`);
});

// ARGs declared before the first FROM (the only ones FROM can use).
const globalArgs = {};
for (const i of instrs) {
  if (i.getKeyword() === "FROM") break;
  if (i.getKeyword() === "ARG") {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/.exec(i.getArgumentsContent().trim());
    if (m) globalArgs[m[1]] = (m[2] ?? "").replace(/^"(.*)"$/, "$1");
  }
}
const resolve = (v) => (v || "").replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, n) => globalArgs[n] ?? "");

await check("Dockerfile: multi-stage, every base Debian 12 slim, pinned by digest (tag kept), never latest", () => {
  assert(stages.length >= 2, `${stages.length} stage(s)`);
  const stageNames = new Set();
  const digests = new Set();
  for (const f of froms) {
    const name = f.getImageName();
    const tag = f.getImageTag();
    const digest = resolve(f.getImageDigest());
    if (stageNames.has(name)) continue; // FROM an earlier stage
    assert(name === "debian", `line ${line(f)}: base ${name} is not debian`);
    assert(tag !== "latest", `line ${line(f)}: ${f.getImage()} uses latest`);
    assert(/^(bookworm|12(\.\d+)*)(-\d{8})?-slim$/.test(tag || ""),
      `line ${line(f)}: ${f.getImage()} is not Debian 12 (bookworm) slim`);
    assert(/^sha256:[0-9a-f]{64}$/.test(digest),
      `line ${line(f)}: ${f.getImage()} is not pinned by digest (sha256: and 64 hex digits; deploy/docker/pin-base.sh)`);
    digests.add(digest);
    if (f.getBuildStage()) stageNames.add(f.getBuildStage());
  }
  assert(digests.size === 1, `the stages use different bases: ${[...digests].join(", ")}`);
  return { note: `debian:${froms[0].getImageTag()}@${[...digests][0].slice(0, 19)}...` };
});

await check("Dockerfile: OCI labels (title, version = Makefile VERSION, revision, created, source, base)", () => {
  const labels = {};
  for (const l of of(final, "LABEL")) {
    for (const p of l.getProperties()) labels[p.getName()] = (p.getValue() || "").replace(/^"(.*)"$/, "$1");
  }
  const want = ["title", "description", "version", "revision", "created", "source", "base.name", "base.digest"]
    .map((k) => `org.opencontainers.image.${k}`);
  const missing = want.filter((k) => !(k in labels));
  assert(!missing.length, `missing: ${missing.join(", ")}`);
  const stageArgs = {};
  for (const a of of(final, "ARG")) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/.exec(a.getArgumentsContent().trim());
    if (m) stageArgs[m[1]] = m[2] ?? globalArgs[m[1]] ?? "";
  }
  const value = (v) => v.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, n) => stageArgs[n] ?? "");
  const mk = /^VERSION\s*:=\s*(\S+)/m.exec(readFileSync(join(root, "Makefile"), "utf8"))?.[1];
  const version = value(labels["org.opencontainers.image.version"]);
  assert(version === mk, `image version ${version}, Makefile VERSION ${mk}`);
  const baseDigest = value(labels["org.opencontainers.image.base.digest"]);
  assert(baseDigest === resolve(froms[froms.length - 1].getImageDigest()),
    `base.digest ${baseDigest} is not the FROM digest (ARG DEBIAN_DIGEST not redeclared in the stage?)`);
  return { note: `version ${version}` };
});

// .dockerignore as Docker reads it: patterns in order, the last one that
// matches the path or one of its parent folders wins; "!" lets back in.
function dockerignore(text) {
  const rules = text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#")).map((l) => {
    const neg = l.startsWith("!");
    const pat = (neg ? l.slice(1) : l).replace(/^\/+/, "").replace(/\/+$/, "");
    let re = "";
    for (let i = 0; i < pat.length; i++) {
      const c = pat[i];
      if (c === "*" && pat[i + 1] === "*") {
        re += pat[i + 2] === "/" ? "(.*/)?" : ".*";
        i += pat[i + 2] === "/" ? 2 : 1;
      } else if (c === "*") re += "[^/]*";
      else if (c === "?") re += "[^/]";
      else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
    return { neg, re: new RegExp(`^${re}$`) };
  });
  return (path) => {
    const parts = path.split("/");
    let excluded = false;
    for (const r of rules) {
      for (let n = 1; n <= parts.length; n++) {
        if (r.re.test(parts.slice(0, n).join("/"))) {
          excluded = !r.neg;
          break;
        }
      }
    }
    return excluded;
  };
}
const ignorePath = join(root, ".dockerignore");
const excluded = existsSync(ignorePath) ? dockerignore(readFileSync(ignorePath, "utf8")) : null;

await check(".dockerignore: keys and build output stay out of the build context", () => {
  assert(excluded, "no .dockerignore at the repository root (the build context)");
  const secret = ["deploy/kubernetes/cluster.key", "cluster.key", "sidecar/cluster.key", "discovery/node_secret",
    "deploy/kubernetes/variants/per-pod/cluster.key", ".git/config", "build/release/roomcastd",
    "tests/deploy/node_modules/yaml/package.json", "sidecar/build/x.o"];
  const leaks = secret.filter((p) => !excluded(p));
  assert(!leaks.length, `sent to the Docker daemon: ${leaks.join(", ")}`);
  // self-test of the matcher
  const t = dockerignore("*\n!src/\n**/*.key\n");
  assert(t("a.c") && !t("src/a.c") && t("src/x.key") && t("deep/src/a.c"), "the .dockerignore reader is wrong (self-test)");
});

await check("Dockerfile: built with the Makefile into /out, copied from that stage", () => {
  const build = stages.find((s) => s.from.getBuildStage());
  assert(build, "no named build stage");
  const runs = of(build, "RUN").map(runText).join(" && ");
  assert(/(^|&&\s*|\s)make(\s+-j\S*)?(\s|$|&&)/.test(runs), "the build stage does not run make");
  assert(/make install\b[^&]*PREFIX=\/usr\/local/.test(runs) && /make install\b[^&]*DESTDIR=\/out/.test(runs),
    "no make install PREFIX=/usr/local DESTDIR=/out");
  const copies = of(final, "COPY").filter((c) => c.getFromFlag());
  assert(copies.some((c) => c.getFromFlag().getValue() === build.from.getBuildStage() &&
    c.getArguments()[0].getValue().startsWith("/out/")), "the final stage copies nothing from /out of the build stage");
});

await check("Dockerfile: the final stage runs as a non-root USER", () => {
  const users = of(final, "USER");
  assert(users.length, "no USER in the final stage: it runs as root");
  const u = users[users.length - 1].getArgumentsContent().trim();
  const [user, group] = u.split(":");
  assert(user !== "root" && user !== "0", `USER ${u}`);
  assert(!/^\d+$/.test(user) || Number(user) > 0, `USER ${u}`);
  if (group !== undefined) assert(group !== "root" && group !== "0", `USER ${u}: root group`);
  // nothing after USER switches back
  const after = final.instrs.slice(final.instrs.indexOf(users[users.length - 1]));
  assert(!after.some((i) => i.getKeyword() === "RUN" && /\bsu(do)?\b/.test(runText(i))), "su/sudo after USER");
  return { note: u };
});

await check("Dockerfile: uid, gid and group name as the DaemonSet and ROOMCAST_SOCKET_GROUP expect", () => {
  const last = of(final, "USER").pop();
  assert(last, "no USER in the final stage");
  const u = last.getArgumentsContent().trim();
  const [uid, gid] = u.split(":").map(Number);
  const runs = of(final, "RUN").map(runText).join(" ");
  const ga = /groupadd\b[^&;]*--gid\s+(\d+)\s+(\S+)/.exec(runs);
  const ua = /useradd\b[^&;]*--uid\s+(\d+)/.exec(runs);
  assert(ga && ua, "no groupadd --gid / useradd --uid in the final stage");
  assert(Number(ua[1]) === uid && Number(ga[1]) === gid, `USER ${u} is not the created user ${ua[1]}:${ga[1]}`);
  const sc = { ...pod.securityContext, ...sidecar.securityContext };
  assert(sc.runAsUser === uid && sc.runAsGroup === gid, `DaemonSet runs as ${sc.runAsUser}:${sc.runAsGroup}, image user ${u}`);
  const group = cm.data.ROOMCAST_SOCKET_GROUP;
  assert(!group || group === ga[2], `ROOMCAST_SOCKET_GROUP ${group} is not the image's group ${ga[2]} (getgrnam fails)`);
  return { note: `${ga[2]} ${uid}:${gid}` };
});

await check("Dockerfile: exec-form ENTRYPOINT runs roomcastd (SIGTERM reaches it)", () => {
  const eps = of(final, "ENTRYPOINT");
  assert(eps.length === 1, `${eps.length} ENTRYPOINT(s)`);
  const raw = eps[0].getArgumentsContent().trim();
  assert(raw.startsWith("["), "shell form: /bin/sh would get SIGTERM, not roomcastd");
  const argv = JSON.parse(raw);
  assert(/\/roomcastd$/.test(argv[0]), `ENTRYPOINT ${argv[0]}`);
  assert(argv[0].startsWith("/usr/local/bin/"), "not the make install PREFIX=/usr/local path");
});

await check("Dockerfile: EXPOSE matches the DaemonSet's ports", () => {
  const exposed = new Set(of(final, "EXPOSE").flatMap((e) => e.getArguments().map((a) => a.getValue().toLowerCase())));
  const want = sidecar.ports.map((p) => `${p.containerPort}/${(p.protocol || "TCP").toLowerCase()}`);
  const missing = want.filter((p) => !exposed.has(p));
  assert(!missing.length, `not exposed: ${missing.join(", ")}`);
  return { note: [...exposed].join(" ") };
});

await check("Dockerfile: apt-get with -y --no-install-recommends, lists removed in the same RUN", () => {
  const bad = [];
  for (const s of stages) {
    for (const r of of(s, "RUN")) {
      const t = runText(r);
      if (!/apt-get\s+install/.test(t)) continue;
      if (!/apt-get\s+update/.test(t)) bad.push(`line ${line(r)}: install without update in the same RUN`);
      if (!/\s-y\b|--yes|--assume-yes/.test(t)) bad.push(`line ${line(r)}: no -y`);
      if (!/--no-install-recommends/.test(t)) bad.push(`line ${line(r)}: no --no-install-recommends`);
      if (!/rm -rf \/var\/lib\/apt\/lists/.test(t)) bad.push(`line ${line(r)}: apt lists left in the layer`);
    }
  }
  assert(!bad.length, bad.join("; "));
});

await check("Dockerfile: no ADD; every COPY source exists and .dockerignore lets it in", () => {
  const adds = instrs.filter((i) => i.getKeyword() === "ADD");
  assert(!adds.length, `ADD on line ${adds.map(line).join(", ")}: use COPY`);
  const missing = [];
  const ignored = [];
  const walk = (rel) => {
    const abs = join(root, rel);
    if (!statSync(abs).isDirectory()) return [rel];
    return readdirSync(abs).flatMap((f) => walk(rel.replace(/\/$/, "") + "/" + f));
  };
  for (const c of instrs.filter((i) => i.getKeyword() === "COPY" && !i.getFromFlag())) {
    const args = c.getArguments().map((a) => a.getValue());
    for (const src of args.slice(0, -1)) {
      let files = [];
      if (src.includes("*")) {
        const dir = join(root, dirname(src));
        const re = new RegExp("^" + basename(src).replace(/\./g, "\\.").replace(/\*/g, ".*") + "$");
        files = existsSync(dir) ? readdirSync(dir).filter((f) => re.test(f)).map((f) => `${dirname(src)}/${f}`) : [];
        if (!files.length) missing.push(src);
      } else if (!existsSync(join(root, src))) missing.push(src);
      else files = walk(src);
      if (excluded) ignored.push(...files.filter((f) => excluded(f) && !/\.(key|pem)$|_secret$|(^|\/)build\//.test(f)));
    }
  }
  assert(!missing.length, `not in the repository: ${missing.join(", ")}`);
  assert(!ignored.length, `COPY sources .dockerignore leaves out: ${ignored.slice(0, 5).join(", ")}`);
});

// Libraries: what roomcastd links (DT_NEEDED) must come from the final
// stage's packages or the base image (libc6); the build stage must have the
// -dev packages of the Makefile's pkg-config modules.
function dpkgOwner(path) {
  try {
    return execFileSync("dpkg", ["-S", path], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
      .split(":")[0];
  } catch {
    return null;
  }
}
const aptPackages = (stage) => of(stage, "RUN").flatMap((r) => {
  const m = /apt-get\s+install\s+([^&;]*)/.exec(runText(r));
  return m ? m[1].split(/\s+/).filter((w) => w && !w.startsWith("-")) : [];
});

await check("Dockerfile: the final stage installs every library roomcastd links", () => {
  if (!roomcastd || !existsSync(roomcastd)) return { skip: "no roomcastd build to read" };
  let needed;
  try {
    needed = execFileSync("readelf", ["-d", roomcastd], { encoding: "utf8" })
      .split("\n").map((l) => /\(NEEDED\).*\[(.+)\]/.exec(l)?.[1]).filter(Boolean);
  } catch {
    return { skip: "readelf (binutils) is not installed" };
  }
  const ldd = execFileSync("ldd", [roomcastd], { encoding: "utf8" });
  const have = new Set(aptPackages(final));
  const baseImage = new Set(["libc6"]);
  const missing = [];
  const pkgs = [];
  for (const lib of needed) {
    const path = new RegExp(`${lib.replace(/[.+]/g, "\\$&")} => (\\S+)`).exec(ldd)?.[1];
    const pkg = path && dpkgOwner(path.replace(/^\/lib\//, "/usr/lib/")) || path && dpkgOwner(path);
    if (!pkg) return { skip: `no Debian package owns ${lib} here` };
    const name = pkg.replace(/:.*/, "");
    pkgs.push(name);
    if (!have.has(name) && !baseImage.has(name)) missing.push(`${lib} (${name})`);
  }
  assert(!missing.length, `not installed in the final stage: ${missing.join(", ")}`);
  return { note: pkgs.join(" ") };
});

await check("Dockerfile: the build stage installs the Makefile's pkg-config modules", () => {
  const mk = readFileSync(join(root, "Makefile"), "utf8");
  const mods = /^PKGS\s*:=\s*(.*)$/m.exec(mk)?.[1].trim().split(/\s+/) || [];
  assert(mods.length, "no PKGS in the Makefile");
  const build = stages.find((s) => s.from.getBuildStage());
  const have = new Set(aptPackages(build));
  const missing = [];
  for (const m of mods) {
    let pc;
    try {
      pc = execFileSync("pkg-config", ["--variable=pcfiledir", m], { encoding: "utf8" }).trim();
    } catch {
      return { skip: `pkg-config cannot find ${m} here (make deps)` };
    }
    const pkg = dpkgOwner(`${pc}/${m}.pc`)?.replace(/:.*/, "");
    if (!pkg) return { skip: `no Debian package owns ${m}.pc here` };
    if (!have.has(pkg)) missing.push(`${m} (${pkg})`);
  }
  assert(!missing.length, `not installed in the build stage: ${missing.join(", ")}`);
});

// RUN scripts for shellcheck
mkdirSync(runDir, { recursive: true });
let n = 0;
for (const r of instrs.filter((i) => i.getKeyword() === "RUN")) {
  const t = runText(r);
  if (t.trim().startsWith("[")) continue; // exec form: no shell
  writeFileSync(join(runDir, `run-line${line(r)}.sh`), `#!/bin/sh\n# ${file}:${line(r)}\n${t}\n`);
  n++;
}
console.log(`INFO ${n} RUN scripts written to ${runDir}`);
finish();
