"""Shared helpers of the tests/e2e/api_*.py tests: a data dir, a real iotprovd
on a free 127.0.0.1 port, access keys, boto3 clients, both aws CLIs, signed
raw requests and openssl.

Not a test itself: it lives under lib/ so that the e2e glob does not pick it
up. Each test does `sys.path.insert(0, <dir>/lib)` and imports it.
"""
import datetime
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import time

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

SRC = os.environ.get("IOTP_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BUILD = os.environ.get("IOTP_BUILD_DIR", os.path.join(SRC, "build"))
IOTPROVD = os.path.join(BUILD, "iotprovd")
IOTPROV = os.path.join(BUILD, "iotprov")
REGION = "us-east-1"
CLIS = [p for p in ("/usr/bin/aws", "/root/.pyenv/shims/aws") if os.access(p, os.X_OK)]

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def summary():
    """Prints the failure count; returns the exit code."""
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


def section(fn, *args):
    """Runs one part of a test; an exception is a failure of that part (with
    its traceback), and the other parts still run."""
    import traceback
    print("-- " + fn.__name__, flush=True)
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 -- any surprise is a test failure
        traceback.print_exc()
        check(False, "%s raised %s: %s" % (fn.__name__, type(e).__name__, e))


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def openssl(*args, cwd, stdin=None):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True,
                       input=stdin, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr))
    return r.stdout


def make_data_dir(d):
    """`iotprov init` when it works, else the same files made with openssl."""
    if os.access(IOTPROV, os.X_OK):
        r = run([IOTPROV, "init", "--data-dir", d])
        if r.returncode == 0 and os.path.exists(os.path.join(d, "iotprov.conf")):
            return "iotprov init"
        print("iotprov init failed (%s); using openssl" % r.stderr.strip()[-300:])
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "root-ca.key", cwd=d)
    openssl("req", "-x509", "-new", "-key", "root-ca.key", "-subj", "/CN=e2e root", "-days", "2",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "root-ca.crt", cwd=d)
    with open(os.path.join(d, "ca.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:TRUE,pathlen:0\n"
                "keyUsage=critical,keyCertSign,cRLSign\n")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n")
    for name, cn, signer, signer_key, ext in (
            ("issuing-ca", "e2e issuing", "root-ca.crt", "root-ca.key", "ca.ext"),
            ("server", "localhost", "issuing-ca.crt", "issuing-ca.key", "server.ext")):
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key",
                cwd=d)
        openssl("req", "-new", "-key", name + ".key", "-subj", "/CN=" + cn, "-out",
                name + ".csr", cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", signer, "-CAkey", signer_key,
                "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", name + ".crt", cwd=d)
    with open(os.path.join(d, "server.crt"), "a") as f, \
            open(os.path.join(d, "issuing-ca.crt")) as g:
        f.write(g.read())
    shutil.copy(os.path.join(d, "root-ca.crt"), os.path.join(d, "ca-bundle.pem"))
    for k in ("root-ca.key", "issuing-ca.key", "server.key"):
        os.chmod(os.path.join(d, k), 0o600)
    open(os.path.join(d, "iotprov.conf"), "w").close()
    return "openssl"


def issuing_chain(d):
    """The certificates between a device certificate and ca-bundle.pem."""
    path = os.path.join(d, "issuing-ca.crt")
    return path if os.path.exists(path) else None


