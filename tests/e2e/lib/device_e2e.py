"""Shared helpers of the tests/e2e/device_*.py tests: a real iotprov stack
(`iotprov init` + `iotprov up`: iotprovd and mosquitto with the plugin) on
free 127.0.0.1 ports, a fleet provisioning template whose devices may connect
as their thing and publish under things/<thing>/, a factory claim certificate
(CreateKeysAndCertificate + a policy limited to the provisioning topics), a
SoftHSM2 token in a temporary directory, and `iotprov-device` runs.

Not a test itself: it lives under lib/ so that the e2e glob does not pick it
up. Each test does `sys.path.insert(0, <dir>/lib)` and imports it.
"""
import configparser
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import traceback

SRC = os.environ.get("IOTP_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BUILD = os.environ.get("IOTP_BUILD_DIR", os.path.join(SRC, "build"))
IOTPROV = os.path.join(BUILD, "iotprov")
DEVICE = os.path.join(BUILD, "iotprov-device")
REGION = "us-east-1"
TEMPLATE = "DeviceFleet"
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "4321"
CRASH_EXIT = 86

failures = []


def check(cond, what, detail=""):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
        if detail:
            print("     " + str(detail).replace("\n", "\n     ")[:4000], flush=True)
    return cond


def section(fn, *args):
    """Runs one part of a test; an exception fails that part only."""
    print("-- " + fn.__name__, flush=True)
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 -- any surprise is a test failure
        traceback.print_exc()
        check(False, "%s raised %s: %s" % (fn.__name__, type(e).__name__, e))


def summary():
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(cmd, timeout=300, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def wait_for(pred, seconds=10.0, step=0.1):
    end = time.time() + seconds
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def tmpdir(name):
    return tempfile.mkdtemp(prefix="iotprov-device-e2e-%s-" % name)


def cleanup(tmp):
    if not failures and os.environ.get("IOTP_KEEP_TMP") is None:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("kept " + tmp)


def device_policy(name_var="${iot:Connection.Thing.ThingName}"):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect",
         "Resource": "arn:aws:iot:*:*:client/" + name_var},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
         "Resource": "arn:aws:iot:*:*:topic/things/" + name_var + "/*"}]})


