#!/usr/bin/env python3
"""Network commissioning over the device's local web endpoint, end to end:
a real iotprov stack (iotprovd + mosquitto with the plugin), a device in
commissioning mode on 127.0.0.1 (`iotprov-device commission --http`), and
the installer's `iotprov commission` through an HTTP proxy that sees, and
for some cases replays or alters, every message.

What an installer (or an attacker next to them) would check:
  - the happy path ends with the device on the network, a thing in the
    registry with an ACTIVE certificate, and the device connected with it;
    a wrong passphrase is corrected in the same session (one handshake, two
    network attempts), and the passphrase never crosses the wire in clear;
  - a wrong setup code is refused without any sealed message or network
    change, then the device delays guesses (even the right code), then locks;
  - a replayed message is refused and not acted on twice, an altered one is
    refused and not applied, and messages of an ended session are refused;
  - an expired claim is refused with a reason, and no thing appears.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from commission import (CODE, GOOD_PSK, SSID, Device, HttpProxy, Stack, check,  # noqa: E402
                        cleanup, flip_ct, installer, raw_post, run, section, summary, tmpdir,
                        wait_for, CLAIM_TTL, DEVICE)


def happy_path(stack, tmp):
    dev = Device(tmp, "plant-http-1", ["--http", "127.0.0.1:0"], once=True)
    proxy = HttpProxy(dev.http_port())
    try:
        r = installer(stack, "http://127.0.0.1:%d" % proxy.port, tmp=tmp,
                      psks=("not the passphrase", GOOD_PSK), serial="0101")
        check(r.returncode == 0 and "as thing plant-0101" in r.stdout,
              "the installer ends with the thing name", r.stdout + r.stderr)
        check("not joined: 4-way handshake failed: wrong passphrase" in r.stdout and
              "trying again with another passphrase, in the same session" in r.stdout,
              "the wrong passphrase is reported, then corrected")
        check(len(proxy.sent("hello")) == 1 and len(proxy.sent("pake1")) == 1 and
              len(proxy.sent("pake3")) == 1,
              "one handshake only: the correction happened in the same session")
        check(len(proxy.sent("sealed")) == 4,
              "network twice, provision and done were sealed messages",
              [q.get("t") for q, _ in proxy.log])
        check(GOOD_PSK not in str(proxy.log) and "not the passphrase" not in str(proxy.log) and
              "BEGIN" not in str(proxy.log),
              "neither passphrase nor claim crossed the wire in clear")
        check(dev.applies() == ["wifi " + SSID, "wifi " + SSID],
              "the network was applied twice (wrong, then right)", dev.applies())
        st = os.stat(dev.net_config)
        with open(dev.net_config) as f:
            cfg = f.read()
        check(oct(st.st_mode & 0o777) == "0o600" and 'psk="%s"' % GOOD_PSK in cfg and
              "ssid=" + SSID.encode().hex() in cfg,
              "the wpa_supplicant block holds the corrected network, mode 0600", cfg)
        thing = stack.thing("plant-0101")
        check(thing is not None and thing.get("attributes", {}).get("commissioned") == "yes",
              "the thing exists in the registry with the template's attributes", thing)
        status = dev.status()
        check(status.get("provisioned") and status.get("thingName") == "plant-0101" and
              not status.get("pending"),
              "the device is provisioned and its identity has connected", status)
        if status.get("certificateId"):
            check(stack.cert_status(status["certificateId"]) == "ACTIVE",
                  "its certificate is ACTIVE in the registry")
        c = run([DEVICE, "connect", "--state-dir", dev.state, "--timeout", "10"])
        check(c.returncode == 0, "the device connects again with its new identity",
              c.stdout + c.stderr)
        check(dev.proc.wait(15) == 0 and "commissioned: network joined, thing plant-0101"
              in dev.log(), "the device leaves commissioning mode (--once) with status 0",
              dev.log())
    finally:
        proxy.stop()
        dev.stop()


def wrong_code(stack, tmp):
    dev = Device(tmp, "plant-http-2", ["--http", "127.0.0.1:0"], max_attempts=3,
                 delay_ms=1500, lockout_s=60)
    proxy = HttpProxy(dev.http_port())
    url = "http://127.0.0.1:%d" % proxy.port
    try:
        r = installer(stack, url, tmp=tmp, code="27182818", claim=False)
        check(r.returncode == 1 and "wrong setup code" in r.stderr,
              "a wrong setup code is refused", r.stderr)
        check(not proxy.sent("sealed") and not proxy.sent("pake3"),
              "nothing but the handshake was sent: no credentials for a device that does not "
              "know the code")
        replies = [a for _, a in proxy.log]
        check([a.get("t") for a in replies] == ["params", "pake2"] and
              set(replies[0]) == {"t", "v", "sid", "device", "salt", "iter"} and
              set(replies[1]) == {"t", "sid", "Y", "cV"},
              "the device said nothing but its public handshake values", replies)
        # A wrong confirmation, sent by hand: the device's answer is a bare refusal.
        sid = proxy.sent("pake1")[0]["sid"]
        a = raw_post(dev.http_port(), {"t": "pake3", "sid": sid, "cP": "A" * 43 + "="})
        check(a.get("code") == "auth" and set(a) <= {"t", "code", "message", "retry_ms"},
              "a wrong key confirmation gets 'auth' and nothing else", a)
        # Rate limiting: the right code right away is delayed too.
        r = installer(stack, url, tmp=tmp, claim=False)
        check(r.returncode == 1 and "wait" in r.stderr and "try again in" in r.stderr,
              "the next attempt, even with the right code, must wait", r.stderr)
        time.sleep(1.6)
        r = installer(stack, url, tmp=tmp, code="16180339", claim=False)
        check(r.returncode == 1 and "wrong setup code" in r.stderr, "second wrong code refused")
        a = raw_post(dev.http_port(), {"t": "hello", "v": 1})
        check(a.get("code") == "throttled" and 2500 <= a.get("retry_ms", 0) <= 3000,
              "the delay doubles after the second failure", a)
        time.sleep(3.1)
        r = installer(stack, url, tmp=tmp, code="14142135", claim=False)
        r = installer(stack, url, tmp=tmp, claim=False)
        check(r.returncode == 1 and "locked" in r.stderr,
              "after three wrong codes the device is locked, even for the right code",
              r.stderr)
        check(dev.applies() == [] and not os.path.exists(dev.net_config),
              "no network was written or applied")
        check("setup-code guess 3 without success: locked for 60 s" in dev.log() and
              CODE not in dev.log(),
              "the device logs the failures, never a code", dev.log())
    finally:
        proxy.stop()
        dev.stop()
    # A restart does not lift the lockout.
    dev = Device(tmp, "plant-http-2", ["--http", "127.0.0.1:0"], max_attempts=3,
                 delay_ms=1500, lockout_s=60)
    try:
        a = raw_post(dev.http_port(), {"t": "hello", "v": 1})
        check(a.get("code") == "locked", "still locked after a restart", a)
    finally:
        dev.stop()


def replay_and_tamper(stack, tmp):
    # Replay inside a live session: before the installer's second sealed
    # message, the proxy sends the first one again.
    dev = Device(tmp, "plant-http-3", ["--http", "127.0.0.1:0"])
    proxy = HttpProxy(dev.http_port())
    seen, replays = [], []

    def replay(req):
        if req.get("t") == "sealed":
            if seen:
                replays.append(raw_post(dev.http_port(), seen[0]))
            seen.append(req)
        return req
    proxy.alter = replay
    try:
        r = installer(stack, "http://127.0.0.1:%d" % proxy.port, tmp=tmp, claim=False)
        check(r.returncode == 0, "the session survives replays", r.stdout + r.stderr)
        check(len(replays) == 1 and replays[0].get("code") == "replay",
              "the replayed network message is refused as a replay", replays)
        check(dev.applies() == ["wifi " + SSID], "and the network is applied once only",
              dev.applies())
        # After the session: every recorded message is refused.
        for req in [q for q, _ in proxy.log]:
            a = raw_post(dev.http_port(), req)
            if req["t"] == "hello":
                continue
            check(a.get("t") == "error" and a.get("code") in ("session", "bad_request"),
                  "a %s of the ended session is refused (%s)" % (req["t"], a.get("code")))
        check(dev.applies() == ["wifi " + SSID], "still applied once")
    finally:
        proxy.stop()
        dev.stop()

    # Tampering: one bit of the network message's ciphertext flipped.
    dev = Device(tmp, "plant-http-4", ["--http", "127.0.0.1:0"])
    proxy = HttpProxy(dev.http_port())
    proxy.alter = lambda q: flip_ct(q) if q.get("t") == "sealed" and not proxy.sent("sealed") \
        else q
    try:
        r = installer(stack, "http://127.0.0.1:%d" % proxy.port, tmp=tmp, claim=False)
        check(r.returncode == 1 and "message authentication failed" in r.stderr,
              "an altered message is refused, and the installer says so", r.stderr)
        check(dev.applies() == [] and not os.path.exists(dev.net_config),
              "the altered network was not applied")
        check(proxy.log[-1][1].get("code") == "integrity", "the device answered 'integrity'",
              proxy.log[-1][1])
    finally:
        proxy.stop()
        dev.stop()


def expired_claim(stack, tmp, claim, saved_at):
    left = saved_at + CLAIM_TTL + 2 - time.time()
    if left > 0:
        time.sleep(left)
    dev = Device(tmp, "plant-http-5", ["--http", "127.0.0.1:0"])
    try:
        r = installer(stack, "http://127.0.0.1:%d" % dev.http_port(), tmp=tmp, claim=claim)
        check(r.returncode == 1 and "claim expired" in r.stderr and "joined" in r.stdout,
              "an expired claim is refused with the reason (the network still joined)",
              r.stdout + r.stderr)
        check(stack.thing("plant-0009") is None, "no thing was created")
        check(not dev.status().get("provisioned"), "the device is not provisioned")
    finally:
        dev.stop()


def main():
    tmp = tmpdir("commission-http")
    stack = None
    try:
        stack = Stack(tmp)
        claim = stack.save_claim(os.path.join(tmp, "claim-0009.json"), "0009")
        saved_at = time.time()
        check(oct(os.stat(claim).st_mode & 0o777) == "0o600", "a saved claim file is 0600")
        section(happy_path, stack, tmp)
        section(wrong_code, stack, tmp)
        section(replay_and_tamper, stack, tmp)
        section(expired_claim, stack, tmp, claim, saved_at)
    finally:
        if stack:
            stack.stop()
        cleanup(tmp)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
