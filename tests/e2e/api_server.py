#!/usr/bin/env python3
"""What the API refuses, and that the server keeps serving: a real iotprovd on
127.0.0.1 driven with boto3, botocore's signer, raw TLS sockets and both aws
CLIs.

Each negative case must get its documented AWS error (status,
x-amzn-ErrorType, a JSON message) and /healthz must answer after it: wrong
secret, expired date, tampered body, unknown key, disabled key, an installer
key calling CreateThing, an operator key on admin-only operations, malformed
JSON, an unknown body member, tags, an oversized body, an oversized header
block, an unknown route, garbage and a stalled TLS handshake on the socket.
Then the server items: TLS 1.2 and 1.3 served and 1.1 refused, SIGHUP
applying a new [api] max_body only when the file validates, the audit route
GET /iotprov/audit with its documented shape, and a clean SIGTERM.
"""
import datetime
import json
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
import warnings

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from api_e2e import (CLIS, IOTPROVD, Daemon, aws_error, boto3_client, check, cli,  # noqa: E402
                     error_of, failures, healthy, key_create, key_disable, make_data_dir,
                     raw_request, section, sign, signed_request, summary, tls_context,
                     wait_for)

MAX_BODY = 65536
JSON_CT = {"Content-Type": "application/json"}


def auth_failures(ctx):
    port, ca, admin = ctx["port"], ctx["ca"], ctx["admin"]
    url = ctx["url"]

    wrong = (admin[0], admin[1][:-1] + ("A" if admin[1][-1] != "A" else "B"))
    code, st, _ = error_of(lambda: boto3_client(url, ca, wrong).list_things())
    check(code == "InvalidSignatureException" and st == 403, "wrong secret -> 403 %s" % code)
    check(healthy(port, ca), "healthz after a wrong secret")

    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
    status, hdrs, body = signed_request(port, ca, admin, "GET", "/things", when=past)
    check(aws_error(status, hdrs, body, "InvalidSignatureException", 403) and
          b"Signature expired" in body, "a date 20 minutes old -> 403 Signature expired")
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=20)
    status, hdrs, body = signed_request(port, ca, admin, "GET", "/things", when=future)
    check(aws_error(status, hdrs, body, "InvalidSignatureException", 403),
          "a date 20 minutes ahead -> 403 InvalidSignatureException")

    # signed for one body, sent with another: the thing must not appear
    body_a = b'{"attributePayload":{"attributes":{"a":"1"}}}'
    body_b = b'{"attributePayload":{"attributes":{"a":"2"}}}'
    headers = sign(port, admin, "POST", "/things/tampered", body_a, headers=JSON_CT)
    status, hdrs, body = raw_request(port, ca, "POST", "/things/tampered", body_b, headers)
    check(aws_error(status, hdrs, body, "InvalidSignatureException", 403),
          "tampered body -> 403 InvalidSignatureException")
    code, _, _ = error_of(lambda: ctx["iot"].describe_thing(thingName="tampered"))
    check(code == "ResourceNotFoundException", "the tampered request changed nothing")
    # the same headers with the signed body work: the test above is fair
    status, _, _ = raw_request(port, ca, "POST", "/things/tampered", body_a, headers)
    check(status == 200, "the untampered request with the same signature -> 200")

    code, st, _ = error_of(lambda: boto3_client(url, ca, ("AKIAAAAAAAAAAAAAAAAA", admin[1]))
                           .list_things())
    check(code == "UnrecognizedClientException" and st == 403, "unknown key -> 403 %s" % code)
    doomed = key_create(ctx["data"], "operator")
    check(error_of(lambda: boto3_client(url, ca, doomed).list_things())[0] is None,
          "a fresh operator key works")
    check(key_disable(ctx["data"], doomed[0]), "--disable-key")
    code, st, _ = error_of(lambda: boto3_client(url, ca, doomed).list_things())
    check(code == "UnrecognizedClientException" and st == 403, "disabled key -> 403 %s" % code)
    check(healthy(port, ca), "healthz after unknown and disabled keys")

    inst = key_create(ctx["data"], "installer", "fleet-a")
    code, st, _ = error_of(lambda: boto3_client(url, ca, inst).create_thing(thingName="x"))
    check(code == "AccessDeniedException" and st == 403,
          "installer key calling CreateThing -> 403 %s" % code)
    op = boto3_client(url, ca, ctx["operator"])
    for what, fn in (("RegisterCACertificate", lambda: op.register_ca_certificate(
                         caCertificate="x", verificationCertificate="y")),
                     ("UpdateCACertificate", lambda: op.update_ca_certificate(
                         certificateId="a" * 64, newStatus="INACTIVE")),
                     ("DeleteCACertificate", lambda: op.delete_ca_certificate(
                         certificateId="a" * 64)),
                     ("GetRegistrationCode", lambda: op.get_registration_code())):
        code, st, msg = error_of(fn)
        check(code == "AccessDeniedException" and st == 403 and what in msg,
              "operator key calling %s -> 403 %s" % (what, code))
    status, hdrs, body = signed_request(port, ca, ctx["operator"], "GET", "/iotprov/audit")
    check(aws_error(status, hdrs, body, "AccessDeniedException", 403),
          "operator key reading the audit log -> 403 AccessDeniedException")
    check(healthy(port, ca), "healthz after refused roles")

    for aws in CLIS:
        rc, _, errtext = cli(aws, url, ca, wrong, "list-things")
        check(rc != 0 and "InvalidSignatureException" in errtext,
              "%s with a wrong secret -> InvalidSignatureException" % aws)
        rc, _, errtext = cli(aws, url, ca, inst, "create-thing", "--thing-name", "x")
        check(rc != 0 and "AccessDeniedException" in errtext,
              "%s with an installer key: create-thing -> AccessDeniedException" % aws)


