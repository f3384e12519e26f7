"""Shared helpers of the tests/e2e/commission_*.py tests: a real iotprov
stack (`iotprov init` + `iotprov up`: iotprovd and mosquitto with the plugin)
with a fleet template and an installer key, a commissioning device
(`iotprov-device commission`) whose network apply is a script checking the
passphrase against the expected one (the real system is never touched), the
installer CLI (`iotprov commission`), and men in the middle for each
transport (an HTTP proxy, a pty relay, a second directory standing for the
installer's side of a USB stick) that record, replay or alter messages.

Not a test itself: it lives under lib/ so that the e2e glob does not pick it
up. Each test does `sys.path.insert(0, <dir>/lib)` and imports it.
"""
import base64
import configparser
import http.client
import http.server
import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import tty

SRC = os.environ.get("IOTP_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BUILD = os.environ.get("IOTP_BUILD_DIR", os.path.join(SRC, "build"))
IOTPROV = os.path.join(BUILD, "iotprov")
DEVICE = os.path.join(BUILD, "iotprov-device")
PAGE = os.path.join(BUILD, "web", "commission", "index.html")
NODE_WORK = os.path.join(BUILD, "web", "node-work")
REGION = "us-east-1"
TEMPLATE = "Plant"
CODE = "31415926"
SSID = "Greenhouse"
GOOD_PSK = "correct horse battery"
CLAIM_TTL = 30

failures = []


def check(cond, what, detail=""):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
        if detail:
            print("     " + str(detail).replace("\n", "\n     ")[:3000], flush=True)
    return cond


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


def summary():
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_clean(who, text):
    """In a sanitizer build a report is a failure of its own."""
    bad = [m for m in SANITIZER_MARKS if m in text]
    if bad:
        check(False, "%s: sanitizer report (%s)" % (who, bad[0]), text[-4000:])
    return not bad


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(cmd, timeout=180, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def wait_for(pred, seconds=10.0, step=0.1):
    end = time.time() + seconds
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


# ---- the service ------------------------------------------------------------

TEMPLATE_BODY = {
    "Parameters": {"SerialNumber": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {
            "ThingName": {"Fn::Join": ["", ["plant-", {"Ref": "SerialNumber"}]]},
            "AttributePayload": {"commissioned": "yes"}}},
        "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
            "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}},
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["iot:Connect", "iot:Publish"],
                           "Resource": ["*"]}]})}},
    },
}


def sanitized_build():
    import re
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return re.search(r"^IOTP_SANITIZE:BOOL=(ON|1|TRUE)$", f.read(), re.M) is not None
    except OSError:
        return False


