#!/usr/bin/env python3
"""The commissioning page's JavaScript (web/commission/src), outside a
browser, with node:
  - its SPAKE2+ against RFC 9383's test vector, every intermediate value
    (test/spake2p.test.mjs, node's test runner);
  - interop: the JavaScript prover (what runs in the page) against the C
    verifier (the device, `iotprov-device commission --http`): a wrong code
    refused, the delay that follows, then a session in which a wrong
    passphrase is corrected (test/interop.mjs).
The C prover against the C verifier is every other commission_* test.
Needs the page built (scripts/build-web, run by the CMake build).
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from commission import (CODE, GOOD_PSK, NODE_WORK, SSID, Device, check, cleanup,  # noqa: E402
                        section, summary, tmpdir)


def vectors():
    r = subprocess.run(["node", "--test", "test/spake2p.test.mjs"], cwd=NODE_WORK,
                       capture_output=True, text=True, timeout=120)
    print(r.stdout[-1500:])
    check(r.returncode == 0 and "# fail 0" in r.stdout and "# pass 5" in r.stdout,
          "the page's SPAKE2+ matches the RFC 9383 vector and the C registration",
          r.stdout + r.stderr)


def interop(tmp):
    dev = Device(tmp, "plant-js-1", ["--http", "127.0.0.1:0"], delay_ms=1000)
    try:
        r = subprocess.run(["node", "test/interop.mjs", str(dev.http_port()), CODE, SSID,
                            GOOD_PSK], cwd=NODE_WORK, capture_output=True, text=True,
                           timeout=120)
        try:
            out = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            out = {}
        check(out.get("wrong") == "wrong setup code",
              "the C device does not prove a wrong code to the JS prover", r.stdout + r.stderr)
        check(out.get("throttled") == "throttled" and out.get("retryMs", 0) > 0,
              "the JS prover is told to wait after it", out)
        check(out.get("device") == "plant-js-1", "JS prover and C verifier agree on a key "
              "(the session opened)", out)
        check(out.get("net1", {}).get("joined") is False and
              "wrong passphrase" in out.get("net1", {}).get("reason", "") and
              out.get("net2", {}).get("joined") is True and out.get("bye", {}).get("t") == "bye",
              "sealed requests and answers pass both ways (AES-GCM in JS and OpenSSL)", out)
        check(dev.applies() == ["wifi " + SSID] * 2, "the device applied both networks",
              dev.applies())
    finally:
        dev.stop()


def main():
    if not os.path.exists(os.path.join(NODE_WORK, "node_modules", "@noble", "curves")):
        check(False, "the page is built (scripts/build-web %s)" % os.path.dirname(
            os.path.dirname(NODE_WORK)))
        return summary()
    tmp = tmpdir("commission-js")
    try:
        section(vectors)
        section(interop, tmp)
    finally:
        cleanup(tmp)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
