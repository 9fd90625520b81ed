#!/usr/bin/env python3
"""Emit a KNOWN service topology with the real OpenTelemetry Python SDK.

Usage: emit_topology.py ENDPOINT [ITERATIONS=50] [PROTOCOL=http]
  e.g. emit_topology.py http://127.0.0.1:4318/v1/traces 50
       emit_topology.py http://127.0.0.1:4317 50 grpc

Sends OTLP/HTTP protobuf (opentelemetry-exporter-otlp-proto-http) or, with
PROTOCOL grpc, OTLP/gRPC gzip-compressed in clear text
(opentelemetry-exporter-otlp-proto-grpc); one TracerProvider +
BatchSpanProcessor + OTLPSpanExporter per service, since each service has
its own resource. It prints, on stdout, one JSON object that
describes what was sent, for a test to compare with what it decoded:

  {"iterations": N, "spans": 8N, "spans_by_service": {...},
   "resource": {"k8s.namespace.name": "shop", "k8s.cluster.name": "dc-01"},
   "edges": [{"from", "to", "kind": "http"|"db"|"messaging", "requests", "errors", ...}]}

Per iteration i (one trace):
  frontend SERVER  GET /checkout
    frontend CLIENT  POST /api/checkout
      checkout SERVER  (child of the frontend CLIENT span: propagated context)
        checkout CLIENT  POST /api/pay
          payment SERVER  status ERROR + http.response.status_code 500 when i % 10 == 9
                          (the checkout CLIENT span then has status ERROR too)
        checkout CLIENT  db.system=mysql db.name=orders server.address=mysql.shop.svc
                         (no server side: the database is not instrumented)
        checkout PRODUCER  messaging.system=kafka messaging.destination.name=stock-events
          inventory CONSUMER  (child of the PRODUCER span)

Edge "errors" count calls whose callee-side span has status ERROR (the SERVER
span for http, the CLIENT span for db, the PRODUCER/CONSUMER pair for
messaging). Every resource has k8s.namespace.name=shop, k8s.cluster.name=dc-01.

Exit status: 0 when every export succeeded; 1 (with a message on stderr) when
an export failed or a flush timed out; 2 on bad arguments.
"""

import json
import sys
import threading

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

NAMESPACE = "shop"
CLUSTER = "dc-01"
SERVICES = ("frontend", "checkout", "payment", "inventory")


class CountingExporter(SpanExporter):
    """Wraps the OTLP exporter to record failed exports (the SDK only logs them)."""

    def __init__(self, inner):
        self.inner = inner
        self.lock = threading.Lock()
        self.exported = 0
        self.failed = 0

    def export(self, spans):
        result = self.inner.export(spans)
        with self.lock:
            if result == SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return self.inner.force_flush(timeout_millis)


def make_exporter(endpoint, protocol):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )
        from grpc import Compression

        return GrpcSpanExporter(
            endpoint=endpoint, insecure=True, timeout=10, compression=Compression.Gzip
        )
    return OTLPSpanExporter(endpoint=endpoint, timeout=10)


def make_provider(service, endpoint, protocol):
    resource = Resource.create(
        {
            "service.name": service,
            "k8s.namespace.name": NAMESPACE,
            "k8s.cluster.name": CLUSTER,
        }
    )
    exporter = CountingExporter(make_exporter(endpoint, protocol))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


