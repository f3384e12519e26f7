#!/usr/bin/env python3
"""A pre-provisioning hook that hangs, fails or talks nonsense never lets a
device in and never stalls the broker for anyone else.

`iotprov up` with `[provisioning] hook_timeout_ms = 2000`, a second fleet
template "HookFleet" whose preProvisioningHook is an http://127.0.0.1 server
the test runs, and a claim that may use it. The server's behaviour is
switched between parts; devices provision by claim over MQTT with
`iotprov-device simulate`:

  - hang (the hook accepts and never answers, for more devices at once than
    the plugin has general workers): each provision request is rejected
    AccessDenied after the hook timeout, not before, and meanwhile devices
    of the hook-less template (create-from-csr and provision, then connect)
    each finish in under a second, because hooked requests run on the
    plugin's own hook workers;
  - 500 (even with an allowing body) and a body that is not JSON: rejected
    AccessDenied, fail closed;
  - allow: the hook gets a signed request per device (HMAC of the data
    dir's hook-secret) and every device provisions and connects.

Nothing is half made: rejected devices have no thing, their certificates
from create-from-csr stay unattached PENDING_ACTIVATION (for the sweep), and
`iotprov check` finds no problem.
"""
import hashlib
import hmac
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import device_e2e as e  # noqa: E402
import reliab_e2e as rel  # noqa: E402

HOOK_TEMPLATE = "HookFleet"
HOOK_TIMEOUT_MS = 2000
# Devices whose hook call hangs at once: more than the plugin's general
# workers (plugin_opt_workers, 2 by default), so the test fails if hooked
# requests could occupy them; within its hook workers (plugin_opt_hook_workers,
# 4 by default), so all of them time out together.
HANGING = int(os.environ.get("IOTP_HOOK_HANGING", "3"))


