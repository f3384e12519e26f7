#!/usr/bin/env python3
"""kill -9 of iotprovd in the middle of a burst of API writes loses nothing it
acknowledged and invents nothing.

Four client threads, each on its own keep-alive HTTPS connection, send
CreateThing with unique names back to back (SigV4, as any SDK does). After a
moment iotprovd gets SIGKILL: no chance to finish a request, flush or close
the store. Each client records the names the server acknowledged (200) and
the one request whose answer it never got. The daemon then restarts on the
same data dir and port, and, three times over:

  - every acknowledged thing exists, with its attribute;
  - every thing that exists was asked for (acknowledged or in flight);
  - each exists once in ListThings and has exactly one thing.create event in
    the audit log (the event lands in the same transaction as the row);
  - retrying the in-flight requests, as a client does after an error, gives
    200 (CreateThing of an identical thing is idempotent) and no duplicate;
  - `iotprov check` finds no problem in the store.

Last, with the daemon stopped, a dangling principal written into the store by
hand makes `iotprov check` exit 1 naming it.
"""
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from api_e2e import (check, failures, healthy, key_create, make_data_dir,  # noqa: E402
                     section, sign, signed_request, summary, tls_context)
import reliab_e2e as rel  # noqa: E402

THREADS = 4
ROUNDS = 3
BURST_SECONDS = 1.5


class Writer(threading.Thread):
    """CreateThing w<round>-<thread>-<n> until the connection breaks."""

    def __init__(self, port, ca, key, tag, stop):
        super().__init__(daemon=True)
        self.port, self.ca, self.key, self.tag, self.stop = port, ca, key, tag, stop
        self.acked, self.in_flight, self.refused = [], [], []

    def run(self):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=tls_context(self.ca),
                                           timeout=10)
        n = 0
        try:
            while not self.stop.is_set():
                name = "%s-%d" % (self.tag, n)
                n += 1
                body = json.dumps({"attributePayload": {"attributes": {"n": name}}}).encode()
                path = "/things/" + name
                hdrs = sign(self.port, self.key, "POST", path, body,
                            headers={"content-type": "application/json"})
                self.in_flight.append(name)
                try:
                    conn.request("POST", path, body=body, headers=hdrs)
                    r = conn.getresponse()
                    data = r.read()
                except (OSError, http.client.HTTPException, ssl.SSLError):
                    return  # the server died under us: name stays in flight
                self.in_flight.pop()
                if r.status == 200:
                    self.acked.append(name)
                else:
                    self.refused.append((name, r.status, data[:200]))
        finally:
            conn.close()


def burst_and_kill(ctx, rnd):
    daemon = ctx.daemon
    stop = threading.Event()
    writers = [Writer(daemon.port, ctx.ca, ctx.key, "w%d-%d" % (rnd, t), stop)
               for t in range(THREADS)]
    for w in writers:
        w.start()
    time.sleep(BURST_SECONDS)
    daemon.kill()
    stop.set()
    for w in writers:
        w.join(20)
    acked = [n for w in writers for n in w.acked]
    in_flight = [n for w in writers for n in w.in_flight]
    refused = [x for w in writers for x in w.refused]
    print("round %d: %d acknowledged, %d in flight at the kill, %d refused" %
          (rnd, len(acked), len(in_flight), len(refused)))
    check(len(acked) > 0, "round %d: the burst got writes acknowledged" % rnd)
    check(not refused, "round %d: no write refused before the kill %s" % (rnd, refused[:3]))
    ctx.acked |= set(acked)
    ctx.in_flight |= set(in_flight)

    ctx.daemon = rel.Iotprovd(ctx.data, ctx.log, port=ctx.port)
    check(rel.wait_for_health(ctx.daemon.port, ctx.ca), "round %d: iotprovd restarted" % rnd)
    verify(ctx, rnd)
    # a client retries what it never got an answer for
    for name in in_flight:
        body = json.dumps({"attributePayload": {"attributes": {"n": name}}}).encode()
        st, _, data = signed_request(ctx.daemon.port, ctx.ca, ctx.key, "POST", "/things/" + name,
                                     body, headers={"content-type": "application/json"})
        check(st == 200, "round %d: retry of in-flight %s: 200 (%d %r)" %
              (rnd, name, st, data[:120]))
        ctx.acked.add(name)
        ctx.in_flight.discard(name)
    verify(ctx, rnd)


