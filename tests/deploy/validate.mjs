// Checks of the rendered Kubernetes manifests (tests/deploy/check.sh).
//
//   node validate.mjs [--help-file F] [--emit-env F] NAME=FILE...
//
// NAME is one of base, example, hostnetwork, existing-secret, per-pod,
// monitoring, proxy-mode (each a `kubectl kustomize` output); base,
// example and hostnetwork are required. --proxy-help-file is `roomcastd
// proxy --help`; --emit-proxy-env writes a proxy's effective environment
// (proxy-mode) for proxy-smoke.mjs.
//
// 1. Schema: every object validates against the Kubernetes API schemas
//    (kubernetes-models: the OpenAPI schemas compiled to validators; the
//    Prometheus Operator's for PodMonitor and PrometheusRule).
// 2. Strict fields: no field the API does not know (typos such as
//    readOnlyRootFileSystem would be refused by a strict API server, or
//    dropped by an old one). The schemas above allow unknown fields, so the
//    manifests are also type-checked with TypeScript against
//    kubernetes-models' own declarations (excess property checks).
// 3. What any workload must get right, in every set: selectors that select
//    the pod template's labels (workloads, Services, NetworkPolicies), a
//    pod restartPolicy a controller accepts (not Never or OnFailure),
//    container restartPolicy only "Always" and only on init containers,
//    limits never under requests.
// 4. The properties the deployment promises (non-root, read-only root,
//    no capabilities, probes, rolling update, scrape annotations, the
//    socket directory shared with the example app, node-agent priority,
//    tolerations and memory request = limit, the per-pod variant under Pod
//    Security "restricted" ...), so that an edit cannot drop one silently.
// Prints "PASS name", "FAIL name: why" or "SKIP name: why", one a line.
// --emit-env writes the sidecar's effective environment (ConfigMap, then
// env in order) as JSON for the smoke test.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import ts from "typescript";
import { report, check, assert, finish } from "./util.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
let helpFile = null;
let emitEnv = null;
let proxyHelpFile = null;
let emitProxyEnv = null;
const files = {};
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--help-file") helpFile = args[++i];
  else if (args[i] === "--emit-env") emitEnv = args[++i];
  else if (args[i] === "--proxy-help-file") proxyHelpFile = args[++i];
  else if (args[i] === "--emit-proxy-env") emitProxyEnv = args[++i];
  else {
    const m = /^([a-z-]+)=(.+)$/.exec(args[i]);
    if (m) files[m[1]] = m[2];
  }
}
if (!files.base || !files.example || !files.hostnetwork) {
  console.error("usage: validate.mjs [--help-file F] [--emit-env F] base=F example=F hostnetwork=F " +
    "[existing-secret=F] [per-pod=F] [monitoring=F]");
  process.exit(2);
}

function load(file) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  const objs = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    const o = d.toJS();
    if (!o) continue;
    // kustomize 5 folds long base64 over lines; the API server's decoder
    // skips the newlines, the schema's "byte" format does not.
    if (o.kind === "Secret" && o.data) {
      for (const k of Object.keys(o.data)) o.data[k] = String(o.data[k]).replace(/\s+/g, "");
    }
    objs.push(o);
  }
  return objs;
}

const sets = Object.fromEntries(Object.entries(files).map(([name, f]) => [name, load(f)]));

// --- 1. schemas -------------------------------------------------------------

function modelPath(o) {
  // "apps/v1" -> kubernetes-models/apps/v1/Kind; "v1" -> kubernetes-models/v1/Kind
  if (String(o.apiVersion).startsWith("monitoring.coreos.com/")) {
    return `@kubernetes-models/prometheus-operator/${o.apiVersion}/${o.kind}`;
  }
  return `kubernetes-models/${o.apiVersion}/${o.kind}`;
}
async function schemaErrors(o) {
  let mod;
  try {
    mod = await import(modelPath(o));
  } catch {
    return [`no schema for ${o.apiVersion} ${o.kind}`];
  }
  const Model = mod[o.kind] || mod.default;
  try {
    new Model(o).validate();
    return [];
  } catch (e) {
    const errs = e.errors || [];
    if (!errs.length) return [e.message];
    return errs.map((x) => `${x.instancePath || "/"} ${x.message}`);
  }
}
const id = (o) => `${o.kind}/${o.metadata?.name}`;

for (const [set, objs] of Object.entries(sets)) {
  await check(`${set}: renders to objects`, () => {
    assert(objs.length > 0, "no object rendered");
    return { note: objs.map(id).join(", ") };
  });
  await check(`${set}: every object validates against the Kubernetes API schemas`, async () => {
    const bad = [];
    for (const o of objs) {
      for (const e of await schemaErrors(o)) bad.push(`${id(o)}: ${e}`);
    }
    assert(!bad.length, bad.slice(0, 8).join("; "));
  });
}

// --- 2. strict fields (TypeScript excess property checks) ---------------------

function strictErrors(objs) {
  const imports = new Set();
  let src = "";
  objs.forEach((o, i) => {
    const iface = `I${o.kind}`;
    imports.add(`import type { ${iface} } from "${modelPath(o)}";`);
    src += `// ${id(o)}\nexport const doc${i}: ${iface} = ${JSON.stringify(o, null, 2)};\n`;
  });
  const text = [...imports].join("\n") + "\n" + src;
  const file = join(here, "__manifests__.ts"); // virtual: never written
  const options = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2020,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) =>
    name === file ? ts.createSourceFile(name, text, lang) : getSourceFile(name, lang, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === file ? text : readFile(name));
  const program = ts.createProgram([file], options, host);
  const diags = ts.getPreEmitDiagnostics(program);
  const lines = text.split("\n");
  return diags.map((d) => {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, " ");
    if (!d.file || d.file.fileName !== file) return msg;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    let owner = "?";
    for (let l = line; l >= 0; l--) {
      const m = /^\/\/ (.*)$/.exec(lines[l]);
      if (m) {
        owner = m[1];
        break;
      }
    }
    return `${owner}: ${msg}`;
  });
}

for (const [set, objs] of Object.entries(sets)) {
  await check(`${set}: no field unknown to the Kubernetes API (strict)`, () => {
    const errs = strictErrors(objs);
    assert(!errs.length, errs.slice(0, 5).join("; "));
  });
}

// The validators must catch what they are here for: break a copy on purpose.
await check("validators reject broken manifests (self-test)", async () => {
  const ds = structuredClone(sets.base.find((o) => o.kind === "DaemonSet"));
  const c = ds.spec.template.spec.containers[0];
  c.securityContext.readOnlyRootFileSystem = c.securityContext.readOnlyRootFilesystem;
  delete c.securityContext.readOnlyRootFilesystem;
  assert(strictErrors([ds]).some((e) => e.includes("readOnlyRootFileSystem")),
    "the strict check accepted securityContext.readOnlyRootFileSystem");
  const ds2 = structuredClone(sets.base.find((o) => o.kind === "DaemonSet"));
  ds2.spec.template.spec.containers[0].ports[0].containerPort = "seven";
  delete ds2.spec.selector;
  const errs = await schemaErrors(ds2);
  assert(errs.some((e) => /containerPort/.test(e)), "the schema accepted containerPort: \"seven\"");
  assert(errs.some((e) => /selector/.test(e)), "the schema accepted a DaemonSet without a selector");
});

// --- 3. what every workload must get right --------------------------------------

