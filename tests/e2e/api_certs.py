#!/usr/bin/env python3
"""Certificates and CA certificates through the AWS IoT API: a real iotprovd
on 127.0.0.1 driven with boto3 and both aws CLIs, checked with openssl.

What an operator checks: a certificate issued from a CSR verifies against
the CA bundle of the data dir with `openssl verify`, its id is the SHA-256
of its DER, CreateKeysAndCertificate's private key matches its certificate,
a CA registers only with a verification certificate whose CN is the
registration code, device certificates register under it (or without any
CA), status changes follow the rules (revocation is final), deletion is
refused while attached, pagination returns every certificate once, and the
issued count shows in /metrics.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from api_e2e import (CLIS, IOTPROVD, Daemon, boto3_client, check, cli, error_of,  # noqa: E402
                     failures, healthy, issuing_chain, key_create, make_csr, make_data_dir,
                     openssl, openssl_verify, raw_request, section, summary)

POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect",' \
         '"Resource":"*"}]}'


def der_sha256(pem):
    der = subprocess.run(["openssl", "x509", "-outform", "DER"], input=pem.encode(),
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def pubkey_of_cert(pem):
    return subprocess.run(["openssl", "x509", "-noout", "-pubkey"], input=pem.encode(),
                          capture_output=True, check=True).stdout


def pubkey_of_key(pem):
    return subprocess.run(["openssl", "pkey", "-pubout"], input=pem.encode(),
                          capture_output=True, check=True).stdout


def make_ca(d, name, cn):
    """An external CA (P-256), as a vendor or a factory would bring."""
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key", cwd=d)
    openssl("req", "-x509", "-new", "-key", name + ".key", "-subj", "/CN=" + cn, "-days", "3",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", name + ".crt", cwd=d)
    with open(os.path.join(d, name + ".crt")) as f:
        return f.read()


def sign_with(d, ca, csr_name, cn, out):
    """A certificate for a new key with subject CN, signed by CA `ca`."""
    make_csr(d, csr_name, cn)
    openssl("x509", "-req", "-in", csr_name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-days", "2", "-out", out, cwd=d)
    with open(os.path.join(d, out)) as f:
        return f.read()


def self_signed(d, name, cn):
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key", cwd=d)
    openssl("req", "-x509", "-new", "-key", name + ".key", "-subj", "/CN=" + cn, "-days", "2",
            "-out", name + ".crt", cwd=d)
    with open(os.path.join(d, name + ".crt")) as f:
        return f.read()


def issued(ctx, op):
    """Certificates issued by the API, from iotprovd's metrics."""
    _, _, body = raw_request(ctx["port"], ctx["ca"], "GET", "/metrics")
    m = re.search(r"^iotprov_certificates_issued_total (\d+)", body.decode(), re.M)
    return int(m.group(1)) if m else -1


