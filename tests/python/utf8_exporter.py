"""An exporter made with the real Prometheus Python client (prometheus_client
0.26), serving metric and label names that are not Prometheus identifiers,
as OpenTelemetry names them. It answers what the scraper's Accept header
negotiates: text 1.0.0 with quoted names for `escaping=allow-utf-8`, text
0.0.4 with names escaped to underscores otherwise.

Usage: utf8_exporter.py PORT  (prints "ready" once it listens)
"""

import sys
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

registry = CollectorRegistry()
requests = Counter(
    "http.server.requests", "Requests served.", ["url.scheme", "code"], registry=registry
)
requests.labels("https", "200").inc(5)
duration = Histogram(
    "rpc.client.duration", "RPC latency.", ["rpc.service"], buckets=[0.1, 1.0], registry=registry
)
duration.labels("cart").observe(0.05)
duration.labels("cart").observe(0.5)
Gauge("plain_gauge", "A name that needs no quotes.", registry=registry).set(3)

start_http_server(int(sys.argv[1]), addr="127.0.0.1", registry=registry)
print("ready", flush=True)
while True:
    time.sleep(3600)
