#!/usr/bin/env python3
"""kill -9 of mosquitto (with the iotprov plugin) while 200 devices provision
by claim loses no acknowledged device and leaves nothing half made.

The stack is made with `iotprov init` + `iotprov up` (template, claim), then
run as its two processes by hand (iotprovd, and mosquitto on the
mosquitto.conf `up` wrote), because `up` stops everything when one child
dies. `iotprov-device simulate --devices 200 --rate 20` runs in the
background; when about a third have provisioned, mosquitto gets SIGKILL and
is started again on the same config and port a second later.

The simulator tries each device once (it has no retry option), so devices
in flight at the kill, or started while the broker is down, fail; the test
then does what an operator does, runs the simulator again for that many
devices, and checks:

  - the first run: some passed before and after the outage, failures are
    only claim-connect / create-from-csr / provision / connect errors;
  - the second run: "M passed, 0 failed", so 200 devices end provisioned
    and connected;
  - every thing of both runs has exactly one principal, an ACTIVE
    certificate of its own (all distinct), at least 200 of them, and the
    200 that passed are among them;
  - certificates still PENDING_ACTIVATION are at most the failed devices
    (create-from-csr answered, provision never came: the sweep deletes
    them when their token expires), and none is attached to a thing;
  - `iotprov check` finds no problem.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import device_e2e as e  # noqa: E402
import reliab_e2e as rel  # noqa: E402

N = 200
MOSQUITTO = "/usr/sbin/mosquitto"


class Broker:
    """mosquitto -c DATA_DIR/broker/mosquitto.conf, as `iotprov up` runs it."""

    def __init__(self, stack):
        self.stack = stack
        self.conf = os.path.join(stack.dir, "broker", "mosquitto.conf")
        self.log_path = os.path.join(stack.tmp, "mosquitto.log")
        self.proc = None

    def start(self):
        env = dict(os.environ)
        if e.sanitized_build():
            rt = e.run(["clang", "-print-file-name=libclang_rt.asan-x86_64.so"]).stdout.strip()
            env["LD_PRELOAD"] = rt
            env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=log,
                                     stderr=subprocess.STDOUT, env=env)
        log.close()
        if not e.wait_for(self._listening, 30, 0.05):
            raise RuntimeError("mosquitto did not listen:\n" + self.log_text()[-3000:])

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError("mosquitto exited:\n" + self.log_text()[-3000:])
        try:
            socket.create_connection(("127.0.0.1", self.stack.mqtt_port), 0.5).close()
            return True
        except OSError:
            return False

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return None

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


def simulate(stack, devices, rate):
    cmd = [e.DEVICE, "simulate", "--devices", str(devices), "--endpoint", stack.mqtt,
           "--ca", stack.ca, "--claim-cert", stack.claim_cert, "--claim-key", stack.claim_key,
           "--template", e.TEMPLATE, "--rate", str(rate), "--concurrency", "8",
           "--timeout", "10"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Progress(threading.Thread):
    """Reads the simulator's stderr; `done` is the last progress count."""

    def __init__(self, proc):
        super().__init__(daemon=True)
        self.proc, self.done, self.text = proc, 0, []

    def run(self):
        buf = ""
        while True:
            ch = self.proc.stderr.read(1)
            if not ch:
                return
            buf += ch
            if ch in "\r\n":
                self.text.append(buf)
                m = re.search(r"\] (\d+)/%d" % N, buf)
                if m:
                    self.done = int(m.group(1))
                buf = ""


def summary_of(out):
    lines = out.strip().splitlines()
    m = re.match(r"^(\d+) passed, (\d+) failed$", lines[-1]) if lines else None
    run_id = re.search(r"run ([0-9a-f]{8})", out)
    return (int(m.group(1)), int(m.group(2))) if m else (None, None), \
        (run_id.group(1) if run_id else None)


