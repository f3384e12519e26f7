#!/usr/bin/env python3
"""Two hosts on one PostgreSQL (docs/scale-out.md), end to end: iotprovd A
and B, broker A and B (Mosquitto with the iotprov plugin), every process on
the database of a private cluster. Run it under tests/pg/pg_cluster.py
(ctest: pg.scaleout).

What an operator of such a deployment checks:
- `iotprov init --store postgresql://...` puts the registry's first records
  (its CAs, the first admin key) in PostgreSQL, so host B, a copy of A's
  data directory, serves them; a second init on the same database is
  refused and leaves nothing behind;
- an ownership token raced through broker A and broker B at once registers
  exactly one thing; the other request gets InvalidCertificateOwnershipToken;
- an authorized key sent to both daemons at once (POST /provisioning/csr,
  and EST simpleenroll) is enrolled exactly once; the other request gets
  403 AccessDeniedException (EST: 403);
- a certificate revoked through daemon A's API is disconnected from
  broker B within 1 s, and the other way round.
"""
import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e", "lib"))
from api_e2e import (IOTPROV, check, openssl, run, section, signed_request,  # noqa: E402
                     summary, tls_context)
from deploy import (Background, Host, device_policy, init_deployment,  # noqa: E402
                    missing_programs, psql, revocation_kicks, store_url)

ROUNDS = 6  # races of each kind

FLEET_TEMPLATE = {
    "Parameters": {"SerialNumber": {"Type": "String"},
                   "AWS::IoT::Certificate::Id": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing",
                  "Properties": {"ThingName": {"Fn::Join": ["", ["meter-", {"Ref": "SerialNumber"}]]}}},
        "certificate": {"Type": "AWS::IoT::Certificate",
                        "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
                                       "Status": "ACTIVE"}},
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "devpolicy"}}}}

