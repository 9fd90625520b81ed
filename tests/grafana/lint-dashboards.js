#!/usr/bin/env node
// Lints every dashboard in dashboards/ against a running fleetscope.
//
//   node tests/grafana/lint-dashboards.js http://127.0.0.1:9470/grafana [DASHBOARD_DIR]
//
// For each *.json file: it parses; panels have unique ids and a gridPos; every
// datasource reference is the simpod-json-datasource variable ($DS / ${DS})
// or Grafana's own; every panel target names a target that the server's
// /metrics offers, with payload keys that target declares and `select`
// values among its options (custom variables feeding them included); heatmap
// panels over heatmap-rows targets have `calculate: false`; every `$var`,
// `${var}`, `${var:fmt}` and `[[var]]` used anywhere is a defined template
// variable or a Grafana built-in; every query variable answers /variable with
// at least one value. Exits 1 listing every problem, 2 on usage errors.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const args = process.argv.slice(2);
const base = (args[0] || process.env.FLEETSCOPE_GRAFANA_URL || '').replace(/\/+$/, '');
const dir = path.resolve(args[1] || path.join(__dirname, '..', '..', 'dashboards'));
if (!/^https?:\/\//.test(base)) {
  console.error('usage: node tests/grafana/lint-dashboards.js http://HOST:PORT/grafana [DASHBOARD_DIR]');
  process.exit(2);
}

const PLUGIN = 'simpod-json-datasource';
const HEATMAP_TARGETS = new Set(['pods_heatmap', 'nodes_heatmap']);
// Grafana's global variables; every name starting with "__" is reserved for them.
const BUILTINS = new Set(['timeFilter', 'interval', 'interval_ms']);