class Daemon:
    """iotprovd --api-listen 127.0.0.1:0 with its log in the data dir."""

    def __init__(self, data_dir, listen="127.0.0.1:0"):
        self.log = open(os.path.join(data_dir, "iotprovd.log"), "a+")
        self.proc = subprocess.Popen([IOTPROVD, "--data-dir", data_dir, "--api-listen", listen],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"iotprovd: listening on (https://127\.0\.0\.1:(\d+))$", line.strip())
        if not m:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("no listening line, got %r; log:\n%s" % (line, self.read_log()))
        self.url, self.port = m.group(1), int(m.group(2))

    def read_log(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM, then the exit status (kill after 15 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


def key_create(data_dir, role, templates=None):
    cmd = [IOTPROVD, "--data-dir", data_dir, "--create-key", role]
    if templates:
        cmd += ["--templates", templates]
    r = run(cmd)
    if r.returncode != 0:
        raise RuntimeError("--create-key: " + r.stderr)
    env = dict(l.split("=", 1) for l in r.stdout.split())
    return env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]


def key_disable(data_dir, key_id):
    return run([IOTPROVD, "--data-dir", data_dir, "--disable-key", key_id]).returncode == 0


def boto3_client(url, ca, key, region=REGION):
    s = boto3.session.Session(aws_access_key_id=key[0], aws_secret_access_key=key[1],
                              region_name=region)
    return s.client("iot", endpoint_url=url, verify=ca,
                    config=Config(retries={"max_attempts": 1}))


def error_of(fn):
    """(code, status, message) of a ClientError, (None, 200, "") on success."""
    try:
        fn()
    except ClientError as e:
        return (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"],
                e.response["Error"].get("Message", ""))
    return None, 200, ""


def cli(aws, url, ca, key, *args):
    """Runs `aws iot ARGS` with only these credentials; (rc, parsed JSON or None, stderr)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/"),
           "AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1],
           "AWS_CA_BUNDLE": ca, "AWS_DEFAULT_REGION": REGION,
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
           "AWS_PAGER": "", "AWS_MAX_ATTEMPTS": "1"}
    for k in ("PYENV_ROOT", "PYENV_VERSION"):
        if k in os.environ:
            env[k] = os.environ[k]
    r = run([aws, "iot"] + list(args) + ["--endpoint-url", url, "--output", "json"], env=env)
    out = None
    if r.stdout.strip():
        try:
            out = json.loads(r.stdout)
        except ValueError:
            out = None
    elif r.returncode == 0:
        out = {}
    return r.returncode, out, r.stderr


def tls_context(ca):
    return ssl.create_default_context(cafile=ca)


def raw_request(port, ca, method, path, body=b"", headers=None, timeout=20):
    """One HTTPS request: (status, lower-case headers dict, body bytes)."""
    c = http.client.HTTPSConnection("127.0.0.1", port, context=tls_context(ca), timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def sign(port, key, method, path, body=b"", service="iot", when=None, headers=None,
         region=REGION):
    """The headers botocore's SigV4Auth produces for this request at `when`."""
    url = "https://127.0.0.1:%d%s" % (port, path)
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    auth = SigV4Auth(Credentials(key[0], key[1]), service, region)
    when = when or datetime.datetime.now(datetime.timezone.utc)
    req.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    auth._modify_request_before_signing(req)
    sig = auth.signature(auth.string_to_sign(req, auth.canonical_request(req)), req)
    auth._inject_signature_to_request(req, sig)
    p = req.prepare()
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in p.headers.items()}


def signed_request(port, ca, key, method, path, body=b"", **kw):
    return raw_request(port, ca, method, path, body, sign(port, key, method, path, body, **kw))


def aws_error(status, hdrs, body, code, expect_status):
    """True when the answer is the AWS error shape with that type and status."""
    try:
        msg = json.loads(body).get("message", "")
    except ValueError:
        msg = ""
    return status == expect_status and hdrs.get("x-amzn-errortype") == code + ":" and msg != ""


def healthy(port, ca):
    try:
        status, _, body = raw_request(port, ca, "GET", "/healthz", timeout=5)
        return status == 200 and json.loads(body) == {"status": "ok"}
    except (OSError, ssl.SSLError, http.client.HTTPException, ValueError):
        return False


def wait_for(pred, seconds=5.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def make_csr(d, name, cn):
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key", cwd=d)
    openssl("req", "-new", "-key", name + ".key", "-subj", "/CN=" + cn, "-out", name + ".csr",
            cwd=d)
    with open(os.path.join(d, name + ".csr")) as f:
        return f.read()


def openssl_verify(d, ca_file, cert_pem, untrusted=None, purpose=None):
    """`openssl verify` of cert_pem against ca_file: True when it says OK."""
    path = os.path.join(d, "verify-%d.pem" % (abs(hash(cert_pem)) % 10 ** 9))
    with open(path, "w") as f:
        f.write(cert_pem)
    cmd = ["openssl", "verify", "-CAfile", ca_file]
    if untrusted:
        cmd += ["-untrusted", untrusted]
    if purpose:
        cmd += ["-purpose", purpose]
    r = run(cmd + [path])
    return r.returncode == 0 and r.stdout.strip().endswith(": OK")