// Kubernetes quantities ("100m", "512Mi", "1G", "0.5") as numbers.
function qty(q) {
  const m = /^([+-]?[0-9.]+(?:e[+-]?\d+)?)([a-zA-Z]*)$/.exec(String(q).trim());
  const unit = { "": 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
    Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
  if (!m || !(m[2] in unit)) throw new Error(`not a quantity: ${q}`);
  return Number(m[1]) * unit[m[2]];
}
function selects(sel, labels) {
  if (!sel) return false;
  const ml = Object.entries(sel.matchLabels || {});
  const me = sel.matchExpressions || [];
  if (!ml.length && !me.length) return true; // {} selects every pod
  return ml.every(([k, v]) => labels[k] === v) && me.every((e) => {
    const v = labels[e.key];
    if (e.operator === "In") return v !== undefined && e.values.includes(v);
    if (e.operator === "NotIn") return v === undefined || !e.values.includes(v);
    if (e.operator === "Exists") return v !== undefined;
    if (e.operator === "DoesNotExist") return v === undefined;
    return false;
  });
}
const templates = (objs) => objs.filter((o) => o.spec?.template?.spec)
  .map((o) => ({ o, labels: o.spec.template.metadata?.labels || {}, spec: o.spec.template.spec }));
const controllers = new Set(["Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "ReplicationController"]);

function workloadProblems(objs) {
  const probs = [];
  const tpls = templates(objs);
  for (const { o, labels, spec } of tpls) {
    const sel = o.spec.selector;
    if (controllers.has(o.kind) && o.kind !== "ReplicationController") {
      const empty = !sel || (!Object.keys(sel.matchLabels || {}).length && !(sel.matchExpressions || []).length);
      if (empty) probs.push(`${id(o)}: no selector`);
      else if (!selects(sel, labels)) probs.push(`${id(o)}: selector ${JSON.stringify(sel.matchLabels || sel.matchExpressions)} does not select its own pod template's labels`);
    }
    const rp = spec.restartPolicy ?? "Always";
    if (controllers.has(o.kind) && rp !== "Always") {
      probs.push(`${id(o)}: pod restartPolicy ${rp} (a ${o.kind} runs only Always pods)`);
    }
    for (const c of spec.containers || []) {
      if (c.restartPolicy !== undefined) probs.push(`${id(o)} container ${c.name}: restartPolicy is for init containers only`);
    }
    for (const c of spec.initContainers || []) {
      if (c.restartPolicy !== undefined && c.restartPolicy !== "Always") {
        probs.push(`${id(o)} init container ${c.name}: restartPolicy ${c.restartPolicy} (only Always, a native sidecar)`);
      }
    }
    for (const c of [...(spec.containers || []), ...(spec.initContainers || [])]) {
      const req = c.resources?.requests || {};
      const lim = c.resources?.limits || {};
      for (const [r, l] of Object.entries(lim)) {
        try {
          if (r in req && qty(l) < qty(req[r])) probs.push(`${id(o)} ${c.name}: ${r} limit ${l} < request ${req[r]}`);
        } catch (e) {
          probs.push(`${id(o)} ${c.name}: ${e.message}`);
        }
      }
    }
  }
  if (tpls.length) {
    for (const o of objs) {
      if (o.kind === "Service" && o.spec?.selector &&
        !tpls.some((t) => Object.entries(o.spec.selector).every(([k, v]) => t.labels[k] === v))) {
        probs.push(`${id(o)}: selector ${JSON.stringify(o.spec.selector)} selects no pod template here`);
      }
      if (o.kind === "NetworkPolicy") {
        if (!tpls.some((t) => selects(o.spec.podSelector, t.labels))) {
          probs.push(`${id(o)}: podSelector selects no pod template here`);
        }
        for (const rule of o.spec.ingress || []) {
          for (const f of rule.from || []) {
            if (f.podSelector && !f.namespaceSelector && !tpls.some((t) => selects(f.podSelector, t.labels))) {
              probs.push(`${id(o)}: an ingress rule admits pods no template here has (${JSON.stringify(f.podSelector.matchLabels)})`);
            }
          }
        }
      }
    }
  }
  return probs;
}

for (const [set, objs] of Object.entries(sets)) {
  await check(`${set}: selectors select their pods, restart policies, limits >= requests`, () => {
    const probs = workloadProblems(objs);
    assert(!probs.length, probs.join("; "));
    return { note: `${templates(objs).length} pod template(s)` };
  });
}

await check("workload checks catch a selector/label mismatch, restartPolicy Never, limit < request (self-test)", () => {
  const base0 = sets.base;
  const bad = (mutate) => {
    const copy = structuredClone(base0);
    mutate(copy.find((o) => o.kind === "DaemonSet"), copy);
    return workloadProblems(copy).join("; ");
  };
  assert(/does not select its own/.test(bad((d) => { d.spec.template.metadata.labels["app.kubernetes.io/name"] = "other"; })),
    "a pod template whose labels the selector misses was accepted");
  assert(/restartPolicy Never/.test(bad((d) => { d.spec.template.spec.restartPolicy = "Never"; })),
    "restartPolicy: Never was accepted");
  assert(/limit 16Mi < request/.test(bad((d) => { d.spec.template.spec.containers[0].resources.limits.memory = "16Mi"; })),
    "a memory limit under the request was accepted");
  assert(/limit 50m < request 100m/.test(bad((d) => { d.spec.template.spec.containers[0].resources.limits.cpu = "50m"; })),
    "a cpu limit under the request was accepted");
  assert(/Service\/roomcast-seeds: selector/.test(bad((d, all) => { all.find((o) => o.kind === "Service").spec.selector = { app: "nobody" }; })),
    "a Service selecting no pod was accepted");
  assert(qty("1Gi") === 1024 * qty("1Mi") && qty("100m") === 0.1 && qty("1G") === 1e9, "quantities");
});

// --- 4. what the deployment promises -----------------------------------------

const base = sets.base;
const one = (objs, kind, pred = () => true) => {
  const found = objs.filter((o) => o.kind === kind && pred(o));
  assert(found.length === 1, `expected one ${kind}, found ${found.length}`);
  return found[0];
};
const ds = base.find((o) => o.kind === "DaemonSet");
const pod = ds?.spec?.template?.spec ?? {};
const sidecar = (pod.containers || []).find((c) => c.name === "roomcastd") || {};
const configMaps = base.filter((o) => o.kind === "ConfigMap");

// The sidecar's environment, as the kubelet builds it: envFrom, then env in
// order, $(VAR) expanded from what is defined before.
function effectiveEnv(container, objs, values = {}) {
  const env = new Map();
  const problems = [];
  for (const src of container.envFrom || []) {
    const name = src.configMapRef?.name;
    const cm = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === name);
    if (!cm) {
      problems.push(`envFrom ConfigMap ${name} is not rendered`);
      continue;
    }
    for (const [k, v] of Object.entries(cm.data || {})) env.set(k, v);
  }
  for (const e of container.env || []) {
    if (e.valueFrom) {
      const f = e.valueFrom.fieldRef?.fieldPath;
      env.set(e.name, f && f in values ? values[f] : `<${f || "valueFrom"}>`);
      continue;
    }
    const v = String(e.value ?? "").replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, ref) => {
      if (!env.has(ref)) problems.push(`${e.name} uses $(${ref}) before ${ref} is defined`);
      return env.has(ref) ? env.get(ref) : m;
    });
    env.set(e.name, v);
  }
  return { env, problems };
}
const podValues = { "status.podIP": "10.1.2.3", "spec.nodeName": "node-a", "status.hostIP": "10.1.2.3" };
const { env: sEnv } = effectiveEnv(sidecar, base, podValues);
const portOf = (addr) => Number(/:(\d+)$/.exec(addr || "")?.[1]);
const containerPort = (c, name) => (c.ports || []).find((p) => p.name === name);

