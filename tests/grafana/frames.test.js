#!/usr/bin/env node
// Grafana's own frame parser against a running fleetscope.
//
//   node tests/grafana/frames.test.js http://127.0.0.1:9470/grafana
//
// Posts /query bodies shaped the way Grafana 10/11 (simpod-json-datasource
// 0.6.x) sends them, once with each target's payload as an object (builder
// mode) and once as JSON text (code mode), runs every item of each answer
// through `toDataFrame` from @grafana/data 13 (the function the plugin itself
// calls on the answer), and checks what the panels rely on: a `time` field of
// epoch-millisecond numbers, `number` value fields of the same length, and
// `meta.type = "heatmap-rows"` on heatmaps. It also reads /variable the way
// the plugin does (toDataFrame + __text/__value) and checks that a bad
// request is a 4xx with a JSON body. Uses node's built-in test runner: exits
// non-zero with the failing assertion when anything is off.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');

let grafanaData;
try {
  grafanaData = require('@grafana/data');
} catch (e) {
  console.error(
    `frames.test.js: cannot load @grafana/data (${e.code || e.message}).\n` +
      'Install the test dependencies first: scripts/test-deps.sh (runs `npm ci --prefix tests/grafana`).'
  );
  process.exit(2);
}
const { toDataFrame, FieldType, getFieldDisplayName, escapeRegex } = grafanaData;

/**
 * A variable's value in Grafana's `regex` format, which the plugin uses for
 * builder-mode payloads and string variable queries: each value through
 * @grafana/data's own `escapeRegex`, several joined as `(a|b)` (the format
 * registry's rule for multi-value variables).
 */
function regexFormat(values) {
  const escaped = values.map((v) => escapeRegex(String(v)));
  return escaped.length === 1 ? escaped[0] : `(${escaped.join('|')})`;
}

const base = (process.argv[2] || process.env.FLEETSCOPE_GRAFANA_URL || '').replace(/\/+$/, '');
if (!/^https?:\/\//.test(base)) {
  console.error('usage: node tests/grafana/frames.test.js http://HOST:PORT/grafana');
  process.exit(2);
}

const DATASOURCE = { type: 'simpod-json-datasource', uid: 'fleetscope' };
const HOUR_MS = 3600 * 1000;
// One fixed range end for the whole run, so requests compared with each other
// never straddle a bucket boundary.
const NOW = Date.now();
let requestSeq = 0;

async function post(path, body) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/plain, */*' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30000),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, contentType: res.headers.get('content-type') || '', text, json };
}

/** A /query body as Grafana 10/11 posts it through the simpod plugin. */
function grafanaQuery(targets, { filters = [], from = NOW - HOUR_MS, to = NOW, maxDataPoints = 300 } = {}) {
  const intervalMs = Math.max(1000, Math.ceil((to - from) / maxDataPoints / 1000) * 1000);
  const interval = intervalMs % 60000 === 0 ? `${intervalMs / 60000}m` : `${intervalMs / 1000}s`;
  const range = {
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    raw: { from: 'now-1h', to: 'now' },
  };
  requestSeq += 1;
  return {
    app: 'dashboard',
    requestId: `SQR${100 + requestSeq}`,
    timezone: 'browser',
    panelId: 2,
    panelName: 'fleetscope contract test',
    panelPluginId: 'heatmap',
    dashboardUID: 'fleetscope-overview',
    range,
    timeInfo: '',
    interval,
    intervalMs,
    targets: targets.map((t, i) => ({
      datasource: DATASOURCE,
      refId: t.refId || String.fromCharCode(65 + i),
      target: t.target,
      payload: t.payload,
      editorMode: typeof t.payload === 'string' ? 'code' : 'builder',
      hide: false,
    })),
    maxDataPoints,
    liveStreaming: false,
    scopedVars: {
      __interval: { text: interval, value: interval },
      __interval_ms: { text: String(intervalMs), value: intervalMs },
    },
    startTime: Date.now(),
    rangeRaw: range.raw,
    adhocFilters: filters,
    filters,
  };
}

async function variable(payload) {
  const now = Date.now();
  const res = await post('/variable', {
    payload,
    range: { from: new Date(now - HOUR_MS).toISOString(), to: new Date(now).toISOString(), raw: { from: 'now-1h', to: 'now' } },
  });
  assert.equal(res.status, 200, `/variable ${JSON.stringify(payload)} answered ${res.status}: ${res.text}`);
  assert.ok(Array.isArray(res.json), `/variable must answer a JSON array, got ${res.text.slice(0, 200)}`);
  // What the plugin does with the answer (response_parser.ts).
  const frame = toDataFrame(res.json);
  const text = frame.fields.find((f) => f.name === '__text');
  const value = frame.fields.find((f) => f.name === '__value');
  if (res.json.length > 0) {
    assert.ok(text && value, `/variable rows need __text and __value, got fields ${frame.fields.map((f) => f.name)}`);
    return value.values.map(String);
  }
  return [];
}