def kill_and_restart(stack, broker, state):
    certs_before = {c["certificateId"] for c in stack.all_certificates()}
    t0 = time.time()
    sim = simulate(stack, N, 20)
    prog = Progress(sim)
    prog.start()
    hit = e.wait_for(lambda: prog.done >= N // 3 or sim.poll() is not None, 60, 0.02)
    e.check(hit and sim.poll() is None, "the simulator reached a third (%d/%d)" % (prog.done, N))
    at_kill = prog.done
    broker.kill()
    time.sleep(1.0)
    broker.start()
    print("mosquitto killed at %d/%d and restarted" % (at_kill, N))
    out, _ = sim.communicate(timeout=120)
    prog.join(5)
    print(out)
    (passed, failed), run1 = summary_of(out)
    e.check(passed is not None and passed + failed == N,
            "first run: the summary counts every device", out + "".join(prog.text)[-2000:])
    e.check(passed is not None and passed >= at_kill // 2 and 0 < failed < N // 2,
            "first run: devices before and after the outage passed, only some failed "
            "(%s passed, %s failed)" % (passed, failed), out)
    causes = re.findall(r"^\s+\d+\s+([a-z -]+):", out, re.M)
    e.check(all(c.strip() in ("claim connect", "create-from-csr", "provision", "connect")
                for c in causes), "first run: failures are connection-level steps %s" % causes)
    failed = failed or 0
    # the operator's retry of the devices that did not make it
    sim2 = simulate(stack, max(failed, 1), 50)
    out2, err2 = sim2.communicate(timeout=120)
    print(out2)
    (p2, f2), run2 = summary_of(out2)
    e.check(sim2.returncode == 0 and f2 == 0 and p2 == max(failed, 1),
            "second run: '%d passed, 0 failed'" % max(failed, 1), out2 + err2[-2000:])
    took = time.time() - t0
    e.check(took < 90, "kill, restart and both runs within 90 s (%.1f s)" % took)
    state.update(run1=run1, run2=run2, passed=passed, failed=failed, before=certs_before,
                 extra=max(failed, 1) - failed)


def registry(stack, broker, state):
    prefixes = tuple("dev-sim-%s-" % r for r in (state["run1"], state["run2"]) if r)
    things = [t["thingName"] for t in stack.all_things() if t["thingName"].startswith(prefixes)]
    want = N + state["extra"]
    e.check(len(things) == len(set(things)) and want <= len(things) <= want + state["failed"],
            "%d..%d distinct things (replies lost at the kill may leave a provisioned "
            "device the simulator counted failed): %d" %
            (want, want + state["failed"], len(things)))
    certs = {c["certificateId"]: c["status"] for c in stack.all_certificates()
             if c["certificateId"] not in state["before"]}
    owners = {}
    bad = []
    for t in things:
        p = stack.principals(t)
        if len(p) != 1:
            bad.append((t, p))
            continue
        cid = p[0].rsplit("/", 1)[-1]
        owners.setdefault(cid, []).append(t)
        if certs.get(cid) != "ACTIVE":
            bad.append((t, cid, certs.get(cid)))
    e.check(not bad, "each thing has one principal, an ACTIVE certificate", bad[:5])
    e.check(all(len(v) == 1 for v in owners.values()) and len(owners) == len(things),
            "every thing's certificate is its own (%d distinct)" % len(owners))
    active = [c for c, s in certs.items() if s == "ACTIVE"]
    e.check(sorted(active) == sorted(owners), "no ACTIVE certificate without its thing "
            "(%d active, %d owned)" % (len(active), len(owners)))
    pending = [c for c, s in certs.items() if s == "PENDING_ACTIVATION"]
    e.check(len(pending) <= state["failed"] and not set(pending) & set(owners),
            "PENDING_ACTIVATION left only by failed devices, none attached (%d <= %d)" %
            (len(pending), state["failed"]))
    other = [s for s in certs.values() if s not in ("ACTIVE", "PENDING_ACTIVATION")]
    e.check(not other, "no certificate in another state %s" % other[:5])
    st, report, err = rel.check_store(stack.dir)
    e.check(st == 0 and report is not None and report["errors"] == 0,
            "iotprov check: no problem", (report or {}).get("problems", err))
    e.check("ERROR: AddressSanitizer" not in broker.log_text() and
            "runtime error:" not in broker.log_text(), "no sanitizer report from the plugin")


def main():
    for p in (e.DEVICE, e.IOTPROV, MOSQUITTO):
        if not os.access(p, os.X_OK):
            print("%s not available" % p)
            return 1
    tmp = e.tmpdir("fault-broker-kill")
    stack = e.Stack(tmp)
    stack.stop()  # from here on the two processes run by hand
    rel.wait_port_free(stack.api_port)
    rel.wait_port_free(stack.mqtt_port)
    daemon = rel.Iotprovd(stack.dir, os.path.join(tmp, "iotprovd.log"), port=stack.api_port)
    broker = Broker(stack)
    state = {}
    try:
        broker.start()
        e.section(kill_and_restart, stack, broker, state)
        if "run1" in state:
            e.section(registry, stack, broker, state)
    finally:
        broker.stop()
        rc = daemon.stop()
    e.check(rc == 0, "iotprovd stops cleanly on SIGTERM (exit %s)" % rc)
    with open(daemon.log_path, errors="replace") as f:
        daemon_log = f.read()
    e.check(not any(m in daemon_log for m in e.SANITIZER_MARKS),
            "no sanitizer report from iotprovd")
    if e.failures:
        print(broker.log_text()[-4000:])
        print(daemon_log[-3000:])
    e.cleanup(tmp)
    return e.summary()


if __name__ == "__main__":
    sys.exit(main())
