#!/usr/bin/env python3
"""Network commissioning from removable media, end to end: the device runs
`iotprov-device commission --media DIR` (DIR standing for the mount point
of a USB stick) and publishes its device-hello (parameters only) there; the
installer's `iotprov commission --device DIR` writes commission-1.json (its
share only) and waits for device-reply.json, checks the device's
confirmation, and only then writes commission.json (its confirmation and
the sealed requests) and waits for commission-result.json. A real iotprov
stack stands behind.

For the cases that need the stick to travel, a courier thread plays the
person carrying it between the installer's directory and the device's,
altering the file on the way when asked.

Checks: happy path to a connected thing, the file renamed .done and never
applied again (a copy put back is stale and refused); a wrong passphrase
corrected by a second round without a reset; a wrong setup code refused
by the installer before it writes anything that depends on the code,
nothing applied, and the next session held back until the delay passed; a
planted device (another verifier) gets no confirmation and no sealed data;
an altered file refused and not applied; an expired claim refused.
"""
import json
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from commission import (CLAIM_TTL, GOOD_PSK, SSID, Device, Stack, check, cleanup,  # noqa: E402
                        flip_ct, installer, section, summary, tmpdir, wait_for)


def media_device(tmp, name, **kw):
    media = os.path.join(tmp, name + "-stick")
    os.makedirs(media)
    dev = Device(tmp, name, ["--media", media], **kw)
    hello = os.path.join(media, "device-hello.json")
    if not wait_for(lambda: os.path.exists(hello), 10):
        raise RuntimeError("no device-hello.json on the medium: " + dev.log())
    return dev, media


class Courier:
    """Carries the stick: installer side -> device side for commission-1.json
    and commission.json (the latter through alter(obj)), device side ->
    installer side for the answers and the device-hello."""

    TRIPS = (("commission-1.json", "device-reply.json", False),
             ("commission.json", "commission-result.json", True))

    def __init__(self, inst, media, alter=None):
        self.inst, self.media, self.alter = inst, media, alter
        self.stop_flag = False
        self.trips = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _carry(self, name, answer, altered):
        src = os.path.join(self.inst, name)
        hello = os.path.join(self.media, "device-hello.json")
        if not os.path.exists(src):
            return
        with open(src) as f:
            obj = json.load(f)
        if altered and self.alter:
            obj = self.alter(obj)
        res = os.path.join(self.media, answer)
        if os.path.exists(res):
            os.unlink(res)
        with open(os.path.join(self.media, name), "w") as f:
            json.dump(obj, f)
        os.unlink(src)
        self.trips += 1
        if wait_for(lambda: os.path.exists(res) and
                    not os.path.exists(os.path.join(self.media, name)), 30):
            time.sleep(0.4)  # a new device-hello follows a result
            shutil.copy(hello, os.path.join(self.inst, "device-hello.json"))
            shutil.copy(res, os.path.join(self.inst, answer))

    def _run(self):
        while not self.stop_flag:
            hello = os.path.join(self.media, "device-hello.json")
            if os.path.exists(hello):
                shutil.copy(hello, os.path.join(self.inst, "device-hello.json"))
            for name, answer, altered in self.TRIPS:
                self._carry(name, answer, altered)
            time.sleep(0.1)

    def stop(self):
        self.stop_flag = True
        self.thread.join(5)


def written_secrets(d):
    """Names of files in d holding a confirmation or sealed data."""
    found = []
    for name in os.listdir(d):
        with open(os.path.join(d, name)) as f:
            text = f.read()
        if '"cP"' in text or '"ct"' in text or '"msgs"' in text:
            found.append(name)
    return found


def happy_path(stack, tmp):
    dev, media = media_device(tmp, "plant-media-1")
    try:
        r = installer(stack, media, tmp=tmp, psks=("not the passphrase", GOOD_PSK),
                      serial="0301")
        check(r.returncode == 0 and "as thing plant-0301" in r.stdout,
              "the installer ends with the thing name", r.stdout + r.stderr)
        check("not joined: 4-way handshake failed" in r.stdout and
              "trying again with another passphrase (a new file for the device)" in r.stdout,
              "the wrong passphrase is corrected by a second round, no reset")
        check(dev.applies() == ["wifi " + SSID] * 2, "wrong then right network applied",
              dev.applies())
        done = os.path.join(media, "commission.json.done")
        check(os.path.exists(done) and not os.path.exists(os.path.join(media, "commission.json")),
              "the applied file was renamed commission.json.done")
        with open(done) as f:
            text = f.read()
        check(GOOD_PSK not in text and "BEGIN" not in text,
              "the file on the stick holds neither passphrase nor claim in clear")
        check(stack.thing("plant-0301") is not None, "the thing exists in the registry")
        st = dev.status()
        check(st.get("provisioned") and st.get("thingName") == "plant-0301" and
              not st.get("pending"), "the device is provisioned and connected", st)
        # Applied once: the same file put back is stale.
        shutil.copy(done, os.path.join(media, "commission.json"))
        rejected = os.path.join(media, "commission.json.rejected")
        check(bool(wait_for(lambda: os.path.exists(rejected), 10)),
              "a copy of the applied file is renamed .rejected")
        with open(os.path.join(media, "commission-result.json")) as f:
            res = json.load(f)
        check(res.get("code") == "stale", "and refused as stale", res)
        check(dev.applies() == ["wifi " + SSID] * 2, "and not applied again", dev.applies())
    finally:
        dev.stop()