/** Checks one answer item the way a panel would see it; returns the frame. */
function checkFrame(item, { refId, kind, from, to, label }) {
  const where = `${label}: frame ${JSON.stringify(item && item.name)}`;
  assert.ok(item && typeof item === 'object' && !Array.isArray(item), `${where}: item is not an object`);
  assert.ok(Array.isArray(item.fields), `${where}: item has no "fields" array, so toDataFrame would read it as a legacy series`);
  const frame = toDataFrame(item);
  assert.equal(frame.refId, refId, `${where}: refId`);
  assert.ok(frame.fields.length >= 1, `${where}: no fields`);
  const time = frame.fields[0];
  assert.equal(time.name, 'time', `${where}: the first field must be "time" (toDataFrame took the legacy path?)`);
  assert.equal(time.type, FieldType.time, `${where}: time field type is ${time.type}`);
  assert.ok(frame.length > 0, `${where}: the frame has no rows`);
  const step = time.values.length > 1 ? time.values[1] - time.values[0] : 0;
  time.values.forEach((t, i) => {
    assert.ok(Number.isInteger(t), `${where}: time[${i}] = ${JSON.stringify(t)} is not integer epoch ms`);
    // Epoch milliseconds, not seconds: within a step of the requested range.
    assert.ok(t >= from - Math.max(step, 3600e3) && t <= to + Math.max(step, 60e3), `${where}: time[${i}] = ${t} is outside the range ${from}..${to}`);
    if (i > 0) assert.ok(t > time.values[i - 1], `${where}: time is not strictly increasing at ${i}`);
  });
  const valueFields = frame.fields.slice(1);
  for (const f of valueFields) {
    assert.equal(f.type, FieldType.number, `${where}: field ${f.name} has type ${f.type}`);
    assert.equal(f.values.length, frame.length, `${where}: field ${f.name} has ${f.values.length} values, the frame ${frame.length} rows`);
    for (const v of f.values) {
      assert.ok(v === null || (typeof v === 'number' && Number.isFinite(v)), `${where}: field ${f.name} holds ${JSON.stringify(v)}`);
    }
    assert.ok(getFieldDisplayName(f, frame).length > 0, `${where}: field ${f.name} has an empty display name`);
  }
  assert.equal(time.values.length, frame.length, `${where}: time has ${time.values.length} values, the frame ${frame.length} rows`);
  if (kind === 'heatmap') {
    assert.equal(frame.meta && frame.meta.type, 'heatmap-rows', `${where}: meta.type`);
    assert.ok(valueFields.length >= 1, `${where}: a heatmap with no rows`);
    for (const f of valueFields) assert.ok(f.labels && Object.keys(f.labels).length > 0, `${where}: row ${f.name} has no labels`);
  }
  if (kind === 'timeseries') {
    assert.equal(valueFields.length, 1, `${where}: a time series frame has exactly one value field`);
  }
  return frame;
}

async function runQuery(label, targets, opts = {}) {
  const body = grafanaQuery(targets, opts);
  const from = Date.parse(body.range.from);
  const to = Date.parse(body.range.to);
  const res = await post('/query', body);
  assert.equal(res.status, 200, `${label}: /query answered ${res.status}: ${res.text.slice(0, 500)}\nrequest: ${JSON.stringify(body)}`);
  assert.match(res.contentType, /application\/json/, `${label}: content-type`);
  assert.ok(Array.isArray(res.json), `${label}: /query must answer a JSON array`);
  const frames = res.json.map((item) => {
    const t = body.targets.find((x) => x.refId === item.refId);
    assert.ok(t, `${label}: answer item with unknown refId ${JSON.stringify(item.refId)}`);
    return checkFrame(item, { refId: t.refId, kind: kindOf(t.target), from, to, label });
  });
  return { frames, raw: res.json };
}

/**
 * Deep equality with numbers compared to 1e-9 (relative): the server sums in
 * DuckDB, whose parallel aggregation may add in a different order per request.
 */
function assertSameAnswer(actual, expected, message, where = '$') {
  if (typeof expected === 'number' && typeof actual === 'number') {
    const scale = Math.max(1, Math.abs(expected), Math.abs(actual));
    assert.ok(Math.abs(actual - expected) <= 1e-9 * scale, `${message}: ${where} is ${actual}, expected ${expected}`);
    return;
  }
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual) && actual.length === expected.length, `${message}: ${where} differs in length or type`);
    expected.forEach((e, i) => assertSameAnswer(actual[i], e, message, `${where}[${i}]`));
    return;
  }
  if (expected && typeof expected === 'object') {
    assert.ok(actual && typeof actual === 'object' && !Array.isArray(actual), `${message}: ${where} is not an object`);
    assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), `${message}: ${where} keys`);
    for (const k of Object.keys(expected)) assertSameAnswer(actual[k], expected[k], message, `${where}.${k}`);
    return;
  }
  assert.equal(actual, expected, `${message}: ${where}`);
}