def verify(ctx, rnd):
    things = rel.list_all(ctx.daemon.port, ctx.ca, ctx.key, "/things", "things")
    names = [t["thingName"] for t in things]
    have = set(names)
    check(len(names) == len(have), "round %d: ListThings lists each thing once" % rnd)
    lost = ctx.acked - have
    check(not lost, "round %d: every acknowledged write exists (%d lost: %s)" %
          (rnd, len(lost), sorted(lost)[:5]))
    invented = have - ctx.acked - ctx.in_flight
    check(not invented, "round %d: nothing exists that no client asked for %s" %
          (rnd, sorted(invented)[:5]))
    wrong = [t["thingName"] for t in things
             if t.get("attributes", {}).get("n") != t["thingName"]]
    check(not wrong, "round %d: each thing holds its own attribute %s" % (rnd, wrong[:5]))
    events = rel.audit_events(ctx.daemon.port, ctx.ca, ctx.key)
    creates = {}
    for e in events:
        if e.get("action") == "thing.create":
            creates[e["object"]] = creates.get(e["object"], 0) + 1
    bad = [n for n in have if creates.get("thing/" + n) != 1]
    check(not bad, "round %d: exactly one thing.create event per thing %s" %
          (rnd, [(n, creates.get("thing/" + n)) for n in bad[:5]]))
    orphans = [o for o in creates if o[len("thing/"):] not in have]
    check(not orphans, "round %d: no thing.create event without its thing %s" %
          (rnd, orphans[:5]))
    ids = [e["id"] for e in events]
    check(ids == sorted(set(ids)), "round %d: event ids strictly increase" % rnd)
    status, report, err = rel.check_store(ctx.data)
    check(status == 0 and report is not None and report["errors"] == 0,
          "round %d: iotprov check: no problem (%s %s)" %
          (rnd, status, (report or {}).get("problems", err)))


def check_finds_damage(ctx):
    """The other side of `iotprov check`: damage done by hand to the stopped
    store is reported (exit 1, the problem named), and gone once repaired."""
    db = os.path.join(ctx.data, "iotprov.db")  # [store] url default: sqlite:iotprov.db
    if not check(os.path.exists(db), "the store is %s" % db):
        return
    thing = sorted(ctx.acked)[0]
    bad = "INSERT INTO thing_principals (thing_name, principal) VALUES ('%s', 'cert/%s')" % (
        thing, "0" * 64)
    r = subprocess.run(["sqlite3", db, bad], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "damage the store by hand (%s)" % r.stderr.strip())
    status, report, err = rel.check_store(ctx.data)
    probs = (report or {}).get("problems", [])
    check(status == 1 and report is not None and report["errors"] == 1 and
          probs[0]["kind"] == "dangling_principal" and probs[0]["object"] == "thing/" + thing,
          "iotprov check --json: exit 1 naming the dangling principal (%s %s)" % (status, probs))
    check("integrity error" in err, "and says so on stderr: %r" % err.strip())
    r = subprocess.run([rel.IOTPROV, "check", "--data-dir", ctx.data], capture_output=True,
                       text=True, timeout=120)
    check(r.returncode == 1 and "dangling_principal" in r.stdout and "1 error(s)" in r.stdout,
          "iotprov check: a table naming it (%d %r)" % (r.returncode, r.stdout[-300:]))
    subprocess.run(["sqlite3", db, "DELETE FROM thing_principals WHERE principal = 'cert/%s'" %
                    ("0" * 64)], capture_output=True, timeout=30)
    status, report, err = rel.check_store(ctx.data)
    check(status == 0 and report["errors"] == 0, "repaired: no problem again")


class Ctx:
    pass


def main():
    tmp = tempfile.mkdtemp(prefix="iotp-fault-kill-")
    ctx = Ctx()
    ctx.data = os.path.join(tmp, "data")
    ctx.log = os.path.join(tmp, "iotprovd.log")
    ctx.daemon = None
    ctx.acked, ctx.in_flight = set(), set()
    t0 = time.monotonic()
    try:
        print("data dir made with " + make_data_dir(ctx.data))
        ctx.ca = os.path.join(ctx.data, "ca-bundle.pem")
        ctx.key = key_create(ctx.data, "admin")
        ctx.daemon = rel.Iotprovd(ctx.data, ctx.log)
        ctx.port = ctx.daemon.port
        for rnd in range(ROUNDS):
            section(burst_and_kill, ctx, rnd)
            if failures:
                break
        print("%d things acknowledged in %d kills, %.1f s" %
              (len(ctx.acked), ROUNDS, time.monotonic() - t0))
        check(healthy(ctx.daemon.port, ctx.ca), "healthz at the end")
        rc = ctx.daemon.stop()
        check(rc == 0, "SIGTERM: exit status %s" % rc)
        if not failures:
            section(check_finds_damage, ctx)
    finally:
        if ctx.daemon is not None and ctx.daemon.alive():
            ctx.daemon.kill()
        if failures and os.path.exists(ctx.log):
            with open(ctx.log, errors="replace") as f:
                print(f.read()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
