#!/usr/bin/env python3
"""The nastiest inputs a client could send iotprovd's API, over HTTPS with
SigV4 as any AWS SDK would: each gets a clear, AWS-shaped error (HTTP status,
x-amzn-ErrorType, a JSON message), the server keeps serving, nothing it
refused reached the store (`iotprov check` passes, counts unchanged), and its
memory stays bounded: VmRSS after a second round of every input is within a
few MB of after the first, and the peak stays far below what buffering the
inputs would take.

The inputs: a 10 MB body (beyond twice [api] max_body evhttp answers a plain
413 and closes, as src/server/http.h documents; just over max_body the answer
is the AWS-shaped 413); a CSR for a 16,384-bit RSA key (made in a second, see
reliab_e2e.rsa_csr_pem) by CreateCertificateFromCsr, through a RegisterThing
template and by EST simpleenroll, each refused by its 4096-byte cap before
the key is decoded; a chain of 20 intermediate CAs in RegisterCertificate;
JSON nested 100,000 levels; invalid UTF-8 in names and bodies; a thing name
of 10,000 characters; SQL metacharacters in every string field, which must be
either refused or stored and read back byte for byte; and templates that
reference themselves.

The daemon runs with [api] max_body = 1 MiB so that the 100,000-level JSON
(200 KB) reaches the JSON parser instead of the size check.
"""
import base64
import json
import os
import subprocess
import shutil
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from api_e2e import (IOTPROVD, Daemon, check, failures, healthy, key_create,  # noqa: E402
                     make_data_dir, raw_request, section, sign, summary)
import reliab_e2e as rel  # noqa: E402

MAX_BODY = 1024 * 1024
JSON_HDR = {"content-type": "application/json"}
SQL_META = "x'; DROP TABLE things; -- \" ` \\ %_ /* */ OR '1'='1"
POLICY_DOC = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Publish",
     "Resource": "arn:aws:iot:us-east-1:*:topic/" + SQL_META}]}
