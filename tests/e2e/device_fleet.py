#!/usr/bin/env python3
"""iotprov-device against a real `iotprov up` (iotprovd + mosquitto with the
plugin): fleet provisioning by claim with a file key and with a key generated
inside a SoftHSM2 token (non-extractable, checked with pkcs11-tool), in JSON
over MQTT 5 and in CBOR over MQTT 3.1.1, with a server-made key; provisioning
by trusted user with a CreateProvisioningClaim from the API; rotation (same
key, new key, new token key) then reconnection; reset then re-provisioning;
and failures reported with their cause: a template failing with the
parameters (rejected + errorCode), topics the claim may not use (refused),
and a revoked certificate retried with bounded, jittered backoff.

What is checked is what an operator sees: the thing exists with its
attributes, its principal is the device's certificate, ACTIVE, chaining to
iotprov's CA, carrying the device's public key.
"""
import datetime
import json
import os
import re
import stat
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import device_e2e as e  # noqa: E402


def cert_pubkey(pem_path):
    return e.run(["openssl", "x509", "-in", pem_path, "-noout", "-pubkey"]).stdout


def verify_chain(stack, pem_path):
    issuing = os.path.join(stack.dir, "issuing-ca.crt")
    r = e.run(["openssl", "verify", "-CAfile", stack.ca, "-untrusted", issuing,
               "-purpose", "sslclient", pem_path])
    return r.returncode == 0


def provisioned_ok(stack, st, serial, what, env=None):
    """The checks an operator makes after a device provisioned."""
    s = e.status(st, env=env)
    thing = "dev-" + serial
    e.check(s["provisioned"] and s["thingName"] == thing and s["clientId"] == thing,
            what + ": status shows thing " + thing, s)
    t = stack.thing(thing)
    e.check(t is not None and t["attributes"].get("serial") == serial,
            what + ": the thing exists with its serial attribute", t)
    c = stack.cert(s["certificateId"])
    e.check(c["status"] == "ACTIVE", what + ": its certificate is ACTIVE", c["status"])
    arns = stack.principals(thing)
    e.check(any(a.endswith("/" + s["certificateId"]) for a in arns),
            what + ": the certificate is the thing's principal", arns)
    crt = os.path.join(st, "id-%s.crt" % current_id(st))
    e.check(verify_chain(stack, crt), what + ": the certificate chains to iotprov's CA")
    e.check(s["notAfter"] > time.time() + 86400, what + ": expiry in status", s["notAfter"])
    return s


def current_id(st):
    with open(os.path.join(st, "state.json")) as f:
        return json.load(f)["current"]


def id_files(st):
    return sorted(n for n in os.listdir(st) if re.match(r"(id|key)-\d+\.", n))