class Stack:
    """iotprov init + iotprov up on free ports, claim_ttl = CLAIM_TTL, the
    Plant template, and an installer key for it."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "iotprov-data")
        self.api_port = free_port()
        self.mqtt_port = free_port()
        self.url = "https://127.0.0.1:%d" % self.api_port
        self.mqtt = "127.0.0.1:%d" % self.mqtt_port
        self.ca = os.path.join(self.dir, "ca-bundle.pem")
        self.proc = None
        r = run([IOTPROV, "init", "--data-dir", self.dir])
        if r.returncode != 0:
            raise RuntimeError("iotprov init: " + r.stderr)
        conf = os.path.join(self.dir, "iotprov.conf")
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace(";claim_ttl = 300", "claim_ttl = %d" % CLAIM_TTL))
        self.log = open(os.path.join(tmp, "up.log"), "w")
        env = dict(os.environ)
        if sanitized_build():
            # An instrumented plugin inside the uninstrumented mosquitto
            # needs the sanitizer runtime preloaded there (`iotprov up`
            # passes it on to the broker only).
            rt = run(["clang", "-print-file-name=libclang_rt.asan-x86_64.so"]).stdout.strip()
            env["IOTP_BROKER_PRELOAD"] = rt
        self.proc = subprocess.Popen(
            [IOTPROV, "up", "--data-dir", self.dir, "--api-listen", "127.0.0.1:%d" % self.api_port,
             "--mqtt-listen", self.mqtt], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        if not wait_for(self._ready, 60, 0.2):
            raise RuntimeError("iotprov up did not become ready: " + self._log_text())
        self.iot = self.boto()
        self.iot.create_provisioning_template(
            templateName=TEMPLATE, templateBody=json.dumps(TEMPLATE_BODY), enabled=True,
            provisioningRoleArn="arn:aws:iam::123456789012:role/provisioning",
            type="FLEET_PROVISIONING")
        r = run([IOTPROV, "key", "create", "--role", "installer", "--templates", TEMPLATE,
                 "--format", "env", "--data-dir", self.dir])
        if r.returncode != 0:
            raise RuntimeError("iotprov key create: " + r.stderr)
        self.installer_env = dict(line.split("=", 1) for line in r.stdout.split()
                                  if line.startswith("AWS_"))

    def _log_text(self):
        with open(self.log.name) as f:
            return f.read()

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("iotprov up exited: " + self._log_text())
        return "Stop with Ctrl-C" in self._log_text()

    def boto(self):
        import boto3
        cp = configparser.ConfigParser()
        cp.read(os.path.join(self.dir, "admin-credentials"))
        return boto3.client("iot", region_name=REGION, endpoint_url=self.url, verify=self.ca,
                            aws_access_key_id=cp["iotprov"]["aws_access_key_id"],
                            aws_secret_access_key=cp["iotprov"]["aws_secret_access_key"])

    def cli_env(self):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("AWS_"):
                del env[k]
        env.update(self.installer_env)
        env["AWS_CA_BUNDLE"] = self.ca
        env["AWS_REGION"] = REGION
        return env

    def thing(self, name):
        try:
            return self.iot.describe_thing(thingName=name)
        except Exception:  # noqa: BLE001 -- absent is the answer
            return None

    def cert_status(self, cert_id):
        return self.iot.describe_certificate(certificateId=cert_id)[
            "certificateDescription"]["status"]

    def save_claim(self, path, serial):
        r = run([IOTPROV, "commission", "--save-claim", path, "--template", TEMPLATE,
                 "--endpoint-url", self.url, "--mqtt-endpoint", self.mqtt,
                 "SerialNumber=" + serial], env=self.cli_env())
        if r.returncode != 0:
            raise RuntimeError("iotprov commission --save-claim: " + r.stderr)
        return path

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---- the device ---------------------------------------------------------------

APPLY_SCRIPT = """#!/bin/sh
# Stands for `wpa_cli reconfigure` + waiting for association: joins only
# with the expected passphrase, and logs every attempt.
echo "$IOTP_NET_MODE $IOTP_NET_SSID" >> "%(log)s"
if [ "$IOTP_NET_MODE" = wired ]; then echo "link up"; exit 0; fi
if grep -q 'psk="%(psk)s"' "$IOTP_NET_CONFIG"; then
  echo "associated with $IOTP_NET_SSID"; exit 0