def bad_requests(ctx):
    port, ca, admin = ctx["port"], ctx["ca"], ctx["admin"]
    cases = [
        ("malformed JSON", "POST", "/things/j1", b'{"attributePayload": ', 400,
         "InvalidRequestException", b"JSON"),
        ("a body that is not an object", "POST", "/things/j2", b'["x"]', 400,
         "InvalidRequestException", b"object"),
        ("an unknown body member", "POST", "/things/j3", b'{"thingTypename":"t"}', 400,
         "InvalidRequestException", b"thingTypename"),
        ("a member of the wrong type", "POST", "/things/j4", b'{"thingTypeName":7}', 400,
         "InvalidRequestException", b"thingTypeName"),
        ("duplicate keys", "POST", "/things/j5", b'{"thingTypeName":"a","thingTypeName":"b"}',
         400, "InvalidRequestException", b"duplicate"),
        ("tags", "POST", "/policies/p1",
         b'{"policyDocument":"{}","tags":[{"Key":"k","Value":"v"}]}', 400,
         "InvalidRequestException", b"tags"),
        ("billingGroupName", "POST", "/things/j6", b'{"billingGroupName":"b"}', 400,
         "InvalidRequestException", b"billing"),
        ("an unknown route", "GET", "/no/such/route", b"", 404, "UnknownOperationException",
         b"no operation"),
        ("a known path with another method", "PATCH", "/certificates", b"", 405,
         "MethodNotAllowedException", b"PATCH"),
        ("maxResults out of range", "GET", "/things?maxResults=0", b"", 400,
         "InvalidRequestException", b"maxResults"),
        ("a bad percent escape", "GET", "/things/a%zz", b"", 400, "InvalidRequestException",
         b""),
        ("newStatus missing", "PUT", "/certificates/" + "a" * 64, b"", 400,
         "InvalidRequestException", b"newStatus"),
        ("a principal header missing", "PUT", "/things/t1/principals", b"", 400,
         "InvalidRequestException", b"x-amzn-principal"),
    ]
    for what, method, path, body, st, code, needle in cases:
        status, hdrs, data = signed_request(port, ca, admin, method, path, body,
                                            headers=JSON_CT if body else None)
        check(aws_error(status, hdrs, data, code, st) and needle in data,
              "%s -> %d %s (%d %s)" % (what, st, code, status, data[:120]))
    check(healthy(port, ca), "healthz after malformed requests")

    big = b'{"attributePayload":{"attributes":{"a":"' + b"x" * MAX_BODY + b'"}}}'
    status, hdrs, data = signed_request(port, ca, admin, "POST", "/things/big", big,
                                        headers=JSON_CT)
    check(aws_error(status, hdrs, data, "RequestEntityTooLargeException", 413),
          "a signed body over [api] max_body -> 413 RequestEntityTooLargeException")
    check(healthy(port, ca), "healthz after an oversized body")
    try:
        status, _, _ = raw_request(port, ca, "GET", "/healthz", headers={"X-Big": "a" * 20000})
    except (OSError, ssl.SSLError) as e:
        status = str(e)
    check(status == 400, "a header block over [api] max_headers -> 400 (%s)" % status)
    check(healthy(port, ca), "healthz after an oversized header block")


