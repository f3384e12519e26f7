"""End-to-end test of the Mosquitto plugin: a real /usr/sbin/mosquitto with
iotprov_mosquitto.so on a free 127.0.0.1 port in a temporary directory, real
TLS clients (the mqtt_probe libmosquitto client, mosquitto_pub/mosquitto_sub),
and registry changes made by another process on the same store
(iotp_fixture), as iotprovd would make them.

What a user would check: who may connect, what each device may do, that a
revoked device is dropped within a second, that JITR/JITP and fleet
provisioning (JSON and CBOR, CSR and server-made keys) work end to end, and
that bad requests get a rejected reply with the right code.

In a sanitizer build (IOTP_SANITIZE in CMakeCache.txt) the plugin is
instrumented but mosquitto is not, so mosquitto runs with the ASan runtime
preloaded (leak checking off for the broker process only).
"""
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.environ.get("IOTP_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("IOTP_BUILD_DIR", os.path.join(SRC, "build"))
IOTPROV = os.environ.get("IOTPROV_BIN", os.path.join(BUILD, "iotprov"))
FIXTURE = os.path.join(BUILD, "iotp_fixture")
PROBE = os.path.join(BUILD, "mqtt_probe")
PLUGIN = os.path.join(BUILD, "iotprov_mosquitto.so")
MOSQUITTO = "/usr/sbin/mosquitto"
ARN = "arn:aws:iot:us-east-1:123456789012:"

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def section(fn, *args):
    import traceback
    print("-- " + fn.__name__, flush=True)
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 -- any surprise is a failure of this part
        traceback.print_exc()
        check(False, "%s raised %s: %s" % (fn.__name__, type(e).__name__, e))


def run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def sanitized():
    if os.environ.get("IOTP_SANITIZE") == "1":
        return True
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return re.search(r"^IOTP_SANITIZE:BOOL=(ON|1|TRUE)$", f.read(), re.M) is not None
    except OSError:
        return False


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def openssl(*args, cwd):
    r = run(["openssl"] + list(args), cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr))
    return r.stdout


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions, resources):
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


class Receiver(http.server.ThreadingHTTPServer):
    """The [mqtt] jitr_webhook: records each POST (path, headers, body) and
    answers `status` (204 by default)."""
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.status = 204
        self.posts = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self):
        return "http://127.0.0.1:%d/jitr" % self.server_port

    def got(self):
        with self.lock:
            return list(self.posts)


class ReceiverHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.posts.append((self.path, dict(self.headers), body))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class Env:
    """A data dir, a running broker and helpers around them."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.data = os.path.join(tmp, "data")
        r = run([IOTPROV, "init", "--data-dir", self.data])
        if r.returncode != 0:
            raise RuntimeError("iotprov init: " + r.stderr)
        self.ca = os.path.join(self.data, "ca-bundle.pem")
        self.capath = os.path.join(tmp, "capath")
        self.port = free_port()
        self.conf = os.path.join(tmp, "mosquitto.conf")
        user = ["root"] if os.geteuid() == 0 else []
        out = self.fixture("broker-conf", PLUGIN, "127.0.0.1:%d" % self.port, self.conf,
                           self.capath, *user)
        check(out.get("cas", 0) >= 2, "capath written with iotprov's root and issuing CA")
        with open(self.conf) as f:
            text = f.read()
        check("require_certificate true" in text and "set_tcp_nodelay true" in text and
              "use_identity_as_username false" in text,
              "generated mosquitto.conf requires certificates and sets tcp_nodelay")
        self.proc = None
        self.n = 0

    def start(self):
        env = dict(os.environ)
        if sanitized():
            rt = run(["clang", "-print-file-name=libclang_rt.asan-x86_64.so"]).stdout.strip()
            env["LD_PRELOAD"] = rt
            # leaks of mosquitto itself are not ours to judge; IOTP_BROKER_LEAKS=1
            # turns the check on to look at the plugin's
            env["ASAN_OPTIONS"] = "detect_leaks=%s:abort_on_error=1" % (
                os.environ.get("IOTP_BROKER_LEAKS", "0"))
        self.log = open(os.path.join(self.tmp, "mosquitto.log"), "a+")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited:\n" + self.read_log())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("mosquitto did not listen:\n" + self.read_log())

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = None
            check(rc == 0, "mosquitto stops cleanly on SIGTERM (exit %s)" % rc)

    def read_log(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def fixture(self, *args):
        r = run([FIXTURE, self.data] + list(args))
        if r.returncode != 0:
            raise RuntimeError("iotp_fixture %s: %s" % (" ".join(args[:2]), r.stderr))
        return json.loads(r.stdout) if r.stdout.strip() else {}

    def path(self, name):
        return os.path.join(self.tmp, name)

    def write(self, name, text):
        with open(self.path(name), "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        return self.path(name)

    def device(self, name, status="ACTIVE", cn=None):
        """A key + CSR made here and a certificate issued by iotprov; (id, crt, key)."""
        key = self.path(name + ".key")
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key, cwd=self.tmp)
        openssl("req", "-new", "-key", key, "-subj", "/CN=" + (cn or name), "-out",
                self.path(name + ".csr"), cwd=self.tmp)
        out = self.fixture("cert-csr", self.path(name + ".csr"), status)
        crt = self.write(name + ".crt", out["certificatePem"])
        return out["certificateId"], crt, key

    def probe_args(self, crt, key, cid, subs=(), pub=None, msg=None, msg_file=None,
                   cbor=False, count=0, timeout=8, stay=0, retain=False):
        cmd = [PROBE, "--port", str(self.port), "--cafile", self.ca, "--cert", crt, "--key",
               key, "--id", cid, "--timeout", str(timeout)]
        for s in subs:
            cmd += ["--sub", s]
        if pub is not None:
            cmd += ["--pub", pub]
            if msg_file is not None:
                cmd += ["--msg-file", msg_file]
            else:
                cmd += ["--msg", msg if msg is not None else ""]
        if cbor:
            cmd.append("--cbor")
        if retain:
            cmd.append("--retain")
        if count:
            cmd += ["--count", str(count)]
        if stay:
            cmd += ["--stay", str(stay)]
        return cmd

    def probe(self, *a, **kw):
        r = run(self.probe_args(*a, **kw), timeout=60)
        return [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]

    def background(self, *a, **kw):
        return Background(self.probe_args(*a, **kw))


class Background:
    """A probe that stays connected; its events are collected with the
    monotonic time each line arrived."""

    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.events = []
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                with self.cv:
                    self.events.append((time.monotonic(), json.loads(line)))
                    self.cv.notify_all()

    def wait_event(self, name, seconds=10.0, **match):
        end = time.monotonic() + seconds
        with self.cv:
            while True:
                for t, e in self.events:
                    if e["event"] == name and all(e.get(k) == v for k, v in match.items()):
                        return t, e
                left = end - time.monotonic()
                if left <= 0:
                    return None, None
                self.cv.wait(left)

    def messages(self):
        with self.cv:
            return [e for _, e in self.events if e["event"] == "message"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=20)
        self.t.join(timeout=5)


def ev(events, name):
    return [e for e in events if e["event"] == name]


def connack(events):
    c = ev(events, "connack")
    return c[0]["rc"] if c else None


THING_POLICY = policy(
    allow("iot:Connect", ARN + "client/${iot:Connection.Thing.ThingName}"),
    allow(["iot:Publish", "iot:Receive"], ARN + "topic/things/${iot:Connection.Thing.ThingName}/*"),
    allow("iot:Subscribe", ARN + "topicfilter/things/${iot:Connection.Thing.ThingName}/*"))


# ---------------------------------------------------------------------------

def test_active_and_thing_policy(env):
    env.fixture("policy-create", "thingpolicy", THING_POLICY)
    for name in ("pump-1", "pump-2"):
        cid, crt, key = env.device(name)
        env.fixture("thing-create", name)
        env.fixture("thing-attach", name, cid)
        env.fixture("policy-attach", "thingpolicy", "cert/" + cid)
    crt, key = env.path("pump-1.crt"), env.path("pump-1.key")
    e = env.probe(crt, key, "pump-1", subs=["things/pump-1/cmd"], pub="things/pump-1/cmd",
                  msg="on", count=1)
    check(connack(e) == 0, "ACTIVE certificate with an ACTIVE CA connects")
    check(ev(e, "suback") and ev(e, "suback")[0]["granted"] == [1],
          "subscribe on its own topic (ThingName variable) allowed")
    check(ev(e, "puback") and ev(e, "puback")[0]["rc"] == 0, "publish on its own topic allowed")
    check([m["payload"] for m in ev(e, "message")] == ["on"], "message on its own topic received")
    e = env.probe(crt, key, "pump-1", subs=["things/pump-2/cmd"], pub="things/pump-2/cmd",
                  msg="off")
    check(ev(e, "suback") and ev(e, "suback")[0]["granted"] == [135],
          "subscribe on the neighbour's topic denied")
    check(ev(e, "puback") and ev(e, "puback")[0]["rc"] == 135,
          "publish on the neighbour's topic denied")
    e = env.probe(crt, key, "pump-2")
    check(connack(e) == 135, "client id naming another thing: iot:Connect denied")
    # with mosquitto_sub and mosquitto_pub, the way an operator would try it
    env.fixture("policy-create", "ops", policy(
        allow("iot:Connect", ARN + "client/ops-*"), allow("iot:Publish", ARN + "topic/things/*")))
    oid, ocrt, okey = env.device("ops")
    env.fixture("policy-attach", "ops", "cert/" + oid)
    crt2, key2 = env.path("pump-2.crt"), env.path("pump-2.key")
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(env.port), "--cafile",
                            env.ca, "--cert", crt2, "--key", key2, "-i", "pump-2", "-t",
                            "things/pump-2/state", "-C", "1", "-W", "15"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.7)

    def pub(c, k, cid, topic, msg):
        return run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(env.port), "--cafile", env.ca,
                    "--cert", c, "--key", k, "-i", cid, "-t", topic, "-m", msg, "-q", "1"])
    r = pub(crt, key, "pump-1", "things/pump-1/state", "42")
    check(r.returncode == 0, "mosquitto_pub publishes on its own topic (%s)" % r.stderr.strip())
    pub(crt, key, "pump-1", "things/pump-2/state", "spoofed")
    r = pub(ocrt, okey, "ops-1", "things/pump-2/state", "from-ops")
    check(r.returncode == 0, "operator client publishes to pump-2")
    out, _ = sub.communicate(timeout=30)
    check(out.strip() == "from-ops",
          "mosquitto_sub of pump-2 gets the operator's message, never pump-1's (%r)" % out)


def test_refused_statuses(env):
    before = env.fixture("events", "broker.connect_refused")["count"]
    cid, crt, key = env.device("revoked-1")
    env.fixture("policy-attach", "thingpolicy", "cert/" + cid)
    env.fixture("thing-create", "revoked-1")
    env.fixture("thing-attach", "revoked-1", cid)
    check(connack(env.probe(crt, key, "revoked-1")) == 0, "device connects while ACTIVE")
    env.fixture("cert-status", cid, "REVOKED")
    check(connack(env.probe(crt, key, "revoked-1")) == 135, "REVOKED certificate refused")
    cid2, crt2, key2 = env.device("inactive-1", status="INACTIVE")
    check(connack(env.probe(crt2, key2, "inactive-1")) == 135, "INACTIVE certificate refused")
    # unknown: a certificate iotprov never recorded, from a CA nobody registered
    key3 = env.path("stranger.key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", key3, "-subj", "/CN=stranger", "-days", "1", "-out",
            env.path("stranger.crt"), cwd=env.tmp)
    e = env.probe(env.path("stranger.crt"), key3, "stranger")
    check(connack(e) != 0, "certificate from an unknown CA never connects")

    def refused_events():
        return env.fixture("events", "broker.connect_refused")["count"]
    end = time.monotonic() + 5
    while refused_events() < before + 2 and time.monotonic() < end:
        time.sleep(0.1)
    check(refused_events() >= before + 2, "each refusal is in the audit feed")
    log = env.read_log()
    check("certificate is REVOKED" in log and "certificate is INACTIVE" in log,
          "the refusal reason is in the broker log")


def test_revoke_while_connected(env):
    cid, crt, key = env.device("live-1")
    env.fixture("thing-create", "live-1")
    env.fixture("thing-attach", "live-1", cid)
    env.fixture("policy-attach", "thingpolicy", "cert/" + cid)
    bg = env.background(crt, key, "live-1", stay=15)
    t, _ = bg.wait_event("staying")
    check(t is not None, "device connected and staying")
    env.fixture("cert-status", cid, "REVOKED")
    t0 = time.monotonic()
    t1, e = bg.wait_event("disconnect", seconds=5)
    bg.close()
    check(t1 is not None and t1 - t0 < 1.0,
          "revoked while connected: disconnected within 1 s (%.3f s)" %
          ((t1 - t0) if t1 else -1))


def test_claim_limits(env):
    claim = env.fixture("claim-create", "fleet-t")
    crt = env.write("tu-claim.crt", claim["certificatePem"])
    key = env.write("tu-claim.key", claim["privateKey"])
    os.chmod(key, 0o600)
    e = env.probe(crt, key, "claim-x", subs=["things/#", "$aws/certificates/create/json/+"],
                  pub="things/pump-1/cmd", msg="x")
    check(connack(e) == 0, "trusted-user claim certificate connects")
    check(ev(e, "suback") and ev(e, "suback")[0]["granted"] == [135, 1],
          "claim may subscribe only to its provisioning topics")
    check(ev(e, "puback") and ev(e, "puback")[0]["rc"] == 135,
          "claim publishing on a device topic is denied")
    e = env.probe(crt, key, "claim-x", pub="$aws/provisioning-templates/other/provision/json",
                  msg="{}")
    check(ev(e, "puback") and ev(e, "puback")[0]["rc"] == 135,
          "claim publishing to another template's topic is denied")


def test_group_policy(env):
    env.fixture("group-create", "plant")
    env.fixture("group-create", "line-3", "plant")
    env.fixture("policy-create", "plantpolicy", policy(
        allow("iot:Connect", ARN + "client/*"),
        allow(["iot:Publish", "iot:Receive"], ARN + "topic/plant/telemetry"),
        allow("iot:Subscribe", ARN + "topicfilter/plant/telemetry")))
    env.fixture("policy-attach", "plantpolicy", "thinggroup/plant")
    cid, crt, key = env.device("press-7")
    env.fixture("thing-create", "press-7")
    env.fixture("thing-attach", "press-7", cid)
    e = env.probe(crt, key, "press-7", pub="plant/telemetry", msg="1")
    check(connack(e) == 135, "before joining a group the device has no policy")
    env.fixture("group-add", "line-3", "press-7")
    e = env.probe(crt, key, "press-7", subs=["plant/telemetry"], pub="plant/telemetry", msg="2",
                  count=1)
    check(connack(e) == 0 and [m["payload"] for m in ev(e, "message")] == ["2"],
          "policy of the parent group is inherited through the child group") or print(e)


def test_policy_edit_applies(env):
    env.fixture("policy-create", "editable", policy(
        allow("iot:Connect", ARN + "client/*"),
        allow(["iot:Publish", "iot:Receive"], ARN + "topic/edit/*"),
        allow("iot:Subscribe", ARN + "topicfilter/edit/*")))
    cid, crt, key = env.device("editor-1")
    env.fixture("policy-attach", "editable", "cert/" + cid)
    sub = env.background(crt, key, "editor-sub", subs=["edit/x"], stay=20)
    check(sub.wait_event("staying")[0] is not None, "subscriber connected")
    e = env.probe(crt, key, "editor-pub", pub="edit/x", msg="first")
    check(ev(e, "puback") and ev(e, "puback")[0]["rc"] == 0, "publish allowed by version 1")
    time.sleep(0.3)
    check([m["payload"] for m in sub.messages()] == ["first"], "subscriber receives it")
    env.fixture("policy-version", "editable", policy(
        allow("iot:Connect", ARN + "client/*"),
        allow("iot:Publish", ARN + "topic/edit/*")))
    time.sleep(1.0)
    e = env.probe(crt, key, "editor-pub", pub="edit/x", msg="second")
    time.sleep(0.5)
    check(ev(e, "puback") and ev(e, "puback")[0]["rc"] == 0, "publish still allowed")
    check([m["payload"] for m in sub.messages()] == ["first"],
          "1 s after the edit the connected subscriber no longer receives")
    sub.close()


def test_attachments_apply_while_connected(env):
    env.fixture("policy-create", "subonly", policy(
        allow("iot:Connect", ARN + "client/*"),
        allow("iot:Subscribe", ARN + "topicfilter/alerts/*")))
    env.fixture("policy-create", "recv-alerts", policy(allow("iot:Receive", ARN + "topic/alerts/*")))
    env.fixture("policy-create", "pub-alerts", policy(
        allow("iot:Connect", ARN + "client/*"), allow("iot:Publish", ARN + "topic/alerts/*")))
    env.fixture("group-create", "alerted")
    env.fixture("policy-attach", "recv-alerts", "thinggroup/alerted")
    pid, pcrt, pkey = env.device("alerter")
    env.fixture("policy-attach", "pub-alerts", "cert/" + pid)
    aid, acrt, akey = env.device("siren-1")
    env.fixture("policy-attach", "subonly", "cert/" + aid)
    env.fixture("thing-create", "siren-1")
    env.fixture("thing-attach", "siren-1", aid)
    bid, bcrt, bkey = env.device("siren-2")
    env.fixture("policy-attach", "subonly", "cert/" + bid)
    a = env.background(acrt, akey, "siren-1", subs=["alerts/1"], stay=20)
    b = env.background(bcrt, bkey, "siren-2", subs=["alerts/2"], stay=20)
    check(a.wait_event("staying")[0] is not None and b.wait_event("staying")[0] is not None,
          "two subscribers connected without iot:Receive")
    env.probe(pcrt, pkey, "alerter", pub="alerts/1", msg="m1")
    env.probe(pcrt, pkey, "alerter", pub="alerts/2", msg="n1")
    time.sleep(0.3)
    check(a.messages() == [] and b.messages() == [], "no delivery without iot:Receive")
    env.fixture("group-add", "alerted", "siren-1")
    env.fixture("policy-attach", "recv-alerts", "cert/" + bid)
    time.sleep(1.0)
    env.probe(pcrt, pkey, "alerter", pub="alerts/1", msg="m2")
    env.probe(pcrt, pkey, "alerter", pub="alerts/2", msg="n2")
    time.sleep(0.3)
    check([m["payload"] for m in a.messages()] == ["m2"],
          "thing added to a group while connected: the group's policy applies within 1 s")
    check([m["payload"] for m in b.messages()] == ["n2"],
          "policy attached to a connected certificate applies within 1 s")
    a.close()
    b.close()


def make_external_ca(env, name):
    d = env.tmp
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key", cwd=d)
    openssl("req", "-x509", "-new", "-key", name + ".key", "-subj", "/CN=" + name + " vendor CA",
            "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", name + ".crt", cwd=d)
    code = env.fixture("regcode")["registrationCode"]
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + "-v.key", cwd=d)
    openssl("req", "-new", "-key", name + "-v.key", "-subj", "/CN=" + code, "-out",
            name + "-v.csr", cwd=d)
    openssl("x509", "-req", "-in", name + "-v.csr", "-CA", name + ".crt", "-CAkey", name + ".key",
            "-CAcreateserial", "-days", "2", "-out", name + "-v.crt", cwd=d)
    return env.path(name + ".crt"), env.path(name + "-v.crt")


def external_device(env, ca, name):
    d = env.tmp
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key", cwd=d)
    openssl("req", "-new", "-key", name + ".key", "-subj", "/CN=" + name + "/O=Acme", "-out",
            name + ".csr", cwd=d)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-days", "5", "-out", name + ".crt", cwd=d)
    return env.path(name + ".crt"), env.path(name + ".key")


def wait_capath(env, ca_id, present=True, seconds=5):
    path = os.path.join(env.capath, ca_id + ".pem")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if os.path.exists(path) == present:
            return True
        time.sleep(0.05)
    return os.path.exists(path) == present


def test_jitr(env):
    ca_crt, verif = make_external_ca(env, "jitrca")
    ca_id = env.fixture("ca-register", ca_crt, verif, "ACTIVE", "ENABLE")["certificateId"]
    check(wait_capath(env, ca_id), "registered CA written to the capath without a restart")
    env.fixture("policy-create", "watcher", policy(
        allow("iot:Connect", ARN + "client/*"),
        allow("iot:Receive", ARN + "topic/$aws/events/*"),
        allow("iot:Subscribe", ARN + "topicfilter/$aws/events/*")))
    wid, wcrt, wkey = env.device("watcher")
    env.fixture("policy-attach", "watcher", "cert/" + wid)
    watcher = env.background(wcrt, wkey, "watcher",
                             subs=["$aws/events/certificates/registered/" + ca_id], stay=20)
    check(watcher.wait_event("staying")[0] is not None, "event watcher subscribed")
    crt, key = external_device(env, "jitrca", "jitr-dev")
    e = env.probe(crt, key, "jitr-dev")
    check(connack(e) == 135, "JITR: first connection of an unknown certificate refused")
    t, m = watcher.wait_event("message", seconds=5)
    watcher.close()
    check(m is not None and m["topic"] == "$aws/events/certificates/registered/" + ca_id,
          "JITR: registered event published on $aws/events/certificates/registered/<caId>")
    cert_id = m["payload"].get("certificateId") if m else None
    check(m is not None and m["payload"].get("certificateStatus") == "PENDING_ACTIVATION" and
          m["payload"].get("caCertificateId") == ca_id, "JITR event names the CA and status")
    if cert_id is None:
        return
    check(env.fixture("cert-describe", cert_id)["status"] == "PENDING_ACTIVATION",
          "JITR: certificate registered PENDING_ACTIVATION")
    check(connack(env.probe(crt, key, "jitr-dev")) == 135, "refused until activated")
    jitr_webhook(env, m["payload"], ca_id)
    env.fixture("cert-status", cert_id, "ACTIVE")
    env.fixture("policy-attach", "plantpolicy", "cert/" + cert_id)
    e = env.probe(crt, key, "jitr-dev", pub="plant/telemetry", msg="3")
    check(connack(e) == 0 and ev(e, "puback")[0]["rc"] < 128,
          "JITR: after activation the device connects and publishes")


def jitr_webhook(env, event, ca_id):
    """The same event went to [mqtt] jitr_webhook, signed with the data dir's
    hook-secret; a receiver answering 500 is audited as a failure."""
    rx = env.receiver
    end = time.monotonic() + 10
    while time.monotonic() < end and not rx.got():
        time.sleep(0.05)
    posts = rx.got()
    check(len(posts) == 1, "JITR: the event was POSTed to the webhook once (%d)" % len(posts))
    if not posts:
        return
    path, headers, body = posts[0]
    with open(os.path.join(env.data, "hook-secret"), "rb") as f:
        secret = f.read().rstrip(b"\n")
    ts = headers.get("X-Iotprov-Timestamp", "")
    want = "v1=" + hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    check(path == "/jitr" and hmac.compare_digest(want, headers.get("X-Iotprov-Signature", "")),
          "JITR webhook: the request is signed with the hook secret")
    check(json.loads(body) == event, "JITR webhook: the body is the registered event %s" %
          body[:300])
    failed = env.fixture("events", "broker.jitr_webhook_failed")["count"]
    check(failed == 0, "no failed delivery audited yet (%d)" % failed)
    # a receiver that answers 500: the device is registered all the same,
    # the failure is logged and audited
    rx.status = 500
    crt2, key2 = external_device(env, "jitrca", "jitr-dev-2")
    check(connack(env.probe(crt2, key2, "jitr-dev-2")) == 135,
          "JITR (webhook answering 500): the second device is refused, pending")
    end = time.monotonic() + 10
    while time.monotonic() < end and \
            env.fixture("events", "broker.jitr_webhook_failed")["count"] == 0:
        time.sleep(0.1)
    check(env.fixture("events", "broker.jitr_webhook_failed")["count"] == 1 and
          len(rx.got()) == 2, "JITR webhook answering 500: one attempt, audited "
          "broker.jitr_webhook_failed")
    check("HTTP 500" in env.read_log(), "the broker log names the receiver's answer")
    rx.status = 204


JITP_TEMPLATE = {
    "Parameters": {"AWS::IoT::Certificate::CommonName": {"Type": "String"},
                   "AWS::IoT::Certificate::Id": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing",
                  "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"},
                                 "AttributePayload": {"vendor": "acme"}}},
        "certificate": {"Type": "AWS::IoT::Certificate",
                        "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
                                       "Status": "ACTIVE"}},
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "thingpolicy"}}}}


def test_jitp_and_ca_inactive(env):
    ca_crt, verif = make_external_ca(env, "jitpca")
    cfg = json.dumps({"templateBody": json.dumps(JITP_TEMPLATE)})
    ca_id = env.fixture("ca-register", ca_crt, verif, "ACTIVE", "ENABLE", cfg)["certificateId"]
    check(wait_capath(env, ca_id), "JITP CA in the capath")
    crt, key = external_device(env, "jitpca", "sensor-9")
    bg = env.background(crt, key, "sensor-9", subs=["things/sensor-9/cmd"], stay=20)
    t, e = bg.wait_event("connack")
    check(e is not None and e["rc"] == 0, "JITP: allowed on the very first connection")
    check(bg.wait_event("suback")[1] is not None and
          bg.wait_event("suback")[1]["granted"] == [1],
          "JITP: the template's policy applies at once")
    thing = env.fixture("thing-describe", "sensor-9")
    check(thing.get("attributes", {}).get("vendor") == "acme",
          "JITP: the thing exists after the first connect, with the template's attributes")
    check(bg.wait_event("staying")[0] is not None, "JITP device staying connected")
    env.fixture("ca-status", ca_id, "INACTIVE")
    t0 = time.monotonic()
    t1, _ = bg.wait_event("disconnect", seconds=5)
    bg.close()
    check(t1 is not None and t1 - t0 < 1.0,
          "CA made INACTIVE: its device dropped within 1 s (%.3f s)" %
          ((t1 - t0) if t1 else -1))
    check(connack(env.probe(crt, key, "sensor-9")) == 135,
          "device of an INACTIVE CA refused")
    check(wait_capath(env, ca_id, present=False), "INACTIVE CA removed from the capath")


FLEET_TEMPLATE = {
    "Parameters": {"SerialNumber": {"Type": "String"},
                   "AWS::IoT::Certificate::Id": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing",
                  "Properties": {"ThingName": {"Fn::Join": ["", ["meter-", {"Ref": "SerialNumber"}]]}}},
        "certificate": {"Type": "AWS::IoT::Certificate",
                        "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
                                       "Status": "ACTIVE"}},
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "thingpolicy"}}},
    "DeviceConfiguration": {"interval": "60"}}


def fleet_request(env, crt, key, cid, topic, payload, cbor=False, raw=None):
    """Publishes one request and returns (reply topic suffix, payload)."""
    f = env.write("req-%d.bin" % time.monotonic_ns(), raw if raw is not None else
                  (json.dumps(payload) if payload is not None else ""))
    e = env.probe(crt, key, cid, subs=[topic + "/accepted", topic + "/rejected"], pub=topic,
                  msg_file=f, cbor=cbor, count=1)
    msgs = ev(e, "message")
    if not msgs:
        return None, e
    return msgs[0]["topic"][len(topic) + 1:], msgs[0]["payload"]


def provision(env, claim_crt, claim_key, fmt, with_csr, serial):
    cid = "claim-" + serial
    cbor = fmt == "cbor"
    if with_csr:
        key = env.path("m%s.key" % serial)
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key, cwd=env.tmp)
        openssl("req", "-new", "-key", key, "-subj", "/CN=meter", "-out",
                env.path("m%s.csr" % serial), cwd=env.tmp)
        with open(env.path("m%s.csr" % serial)) as f:
            csr = f.read()
        kind, p = fleet_request(env, claim_crt, claim_key, cid,
                                "$aws/certificates/create-from-csr/" + fmt,
                                {"certificateSigningRequest": csr}, cbor=cbor)
    else:
        kind, p = fleet_request(env, claim_crt, claim_key, cid, "$aws/certificates/create/" + fmt,
                                None, cbor=cbor)
        key = None
    if not check(kind == "accepted", "%s create%s accepted" % (fmt, "-from-csr" if with_csr else "")):
        print(p)
        return
    check(len(p["certificateId"]) == 64 and "BEGIN CERTIFICATE" in p["certificatePem"] and
          p["certificateOwnershipToken"] and (with_csr or "PRIVATE KEY" in p["privateKey"]),
          "%s reply holds certificate, token%s" % (fmt, "" if with_csr else " and private key"))
    if key is None:
        key = env.write("m%s.key" % serial, p["privateKey"])
        os.chmod(key, 0o600)
    crt = env.write("m%s.crt" % serial, p["certificatePem"])
    check(env.fixture("cert-describe", p["certificateId"])["status"] == "PENDING_ACTIVATION",
          "new certificate starts PENDING_ACTIVATION")
    token = p["certificateOwnershipToken"]
    kind, r = fleet_request(env, claim_crt, claim_key, cid,
                            "$aws/provisioning-templates/fleet-t/provision/" + fmt,
                            {"certificateOwnershipToken": token,
                             "parameters": {"SerialNumber": serial}}, cbor=cbor)
    check(kind == "accepted" and r.get("thingName") == "meter-" + serial and
          r.get("deviceConfiguration") == {"interval": "60"},
          "%s provision accepted with thingName and deviceConfiguration" % fmt)
    thing = "meter-" + serial
    e = env.probe(crt, key, thing, subs=["things/%s/cmd" % thing], pub="things/%s/cmd" % thing,
                  msg="hello", count=1)
    check(connack(e) == 0 and [m["payload"] for m in ev(e, "message")] == ["hello"],
          "%s: reconnects with its own certificate and publishes on its topic" % fmt)
    e = env.probe(crt, key, thing, pub="things/pump-1/cmd", msg="x")
    check(ev(e, "puback") and ev(e, "puback")[0]["rc"] == 135,
          "%s: and is denied outside its policy" % fmt)
    return token


def test_fleet_provisioning(env):
    claim = env.fixture("claim-create", "fleet-t")
    ccrt = env.write("claim.crt", claim["certificatePem"])
    ckey = env.write("claim.key", claim["privateKey"])
    os.chmod(ckey, 0o600)
    provision(env, ccrt, ckey, "json", True, "0001")
    used = provision(env, ccrt, ckey, "cbor", False, "0002")
    # a claim certificate made from a template claim policy (normal cert + policy)
    env.fixture("policy-create", "claimpolicy", policy(
        allow("iot:Connect", ARN + "client/*"),
        allow(["iot:Publish", "iot:Receive"], [ARN + "topic/$aws/certificates/create/*",
                                               ARN + "topic/$aws/provisioning-templates/fleet-t/provision/*"]),
        allow("iot:Subscribe", [ARN + "topicfilter/$aws/certificates/create/*",
                                ARN + "topicfilter/$aws/provisioning-templates/fleet-t/provision/*"])))
    pid, pcrt, pkey = env.device("fleet-claim")
    env.fixture("policy-attach", "claimpolicy", "cert/" + pid)
    provision(env, pcrt, pkey, "cbor", False, "0003")

    # replies only to the requester: a second claim connection listening on
    # the accepted topic gets nothing
    spy = env.background(ccrt, ckey, "spy", subs=["$aws/certificates/create/json/accepted"],
                         stay=20)
    check(spy.wait_event("staying")[0] is not None, "spy subscribed")
    kind, _ = fleet_request(env, ccrt, ckey, "asker", "$aws/certificates/create/json", None)
    time.sleep(0.5)
    check(kind == "accepted" and spy.messages() == [],
          "accepted reply delivered only to the requesting client")
    spy.close()

    # errors, each with its code
    topic = "$aws/provisioning-templates/fleet-t/provision/json"
    kind, r = fleet_request(env, ccrt, ckey, "bad1", topic, None, raw="{not json")
    check(kind == "rejected" and r.get("statusCode") == 400 and
          r.get("errorCode") == "InvalidParameters" and "JSON" in r.get("errorMessage", ""),
          "malformed JSON: rejected 400 InvalidParameters with a clear message")
    kind, r = fleet_request(env, ccrt, ckey, "bad2",
                            "$aws/provisioning-templates/fleet-t/provision/cbor", None,
                            cbor=True, raw=b"\xa1\x61")
    check(kind == "rejected" and r.get("statusCode") == 400 and
          "CBOR" in r.get("errorMessage", ""), "malformed CBOR: rejected 400")
    kind, r = fleet_request(env, ccrt, ckey, "bad3", topic,
                            {"certificateOwnershipToken": "ab" * 32,
                             "parameters": {"SerialNumber": "9"}})
    check(kind == "rejected" and r.get("errorCode") == "InvalidCertificateOwnershipToken",
          "foreign ownership token: rejected InvalidCertificateOwnershipToken")
    kind, r = fleet_request(env, ccrt, ckey, "bad4",
                            "$aws/provisioning-templates/fleet-t/provision/cbor",
                            {"certificateOwnershipToken": used,
                             "parameters": {"SerialNumber": "0002"}}, cbor=True)
    check(kind == "rejected" and r.get("errorCode") == "InvalidCertificateOwnershipToken",
          "reused ownership token: rejected InvalidCertificateOwnershipToken")
    kind, r = fleet_request(env, pcrt, pkey, "bad5",
                            "$aws/provisioning-templates/fleet-t/provision/json",
                            {"parameters": {}})
    check(kind == "rejected" and r.get("statusCode") == 400 and
          "certificateOwnershipToken" in r.get("errorMessage", ""),
          "missing token: rejected 400 naming the member")
    env.fixture("policy-create", "anytemplate", policy(
        allow("iot:Connect", ARN + "client/*"),
        allow(["iot:Publish", "iot:Receive"], ARN + "topic/$aws/*"),
        allow("iot:Subscribe", ARN + "topicfilter/$aws/*")))
    aid, acrt, akey = env.device("any-claim")
    env.fixture("policy-attach", "anytemplate", "cert/" + aid)
    kind, r = fleet_request(env, acrt, akey, "bad6",
                            "$aws/provisioning-templates/no-such/provision/json",
                            {"certificateOwnershipToken": "ab" * 32})
    check(kind == "rejected" and r.get("statusCode") in (400, 404) and r.get("errorCode"),
          "unknown template: rejected (%s %s)" % (r.get("statusCode") if r else None,
                                                 r.get("errorCode") if r else None))
    check(env.proc.poll() is None, "the broker survived every malformed request")


def main():
    for p in (IOTPROV, FIXTURE, PROBE, PLUGIN, MOSQUITTO):
        if not os.path.exists(p):
            print("FAIL missing %s" % p)
            print("1 failure(s)")
            return 1
    tmp = tempfile.mkdtemp(prefix="iotp-broker-")
    env = None
    try:
        env = Env(tmp)
        env.receiver = Receiver()
        conf = os.path.join(env.data, "iotprov.conf")
        with open(conf) as f:
            text = f.read()
        check(";jitr_webhook = " in text, "iotprov.conf lists jitr_webhook (commented out)")
        with open(conf, "w") as f:
            f.write(text.replace(";jitr_webhook = ", "jitr_webhook = " + env.receiver.url()))
        env.start()
        body = env.write("fleet.json", json.dumps(FLEET_TEMPLATE))
        env.fixture("template-create", "fleet-t", "FLEET_PROVISIONING", body)
        for t in (test_active_and_thing_policy, test_refused_statuses,
                  test_revoke_while_connected, test_claim_limits, test_group_policy,
                  test_policy_edit_applies, test_attachments_apply_while_connected, test_jitr, test_jitp_and_ca_inactive,
                  test_fleet_provisioning):
            section(t, env)
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        check(False, "setup raised %s: %s" % (type(e).__name__, e))
    finally:
        if env is not None:
            env.stop()
            if getattr(env, "receiver", None) is not None:
                env.receiver.shutdown()
            if failures:
                print("---- mosquitto log (tail) ----")
                print(env.read_log()[-6000:])
    if not failures:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