fi
echo "4-way handshake failed: wrong passphrase"
exit 1
"""


class Device:
    """A factory-fresh device in commissioning mode."""

    def __init__(self, tmp, name, transport_args, code=CODE, max_attempts=3, delay_ms=1500,
                 lockout_s=60, once=False, extra=()):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.state = os.path.join(self.dir, "state")
        self.net_config = os.path.join(self.dir, "wpa_supplicant-iotprov.conf")
        self.apply_log = os.path.join(self.dir, "apply.log")
        apply = os.path.join(self.dir, "apply.sh")
        with open(apply, "w") as f:
            f.write(APPLY_SCRIPT % {"log": self.apply_log, "psk": GOOD_PSK})
        os.chmod(apply, 0o755)
        self.out = open(os.path.join(self.dir, "device.log"), "w+")
        args = [DEVICE, "commission", "--device-id", name, "--setup-code", code,
                "--state-dir", self.state, "--net-config", self.net_config, "--net-apply", apply,
                "--max-attempts", str(max_attempts), "--delay-ms", str(delay_ms),
                "--lockout-s", str(lockout_s), "--page", PAGE] + list(transport_args) + list(extra)
        if once:
            args.append("--once")
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=subprocess.STDOUT)
        if not wait_for(lambda: "commissioning " in self.log() or self.proc.poll() is not None,
                        15):
            raise RuntimeError("device did not start: " + self.log())
        if self.proc.poll() is not None:
            raise RuntimeError("device exited: " + self.log())

    def log(self):
        self.out.flush()
        with open(self.out.name) as f:
            return f.read()

    def http_port(self):
        import re
        m = re.search(r"\(port (\d+)\)", self.log())
        return int(m.group(1)) if m else None

    def applies(self):
        try:
            with open(self.apply_log) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def status(self):
        r = run([DEVICE, "status", "--state-dir", self.state, "--json"])
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {"error": r.stdout + r.stderr}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        sanitizer_clean("device " + os.path.basename(self.dir), self.log())
        self.out.close()
        return self.proc.returncode


def installer(stack, device, *args, code=CODE, psks=(GOOD_PSK,), tmp=None, claim=True,
              serial="0001", timeout=120):
    """Runs `iotprov commission`; returns the CompletedProcess."""
    psk_file = os.path.join(tmp, "psk-%d" % time.monotonic_ns())
    with open(psk_file, "w") as f:
        f.write("\n".join(psks) + "\n")
    os.chmod(psk_file, 0o600)
    cmd = [IOTPROV, "commission", "--device", device, "--setup-code", code, "--ssid", SSID,
           "--psk-file", psk_file, "--timeout", "60"]
    if claim is True:
        cmd += ["--template", TEMPLATE, "--endpoint-url", stack.url, "--mqtt-endpoint",
                stack.mqtt, "SerialNumber=" + serial]
    elif claim:
        cmd += ["--claim-file", claim]
    else:
        cmd += ["--no-claim"]
    cmd += list(args)
    r = run(cmd, env=stack.cli_env() if stack else None, timeout=timeout)
    print("     $ iotprov commission ... -> %d\n     %s" % (
        r.returncode, (r.stdout + r.stderr).strip().replace("\n", "\n     ")), flush=True)
    sanitizer_clean("iotprov commission", r.stdout + r.stderr)
    return r


def raw_post(port, obj):
    """One message to the device's web endpoint; returns the parsed reply."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
    c.request("POST", "/api/commission", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return json.loads(data) if r.status == 200 else {"http": r.status, "body": data.decode()}


def flip_ct(msg):
    """The message with one ciphertext bit flipped."""
    m = dict(msg)
    ct = bytearray(base64.b64decode(m["ct"]))
    ct[len(ct) // 2] ^= 0x01
    m["ct"] = base64.b64encode(bytes(ct)).decode()
    return m


# ---- men in the middle ----------------------------------------------------------

class HttpProxy:
    """Forwards POST /api/commission to the device, recording every
    (request, reply); alter(request) may return a different request."""

    def __init__(self, device_port):
        self.device_port = device_port
        self.log = []
        self.alter = None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                req = json.loads(body)
                if proxy.alter:
                    req = proxy.alter(req)
                reply = raw_post(proxy.device_port, req)
                proxy.log.append((req, reply))
                data = (json.dumps(reply) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def sent(self, t):
        return [q for q, _ in self.log if q.get("t") == t]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class PtyRelay:
    """Two pty pairs joined like a null-modem cable: the device opens one
    slave, the installer the other; every line passes through here, where it
    is recorded and may be altered (alter(obj) -> obj) or injected."""

    def __init__(self):
        self.dev_master, dev_slave = pty.openpty()
        self.inst_master, inst_slave = pty.openpty()
        for fd in (dev_slave, inst_slave):
            tty.setraw(fd)
        self.device_path = os.ttyname(dev_slave)
        self.installer_path = os.ttyname(inst_slave)
        # Keep the slaves open so neither side sees a hang-up between runs.
        self.slaves = (dev_slave, inst_slave)
        self.log = []          # ("i"|"d", obj)
        self.alter = None
        self.swallow = 0       # device lines not to forward (answers to injections)
        self.stopping = False
        self.bufs = {self.dev_master: b"", self.inst_master: b""}
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        while not self.stopping:
            r, _, _ = select.select([self.dev_master, self.inst_master], [], [], 0.1)
            for fd in r:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    continue
                self.bufs[fd] += data
                while b"\n" in self.bufs[fd]:
                    line, self.bufs[fd] = self.bufs[fd].split(b"\n", 1)
                    if not line.strip():
                        continue
                    from_installer = fd == self.inst_master
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        obj = {"raw": line.decode(errors="replace")}
                    if from_installer and self.alter and "raw" not in obj:
                        obj = self.alter(obj)
                        line = json.dumps(obj).encode()
                    self.log.append(("i" if from_installer else "d", obj))
                    if not from_installer and self.swallow > 0:
                        self.swallow -= 1
                        continue
                    out = self.dev_master if from_installer else self.inst_master
                    os.write(out, line + b"\n")

    def inject(self, obj, timeout=10):
        """Writes obj to the device as if from the installer; returns the
        device's next reply."""
        n = len(self.log)
        self.send_to_device(obj)

        def reply():
            for who, o in self.log[n + 1:]:
                if who == "d":
                    return o
            return None
        return wait_for(reply, timeout)

    def send_to_device(self, obj):
        """Writes obj to the device; its answer is logged, not forwarded."""
        self.swallow += 1
        self.log.append(("i", obj))
        os.write(self.dev_master, json.dumps(obj).encode() + b"\n")

    def sent(self, t):
        return [o for who, o in self.log if who == "i" and o.get("t") == t]

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        for fd in (self.dev_master, self.inst_master) + self.slaves:
            os.close(fd)


def tmpdir(name):
    return tempfile.mkdtemp(prefix="iotp-%s-" % name)


def cleanup(tmp):
    if failures:
        print("kept %s for inspection" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