class Hook(http.server.ThreadingHTTPServer):
    """The hook: mode is "hang", "500", "garbage" or "allow"; every request
    is recorded with whether its signature verifies."""
    daemon_threads = True

    def __init__(self, data_dir):
        super().__init__(("127.0.0.1", 0), Handler)
        self.data_dir = data_dir
        self.mode = "allow"
        self.release = threading.Event()
        self.requests = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def secret(self):
        with open(os.path.join(self.data_dir, "hook-secret"), "rb") as f:
            return f.read().rstrip(b"\n")

    def seen(self, mode):
        with self.lock:
            return [r for r in self.requests if r["mode"] == mode]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        srv = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ts = self.headers.get("X-Iotprov-Timestamp", "")
        want = "v1=" + hmac.new(srv.secret(), ts.encode() + b"." + body,
                                hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(want, self.headers.get("X-Iotprov-Signature", "")) and \
            ts.isdigit() and abs(time.time() - int(ts)) <= 300
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        mode = srv.mode
        with srv.lock:
            srv.requests.append({"mode": mode, "signed": signed, "doc": doc, "at": time.time()})
        if mode == "hang":
            srv.release.wait(30)
            return
        if mode == "500":
            out, status = b'{"allowProvisioning": true}', 500
        elif mode == "garbage":
            out, status = b"<html>allowProvisioning: true", 200
        else:
            out, status = json.dumps({"allowProvisioning": signed}).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def simulate(stack, template, devices, claim=None, concurrency=4):
    cert, key = claim or (stack.claim_cert, stack.claim_key)
    return subprocess.Popen(
        [e.DEVICE, "simulate", "--devices", str(devices), "--endpoint", stack.mqtt,
         "--ca", stack.ca, "--claim-cert", cert, "--claim-key", key, "--template", template,
         "--concurrency", str(concurrency), "--timeout", "10", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc):
    out, err = proc.communicate(timeout=60)
    try:
        o = json.loads(out)
    except ValueError:
        o = {}
    if any(m in err for m in e.SANITIZER_MARKS):
        e.check(False, "sanitizer report from iotprov-device simulate", err)
    return o, out + err[-1500:]


def refused(o, n):
    f = o.get("failures", {})
    return o.get("passed") == 0 and o.get("failed") == n and \
        sum(v for k, v in f.items() if re.match(r"provision: .*AccessDenied", k)) == n


def hang(stack, hook, ctx):
    hook.mode = "hang"
    t0 = time.time()
    stuck = simulate(stack, HOOK_TEMPLATE, HANGING, ctx["claim"], concurrency=HANGING)
    e.check(e.wait_for(lambda: hook.seen("hang"), 15, 0.02), "the hook is being asked")
    # while the hook hangs, other devices are served as usual
    t1 = time.time()
    other, text = finish(simulate(stack, e.TEMPLATE, 4, concurrency=1))
    other_s = time.time() - t1
    e.check(other.get("passed") == 4 and other.get("failed") == 0,
            "while the hook hangs: 4 devices of the hook-less template pass", text)
    e.check(other.get("latencyMs", {}).get("max", 10 ** 6) < 1000,
            "each of them provisions and connects in under 1 s (max %s ms, %.1f s in all)" %
            (other.get("latencyMs", {}).get("max"), other_s))
    e.check(stuck.poll() is None, "the hooked device(s) still waiting meanwhile")
    o, text = finish(stuck)
    took = time.time() - t0
    e.check(refused(o, HANGING), "hang: every provision is rejected AccessDenied", text)
    e.check(len(hook.seen("hang")) == HANGING, "hang: the hook was asked once per device")
    e.check(HOOK_TIMEOUT_MS / 1000.0 - 0.2 <= took < HANGING * HOOK_TIMEOUT_MS / 1000.0 + 5,
            "hang: the answers come after the hook timeout (%.1f s for %d devices, timeout "
            "%.1f s)" % (took, HANGING, HOOK_TIMEOUT_MS / 1000.0))
    ctx["runs"].append((o.get("run"), HANGING, False))
    ctx["runs"].append((other.get("run"), 4, True))


def error_and_garbage(stack, hook, ctx):
    for mode in ("500", "garbage"):
        hook.mode = mode
        t0 = time.time()
        o, text = finish(simulate(stack, HOOK_TEMPLATE, 2, ctx["claim"]))
        e.check(refused(o, 2), "%s: both devices rejected AccessDenied (fail closed)" % mode,
                text)
        e.check(len(hook.seen(mode)) == 2, "%s: the hook was asked once per device (%d)" %
                (mode, len(hook.seen(mode))))
        e.check(time.time() - t0 < HOOK_TIMEOUT_MS / 1000.0 + 2,
                "%s: refused at once, not after a timeout" % mode)
        ctx["runs"].append((o.get("run"), 2, False))


def allow(stack, hook, ctx):
    hook.mode = "allow"
    o, text = finish(simulate(stack, HOOK_TEMPLATE, 5, ctx["claim"]))
    e.check(o.get("passed") == 5 and o.get("failed") == 0, "allow: 5 passed, 0 failed", text)
    reqs = hook.seen("allow")
    e.check(len(reqs) == 5 and all(r["signed"] for r in reqs),
            "allow: five requests, each signed with the hook secret")
    docs = [r["doc"] or {} for r in reqs]
    e.check(all(d.get("templateArn", "").endswith("provisioningtemplate/" + HOOK_TEMPLATE) and
                d.get("claimCertificateId") == ctx["claim_id"] and d.get("certificateId") and
                "SerialNumber" in d.get("parameters", {}) for d in docs),
            "allow: each request names the template, the claim, the new certificate and the "
            "parameters", docs[:1])
    ctx["runs"].append((o.get("run"), 5, True))


def nothing_half_made(stack, hook, ctx):
    things = {t["thingName"] for t in stack.all_things()}
    certs = {c["certificateId"]: c["status"] for c in stack.all_certificates()}
    for run, n, ok in ctx["runs"]:
        mine = sorted(t for t in things if run and t.startswith("dev-sim-%s-" % run))
        if ok:
            owned = [stack.principals(t) for t in mine]
            e.check(len(mine) == n and all(len(p) == 1 and
                                           certs.get(p[0].rsplit("/", 1)[-1]) == "ACTIVE"
                                           for p in owned),
                    "run %s: %d things, each with its ACTIVE certificate" % (run, n))
        else:
            e.check(run is not None and not mine, "run %s (rejected): no thing created %s" %
                    (run, mine))
    hooked = [r["doc"]["certificateId"] for r in hook.requests
              if r["mode"] != "allow" and r["doc"]]
    e.check(all(certs.get(c) in (None, "PENDING_ACTIVATION") for c in hooked),
            "the certificates of rejected devices were never activated",
            [(c, certs.get(c)) for c in hooked])
    for c in hooked:
        if certs.get(c) is not None:
            p = stack.iot.list_principal_things(principal="arn:aws:iot:%s:%s:cert/%s" % (
                e.REGION, "123456789012", c)).get("things", [])
            e.check(not p, "certificate %s of a rejected device is attached to nothing" % c[:12])
    st, report, err = rel.check_store(stack.dir)
    e.check(st == 0 and report is not None and report["errors"] == 0,
            "iotprov check: no problem", (report or {}).get("problems", err))
    log = stack.log_text()
    e.check(not any(m in log for m in e.SANITIZER_MARKS), "no sanitizer report in the stack")


def main():
    for p in (e.DEVICE, e.IOTPROV):
        if not os.access(p, os.X_OK):
            print("%s not available" % p)
            return 1
    t_start = time.time()
    tmp = e.tmpdir("fault-webhook")
    stack = e.Stack(tmp, conf_edits=[(";hook_timeout_ms = 5000",
                                      "hook_timeout_ms = %d" % HOOK_TIMEOUT_MS)])
    hook = Hook(stack.dir)
    try:
        body = dict(e.FLEET_TEMPLATE)
        stack.iot.create_provisioning_template(
            templateName=HOOK_TEMPLATE, templateBody=json.dumps(body), enabled=True,
            provisioningRoleArn="arn:aws:iam::123456789012:role/provisioning",
            type="FLEET_PROVISIONING",
            preProvisioningHook={"targetArn": "http://127.0.0.1:%d/check" % hook.server_port,
                                 "payloadVersion": "2020-04-01"})
        stack.iot.create_policy(policyName="HookClaimPolicy",
                                policyDocument=e.claim_policy(HOOK_TEMPLATE))
        cert, key, cid = stack.make_claim("hook-claim", "HookClaimPolicy")
        ctx = {"claim": (cert, key), "claim_id": cid, "runs": []}
        for part in (hang, error_and_garbage, allow, nothing_half_made):
            e.section(part, stack, hook, ctx)
    finally:
        hook.release.set()
        hook.shutdown()
        stack.stop()
    took = time.time() - t_start
    e.check(took < 60, "the whole test within 60 s (%.1f s)" % took)
    if e.failures:
        print(stack.log_text()[-5000:])
    e.cleanup(tmp)
    return e.summary()


if __name__ == "__main__":
    sys.exit(main())
