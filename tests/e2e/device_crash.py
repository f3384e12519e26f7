#!/usr/bin/env python3
"""Storage that cannot brick the device, proven by killing it at every step.

IOTP_DEVICE_CRASH_AT=<step>[#n] makes iotprov-device _exit() the n-th time it
reaches <step>, as abruptly as a power cut: no cleanup, no flush. For every
step of a first provisioning by claim and of a rotation with a new key, and
for every time each step is reached, the agent is killed there; then the
device must still work with no manual repair:
  - after a killed provisioning: `connect` works if an identity became usable,
    else `provision` again succeeds (the factory key and claim are intact);
  - after a killed rotation: `connect` works right away (the old identity,
    or the new one once it has connected), and the next `rotate` succeeds;
  - no temp file survives the next run, the state dir holds the current
    identity and at most one pending one, and the service sees the device's
    certificate connect.
"""
import glob
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import device_e2e as e  # noqa: E402

# In the order a run reaches them. "<label>.tmp": temp file written and
# synced, not renamed; "<label>.renamed": renamed, directory not synced.
STEPS = ["config.tmp", "config.renamed", "meta.tmp", "meta.renamed", "state.tmp",
         "state.renamed", "key.tmp", "key.renamed", "created", "cert.tmp", "cert.renamed",
         "registered", "connected", "committed", "release"]


def leftovers(st):
    return [n for n in os.listdir(st) if ".tmp" in n]


def identities(st):
    return sorted(int(m.group(1)) for n in os.listdir(st)
                  for m in [re.match(r"id-(\d+)\.json$", n)] if m)


def consistent(st, what):
    s = e.status(st)  # opening sweeps what a crash left
    e.check(leftovers(st) == [], what + ": no temp file after the next run", leftovers(st))
    ids = identities(st)
    e.check(len(ids) <= 2, what + ": at most current + pending identities", ids)
    return s


def crash_runs(stack, st, args, after, label, completed=None):
    """Runs args with each step/occurrence crash; after(step) checks, and
    completed() runs when a run was not killed (the step occurs fewer
    times)."""
    crashed = 0
    for step in STEPS:
        n = 1
        while n < 6:
            env = dict(os.environ, IOTP_DEVICE_CRASH_AT="%s#%d" % (step, n))
            r = e.device(st, *args, env=env)
            if r.returncode == 0:
                if completed:
                    completed()
                break  # the n-th occurrence does not exist: the run completed
            if not e.check(r.returncode == e.CRASH_EXIT and "CRASH_AT reached" in r.stderr,
                           "%s killed at %s#%d (exit %d)" % (label, step, n, r.returncode),
                           r.stderr):
                return crashed
            crashed += 1
            after("%s#%d" % (step, n))
            n += 1
        else:
            e.check(False, "%s: %s reached more than 5 times?" % (label, step))
    return crashed


def provisioning(stack, tmp):
    st = os.path.join(tmp, "prov")
    e.device(st, "keygen")
    factory = open(os.path.join(st, "factory.key")).read()
    cmd = ["provision", "--method", "claim", "--claim-cert", stack.claim_cert,
           "--claim-key", stack.claim_key, "--new-key"] + e.fleet_args(stack, "crash-p")

    def reset():
        r = e.device(st, "reset")
        e.check(r.returncode == 0 and not e.status(st)["provisioned"], "back to factory state",
                r.stderr)

    def after(where):
        s = consistent(st, "provision killed at " + where)
        # What an operator (or the boot script) does: connect when an
        # identity is there, else run the same provisioning again.
        if s["provisioned"]:
            r = e.device(st, "connect")
        else:
            r = e.device(st, *cmd)
        e.check(r.returncode == 0, "provision killed at %s: the device gets connected" % where,
                r.stderr)
        s = e.status(st)
        e.check(s["provisioned"] and s["thingName"] == "dev-crash-p",
                "provision killed at %s: provisioned as dev-crash-p" % where, s)
        e.check(open(os.path.join(st, "factory.key")).read() == factory,
                "provision killed at %s: factory key intact" % where)
        reset()

    n = crash_runs(stack, st, cmd, after, "provision", completed=reset)
    e.check(n >= len(STEPS), "provision: killed at %d points" % n)
    r = e.device(st, *cmd)
    e.check(r.returncode == 0, "provision after all the crashes", r.stderr)


def rotation(stack, tmp):
    st = os.path.join(tmp, "rot")
    r = e.device(st, "provision", "--method", "claim", "--claim-cert", stack.claim_cert,
                 "--claim-key", stack.claim_key, *e.fleet_args(stack, "crash-r"))
    if not e.check(r.returncode == 0, "rotation: provisioned first", r.stderr):
        return
    seen = set()

    def after(where):
        before = e.status(st)
        e.check(before["provisioned"], "rotate killed at %s: still provisioned" % where, before)
        r = e.device(st, "connect")
        e.check(r.returncode == 0, "rotate killed at %s: connect works at once" % where,
                r.stderr)
        s = consistent(st, "rotate killed at " + where)
        e.check("connected with cert %s" % s["certificateId"] in stack.log_text(),
                "rotate killed at %s: the broker saw its certificate" % where)
        key = s["keyUri"]
        e.check(key == "file:factory.key" or os.path.exists(os.path.join(st, key[5:])),
                "rotate killed at %s: the current key file exists" % where, key)
        seen.add(s["certificateId"])

    n = crash_runs(stack, st, ["rotate", "--new-key"], after, "rotate")
    e.check(n >= len(STEPS) - 2, "rotate: killed at %d points" % n)
    r = e.device(st, "rotate", "--new-key")
    e.check(r.returncode == 0, "rotate after all the crashes", r.stderr)
    r = e.device(st, "connect")
    e.check(r.returncode == 0, "connect after the last rotation", r.stderr)
    s = e.status(st)
    files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(st, "*-*")))
    e.check(files == ["id-%d.crt" % identities(st)[0], "id-%d.json" % identities(st)[0],
                      s["keyUri"][5:]],
            "rotate: one identity and its key left after all", files)
    t = stack.thing("dev-crash-r")
    e.check(t is not None and any(a.endswith(s["certificateId"])
                                  for a in stack.principals("dev-crash-r")),
            "rotate: the thing has the final certificate")


def main():
    if not os.access(e.DEVICE, os.X_OK) or not os.access(e.IOTPROV, os.X_OK):
        print("iotprov / iotprov-device not built")
        return 1
    tmp = e.tmpdir("device-crash")
    stack = e.Stack(tmp)
    try:
        for part in (provisioning, rotation):
            e.section(part, stack, tmp)
    finally:
        stack.stop()
    if e.failures:
        print(stack.log_text()[-4000:])
    e.cleanup(tmp)
    return e.summary()


if __name__ == "__main__":
    sys.exit(main())
