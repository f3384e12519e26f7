#!/usr/bin/env python3
"""PostgreSQL restarted under a registration load, with two hosts on it
(docs/scale-out.md): run it under tests/pg/pg_cluster.py (ctest:
pg.restart_load).

Two clients, one per iotprovd, call RegisterThing (a template that creates
a thing, issues a certificate from a CSR and attaches a policy) in a loop,
each registration retried, as an AWS SDK would, while the answer is
retryable (5xx or ThrottlingException). Meanwhile the server is restarted
three times with `pg_ctl restart -m fast`. What an operator checks afterwards:
- every acknowledged registration is in the registry, none is there twice
  (one thing, one certificate attached, one thing.create and one
  provision.apply event each), and nothing else was registered;
- the clients saw only retryable errors while the server was away (or
  none: a connection that was idle through the restart is replaced before
  use), both daemons reconnected, and daemons and brokers kept running;
- the brokers' change feeds came back: a certificate revoked through
  daemon A is disconnected from broker B within 1 s after the restarts;
- `iotprov check` finds the registry consistent.
"""
import json
import os
import shutil
import sys
import tempfile
import threading
import time

from botocore.exceptions import BotoCoreError, ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e", "lib"))
from api_e2e import IOTPROV, check, openssl, run, section, summary  # noqa: E402
from deploy import (Host, device_policy, init_deployment, missing_programs,  # noqa: E402
                    psql, restart_postgresql, revocation_kicks)

RESTARTS = 3
ACKS_PER_PHASE = 100       # acknowledged registrations before each restart and after the last
PHASE_SECONDS = 40         # at most this long for each phase
GIVE_UP_SECONDS = 60       # one registration retried this long at most

TEMPLATE = json.dumps({
    "Parameters": {"ThingName": {"Type": "String"}, "CSR": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {
            "ThingName": {"Ref": "ThingName"}, "AttributePayload": {"batch": "restart"}}},
        "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
            "CertificateSigningRequest": {"Ref": "CSR"}, "Status": "ACTIVE"}},
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "devpolicy"}}}})


def retryable(e):
    if isinstance(e, ClientError):
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or e.response["Error"]["Code"] == "ThrottlingException"
    return False


class Client(threading.Thread):
    """Registers ld-<host>-NNNNN through one daemon until told to stop."""

    def __init__(self, host, csr):
        super().__init__(daemon=True)
        self.host = host
        self.csr = csr
        self.iot = host.iot(timeout=90)
        self.acked = []
        self.retries = 0
        self.slowest = 0.0     # seconds, retries included
        self.errors = []       # non-retryable answers: each a test failure
        self.stopping = threading.Event()

    def run(self):
        i = 0
        while not self.stopping.is_set():
            name = "ld-%s-%05d" % (self.host.name, i)
            t0 = time.monotonic()
            give_up = t0 + GIVE_UP_SECONDS
            while True:
                try:
                    self.iot.register_thing(templateBody=TEMPLATE,
                                            parameters={"ThingName": name, "CSR": self.csr})
                    self.acked.append(name)
                    self.slowest = max(self.slowest, time.monotonic() - t0)
                    break
                except (ClientError, BotoCoreError) as e:
                    if not retryable(e) or time.monotonic() > give_up:
                        self.errors.append((name, repr(e)[:200]))
                        break
                    self.retries += 1
                    time.sleep(0.05)
            i += 1


def acked(clients):
    return sum(len(c.acked) for c in clients)


def wait_acks(clients, target):
    end = time.monotonic() + PHASE_SECONDS
    while acked(clients) < target and time.monotonic() < end:
        if any(not c.is_alive() for c in clients):
            break
        time.sleep(0.05)
    return acked(clients) >= target