EST_TEMPLATE = {
    "Parameters": {"AWS::IoT::Certificate::Id": {"Type": "String"}},
    "Resources": {"certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
        "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}}}}


class Ctx:
    def __init__(self, daemon, ca, key, data, tmp):
        self.d, self.ca, self.key, self.data, self.tmp = daemon, ca, key, data, tmp
        self.rss = {}

    def req(self, method, path, body=b"", headers=None, signed=True, timeout=60):
        if isinstance(body, str):
            body = body.encode()
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        hdrs = dict(JSON_HDR if body else {})
        hdrs.update(headers or {})
        if signed:
            hdrs = sign(self.d.port, self.key, method, path, body, headers=hdrs)
        return raw_request(self.d.port, self.ca, method, path, body, hdrs, timeout=timeout)

    def refused(self, what, answer, status, types):
        """The answer is the AWS error shape with that status and one of types."""
        st, hdrs, body = answer
        etype = (hdrs.get("x-amzn-errortype") or "").rstrip(":")
        try:
            msg = json.loads(body).get("message", "")
        except ValueError:
            msg = ""
        if isinstance(types, str):
            types = (types,)
        ok = st == status and etype in types and msg != ""
        check(ok, "%s: %d %s" % (what, status, "/".join(types)) +
              ("" if ok else " (got %d %r %r)" % (st, etype, body[:300])))
        return msg

    def alive(self, what):
        check(self.d.alive() and healthy(self.d.port, self.ca), "still serving after " + what)


def count(ctx, path, key):
    st, _, body = ctx.req("GET", path)
    return len(json.loads(body).get(key, [])) if st == 200 else -1


def big_bodies(ctx):
    # Beyond twice max_body evhttp stops reading and answers a plain 413
    # (src/server/http.h): the 10 MB never sits in the server's memory.
    body = b'{"attributePayload":{"attributes":{"a":"' + b"x" * (10 * 1024 * 1024) + b'"}}}'
    t0 = time.monotonic()
    try:
        st, _, _ = ctx.req("POST", "/things/ten-mb", body)
    except (ConnectionError, OSError) as e:  # the server may close while we still send
        st = "closed (%s)" % type(e).__name__
    check(st == 413 or str(st).startswith("closed"),
          "10 MB body: refused with 413 or the connection closed (got %s)" % st)
    check(time.monotonic() - t0 < 30, "10 MB body: answered in under 30 s")
    ctx.alive("a 10 MB body")
    # Just over the limit: read, then refused in the AWS shape, signed or not.
    body = b'{"thingTypeName":"' + b"y" * (MAX_BODY + 1000) + b'"}'
    msg = ctx.refused("body of max_body + 1 KB", ctx.req("POST", "/things/over", body), 413,
                      "RequestEntityTooLargeException")
    check("max_body" in msg, "the 413 message names the setting: " + msg)
    ctx.refused("unsigned body of max_body + 1 KB",
                ctx.req("POST", "/things/over", body, signed=False), 413,
                "RequestEntityTooLargeException")
    ctx.alive("bodies over max_body")


def huge_rsa_csr(ctx):
    csr = ctx.csr16k
    certs = count(ctx, "/certificates", "certificates")
    msg = ctx.refused("CreateCertificateFromCsr with a 16 kbit RSA CSR",
                      ctx.req("POST", "/certificates?setAsActive=true",
                              {"certificateSigningRequest": csr}),
                      400, "InvalidRequestException")
    check("4096" in msg or "large" in msg, "the message says what is too large: " + msg)
    # RegisterThing caps a parameter at 4096 characters too.
    tpl = {"Parameters": {"CSR": {"Type": "String"}},
           "Resources": {"certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
               "CertificateSigningRequest": {"Ref": "CSR"}, "Status": "ACTIVE"}}}}
    msg = ctx.refused("RegisterThing issuing from a 16 kbit RSA CSR",
                      ctx.req("POST", "/things", {"templateBody": json.dumps(tpl),
                                                  "parameters": {"CSR": csr}}),
                      413, "RequestEntityTooLargeException")
    check("4096" in msg, "the message names the limit: " + msg)
    # EST too refuses it by size, before decoding the key (EST errors are
    # text/plain, RFC 7030).
    der = subprocess.run(["openssl", "req", "-in", "-", "-outform", "DER"], input=csr.encode(),
                         capture_output=True, timeout=30).stdout
    auth = "Basic " + base64.b64encode(("%s:%s" % ctx.key).encode()).decode()
    t0 = time.monotonic()
    st, hdrs, body = raw_request(ctx.d.port, ctx.ca, "POST",
                                 "/.well-known/est/%s/simpleenroll" % ctx.template,
                                 base64.b64encode(der),
                                 {"content-type": "application/pkcs10", "authorization": auth})
    text = body.decode(errors="replace")
    check(st == 400 and hdrs.get("content-type", "").startswith("text/plain") and
          ("4096" in text or "16384" in text),
          "EST simpleenroll with a 16 kbit RSA CSR: 400 naming the limit (%d %r)" %
          (st, text[:200]))
    check(time.monotonic() - t0 < 10, "refused without spending seconds on the key")
    check(count(ctx, "/certificates", "certificates") == certs, "no certificate was issued")
    ctx.alive("a 16 kbit RSA CSR")


def deep_chain(ctx):
    leaf, chain = ctx.chain
    certs = count(ctx, "/certificates", "certificates")
    with open(os.path.join(ctx.data, "issuing-ca.crt")) as f:
        issuing = f.read()
    # the leaf with its 20 intermediates, naming the registered issuing CA
    ctx.refused("RegisterCertificate: leaf + 20 intermediates, CA = issuing CA",
                ctx.req("POST", "/certificate/register?setAsActive=true",
                        {"certificatePem": leaf + "".join(chain), "caCertificatePem": issuing}),
                400, ("CertificateValidationException", "InvalidRequestException"))
    # the 20 intermediates as the "CA certificate"
    ctx.refused("RegisterCertificate: caCertificatePem = 20 intermediates + issuing CA",
                ctx.req("POST", "/certificate/register?setAsActive=true",
                        {"certificatePem": leaf, "caCertificatePem": "".join(chain) + issuing}),
                400, ("CertificateValidationException", "InvalidRequestException"))
    # no CA given: the issuer is found among registered CAs, or refused
    ctx.refused("RegisterCertificate of a leaf 20 levels below a registered CA",
                ctx.req("POST", "/certificate/register?setAsActive=true",
                        {"certificatePem": leaf}),
                400, ("CertificateValidationException", "InvalidRequestException"))
    check(count(ctx, "/certificates", "certificates") == certs, "no certificate was registered")
    ctx.alive("a 20-deep chain")