def issuance(ctx):
    iot, d, work = ctx["op"], ctx["data"], ctx["work"]
    before = issued(ctx, iot)
    csr = make_csr(work, "dev1", "dev1")
    r = iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=True)
    pem = r["certificatePem"]
    check(r["certificateId"] == der_sha256(pem) and
          r["certificateArn"].endswith(":cert/" + r["certificateId"]),
          "CreateCertificateFromCsr: id = SHA-256 of the DER, ARN cert/<id>")
    check(openssl_verify(work, ctx["ca"], pem, untrusted=issuing_chain(d), purpose="sslclient"),
          "the certificate verifies against ca-bundle.pem (openssl verify -purpose sslclient)")
    check(pubkey_of_cert(pem) == pubkey_of_key(open(os.path.join(work, "dev1.key")).read()),
          "the certificate carries the CSR's public key")
    desc = iot.describe_certificate(certificateId=r["certificateId"])["certificateDescription"]
    check(desc["status"] == "ACTIVE" and desc["certificatePem"].strip() == pem.strip() and
          desc["certificateMode"] == "DEFAULT" and "caCertificateId" not in desc and
          desc["validity"]["notAfter"] > desc["validity"]["notBefore"],
          "DescribeCertificate: ACTIVE, same PEM, validity")
    code, st, _ = error_of(lambda: iot.create_certificate_from_csr(
        certificateSigningRequest="-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                  "-----END CERTIFICATE REQUEST-----\n"))
    check(st == 400 and code in ("CertificateValidationException", "InvalidRequestException"),
          "a broken CSR -> 400 %s" % code)

    k = iot.create_keys_and_certificate()
    check(k["certificateId"] == der_sha256(k["certificatePem"]) and
          pubkey_of_cert(k["certificatePem"]) == pubkey_of_key(k["keyPair"]["PrivateKey"]) and
          pubkey_of_key(k["keyPair"]["PrivateKey"]).decode().strip() ==
          k["keyPair"]["PublicKey"].strip(),
          "CreateKeysAndCertificate: the private key matches the certificate")
    check(iot.describe_certificate(certificateId=k["certificateId"])
          ["certificateDescription"]["status"] == "INACTIVE",
          "CreateKeysAndCertificate without setAsActive is INACTIVE")
    check(openssl_verify(work, ctx["ca"], k["certificatePem"], untrusted=issuing_chain(d)),
          "CreateKeysAndCertificate's certificate verifies too")
    check(issued(ctx, iot) == before + 2,
          "iotprov_certificates_issued_total grew by 2 (%d -> %d)" % (before, issued(ctx, iot)))
    ctx["dev1"] = r
    ctx["keys"] = k


def status_and_deletion(ctx):
    iot = ctx["op"]
    cid = ctx["dev1"]["certificateId"]
    carn = ctx["dev1"]["certificateArn"]
    iot.create_thing(thingName="meter-1")
    iot.attach_thing_principal(thingName="meter-1", principal=carn)
    check(iot.list_thing_principals(thingName="meter-1")["principals"] == [carn],
          "AttachThingPrincipal + ListThingPrincipals")
    check(iot.list_principal_things(principal=carn)["things"] == ["meter-1"],
          "ListPrincipalThings")
    iot.create_policy(policyName="meter", policyDocument=POLICY)
    iot.attach_policy(policyName="meter", target=carn)
    check([p["policyName"] for p in iot.list_attached_policies(target=carn)["policies"]] ==
          ["meter"], "AttachPolicy to a certificate; ListAttachedPolicies with the cert ARN")
    code, st, _ = error_of(lambda: iot.delete_certificate(certificateId=cid))
    check(code == "CertificateStateException" and st == 406,
          "DeleteCertificate while ACTIVE -> 406 %s" % code)
    code, st, _ = error_of(lambda: iot.delete_thing(thingName="meter-1"))
    check(code == "InvalidRequestException" and st == 400,
          "DeleteThing with a principal attached -> 400 %s" % code)
    iot.update_certificate(certificateId=cid, newStatus="INACTIVE")
    code, st, _ = error_of(lambda: iot.delete_certificate(certificateId=cid, forceDelete=True))
    check(code == "DeleteConflictException" and st == 409,
          "DeleteCertificate attached to a thing, even forced -> 409 %s" % code)
    iot.detach_thing_principal(thingName="meter-1", principal=carn)
    check(iot.list_thing_principals(thingName="meter-1")["principals"] == [],
          "DetachThingPrincipal")
    code, st, _ = error_of(lambda: iot.delete_certificate(certificateId=cid))
    check(code == "DeleteConflictException" and st == 409,
          "DeleteCertificate with a policy attached -> 409 %s" % code)
    code, st, _ = error_of(lambda: iot.update_certificate(certificateId=cid,
                                                          newStatus="PENDING_TRANSFER"))
    check(code == "InvalidRequestException" and st == 400, "newStatus PENDING_TRANSFER -> 400")
    iot.update_certificate(certificateId=cid, newStatus="ACTIVE")
    iot.update_certificate(certificateId=cid, newStatus="REVOKED")
    check(iot.describe_certificate(certificateId=cid)["certificateDescription"]["status"] ==
          "REVOKED", "UpdateCertificate INACTIVE -> ACTIVE -> REVOKED")
    code, st, _ = error_of(lambda: iot.update_certificate(certificateId=cid, newStatus="ACTIVE"))
    check(code == "CertificateStateException" and st == 406,
          "a revoked certificate cannot come back -> 406 %s" % code)
    iot.delete_certificate(certificateId=cid, forceDelete=True)
    code, st, _ = error_of(lambda: iot.describe_certificate(certificateId=cid))
    check(code == "ResourceNotFoundException" and st == 404,
          "forceDelete detaches the policy and deletes")
    check(iot.list_targets_for_policy(policyName="meter")["targets"] == [],
          "the policy lost its target with the certificate")
    code, st, _ = error_of(lambda: iot.describe_certificate(certificateId="zz" * 32))
    check(code == "InvalidRequestException" and st == 400, "an id that is not hex -> 400 %s" % code)
    iot.delete_thing(thingName="meter-1")
    iot.delete_policy(policyName="meter")


def ca_registration(ctx):
    admin, op, work = ctx["admin"], ctx["op"], ctx["work"]
    code1 = admin.get_registration_code()["registrationCode"]
    code2 = admin.get_registration_code()["registrationCode"]
    check(re.fullmatch(r"[0-9a-f]{64}", code1) is not None and code1 == code2,
          "GetRegistrationCode: 64 hex, stable")
    code, st, _ = error_of(lambda: op.get_registration_code())
    check(code == "AccessDeniedException" and st == 403,
          "an operator key may not read the registration code -> 403 %s" % code)
    ca_pem = make_ca(work, "vendor", "Vendor CA")
    bad = sign_with(work, "vendor", "wrongcn", "not-the-code", "wrongcn.crt")
    code, st, _ = error_of(lambda: admin.register_ca_certificate(
        caCertificate=ca_pem, verificationCertificate=bad))
    check(code == "RegistrationCodeValidationException" and st == 400,
          "verification certificate with another CN -> 400 %s" % code)
    other_ca = make_ca(work, "other", "Other CA")
    stolen = sign_with(work, "other", "stolen", code1, "stolen.crt")
    code, st, _ = error_of(lambda: admin.register_ca_certificate(
        caCertificate=ca_pem, verificationCertificate=stolen))
    check(code == "RegistrationCodeValidationException" and st == 400,
          "verification certificate signed by another key -> 400 %s" % code)
    verif = sign_with(work, "vendor", "verif", code1, "verif.crt")
    code, st, _ = error_of(lambda: op.register_ca_certificate(
        caCertificate=ca_pem, verificationCertificate=verif, setAsActive=True))
    check(code == "AccessDeniedException" and st == 403,
          "an operator key may not register a CA -> 403 %s" % code)
    r = admin.register_ca_certificate(caCertificate=ca_pem, verificationCertificate=verif,
                                      setAsActive=True, allowAutoRegistration=True)
    ca_id = r["certificateId"]
    check(ca_id == der_sha256(ca_pem) and r["certificateArn"].endswith(":cacert/" + ca_id),
          "RegisterCACertificate: id and ARN")
    try:
        admin.register_ca_certificate(caCertificate=ca_pem, verificationCertificate=verif)
        dup = None
    except admin.exceptions.ResourceAlreadyExistsException as e:
        dup = e.response
    check(dup is not None and dup.get("resourceId") == ca_id,
          "registering it again -> ResourceAlreadyExists with resourceId")
    d = op.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]
    check(d["status"] == "ACTIVE" and d["autoRegistrationStatus"] == "ENABLE" and
          d["certificatePem"].strip() == ca_pem.strip() and d["certificateMode"] == "DEFAULT",
          "DescribeCACertificate (operator may read it)")
    check(ca_id in [c["certificateId"] for c in op.list_ca_certificates()["certificates"]],
          "ListCACertificates lists it")

    # device certificates under the CA
    dev = sign_with(work, "vendor", "vdev1", "vendor-dev-1", "vdev1.crt")
    r1 = op.register_certificate(certificatePem=dev, caCertificatePem=ca_pem, setAsActive=True)
    dd = op.describe_certificate(certificateId=r1["certificateId"])["certificateDescription"]
    check(r1["certificateId"] == der_sha256(dev) and dd["caCertificateId"] == ca_id and
          dd["status"] == "ACTIVE", "RegisterCertificate under the CA: ACTIVE, caCertificateId")
    dev2 = sign_with(work, "vendor", "vdev2", "vendor-dev-2", "vdev2.crt")
    r2 = op.register_certificate(certificatePem=dev2, status="INACTIVE")
    check(op.describe_certificate(certificateId=r2["certificateId"])["certificateDescription"]
          ["caCertificateId"] == ca_id, "RegisterCertificate finds the CA by itself")
    check(sorted(c["certificateId"] for c in op.list_certificates_by_ca(
        caCertificateId=ca_id)["certificates"]) == sorted([r1["certificateId"],
                                                           r2["certificateId"]]),
          "ListCertificatesByCA")
    code, st, _ = error_of(lambda: op.register_certificate(certificatePem=dev))
    check(code == "ResourceAlreadyExistsException" and st == 409, "registered twice -> 409")
    stray = sign_with(work, "other", "stray", "stray", "stray.crt")
    code, st, _ = error_of(lambda: op.register_certificate(certificatePem=stray))
    check(code == "CertificateValidationException" and st == 400,
          "a certificate of an unregistered CA -> 400 %s" % code)
    nca = op.register_certificate_without_ca(certificatePem=self_signed(work, "lone", "lone"),
                                             status="ACTIVE")
    nd = op.describe_certificate(certificateId=nca["certificateId"])["certificateDescription"]
    check(nd["certificateMode"] == "SNI_ONLY" and nd["status"] == "ACTIVE" and
          "caCertificateId" not in nd, "RegisterCertificateWithoutCA: SNI_ONLY, ACTIVE")

    # the CA's life: inactive, device certs block deletion
    admin.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE",
                                newAutoRegistrationStatus="DISABLE")
    d = op.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]
    check(d["status"] == "INACTIVE" and d["autoRegistrationStatus"] == "DISABLE",
          "UpdateCACertificate")
    dev3 = sign_with(work, "vendor", "vdev3", "vendor-dev-3", "vdev3.crt")
    code, st, _ = error_of(lambda: op.register_certificate(certificatePem=dev3, setAsActive=True))
    check(code == "CertificateStateException" and st == 406,
          "ACTIVE under an INACTIVE CA -> 406 %s" % code)
    code, st, _ = error_of(lambda: op.update_certificate(certificateId=r2["certificateId"],
                                                         newStatus="ACTIVE"))
    check(code == "CertificateStateException" and st == 406,
          "activating a certificate of an INACTIVE CA -> 406 %s" % code)
    code, st, _ = error_of(lambda: admin.delete_ca_certificate(certificateId=ca_id))
    check(code == "DeleteConflictException" and st == 409,
          "DeleteCACertificate with device certificates -> 409 %s" % code)
    op.update_certificate(certificateId=r1["certificateId"], newStatus="INACTIVE")
    for c in (r1, r2):
        op.delete_certificate(certificateId=c["certificateId"])
    admin.delete_ca_certificate(certificateId=ca_id)
    code, st, _ = error_of(lambda: op.describe_ca_certificate(certificateId=ca_id))
    check(code == "ResourceNotFoundException" and st == 404, "DeleteCACertificate")
    del other_ca