def broken_clients(ctx):
    port, ca = ctx["port"], ctx["ca"]
    # plain-text garbage on the TLS port
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\n\r\n" + b"\x00\xff" * 100)
    s.settimeout(5)
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()
    check(healthy(port, ca), "healthz after plain-text garbage on the TLS port")
    # a client that starts a TLS handshake and stalls holds only itself
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.sendall(b"\x16\x03\x01\x00\xff\x01")
    t0 = time.monotonic()
    ok = healthy(port, ca)
    check(ok and time.monotonic() - t0 < 2.0,
          "healthz answers in %.2f s while a TLS handshake is stalled" % (time.monotonic() - t0))
    stalled.close()
    # a client that hangs up in the middle of a request
    c = tls_context(ca).wrap_socket(socket.create_connection(("127.0.0.1", port)),
                                    server_hostname="127.0.0.1")
    c.sendall(b"POST /things/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{")
    c.close()
    check(healthy(port, ca), "healthz after a client hung up mid-request")
    # TLS versions
    for version, want in ((ssl.TLSVersion.TLSv1_2, True), (ssl.TLSVersion.TLSv1_3, True)):
        c = tls_context(ca)
        c.minimum_version = c.maximum_version = version
        try:
            s = c.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                              server_hostname="127.0.0.1")
            got = s.version()
            s.close()
        except (OSError, ssl.SSLError) as e:
            got = "refused: %s" % e
        check((got == version.name.replace("v1_", "v1.")) == want,
              "%s handshake: %s" % (version.name, got))
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(ca)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            c.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            c.maximum_version = ssl.TLSVersion.TLSv1_1
        s = c.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                          server_hostname="127.0.0.1")
        s.close()
        refused = False
    except (OSError, ssl.SSLError, ValueError):
        refused = True
    check(refused, "a TLS 1.1 handshake is refused")
    check(healthy(port, ca), "healthz after the TLS probes")


def audit(ctx):
    port, ca, admin = ctx["port"], ctx["ca"], ctx["admin"]
    iot = ctx["iot"]
    status, _, body = signed_request(port, ca, admin, "GET", "/iotprov/audit?limit=1000")
    doc = json.loads(body) if status == 200 else {}
    events = doc.get("events", [])
    check(status == 200 and isinstance(doc.get("lastId"), int) and events and
          set(events[0]) == {"id", "time", "actor", "action", "object", "detail"},
          "GET /iotprov/audit: {events:[{id,time,actor,action,object,detail}], lastId}")
    check(all(events[i]["id"] < events[i + 1]["id"] for i in range(len(events) - 1)) and
          doc.get("lastId") == events[-1]["id"], "events oldest first; lastId is the last id")
    fails = [e for e in events if e["action"] == "auth.fail"]
    check(any(e["actor"] == "key:" + admin[0] and e["detail"].get("reason") == "signature"
              for e in fails), "the wrong-secret attempt is in the audit log, by key")
    check(admin[1] not in body.decode() and ctx["operator"][1] not in body.decode(),
          "no secret in the audit log")
    last = doc.get("lastId", 0)
    iot.create_thing(thingName="audited")
    status, _, body = signed_request(port, ca, admin, "GET", "/iotprov/audit?after=%d" % last)
    new = json.loads(body)
    created = [e for e in new["events"] if e["action"] == "thing.create"]
    check(status == 200 and len(created) == 1 and created[0]["object"] == "thing/audited" and
          created[0]["actor"] == "key:" + admin[0] and
          abs(created[0]["time"] - time.time()) < 60, "after=lastId shows the new thing.create")
    status, _, body = signed_request(port, ca, admin, "GET",
                                     "/iotprov/audit?after=%d" % new["lastId"])
    tail = json.loads(body)
    check(status == 200 and tail["events"] == [] and tail["lastId"] == new["lastId"],
          "nothing newer: empty events, lastId unchanged")
    status, _, body = signed_request(port, ca, admin, "GET", "/iotprov/audit?after=0&limit=2")
    two = json.loads(body)
    check(status == 200 and [e["id"] for e in two["events"]] == [e["id"] for e in events[:2]],
          "limit=2 returns the two oldest")
    status, hdrs, body = signed_request(port, ca, admin, "GET", "/iotprov/audit?limit=0")
    check(aws_error(status, hdrs, body, "InvalidRequestException", 400), "limit=0 -> 400")


