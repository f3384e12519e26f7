#!/usr/bin/env python3
"""Provisioning over the API, end to end: a real iotprovd on 127.0.0.1 in a
temporary data dir, driven with both installed aws CLIs (Debian's awscli 2
and the pyenv awscli 1).

What an operator and an installer would check: a fleet provisioning template
is created, described, listed, versioned, updated and deleted; RegisterThing
with a CSR returns a certificate that chains to iotprov's CA and a thing that
exists with its attributes; an installer key gets a trusted-user claim
(certificate + key that match, valid about five minutes) for its template;
and the refusals: an installer asking for a template not on its list or
calling CreateThing, a bad template body (every problem listed), a template
that fails when applied, a duplicate, the default version deleted.
"""
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

SRC = os.environ.get("IOTP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("IOTP_BUILD_DIR", os.path.join(SRC, "build"))
IOTPROVD = os.path.join(BUILD, "iotprovd")
IOTPROV = os.path.join(BUILD, "iotprov")
REGION = "us-east-1"
CLIS = ("/usr/bin/aws", "/root/.pyenv/shims/aws")

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def openssl(*args, cwd):
    r = run(["openssl"] + list(args), cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr))
    return r.stdout


def make_data_dir(d):
    """`iotprov init` when it is built, else the same files with openssl."""
    if os.access(IOTPROV, os.X_OK):
        r = run([IOTPROV, "init", "--data-dir", d])
        if r.returncode == 0:
            return
        print("iotprov init failed (%s); using openssl" % r.stderr.strip())
        shutil.rmtree(d)
    os.makedirs(d)
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "root-ca.key", cwd=d)
    openssl("req", "-x509", "-new", "-key", "root-ca.key", "-subj", "/CN=e2e root", "-days", "2",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "root-ca.crt", cwd=d)
    with open(os.path.join(d, "ca.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, cn, signer, signer_key, ext in (
            ("issuing-ca", "e2e issuing", "root-ca.crt", "root-ca.key", "ca.ext"),
            ("server", "localhost", "issuing-ca.crt", "issuing-ca.key", "server.ext")):
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key", cwd=d)
        openssl("req", "-new", "-key", name + ".key", "-subj", "/CN=" + cn, "-out", name + ".csr",
                cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", signer, "-CAkey", signer_key,
                "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", name + ".crt", cwd=d)
    with open(os.path.join(d, "server.crt"), "a") as f, open(os.path.join(d, "issuing-ca.crt")) as g:
        f.write(g.read())
    shutil.copy(os.path.join(d, "root-ca.crt"), os.path.join(d, "ca-bundle.pem"))
    for k in ("root-ca.key", "issuing-ca.key", "server.key"):
        os.chmod(os.path.join(d, k), 0o600)
    open(os.path.join(d, "iotprov.conf"), "w").close()


def key_create(d, role, templates=None):
    cmd = [IOTPROVD, "--data-dir", d, "--create-key", role]
    if templates:
        cmd += ["--templates", templates]
    r = run(cmd)
    if r.returncode != 0:
        raise RuntimeError("--create-key: " + r.stderr)
    env = dict(l.split("=", 1) for l in r.stdout.split())
    return env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]


class Aws:
    """One aws CLI with one key against the daemon."""

    def __init__(self, exe, url, ca, key):
        self.exe, self.url = exe, url
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "HOME": os.environ.get("HOME", "/"),
                    "AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1],
                    "AWS_CA_BUNDLE": ca, "AWS_DEFAULT_REGION": REGION,
                    "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                    "AWS_PAGER": ""}
        for k in ("PYENV_ROOT", "PYENV_VERSION"):
            if k in os.environ:
                self.env[k] = os.environ[k]

    def __call__(self, *args):
        """(exit status, parsed JSON or None, stderr)."""
        r = run([self.exe, "iot"] + list(args) + ["--endpoint-url", self.url, "--output", "json"],
                env=self.env)
        try:
            out = json.loads(r.stdout) if r.stdout.strip() else {}
        except ValueError:
            out = None
        return r.returncode, out, r.stderr


def refused(res, error_type):
    rc, _, err = res
    return rc != 0 and ("(%s)" % error_type) in err