def nested_json(ctx):
    for what, body in (
            ("JSON array nested 100,000 levels", b"[" * 100000 + b"]" * 100000),
            ("JSON object nested 100,000 levels",
             b'{"a":' * 100000 + b"1" + b"}" * 100000),
            ("attributePayload nested 100,000 levels",
             b'{"attributePayload":' + b"[" * 100000 + b"]" * 100000 + b"}")):
        t0 = time.monotonic()
        ctx.refused(what, ctx.req("POST", "/things/nested", body), 400,
                    "InvalidRequestException")
        check(time.monotonic() - t0 < 10, what + ": refused in under 10 s")
    ctx.alive("deeply nested JSON")


def bad_utf8(ctx):
    things = count(ctx, "/things", "things")
    for what, method, path in (
            ("CreateThing name with bytes FF FE", "POST", "/things/%FF%FE"),
            ("CreateThing name with a truncated sequence", "POST", "/things/ok%C3"),
            ("CreateThingGroup name with an overlong '/'", "POST", "/thing-groups/%C0%AF"),
            ("CreatePolicy name with a UTF-16 surrogate", "POST", "/policies/%ED%A0%80"),
            ("CreateThingType name with bytes FF", "POST", "/thing-types/t%FF")):
        body = {"policyDocument": json.dumps(POLICY_DOC)} if "policies" in path else {}
        ctx.refused(what, ctx.req(method, path, body), 400, "InvalidRequestException")
    # invalid UTF-8 inside a JSON string, and a lone surrogate escape
    ctx.refused("attribute value with raw byte FF",
                ctx.req("POST", "/things/utf8", b'{"attributePayload":{"attributes":'
                                                b'{"a":"\xff\xfe"}}}'),
                400, "InvalidRequestException")
    ctx.refused("attribute value with a lone surrogate escape",
                ctx.req("POST", "/things/utf8", b'{"attributePayload":{"attributes":'
                                                b'{"a":"\\ud800"}}}'),
                400, "InvalidRequestException")
    ctx.refused("thing group description with bytes C0 80",
                ctx.req("POST", "/thing-groups/utf8", b'{"thingGroupProperties":'
                                                      b'{"thingGroupDescription":"\xc0\x80"}}'),
                400, "InvalidRequestException")
    check(count(ctx, "/things", "things") == things, "no thing was created")
    ctx.alive("invalid UTF-8")


def long_names(ctx):
    name = "n" * 10000
    ctx.refused("CreateThing with a 10,000-character name",
                ctx.req("POST", "/things/" + name, {}), 400, "InvalidRequestException")
    ctx.refused("DescribeThing with a 10,000-character name",
                ctx.req("GET", "/things/" + name), 400,
                ("InvalidRequestException", "ResourceNotFoundException"))
    ctx.refused("AddThingToThingGroup with a 10,000-character thing name",
                ctx.req("PUT", "/thing-groups/addThingToThingGroup",
                        {"thingGroupName": "g", "thingName": name}),
                400, "InvalidRequestException")
    ctx.refused("CreatePolicy with a 10,000-character name",
                ctx.req("POST", "/policies/" + name,
                        {"policyDocument": json.dumps(POLICY_DOC)}),
                400, "InvalidRequestException")
    ctx.alive("10,000-character names")