function kindOf(target) {
  return target.endsWith('_heatmap') ? 'heatmap' : target === 'timeseries' ? 'timeseries' : 'status';
}

let clusters = [];
let namespaces = [];

test('datasource health and metric list', async () => {
  const res = await fetch(`${base}/`);
  assert.equal(res.status, 200, 'GET / (Test connection)');
  const metrics = await post('/metrics', { metric: '', payload: {} });
  assert.equal(metrics.status, 200);
  const offered = metrics.json.map((m) => m.value);
  for (const t of ['pods_heatmap', 'nodes_heatmap', 'cluster_status', 'timeseries']) {
    assert.ok(offered.includes(t), `/metrics does not offer ${t}: ${offered}`);
  }
});

test('variables parse the way the plugin parses them', async () => {
  clusters = await variable({ target: 'cluster' });
  assert.ok(clusters.length >= 1, 'no cluster values: is the data dir seeded?');
  namespaces = await variable({ target: 'namespace' });
  assert.ok(namespaces.length >= 1, 'no namespace values');
  // A narrowed query in the form the dashboard uses (JSON text as the query,
  // variables interpolated with Grafana's regex format).
  const narrowed = await variable({ target: JSON.stringify({ target: 'namespace', cluster: `(${clusters[0]})` }) });
  assert.ok(narrowed.length >= 1 && narrowed.every((n) => namespaces.includes(n)), `narrowed namespaces ${narrowed}`);
  const metrics = await variable({ target: 'metrics' });
  assert.ok(metrics.includes('up'), `metrics variable lacks "up": ${metrics}`);
});

test('variables interpolated in the regex format the plugin uses', async () => {
  const nodes = await variable({ target: 'node' });
  const dotted = nodes.filter((n) => n.includes('.'));
  assert.ok(dotted.length >= 2, `the seeded nodes are named with dots, as clouds name them: ${nodes}`);
  const pods = await variable({ target: 'pod' });
  // The dashboards' string-format query, its text interpolated as Grafana does.
  const onOneNode = await variable({ target: '{"target":"pod","node":"$node"}'.replace('$node', regexFormat([dotted[0]])) });
  assert.ok(onOneNode.length >= 1, `no pods on ${dotted[0]} (sent as ${regexFormat([dotted[0]])})`);
  assert.ok(onOneNode.length < pods.length && onOneNode.every((p) => pods.includes(p)), `pods on one node: ${onOneNode}`);
  const onTwoNodes = await variable({ target: '{"target":"pod","node":"$node"}'.replace('$node', regexFormat(dotted.slice(0, 2))) });
  assert.ok(onTwoNodes.length > onOneNode.length && onOneNode.every((p) => onTwoNodes.includes(p)), `pods on two nodes: ${onTwoNodes}`);
  // A JSON-format query arrives as the object itself, values as they are.
  const asJson = await variable({ target: 'pod', node: dotted[0] });
  assert.deepEqual(asJson, onOneNode, 'the same query in JSON format');
  // A builder-mode panel payload: rows of exactly the nodes selected.
  const two = dotted.slice(0, 2);
  const { frames } = await runQuery('nodes_heatmap/regex-format', [{ target: 'nodes_heatmap', payload: { mode: 'cpu', node: regexFormat(two) } }]);
  const rows = frames[0].fields.slice(1).map((f) => f.labels.node).sort();
  assert.deepEqual(rows, [...two].sort(), `nodes_heatmap rows for ${regexFormat(two)}`);
});

const MODES = {
  pods_heatmap: ['cpu_request', 'cpu_limit', 'memory_limit', 'restarts'],
  nodes_heatmap: ['cpu', 'memory', 'pods'],
};

for (const [target, modes] of Object.entries(MODES)) {
  for (const mode of modes) {
    test(`${target} mode=${mode}: payload as object and as JSON text give the same frames`, async () => {
      const two = clusters.slice(0, 2);
      const payload = { mode, cluster: two, limit: 20 };
      if (target === 'pods_heatmap') payload.namespace = namespaces.length > 1 ? `{${namespaces.join(',')}}` : '$__all';
      const asObject = await runQuery(`${target}/${mode}/object`, [{ target, payload }]);
      assert.equal(asObject.frames.length, 1, `${target}: one heatmap frame expected, got ${asObject.frames.length}`);
      const rows = asObject.frames[0].fields.length - 1;
      assert.ok(rows >= 1 && rows <= 20, `${target}: ${rows} rows for limit 20`);
      for (const f of asObject.frames[0].fields.slice(1)) {
        assert.ok(two.includes(f.labels.cluster), `${target}: row ${f.name} is outside the clusters asked for`);
      }
      const asText = await runQuery(`${target}/${mode}/text`, [{ target, payload: JSON.stringify(payload) }]);
      assertSameAnswer(asText.raw, asObject.raw, `${target}: payload as JSON text answers differently from the same payload as an object`);
    });
  }
}