def claim_file_key(stack, tmp):
    st = os.path.join(tmp, "file-dev")
    r = e.device(st, "keygen")
    e.check(r.returncode == 0, "file: keygen", r.stderr)
    r = e.device(st, "provision", "--method", "claim", "--claim-cert", stack.claim_cert,
                 "--claim-key", stack.claim_key, *e.fleet_args(stack, "file-1"))
    if not e.check(r.returncode == 0, "file: provision by claim, exit 0", r.stderr + stack.log_text()[-3000:]):
        return
    s = provisioned_ok(stack, st, "file-1", "file")
    e.check(cert_pubkey(os.path.join(st, "id-1.crt")) ==
            e.run(["openssl", "pkey", "-in", os.path.join(st, "factory.key"), "-pubout"]).stdout,
            "file: the certificate carries the factory key")
    e.check(stat.S_IMODE(os.stat(os.path.join(st, "claim.key")).st_mode) == 0o600,
            "file: the stored claim key is 0600")
    r = e.device(st, "connect", "--json")
    e.check(r.returncode == 0 and json.loads(r.stdout)["certificateId"] == s["certificateId"],
            "file: connect publishes with the identity", r.stderr)
    e.check("connected with cert %s" % s["certificateId"] in stack.log_text(),
            "file: the broker saw the device certificate")
    r = e.device(st, "provision", "--method", "claim")
    e.check(r.returncode == 1 and "already provisioned" in r.stderr,
            "file: provisioning twice is refused (use rotate)", r.stderr)

    # Rotation with the same key: a new certificate, the old identity gone
    # from the device only after the new one connected.
    old = s["certificateId"]
    r = e.device(st, "rotate")
    e.check(r.returncode == 0, "rotate (same key): exit 0", r.stderr)
    s2 = e.status(st)
    e.check(s2["certificateId"] != old and s2["thingName"] == "dev-file-1",
            "rotate: new certificate, same thing", s2)
    e.check(s2["key"]["fingerprint"] == s["key"]["fingerprint"], "rotate: same key")
    e.check(id_files(st) == ["id-2.crt", "id-2.json"], "rotate: only the new identity is kept",
            id_files(st))
    e.check(stack.cert(s2["certificateId"])["status"] == "ACTIVE", "rotate: new cert ACTIVE")
    e.check(any(a.endswith(s2["certificateId"]) for a in stack.principals("dev-file-1")),
            "rotate: new cert attached to the thing")
    r = e.device(st, "connect")
    e.check(r.returncode == 0, "rotate: reconnects with the new certificate", r.stderr)

    # Rotation with a new key.
    r = e.device(st, "rotate", "--new-key")
    e.check(r.returncode == 0, "rotate --new-key: exit 0", r.stderr)
    s3 = e.status(st)
    e.check(s3["key"]["fingerprint"] != s["key"]["fingerprint"] and s3["keyUri"] == "file:key-3.pem",
            "rotate --new-key: a new key", s3)
    e.check(stat.S_IMODE(os.stat(os.path.join(st, "key-3.pem")).st_mode) == 0o600,
            "rotate --new-key: the new key file is 0600")
    e.check(cert_pubkey(os.path.join(st, "id-3.crt")) ==
            e.run(["openssl", "pkey", "-in", os.path.join(st, "key-3.pem"), "-pubout"]).stdout,
            "rotate --new-key: the certificate is for the new key")
    e.check(os.path.exists(os.path.join(st, "factory.key")), "rotate --new-key: factory key kept")
    r = e.device(st, "connect")
    e.check(r.returncode == 0, "rotate --new-key: reconnects", r.stderr)

    # Reset, then provision again with the stored claim and settings.
    r = e.device(st, "reset", "--json")
    rs = json.loads(r.stdout)
    e.check(r.returncode == 0 and not rs["provisioned"] and rs["hasClaim"] and
            rs["keyUri"] == "file:factory.key" and rs["key"]["fingerprint"] == s["key"]["fingerprint"],
            "reset: factory state, factory key and claim kept", r.stdout)
    e.check(id_files(st) == [], "reset: no operational identity left", id_files(st))
    r = e.device(st, "connect")
    e.check(r.returncode == 1, "reset: nothing to connect with")
    r = e.device(st, "provision", "--method", "claim")
    e.check(r.returncode == 0, "reset: provision again with the stored claim and settings",
            r.stderr)
    s4 = provisioned_ok(stack, st, "file-1", "re-provisioned")
    e.check(s4["certificateId"] not in (old, s2["certificateId"], s3["certificateId"]),
            "re-provisioned: a fresh certificate")


def claim_token_key(stack, tmp):
    tok = e.Token(tmp)
    env = tok.env()
    st = os.path.join(tmp, "hsm-dev")
    r = e.device(st, "keygen", "--key", tok.uri("devkey"), "--json", env=env)
    e.check(r.returncode == 0, "token: keygen inside SoftHSM2", r.stderr)
    k = json.loads(r.stdout)["key"]
    e.check(k["backend"] == "pkcs11" and k["sensitive"] and not k["extractable"] and
            k["neverExtractable"] and k["local"],
            "token: CKA_SENSITIVE true, CKA_EXTRACTABLE false, generated on the token", k)
    objs = tok.objects()
    m = re.search(r"Private Key Object.*?label:\s+devkey.*?Access:\s+([^\n]+)", objs, re.S)
    e.check(m is not None and "sensitive" in m.group(1) and "never extractable" in m.group(1)
            and "local" in m.group(1), "token: pkcs11-tool sees a sensitive, never-extractable key",
            objs)
    with open(os.path.join(st, "device.json")) as f:
        conf = f.read()
    e.check(e.PIN not in conf and "pkcs11:token=device;object=devkey" in conf,
            "token: the recorded key URI has no PIN", conf)
    e.check(not any(n.endswith(".key") or n.endswith(".pem") for n in os.listdir(st)),
            "token: no key file in the state dir", os.listdir(st))
    r = e.device(st, "provision", "--method", "claim", "--claim-cert", stack.claim_cert,
                 "--claim-key", stack.claim_key, *e.fleet_args(stack, "hsm-1"), env=env)
    if not e.check(r.returncode == 0, "token: provision by claim, exit 0", r.stderr):
        return
    s = provisioned_ok(stack, st, "hsm-1", "token", env=env)
    pub = e.run(["pkcs11-tool", "--module", e.SOFTHSM, "--token-label", "device", "--login",
                 "--pin", e.PIN, "--read-object", "--type", "pubkey", "--label", "devkey",
                 "-o", os.path.join(tmp, "pub.der")], env=env)
    pem = e.run(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", os.path.join(tmp, "pub.der"),
                 "-pubout"]).stdout
    e.check(pub.returncode == 0 and pem == cert_pubkey(os.path.join(st, "id-1.crt")),
            "token: the certificate carries the token's public key")
    r = e.device(st, "connect", env=env)
    e.check(r.returncode == 0, "token: TLS handshake signed in the token, publish ok", r.stderr)
    r = e.device(st, "connect", env=dict(env, IOTP_PKCS11_PIN="0000"))
    e.check(r.returncode == 1 and "PIN" in r.stderr, "token: a wrong PIN is a clear failure",
            r.stderr)
    # A new key for a rotation is generated in the same token, and the old
    # one leaves the token once the new identity works.
    r = e.device(st, "rotate", "--new-key", env=env)
    e.check(r.returncode == 0, "token: rotate --new-key", r.stderr)
    s2 = e.status(st, env=env)
    e.check(s2["keyUri"] == tok.uri("devkey-2") and s2["key"]["backend"] == "pkcs11" and
            not s2["key"]["extractable"] and s2["key"]["fingerprint"] != s["key"]["fingerprint"],
            "token: the new key is in the token, non-extractable", s2)
    r = e.device(st, "rotate", "--new-key", env=env)
    e.check(r.returncode == 0, "token: a second rotate --new-key", r.stderr)
    objs = tok.objects()
    e.check("devkey-3" in objs and "devkey-2" not in objs and "label:      devkey\n" in objs,
            "token: the replaced key was destroyed, the factory key kept", objs)
    r = e.device(st, "connect", env=env)
    e.check(r.returncode == 0, "token: reconnects after rotation", r.stderr)


