#!/usr/bin/env python3
"""The device's commissioning page in a real browser: headless Chromium
(Debian's /usr/bin/chromium, driven by playwright-core) opens the page the
device serves on 127.0.0.1, types a wrong setup code, is told to wait, types
the right one, a wrong passphrase, corrects it, chooses the claim file
(`iotprov commission --save-claim`) and reads the thing name. A screenshot
is taken at each step (into the build dir; with IOTP_UPDATE_DOCS_IMG=1 also
into docs/img/ for docs/commissioning.md). Then the thing must exist in the
registry and the device must be provisioned and connected.
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from commission import (BUILD, CODE, GOOD_PSK, NODE_WORK, PAGE, SRC, SSID, Device,  # noqa: E402
                        Stack, check, cleanup, section, summary, tmpdir)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def browser(stack, tmp):
    claim = stack.save_claim(os.path.join(tmp, "claim.json"), "0401")
    dev = Device(tmp, "plant-web-1", ["--http", "127.0.0.1:0"], delay_ms=2000, once=True)
    shots = os.path.join(BUILD, "web", "screenshots")
    os.makedirs(shots, exist_ok=True)
    try:
        url = "http://127.0.0.1:%d/" % dev.http_port()
        r = subprocess.run(["node", "test/browser.mjs", url, CODE, claim, shots, SSID, GOOD_PSK],
                           cwd=NODE_WORK, capture_output=True, text=True, timeout=240,
                           env=dict(os.environ, CHROMIUM=CHROMIUM))
        try:
            out = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            out = {"error": r.stdout + r.stderr}
        print("     " + json.dumps(out)[:1500])
        check("error" not in out and not out.get("pageErrors"), "the page ran without errors",
              out.get("error", "") + str(out.get("pageErrors")) + r.stderr[-2000:])
        check("Wrong setup code" in out.get("wrongCode", ""), "a wrong code is refused on the "
              "page", out.get("wrongCode"))
        check("wait" in out.get("throttled", ""), "the page says how long to wait",
              out.get("throttled"))
        check(out.get("device") == "Device plant-web-1", "the page names the device")
        check("wrong passphrase" in out.get("wrongPsk", ""),
              "the page shows why the network was not joined", out.get("wrongPsk"))
        check(out.get("thing") == "plant-0401", "the page ends with the thing name",
              out.get("done"))
        thing = stack.thing("plant-0401")
        check(thing is not None, "the thing exists in the registry", thing)
        st = dev.status()
        check(st.get("provisioned") and st.get("thingName") == "plant-0401" and
              not st.get("pending"), "the device is provisioned and connected", st)
        check(dev.applies() == ["wifi " + SSID] * 2, "wrong then right network applied",
              dev.applies())
        pngs = out.get("shots", [])
        check(len(pngs) == 5 and all(open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for p in pngs),
              "a screenshot of each step", pngs)
        if os.environ.get("IOTP_UPDATE_DOCS_IMG") == "1":
            for p in pngs:
                shutil.copy(p, os.path.join(SRC, "docs", "img", os.path.basename(p)))
    finally:
        dev.stop()


def main():
    missing = [p for p in (PAGE, CHROMIUM, os.path.join(NODE_WORK, "node_modules",
                                                       "playwright-core")) if not os.path.exists(p)]
    if missing:
        check(False, "needed: %s (scripts/install-deps installs chromium; the CMake build "
              "runs scripts/build-web)" % ", ".join(missing))
        return summary()
    tmp = tmpdir("commission-browser")
    stack = None
    try:
        stack = Stack(tmp)
        section(browser, stack, tmp)
    finally:
        if stack:
            stack.stop()
        cleanup(tmp)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