test('cluster_status: status-history frames, payload as object and as text', async () => {
  const cluster = clusters.length > 1 ? `(${clusters[0]}|${clusters[1]})` : clusters[0];
  const asObject = await runQuery('cluster_status/object', [{ target: 'cluster_status', payload: { cluster } }]);
  assert.ok(asObject.frames.length >= 1, 'cluster_status answered no frame');
  assert.ok(asObject.frames.some((f) => f.fields.length > 1), 'cluster_status: no frame has a value field');
  const names = asObject.frames.map((f) => f.name);
  assert.equal(new Set(names).size, names.length, `cluster_status frame names repeat: ${names}`);
  const asText = await runQuery('cluster_status/text', [{ target: 'cluster_status', payload: JSON.stringify({ cluster }) }]);
  assertSameAnswer(asText.raw, asObject.raw, 'cluster_status: payload as JSON text answers differently');
});

test('timeseries: up and a CPU rate, grouped, with ad hoc filters', async () => {
  const up = await runQuery('timeseries/up', [{ target: 'timeseries', payload: { metric: 'up', agg: 'min', by: ['cluster'] } }]);
  assert.ok(up.frames.length >= 1, 'no `up` series');
  const labelSets = up.frames.map((f) => JSON.stringify(f.fields[1].labels));
  assert.equal(new Set(labelSets).size, labelSets.length, 'series with the same labels');
  for (const f of up.frames) {
    for (const v of f.fields[1].values) assert.ok(v === null || (v >= 0 && v <= 1), `up is ${v}`);
  }
  const cpuPayload = { metric: 'container_cpu_usage_seconds_total', agg: 'rate', by: ['cluster', 'namespace'], limit: 5 };
  const cpu = await runQuery('timeseries/cpu/object', [{ target: 'timeseries', payload: cpuPayload }], {
    filters: [{ key: 'cluster', operator: '=', value: clusters[0] }],
  });
  assert.ok(cpu.frames.length >= 1 && cpu.frames.length <= 5, `${cpu.frames.length} CPU series for limit 5`);
  for (const f of cpu.frames) assert.equal(f.fields[1].labels.cluster, clusters[0], 'ad hoc filter cluster= was not applied');
  const cpuText = await runQuery('timeseries/cpu/text', [{ target: 'timeseries', payload: JSON.stringify(cpuPayload) }], {
    filters: [{ key: 'cluster', operator: '=', value: clusters[0] }],
  });
  assertSameAnswer(cpuText.raw, cpu.raw, 'timeseries: payload as JSON text answers differently');
});

test('one request with every target: refIds map back to their targets', async () => {
  const { raw } = await runQuery('multi', [
    { refId: 'A', target: 'pods_heatmap', payload: { mode: 'cpu_request', limit: 5 } },
    { refId: 'B', target: 'nodes_heatmap', payload: JSON.stringify({ mode: 'memory' }) },
    { refId: 'C', target: 'cluster_status', payload: {} },
    { refId: 'D', target: 'timeseries', payload: { metric: 'up', agg: 'max', by: ['cluster'] } },
  ]);
  const seen = new Set(raw.map((f) => f.refId));
  for (const r of ['A', 'B', 'C', 'D']) assert.ok(seen.has(r), `no frame for refId ${r}`);
  for (const f of raw.filter((f) => f.refId === 'A' || f.refId === 'B')) assert.equal(f.meta.type, 'heatmap-rows');
});

test('a 24h panel stays within maxDataPoints and still parses', async () => {
  const to = NOW;
  const { frames } = await runQuery(
    'timeseries/24h',
    [{ target: 'timeseries', payload: { metric: 'up', agg: 'avg' } }],
    { from: to - 24 * HOUR_MS, to, maxDataPoints: 100 }
  );
  for (const f of frames) assert.ok(f.length <= 101, `${f.length} points for maxDataPoints 100`);
});

test('a bad request is a 4xx with a JSON body, not a 5xx', async () => {
  const body = grafanaQuery([{ target: 'pods_heatmap', payload: { mode: 'sideways' } }]);
  const res = await post('/query', body);
  assert.ok(res.status >= 400 && res.status < 500, `mode=sideways answered ${res.status}: ${res.text}`);
  assert.ok(res.json && typeof res.json === 'object', `the error body is not JSON: ${res.text}`);
});
