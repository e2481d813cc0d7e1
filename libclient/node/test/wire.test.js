//  The Node wire table against the C one: libclient/wire.h is parsed (its
//  enums and #defines) and every number lib/wire.js holds must be the
//  same, and every frame type and error code of the C side must be known
//  here. Fails when one side changes without the other.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as wire from "../lib/wire.js";

const header = readFileSync(join(dirname(fileURLToPath(import.meta.url)),
                                 "../../wire.h"), "utf8")
  .replace(/\/\/.*$/gm, "").replace(/\/\*[\s\S]*?\*\//g, "");

//  NAME -> value of every #define whose value is an integer expression
function defines() {
  const out = {};
  for (const [, name, expr] of header.matchAll(/^#define\s+(WIRE_\w+)\s+(.+)$/gm)) {
    if (/^[\d\s()*+x0-9a-fA-F-]+$/.test(expr.trim())) {
      out[name] = Function(`"use strict"; return (${expr});`)();
    }
  }
  return out;
}

//  NAME -> value of the members of the enum typedef'd as typeName
function enumOf(typeName) {
  const m = header.match(new RegExp(`typedef enum \\{([^}]*)\\}\\s*${typeName};`));
  assert.ok(m, `enum ${typeName} in wire.h`);
  const out = {};
  let next = 0;
  for (const item of m[1].split(",").map((s) => s.trim()).filter(Boolean)) {
    const [, name, value] = item.match(/^(\w+)(?:\s*=\s*(\w+))?$/);
    next = value === undefined ? next : Number(value);
    out[name] = next++;
  }
  return out;
}

test("frame types: the same names and numbers as wire_type_t", () => {
  const c = enumOf("wire_type_t");
  delete c.WIRE_TYPE_MAX;
  const fromC = Object.fromEntries(Object.entries(c).map(([k, v]) => [k.slice(5), v]));
  assert.deepEqual({ ...wire.T }, fromC);
});

test("error codes: the same names and numbers as wire_err_t", () => {
  const c = enumOf("wire_err_t");
  const fromC = Object.fromEntries(Object.entries(c).map(([k, v]) => [k.slice(7), v]));
  assert.deepEqual({ ...wire.E }, fromC);
  assert.equal(wire.E_BADTYPE, c.WIRE_E_BADTYPE);
});

test("flags and constants: the same values as wire.h's #defines", () => {
  const d = defines();
  const pairs = {
    VERSION: "WIRE_VERSION", PREFIX: "WIRE_PREFIX", ID_SIZE: "WIRE_ID_SIZE",
    MAX_NAME: "WIRE_MAX_NAME", F_BINARY: "WIRE_F_BINARY", F_ECHO: "WIRE_F_ECHO",
    HF_GAPS: "WIRE_HF_GAPS", HF_PRESENCE: "WIRE_HF_PRESENCE",
    HF_MEMBERS: "WIRE_HF_MEMBERS",
  };
  for (const [js, c] of Object.entries(pairs)) {
    assert.equal(typeof d[c], "number", `${c} in wire.h`);
    assert.equal(wire[js], d[c], `${js} (wire.js) = ${c} (wire.h)`);
  }
  assert.equal(wire.DEFAULT_MAX_PAYLOAD + wire.FRAME_SLACK, d.WIRE_MAX_FRAME_DEFAULT);
  //  every flag of wire.h has its twin here
  const flags = Object.keys(d).filter((k) => /^WIRE_H?F_/.test(k));
  assert.deepEqual(flags.map((k) => k.slice(5)).sort(),
                   Object.keys(wire).filter((k) => /^H?F_/.test(k)).sort());
});