def sql_metacharacters(ctx):
    q = urllib.parse.quote(SQL_META, safe="")
    # in names: refused by the name rules
    for what, path in (("thing", "/things/"), ("thing group", "/thing-groups/"),
                       ("thing type", "/thing-types/"), ("policy", "/policies/")):
        body = {"policyDocument": json.dumps(POLICY_DOC)} if what == "policy" else {}
        ctx.refused("%s name with SQL metacharacters" % what, ctx.req("POST", path + q, body),
                    400, "InvalidRequestException")
    # in attribute names and values: refused by the attribute rules
    ctx.refused("attribute value with SQL metacharacters",
                ctx.req("POST", "/things/sqlthing",
                        {"attributePayload": {"attributes": {"a": SQL_META}}}),
                400, "InvalidRequestException")
    ctx.refused("attribute name with SQL metacharacters",
                ctx.req("POST", "/things/sqlthing",
                        {"attributePayload": {"attributes": {SQL_META: "v"}}}),
                400, "InvalidRequestException")
    # in free text: stored and read back byte for byte
    st, _, _ = ctx.req("POST", "/thing-types/sqltype",
                       {"thingTypeProperties": {"thingTypeDescription": SQL_META}})
    st2, _, body = ctx.req("GET", "/thing-types/sqltype")
    desc = json.loads(body).get("thingTypeProperties", {}).get("thingTypeDescription") \
        if st2 == 200 else None
    check(st == 200 and desc == SQL_META, "thing type description with SQL metacharacters "
          "stored verbatim (%s, %r)" % (st, desc))
    st, _, _ = ctx.req("POST", "/thing-groups/sqlgroup",
                       {"thingGroupProperties": {"thingGroupDescription": SQL_META}})
    st2, _, body = ctx.req("GET", "/thing-groups/sqlgroup")
    desc = json.loads(body).get("thingGroupProperties", {}).get("thingGroupDescription") \
        if st2 == 200 else None
    check(st == 200 and desc == SQL_META, "thing group description stored verbatim")
    st, _, _ = ctx.req("POST", "/policies/sqlpolicy", {"policyDocument": json.dumps(POLICY_DOC)})
    st2, _, body = ctx.req("GET", "/policies/sqlpolicy")
    doc = json.loads(json.loads(body).get("policyDocument", "{}")) if st2 == 200 else {}
    check(st == 200 and doc == POLICY_DOC, "policy resource with SQL metacharacters stored "
          "verbatim")
    # in query strings: a filter and page tokens
    st, _, _ = ctx.req("POST", "/things/plain", {})
    check(st == 200, "a plain thing is created")
    st, _, body = ctx.req("GET", "/things?attributeName=a&attributeValue=" + q)
    check(st == 400 or (st == 200 and json.loads(body).get("things") == []),
          "ListThings filtered by a SQL-metacharacter value matches nothing (%d)" % st)
    ctx.refused("ListThings nextToken with SQL metacharacters",
                ctx.req("GET", "/things?nextToken=" + q), 400, "InvalidRequestException")
    ctx.refused("ListCertificates marker with SQL metacharacters",
                ctx.req("GET", "/certificates?marker=" + q), 400, "InvalidRequestException")
    ctx.refused("ListThingPrincipals header with SQL metacharacters",
                ctx.req("GET", "/principals/things", headers={"x-amzn-principal": SQL_META}),
                400, ("InvalidRequestException", "ResourceNotFoundException"))
    check(count(ctx, "/things", "things") == 1, "exactly the one plain thing exists")
    ctx.alive("SQL metacharacters")


def self_referencing_templates(ctx):
    bodies = {
        "a resource whose name is a Ref to itself": {
            "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {
                "ThingName": {"Ref": "thing"}}}}},
        "a parameter whose default is a Ref to itself": {
            "Parameters": {"Name": {"Type": "String", "Default": {"Ref": "Name"}}},
            "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {
                "ThingName": {"Ref": "Name"}}}}},
        "two parameters referencing each other": {
            "Parameters": {"A": {"Type": "String", "Default": {"Ref": "B"}},
                           "B": {"Type": "String", "Default": {"Ref": "A"}}},
            "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {
                "ThingName": {"Ref": "A"}}}}},
        "Fn::Join nested 400 levels": {
            "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {
                "ThingName": "PLACEHOLDER"}}}},
    }
    for what, tpl in bodies.items():
        text = json.dumps(tpl)
        if "PLACEHOLDER" in text:
            # 400 levels: within the 10,240-character cap on a template
            text = text.replace('"PLACEHOLDER"', '{"Fn::Join":["",[' * 400 + '"x"' +
                                ']]}' * 400)
        t0 = time.monotonic()
        ctx.refused("RegisterThing with " + what,
                    ctx.req("POST", "/things", {"templateBody": text, "parameters": {}}), 400,
                    ("InvalidRequestException", "ResourceRegistrationFailureException"))
        check(time.monotonic() - t0 < 10, what + ": refused in under 10 s")
    ctx.alive("self-referencing templates")