FLEET_BODY = {
    "Parameters": {"SerialNumber": {"Type": "String"},
                   "AWS::IoT::Certificate::Id": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing",
                  "Properties": {"ThingName": {"Fn::Join": ["", ["dev-", {"Ref": "SerialNumber"}]]},
                                 "AttributePayload": {"serial": {"Ref": "SerialNumber"}}}},
        "certificate": {"Type": "AWS::IoT::Certificate",
                        "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
                                       "Status": "ACTIVE"}}},
    "DeviceConfiguration": {"Fallback": "https://fallback.example"}}

REGISTER_BODY = {
    "Parameters": {"ThingName": {"Type": "String"}, "CSR": {"Type": "String"},
                   "Site": {"Type": "String", "Default": "lyon"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing",
                  "Properties": {"ThingName": {"Ref": "ThingName"},
                                 "AttributePayload": {"site": {"Ref": "Site"}}}},
        "certificate": {"Type": "AWS::IoT::Certificate",
                        "Properties": {"CertificateSigningRequest": {"Ref": "CSR"},
                                       "Status": "ACTIVE"}},
        "policy": {"Type": "AWS::IoT::Policy",
                   "Properties": {"PolicyDocument": json.dumps({
                       "Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": "iot:Connect",
                                      "Resource": "arn:aws:iot:*:*:client/${iot:ClientId}"}]})}}}}

BAD_BODY = {"Resources": {"x": {"Type": "AWS::IoT::Gadget"},
                          "thing": {"Type": "AWS::IoT::Thing",
                                    "Properties": {"ThingName": {"Ref": "Serial"}}}},
            "Outputs": {}}


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return "file://" + path