def claim_policy(template):
    topics = ["$aws/certificates/create/*", "$aws/certificates/create-from-csr/*",
              "$aws/provisioning-templates/%s/provision/*" % template]
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/*"},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
         "Resource": ["arn:aws:iot:*:*:topic/" + t for t in topics]},
        {"Effect": "Allow", "Action": "iot:Subscribe",
         "Resource": ["arn:aws:iot:*:*:topicfilter/" + t for t in topics]}]})


FLEET_TEMPLATE = {
    "Parameters": {"SerialNumber": {"Type": "String"},
                   "AWS::IoT::Certificate::Id": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {
            "ThingName": {"Fn::Join": ["", ["dev-", {"Ref": "SerialNumber"}]]},
            "AttributePayload": {"serial": {"Ref": "SerialNumber"}}},
            "OverrideSettings": {"AttributePayload": "MERGE"}},
        "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
            "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}},
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "DevicePolicy"}},
    },
    "DeviceConfiguration": {"greeting": "hello"},
}


class Stack:
    """iotprov init + iotprov up on free ports, with the DeviceFleet template,
    the DevicePolicy and a factory claim (claim.crt / claim.key in tmp)."""

    def __init__(self, tmp, conf_edits=None):
        self.tmp = tmp
        self.dir = os.path.join(tmp, "iotprov-data")
        self.api_port = free_port()
        self.mqtt_port = free_port()
        self.url = "https://127.0.0.1:%d" % self.api_port
        self.mqtt = "127.0.0.1:%d" % self.mqtt_port
        self.est = "127.0.0.1:%d" % self.api_port
        self.ca = os.path.join(self.dir, "ca-bundle.pem")
        self.proc = None
        self.log = None
        r = run([IOTPROV, "init", "--data-dir", self.dir])
        if r.returncode != 0:
            raise RuntimeError("iotprov init: " + r.stderr)
        if conf_edits:
            conf = os.path.join(self.dir, "iotprov.conf")
            with open(conf) as f:
                text = f.read()
            for old, new in conf_edits:
                text = text.replace(old, new)
            with open(conf, "w") as f:
                f.write(text)
        self.start()
        self.iot = self.boto()
        self.iot.create_policy(policyName="DevicePolicy", policyDocument=device_policy())
        self.iot.create_policy(policyName="ClaimPolicy", policyDocument=claim_policy(TEMPLATE))
        self.iot.create_provisioning_template(
            templateName=TEMPLATE, templateBody=json.dumps(FLEET_TEMPLATE), enabled=True,
            provisioningRoleArn="arn:aws:iam::123456789012:role/provisioning",
            type="FLEET_PROVISIONING")
        self.claim_cert, self.claim_key, self.claim_id = self.make_claim("claim")

    def start(self):
        self.log = open(os.path.join(self.tmp, "up.log"), "a")
        env = dict(os.environ)
        if sanitized_build():
            # The instrumented plugin inside the uninstrumented mosquitto
            # needs the sanitizer runtime preloaded there (`iotprov up`
            # passes IOTP_BROKER_PRELOAD on to the broker only).
            rt = run(["clang", "-print-file-name=libclang_rt.asan-x86_64.so"]).stdout.strip()
            env["IOTP_BROKER_PRELOAD"] = rt
        self.proc = subprocess.Popen(
            [IOTPROV, "up", "--data-dir", self.dir, "--api-listen", "127.0.0.1:%d" % self.api_port,
             "--mqtt-listen", self.mqtt], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self._mark = len(self.log_text())
        if not wait_for(self._ready, 60, 0.2):
            raise RuntimeError("iotprov up did not become ready: " + self.log_text())

    def log_text(self):
        with open(os.path.join(self.tmp, "up.log"), errors="replace") as f:
            return f.read()

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("iotprov up exited: " + self.log_text())
        return "Stop with Ctrl-C" in self.log_text()[self._mark:]

    def boto(self):
        import boto3
        from botocore.config import Config
        cp = configparser.ConfigParser()
        cp.read(os.path.join(self.dir, "admin-credentials"))
        self.key_id = cp["iotprov"]["aws_access_key_id"]
        self.secret = cp["iotprov"]["aws_secret_access_key"]
        return boto3.client("iot", region_name=REGION, endpoint_url=self.url, verify=self.ca,
                            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
                            config=Config(retries={"max_attempts": 1}))

    def make_claim(self, name, policy="ClaimPolicy"):
        """A claim certificate + key (CreateKeysAndCertificate) with policy."""
        r = self.iot.create_keys_and_certificate(setAsActive=True)
        self.iot.attach_policy(policyName=policy, target=r["certificateArn"])
        cert = os.path.join(self.tmp, name + ".crt")
        key = os.path.join(self.tmp, name + ".key")
        with open(cert, "w") as f:
            f.write(r["certificatePem"])
        with open(key, "w") as f:
            f.write(r["keyPair"]["PrivateKey"])
        os.chmod(key, 0o600)
        return cert, key, r["certificateId"]

    def thing(self, name):
        try:
            return self.iot.describe_thing(thingName=name)
        except Exception:  # noqa: BLE001 -- absent is the answer
            return None

    def cert(self, cert_id):
        return self.iot.describe_certificate(certificateId=cert_id)["certificateDescription"]

    def principals(self, thing):
        return self.iot.list_thing_principals(thingName=thing)["principals"]

    def all_certificates(self):
        out, marker = [], None
        while True:
            kw = {"pageSize": 250}
            if marker:
                kw["marker"] = marker
            r = self.iot.list_certificates(**kw)
            out += r["certificates"]
            marker = r.get("nextMarker")
            if not marker:
                return out

    def all_things(self):
        out, token = [], None
        while True:
            kw = {"maxResults": 250}
            if token:
                kw["nextToken"] = token
            r = self.iot.list_things(**kw)
            out += r["things"]
            token = r.get("nextToken")
            if not token:
                return out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()


class Token:
    """A SoftHSM2 token in tmp: SOFTHSM2_CONF points at its own config."""

    def __init__(self, tmp, label="device"):
        self.dir = os.path.join(tmp, "softhsm")
        os.makedirs(os.path.join(self.dir, "tokens"), exist_ok=True)
        self.conf = os.path.join(self.dir, "softhsm2.conf")
        with open(self.conf, "w") as f:
            f.write("directories.tokendir = %s\nobjectstore.backend = file\n"
                    "log.level = ERROR\n" % os.path.join(self.dir, "tokens"))
        self.label = label
        r = run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN,
                 "--so-pin", "87654321"], env=self.env())
        if r.returncode != 0:
            raise RuntimeError("softhsm2-util: " + r.stderr + r.stdout)

    def env(self, base=None):
        e = dict(base or os.environ)
        e["SOFTHSM2_CONF"] = self.conf
        e["IOTP_PKCS11_PIN"] = PIN
        return e

    def uri(self, obj):
        return "pkcs11:token=%s;object=%s" % (self.label, obj)

    def objects(self):
        """pkcs11-tool's listing of the token's objects, logged in."""
        r = run(["pkcs11-tool", "--module", SOFTHSM, "--token-label", self.label, "--login",
                 "--pin", PIN, "--list-objects"], env=self.env())
        return r.stdout + r.stderr


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitized_build():
    import re
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return re.search(r"^IOTP_SANITIZE:BOOL=(ON|1|TRUE)$", f.read(), re.M) is not None
    except OSError:
        return False


def device(state, *args, env=None, timeout=300):
    """Runs iotprov-device <args> --state-dir state; returns the result. A
    sanitizer report in its output is a failure of its own."""
    cmd = [DEVICE] + list(args)
    if state is not None:
        cmd += ["--state-dir", state]
    r = run(cmd, env=env, timeout=timeout)
    bad = [m for m in SANITIZER_MARKS if m in r.stderr]
    if bad:
        check(False, "sanitizer report from iotprov-device %s" % " ".join(args[:1]), r.stderr)
    return r


def status(state, env=None):
    r = device(state, "status", "--json", env=env)
    if r.returncode != 0:
        raise RuntimeError("status: %s %s" % (r.stdout, r.stderr))
    return json.loads(r.stdout)


def fleet_args(stack, serial, *extra):
    return ["--endpoint", stack.mqtt, "--ca", stack.ca, "--template", TEMPLATE,
            "--param", "SerialNumber=" + serial, "--timeout", "15"] + list(extra)
