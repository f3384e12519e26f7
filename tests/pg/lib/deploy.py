"""The scale-out deployment of docs/scale-out.md on one machine, for the
tests/pg/*.py tests: `iotprov init --store postgresql://...` on host A, its
data directory copied for host B, and on each host an iotprovd and a
Mosquitto broker with the iotprov plugin, every process on the one
PostgreSQL database that tests/pg/pg_cluster.py started (IOTP_STORE_URL).

Not a test itself: lib/ is outside the tests/pg/*.py glob. The tests put
this directory and tests/e2e/lib on sys.path and import it.

In a sanitizer build the plugin is instrumented and mosquitto is not, so
mosquitto runs with the ASan runtime preloaded (leak checks off for the
broker process only), as tests/e2e/broker_mqtt.py does, plus a stub that
keeps that preloaded runtime from breaking glibc's gettext lock, on which
libpq would otherwise hang (asan_swift_stub.c says how).
"""
import configparser
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time

import boto3
from botocore.config import Config

from api_e2e import BUILD, IOTPROV, IOTPROVD, REGION, check, run

FIXTURE = os.path.join(BUILD, "iotp_fixture")
PROBE = os.path.join(BUILD, "mqtt_probe")
PLUGIN = os.path.join(BUILD, "iotprov_mosquitto.so")
MOSQUITTO = "/usr/sbin/mosquitto"
PSQL_CANDIDATES = ["/usr/bin/psql"]


def store_url():
    url = os.environ.get("IOTP_STORE_URL", "")
    if not url.startswith("postgresql://"):
        raise RuntimeError("IOTP_STORE_URL is not set: run this under tests/pg/pg_cluster.py run")
    return url


def restart_postgresql():
    """pg_ctl restart -m fast of the test cluster (IOTP_PG_RESTART)."""
    cmd = os.environ.get("IOTP_PG_RESTART")
    if not cmd:
        raise RuntimeError("IOTP_PG_RESTART is not set: run this under tests/pg/pg_cluster.py run")
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("restart failed: " + r.stdout + r.stderr)


