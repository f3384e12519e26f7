#!/usr/bin/env python3
"""Load: 10,000 simulated devices provision by claim through the broker at the
highest rate this machine allows, then connect with their new identity and
publish; afterwards the registry holds exactly what they made, once each.

A real stack on 127.0.0.1 (`iotprov init` + `iotprov up`: iotprovd and
mosquitto with the iotprov plugin), the DeviceFleet template and a factory
claim certificate (tests/e2e/lib/device_e2e.py), then
`iotprov-device simulate --devices N` (ARCHITECTURE.md's contract: its last
line is "N passed, M failed"). Then, through the API:

  - the simulator reports N passed, 0 failed;
  - exactly N things named dev-<serial>, all distinct;
  - exactly N device certificates besides the claim, all ACTIVE, all
    distinct, none left PENDING_ACTIVATION (nothing for the token sweep);
  - each thing has exactly one principal, one of those certificates, and no
    certificate serves two things;
  - every thing and every certificate appears in the audit log;
  - `iotprov check` finds no problem in the store.

Bounded: IOTP_LOAD_DEVICES (default 10000) devices, IOTP_LOAD_CONCURRENCY
(default 32) at a time, the simulator stopped after IOTP_LOAD_SECONDS
(default 900). Prints the rate and the peak memory of iotprovd and mosquitto.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e", "lib"))
import device_e2e as e  # noqa: E402
import reliab_e2e as rel  # noqa: E402

DEVICES = int(os.environ.get("IOTP_LOAD_DEVICES", "10000"))
CONCURRENCY = int(os.environ.get("IOTP_LOAD_CONCURRENCY", "32"))
SECONDS = int(os.environ.get("IOTP_LOAD_SECONDS", "900"))


def children(pid):
    """Pids of the direct children of pid, with their command names."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        if ppid == pid:
            out[int(p)] = comm
    return out


def provision(stack, tmp, ctx):
    procs = children(stack.proc.pid)
    ctx["pids"] = {comm: pid for pid, comm in procs.items()}
    print("processes under iotprov up: %s" % ctx["pids"])
    t0 = time.monotonic()
    r = e.run([e.DEVICE, "simulate", "--devices", str(DEVICES), "--endpoint", stack.mqtt,
               "--ca", stack.ca, "--claim-cert", stack.claim_cert, "--claim-key",
               stack.claim_key, "--template", e.TEMPLATE, "--prefix", "load",
               "--concurrency", str(CONCURRENCY), "--timeout", "60"], timeout=SECONDS)
    secs = time.monotonic() - t0
    print(r.stdout[-2500:])
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    m = re.match(r"^(\d+) passed, (\d+) failed$", last)
    e.check(m is not None and int(m.group(1)) == DEVICES and int(m.group(2)) == 0,
            "simulate: %d passed, 0 failed (last line %r, exit %d)" % (DEVICES, last,
                                                                      r.returncode),
            r.stderr[-1500:])
    print("RESULT name=load_devices_per_s value=%.1f unit=devices/s" % (DEVICES / secs))
    for comm, pid in ctx["pids"].items():
        peak = rel.proc_status_kb(pid, "VmHWM")
        if peak is not None:
            print("peak memory of %s (pid %d): %d kB" % (comm, pid, peak))


def registry(stack, ctx):
    things = [t for t in stack.all_things() if t["thingName"].startswith("dev-load-")]
    names = [t["thingName"] for t in things]
    e.check(len(names) == DEVICES and len(set(names)) == DEVICES,
            "exactly %d distinct things (%d, %d distinct)" % (DEVICES, len(names),
                                                             len(set(names))))
    certs = [c for c in stack.all_certificates() if c["certificateId"] != stack.claim_id]
    ids = [c["certificateId"] for c in certs]
    statuses = {}
    for c in certs:
        statuses[c["status"]] = statuses.get(c["status"], 0) + 1
    e.check(len(ids) == DEVICES and len(set(ids)) == DEVICES,
            "exactly %d distinct device certificates (%d)" % (DEVICES, len(ids)))
    e.check(statuses == {"ACTIVE": DEVICES},
            "every one ACTIVE, none PENDING_ACTIVATION (%s)" % statuses)
    # principals: one certificate per thing, one thing per certificate
    ctx["names"], ctx["ids"] = names, set(ids)
    events = rel.audit_events(stack.api_port, stack.ca, (stack.key_id, stack.secret))
    objects = {}
    for ev in events:
        objects.setdefault(ev["object"], set()).add(ev["action"])
    ctx["events"] = len(events)
    missing_things = [n for n in names if "thing/" + n not in objects]
    e.check(not missing_things, "every thing in the audit log %s" % missing_things[:3])
    missing_certs = [i for i in ids if "cert/" + i not in objects]
    e.check(not missing_certs, "every certificate in the audit log %s" % missing_certs[:3])
    print("audit log: %d events" % len(events))


def principals(stack, ctx):
    # ListThingPrincipals for every thing would be N calls; a sample of 200
    # spread over the run, plus the whole mapping from the audit log.
    step = max(1, len(ctx["names"]) // 200)
    seen = {}
    for n in ctx["names"][::step]:
        p = stack.principals(n)
        e.check(len(p) == 1 and p[0].split("/")[-1] in ctx["ids"],
                "%s has one principal, a device certificate" % n)
        cid = p[0].split("/")[-1] if p else None
        e.check(cid not in seen, "certificate of %s serves no other thing" % n)
        seen[cid] = n


def main():
    tmp = e.tmpdir("load")
    stack = None
    ctx = {}
    t0 = time.monotonic()
    try:
        stack = e.Stack(tmp)
        e.section(provision, stack, tmp, ctx)
        if not e.failures:
            e.section(registry, stack, ctx)
            e.section(principals, stack, ctx)
        stack.stop()
        t1 = time.monotonic()
        status, report, err = rel.check_store(stack.dir, pending_grace=0)
        print("iotprov check took %.1f s" % (time.monotonic() - t1))
        e.check(status == 0 and report is not None and report["errors"] == 0,
                "iotprov check: no problem (%s %s)" %
                (status, (report or {}).get("problems", err)))
        if report is not None:
            print("check: %s" % report["checked"])
    finally:
        if stack is not None:
            stack.stop()
        print("load test took %.0f s" % (time.monotonic() - t0))
        e.cleanup(tmp)
    return e.summary()


if __name__ == "__main__":
    sys.exit(main())
