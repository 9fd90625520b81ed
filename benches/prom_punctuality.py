#!/usr/bin/env python3
"""Late and missed scrapes of a Prometheus, read from its own `up` samples.

Prometheus exports only quantiles of the intervals between scrapes
(prometheus_target_interval_length_seconds), which cannot say how many
scrapes were late. But each `up` sample is stamped with the time its scrape
started (aligned to the schedule only within 2 ms), so the raw samples give
every scrape's start. A target's scrape loop ticks on a fixed schedule from
its first scrape, and a tick that finds the loop busy is dropped, never
moved. So the schedule's phase is the one that most of the target's scrapes
start within a tenth of an interval of, and a scrape is late, as fleetscope
counts it, when it starts more than a tenth of the interval after its tick;
a tick without a scrape is missed.

    prom_punctuality.py URL INTERVAL_S START END WARM STEADY

prints `scrapes late late_warm late_steady missed`: counts over the scrapes
that started after START, WARM and STEADY (unix seconds; 0 for none) up to
END.
"""
import json
import sys
import urllib.parse
import urllib.request


def up_samples(url, start, end):
    span = int(end - start) + 1
    query = urllib.parse.urlencode({"query": f"up[{span}s]", "time": f"{end:.3f}"})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=120) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise SystemExit(f"query failed: {body}")
    for series in body["data"]["result"]:
        yield sorted(float(ts) for ts, _ in series["values"])


def punctuality(starts, interval, since):
    """(scrapes, late, missed) of one target, over scrapes from `since` on."""
    tolerance = interval / 10

    def delay(ts, phase):
        return (ts - phase) % interval

    phases = [ts % interval for ts in starts]
    phase = max(phases, key=lambda p: sum(delay(ts, p) <= tolerance for ts in starts))
    counted = [ts for ts in starts if ts >= since]
    late = sum(delay(ts, phase) > tolerance for ts in counted)
    ticks = {int((ts - phase) // interval) for ts in counted}
    missed = (max(ticks) - min(ticks) + 1 - len(ticks)) if ticks else 0
    return len(counted), late, missed


def main():
    url, interval, start, end, warm, steady = sys.argv[1:7]
    interval, start, end = float(interval), float(start), float(end)
    windows = [start] + [float(t) if float(t) > 0 else float("nan") for t in (warm, steady)]
    scrapes = missed = 0
    late = [0, 0, 0]
    for starts in up_samples(url.rstrip("/"), start, end):
        for i, since in enumerate(windows):
            if since != since:  # no such window
                continue
            n, l, m = punctuality(starts, interval, since)
            late[i] += l
            if i == 0:
                scrapes, missed = scrapes + n, missed + m
    print(scrapes, *late, missed)


if __name__ == "__main__":
    main()