await check("base: one DaemonSet roomcastd, one Service, one ConfigMap, one Secret", () => {
  one(base, "DaemonSet");
  one(base, "Service");
  one(base, "ConfigMap");
  one(base, "Secret");
  assert(sidecar.name === "roomcastd", "no container named roomcastd");
});

await check("base: every namespaced object is in the Namespace the base creates", () => {
  const ns = one(base, "Namespace").metadata.name;
  const off = base.filter((o) => o.kind !== "Namespace" && o.metadata.namespace !== ns);
  assert(!off.length, off.map((o) => `${id(o)} in ${o.metadata.namespace}`).join(", "));
});

function checkContainerSecurity(c, podSc, { allowRootChown = false } = {}) {
  const sc = c.securityContext || {};
  const where = `container ${c.name}`;
  assert(sc.readOnlyRootFilesystem === true, `${where}: readOnlyRootFilesystem is not true`);
  assert(sc.allowPrivilegeEscalation === false, `${where}: allowPrivilegeEscalation is not false`);
  assert(sc.privileged !== true, `${where}: privileged`);
  const drop = sc.capabilities?.drop || [];
  assert(drop.includes("ALL"), `${where}: capabilities.drop lacks ALL`);
  const add = sc.capabilities?.add || [];
  const uid = sc.runAsUser ?? podSc.runAsUser;
  const nonRoot = sc.runAsNonRoot ?? podSc.runAsNonRoot;
  if (allowRootChown) {
    assert(add.every((a) => a === "CHOWN"), `${where}: adds ${add.join(",")} (only CHOWN allowed)`);
    const cmd = (c.command || []).join(" ");
    assert(/^chown \S+ \S+$/.test(cmd), `${where} runs as root for more than one chown: ${cmd}`);
  } else {
    assert(!add.length, `${where}: adds capabilities ${add.join(",")}`);
    assert(nonRoot === true, `${where}: runAsNonRoot is not true`);
    assert(Number.isInteger(uid) && uid > 0, `${where}: runAsUser ${uid} is not a non-root uid`);
  }
}

await check("DaemonSet: non-root, read-only root filesystem, no capabilities, seccomp", () => {
  const psc = pod.securityContext || {};
  assert(psc.runAsNonRoot === true, "pod runAsNonRoot is not true");
  assert(psc.seccompProfile?.type === "RuntimeDefault", "pod seccompProfile is not RuntimeDefault");
  assert(pod.hostPID !== true && pod.hostIPC !== true, "hostPID/hostIPC");
  for (const c of pod.containers) checkContainerSecurity(c, psc);
  for (const c of pod.initContainers || []) {
    const root = (c.securityContext?.runAsUser ?? psc.runAsUser) === 0;
    checkContainerSecurity(c, psc, { allowRootChown: root });
  }
  assert(pod.automountServiceAccountToken === false, "a service account token is mounted");
});

await check("DaemonSet: liveness on /healthz, readiness on /readyz, at the HTTP address", () => {
  const http = containerPort(sidecar, "http");
  assert(http, "no container port named http");
  assert(portOf(sEnv.get("ROOMCAST_HTTP")) === http.containerPort,
    `ROOMCAST_HTTP ${sEnv.get("ROOMCAST_HTTP")} is not on port ${http.containerPort}`);
  for (const [probe, path] of [["livenessProbe", "/healthz"], ["readinessProbe", "/readyz"]]) {
    const g = sidecar[probe]?.httpGet;
    assert(g, `${probe} is not an httpGet`);
    assert(g.path === path, `${probe} path is ${g.path}, not ${path}`);
    assert(g.port === "http" || g.port === http.containerPort, `${probe} port ${g.port} is not the http port`);
  }
  assert(!/^(127\.|localhost:|\[::1\])/.test(sEnv.get("ROOMCAST_HTTP")),
    "HTTP bound to loopback: the kubelet cannot probe it");
});

await check("DaemonSet: RollingUpdate, one node at a time, no surge, minReadySeconds", () => {
  const u = ds.spec.updateStrategy || {};
  assert(u.type === "RollingUpdate", `updateStrategy ${u.type}`);
  const mu = u.rollingUpdate?.maxUnavailable;
  assert(mu !== undefined && mu !== 0 && mu !== "0%", `maxUnavailable ${mu}`);
  assert((u.rollingUpdate?.maxSurge ?? 0) === 0, "maxSurge is not 0: two sidecars would claim one socket");
  assert((ds.spec.minReadySeconds || 0) >= 5, "minReadySeconds < 5: no time to join the mesh");
});

await check("DaemonSet: terminationGracePeriodSeconds covers --shutdown-timeout", () => {
  const ms = Number(sEnv.get("ROOMCAST_SHUTDOWN_TIMEOUT") ?? 5000);
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  assert(grace * 1000 >= ms + 5000, `grace ${grace} s, shutdown timeout ${ms} ms: want 5 s to spare`);
  return { note: `${grace} s for ${ms} ms` };
});

await check("DaemonSet: resources requested, memory limited", () => {
  for (const c of [...pod.containers, ...(pod.initContainers || [])]) {
    const r = c.resources || {};
    assert(r.requests?.cpu && r.requests?.memory, `${c.name}: no cpu and memory requests`);
    assert(r.limits?.memory, `${c.name}: no memory limit`);
  }
});

// Memory request = limit: what the daemon may use is set aside. CPU: no
// limit (throttling delays every message), or one equal to the request.
function memoryEqualsLimit(containers) {
  for (const c of containers) {
    const r = c.resources || {};
    assert(r.requests?.memory && r.limits?.memory && qty(r.requests.memory) === qty(r.limits.memory),
      `${c.name}: memory request ${r.requests?.memory} is not the limit ${r.limits?.memory}`);
    assert(r.limits?.cpu === undefined || qty(r.limits.cpu) === qty(r.requests?.cpu ?? 0),
      `${c.name}: cpu limit ${r.limits?.cpu} is neither absent nor the request`);
  }
}

await check("DaemonSet: a node agent: system-node-critical, tolerates every taint, memory request = limit", () => {
  const out = [];
  for (const [set, objs] of Object.entries(sets)) {
    for (const d of objs.filter((o) => o.kind === "DaemonSet")) {
      const spec = d.spec.template.spec;
      assert(spec.priorityClassName === "system-node-critical",
        `${set}: priorityClassName ${spec.priorityClassName} (want system-node-critical: preemption, OOM score -997)`);
      assert((spec.tolerations || []).some((t) => t.operator === "Exists" && !t.key && !t.effect),
        `${set}: no toleration of every taint (operator: Exists): nodes whose apps tolerate a taint would have no sidecar`);
      memoryEqualsLimit([...spec.containers, ...(spec.initContainers || [])]);
      out.push(set);
    }
  }
  const cpuLimit = sidecar.resources?.limits?.cpu;
  return { note: `${out.join(", ")}; roomcastd ${sidecar.resources.limits.memory}, cpu ${cpuLimit ? `limit ${cpuLimit}` : "request only (Burstable, stated)"}` };
});

await check("DaemonSet: Prometheus scrape annotations name the HTTP port and /metrics", () => {
  const a = ds.spec.template.metadata.annotations || {};
  assert(a["prometheus.io/scrape"] === "true", "prometheus.io/scrape is not \"true\"");
  assert(Number(a["prometheus.io/port"]) === containerPort(sidecar, "http")?.containerPort,
    `prometheus.io/port ${a["prometheus.io/port"]} is not the http port`);
  assert((a["prometheus.io/path"] ?? "/metrics") === "/metrics", "prometheus.io/path is not /metrics");
});

