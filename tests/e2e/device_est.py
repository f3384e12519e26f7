#!/usr/bin/env python3
"""EST enrolment by iotprov-device against iotprovd's /.well-known/est/:
simpleenroll with an installer key (HTTP Basic, sent only after the 401
challenge) under the label of a template, then MQTT with the issued
certificate; simplereenroll authenticated by the current certificate over
mutual TLS (with a file key, and with a key inside a SoftHSM2 token so the
handshake is signed in the token), with the same key and with a new one;
and wrong credentials reported as refused.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import device_e2e as e  # noqa: E402

EST_TEMPLATE = "EstSensors"
BODY = {
    "Parameters": {"AWS::IoT::Certificate::CommonName": {"Type": "String"},
                   "AWS::IoT::Certificate::Id": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing",
                  "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}}},
        "cert": {"Type": "AWS::IoT::Certificate",
                 "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
                                "Status": "ACTIVE"}},
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "DevicePolicy"}}},
}


def installer(stack):
    r = e.run([e.IOTPROV, "key", "create", "--role", "installer", "--templates", EST_TEMPLATE,
               "--format", "env", "--data-dir", stack.dir])
    if r.returncode != 0:
        raise RuntimeError("iotprov key create: " + r.stderr)
    return dict(line.split("=", 1) for line in r.stdout.split() if line.startswith("AWS_"))


def est_args(stack, cn, key_id):
    return ["--est-endpoint", stack.est, "--endpoint", stack.mqtt, "--ca", stack.ca,
            "--template", EST_TEMPLATE, "--cn", cn, "--est-user", key_id]


def pubkey_of_cert(path):
    return e.run(["openssl", "x509", "-in", path, "-noout", "-pubkey"]).stdout


def enrol_and_reenrol(stack, tmp, inst, token):
    env = dict(os.environ, IOTP_EST_PASSWORD=inst["AWS_SECRET_ACCESS_KEY"])
    st = os.path.join(tmp, "est-dev")
    r = e.device(st, "provision", "--method", "est",
                 *est_args(stack, "est-0001", inst["AWS_ACCESS_KEY_ID"]), env=env)
    if not e.check(r.returncode == 0, "EST: simpleenroll with the installer key", r.stderr):
        return
    s = e.status(st)
    e.check(s["provisioned"] and s["method"] == "est" and s["clientId"] == "est-0001",
            "EST: provisioned, client id from the CN", s)
    e.check(stack.thing("est-0001") is not None, "EST: the template made thing est-0001")
    e.check(stack.cert(s["certificateId"])["status"] == "ACTIVE", "EST: certificate ACTIVE")
    logs = stack.log_text()
    e.check("EstSimpleEnroll" in logs and "-> 401" in logs and "-> 200" in logs,
            "EST: a 401 challenge came before the credentials were sent")
    # Re-enrolment: the current certificate authenticates (mTLS).
    r = e.device(st, "rotate", "--method", "est")
    e.check(r.returncode == 0 and "simplereenroll" in r.stderr, "EST: simplereenroll", r.stderr)
    s2 = e.status(st)
    e.check(s2["certificateId"] != s["certificateId"] and s2["clientId"] == "est-0001",
            "EST: a new certificate for the same device", s2)
    e.check(any(a.endswith(s2["certificateId"]) for a in stack.principals("est-0001")),
            "EST: the new certificate is attached to the thing")
    r = e.device(st, "rotate", "--method", "est", "--new-key")
    e.check(r.returncode == 0, "EST: simplereenroll with a new key", r.stderr)
    s3 = e.status(st)
    e.check(s3["key"]["fingerprint"] != s["key"]["fingerprint"], "EST: new key in use")
    crt = os.path.join(st, "id-%d.crt" % json.load(open(os.path.join(st, "state.json")))["current"])
    e.check(pubkey_of_cert(crt) == e.run(["openssl", "pkey", "-in", os.path.join(st, s3["keyUri"][5:]),
                                          "-pubout"]).stdout,
            "EST: the certificate is for the new key")
    r = e.device(st, "connect")
    e.check(r.returncode == 0, "EST: connects over MQTT after re-enrolment", r.stderr)

    # The same with a token key: curl's TLS handshake is signed in the token.
    tenv = token.env(env)
    st = os.path.join(tmp, "est-hsm")
    r = e.device(st, "keygen", "--key", token.uri("estkey"), env=tenv)
    e.check(r.returncode == 0, "EST token: keygen in SoftHSM2", r.stderr)
    r = e.device(st, "provision", "--method", "est",
                 *est_args(stack, "est-hsm-1", inst["AWS_ACCESS_KEY_ID"]), env=tenv)
    e.check(r.returncode == 0, "EST token: enrolled", r.stderr)
    r = e.device(st, "rotate", "--method", "est", env=tenv)
    e.check(r.returncode == 0, "EST token: re-enrolled over mTLS with the token key", r.stderr)
    s = e.status(st, env=tenv)
    e.check(s["key"]["backend"] == "pkcs11" and not s["key"]["extractable"] and
            s["provisioned"], "EST token: identity in the token", s)


def refused(stack, tmp, inst):
    st = os.path.join(tmp, "est-bad")
    env = dict(os.environ, IOTP_EST_PASSWORD="not-the-secret")
    r = e.device(st, "provision", "--method", "est",
                 *est_args(stack, "est-bad-1", inst["AWS_ACCESS_KEY_ID"]), "--json", env=env)
    o = json.loads(r.stdout) if r.stdout.strip() else {}
    e.check(r.returncode == 1 and o.get("cause") == "refused" and o.get("status") in (401, 403),
            "EST: a wrong secret is refused", r.stdout + r.stderr)
    e.check(not e.status(st)["provisioned"], "EST: refused device not provisioned")


def main():
    if not os.access(e.DEVICE, os.X_OK) or not os.access(e.IOTPROV, os.X_OK):
        print("iotprov / iotprov-device not built")
        return 1
    tmp = e.tmpdir("device-est")
    stack = e.Stack(tmp)
    try:
        stack.iot.create_provisioning_template(
            templateName=EST_TEMPLATE, templateBody=json.dumps(BODY), enabled=True,
            provisioningRoleArn="arn:aws:iam::123456789012:role/provisioning",
            type="FLEET_PROVISIONING")
        inst = installer(stack)
        token = e.Token(tmp)
        e.section(enrol_and_reenrol, stack, tmp, inst, token)
        e.section(refused, stack, tmp, inst)
    finally:
        stack.stop()
    if e.failures:
        print(stack.log_text()[-5000:])
    e.cleanup(tmp)
    return e.summary()


if __name__ == "__main__":
    sys.exit(main())