def exercise(cli, tag, admin, installer, tmp, d):
    """Everything once with one CLI; tag keeps names apart between CLIs."""
    name = "fleet-" + tag
    other = "other-" + tag
    body_uri = write(os.path.join(tmp, name + ".json"), json.dumps(FLEET_BODY))
    role = "arn:aws:iam::123456789012:role/Provisioning"

    rc, out, err = admin("create-provisioning-template", "--template-name", name,
                         "--template-body", body_uri, "--provisioning-role-arn", role,
                         "--enabled")
    check(rc == 0 and out.get("templateName") == name and out.get("defaultVersionId") == 1 and
          out.get("templateArn", "").endswith(":provisioningtemplate/" + name),
          "%s create-provisioning-template (%s)" % (cli, err.strip()[-200:]))
    rc, out, err = admin("create-provisioning-template", "--template-name", other,
                         "--template-body", body_uri, "--provisioning-role-arn", role)
    check(rc == 0, "%s create a second, disabled template" % cli)
    check(refused(admin("create-provisioning-template", "--template-name", name,
                        "--template-body", body_uri, "--provisioning-role-arn", role),
                  "ResourceAlreadyExistsException"), "%s duplicate template refused" % cli)

    rc, out, err = admin("describe-provisioning-template", "--template-name", name)
    check(rc == 0 and out.get("enabled") is True and out.get("type") == "FLEET_PROVISIONING" and
          json.loads(out.get("templateBody", "{}")) == FLEET_BODY and
          out.get("provisioningRoleArn") == role and "creationDate" in out,
          "%s describe-provisioning-template" % cli)
    rc, out, err = admin("list-provisioning-templates")
    names = [t.get("templateName") for t in (out or {}).get("templates", [])]
    check(rc == 0 and name in names and other in names, "%s list-provisioning-templates" % cli)

    # Every problem of a bad body in one answer.
    rc, _, err = admin("create-provisioning-template", "--template-name", "bad-" + tag,
                       "--template-body", write(os.path.join(tmp, "bad.json"), json.dumps(BAD_BODY)),
                       "--provisioning-role-arn", role)
    check(rc != 0 and "(InvalidRequestException)" in err and "Outputs" in err and
          "AWS::IoT::Gadget" in err and "Serial" in err,
          "%s bad template body lists every problem (%s)" % (cli, err.strip()[-300:]))

    # Versions.
    v2 = dict(FLEET_BODY, DeviceConfiguration={"Fallback": "https://v2.example"})
    rc, out, err = admin("create-provisioning-template-version", "--template-name", name,
                         "--template-body", write(os.path.join(tmp, "v2.json"), json.dumps(v2)),
                         "--set-as-default")
    check(rc == 0 and out.get("versionId") == 2 and out.get("isDefaultVersion") is True,
          "%s create-provisioning-template-version (%s)" % (cli, err.strip()[-200:]))
    rc, out, err = admin("list-provisioning-template-versions", "--template-name", name)
    vers = [(v.get("versionId"), v.get("isDefaultVersion")) for v in (out or {}).get("versions", [])]
    check(rc == 0 and vers == [(1, False), (2, True)], "%s list versions %s" % (cli, vers))
    rc, out, err = admin("describe-provisioning-template-version", "--template-name", name,
                         "--version-id", "1")
    check(rc == 0 and json.loads(out.get("templateBody", "{}")) == FLEET_BODY,
          "%s describe-provisioning-template-version" % cli)
    check(refused(admin("delete-provisioning-template-version", "--template-name", name,
                        "--version-id", "2"), "DeleteConflictException"),
          "%s the default version cannot be deleted" % cli)
    rc, _, err = admin("delete-provisioning-template-version", "--template-name", name,
                       "--version-id", "1")
    check(rc == 0, "%s delete-provisioning-template-version" % cli)
    rc, _, err = admin("update-provisioning-template", "--template-name", other,
                       "--description", "disabled on purpose", "--no-enabled")
    rc2, out, _ = admin("describe-provisioning-template", "--template-name", other)
    check(rc == 0 and rc2 == 0 and out.get("description") == "disabled on purpose" and
          out.get("enabled") is False, "%s update-provisioning-template (%s)" % (cli, err.strip()))

    # RegisterThing with a CSR.
    key = os.path.join(tmp, tag + ".key")
    csr = os.path.join(tmp, tag + ".csr")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key, cwd=tmp)
    openssl("req", "-new", "-key", key, "-subj", "/CN=meter-" + tag, "-out", csr, cwd=tmp)
    with open(csr) as f:
        params = {"ThingName": "meter-" + tag, "CSR": f.read()}
    rc, out, err = admin("register-thing",
                         "--template-body", write(os.path.join(tmp, "rt.json"),
                                                  json.dumps(REGISTER_BODY)),
                         "--parameters", write(os.path.join(tmp, "p.json"), json.dumps(params)))
    arns = (out or {}).get("resourceArns", {})
    check(rc == 0 and arns.get("thing", "").endswith(":thing/meter-" + tag) and
          ":cert/" in arns.get("certificate", "") and ":policy/" in arns.get("policy", ""),
          "%s register-thing -> %s (%s)" % (cli, sorted(arns), err.strip()[-200:]))
    pem = (out or {}).get("certificatePem", "")
    cert = os.path.join(tmp, tag + ".crt")
    with open(cert, "w") as f:
        f.write(pem)
    v = run(["openssl", "verify", "-purpose", "sslclient", "-CAfile",
             os.path.join(d, "root-ca.crt"), "-untrusted", os.path.join(d, "issuing-ca.crt"), cert])
    check(v.returncode == 0, "%s the certificate chains to iotprov's CA (%s)" % (cli, v.stdout.strip()))
    pub_cert = run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"]).stdout
    pub_key = run(["openssl", "pkey", "-in", key, "-pubout"]).stdout
    check(pub_cert != "" and pub_cert == pub_key, "%s the certificate is for the CSR's key" % cli)
    rc, out, err = admin("describe-thing", "--thing-name", "meter-" + tag)
    check(rc == 0 and out.get("attributes", {}).get("site") == "lyon",
          "%s the thing exists with its attributes (%s)" % (cli, err.strip()[-200:]))
    cert_id = arns.get("certificate", "").rsplit("/", 1)[-1]
    rc, out, err = admin("describe-certificate", "--certificate-id", cert_id)
    check(rc == 0 and out.get("certificateDescription", {}).get("status") == "ACTIVE",
          "%s the certificate is ACTIVE (%s)" % (cli, err.strip()[-200:]))
    # A template that cannot apply: nothing half-done.
    failing = dict(REGISTER_BODY)
    failing["Resources"] = dict(REGISTER_BODY["Resources"])
    failing["Resources"]["thing"] = {"Type": "AWS::IoT::Thing",
                                     "Properties": {"ThingName": {"Ref": "ThingName"},
                                                    "ThingGroups": ["no-such-group"]}}
    params["ThingName"] = "half-" + tag
    rc, _, err = admin("register-thing",
                       "--template-body", write(os.path.join(tmp, "f.json"), json.dumps(failing)),
                       "--parameters", write(os.path.join(tmp, "p2.json"), json.dumps(params)))
    check(rc != 0 and "(ResourceRegistrationFailureException)" in err and "no-such-group" in err,
          "%s a failing template is refused (%s)" % (cli, err.strip()[-200:]))
    check(refused(admin("describe-thing", "--thing-name", "half-" + tag),
                  "ResourceNotFoundException"), "%s ...and left no thing behind" % cli)

    # Trusted-user claim with the installer key (its list holds the fleet-* templates).
    rc, out, err = installer("create-provisioning-claim", "--template-name", name)
    ok = rc == 0 and len(out.get("certificateId", "")) == 64
    check(ok, "%s installer create-provisioning-claim (%s)" % (cli, err.strip()[-200:]))
    if ok:
        claim_crt = os.path.join(tmp, tag + "-claim.crt")
        claim_key = os.path.join(tmp, tag + "-claim.key")
        with open(claim_crt, "w") as f:
            f.write(out["certificatePem"])
        with open(claim_key, "w") as f:
            f.write(out["keyPair"]["PrivateKey"])
        pub_a = run(["openssl", "x509", "-in", claim_crt, "-noout", "-pubkey"]).stdout
        pub_b = run(["openssl", "pkey", "-in", claim_key, "-pubout"]).stdout
        check(pub_a != "" and pub_a == pub_b == out["keyPair"]["PublicKey"],
              "%s the claim's key pair matches its certificate" % cli)
        end = run(["openssl", "x509", "-in", claim_crt, "-noout", "-enddate"]).stdout.strip()
        not_after = datetime.datetime.strptime(end.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
        left = (not_after - datetime.datetime.utcnow()).total_seconds()
        check(240 <= left <= 310, "%s the claim is valid about 5 minutes (%d s)" % (cli, left))
        exp = out.get("expiration")
        check(exp is not None, "%s the answer carries the expiration (%s)" % (cli, exp))
    # Refusals for the installer.
    check(refused(installer("create-provisioning-claim", "--template-name", other),
                  "AccessDeniedException"), "%s installer: template not on its list" % cli)
    check(refused(installer("create-thing", "--thing-name", "sneaky-" + tag),
                  "AccessDeniedException"), "%s installer: CreateThing refused" % cli)
    check(refused(installer("list-provisioning-templates"), "AccessDeniedException"),
          "%s installer: ListProvisioningTemplates refused" % cli)
    # A claim for a template the key lists but that is disabled.
    check(refused(admin("create-provisioning-claim", "--template-name", other),
                  "InvalidRequestException"), "%s no claim for a disabled template" % cli)

    rc, _, err = admin("delete-provisioning-template", "--template-name", other)
    check(rc == 0, "%s delete-provisioning-template" % cli)
    check(refused(admin("describe-provisioning-template", "--template-name", other),
                  "ResourceNotFoundException"), "%s ...and it is gone" % cli)


def main():
    if not os.access(IOTPROVD, os.X_OK):
        print("iotprovd not built at %s" % IOTPROVD)
        return 1
    tmp = tempfile.mkdtemp(prefix="iotp-e2e-prov-")
    d = os.path.join(tmp, "data")
    proc = None
    try:
        make_data_dir(d)
        admin_key = key_create(d, "admin")
        installer_key = key_create(d, "installer", "fleet-v1,fleet-v2")
        log = open(os.path.join(tmp, "iotprovd.log"), "w+")
        proc = subprocess.Popen([IOTPROVD, "--data-dir", d, "--api-listen", "127.0.0.1:0"],
                                stdout=subprocess.PIPE, stderr=log, text=True)
        line = proc.stdout.readline().strip()
        m = re.match(r"iotprovd: listening on (https://127\.0\.0\.1:\d+)$", line)
        if not m:
            print("iotprovd did not start: %r" % line)
            return 1
        url = m.group(1)
        ca = os.path.join(d, "ca-bundle.pem")
        ran = 0
        for exe, tag in zip(CLIS, ("v2", "v1")):
            if not os.access(exe, os.X_OK):
                print("skip %s: not installed" % exe)
                continue
            ran += 1
            exercise(exe, tag, Aws(exe, url, ca, admin_key), Aws(exe, url, ca, installer_key),
                     tmp, d)
        check(ran > 0, "at least one aws CLI ran")
        proc.send_signal(signal.SIGTERM)
        check(proc.wait(timeout=30) == 0, "iotprovd stops cleanly")
        proc = None
        log.seek(0)
        text = log.read()
        check("PRIVATE KEY" not in text, "no private key in the daemon's log")
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        if failures:
            print("kept %s for inspection" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