// The socket: a hostPath directory, mounted where ROOMCAST_SOCKET points.
function hostPathMount(podSpec, container) {
  const vols = Object.fromEntries((podSpec.volumes || []).map((v) => [v.name, v]));
  return (container.volumeMounts || [])
    .map((m) => ({ m, v: vols[m.name] }))
    .filter(({ v }) => v?.hostPath);
}
let socketHostDir = null;
await check("DaemonSet: the socket is in a hostPath directory the sidecar mounts", () => {
  const sock = sEnv.get("ROOMCAST_SOCKET") || "/run/roomcast/roomcast.sock";
  const mounts = hostPathMount(pod, sidecar);
  assert(mounts.length === 1, `${mounts.length} hostPath mounts on the sidecar (want the socket directory only)`);
  const { m, v } = mounts[0];
  assert(posix.dirname(sock) === m.mountPath, `ROOMCAST_SOCKET ${sock} is not in the mount ${m.mountPath}`);
  assert(!m.readOnly, "the sidecar's socket directory is read-only");
  assert(["Directory", "DirectoryOrCreate"].includes(v.hostPath.type), `hostPath type ${v.hostPath.type}`);
  socketHostDir = { path: v.hostPath.path, file: posix.basename(sock) };
  for (const c of pod.initContainers || []) {
    const im = hostPathMount(pod, c);
    if (im.length) assert(c.command.includes(im[0].m.mountPath), `${c.name} does not chown the socket directory`);
  }
  return { note: `${v.hostPath.path} -> ${sock}` };
});

await check("DaemonSet: socket group and the sidecar's group agree (apps join one gid)", () => {
  const psc = pod.securityContext;
  const gid = sidecar.securityContext?.runAsGroup ?? psc.runAsGroup;
  assert(Number.isInteger(gid) && gid > 0, `runAsGroup ${gid}`);
  assert(sEnv.get("ROOMCAST_SOCKET_GROUP"), "ROOMCAST_SOCKET_GROUP is not set");
  const chown = (pod.initContainers || []).find((c) => c.command?.[0] === "chown");
  if (chown) {
    const [u, g] = chown.command[1].split(":").map(Number);
    assert(u === (sidecar.securityContext?.runAsUser ?? psc.runAsUser), "the socket directory is chowned to another uid");
    assert(g === gid, "the socket directory is chowned to another gid");
  }
  return { note: `gid ${gid} (${sEnv.get("ROOMCAST_SOCKET_GROUP")})` };
});

await check("DaemonSet: the cluster key comes from the Secret, in a mode roomcastd accepts", () => {
  const keyFiles = (sEnv.get("ROOMCAST_KEY_FILE") || "").split(",").filter(Boolean);
  assert(keyFiles.length >= 1, "ROOMCAST_KEY_FILE is not set");
  const vols = Object.fromEntries(pod.volumes.map((v) => [v.name, v]));
  for (const kf of keyFiles) {
    const m = sidecar.volumeMounts.find((x) => kf.startsWith(x.mountPath + "/"));
    assert(m, `${kf} is in no volume mount`);
    const v = vols[m.name];
    assert(v?.secret, `${kf} is not in a Secret volume`);
    assert(m.readOnly === true, "the key volume is not read-only");
    const sec = one(base, "Secret", (o) => o.metadata.name === v.secret.secretName);
    const key = posix.basename(kf);
    assert(sec.data && key in sec.data, `Secret ${sec.metadata.name} has no ${key}`);
    const mode = v.secret.items?.find((i) => i.key === key)?.mode ?? v.secret.defaultMode ?? 0o644;
    // roomcastd refuses a key file open to others or writable by its group
    assert((mode & 0o037) === 0, `mode 0${mode.toString(8)} would be refused by roomcastd`);
    if (mode & 0o040) {
      assert(pod.securityContext.fsGroup === (sidecar.securityContext?.runAsGroup ?? pod.securityContext.runAsGroup),
        "the key is group-readable but fsGroup is not the sidecar's group");
    }
  }
  const mode = pod.volumes.find((v) => v.secret)?.secret.defaultMode;
  return { note: `mode 0${(mode ?? 0o644).toString(8)}` };
});

await check("DaemonSet: env references ($(VAR)) are defined before use", () => {
  const all = [];
  for (const [set, objs] of Object.entries(sets)) {
    for (const o of objs) {
      const spec = o.spec?.template?.spec;
      for (const c of [...(spec?.containers || []), ...(spec?.initContainers || [])]) {
        all.push(...effectiveEnv(c, objs, podValues).problems.map((p) => `${set} ${c.name}: ${p}`));
      }
    }
  }
  assert(!all.length, all.join("; "));
});

await check("DaemonSet: mesh and gossip addresses match the declared ports", () => {
  const data = containerPort(sidecar, "data");
  const gossip = containerPort(sidecar, "gossip");
  assert(data?.protocol === "TCP" && portOf(sEnv.get("ROOMCAST_BIND")) === data.containerPort,
    `ROOMCAST_BIND ${sEnv.get("ROOMCAST_BIND")} vs port data ${data?.containerPort}`);
  assert(gossip?.protocol === "UDP" && portOf(sEnv.get("ROOMCAST_GOSSIP")) === gossip.containerPort,
    `ROOMCAST_GOSSIP ${sEnv.get("ROOMCAST_GOSSIP")} vs port gossip ${gossip?.containerPort}/UDP`);
  assert(sEnv.get("ROOMCAST_BIND").includes(podValues["status.podIP"]) || sEnv.get("ROOMCAST_ADVERTISE"),
    "bound to an address peers cannot use and no ROOMCAST_ADVERTISE");
});

await check("Service: headless seeds that list not-ready sidecars, named by ROOMCAST_JOIN", () => {
  const svc = one(base, "Service");
  assert(svc.spec.clusterIP === "None", "not headless (clusterIP is not None)");
  assert(svc.spec.publishNotReadyAddresses === true, "publishNotReadyAddresses is not true");
  const labels = ds.spec.template.metadata.labels;
  for (const [k, v] of Object.entries(svc.spec.selector || {})) {
    assert(labels[k] === v, `selector ${k}=${v} does not select the DaemonSet's pods`);
  }
  const seeds = (sEnv.get("ROOMCAST_JOIN") || "").split(",");
  const m = seeds.map((s) => /^dns:([^:]+):(\d+)$/.exec(s)).find(Boolean);
  assert(m, `ROOMCAST_JOIN ${sEnv.get("ROOMCAST_JOIN")} has no dns:NAME:PORT seed`);
  assert(m[1] === svc.metadata.name || m[1].startsWith(`${svc.metadata.name}.${svc.metadata.namespace}.`),
    `seed ${m[1]} is not the Service ${svc.metadata.name}`);
  assert(Number(m[2]) === containerPort(sidecar, "gossip").containerPort, "seed port is not the gossip port");
});

await check("NetworkPolicy: mesh ports only from sidecars, HTTP open", () => {
  const np = one(base, "NetworkPolicy");
  const sel = np.spec.podSelector.matchLabels || {};
  const labels = ds.spec.template.metadata.labels;
  assert(Object.entries(sel).every(([k, v]) => labels[k] === v), "does not select the sidecars");
  for (const name of ["data", "gossip"]) {
    const p = containerPort(sidecar, name);
    const rule = np.spec.ingress.find((r) => (r.ports || []).some((x) => x.port === p.containerPort));
    assert(rule?.from?.length, `port ${p.containerPort} is open to everyone`);
  }
  const http = containerPort(sidecar, "http").containerPort;
  assert(np.spec.ingress.some((r) => !r.from && (r.ports || []).some((x) => x.port === http)),
    "the HTTP port is not reachable (probes, Prometheus)");
});