def wrong_code(stack, tmp):
    dev, media = media_device(tmp, "plant-media-2", delay_ms=3000)
    try:
        r = installer(stack, media, tmp=tmp, code="27182818", claim=False)
        check(r.returncode == 1 and "wrong setup code" in r.stderr and
              "nothing was written for it" in r.stderr,
              "a wrong setup code stops the installer at the device's reply", r.stderr)
        check(written_secrets(media) == [] and dev.applies() == [],
              "no confirmation or sealed data written, nothing applied", os.listdir(media))
        t0 = time.time()
        r = installer(stack, media, tmp=tmp, claim=False)
        took = time.time() - t0
        check(r.returncode == 0 and took >= 2.0,
              "the next session waits for the delay (%.1f s), then applies" % took,
              r.stdout + r.stderr)
    finally:
        dev.stop()


def planted_device(stack, tmp):
    """Someone plants their own device-hello and answers with their own
    device-reply (a verifier for a code they chose): the installer must give
    them nothing to test guesses of the real code against offline."""
    dev, media = media_device(tmp, "plant-media-5", code="99999999")
    try:
        r = installer(stack, media, tmp=tmp, claim=False)
        check(r.returncode == 1 and "could not prove it knows it" in r.stderr,
              "the installer refuses the planted device's confirmation", r.stderr)
        check(os.path.exists(os.path.join(media, "commission-1.json.done")) and
              os.path.exists(os.path.join(media, "device-reply.json")),
              "the planted device got the installer's share and answered", os.listdir(media))
        check(not os.path.exists(os.path.join(media, "commission.json")) and
              written_secrets(media) == [],
              "the installer wrote no file with a confirmation or ciphertext",
              os.listdir(media))
        with open(os.path.join(media, "commission-1.json.done")) as f:
            one = json.load(f)
        check(sorted(one) == ["X", "sid", "t"] and one["t"] == "pake1",
              "its one file holds the share X and nothing else", one)
        check(dev.applies() == [], "nothing applied")
    finally:
        dev.stop()


def tampered(stack, tmp):
    dev, media = media_device(tmp, "plant-media-3")
    inst = os.path.join(tmp, "installer-side")
    os.makedirs(inst)

    def alter(obj):
        obj["msgs"][0] = flip_ct(obj["msgs"][0])
        return obj
    courier = Courier(inst, media, alter)
    try:
        wait_for(lambda: os.path.exists(os.path.join(inst, "device-hello.json")), 5)
        r = installer(stack, inst, tmp=tmp, claim=False)
        check(r.returncode == 1 and "message 0 refused" in r.stderr,
              "an altered file is refused, and the installer is told which message",
              r.stdout + r.stderr)
        check(dev.applies() == [], "the altered network was not applied")
    finally:
        courier.stop()
        dev.stop()


def expired_claim(stack, tmp, claim, saved_at):
    left = saved_at + CLAIM_TTL + 2 - time.time()
    if left > 0:
        time.sleep(left)
    dev, media = media_device(tmp, "plant-media-4")
    try:
        r = installer(stack, media, tmp=tmp, claim=claim)
        check(r.returncode == 1 and "claim expired" in r.stderr,
              "an expired claim is refused with the reason", r.stdout + r.stderr)
        check(stack.thing("plant-0309") is None, "no thing was created")
    finally:
        dev.stop()


def main():
    tmp = tmpdir("commission-media")
    stack = None
    try:
        stack = Stack(tmp)
        claim = stack.save_claim(os.path.join(tmp, "claim-0309.json"), "0309")
        saved_at = time.time()
        section(happy_path, stack, tmp)
        section(wrong_code, stack, tmp)
        section(planted_device, stack, tmp)
        section(tampered, stack, tmp)
        section(expired_claim, stack, tmp, claim, saved_at)
    finally:
        if stack:
            stack.stop()
        cleanup(tmp)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