LIST_TEMPLATE = {
    "Parameters": {"DeviceId": {"Type": "String"},
                   "AWS::IoT::Certificate::Id": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "DeviceId"}}},
        "cert": {"Type": "AWS::IoT::Certificate", "Properties": {
            "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}}}}


class Ctx:
    pass


def init_in_postgresql(ctx):
    a = ctx.a
    check(ctx.init.returncode == 0 and "PostgreSQL" in ctx.init.stdout,
          "iotprov init --store reports the registry in PostgreSQL")
    with open(os.path.join(a.data, "iotprov.conf")) as f:
        conf = f.read()
    check(("url = " + store_url()) in conf, "iotprov.conf holds the store URL")
    check(not [n for n in os.listdir(a.data) if n.startswith("iotprov.db")],
          "no SQLite file in the data directory")
    rows = psql("SELECT origin FROM cas ORDER BY origin")
    check([r[0] for r in rows] == ["ISSUING", "ROOT"],
          "both own CAs are recorded in PostgreSQL (%s)" % rows)
    check(psql("SELECT COUNT(*) FROM access_keys WHERE id = '%s'" % a.key[0]) == [["1"]],
          "the first admin key is in PostgreSQL")
    # Host B (a copy of A's directory) serves them with A's credentials.
    cas = ctx.b.iot().list_ca_certificates()["certificates"]
    check(len(cas) == 2, "daemon B lists the two CAs init recorded (%d)" % len(cas))
    # A second init on the same database: refused, nothing left behind.
    other = os.path.join(ctx.tmp, "host-c")
    r = run([IOTPROV, "init", "--data-dir", other, "--store", store_url()])
    check(r.returncode == 1 and "already holds the registry" in r.stderr and
          not os.path.exists(other),
          "a second init on the same database is refused, no directory left (%d: %s)" %
          (r.returncode, r.stderr.strip()[-160:]))
    check(psql("SELECT COUNT(*) FROM cas") == [["2"]] and
          psql("SELECT COUNT(*) FROM access_keys") == [["1"]],
          "and it recorded nothing in the database")


def fleet_request_args(host, ctx, crt, key, cid, topic, payload):
    path = os.path.join(ctx.tmp, "req-%d.json" % time.monotonic_ns())
    with open(path, "w") as f:
        f.write(json.dumps(payload) if payload is not None else "")
    return host.probe_args(crt, key, cid, subs=[topic + "/accepted", topic + "/rejected"],
                           pub=topic, msg_file=path, count=1, timeout=30)


def reply_of(out, topic):
    for line in out.splitlines():
        if line.startswith("{"):
            e = json.loads(line)
            if e.get("event") == "message":
                return e["topic"][len(topic) + 1:], e["payload"]
    return None, out


def token_race(ctx):
    a, b = ctx.a, ctx.b
    iot = a.iot()
    iot.create_provisioning_template(
        templateName="fleet", templateBody=json.dumps(FLEET_TEMPLATE), enabled=True,
        provisioningRoleArn="arn:aws:iam::123456789012:role/iotprov", type="FLEET_PROVISIONING")
    claim = b.iot().create_provisioning_claim(templateName="fleet")
    ccrt = os.path.join(ctx.tmp, "claim.crt")
    ckey = os.path.join(ctx.tmp, "claim.key")
    with open(ccrt, "w") as f:
        f.write(claim["certificatePem"])
    with open(ckey, "w") as f:
        f.write(claim["keyPair"]["PrivateKey"])
    os.chmod(ckey, 0o600)
    reg = "$aws/provisioning-templates/fleet/provision/json"
    wins = {"A": 0, "B": 0}
    for i in range(ROUNDS):
        serial = "%04d" % i
        topic = "$aws/certificates/create/json"
        r = run(fleet_request_args(a, ctx, ccrt, ckey, "c-%d" % i, topic, None), timeout=60)
        kind, p = reply_of(r.stdout, topic)
        if not check(kind == "accepted", "round %d: broker A issued a certificate and token" % i):
            print(p)
            continue
        body = {"certificateOwnershipToken": p["certificateOwnershipToken"],
                "parameters": {"SerialNumber": serial}}
        procs = [subprocess.Popen(fleet_request_args(h, ctx, ccrt, ckey, "r%s-%d" % (h.name, i),
                                                     reg, body),
                                  stdout=subprocess.PIPE, text=True) for h in (a, b)]
        replies = [reply_of(pr.communicate(timeout=60)[0], reg) for pr in procs]
        kinds = [k for k, _ in replies]
        won = [h.name for h, (k, _) in zip((a, b), replies) if k == "accepted"]
        lost = [r for k, r in replies if k == "rejected"]
        ok = (sorted(kinds) == ["accepted", "rejected"] and
              lost[0].get("errorCode") == "InvalidCertificateOwnershipToken")
        if ok:
            wins[won[0]] += 1
        check(ok, "round %d: the token raced through brokers A and B registers once, the other "
              "gets InvalidCertificateOwnershipToken (%s)" % (i, replies if not ok else won[0]))
        check(psql("SELECT COUNT(*) FROM things WHERE name = 'meter-%s'" % serial) == [["1"]] and
              psql("SELECT COUNT(*) FROM thing_principals WHERE thing_name = 'meter-%s'" %
                   serial) == [["1"]],
              "round %d: one thing meter-%s with one certificate" % (i, serial))
    print("token races won: broker A %d, broker B %d" % (wins["A"], wins["B"]))
    consumed = psql("SELECT COUNT(*) FROM events WHERE action = 'provision.apply'")
    check(consumed == [[str(ROUNDS)]], "exactly %d provision.apply events (%s)" % (ROUNDS, consumed))


def key_and_csr(ctx, name):
    d = ctx.tmp
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key", cwd=d)
    openssl("pkey", "-in", name + ".key", "-pubout", "-out", name + ".pub", cwd=d)
    openssl("req", "-new", "-key", name + ".key", "-subj", "/CN=" + name, "-out", name + ".csr",
            cwd=d)
    openssl("req", "-in", name + ".csr", "-outform", "DER", "-out", name + ".der", cwd=d)
    with open(os.path.join(d, name + ".pub")) as f:
        pub = f.read()
    with open(os.path.join(d, name + ".csr")) as f:
        pem = f.read()
    with open(os.path.join(d, name + ".der"), "rb") as f:
        der = f.read()
    return pub, pem, der


def race_requests(hosts, requests):
    """Sends requests[i] (method, path, body, headers) to hosts[i] at the same
    moment: each connection is open (TLS done) before a barrier releases
    them. Returns [(status, headers, body)]."""
    barrier = threading.Barrier(len(hosts))
    out = [None] * len(hosts)

    def one(i):
        h = hosts[i]
        c = http.client.HTTPSConnection("127.0.0.1", h.api_port, context=tls_context(h.ca),
                                        timeout=60)
        try:
            c.connect()
            barrier.wait(timeout=30)
            c.request(*requests[i])
            r = c.getresponse()
            out[i] = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        except Exception as e:  # noqa: BLE001 -- reported as the outcome
            out[i] = (0, {}, repr(e).encode())
        finally:
            c.close()

    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(hosts))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=90)
    return out