await check("image: pinned by tag (no latest), the same for the sidecar and its init container", () => {
  const imgs = [...pod.containers, ...(pod.initContainers || [])].map((c) => c.image);
  for (const img of imgs) {
    const tag = /:([^/:@]+)$/.exec(img)?.[1];
    assert(tag || img.includes("@sha256:"), `${img} has no tag`);
    assert(tag !== "latest", `${img} uses latest`);
  }
  assert(new Set(imgs).size === 1, `different images: ${imgs.join(", ")}`);
  return { note: imgs[0] };
});

await check("ROOMCAST_* settings are options roomcastd knows", () => {
  if (!helpFile) return { skip: "no roomcastd --help (build it first)" };
  const help = readFileSync(helpFile, "utf8");
  const known = new Set([...help.matchAll(/env (ROOMCAST_[A-Z_]+)/g)].map((m) => m[1]));
  assert(known.size > 10, "could not read the option list from roomcastd --help");
  // --http is being added (HTTP /metrics, /healthz, /readyz); until the
  // build has it, roomcastd ignores the variable.
  const coming = new Set(["ROOMCAST_HTTP"]);
  const names = [...sEnv.keys()].filter((k) => k.startsWith("ROOMCAST_"));
  // and the per-pod sidecar's
  const pp = sets["per-pod"]?.find((o) => o.kind === "Deployment")?.spec.template.spec;
  const ppSide = (pp?.initContainers || []).find((c) => c.name === "roomcastd");
  if (ppSide) {
    for (const k of effectiveEnv(ppSide, sets["per-pod"], podValues).env.keys()) {
      if (k.startsWith("ROOMCAST_") && !names.includes(k)) names.push(k);
    }
  }
  const unknown = names.filter((k) => !known.has(k) && !coming.has(k));
  assert(!unknown.length, `unknown: ${unknown.join(", ")}`);
  const notYet = names.filter((k) => coming.has(k) && !known.has(k));
  return { note: notYet.length ? `${notYet.join(", ")} not in this build's --help yet` : `${names.length} settings` };
});

// --- the example app ------------------------------------------------------------

await check("example app: mounts the socket directory read-only and sets ROOMCAST_SOCKET", () => {
  const dep = one(sets.example, "Deployment");
  const spec = dep.spec.template.spec;
  for (const c of spec.containers) {
    const mounts = hostPathMount(spec, c);
    const m = mounts.find(({ v }) => v.hostPath.path === socketHostDir.path);
    assert(m, `${c.name} does not mount ${socketHostDir.path}`);
    assert(m.m.readOnly === true, `${c.name} mounts the socket directory read-write`);
    const sock = (c.env || []).find((e) => e.name === "ROOMCAST_SOCKET")?.value;
    assert(sock === posix.join(m.m.mountPath, socketHostDir.file),
      `ROOMCAST_SOCKET ${sock} is not ${posix.join(m.m.mountPath, socketHostDir.file)}`);
  }
});

await check("example app: in the socket's group, non-root, read-only root, no capabilities", () => {
  const dep = one(sets.example, "Deployment");
  const spec = dep.spec.template.spec;
  const psc = spec.securityContext || {};
  const gid = sidecar.securityContext?.runAsGroup ?? pod.securityContext.runAsGroup;
  for (const c of spec.containers) {
    checkContainerSecurity(c, psc);
    const groups = [c.securityContext?.runAsGroup ?? psc.runAsGroup, psc.fsGroup, ...(psc.supplementalGroups || [])];
    assert(groups.includes(gid), `${c.name} is not in group ${gid}: it cannot connect (socket mode 0660)`);
  }
});

await check("hostNetwork variant: host network with cluster DNS, addresses still ordered", () => {
  const hds = one(sets.hostnetwork, "DaemonSet");
  const spec = hds.spec.template.spec;
  assert(spec.hostNetwork === true, "hostNetwork is not true");
  assert(spec.dnsPolicy === "ClusterFirstWithHostNet", "dnsPolicy is not ClusterFirstWithHostNet: dns:roomcast-seeds would not resolve");
  const c = spec.containers.find((x) => x.name === "roomcastd");
  const { env, problems } = effectiveEnv(c, sets.hostnetwork, podValues);
  assert(!problems.length, problems.join("; "));
  for (const k of ["ROOMCAST_BIND", "ROOMCAST_GOSSIP", "ROOMCAST_HTTP"]) {
    assert(!/0\.0\.0\.0|\[::\]|^:/.test(env.get(k) || ""), `${k} ${env.get(k)} binds every interface of the node`);
  }
});

// --- Pod Security "restricted" ----------------------------------------------------

// The checks of the Pod Security Standards, level restricted (which
// includes baseline), for one pod spec. Returns the violations.
const restrictedVolumes = new Set(["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
  "persistentVolumeClaim", "projected", "secret"]);
function restrictedProblems(spec) {
  const out = [];
  const psc = spec.securityContext || {};
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) out.push("host namespaces");
  for (const v of spec.volumes || []) {
    const type = Object.keys(v).find((k) => k !== "name");
    if (!restrictedVolumes.has(type)) out.push(`volume ${v.name} is ${type}`);
  }
  const seccompOk = (sc) => ["RuntimeDefault", "Localhost"].includes(sc?.seccompProfile?.type);
  if (psc.seccompProfile && !seccompOk(psc)) out.push(`pod seccompProfile ${psc.seccompProfile.type}`);
  if (psc.runAsUser === 0) out.push("pod runAsUser 0");
  for (const s of psc.sysctls || []) out.push(`sysctl ${s.name}`);
  const all = [...(spec.initContainers || []), ...(spec.containers || []), ...(spec.ephemeralContainers || [])];
  for (const c of all) {
    const sc = c.securityContext || {};
    const w = `container ${c.name}`;
    if (sc.privileged) out.push(`${w}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${w}: allowPrivilegeEscalation is not false`);
    if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) out.push(`${w}: runAsNonRoot is not true`);
    if (sc.runAsUser === 0) out.push(`${w}: runAsUser 0`);
    if (!seccompOk(sc) && !(sc.seccompProfile === undefined && seccompOk(psc))) out.push(`${w}: no RuntimeDefault/Localhost seccompProfile`);
    if (!(sc.capabilities?.drop || []).includes("ALL")) out.push(`${w}: capabilities.drop lacks ALL`);
    const add = (sc.capabilities?.add || []).filter((a) => a !== "NET_BIND_SERVICE");
    if (add.length) out.push(`${w}: adds ${add.join(",")}`);
    if ((c.ports || []).some((p) => p.hostPort)) out.push(`${w}: hostPort`);
    if (sc.procMount && sc.procMount !== "Default") out.push(`${w}: procMount ${sc.procMount}`);
    if (sc.windowsOptions?.hostProcess) out.push(`${w}: hostProcess`);
    const se = sc.seLinuxOptions?.type;
    if (se && !["container_t", "container_init_t", "container_kvm_t"].includes(se)) out.push(`${w}: SELinux type ${se}`);
  }
  return out;
}

await check("Pod Security restricted: the checker refuses the node agent and the hostPath example (self-test)", () => {
  const d = restrictedProblems(pod).join("; ");
  assert(/hostPath/.test(d), `the DaemonSet's hostPath was not caught: ${d}`);
  assert(/socket-dir: runAsNonRoot/.test(d), `the root init container was not caught: ${d}`);
  const e = restrictedProblems(one(sets.example, "Deployment").spec.template.spec).join("; ");
  assert(/hostPath/.test(e), "the example app's hostPath was not caught");
  return { note: `${d.split("; ").length} violations in the node agent` };
});