def main(argv):
    if len(argv) < 2 or len(argv) > 4:
        print(__doc__, file=sys.stderr)
        return 2
    endpoint = argv[1]
    protocol = argv[3] if len(argv) == 4 else "http"
    if protocol not in ("http", "grpc"):
        print(f"PROTOCOL must be http or grpc, got {protocol!r}", file=sys.stderr)
        return 2
    try:
        iterations = int(argv[2]) if len(argv) >= 3 else 50
    except ValueError:
        print(f"ITERATIONS must be an integer, got {argv[2]!r}", file=sys.stderr)
        return 2
    if iterations < 1:
        print("ITERATIONS must be >= 1", file=sys.stderr)
        return 2

    providers = {}
    exporters = {}
    for service in SERVICES:
        providers[service], exporters[service] = make_provider(service, endpoint, protocol)
    tracer = {s: p.get_tracer("fleetscope.emit_topology") for s, p in providers.items()}
    fe, co, pay, inv = (tracer[s] for s in SERVICES)

    spans_by_service = {s: 0 for s in SERVICES}
    payment_errors = 0

    def start(service, name, kind, parent=None, attributes=None):
        spans_by_service[service] += 1
        ctx = set_span_in_context(parent) if parent is not None else None
        return tracer[service].start_span(name, context=ctx, kind=kind, attributes=attributes)

    for i in range(iterations):
        failed = i % 10 == 9
        fe_srv = start(
            "frontend",
            "GET /checkout",
            SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "http.route": "/checkout",
                "http.response.status_code": 200,
            },
        )
        fe_cli = start(
            "frontend",
            "POST",
            SpanKind.CLIENT,
            fe_srv,
            {
                "http.request.method": "POST",
                "server.address": "checkout.shop.svc",
                "server.port": 8080,
            },
        )
        co_srv = start(
            "checkout",
            "POST /api/checkout",
            SpanKind.SERVER,
            fe_cli,
            {
                "http.request.method": "POST",
                "http.route": "/api/checkout",
                "http.response.status_code": 200,
            },
        )

        co_pay = start(
            "checkout",
            "POST",
            SpanKind.CLIENT,
            co_srv,
            {"http.request.method": "POST", "server.address": "payment.shop.svc", "server.port": 8080},
        )
        pay_srv = start(
            "payment",
            "POST /api/pay",
            SpanKind.SERVER,
            co_pay,
            {"http.request.method": "POST", "http.route": "/api/pay"},
        )
        if failed:
            payment_errors += 1
            pay_srv.set_attribute("http.response.status_code", 500)
            pay_srv.set_status(Status(StatusCode.ERROR, "card processor unavailable"))
            co_pay.set_attribute("http.response.status_code", 500)
            co_pay.set_status(Status(StatusCode.ERROR))
        else:
            pay_srv.set_attribute("http.response.status_code", 200)
            co_pay.set_attribute("http.response.status_code", 200)
        pay_srv.end()
        co_pay.end()

        db = start(
            "checkout",
            "SELECT orders",
            SpanKind.CLIENT,
            co_srv,
            {
                "db.system": "mysql",
                "db.name": "orders",
                "db.statement": "SELECT * FROM orders WHERE id = ?",
                "server.address": "mysql.shop.svc",
                "server.port": 3306,
            },
        )
        db.end()

        prod = start(
            "checkout",
            "stock-events publish",
            SpanKind.PRODUCER,
            co_srv,
            {
                "messaging.system": "kafka",
                "messaging.destination.name": "stock-events",
                "messaging.operation": "publish",
            },
        )
        prod.end()
        cons = start(
            "inventory",
            "stock-events process",
            SpanKind.CONSUMER,
            prod,
            {
                "messaging.system": "kafka",
                "messaging.destination.name": "stock-events",
                "messaging.operation": "process",
            },
        )
        cons.end()

        co_srv.end()
        fe_cli.end()
        fe_srv.end()

    ok = True
    for service, provider in providers.items():
        if not provider.force_flush(timeout_millis=30000):
            print(f"emit_topology: force_flush timed out for {service}", file=sys.stderr)
            ok = False
    for provider in providers.values():
        provider.shutdown()
    for service, exporter in exporters.items():
        if exporter.failed:
            print(
                f"emit_topology: {exporter.failed} spans of {service} failed to export to {endpoint}",
                file=sys.stderr,
            )
            ok = False
        elif exporter.exported != spans_by_service[service]:
            print(
                f"emit_topology: {service}: exported {exporter.exported} of {spans_by_service[service]} spans",
                file=sys.stderr,
            )
            ok = False

    summary = {
        "endpoint": endpoint,
        "iterations": iterations,
        "spans": sum(spans_by_service.values()),
        "spans_by_service": spans_by_service,
        "resource": {"k8s.namespace.name": NAMESPACE, "k8s.cluster.name": CLUSTER},
        "edges": [
            {"from": "frontend", "to": "checkout", "kind": "http", "requests": iterations, "errors": 0},
            {
                "from": "checkout",
                "to": "payment",
                "kind": "http",
                "requests": iterations,
                "errors": payment_errors,
            },
            {
                "from": "checkout",
                "to": "mysql.shop.svc",
                "kind": "db",
                "db_system": "mysql",
                "db_name": "orders",
                "requests": iterations,
                "errors": 0,
            },
            {
                "from": "checkout",
                "to": "inventory",
                "kind": "messaging",
                "messaging_system": "kafka",
                "destination": "stock-events",
                "requests": iterations,
                "errors": 0,
            },
        ],
    }
    print(json.dumps(summary, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