def cbor_v311_and_server_key(stack, tmp):
    st = os.path.join(tmp, "cbor-dev")
    r = e.device(st, "provision", "--method", "claim", "--claim-cert", stack.claim_cert,
                 "--claim-key", stack.claim_key, "--format", "cbor", "--mqtt-version", "4",
                 *e.fleet_args(stack, "cbor-1"))
    e.check(r.returncode == 0 and "CBOR" in r.stderr, "CBOR over MQTT 3.1.1: provisioned",
            r.stderr)
    provisioned_ok(stack, st, "cbor-1", "cbor")
    # Mosquitto logs its protocol enum: p2 is MQTT 3.1.1, p5 is MQTT 5.
    e.check(re.search(r"as dev-cbor-1 \(p2,", stack.log_text()) is not None,
            "the broker saw an MQTT 3.1.1 client")
    st = os.path.join(tmp, "srvkey-dev")
    r = e.device(st, "provision", "--method", "claim", "--claim-cert", stack.claim_cert,
                 "--claim-key", stack.claim_key, "--server-key", "--new-key",
                 *e.fleet_args(stack, "srvkey-1"))
    e.check(r.returncode == 0, "server-made key ($aws/certificates/create): provisioned",
            r.stderr)
    s = provisioned_ok(stack, st, "srvkey-1", "server key")
    key = os.path.join(st, "key-1.pem")
    e.check(s["keyUri"] == "file:key-1.pem" and stat.S_IMODE(os.stat(key).st_mode) == 0o600,
            "server key: stored 0600 as the identity's key", s["keyUri"])
    e.check(cert_pubkey(os.path.join(st, "id-1.crt")) ==
            e.run(["openssl", "pkey", "-in", key, "-pubout"]).stdout,
            "server key: the certificate matches it")


def trusted_user(stack, tmp):
    c = stack.iot.create_provisioning_claim(templateName=e.TEMPLATE)
    claim = {k: (v.isoformat() if isinstance(v, datetime.datetime) else v) for k, v in c.items()
             if k != "ResponseMetadata"}
    path = os.path.join(tmp, "installer-claim.json")
    with open(path, "w") as f:
        json.dump(claim, f)
    os.chmod(path, 0o600)
    st = os.path.join(tmp, "tu-dev")
    r = e.device(st, "provision", "--method", "trusted-user", "--claim", path,
                 *e.fleet_args(stack, "tu-1"))
    if not e.check(r.returncode == 0, "trusted user: provisioned with the installer's claim",
                   r.stderr):
        return
    s = provisioned_ok(stack, st, "tu-1", "trusted user")
    e.check(s["method"] == "trusted-user" and not s["hasClaim"] and
            not os.path.exists(os.path.join(st, "claim.key")),
            "trusted user: the temporary claim is not kept on the device", s)
    e.check("connected with cert %s" % c["certificateId"] in stack.log_text(),
            "trusted user: the broker saw the claim certificate")
    # The claim is for one template only.
    st2 = os.path.join(tmp, "tu-dev2")
    r = e.device(st2, "provision", "--method", "trusted-user", "--claim", path,
                 "--endpoint", stack.mqtt, "--ca", stack.ca, "--template", "SomethingElse",
                 "--param", "SerialNumber=tu-2")
    e.check(r.returncode == 1 and re.search(r"cause: (refused|rejected)", r.stderr),
            "trusted user: another template is refused, with its cause", r.stderr)