// --- the per-pod variant --------------------------------------------------------------

if (sets["per-pod"]) {
  const pp = sets["per-pod"];
  const dep = pp.find((o) => o.kind === "Deployment");
  const spec = dep?.spec?.template?.spec ?? {};
  const side = (spec.initContainers || []).find((c) => c.name === "roomcastd") || {};
  const apps = spec.containers || [];
  const { env: ppEnv } = effectiveEnv(side, pp, podValues);
  const vols = Object.fromEntries((spec.volumes || []).map((v) => [v.name, v]));

  await check("per-pod: the namespace enforces Pod Security restricted and holds every object", () => {
    const ns = one(pp, "Namespace");
    const l = ns.metadata.labels || {};
    assert(l["pod-security.kubernetes.io/enforce"] === "restricted", `enforce is ${l["pod-security.kubernetes.io/enforce"]}`);
    const off = pp.filter((o) => o.kind !== "Namespace" && o.metadata.namespace !== ns.metadata.name);
    assert(!off.length, off.map(id).join(", "));
    return { note: ns.metadata.name };
  });

  await check("per-pod: the app pod meets Pod Security restricted (no hostPath, no root, nothing added)", () => {
    const probs = restrictedProblems(spec);
    assert(!probs.length, probs.join("; "));
    for (const c of [...apps, ...(spec.initContainers || [])]) checkContainerSecurity(c, spec.securityContext || {});
  });

  await check("per-pod: roomcastd is a native sidecar (init, restartPolicy Always) started and probed before the app", () => {
    assert(side.name, "no init container named roomcastd");
    assert(side.restartPolicy === "Always", `restartPolicy ${side.restartPolicy}: an init container that never ends blocks the app`);
    const http = (side.ports || []).find((p) => p.containerPort === portOf(ppEnv.get("ROOMCAST_HTTP")));
    assert(http, `ROOMCAST_HTTP ${ppEnv.get("ROOMCAST_HTTP")} is on no declared port`);
    for (const [probe, path] of [["startupProbe", "/healthz"], ["livenessProbe", "/healthz"], ["readinessProbe", "/readyz"]]) {
      const g = side[probe]?.httpGet;
      assert(g?.path === path, `${probe} is not GET ${path}`);
      assert(g.port === http.name || g.port === http.containerPort, `${probe} is not on the HTTP port`);
    }
    assert(!/^(127\.|localhost:)/.test(ppEnv.get("ROOMCAST_HTTP")), "HTTP on loopback: the kubelet cannot probe it");
    memoryEqualsLimit([side]);
    const grace = spec.terminationGracePeriodSeconds ?? 30;
    const ms = Number(ppEnv.get("ROOMCAST_SHUTDOWN_TIMEOUT") ?? 5000);
    assert(grace * 1000 >= ms + 5000, `grace ${grace} s for a ${ms} ms shutdown`);
  });

  await check("per-pod: the socket is in an emptyDir the app mounts, where ROOMCAST_SOCKET says, in the socket's group", () => {
    const sock = ppEnv.get("ROOMCAST_SOCKET") || "/run/roomcast/roomcast.sock";
    const m = (side.volumeMounts || []).find((x) => posix.dirname(sock) === x.mountPath);
    assert(m, `ROOMCAST_SOCKET ${sock} is in no mount of roomcastd`);
    assert(vols[m.name]?.emptyDir, `volume ${m.name} is not an emptyDir`);
    assert(!m.readOnly, "the sidecar's socket directory is read-only");
    const psc = spec.securityContext || {};
    const gid = side.securityContext?.runAsGroup ?? psc.runAsGroup;
    for (const c of apps) {
      const am = (c.volumeMounts || []).find((x) => x.name === m.name);
      assert(am, `${c.name} does not mount ${m.name}`);
      const want = posix.join(am.mountPath, posix.basename(sock));
      const got = (c.env || []).find((e) => e.name === "ROOMCAST_SOCKET")?.value;
      assert(got === want, `${c.name}: ROOMCAST_SOCKET ${got}, socket at ${want}`);
      const groups = [c.securityContext?.runAsGroup ?? psc.runAsGroup, psc.fsGroup, ...(psc.supplementalGroups || [])];
      assert(groups.includes(gid), `${c.name} is not in the sidecar's group ${gid} (socket mode 0660)`);
    }
    return { note: `${m.name} (emptyDir ${vols[m.name].emptyDir.medium || "disk"}) -> ${sock}` };
  });

  await check("per-pod: the key from the Secret roomcast-keys, read-only, in a mode roomcastd accepts", () => {
    const kf = (ppEnv.get("ROOMCAST_KEY_FILE") || "").split(",")[0];
    const m = (side.volumeMounts || []).find((x) => kf.startsWith(x.mountPath + "/"));
    assert(m && m.readOnly === true, `${kf} is not on a read-only mount`);
    const v = vols[m.name]?.secret;
    assert(v?.secretName === "roomcast-keys", `not the Secret roomcast-keys: ${JSON.stringify(vols[m.name])}`);
    const mode = v.defaultMode ?? 0o644;
    assert((mode & 0o037) === 0, `mode 0${mode.toString(8)} would be refused by roomcastd`);
    const gid = side.securityContext?.runAsGroup ?? spec.securityContext?.runAsGroup;
    assert(!(mode & 0o040) || spec.securityContext?.fsGroup === gid, "group-readable key, but fsGroup is not the sidecar's group");
    const generated = pp.some((o) => o.kind === "Secret");
    return { note: generated ? "generated" : "an existing Secret (not rendered)" };
  });

  await check("per-pod: seeds Service and NetworkPolicy: members join each other, the app's ports stay open", () => {
    const svc = one(pp, "Service");
    assert(svc.spec.clusterIP === "None" && svc.spec.publishNotReadyAddresses === true, "seeds not headless with not-ready addresses");
    const seed = /^dns:([^:]+):(\d+)$/.exec(ppEnv.get("ROOMCAST_JOIN") || "");
    assert(seed && seed[1] === svc.metadata.name, `ROOMCAST_JOIN ${ppEnv.get("ROOMCAST_JOIN")} is not dns:${svc.metadata.name}:PORT`);
    const gossip = (side.ports || []).find((p) => p.name === "gossip");
    assert(Number(seed[2]) === gossip?.containerPort && portOf(ppEnv.get("ROOMCAST_GOSSIP")) === gossip.containerPort,
      "the seed port, ROOMCAST_GOSSIP and the gossip port differ");
    assert(portOf(ppEnv.get("ROOMCAST_BIND")) === (side.ports || []).find((p) => p.name === "data")?.containerPort,
      "ROOMCAST_BIND is not the data port");
    const np = one(pp, "NetworkPolicy");
    const rules = np.spec.ingress || [];
    const open = [];
    for (const c of [...apps, side]) {
      for (const p of c.ports || []) {
        const rule = rules.find((r) => (r.ports || []).some((x) => x.port === p.containerPort && (x.protocol || "TCP") === (p.protocol || "TCP")));
        assert(rule, `${c.name} port ${p.containerPort}/${p.protocol || "TCP"} is in no ingress rule: the policy cuts it`);
        if (["data", "gossip"].includes(p.name)) assert(rule.from?.length, `mesh port ${p.containerPort} is open to everyone`);
        else open.push(p.containerPort);
      }
    }
    return { note: `open: ${open.join(", ")}; mesh ports from members only` };
  });

  await check("per-pod: images pinned by tag, the same image for the sidecar as the node agent", () => {
    const img = side.image;
    assert(/:[^/:@]+$/.test(img) && !img.endsWith(":latest"), `${img} is not pinned`);
    assert(img === sidecar.image, `per-pod ${img}, node agent ${sidecar.image}`);
  });
}