def authorized_key_race(ctx):
    a, b = ctx.a, ctx.b
    a.iot().create_provisioning_template(
        templateName="listed", templateBody=json.dumps(LIST_TEMPLATE), enabled=True,
        provisioningRoleArn="arn:aws:iam::123456789012:role/iotprov")
    devices = []
    for i in range(ROUNDS * 2):
        name = "listed-%02d" % i
        devices.append((name,) + key_and_csr(ctx, name))
    body = json.dumps({"templateName": "listed",
                       "keys": [{"publicKey": pub, "deviceId": name}
                                for name, pub, _, _ in devices]}).encode()
    status, _, resp = signed_request(b.api_port, b.ca, b.key, "POST",
                                     "/iotprov/authorized-key-lists/line", body,
                                     headers={"Content-Type": "application/json"})
    check(status == 200, "authorized list of %d keys uploaded through daemon B (%d %s)" %
          (len(devices), status, resp[:100]))
    wins = {"A": 0, "B": 0}
    for i, (name, _, pem, der) in enumerate(devices):
        est = i % 2 == 1
        if est:
            req = ("POST", "/.well-known/est/simpleenroll", base64.encodebytes(der),
                   {"Content-Type": "application/pkcs10", "Content-Transfer-Encoding": "base64"})
            what, refusal = "EST simpleenroll", (403, None)
        else:
            req = ("POST", "/provisioning/csr",
                   json.dumps({"certificateSigningRequest": pem}).encode(),
                   {"Content-Type": "application/json"})
            what, refusal = "POST /provisioning/csr", (403, "AccessDeniedException:")
        res = race_requests([a, b], [req, req])
        statuses = sorted(s for s, _, _ in res)
        loser = [r for r in res if r[0] != 200]
        ok = (statuses == [200, 403] and
              (refusal[1] is None or loser[0][1].get("x-amzn-errortype") == refusal[1]))
        if ok:
            wins["A" if res[0][0] == 200 else "B"] += 1
        check(ok, "%s: %s of one listed key to daemons A and B at once enrols once, the other "
              "gets 403%s" % (name, what, "" if ok else
                              " (%s)" % [(s, bd[:120]) for s, _, bd in res]))
        check(psql("SELECT COUNT(*) FROM thing_principals WHERE thing_name = '%s'" % name) ==
              [["1"]], "%s: one thing with one certificate" % name)
    print("authorized-key races won: daemon A %d, daemon B %d" % (wins["A"], wins["B"]))
    n = psql("SELECT COUNT(*) FROM events WHERE action = 'authlist.consume'")
    r = psql("SELECT COUNT(*) FROM events WHERE action = 'authlist.replay'")
    check(n == [[str(len(devices))]] and r == [[str(len(devices))]],
          "audit: %d consumptions and %d replays (%s, %s)" % (len(devices), len(devices), n, r))


def revocation_across(ctx):
    device_policy(ctx.a.iot(), "devpolicy-live")
    revocation_kicks(ctx.a, ctx.b, ctx.tmp, "live-ab", "devpolicy-live")
    revocation_kicks(ctx.b, ctx.a, ctx.tmp, "live-ba", "devpolicy-live")


def main():
    missing = missing_programs()
    if missing:
        print("FAIL missing %s" % ", ".join(missing))
        return 1
    tmp = tempfile.mkdtemp(prefix="iotp-pg-scaleout-")
    ctx = Ctx()
    ctx.tmp = tmp
    hosts = []
    try:
        a_dir, b_dir, ctx.init = init_deployment(tmp)
        ctx.a = Host("A", a_dir, tmp)
        ctx.b = Host("B", b_dir, tmp)
        hosts = [ctx.a, ctx.b]
        for h in hosts:
            h.start_daemon()
            h.start_broker()
        device_policy(ctx.a.iot(), "devpolicy")
        for t in (init_in_postgresql, token_race, authorized_key_race, revocation_across):
            section(t, ctx)
        for h in hosts:
            check(h.daemon.poll() is None and h.broker.poll() is None,
                  "host %s: iotprovd and the broker are still running" % h.name)
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
