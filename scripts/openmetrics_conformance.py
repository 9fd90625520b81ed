#!/usr/bin/env python3
"""Runs `fleetscope check-metrics --format openmetrics` over the OpenMetrics
parser test cases and compares each verdict with the case's own.

    scripts/openmetrics_conformance.py CASES_DIR [FLEETSCOPE]

CASES_DIR holds one folder per case, as `tests/testdata/parsers/` of the
OpenMetrics repository does: the exposition in `metrics` (or `metrics.txt`)
and the expected verdict in `test.json`, either {"shouldParse": bool} or
{"outcome": {"parseResult": {"valid": bool}}}. A case without `test.json`
is expected to fail when its name starts with `bad`. Exit status 1 when any
verdict differs. Needs only Python 3; the suite is not vendored here.
"""

import json
import os
import subprocess
import sys


def expected(case_dir, name):
    path = os.path.join(case_dir, "test.json")
    if not os.path.exists(path):
        return not name.startswith("bad")
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    if "shouldParse" in spec:
        return bool(spec["shouldParse"])
    return bool(spec.get("outcome", {}).get("parseResult", {}).get("valid"))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cases = sys.argv[1]
    fleetscope = sys.argv[2] if len(sys.argv) > 2 else "fleetscope"
    agree, differ = 0, []
    for name in sorted(os.listdir(cases)):
        case_dir = os.path.join(cases, name)
        inputs = [f for f in ("metrics", "metrics.txt") if os.path.exists(os.path.join(case_dir, f))]
        if not inputs:
            continue
        run = subprocess.run(
            [fleetscope, "check-metrics", "--format", "openmetrics", os.path.join(case_dir, inputs[0])],
            capture_output=True,
            text=True,
            timeout=30,
        )
        should, did = expected(case_dir, name), run.returncode == 0
        if should == did:
            agree += 1
        else:
            differ.append((name, should, run.stderr.strip()))
    for name, should, why in differ:
        verdict = "should parse" if should else "should fail"
        print(f"DIFFERS {name}: {verdict}; fleetscope: {why or 'parsed'}")
    print(f"{agree} of {agree + len(differ)} cases agree")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