ROUND = [big_bodies, huge_rsa_csr, deep_chain, nested_json, bad_utf8, long_names]


def memory(ctx):
    """A second round of every input that could cost memory: RSS must not grow
    with it, and the peak must stay well below the inputs' size."""
    pid = ctx.d.proc.pid
    after1 = rel.rss_kb(pid)
    for fn in ROUND:
        fn(ctx)
    after2 = rel.rss_kb(pid)
    peak = rel.proc_status_kb(pid, "VmHWM")
    print("iotprovd VmRSS: at start %d kB, after round 1 %d kB, after round 2 %d kB, "
          "peak %d kB" % (ctx.rss["start"], after1, after2, peak))
    check(after2 - after1 < 8 * 1024, "VmRSS grew %d kB in round 2 (< 8 MB)" % (after2 - after1))
    check(peak - ctx.rss["start"] < 48 * 1024,
          "peak VmRSS %d kB over the start (< 48 MB: the 10 MB body was never buffered "
          "whole, nested JSON never exploded)" % (peak - ctx.rss["start"]))


def main():
    tmp = tempfile.mkdtemp(prefix="iotp-neg-")
    data = os.path.join(tmp, "data")
    daemon = None
    try:
        print("data dir made with " + make_data_dir(data))
        conf = os.path.join(data, "iotprov.conf")
        with open(conf) as f:
            text = f.read()
        if ";max_body = 65536" in text:
            text = text.replace(";max_body = 65536", "max_body = %d" % MAX_BODY)
        else:
            text += "\n[api]\nmax_body = %d\n" % MAX_BODY
        with open(conf, "w") as f:
            f.write(text)
        ca = os.path.join(data, "ca-bundle.pem")
        admin = key_create(data, "admin")
        work = os.path.join(tmp, "work")
        os.makedirs(work)
        t0 = time.monotonic()
        csr16k = rel.rsa_csr_pem(16384)
        chain = rel.deep_chain(work, os.path.join(data, "issuing-ca.crt"),
                               os.path.join(data, "issuing-ca.key"), 20)
        print("inputs made in %.1f s" % (time.monotonic() - t0))
        if rel.sanitized(IOTPROVD):
            print("iotprovd is built with ASan: its quarantine set to 4 MB so that RSS "
                  "means something")
            rel.asan_small_quarantine()
        daemon = Daemon(data)
        ctx = Ctx(daemon, ca, admin, data, tmp)
        ctx.csr16k, ctx.chain = csr16k, chain
        ctx.template = "neg-est"
        st, _, body = ctx.req("POST", "/provisioning-templates", {
            "templateName": ctx.template, "templateBody": json.dumps(EST_TEMPLATE), "enabled": True, "type": "FLEET_PROVISIONING",
            "provisioningRoleArn": "arn:aws:iam::123456789012:role/provisioning"})
        check(st == 200, "a provisioning template for EST (%d %r)" % (st, body[:200]))
        ctx.rss["start"] = rel.rss_kb(daemon.proc.pid)
        for fn in ROUND + [sql_metacharacters, self_referencing_templates, memory]:
            section(fn, ctx)
        rc = daemon.stop()
        check(rc == 0, "SIGTERM: exit status %s" % rc)
        status, report, err = rel.check_store(data)
        check(status == 0 and report is not None and report["errors"] == 0,
              "iotprov check: no problem in the store (%s %s)" %
              (status, (report or {}).get("problems", err)))
    finally:
        if daemon is not None and daemon.alive():
            daemon.proc.kill()
            daemon.proc.wait()
        if daemon is not None and failures:
            print(daemon.read_log()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
