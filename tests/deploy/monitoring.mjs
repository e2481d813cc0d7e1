// Checks of the monitoring kit (tests/deploy/check.sh).
//
//   node monitoring.mjs DASHBOARD.json MONITORING.yaml RULES_TEST.yaml [METRICS.txt]
//
// DASHBOARD.json: deploy/kubernetes/monitoring/dashboards/roomcast.json;
// MONITORING.yaml: `kubectl kustomize deploy/kubernetes/monitoring`;
// METRICS.txt: the /metrics body of a real, meshed roomcastd (ctl-json.mjs
// writes it). Checks that the dashboard parses and is well formed, that
// every roomcast_* and process_* series the dashboard and the rules name is
// one roomcastd exports, with label values it exports, that every alert has
// a promtool test, a severity, a summary and a description.
// Prints "PASS name" / "FAIL name: why" / "SKIP name: why" lines.
import { readFileSync, existsSync } from "node:fs";
import { parseAllDocuments, parse } from "yaml";
import { check, assert, finish } from "./util.mjs";

const [dashFile, monFile, testFile, metricsFile] = process.argv.slice(2);
if (!testFile) {
  console.error("usage: monitoring.mjs DASHBOARD.json MONITORING.yaml RULES_TEST.yaml [METRICS.txt]");
  process.exit(2);
}

const dashText = readFileSync(dashFile, "utf8");
let dash = null;
const objs = parseAllDocuments(readFileSync(monFile, "utf8")).map((d) => d.toJS()).filter(Boolean);
const rule = objs.find((o) => o.kind === "PrometheusRule");
const rules = (rule?.spec?.groups || []).flatMap((g) => g.rules || []);

await check("dashboard: parses as JSON", () => {
  dash = JSON.parse(dashText);
  return { note: `"${dash.title}", ${dash.panels?.length} panels` };
});

// Every panel with its queries, rows' nested panels included.
const panels = () => (dash?.panels || []).flatMap((p) => [p, ...(p.panels || [])]);
const exprsOf = (p) => (p.targets || []).map((t) => t.expr).filter((e) => typeof e === "string");

await check("dashboard: uid, title, unique panel ids, every panel queries, on a 24-column grid", () => {
  assert(dash, "not parsed");
  assert(dash.uid && dash.title, "no uid or title");
  const ids = panels().map((p) => p.id);
  assert(new Set(ids).size === ids.length, `panel ids repeat: ${ids.join(",")}`);
  for (const p of panels()) {
    const g = p.gridPos || {};
    assert([g.x, g.y, g.w, g.h].every(Number.isInteger) && g.x + g.w <= 24, `panel "${p.title}": bad gridPos`);
    if (p.type === "row") continue;
    assert(exprsOf(p).length > 0, `panel "${p.title}" has no query`);
    assert(p.datasource?.uid === "${datasource}", `panel "${p.title}" does not use the $datasource variable`);
  }
  const vars = (dash.templating?.list || []).map((v) => v.name);
  assert(vars.includes("datasource"), "no datasource variable: the dashboard would be tied to one Prometheus");
  return { note: `${panels().filter((p) => p.type !== "row").length} panels, variables ${vars.join(", ")}` };
});

// --- the names against a real /metrics ---------------------------------------------

// name -> Map(label -> Set(values)), from the exposition text
function exported(text) {
  const out = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? /.exec(line);
    if (!m) continue;
    if (!out.has(m[1])) out.set(m[1], new Map());
    for (const l of (m[3] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      const labels = out.get(m[1]);
      if (!labels.has(l[1])) labels.set(l[1], new Set());
      labels.get(l[1]).add(l[2]);
    }
  }
  return out;
}
// Problems of one PromQL expression: our series (roomcast_*, process_*)
// that are not exported, or label values (label="v") they never have.
// Labels Prometheus adds (job, namespace, pod, instance, le) are not ours.
const added = new Set(["job", "namespace", "pod", "instance", "container", "le"]);
function problems(expr, have) {
  const out = [];
  for (const m of expr.matchAll(/\b((?:roomcast|process)_[a-zA-Z0-9_]*)\b(\{([^}]*)\})?/g)) {
    const name = m[1];
    if (!have.has(name)) {
      out.push(`${name} is not exported`);
      continue;
    }
    for (const l of (m[3] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"/g)) {
      if (added.has(l[1])) continue;
      const values = have.get(name).get(l[1]);
      if (!values) out.push(`${name} has no label ${l[1]}`);
      else if (!values.has(l[2])) out.push(`${name}{${l[1]}="${l[2]}"} never occurs (${[...values].join(", ")})`);
    }
  }
  return out;
}

const metrics = metricsFile && existsSync(metricsFile) ? readFileSync(metricsFile, "utf8") : null;
const have = metrics ? exported(metrics) : null;