def load_with_restarts(ctx):
    a, b = ctx.a, ctx.b
    device_policy(a.iot(), "devpolicy")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "dev.key", cwd=ctx.tmp)
    openssl("req", "-new", "-key", "dev.key", "-subj", "/CN=load", "-out", "dev.csr", cwd=ctx.tmp)
    with open(os.path.join(ctx.tmp, "dev.csr")) as f:
        csr = f.read()
    certs_before = int(psql("SELECT COUNT(*) FROM certificates")[0][0])
    clients = [Client(a, csr), Client(b, csr)]
    for c in clients:
        c.start()
    target = 0
    for n in range(RESTARTS):
        target = acked(clients) + ACKS_PER_PHASE
        check(wait_acks(clients, target), "%d registrations acknowledged before restart %d" %
              (target, n + 1))
        t0 = time.monotonic()
        restart_postgresql()
        print("restart %d: pg_ctl restart -m fast took %.2f s, %d acknowledged so far" %
              (n + 1, time.monotonic() - t0, acked(clients)), flush=True)
    target = acked(clients) + ACKS_PER_PHASE
    check(wait_acks(clients, target), "registrations go on after the restarts (%d)" % target)
    for c in clients:
        c.stopping.set()
    for c in clients:
        c.join(timeout=GIVE_UP_SECONDS + 30)
    check(all(not c.is_alive() for c in clients), "both clients finished")
    errors = [e for c in clients for e in c.errors]
    retries = sum(c.retries for c in clients)
    names = sorted(n for c in clients for n in c.acked)
    print("load: %d registrations acknowledged (A %d, B %d), %d retried answers" %
          (len(names), len(clients[0].acked), len(clients[1].acked), retries))
    check(not errors, "the clients saw only retryable errors (%s)" % errors[:3])
    for h in (a, b):
        n = h.log_text("iotprovd.log").count("store: reconnected to PostgreSQL")
        check(n >= RESTARTS, "daemon %s reconnected after each restart (%d times)" % (h.name, n))
    slowest = max(c.slowest for c in clients)
    print("slowest registration, retries included: %.2f s" % slowest)
    check(len(set(names)) == len(names), "no name was acknowledged twice")

    in_db = sorted(r[0] for r in psql("SELECT name FROM things WHERE name LIKE 'ld-%'"))
    lost = sorted(set(names) - set(in_db))
    extra = sorted(set(in_db) - set(names))
    check(not lost, "no acknowledged registration lost (%d missing: %s)" % (len(lost), lost[:5]))
    check(not extra, "nothing registered that was not acknowledged (%s)" % extra[:5])
    dup = psql("SELECT thing_name, COUNT(*) FROM thing_principals WHERE thing_name LIKE 'ld-%' "
               "GROUP BY thing_name HAVING COUNT(*) <> 1")
    attached = psql("SELECT COUNT(DISTINCT thing_name) FROM thing_principals "
                    "WHERE thing_name LIKE 'ld-%'")
    check(not dup and attached == [[str(len(names))]],
          "each thing has exactly one certificate (%s, %s)" % (dup[:5], attached))
    certs = int(psql("SELECT COUNT(*) FROM certificates")[0][0]) - certs_before
    check(certs == len(names), "one certificate per acknowledged registration (%d for %d)" %
          (certs, len(names)))
    for action in ("thing.create", "provision.apply"):
        bad = psql("SELECT object, COUNT(*) FROM events WHERE action = '%s' AND "
                   "object LIKE 'thing/ld-%%' GROUP BY object HAVING COUNT(*) <> 1" % action)
        total = psql("SELECT COUNT(*) FROM events WHERE action = '%s' AND "
                     "object LIKE 'thing/ld-%%'" % action)
        check(not bad and total == [[str(len(names))]],
              "one %s event per acknowledged registration (%s, %s)" % (action, total, bad[:3]))
    ids = [int(r[0]) for r in psql("SELECT id FROM events ORDER BY id")]
    check(ids == sorted(set(ids)), "event ids are unique and ordered")


def after_restarts(ctx):
    for h in (ctx.a, ctx.b):
        check(h.daemon.poll() is None and h.broker.poll() is None,
              "host %s: iotprovd and the broker survived the restarts" % h.name)
    revocation_kicks(ctx.a, ctx.b, ctx.tmp, "after-restart", "devpolicy")
    r = run([IOTPROV, "check", "--data-dir", ctx.a.data, "--json"], timeout=300)
    try:
        report = json.loads(r.stdout)
    except ValueError:
        report = None
    check(r.returncode == 0 and report is not None,
          "iotprov check finds the registry consistent (exit %d: %s)" %
          (r.returncode, (r.stdout or r.stderr).strip()[-300:]))


def main():
    missing = missing_programs()
    if missing:
        print("FAIL missing %s" % ", ".join(missing))
        return 1
    tmp = tempfile.mkdtemp(prefix="iotp-pg-restart-")

    class Ctx:
        pass
    ctx = Ctx()
    ctx.tmp = tmp
    hosts = []
    try:
        a_dir, b_dir, _ = init_deployment(tmp)
        ctx.a = Host("A", a_dir, tmp)
        ctx.b = Host("B", b_dir, tmp)
        hosts = [ctx.a, ctx.b]
        for h in hosts:
            h.start_daemon()
            h.start_broker()
        for t in (load_with_restarts, after_restarts):
            section(t, ctx)
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        check(False, "setup raised %s: %s" % (type(e).__name__, e))
    finally:
        for h in hosts:
            check(h.stop(), "host %s: iotprovd and the broker stop cleanly" % h.name)
    rc = summary()
    if rc != 0:
        for h in hosts:
            for log in ("iotprovd.log", "mosquitto.log"):
                print("---- host %s %s (tail) ----" % (h.name, log))
                print(h.log_text(log)[-3000:])
    if os.environ.get("IOTP_KEEP_TMP") == "1":
        print("kept %s (IOTP_KEEP_TMP=1)" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