// --- the existing-secret variant ------------------------------------------------------

if (sets["existing-secret"]) {
  await check("existing-secret: the base without a key file: no Secret rendered, the same DaemonSet and settings", () => {
    const es = sets["existing-secret"];
    assert(!es.some((o) => o.kind === "Secret"), "a Secret is rendered: it would overwrite the one you manage");
    const d = one(es, "DaemonSet");
    const v = d.spec.template.spec.volumes.find((x) => x.secret);
    assert(v.secret.secretName === "roomcast-keys", `secretName ${v.secret.secretName}`);
    const norm = (o) => {
      const c = structuredClone(o);
      c.spec.template.spec.volumes.find((x) => x.secret).secret.secretName = "KEY";
      return JSON.stringify(c);
    };
    assert(norm(d) === norm(ds), "the DaemonSet differs from the base's (beyond the Secret's name)");
    const cm = one(es, "ConfigMap");
    assert(JSON.stringify(cm.data) === JSON.stringify(one(base, "ConfigMap").data),
      "its settings differ from deploy/kubernetes/kustomization.yaml's");
    const kinds = (objs) => objs.filter((o) => o.kind !== "Secret").map(id).sort().join(",");
    assert(kinds(es) === kinds(base), `objects differ: ${kinds(es)} vs ${kinds(base)}`);
  });
}

// --- the monitoring kit against what it monitors ------------------------------------------