await check("dashboard: every roomcast_*/process_* series and label value is one roomcastd exports", () => {
  if (!have) return { skip: "no /metrics scraped from a real roomcastd (build it first)" };
  assert(dash, "not parsed");
  const bad = [];
  let n = 0;
  for (const p of panels()) {
    for (const e of exprsOf(p)) {
      n++;
      for (const x of problems(e, have)) bad.push(`"${p.title}": ${x}`);
    }
  }
  assert(!bad.length, bad.join("; "));
  return { note: `${n} queries against ${have.size} exported series names` };
});

await check("rules: every roomcast_*/process_* series and label value is one roomcastd exports", () => {
  if (!have) return { skip: "no /metrics scraped from a real roomcastd (build it first)" };
  assert(rules.length, "no rules in the PrometheusRule");
  const bad = rules.flatMap((r) => problems(r.expr, have).map((x) => `${r.alert || r.record}: ${x}`));
  assert(!bad.length, bad.join("; "));
  return { note: `${rules.length} rules` };
});

await check("the name check catches a misspelt series and a label value never exported (self-test)", () => {
  if (!have) return { skip: "no /metrics scraped" };
  const p1 = problems('rate(roomcast_publish_total{job="roomcast"}[5m])', have);
  const p2 = problems('rate(roomcast_gossip_packets_total{result="undecrypted"}[5m])', have);
  const p3 = problems('process_resident_memory_bytes{pod="x"}', have);
  assert(p1.length === 1 && p2.length === 1 && p3.length === 0, `${p1} | ${p2} | ${p3}`);
});

await check("the scrape has what the kit relies on: process_*, build_info, gossip results, members, per-peer series, queues, the memory cap", () => {
  if (!have) return { skip: "no /metrics scraped" };
  const want = ["process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
    "process_start_time_seconds", "roomcast_build_info", "roomcast_gossip_packets_total", "roomcast_mesh_peers",
    "roomcast_members", "roomcast_peer_up", "roomcast_peer_last_heard_seconds", "roomcast_app_queue_bytes",
    "roomcast_memory_limit_bytes", "roomcast_memory_pressure", "roomcast_memory_shed_total"];
  const missing = want.filter((n) => !have.has(n));
  assert(!missing.length, `missing: ${missing.join(", ")}`);
});

// --- rules and the ConfigMap -------------------------------------------------------------

await check("rules: each alert has a severity, a summary, a description and a promtool test", () => {
  const tests = parse(readFileSync(testFile, "utf8"));
  const tested = new Set((tests.tests || []).flatMap((t) => (t.alert_rule_test || []).map((a) => a.alertname)));
  const firing = new Set((tests.tests || []).flatMap((t) => (t.alert_rule_test || [])
    .filter((a) => (a.exp_alerts || []).length).map((a) => a.alertname)));
  const bad = [];
  for (const r of rules.filter((x) => x.alert)) {
    if (!["critical", "warning", "info"].includes(r.labels?.severity)) bad.push(`${r.alert}: severity ${r.labels?.severity}`);
    if (!r.annotations?.summary || !r.annotations?.description) bad.push(`${r.alert}: no summary or description`);
    if (!firing.has(r.alert)) bad.push(`${r.alert}: no test where it fires`);
  }
  const unknown = [...tested].filter((a) => !rules.some((r) => r.alert === a));
  if (unknown.length) bad.push(`tests of alerts that do not exist: ${unknown.join(", ")}`);
  assert(!bad.length, bad.join("; "));
  return { note: rules.filter((x) => x.alert).map((r) => r.alert).join(", ") };
});

await check("rules: a wrong-key rollout and peers down are alerted on", () => {
  const gossip = rules.find((r) => /roomcast_gossip_packets_total\{[^}]*result="undecryptable"/.test(r.expr));
  const down = rules.find((r) => /roomcast_mesh_peers\{[^}]*state="down"/.test(r.expr));
  assert(gossip, "no rule on undecryptable gossip packets (a wrong cluster key)");
  assert(down, "no rule on peers down");
  return { note: `${gossip.alert}, ${down.alert}` };
});

await check("ConfigMap: the dashboard as Grafana's sidecar loads it (label grafana_dashboard)", () => {
  const cm = objs.find((o) => o.kind === "ConfigMap" && o.metadata?.labels?.grafana_dashboard);
  assert(cm, "no ConfigMap labelled grafana_dashboard");
  const key = Object.keys(cm.data || {}).find((k) => k.endsWith(".json"));
  assert(key && cm.data[key] === dashText, "the ConfigMap does not hold dashboards/roomcast.json as it is");
  return { note: `${cm.metadata.name}: ${key}` };
});

finish();
