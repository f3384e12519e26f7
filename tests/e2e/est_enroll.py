#!/usr/bin/env python3
"""EST (RFC 7030) and authorized-list enrolment end to end, with curl and the
openssl CLI as the device, against a real iotprovd on 127.0.0.1.

What a device maker checks: cacerts gives the issuing CA as base64 PKCS#7
that `openssl pkcs7` reads; csrattrs is 204; simpleenroll works with each
authorization -- a public key on an authorized list, HTTP Basic with an
installer key (after the 401 challenge, curl --anyauth), a provisioning
claim certificate over mutual TLS -- and the certificate returned verifies
against the data dir's CA bundle and belongs to a thing the template made;
simplereenroll with the current certificate gives a new one on the same
thing; refusals: unknown key, consumed key (replay), revoked certificate
re-enrolling, wrong content type, oversized and garbage bodies; all over
TLS 1.2 too. POST /provisioning/csr enrols by list without EST.
"""
import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from api_e2e import (Daemon, boto3_client, check, issuing_chain, key_create,  # noqa: E402
                     make_data_dir, openssl, openssl_verify, raw_request, section,
                     signed_request, summary)

LIST_TEMPLATE = json.dumps({
    "Parameters": {"DeviceId": {"Type": "String"},
                   "Line": {"Type": "String", "Default": "none"},
                   "AWS::IoT::Certificate::Id": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {
            "ThingName": {"Ref": "DeviceId"},
            "AttributePayload": {"line": {"Ref": "Line"}}}},
        "cert": {"Type": "AWS::IoT::Certificate", "Properties": {
            "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}}}})
CN_TEMPLATE = json.dumps({
    "Parameters": {"AWS::IoT::Certificate::CommonName": {"Type": "String"},
                   "AWS::IoT::Certificate::Id": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {
            "ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}}},
        "cert": {"Type": "AWS::IoT::Certificate", "Properties": {
            "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}}}})


class Ctx:
    pass


def curl(ctx, path, *args, data=None, ctype="application/pkcs10", tls12=False):
    """(status, headers text, body bytes) of one curl call."""
    hdr = os.path.join(ctx.tmp, "hdr.txt")
    cmd = ["curl", "-s", "-S", "--cacert", ctx.ca, "-D", hdr, "-o", "-",
           "https://127.0.0.1:%d%s" % (ctx.daemon.port, path)]
    if tls12:
        cmd += ["--tls-max", "1.2"]
    if data is not None:
        body = os.path.join(ctx.tmp, "body.bin")
        with open(body, "wb") as f:
            f.write(data)
        cmd += ["--data-binary", "@" + body, "-H", "Content-Type: " + ctype]
    r = subprocess.run(cmd + list(args), capture_output=True, timeout=30)
    with open(hdr) as f:
        headers = f.read()
    statuses = [l.split()[1] for l in headers.splitlines() if l.startswith("HTTP/")]
    return int(statuses[-1]) if statuses else 0, headers, r.stdout


def key_and_csr(ctx, name, cn):
    """A P-256 key, its PEM public key and a base64 DER CSR for CN=cn."""
    d = ctx.tmp
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key", cwd=d)
    openssl("pkey", "-in", name + ".key", "-pubout", "-out", name + ".pub", cwd=d)
    return (open(os.path.join(d, name + ".pub")).read(), csr_for(ctx, name, cn))


def csr_for(ctx, name, cn):
    openssl("req", "-new", "-key", name + ".key", "-subj", "/CN=" + cn, "-outform", "DER",
            "-out", name + ".csr.der", cwd=ctx.tmp)
    with open(os.path.join(ctx.tmp, name + ".csr.der"), "rb") as f:
        return base64.encodebytes(f.read())


def certs_of(ctx, b64):
    """The PEM certificates of a base64 PKCS#7 answer, read by openssl."""
    p7 = os.path.join(ctx.tmp, "answer.p7")
    with open(p7, "wb") as f:
        f.write(base64.b64decode(b64))
    out = openssl("pkcs7", "-inform", "DER", "-in", p7, "-print_certs", cwd=ctx.tmp)
    return ["-----BEGIN CERTIFICATE-----" + c for c in out.split("-----BEGIN CERTIFICATE-----")[1:]]


def verified(ctx, pem):
    return openssl_verify(ctx.tmp, ctx.ca, pem, untrusted=issuing_chain(ctx.data),
                          purpose="sslclient")


def save(ctx, name, pem):
    with open(os.path.join(ctx.tmp, name), "w") as f:
        f.write(pem)


def events(ctx, action):
    with sqlite3.connect(os.path.join(ctx.data, "iotprov.db"), timeout=30) as c:
        return c.execute("SELECT COUNT(*) FROM events WHERE action = ?", (action,)).fetchone()[0]


def cacerts_and_csrattrs(ctx):
    for tls12 in (False, True):
        status, headers, body = curl(ctx, "/.well-known/est/cacerts", tls12=tls12)
        check(status == 200 and "application/pkcs7-mime" in headers,
              "cacerts answers base64 PKCS#7 (TLS %s)" % ("1.2" if tls12 else "default"))
        certs = certs_of(ctx, body)
        chain = open(issuing_chain(ctx.data)).read() if issuing_chain(ctx.data) else ""
        check(len(certs) >= 1 and certs[0].split("-----END")[0].split()[-1] in chain,
              "cacerts holds the issuing CA")
    status, _, _ = curl(ctx, "/.well-known/est/csrattrs")
    check(status == 204, "csrattrs answers 204")
    status, _, _ = curl(ctx, "/.well-known/est/est-list/cacerts")
    check(status == 200, "cacerts under a label answers too")


def by_list(ctx):
    pub, csr = key_and_csr(ctx, "dev1", "est-dev-1")
    pub2, _ = key_and_csr(ctx, "dev2", "est-dev-2")
    body = json.dumps({"templateName": "est-list", "description": "line 1",
                       "keys": [{"publicKey": pub, "deviceId": "est-dev-1",
                                 "attributes": {"Line": "L1"}},
                                {"publicKey": pub2, "deviceId": "est-dev-2"}]}).encode()
    status, _, resp = signed_request(ctx.daemon.port, ctx.ca, ctx.key, "POST",
                                     "/iotprov/authorized-key-lists/line1", body,
                                     headers={"Content-Type": "application/json"})
    check(status == 200 and json.loads(resp)["keysAdded"] == 2, "an authorized list uploads")
    status, headers, answer = curl(ctx, "/.well-known/est/simpleenroll", data=csr)
    check(status == 200 and "smime-type=certs-only" in headers,
          "simpleenroll by authorized-list key answers 200 certs-only")
    certs = certs_of(ctx, answer) if status == 200 else []
    check(len(certs) == 1 and verified(ctx, certs[0]),
          "the enrolled certificate verifies against ca-bundle.pem")
    if certs:
        save(ctx, "dev1.crt", certs[0])
    t = ctx.iot.describe_thing(thingName="est-dev-1")
    check(t["attributes"] == {"line": "L1"}, "the list's template made thing est-dev-1")
    principals = ctx.iot.list_thing_principals(thingName="est-dev-1")["principals"]
    check(len(principals) == 1, "the certificate is attached to the thing")
    status, _, resp = curl(ctx, "/.well-known/est/simpleenroll", data=csr)
    check(status == 403 and b"already been used" in resp,
          "a replayed key is refused with 403 (%d %s)" % (status, resp[:80]))
    check(events(ctx, "authlist.replay") == 1, "the replay is in the audit log")
    d = json.loads(signed_request(ctx.daemon.port, ctx.ca, ctx.key, "GET",
                                  "/iotprov/authorized-key-lists/line1")[2])
    check(d.get("keyCount") == 2 and d.get("consumedCount") == 1,
          "the list shows 2 keys, 1 consumed (%s)" % d)
    # The second key through POST /provisioning/csr (no EST).
    openssl("req", "-new", "-key", "dev2.key", "-subj", "/CN=est-dev-2", "-out", "dev2.csr",
            cwd=ctx.tmp)
    pem_csr = open(os.path.join(ctx.tmp, "dev2.csr")).read()
    status, _, resp = raw_request(ctx.daemon.port, ctx.ca, "POST", "/provisioning/csr",
                                  json.dumps({"certificateSigningRequest": pem_csr}).encode(),
                                  {"Content-Type": "application/json"})
    out = json.loads(resp)
    check(status == 200 and out.get("thingName") == "est-dev-2"
          and verified(ctx, out.get("certificatePem", "")),
          "POST /provisioning/csr enrols a listed key (%d)" % status)
    status, hdrs, resp = raw_request(ctx.daemon.port, ctx.ca, "POST", "/provisioning/csr",
                                     json.dumps({"certificateSigningRequest": pem_csr}).encode(),
                                     {"Content-Type": "application/json"})
    check(status == 403 and hdrs.get("x-amzn-errortype") == "AccessDeniedException:",
          "POST /provisioning/csr refuses the replay with 403")
    _, csr3 = key_and_csr(ctx, "dev3", "est-dev-3")
    openssl("req", "-new", "-key", "dev3.key", "-subj", "/CN=est-dev-3", "-out", "dev3.csr",
            cwd=ctx.tmp)
    status, _, resp = raw_request(ctx.daemon.port, ctx.ca, "POST", "/provisioning/csr",
                                  json.dumps({"certificateSigningRequest": open(
                                      os.path.join(ctx.tmp, "dev3.csr")).read()}).encode(),
                                  {"Content-Type": "application/json"})
    check(status == 403 and b"not on any authorized key list" in resp,
          "an unknown key is refused with 403 and a clear message")
    check(events(ctx, "authlist.unknown_key") >= 1, "the unknown key is in the audit log")
    # Over EST, an unknown key without credentials is asked for them.
    status, headers, _ = curl(ctx, "/.well-known/est/simpleenroll", data=csr3)
    check(status == 401 and "WWW-Authenticate: Basic" in headers,
          "EST answers an unknown key without credentials with 401 + WWW-Authenticate")


def by_basic(ctx):
    inst = key_create(ctx.data, "installer", "est-cn")
    _, csr = key_and_csr(ctx, "b1", "est-basic-1")
    status, headers, answer = curl(ctx, "/.well-known/est/est-cn/simpleenroll",
                                   "--anyauth", "--user", "%s:%s" % inst, data=csr)
    check(status == 200, "simpleenroll with an installer key (Basic after the 401) answers 200")
    certs = certs_of(ctx, answer) if status == 200 else []
    check(len(certs) == 1 and verified(ctx, certs[0]), "that certificate verifies")
    check(ctx.iot.describe_thing(thingName="est-basic-1")["thingName"] == "est-basic-1",
          "the label's template made thing est-basic-1 from the CSR's CN")
    _, csr2 = key_and_csr(ctx, "b2", "est-basic-2")
    status, headers, _ = curl(ctx, "/.well-known/est/est-cn/simpleenroll",
                              "--user", "%s:wrong" % inst[0], data=csr2)
    check(status == 401 and "WWW-Authenticate" in headers, "a wrong secret gets 401 again")
    status, _, _ = curl(ctx, "/.well-known/est/est-list/simpleenroll",
                        "--user", "%s:%s" % inst, data=csr2)
    check(status == 403, "an installer key is refused for a template it does not list")


def by_claim(ctx):
    claim = ctx.iot.create_provisioning_claim(templateName="est-cn")
    save(ctx, "claim.crt", claim["certificatePem"])
    save(ctx, "claim.key", claim["keyPair"]["PrivateKey"])
    _, csr = key_and_csr(ctx, "c1", "est-claim-1")
    status, _, answer = curl(ctx, "/.well-known/est/simpleenroll",
                             "--cert", os.path.join(ctx.tmp, "claim.crt"),
                             "--key", os.path.join(ctx.tmp, "claim.key"), data=csr, tls12=True)
    check(status == 200, "simpleenroll with a claim certificate over mTLS (TLS 1.2) answers 200")
    certs = certs_of(ctx, answer) if status == 200 else []
    check(len(certs) == 1 and verified(ctx, certs[0]), "that certificate verifies")
    check(ctx.iot.describe_thing(thingName="est-claim-1")["thingName"] == "est-claim-1",
          "the claim's template made thing est-claim-1")


def reenroll(ctx):
    crt, key = os.path.join(ctx.tmp, "dev1.crt"), os.path.join(ctx.tmp, "dev1.key")
    old_id = ctx.iot.list_thing_principals(thingName="est-dev-1")["principals"][0].split("/")[-1]
    csr = csr_for(ctx, "dev1", "est-dev-1")
    status, _, answer = curl(ctx, "/.well-known/est/simplereenroll", "--cert", crt, "--key", key,
                             data=csr)
    check(status == 200, "simplereenroll with the current certificate answers 200")
    certs = certs_of(ctx, answer) if status == 200 else []
    check(len(certs) == 1 and verified(ctx, certs[0]), "the new certificate verifies")
    principals = ctx.iot.list_thing_principals(thingName="est-dev-1")["principals"]
    check(len(principals) == 2, "the new certificate is attached to the same thing")
    check(ctx.iot.describe_certificate(certificateId=old_id)["certificateDescription"]["status"]
          == "ACTIVE", "the old certificate stays ACTIVE until the new one is used")
    status, _, _ = curl(ctx, "/.well-known/est/simplereenroll", data=csr)
    check(status == 403, "simplereenroll without a client certificate is refused")
    _, other = key_and_csr(ctx, "x1", "someone-else")
    status, _, _ = curl(ctx, "/.well-known/est/simplereenroll", "--cert", crt, "--key", key,
                        data=other)
    check(status == 400, "simplereenroll with another subject is refused with 400")
    ctx.iot.update_certificate(certificateId=old_id, newStatus="REVOKED")
    status, _, resp = curl(ctx, "/.well-known/est/simplereenroll", "--cert", crt, "--key", key,
                           data=csr)
    check(status == 403 and b"REVOKED" in resp, "a revoked certificate cannot re-enrol")


def refusals(ctx):
    _, csr = key_and_csr(ctx, "r1", "refused")
    status, _, _ = curl(ctx, "/.well-known/est/simpleenroll", data=csr, ctype="text/plain")
    check(status == 415, "a wrong content type is refused with 415")
    status, _, _ = curl(ctx, "/.well-known/est/simpleenroll", data=b"A" * 20000)
    check(status == 413, "an oversized body is refused with 413")
    status, _, _ = curl(ctx, "/.well-known/est/simpleenroll", data=b"!!not base64!!")
    check(status == 400, "a garbage body is refused with 400")
    status, _, _ = curl(ctx, "/.well-known/est/simpleenroll",
                        data=base64.encodebytes(b"\x30\x03\x02\x01\x01"))
    check(status == 400, "base64 of something that is not a CSR is refused with 400")
    status, _, _ = curl(ctx, "/.well-known/est/no%20such/simpleenroll", data=csr)
    check(status in (400, 404), "a malformed label is refused")
    status, _, _ = curl(ctx, "/healthz")
    check(status == 200, "the server is healthy after the refusals")


def main():
    tmp = tempfile.mkdtemp(prefix="iotp-e2e-est-")
    ctx = Ctx()
    ctx.tmp = tmp
    ctx.data = os.path.join(tmp, "data")
    ctx.daemon = None
    try:
        print("data dir made with " + make_data_dir(ctx.data))
        ctx.ca = os.path.join(ctx.data, "ca-bundle.pem")
        ctx.key = key_create(ctx.data, "operator")
        ctx.daemon = Daemon(ctx.data)
        ctx.iot = boto3_client(ctx.daemon.url, ctx.ca, ctx.key)
        for name, body in (("est-list", LIST_TEMPLATE), ("est-cn", CN_TEMPLATE)):
            ctx.iot.create_provisioning_template(
                templateName=name, templateBody=body, enabled=True,
                provisioningRoleArn="arn:aws:iam::123456789012:role/iotprov")
        for fn in (cacerts_and_csrattrs, by_list, by_basic, by_claim, reenroll, refusals):
            section(fn, ctx)
        check(ctx.daemon.stop() == 0, "iotprovd stops cleanly")
    finally:
        if ctx.daemon is not None and ctx.daemon.alive():
            ctx.daemon.proc.kill()
        if os.environ.get("KEEP_TMP") is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
