"""Schemathesis hooks for fleetscope's Grafana JSON datasource contract run.

Loaded by tests/grafana/schemathesis.sh through SCHEMATHESIS_HOOKS. The
plugin's OpenAPI file types `target` and `payload` as free text and an empty
object, so purely generated bodies never name a real fleetscope view and only
exercise the "unknown target" path. These hooks mix real target names, real
dimension names and plausible-but-hostile payload values into the generated
bodies of /query and /variable, so the run also fuzzes the code that builds
heatmaps, status and series answers (and its 4xx paths). Everything the
schema generated is kept otherwise: ranges, intervals, maxDataPoints, filters.
"""

import json
import time
from datetime import datetime, timezone

import schemathesis
from hypothesis import strategies as st

TARGETS = ["pods_heatmap", "nodes_heatmap", "cluster_status", "timeseries"]
MODES = ["cpu_request", "cpu_limit", "memory_limit", "restarts", "cpu", "memory", "pods"]
DIMS = ["cluster", "namespace", "node", "workload", "pod"]
AGGS = ["avg", "max", "min", "sum", "rate", "increase", "p50", "p95", "p99"]
METRICS = ["up", "container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "node_cpu_seconds_total"]
SELECTORS = [
    'up{cluster="dc-01"}',
    '{__name__=~"container_.*",namespace!="kube-system"}',
    'container_cpu_usage_seconds_total{namespace=~"team-.*",pod!~"x|y"}',
    "{job=~\".+\"}",
]
# Real-looking values in every multi-value form Grafana sends, plus noise.
VALUES = st.one_of(
    st.sampled_from(["dc-01", "dc-02", "team-1", "$__all", "All", ".*", "(dc-01|dc-02)", "{dc-01,dc-02}", "dc-01|dc-02", ""]),
    st.text(max_size=12),
)
VALUE_OR_LIST = st.one_of(VALUES, st.lists(VALUES, max_size=3), st.integers(), st.booleans(), st.none())

PAYLOAD = st.fixed_dictionaries(
    {},
    optional={
        "mode": st.one_of(st.sampled_from(MODES), st.text(max_size=8)),
        "cluster": VALUE_OR_LIST,
        "namespace": VALUE_OR_LIST,
        "node": VALUE_OR_LIST,
        "workload": VALUE_OR_LIST,
        "pod": VALUE_OR_LIST,
        "limit": st.one_of(st.integers(min_value=-5, max_value=20000), st.sampled_from(["5", "200", "0", "x"])),
        "metric": st.one_of(st.sampled_from(METRICS), st.text(max_size=12)),
        "match": st.one_of(st.sampled_from(SELECTORS), st.text(max_size=30)),
        "agg": st.one_of(st.sampled_from(AGGS), st.text(max_size=6)),
        "by": st.one_of(st.lists(st.sampled_from(DIMS + ["job", "instance", ""]), max_size=3), st.sampled_from(["cluster,namespace", ""])),
    },
)


def _query_target(item):
    if not isinstance(item, dict):
        return st.just(item)
    payload = st.one_of(PAYLOAD, PAYLOAD.map(json.dumps))
    return st.fixed_dictionaries({"target": st.sampled_from(TARGETS), "payload": payload}).map(lambda extra: {**item, **extra})


def _iso(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _recent_range(span_end):
    """A range over the last hours, where the seeded data is (Grafana's shape)."""
    span, end_ago = span_end
    now = time.time()
    return {"from": _iso(now - end_ago - span), "to": _iso(now - end_ago), "raw": {"from": "now-6h", "to": "now"}}


RECENT_RANGE = st.tuples(st.integers(min_value=1, max_value=30 * 86400), st.integers(min_value=0, max_value=4 * 3600)).map(_recent_range)


def _variable_target():
    narrowed = st.builds(
        lambda what, cluster: json.dumps({"target": what, "cluster": cluster}),
        st.sampled_from(DIMS),
        VALUES,
    )
    return st.one_of(st.sampled_from(DIMS + ["metrics", "metric", ""]), narrowed, st.text(max_size=20))


@schemathesis.hook
def flatmap_body(context, body):
    path = context.operation.path if context.operation is not None else ""
    if path == "/query" and isinstance(body, dict):
        original = body.get("targets") if isinstance(body.get("targets"), list) else []
        items = [t for t in original if isinstance(t, dict)] or [{"refId": "A"}]
        targets = st.one_of(
            st.tuples(*[_query_target(t) for t in items]).map(list),
            st.lists(_query_target({}), min_size=1, max_size=3).map(
                lambda ts: [{**t, "refId": chr(65 + i)} for i, t in enumerate(ts)]
            ),
        )
        ranges = st.one_of(st.just(body.get("range")), RECENT_RANGE)
        return st.one_of(
            st.just(body),
            st.tuples(ranges, targets).map(
                lambda rt: {**body, "targets": rt[1], **({"range": rt[0]} if rt[0] is not None else {})}
            ),
        )
    if path == "/variable" and isinstance(body, dict) and isinstance(body.get("payload"), dict):
        return _variable_target().map(lambda t: {**body, "payload": {**body["payload"], "target": t}})
    if path == "/metric-payload-options" and isinstance(body, dict):
        return st.tuples(st.sampled_from(DIMS + ["metric", "by", "mode"]), PAYLOAD).map(
            lambda np: {**body, "name": np[0], "payload": np[1]}
        )
    return st.just(body)


def _is_plugin_variable_answer(response):
    try:
        items = response.json()
    except Exception:
        return False
    return isinstance(items, list) and all(
        isinstance(i, dict) and isinstance(i.get("__text"), str) and isinstance(i.get("__value"), str) for i in items
    )


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Accept exactly one known defect of the contract file, nothing else.

    Its /variable answer schema says `required: ["text", "value"]` but names
    the properties `__text` / `__value`; the plugin's response parser
    (src/response_parser.ts, transformMetricFindResponse) reads only
    `__text` / `__value`. An answer made of such items is what the plugin
    needs, so a schema failure on it is the file's fault. Any other failure,
    and any /variable answer of another shape, still fails the run. The
    summary line counts what was dropped ("dropped by filter_failure").
    """
    if (
        case.operation.path == "/variable"
        and getattr(failure, "code", None) == "ST108"
        and response is not None
        and response.status_code == 200
        and _is_plugin_variable_answer(response)
    ):
        return False
    return True