def failures_with_causes(stack, tmp):
    # The template needs SerialNumber: the service rejects, with errorCode.
    st = os.path.join(tmp, "bad-params")
    r = e.device(st, "provision", "--method", "claim", "--claim-cert", stack.claim_cert,
                 "--claim-key", stack.claim_key, "--endpoint", stack.mqtt, "--ca", stack.ca,
                 "--template", e.TEMPLATE, "--param", "Colour=blue", "--json")
    o = json.loads(r.stdout) if r.stdout.strip() else {}
    e.check(r.returncode == 1 and o.get("cause") == "rejected" and o.get("status") == 400 and
            o.get("errorCode"), "missing parameter: rejected with statusCode and errorCode",
            r.stdout + r.stderr)
    e.check(not e.status(st)["provisioned"], "missing parameter: still not provisioned")
    # A template the claim's policy does not cover: the subscription is refused.
    st = os.path.join(tmp, "other-template")
    r = e.device(st, "provision", "--method", "claim", "--claim-cert", stack.claim_cert,
                 "--claim-key", stack.claim_key, "--endpoint", stack.mqtt, "--ca", stack.ca,
                 "--template", "NotMine", "--param", "SerialNumber=x")
    e.check(r.returncode == 1 and "cause: refused" in r.stderr,
            "a topic outside the claim policy: refused", r.stderr)
    # An untrusted CA bundle: TLS.
    st = os.path.join(tmp, "wrong-ca")
    r = e.device(st, "provision", "--method", "claim", "--claim-cert", stack.claim_cert,
                 "--claim-key", stack.claim_key, "--endpoint", stack.mqtt,
                 "--ca", "/etc/ssl/certs/ca-certificates.crt", "--template", e.TEMPLATE,
                 "--param", "SerialNumber=x")
    e.check(r.returncode == 1 and "cause: tls" in r.stderr, "an untrusted server: tls",
            r.stderr)
    # A revoked device: refused at CONNACK, retried with backoff, bounded.
    st = os.path.join(tmp, "revoked")
    r = e.device(st, "provision", "--method", "claim", "--claim-cert", stack.claim_cert,
                 "--claim-key", stack.claim_key, *e.fleet_args(stack, "rev-1"))
    if not e.check(r.returncode == 0, "revoked: provisioned first", r.stderr):
        return
    s = e.status(st)
    stack.iot.update_certificate(certificateId=s["certificateId"], newStatus="REVOKED")
    t0 = time.time()
    r = e.device(st, "connect", "--retries", "3", "--backoff-base", "200", "--backoff-cap", "300")
    took = time.time() - t0
    tries = re.findall(r"retrying in (\d+) ms", r.stderr)
    e.check(r.returncode == 1 and "cause: refused" in r.stderr,
            "revoked: connection refused, cause refused", r.stderr)
    e.check(len(tries) == 3 and int(tries[0]) <= 200 and all(int(x) <= 300 for x in tries),
            "revoked: 3 retries within the backoff windows (200, 300, 300 ms)", tries)
    e.check(took < 0.2 + 0.3 + 0.3 + 5, "revoked: bounded in time (%.2f s)" % took)
    refusals = len(re.findall(r"refused: client dev-rev-1 cert %s" % s["certificateId"],
                              stack.log_text()))
    e.check(refusals >= 4 or stack.log_text().count(s["certificateId"]) >= 4,
            "revoked: the broker saw 4 attempts")


def main():
    if not os.access(e.DEVICE, os.X_OK) or not os.access(e.IOTPROV, os.X_OK):
        print("iotprov / iotprov-device not built")
        return 1
    tmp = e.tmpdir("device-fleet")
    stack = e.Stack(tmp)
    try:
        for part in (claim_file_key, claim_token_key, cbor_v311_and_server_key, trusted_user,
                     failures_with_causes):
            e.section(part, stack, tmp)
    finally:
        stack.stop()
    if e.failures:
        print(stack.log_text()[-6000:])
    e.cleanup(tmp)
    return e.summary()


if __name__ == "__main__":
    sys.exit(main())