def psql(sql):
    """Rows of one query on the test database, each a list of strings."""
    exe = shutil.which("psql") or PSQL_CANDIDATES[0]
    r = subprocess.run([exe, store_url(), "-X", "-A", "-t", "-q", "-F", "\t", "-c", sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("psql: " + r.stderr)
    return [line.split("\t") for line in r.stdout.splitlines() if line != ""]


def sanitized():
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return re.search(r"^IOTP_SANITIZE:BOOL=(ON|1|TRUE)$", f.read(), re.M) is not None
    except OSError:
        return False


def asan_preload(tmp):
    """LD_PRELOAD for an uninstrumented program that loads instrumented code:
    the ASan runtime and the swift_demangle stub (built here with cc)."""
    rt = run(["clang", "-print-file-name=libclang_rt.asan-x86_64.so"]).stdout.strip()
    stub = os.path.join(tmp, "libasan_swift_stub.so")
    if not os.path.exists(stub):
        r = run(["cc", "-shared", "-fPIC", "-O1", "-o", stub,
                 os.path.join(os.path.dirname(os.path.abspath(__file__)), "asan_swift_stub.c")])
        if r.returncode != 0:
            raise RuntimeError("cannot build the ASan preload stub: " + r.stderr)
    return rt + " " + stub


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_programs():
    return [p for p in (IOTPROV, IOTPROVD, FIXTURE, PROBE, PLUGIN, MOSQUITTO)
            if not os.path.exists(p)]


def init_deployment(tmp):
    """`iotprov init --store URL` for host A, then A's data directory copied
    as B's (what docs/scale-out.md tells an operator to do). Returns the two
    data directory paths and init's result."""
    a = os.path.join(tmp, "host-a")
    b = os.path.join(tmp, "host-b")
    r = run([IOTPROV, "init", "--data-dir", a, "--store", store_url()])
    if r.returncode != 0:
        raise RuntimeError("iotprov init --store: " + r.stderr)
    shutil.copytree(a, b, symlinks=True)
    return a, b, r


class Host:
    """One host of the deployment: iotprovd and a broker on data_dir."""

    def __init__(self, name, data_dir, tmp):
        self.name = name
        self.data = data_dir
        self.tmp = os.path.join(tmp, "run-" + name)
        os.makedirs(self.tmp, exist_ok=True)
        self.ca = os.path.join(data_dir, "ca-bundle.pem")
        self.daemon = None
        self.broker = None
        self.api_port = None
        self.mqtt_port = None
        cp = configparser.ConfigParser()
        cp.read(os.path.join(data_dir, "admin-credentials"))
        self.key = (cp["iotprov"]["aws_access_key_id"], cp["iotprov"]["aws_secret_access_key"])

    # ---- iotprovd ----
    def start_daemon(self):
        self.daemon_log = open(os.path.join(self.tmp, "iotprovd.log"), "a+")
        self.daemon = subprocess.Popen([IOTPROVD, "--data-dir", self.data, "--api-listen",
                                        "127.0.0.1:0"], stdout=subprocess.PIPE,
                                       stderr=self.daemon_log, text=True)
        line = self.daemon.stdout.readline()
        m = re.match(r"iotprovd: listening on https://127\.0\.0\.1:(\d+)$", line.strip())
        if not m:
            self.daemon.kill()
            self.daemon.wait()
            raise RuntimeError("%s: iotprovd did not start (%r):\n%s" %
                               (self.name, line, self.log_text("iotprovd.log")))
        self.api_port = int(m.group(1))
        self.url = "https://127.0.0.1:%d" % self.api_port

    def iot(self, timeout=60):
        """A boto3 IoT client of this host's API (no SDK retries: the tests
        decide what to retry)."""
        s = boto3.session.Session(aws_access_key_id=self.key[0],
                                  aws_secret_access_key=self.key[1], region_name=REGION)
        return s.client("iot", endpoint_url=self.url, verify=self.ca,
                        config=Config(retries={"total_max_attempts": 1}, read_timeout=timeout,
                                      connect_timeout=10))

    # ---- the broker ----
    def fixture(self, *args):
        r = run([FIXTURE, self.data] + list(args))
        if r.returncode != 0:
            raise RuntimeError("iotp_fixture %s: %s" % (" ".join(args[:2]), r.stderr))
        return json.loads(r.stdout) if r.stdout.strip() else {}

    def start_broker(self):
        self.mqtt_port = free_port()
        conf = os.path.join(self.tmp, "mosquitto.conf")
        user = ["root"] if os.geteuid() == 0 else []
        self.fixture("broker-conf", PLUGIN, "127.0.0.1:%d" % self.mqtt_port, conf,
                     os.path.join(self.tmp, "capath"), *user)
        env = dict(os.environ)
        if sanitized():
            env["LD_PRELOAD"] = asan_preload(self.tmp)
            env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
        self.broker_log = open(os.path.join(self.tmp, "mosquitto.log"), "a+")
        self.broker = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=self.broker_log,
                                       stderr=subprocess.STDOUT, env=env)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if self.broker.poll() is not None:
                raise RuntimeError("%s: mosquitto exited:\n%s" %
                                   (self.name, self.log_text("mosquitto.log")))
            try:
                socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("%s: mosquitto did not listen" % self.name)

    def probe_args(self, crt, key, cid, subs=(), pub=None, msg_file=None, count=0, stay=0,
                   timeout=15):
        cmd = [PROBE, "--port", str(self.mqtt_port), "--cafile", self.ca, "--cert", crt,
               "--key", key, "--id", cid, "--timeout", str(timeout)]
        for s in subs:
            cmd += ["--sub", s]
        if pub is not None:
            cmd += ["--pub", pub, "--msg-file", msg_file]
        if count:
            cmd += ["--count", str(count)]
        if stay:
            cmd += ["--stay", str(stay)]
        return cmd

    def log_text(self, name):
        try:
            with open(os.path.join(self.tmp, name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        """SIGTERM to both; True when both exit 0."""
        ok = True
        for proc in (self.broker, self.daemon):
            if proc is None:
                continue
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    ok = False
            ok = ok and proc.returncode == 0
        return ok


class Background:
    """A probe that stays connected; its JSON events with the monotonic time
    each arrived."""

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

    def wait_event(self, name, seconds=10.0):
        end = time.monotonic() + seconds
        with self.cv:
            while True:
                for t, e in self.events:
                    if e["event"] == name:
                        return t, e
                left = end - time.monotonic()
                if left <= 0:
                    return None, None
                self.cv.wait(left)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=20)
        self.t.join(timeout=5)


def device_policy(iot, name):
    """A policy that lets a device connect and use topics under its name."""
    arn = "arn:aws:iot:%s:123456789012:" % REGION
    iot.create_policy(policyName=name, policyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": arn + "client/*"},
                      {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
                       "Resource": arn + "topic/dev/*"},
                      {"Effect": "Allow", "Action": "iot:Subscribe",
                       "Resource": arn + "topicfilter/dev/*"}]}))


def device_cert(iot, tmp, name, policy):
    """CreateKeysAndCertificate (ACTIVE) with policy attached; (id, crt, key)."""
    r = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName=policy, target=r["certificateArn"])
    crt = os.path.join(tmp, name + ".crt")
    key = os.path.join(tmp, name + ".key")
    with open(crt, "w") as f:
        f.write(r["certificatePem"])
    with open(key, "w") as f:
        f.write(r["keyPair"]["PrivateKey"])
    os.chmod(key, 0o600)
    return r["certificateId"], crt, key


def revocation_kicks(revoker, broker_host, tmp, name, policy, limit=1.0):
    """Connects a device to broker_host's broker, revokes its certificate
    through revoker's API and checks that the broker disconnects it within
    limit seconds of the API's answer."""
    iot = revoker.iot()
    cid, crt, key = device_cert(iot, tmp, name, policy)
    bg = Background(broker_host.probe_args(crt, key, name, stay=30, timeout=40))
    try:
        t, e = bg.wait_event("staying", 20)
        if not check(t is not None, "%s: device connected to broker %s and staying" %
                     (name, broker_host.name)):
            print(bg.events)
            return None
        t_call = time.monotonic()
        iot.update_certificate(certificateId=cid, newStatus="REVOKED")
        t_ack = time.monotonic()
        t_kick, _ = bg.wait_event("disconnect", 10)
    finally:
        bg.close()
    took = (t_kick - t_ack) if t_kick is not None else None
    check(took is not None and took < limit,
          "%s: revoked through %s's API (answered in %.3f s), broker %s disconnected the device "
          "%s s after the answer" % (name, revoker.name, t_ack - t_call, broker_host.name,
                                     "%.3f" % took if took is not None else "never (10 s)"))
    return took