def reload_limits(ctx):
    port, ca, admin, daemon = ctx["port"], ctx["ca"], ctx["admin"], ctx["daemon"]
    conf_path = os.path.join(ctx["data"], "iotprov.conf")
    with open(conf_path) as f:
        good = f.read()
    # valid JSON of 1.5 KB (blanks are JSON whitespace)
    body = b'{"attributePayload":{"attributes":{"a":"1"}}' + b" " * 1500 + b"}"
    with open(conf_path, "a") as f:
        f.write("\n[api]\nmax_body = 1024\nno_such_option = 1\n")
    daemon.proc.send_signal(signal.SIGHUP)
    check(wait_for(lambda: "reload failed" in daemon.read_log()),
          "SIGHUP with an invalid file: the failure is logged")
    status, hdrs, data = signed_request(port, ca, admin, "POST", "/things/r1", body,
                                        headers=JSON_CT)
    check(status == 200 and healthy(port, ca),
          "... and the running limits stay (a 1.5 KB body is accepted: %d)" % status)
    with open(conf_path, "w") as f:
        f.write(good + "\n[api]\nmax_body = 1024\n")
    daemon.proc.send_signal(signal.SIGHUP)
    check(wait_for(lambda: "configuration reloaded" in daemon.read_log()),
          "SIGHUP with a valid file: reloaded")
    check("restart iotprovd to apply" not in daemon.read_log(),
          "no spurious 'restart to apply' warning for the --api-listen override")
    status, hdrs, data = signed_request(port, ca, admin, "POST", "/things/r2", body,
                                        headers=JSON_CT)
    check(aws_error(status, hdrs, data, "RequestEntityTooLargeException", 413),
          "the new max_body applies: 1.5 KB -> 413")
    with open(conf_path, "w") as f:
        f.write(good)
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: daemon.read_log().count("configuration reloaded") >= 2)
    status, _, _ = signed_request(port, ca, admin, "POST", "/things/r3", body, headers=JSON_CT)
    check(status == 200, "back to the default max_body: 1.5 KB accepted")


def main():
    if not os.access(IOTPROVD, os.X_OK):
        print("iotprovd not built at %s" % IOTPROVD)
        return 1
    tmp = tempfile.mkdtemp(prefix="iotp-e2e-api-server-")
    data = os.path.join(tmp, "data")
    daemon = None
    try:
        print("data dir made with " + make_data_dir(data))
        ca = os.path.join(data, "ca-bundle.pem")
        admin = key_create(data, "admin")
        operator = key_create(data, "operator")
        daemon = Daemon(data)
        ctx = {"url": daemon.url, "port": daemon.port, "ca": ca, "data": data, "admin": admin,
               "operator": operator, "daemon": daemon,
               "iot": boto3_client(daemon.url, ca, admin)}
        section(auth_failures, ctx)
        section(bad_requests, ctx)
        section(broken_clients, ctx)
        section(audit, ctx)
        section(reload_limits, ctx)
        check(daemon.alive() and healthy(daemon.port, ca), "still serving at the end")
        rc = daemon.stop()
        check(rc == 0, "SIGTERM: exit status %s" % rc)
    finally:
        if daemon is not None and daemon.alive():
            daemon.proc.kill()
            daemon.proc.wait()
        if daemon is not None and failures:
            print(daemon.read_log()[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
