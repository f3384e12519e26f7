#!/usr/bin/env python3
"""`iotprov-device simulate --devices 1000` against `iotprov up`, exactly as
ARCHITECTURE.md states the contract (--endpoint --ca --claim-cert --claim-key
--template): every virtual device gets its own key, provisions by claim over
MQTT and connects with its new identity; the summary's last line is
"1000 passed, 0 failed"; the registry then holds 1000 new things and 1000
distinct ACTIVE certificates, each thing with its own certificate. A smaller
CBOR run with a rate limit checks --rate and --json, and a run against a
template the claim may not use reports every device failed with its cause.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import device_e2e as e  # noqa: E402

N = int(os.environ.get("IOTP_SIMULATE_DEVICES", "1000"))


def simulate(stack, *extra):
    return e.device(None, "simulate", "--endpoint", stack.mqtt, "--ca", stack.ca,
                    "--claim-cert", stack.claim_cert, "--claim-key", stack.claim_key,
                    "--template", e.TEMPLATE, *extra, timeout=580)


def thousand(stack, tmp):
    certs_before = {c["certificateId"] for c in stack.all_certificates()}
    t0 = time.time()
    r = simulate(stack, "--devices", str(N))
    took = time.time() - t0
    lines = r.stdout.strip().splitlines()
    print(r.stdout)
    e.check(r.returncode == 0 and lines and lines[-1] == "%d passed, 0 failed" % N,
            "simulate --devices %d: last line '%d passed, 0 failed' (%.1f s)" % (N, N, took),
            r.stdout + r.stderr[-2000:])
    m = re.search(r"run ([0-9a-f]{8})", r.stdout)
    e.check(m is not None, "the summary names the run")
    e.check(re.search(r"latency ms \(provision \+ connect\): p50 \d+  p90 \d+  p99 \d+", r.stdout)
            is not None, "the summary has latency percentiles")
    e.check("certificates: %d distinct" % N in r.stdout, "the summary counts distinct certificates")
    e.check("[" in r.stderr and "%d/%d" % (N, N) in r.stderr, "a progress bar on stderr")
    if m is None:
        return
    prefix = "dev-sim-%s-" % m.group(1)
    things = [t["thingName"] for t in stack.all_things() if t["thingName"].startswith(prefix)]
    e.check(len(things) == N and len(set(things)) == N, "the registry has %d new things" % N,
            len(things))
    new = [c for c in stack.all_certificates() if c["certificateId"] not in certs_before]
    e.check(len(new) == N and len({c["certificateId"] for c in new}) == N and
            all(c["status"] == "ACTIVE" for c in new),
            "%d new distinct ACTIVE certificates" % N, len(new))
    sample = sorted(things)[:: max(1, N // 20)]
    owners = {}
    for t in sample:
        p = stack.principals(t)
        owners[t] = p
    e.check(all(len(p) == 1 for p in owners.values()) and
            len({p[0] for p in owners.values()}) == len(owners),
            "each sampled thing has its own single certificate", owners)
    e.check(stack.log_text().count("connected with cert") >= 2 * N,
            "the broker saw a claim and an identity connection per device")


def cbor_rate_json(stack, tmp):
    t0 = time.time()
    r = simulate(stack, "--devices", "20", "--rate", "10", "--format", "cbor",
                 "--mqtt-version", "4", "--json", "--param", "Colour=green-{n}")
    took = time.time() - t0
    o = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
    e.check(r.returncode == 0 and o.get("passed") == 20 and o.get("failed") == 0,
            "CBOR over MQTT 3.1.1, --json: 20 passed", r.stdout + r.stderr[-1500:])
    e.check(took >= 1.8, "--rate 10 spreads 20 device starts over about 2 s (%.1f s)" % took)
    e.check(o.get("distinctCertificates") == 20 and "p99" in o.get("latencyMs", {}),
            "--json carries the figures", o)


def failures_by_cause(stack, tmp):
    r = e.device(None, "simulate", "--devices", "5", "--endpoint", stack.mqtt, "--ca", stack.ca,
                 "--claim-cert", stack.claim_cert, "--claim-key", stack.claim_key,
                 "--template", "NotTheClaimsTemplate", "--timeout", "5")
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    e.check(r.returncode == 1 and last == "0 passed, 5 failed",
            "a forbidden template: 0 passed, 5 failed, exit 1", r.stdout + r.stderr[-1000:])
    e.check(re.search(r"\s5  claim connect: refused", r.stdout) is not None,
            "failures are counted by step and cause", r.stdout)


def main():
    if not os.access(e.DEVICE, os.X_OK) or not os.access(e.IOTPROV, os.X_OK):
        print("iotprov / iotprov-device not built")
        return 1
    tmp = e.tmpdir("device-simulate")
    stack = e.Stack(tmp)
    try:
        for part in (thousand, cbor_rate_json, failures_by_cause):
            e.section(part, stack, tmp)
    finally:
        stack.stop()
    if e.failures:
        print(stack.log_text()[-5000:])
    e.cleanup(tmp)
    return e.summary()


if __name__ == "__main__":
    sys.exit(main())
