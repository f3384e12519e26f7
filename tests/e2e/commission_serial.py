#!/usr/bin/env python3
"""Network commissioning over a serial console, end to end: the device runs
`iotprov-device commission --serial` on one pty, the installer's
`iotprov commission --device <tty>` on another, and this test joins the two
pty pairs like a null-modem cable (tests/e2e/lib/commission.py PtyRelay),
seeing every line and, for some cases, injecting or altering one. A real
iotprov stack stands behind, so the happy path ends with a connected thing.

Checks: happy path with a wrong passphrase corrected in the same session; a
wrong setup code refused (and a forged confirmation answered with a bare
'auth'), then delayed; a replayed line refused and not acted on twice; an
altered line refused and not applied; an expired claim refused; garbage and
an over-long line on the console answered with an error, the console still
working afterwards.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from commission import (CLAIM_TTL, GOOD_PSK, SSID, Device, PtyRelay, Stack, check,  # noqa: E402
                        cleanup, flip_ct, installer, section, summary, tmpdir)


def happy_path(stack, tmp):
    relay = PtyRelay()
    dev = Device(tmp, "plant-serial-1", ["--serial", relay.device_path], once=True)
    try:
        r = installer(stack, relay.installer_path, tmp=tmp,
                      psks=("not the passphrase", GOOD_PSK), serial="0201")
        check(r.returncode == 0 and "as thing plant-0201" in r.stdout,
              "the installer ends with the thing name", r.stdout + r.stderr)
        check(len(relay.sent("hello")) == 1 and len(relay.sent("pake1")) == 1 and
              len(relay.sent("sealed")) == 4,
              "one handshake, then network twice, provision and done", relay.log)
        check(GOOD_PSK not in json.dumps(relay.log) and "BEGIN" not in json.dumps(relay.log),
              "nothing secret crossed the cable in clear")
        check(dev.applies() == ["wifi " + SSID] * 2, "wrong then right network applied",
              dev.applies())
        check(stack.thing("plant-0201") is not None, "the thing exists in the registry")
        st = dev.status()
        check(st.get("provisioned") and st.get("thingName") == "plant-0201" and
              not st.get("pending"), "the device is provisioned and connected", st)
        check(dev.proc.wait(15) == 0, "the device leaves commissioning mode with status 0")
    finally:
        dev.stop()
        relay.stop()


def wrong_code_and_noise(stack, tmp):
    relay = PtyRelay()
    dev = Device(tmp, "plant-serial-2", ["--serial", relay.device_path], max_attempts=5,
                 delay_ms=2000)
    try:
        r = installer(stack, relay.installer_path, tmp=tmp, code="27182818", claim=False)
        check(r.returncode == 1 and "wrong setup code" in r.stderr, "a wrong code is refused",
              r.stderr)
        check(not relay.sent("sealed"), "no sealed message was sent")
        sid = relay.sent("pake1")[0]["sid"]
        a = relay.inject({"t": "pake3", "sid": sid, "cP": "A" * 43 + "="})
        check(a and a.get("code") == "auth" and set(a) <= {"t", "code", "message", "retry_ms"},
              "a forged confirmation is answered with a bare 'auth'", a)
        a = relay.inject({"t": "hello", "v": 1})
        check(a and a.get("code") == "throttled" and a.get("retry_ms", 0) > 0,
              "the next hello must wait", a)
        a = relay.inject({"t": "nonsense"})
        check(a and a.get("code") == "bad_request", "an unknown message is a bad_request", a)
        before = len(relay.log)
        relay.swallow += 1
        relay.log.append(("i", {"raw": "70000 bytes"}))
        os.write(relay.dev_master, b"x" * 70000 + b"\n")
        check(bool(__import__("commission").wait_for(
            lambda: any(w == "d" and o.get("code") == "bad_request" and
                        "too long" in o.get("message", "") for w, o in relay.log[before:]), 5)),
              "an over-long line is refused")
        time.sleep(2.1)
        r = installer(stack, relay.installer_path, tmp=tmp, claim=False)
        check(r.returncode == 0, "after the delay the right code works on the same console",
              r.stdout + r.stderr)
    finally:
        dev.stop()
        relay.stop()


def replay_and_tamper(stack, tmp):
    relay = PtyRelay()
    dev = Device(tmp, "plant-serial-3", ["--serial", relay.device_path])
    seen, replays = [], []

    def replay(obj):
        if obj.get("t") == "sealed":
            if seen and not replays:
                # The device answers the replay first; the installer never
                # sees that answer (the relay keeps it).
                relay.send_to_device(seen[0])
                replays.append(seen[0])
            seen.append(obj)
        return obj
    relay.alter = replay
    try:
        r = installer(stack, relay.installer_path, tmp=tmp, claim=False)
        replies = [o for w, o in relay.log if w == "d" and o.get("t") == "error"]
        check(any(o.get("code") == "replay" for o in replies),
              "the replayed network line is refused as a replay", replies)
        check(dev.applies() == ["wifi " + SSID], "the network was applied once", dev.applies())
        check(r.returncode == 0, "the session survives the replay", r.stdout + r.stderr)
    finally:
        dev.stop()
        relay.stop()

    relay = PtyRelay()
    dev = Device(tmp, "plant-serial-4", ["--serial", relay.device_path])
    relay.alter = lambda o: flip_ct(o) if o.get("t") == "sealed" and not relay.sent("sealed") \
        else o
    try:
        r = installer(stack, relay.installer_path, tmp=tmp, claim=False)
        check(r.returncode == 1 and "message authentication failed" in r.stderr,
              "an altered line is refused", r.stderr)
        check(dev.applies() == [], "the altered network was not applied")
    finally:
        dev.stop()
        relay.stop()


def expired_claim(stack, tmp, claim, saved_at):
    left = saved_at + CLAIM_TTL + 2 - time.time()
    if left > 0:
        time.sleep(left)
    relay = PtyRelay()
    dev = Device(tmp, "plant-serial-5", ["--serial", relay.device_path])
    try:
        r = installer(stack, relay.installer_path, tmp=tmp, claim=claim)
        check(r.returncode == 1 and "claim expired" in r.stderr,
              "an expired claim is refused with the reason", r.stdout + r.stderr)
        check(stack.thing("plant-0209") is None, "no thing was created")
    finally:
        dev.stop()
        relay.stop()


def main():
    tmp = tmpdir("commission-serial")
    stack = None
    try:
        stack = Stack(tmp)
        claim = stack.save_claim(os.path.join(tmp, "claim-0209.json"), "0209")
        saved_at = time.time()
        section(happy_path, stack, tmp)
        section(wrong_code_and_noise, stack, tmp)
        section(replay_and_tamper, stack, tmp)
        section(expired_claim, stack, tmp, claim, saved_at)
    finally:
        if stack:
            stack.stop()
        cleanup(tmp)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