def cert_pagination(ctx):
    op = ctx["op"]
    for _ in range(8):
        op.create_keys_and_certificate(setAsActive=False)
    every = [c["certificateId"] for c in op.list_certificates(pageSize=250)["certificates"]]
    got, marker, pages = [], None, 0
    while True:
        kw = {"pageSize": 3}
        if marker:
            kw["marker"] = marker
        r = op.list_certificates(**kw)
        got += [c["certificateId"] for c in r["certificates"]]
        pages += 1
        marker = r.get("nextMarker")
        if not marker or pages > 50:
            break
    check(len(every) >= 9 and sorted(got) == sorted(every) and len(set(got)) == len(got),
          "ListCertificates pageSize=3: %d certificates in %d pages, each once" %
          (len(got), pages))
    asc = [c["certificateId"] for c in op.list_certificates(pageSize=250,
                                                            ascendingOrder=True)["certificates"]]
    check(asc == list(reversed(every)), "ListCertificates ascendingOrder reverses the order")


def cli_certs(aws, ctx, tag):
    url, ca, work = ctx["url"], ctx["ca"], ctx["work"]
    admin, op = ctx["admin_key"], ctx["op_key"]

    def ok(what, r, pred=lambda o: True):
        rc, out, errtext = r
        check(rc == 0 and out is not None and pred(out),
              "%s: %s (%s)" % (aws, what, errtext.strip()[-200:]))
        return out or {}

    csr = make_csr(work, "cli%s" % tag, "cli-dev-%s" % tag)
    csr_path = os.path.join(work, "cli%s.csr" % tag)
    out = ok("create-certificate-from-csr --set-as-active",
             cli(aws, url, ca, op, "create-certificate-from-csr", "--set-as-active",
                 "--certificate-signing-request", "file://" + csr_path),
             lambda o: o.get("certificateId") == der_sha256(o.get("certificatePem", "")))
    cid = out.get("certificateId", "0" * 64)
    check(openssl_verify(work, ca, out.get("certificatePem", ""),
                         untrusted=issuing_chain(ctx["data"])),
          "%s: the issued certificate verifies with openssl" % aws)
    ok("describe-certificate", cli(aws, url, ca, op, "describe-certificate", "--certificate-id",
                                   cid),
       lambda o: o["certificateDescription"]["status"] == "ACTIVE")
    rc, _, errtext = cli(aws, url, ca, op, "delete-certificate", "--certificate-id", cid)
    check(rc != 0 and "CertificateStateException" in errtext,
          "%s: delete-certificate while ACTIVE -> CertificateStateException" % aws)
    ok("update-certificate --new-status INACTIVE",
       cli(aws, url, ca, op, "update-certificate", "--certificate-id", cid, "--new-status",
           "INACTIVE"))
    ok("delete-certificate", cli(aws, url, ca, op, "delete-certificate", "--certificate-id", cid))
    ok("create-keys-and-certificate", cli(aws, url, ca, op, "create-keys-and-certificate"),
       lambda o: "PRIVATE KEY" in o.get("keyPair", {}).get("PrivateKey", ""))
    code = ok("get-registration-code", cli(aws, url, ca, admin, "get-registration-code"),
              lambda o: re.fullmatch(r"[0-9a-f]{64}", o.get("registrationCode", "")))
    code = code.get("registrationCode", "x")
    ca_pem = make_ca(work, "cli-ca%s" % tag, "CLI CA %s" % tag)
    sign_with(work, "cli-ca%s" % tag, "cli-verif%s" % tag, code, "cli-verif%s.crt" % tag)
    out = ok("register-ca-certificate with a verification certificate",
             cli(aws, url, ca, admin, "register-ca-certificate", "--ca-certificate",
                 "file://" + os.path.join(work, "cli-ca%s.crt" % tag),
                 "--verification-certificate",
                 "file://" + os.path.join(work, "cli-verif%s.crt" % tag), "--set-as-active"),
             lambda o: o.get("certificateId") == der_sha256(ca_pem))
    ca_id = out.get("certificateId", "0" * 64)
    ok("describe-ca-certificate", cli(aws, url, ca, op, "describe-ca-certificate",
                                      "--certificate-id", ca_id),
       lambda o: o["certificateDescription"]["status"] == "ACTIVE")
    sign_with(work, "cli-ca%s" % tag, "cli-vdev%s" % tag, "cli-vdev", "cli-vdev%s.crt" % tag)
    out = ok("register-certificate under the CA",
             cli(aws, url, ca, op, "register-certificate", "--certificate-pem",
                 "file://" + os.path.join(work, "cli-vdev%s.crt" % tag), "--ca-certificate-pem",
                 "file://" + os.path.join(work, "cli-ca%s.crt" % tag), "--set-as-active"))
    ok("list-certificates-by-ca", cli(aws, url, ca, op, "list-certificates-by-ca",
                                      "--ca-certificate-id", ca_id),
       lambda o: [c["certificateId"] for c in o.get("certificates", [])] ==
       [out.get("certificateId")])
    self_signed(work, "cli-lone%s" % tag, "cli-lone")
    ok("register-certificate-without-ca",
       cli(aws, url, ca, op, "register-certificate-without-ca", "--certificate-pem",
           "file://" + os.path.join(work, "cli-lone%s.crt" % tag), "--status", "ACTIVE"),
       lambda o: len(o.get("certificateId", "")) == 64)


def main():
    if not os.access(IOTPROVD, os.X_OK):
        print("iotprovd not built at %s" % IOTPROVD)
        return 1
    tmp = tempfile.mkdtemp(prefix="iotp-e2e-api-certs-")
    data = os.path.join(tmp, "data")
    work = os.path.join(tmp, "work")
    os.makedirs(work)
    daemon = None
    try:
        print("data dir made with " + make_data_dir(data))
        ca = os.path.join(data, "ca-bundle.pem")
        admin_key = key_create(data, "admin")
        op_key = key_create(data, "operator")
        daemon = Daemon(data)
        ctx = {"url": daemon.url, "port": daemon.port, "ca": ca, "data": data, "work": work,
               "admin_key": admin_key, "op_key": op_key,
               "admin": boto3_client(daemon.url, ca, admin_key),
               "op": boto3_client(daemon.url, ca, op_key)}
        section(issuance, ctx)
        if "dev1" in ctx:
            section(status_and_deletion, ctx)
        section(ca_registration, ctx)
        section(cert_pagination, ctx)
        for i, aws in enumerate(CLIS):
            section(cli_certs, aws, ctx, str(i))
        check(healthy(daemon.port, ca), "healthz at the end")
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