if (sets.monitoring) {
  await check("PodMonitor: selects the node agents and the per-pod sidecars, on a port each declares, job=roomcast", () => {
    const pm = one(sets.monitoring, "PodMonitor");
    const ports = pm.spec.podMetricsEndpoints.map((e) => e.port);
    const targets = [["node agent", ds], ["per-pod", sets["per-pod"]?.find((o) => o.kind === "Deployment")]];
    const rule = one(sets.monitoring, "PrometheusRule");
    const jobs = new Set(rule.spec.groups.flatMap((g) => g.rules).flatMap((r) => [...r.expr.matchAll(/job="([^"]+)"/g)].map((m) => m[1])));
    for (const [what, w] of targets) {
      if (!w) continue;
      const t = w.spec.template;
      assert(selects(pm.spec.selector, t.metadata.labels), `the selector misses the ${what} pods`);
      const named = [...t.spec.containers, ...(t.spec.initContainers || [])].flatMap((c) => c.ports || []).map((p) => p.name);
      assert(ports.some((p) => named.includes(p)), `the ${what} pods have none of the ports ${ports.join(", ")}`);
      const job = t.metadata.labels[pm.spec.jobLabel];
      assert(job && [...jobs].every((j) => j === job), `job label from ${pm.spec.jobLabel} is ${job}; the rules use job=${[...jobs].join(",")}`);
      const a = ds.spec.template.metadata.annotations || {};
      assert(what !== "node agent" || Number(a["prometheus.io/port"]) === containerPort(sidecar, "http").containerPort, "scrape annotation and port disagree");
    }
    assert(pm.spec.namespaceSelector?.any === true, "the per-pod sidecars live in app namespaces: namespaceSelector.any");
    return { note: `ports ${ports.join(", ")}, job ${[...jobs].join(",")}` };
  });
}

// --- the proxy-mode variant: two proxies, the sidecars pointed at them ---------------

if (sets["proxy-mode"]) {
  const pm = sets["proxy-mode"];
  const deps = pm.filter((o) => o.kind === "Deployment" && o.metadata.labels?.["app.kubernetes.io/component"] === "proxy");
  const proxyC = (d) => d.spec.template.spec.containers.find((c) => c.name === "roomcast-proxy") || {};
  const envOf = (d) => effectiveEnv(proxyC(d), pm, podValues).env;
  const pmDs = one(pm, "DaemonSet");

  // The topology: two one-pod Deployments running `roomcastd proxy`, each
  // behind its own Service, the sidecars naming both frontends and binding
  // no data socket. Throws the first problem; returns a note.
  const topology = (set) => {
    const ds2 = set.filter((o) => o.kind === "Deployment" && o.metadata.labels?.["app.kubernetes.io/component"] === "proxy");
    const side2 = one(set, "DaemonSet").spec.template.spec.containers.find((c) => c.name === "roomcastd");
    const sEnv2 = effectiveEnv(side2, set, podValues).env;
    const env2 = (d) => effectiveEnv(proxyC(d), set, podValues).env;
    const svcOf = (d) => set.filter((o) => o.kind === "Service" && o.spec.selector &&
      Object.entries(o.spec.selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v));
    assert(ds2.length === 2, `${ds2.length} proxy Deployments (want 2)`);
    for (const d of ds2) {
      assert(d.spec.replicas === 1, `${id(d)}: replicas ${d.spec.replicas} (one pod: each proxy is its own endpoint)`);
      assert((proxyC(d).args || [])[0] === "proxy", `${id(d)}: does not run roomcastd proxy`);
      assert(svcOf(d).length === 1, `${id(d)}: selected by ${svcOf(d).length} Services (want its own one)`);
      for (const other of ds2.filter((x) => x !== d)) {
        assert(!selects(d.spec.selector, other.spec.template.metadata.labels), `${id(d)}'s selector also selects ${id(other)}'s pods`);
      }
    }
    const svcs = ds2.map((d) => svcOf(d)[0]);
    assert(svcs[0] !== svcs[1], "both proxies behind one Service");
    const proxies = (sEnv2.get("ROOMCAST_PROXIES") || "").split(",").filter(Boolean);
    assert(proxies.length === 2, `ROOMCAST_PROXIES ${sEnv2.get("ROOMCAST_PROXIES")} (want both proxies)`);
    ds2.forEach((d, i) => {
      const svc = svcs[i];
      const env = env2(d);
      const front = portOf(env.get("ROOMCAST_FRONTEND"));
      const back = env.get("ROOMCAST_BACKEND") ? portOf(env.get("ROOMCAST_BACKEND")) : front + 1;
      const c = proxyC(d);
      assert(containerPort(c, "frontend")?.containerPort === front, `${id(d)}: ROOMCAST_FRONTEND ${env.get("ROOMCAST_FRONTEND")} is not the frontend port`);
      assert(containerPort(c, "backend")?.containerPort === back, `${id(d)}: the backend port is not ${back}`);
      const sp = (name) => svc.spec.ports.find((p) => p.targetPort === name || p.targetPort === containerPort(c, name)?.containerPort);
      assert(sp("frontend") && sp("backend") && sp("backend").port === sp("frontend").port + 1,
        `${id(svc)}: the backend must be the frontend's port + 1 on the Service (sidecars assume it)`);
      const want = `tcp://${svc.metadata.name}:${sp("frontend").port}`;
      assert(proxies.some((p) => p === want || p.startsWith(`tcp://${svc.metadata.name}.${svc.metadata.namespace}.`)),
        `ROOMCAST_PROXIES does not name ${want}`);
    });
    assert((sEnv2.get("ROOMCAST_BIND") ?? "") === "", `ROOMCAST_BIND ${sEnv2.get("ROOMCAST_BIND")}: a bound sidecar would get links to every member too`);
    return `${ds2.map(id).join(", ")} behind ${svcs.map(id).join(", ")}; sidecars: ${proxies.join(", ")}`;
  };

  await check("proxy-mode: two one-pod proxies on their own Services; the sidecars name both and bind no data socket", () =>
    ({ note: topology(pm) }));

  await check("proxy-mode: the topology check catches two replicas, a shared Service, one proxy named, a bound sidecar (self-test)", () => {
    const broken = (mutate) => {
      const copy = structuredClone(pm);
      mutate(copy);
      try {
        topology(copy);
        return "";
      } catch (e) {
        return e.message;
      }
    };
    const depA = (c) => c.find((o) => o.kind === "Deployment" && o.metadata.name.endsWith("-a"));
    const side = (c) => one(c, "DaemonSet").spec.template.spec.containers.find((x) => x.name === "roomcastd");
    const cm = (c) => c.find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("roomcastd"));
    assert(/replicas 2/.test(broken((c) => { depA(c).spec.replicas = 2; })), "two replicas of one proxy were accepted");
    assert(/Services/.test(broken((c) => {
      for (const svc of c.filter((o) => o.kind === "Service" && o.metadata.name.startsWith("roomcast-proxy"))) {
        delete svc.spec.selector["app.kubernetes.io/instance"];
      }
    })), "one Service in front of both proxies was accepted");
    assert(/ROOMCAST_PROXIES/.test(broken((c) => { cm(c).data.ROOMCAST_PROXIES = "tcp://roomcast-proxy-a:7450"; })),
      "sidecars naming one proxy were accepted");
    assert(/ROOMCAST_BIND/.test(broken((c) => { side(c).env.find((e) => e.name === "ROOMCAST_BIND").value = "tcp://$(POD_IP):7440"; })),
      "a bound sidecar was accepted");
  });

  await check("proxy-mode: proxies probed (/healthz, /readyz), hardened, memory request = limit, scraped", () => {
    for (const d of deps) {
      const c = proxyC(d);
      const spec = d.spec.template.spec;
      const http = containerPort(c, "http");
      assert(http && portOf(envOf(d).get("ROOMCAST_HTTP")) === http.containerPort, `${id(d)}: ROOMCAST_HTTP is not on the http port`);
      assert(!/^(127\.|localhost:)/.test(envOf(d).get("ROOMCAST_HTTP")), `${id(d)}: HTTP on loopback: the kubelet cannot probe it`);
      for (const [probe, path] of [["livenessProbe", "/healthz"], ["readinessProbe", "/readyz"]]) {
        const g = c[probe]?.httpGet;
        assert(g?.path === path && (g.port === "http" || g.port === http.containerPort), `${id(d)}: ${probe} is not GET ${path} on the http port`);
      }
      checkContainerSecurity(c, spec.securityContext || {});
      assert(spec.securityContext?.seccompProfile?.type === "RuntimeDefault", `${id(d)}: no RuntimeDefault seccomp`);
      assert(spec.automountServiceAccountToken === false, `${id(d)}: a service account token is mounted`);
      memoryEqualsLimit([c]);
      const a = d.spec.template.metadata.annotations || {};
      assert(a["prometheus.io/scrape"] === "true" && Number(a["prometheus.io/port"]) === http.containerPort, `${id(d)}: scrape annotations`);
      const u = d.spec.strategy;
      assert(u?.type === "RollingUpdate" && u.rollingUpdate?.maxUnavailable === 0, `${id(d)}: a rollout may take the proxy down before its successor is ready`);
      const ready = Number(envOf(d).get("ROOMCAST_READY_PEERS") ?? 0);
      assert(ready === 0, `${id(d)}: ROOMCAST_READY_PEERS ${ready}: the Service only sends sidecars to a ready proxy, so it would never become ready`);
    }
  });

  await check("proxy-mode: a PodDisruptionBudget keeps one proxy through drains; only sidecars reach the proxy ports", () => {
    const pdb = one(pm, "PodDisruptionBudget");
    const covered = deps.filter((d) => selects(pdb.spec.selector, d.spec.template.metadata.labels));
    assert(covered.length === 2, `the PDB selects ${covered.length} of the 2 proxies`);
    const ok = pdb.spec.maxUnavailable === 1 || pdb.spec.minAvailable === 1;
    assert(ok, `maxUnavailable ${pdb.spec.maxUnavailable}, minAvailable ${pdb.spec.minAvailable}: want one proxy kept`);
    const np = one(pm, "NetworkPolicy", (o) => deps.some((d) => selects(o.spec.podSelector, d.spec.template.metadata.labels)));
    const sideLabels = pmDs.spec.template.metadata.labels;
    for (const name of ["frontend", "backend"]) {
      const port = containerPort(proxyC(deps[0]), name).containerPort;
      const rule = np.spec.ingress.find((r) => (r.ports || []).some((x) => x.port === port));
      assert(rule?.from?.length, `port ${port} (${name}) is open to everyone`);
      assert(rule.from.some((f) => selects(f.podSelector, sideLabels)), `port ${port} does not admit the sidecars`);
    }
    return { note: `${id(pdb)} maxUnavailable ${pdb.spec.maxUnavailable}` };
  });

  await check("proxy-mode: the sidecars' other settings are the base's", () => {
    const base = one(sets.base, "ConfigMap").data;
    const cm = pm.find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("roomcastd")).data;
    const own = ["ROOMCAST_PROXIES", "ROOMCAST_CURVE"];
    const rest = Object.fromEntries(Object.entries(cm).filter(([k]) => !own.includes(k)));
    const baseRest = Object.fromEntries(Object.entries(base).filter(([k]) => !own.includes(k)));
    assert(JSON.stringify(rest) === JSON.stringify(baseRest), "its ConfigMap differs from deploy/kubernetes/kustomization.yaml's (beyond ROOMCAST_PROXIES and ROOMCAST_CURVE)");
    //  keys learnt from gossip do not reach a proxy: with the base's "on"
    //  and no static certificates, every sidecar would refuse to start
    assert(cm.ROOMCAST_CURVE === "off" || cm.ROOMCAST_CURVE_CERT, `ROOMCAST_CURVE=${cm.ROOMCAST_CURVE} without ROOMCAST_CURVE_CERT: roomcastd refuses to start (--curve=on needs static certificates with --proxy)`);
  });

  await check("proxy-mode: ROOMCAST_* of the proxies are options `roomcastd proxy` knows", () => {
    if (!proxyHelpFile) return { skip: "no roomcastd proxy --help (build it first)" };
    const known = new Set([...readFileSync(proxyHelpFile, "utf8").matchAll(/env (ROOMCAST_[A-Z_]+)/g)].map((m) => m[1]));
    assert(known.size > 5, "could not read the option list from roomcastd proxy --help");
    const names = [...new Set(deps.flatMap((d) => [...envOf(d).keys()]))].filter((k) => k.startsWith("ROOMCAST_"));
    const unknown = names.filter((k) => !known.has(k));
    assert(!unknown.length, `unknown: ${unknown.join(", ")}`);
    return { note: `${names.length} settings` };
  });

  if (emitProxyEnv && deps.length) {
    const { env } = effectiveEnv(proxyC(deps[0]), pm, { "status.podIP": "127.0.0.1" });
    writeFileSync(emitProxyEnv, JSON.stringify({
      env: [...env.entries()].filter(([k]) => k.startsWith("ROOMCAST_")),
      graceSeconds: deps[0].spec.template.spec.terminationGracePeriodSeconds ?? 30,
    }, null, 2));
  }
}

if (emitEnv) {
  const { env } = effectiveEnv(sidecar, base, { "status.podIP": "127.0.0.1", "spec.nodeName": "smoke-node" });
  const keyVol = pod.volumes.find((v) => v.secret);
  writeFileSync(emitEnv, JSON.stringify({
    env: [...env.entries()].filter(([k]) => k.startsWith("ROOMCAST_")),
    keyMode: keyVol?.secret.defaultMode ?? 0o644,
    graceSeconds: pod.terminationGracePeriodSeconds ?? 30,
  }, null, 2));
}
finish();