async function post(p, body) {
  const res = await fetch(`${base}${p}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST ${p} answered ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

/** Every string in a JSON value, with its JSON path. */
function* strings(value, where) {
  if (typeof value === 'string') yield [where, value];
  else if (Array.isArray(value)) for (let i = 0; i < value.length; i++) yield* strings(value[i], `${where}[${i}]`);
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) yield* strings(v, `${where}.${k}`);
}

/** Variable names referenced in a string: $var, ${var}, ${var:fmt}, ${var.field}, [[var]]. */
function varRefs(s) {
  const out = [];
  const re = /\$\{([A-Za-z0-9_]+)(?:[.:][^}]*)?\}|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]|\$([A-Za-z_][A-Za-z0-9_]*)/g;
  let m;
  while ((m = re.exec(s))) out.push(m[1] || m[2] || m[3]);
  return out;
}

/** Panels, including those inside collapsed rows. */
function allPanels(dash) {
  const out = [];
  for (const p of dash.panels || []) {
    out.push(p);
    for (const inner of p.panels || []) out.push(inner);
  }
  return out;
}

function isDsRef(ds, defined) {
  if (ds === undefined || ds === null) return true; // inherits the panel's / dashboard's
  const uid = typeof ds === 'string' ? ds : ds.uid;
  const type = typeof ds === 'string' ? PLUGIN : ds.type;
  if (type === 'grafana' || type === '__expr__' || type === 'datasource') return true;
  if (type !== PLUGIN) return false;
  const m = /^\$\{?([A-Za-z0-9_]+)\}?$/.exec(uid || '');
  return Boolean(m && defined.get(m[1]) && defined.get(m[1]).type === 'datasource' && defined.get(m[1]).query === PLUGIN);
}

/** A payload as the plugin would send it: JSON text (code mode) or an object. */
function payloadObject(payload, problems, where) {
  if (payload === undefined || payload === null || payload === '') return {};
  if (typeof payload === 'object' && !Array.isArray(payload)) return payload;
  if (typeof payload === 'string') {
    try {
      const v = JSON.parse(payload);
      if (v && typeof v === 'object' && !Array.isArray(v)) return v;
    } catch {
      // fall through
    }
  }
  problems.push(`${where}: payload is not a JSON object: ${JSON.stringify(payload)}`);
  return {};
}

function lint(file, dash, metrics, problems) {
  const where = path.basename(file);
  const vars = new Map();
  for (const v of (dash.templating && dash.templating.list) || []) {
    if (!v.name) problems.push(`${where}: a template variable has no name`);
    else if (vars.has(v.name)) problems.push(`${where}: template variable $${v.name} defined twice`);
    else vars.set(v.name, v);
  }
  for (const input of dash.__inputs || []) vars.set(input.name, { type: input.type, query: input.pluginId });
  const defined = (name) => name.startsWith('__') || BUILTINS.has(name) || vars.has(name);

  for (const [p, s] of strings(dash, where)) {
    for (const name of varRefs(s)) if (!defined(name)) problems.push(`${p}: $${name} is not a defined variable`);
  }
  const dsVars = [...vars.values()].filter((v) => v.type === 'datasource' && v.query === PLUGIN);
  if (dsVars.length === 0) problems.push(`${where}: no datasource variable of type ${PLUGIN}`);

  const offered = new Map(metrics.map((m) => [m.value, m]));
  const ids = new Set();
  const panels = allPanels(dash);
  if (panels.length === 0) problems.push(`${where}: no panels`);
  for (const panel of panels) {
    const pw = `${where}: panel ${panel.id} "${panel.title}"`;
    if (panel.type === 'row') continue;
    if (typeof panel.id !== 'number' || ids.has(panel.id)) problems.push(`${pw}: missing or repeated id`);
    ids.add(panel.id);
    if (!panel.gridPos || !['h', 'w', 'x', 'y'].every((k) => Number.isInteger(panel.gridPos[k]))) problems.push(`${pw}: no gridPos`);
    if (!isDsRef(panel.datasource, vars)) problems.push(`${pw}: datasource ${JSON.stringify(panel.datasource)} is not the ${PLUGIN} variable`);
    const targets = panel.targets || [];
    if (targets.length === 0) problems.push(`${pw}: no targets`);
    for (const t of targets) {
      const tw = `${pw} refId ${t.refId}`;
      if (!isDsRef(t.datasource, vars)) problems.push(`${tw}: datasource ${JSON.stringify(t.datasource)} is not the ${PLUGIN} variable`);
      const metric = offered.get(t.target);
      if (!metric) {
        problems.push(`${tw}: target ${JSON.stringify(t.target)} is not offered by /metrics (${[...offered.keys()].join(', ')})`);
        continue;
      }
      const declared = new Map((metric.payloads || []).map((p) => [p.name, p]));
      const payload = payloadObject(t.payload, problems, tw);
      for (const [key, value] of Object.entries(payload)) {
        const decl = declared.get(key);
        if (!decl) {
          problems.push(`${tw}: payload key ${JSON.stringify(key)} is not a payload of ${t.target} (${[...declared.keys()].join(', ')})`);
          continue;
        }
        if (decl.type !== 'select' || !Array.isArray(decl.options)) continue;
        const allowed = new Set(decl.options.map((o) => o.value));
        const m = typeof value === 'string' ? /^\$\{?([A-Za-z0-9_]+)\}?$/.exec(value) : null;
        const candidates = m
          ? ((vars.get(m[1]) && vars.get(m[1]).type === 'custom' && vars.get(m[1]).options) || []).map((o) => o.value)
          : [value];
        for (const c of candidates) {
          if (!allowed.has(c)) problems.push(`${tw}: ${key}=${JSON.stringify(c)} is not one of ${[...allowed].join(', ')}`);
        }
      }
      if (panel.type === 'heatmap' && HEATMAP_TARGETS.has(t.target) && !(panel.options && panel.options.calculate === false)) {
        problems.push(`${pw}: heatmap over ${t.target} (heatmap-rows frames) needs options.calculate = false`);
      }
    }
  }
  return [...vars.values()].filter((v) => v.type === 'query');
}

/** The query text of a variable as the plugin would send it, with $vars as All (".*"). */
function variablePayload(v) {
  const q = typeof v.query === 'string' ? { query: v.query, format: 'string' } : v.query || {};
  const text = String(q.query || '').replace(/\$\{?([A-Za-z0-9_]+)(?::[^}]*)?\}?/g, '.*');
  return q.format === 'json' ? JSON.parse(text) : { target: text };
}

async function main() {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  const problems = [];
  if (files.length === 0) problems.push(`${dir}: no dashboards`);
  const metrics = await post('/metrics', { metric: '', payload: {} });
  if (!Array.isArray(metrics)) throw new Error('/metrics did not answer an array');
  for (const f of files) {
    const file = path.join(dir, f);
    let dash;
    try {
      dash = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      problems.push(`${f}: not valid JSON: ${e.message}`);
      continue;
    }
    const before = problems.length;
    const queryVars = lint(file, dash, metrics, problems);
    for (const v of queryVars) {
      if (!v.datasource || !isDsRef(v.datasource, new Map((dash.templating.list || []).map((x) => [x.name, x])))) {
        problems.push(`${f}: variable $${v.name} does not use the ${PLUGIN} variable`);
      }
      try {
        const answer = await post('/variable', { payload: variablePayload(v), range: { from: new Date(Date.now() - 6 * 3600e3).toISOString(), to: new Date().toISOString() } });
        if (!Array.isArray(answer) || answer.length === 0) problems.push(`${f}: variable $${v.name} (${JSON.stringify(v.query)}) answers no values`);
      } catch (e) {
        problems.push(`${f}: variable $${v.name}: ${e.message}`);
      }
    }
    console.log(`${problems.length === before ? 'ok  ' : 'FAIL'} ${f}: ${allPanels(dash).length} panels, ${(dash.templating && dash.templating.list.length) || 0} variables`);
  }
  if (problems.length) {
    console.error(`\n${problems.length} problem(s) in ${dir}:`);
    for (const p of problems) console.error(`  - ${p}`);
    process.exit(1);
  }
  console.log(`${files.length} dashboard(s) lint clean against ${base}`);
}

main().catch((e) => {
  console.error(`lint-dashboards.js: ${e.message}`);
  process.exit(1);
});
