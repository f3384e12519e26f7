#!/usr/bin/env python3
"""JITP and JITR devices: a vendor CA made with openssl is registered with
iotprov (proof of possession with the registration code); a device makes its
key and CSR with iotprov-device, the vendor signs it, and
`iotprov-device provision --method jitp --cert` connects with it:
  - JITP (the CA carries a template): the device is in on its first attempt,
    and the thing named after the certificate's CN exists with the
    certificate ACTIVE as its principal;
  - JITR (no template): the broker registers the certificate
    PENDING_ACTIVATION and refuses it; the device keeps retrying with
    backoff; the operator activates it and attaches a policy; the device's
    next attempt gets in and the identity becomes current.
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import device_e2e as e  # noqa: E402

JITP_TEMPLATE = {
    "Parameters": {"AWS::IoT::Certificate::CommonName": {"Type": "String"},
                   "AWS::IoT::Certificate::Id": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing",
                  "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}}},
        "certificate": {"Type": "AWS::IoT::Certificate",
                        "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
                                       "Status": "ACTIVE"}},
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "DevicePolicy"}}},
}


def openssl(*args, cwd):
    r = e.run(["openssl"] + list(args), cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr))


def vendor_ca(stack, tmp, name, template):
    """A vendor CA registered ACTIVE with auto-registration."""
    d = os.path.join(tmp, name)
    os.makedirs(d)
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=d)
    openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=%s vendor CA" % name,
            "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.crt", cwd=d)
    code = stack.iot.get_registration_code()["registrationCode"]
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "verif.key", cwd=d)
    openssl("req", "-new", "-key", "verif.key", "-subj", "/CN=" + code, "-out", "verif.csr", cwd=d)
    openssl("x509", "-req", "-in", "verif.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-out", "verif.crt", cwd=d)
    r = stack.iot.register_ca_certificate(
        caCertificate=open(os.path.join(d, "ca.crt")).read(),
        verificationCertificate=open(os.path.join(d, "verif.crt")).read(),
        setAsActive=True, allowAutoRegistration=True)
    if template is not None:
        stack.iot.update_ca_certificate(certificateId=r["certificateId"],
                                        registrationConfig={"templateBody": json.dumps(template)})
    return d


def device_cert(st, ca_dir, cn):
    """keygen + csr by the device, signed by the vendor; returns the chain file."""
    r = e.device(st, "keygen")
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    csr = os.path.join(st, "..", cn + ".csr")
    r = e.device(st, "csr", "--cn", cn, "--out", csr)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    with open(os.path.join(ca_dir, "ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=clientAuth\n")
    crt = os.path.join(ca_dir, cn + ".crt")
    openssl("x509", "-req", "-in", csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "30", "-extfile", "ext", "-out", crt, cwd=ca_dir)
    chain = os.path.join(ca_dir, cn + "-chain.pem")
    with open(chain, "w") as f:
        f.write(open(crt).read() + open(os.path.join(ca_dir, "ca.crt")).read())
    der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"], capture_output=True)
    return chain, hashlib.sha256(der.stdout).hexdigest()


def jitp(stack, tmp):
    ca = vendor_ca(stack, tmp, "jitp-vendor", JITP_TEMPLATE)
    st = os.path.join(tmp, "jitp-dev")
    chain, cert_id = device_cert(st, ca, "jitp-0001")
    r = e.device(st, "provision", "--method", "jitp", "--cert", chain, "--endpoint", stack.mqtt,
                 "--ca", stack.ca, "--retries", "4", "--backoff-base", "300")
    if not e.check(r.returncode == 0, "JITP: provisioned on connect", r.stderr):
        return
    s = e.status(st)
    e.check(s["provisioned"] and s["method"] == "jitp" and s["clientId"] == "jitp-0001" and
            s["certificateId"] == cert_id, "JITP: status shows the vendor certificate", s)
    t = stack.thing("jitp-0001")
    e.check(t is not None, "JITP: thing named after the CN exists")
    e.check(stack.cert(cert_id)["status"] == "ACTIVE", "JITP: certificate ACTIVE")
    e.check(any(a.endswith(cert_id) for a in stack.principals("jitp-0001")),
            "JITP: certificate attached to the thing")
    r = e.device(st, "connect")
    e.check(r.returncode == 0, "JITP: connects again", r.stderr)
    r = e.device(st, "rotate")
    e.check(r.returncode == 1 and "manufacturer" in r.stderr,
            "JITP: rotating a vendor certificate says to use claim or est", r.stderr)
    # A certificate that is not for the device's key is refused up front.
    st2 = os.path.join(tmp, "jitp-wrong")
    e.device(st2, "keygen")
    r = e.device(st2, "provision", "--method", "jitp", "--cert", chain, "--endpoint", stack.mqtt,
                 "--ca", stack.ca)
    e.check(r.returncode == 1 and "not a certificate for the device key" in r.stderr,
            "JITP: someone else's certificate is refused", r.stderr)


def jitr(stack, tmp):
    ca = vendor_ca(stack, tmp, "jitr-vendor", None)
    st = os.path.join(tmp, "jitr-dev")
    chain, cert_id = device_cert(st, ca, "jitr-0001")
    log = open(os.path.join(tmp, "jitr-device.log"), "w")
    proc = subprocess.Popen([e.DEVICE, "provision", "--method", "jitp", "--cert", chain,
                             "--endpoint", stack.mqtt, "--ca", stack.ca, "--retries", "30",
                             "--backoff-base", "300", "--backoff-cap", "800",
                             "--state-dir", st], stdout=log, stderr=subprocess.STDOUT)
    try:
        def registered():
            try:
                return stack.cert(cert_id)["status"] == "PENDING_ACTIVATION"
            except Exception:  # noqa: BLE001 -- not there yet
                return False
        ok = e.wait_for(registered, 30, 0.3)
        e.check(ok, "JITR: the broker registered the certificate PENDING_ACTIVATION")
        time.sleep(1.5)  # the device keeps being refused meanwhile
        e.check(proc.poll() is None, "JITR: the device keeps retrying while refused")
        # The operator's side: activate, give it a thing and a policy.
        stack.iot.create_thing(thingName="jitr-0001")
        arn = stack.cert(cert_id)["certificateArn"]
        stack.iot.attach_thing_principal(thingName="jitr-0001", principal=arn)
        stack.iot.attach_policy(policyName="DevicePolicy", target=arn)
        stack.iot.update_certificate(certificateId=cert_id, newStatus="ACTIVE")
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    out = open(log.name).read()
    e.check(rc == 0, "JITR: the device got in after activation", out)
    e.check(not any(m in out for m in e.SANITIZER_MARKS), "JITR: no sanitizer report", out)
    waits = re.findall(r"failed \((\w+)\).*retrying in (\d+) ms", out)
    e.check(len(waits) >= 2 and all(c in ("refused", "tls", "network") for c, _ in waits) and
            all(int(ms) <= 800 for _, ms in waits),
            "JITR: refusals retried within the backoff bound", waits)
    s = e.status(st)
    e.check(s["provisioned"] and s["certificateId"] == cert_id, "JITR: identity current", s)
    e.check("connection refused" in stack.log_text() and cert_id in stack.log_text(),
            "JITR: the broker logged the refusals")


def main():
    if not os.access(e.DEVICE, os.X_OK) or not os.access(e.IOTPROV, os.X_OK):
        print("iotprov / iotprov-device not built")
        return 1
    tmp = e.tmpdir("device-jitp")
    stack = e.Stack(tmp)
    try:
        for part in (jitp, jitr):
            e.section(part, stack, tmp)
    finally:
        stack.stop()
    if e.failures:
        print(stack.log_text()[-5000:])
    e.cleanup(tmp)
    return e.summary()


if __name__ == "__main__":
    sys.exit(main())
