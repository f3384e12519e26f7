#!/usr/bin/env python3
"""`iotprov up` and the API verbs of the CLI end to end: a fresh data
directory from `iotprov init`, `iotprov up` on free ports, and then what a
newcomer does: paste the printed `aws iot create-thing` and `describe-thing`
examples, exactly as printed, with each installed aws CLI (Debian's
/usr/bin/aws, awscli 2, and the pyenv one, awscli 1, when present); list
things (every page), certificates, CAs and the audit log with the CLI;
follow the audit log live. Then the failure cases: wrong or missing
credentials, nothing listening, a port taken (exit non-zero with a message,
nothing started), a service that dies (up stops and fails), and SIGTERM /
SIGINT (everything stops, no child left, checked by PID).
"""
import configparser
import hashlib
import json
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

import botocore.session
from botocore.config import Config

SRC = os.environ.get("IOTP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("IOTP_BUILD_DIR", os.path.join(SRC, "build"))
IOTPROV = os.path.join(BUILD, "iotprov")
AWS_CLIS = [p for p in ("/usr/bin/aws", "/root/.pyenv/shims/aws") if os.access(p, os.X_OK)]
PAGED_THINGS = 260  # more than one page of ListThings (250)

failures = []


def check(cond, what, detail=""):
    print(("ok   " if cond else "FAIL ") + what + ("" if cond or not detail else ": " + detail),
          flush=True)
    if not cond:
        failures.append(what)


def run(args, env=None, timeout=120):
    return subprocess.run([IOTPROV] + args, capture_output=True, text=True, timeout=timeout,
                          env=env)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def children_of(pid):
    """PIDs whose parent is pid, from /proc."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(name))
        except (OSError, IndexError, ValueError):
            pass
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def sanitized():
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return "IOTP_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


def up_env():
    """In a sanitizer build the broker plugin is instrumented and mosquitto is
    not: `iotprov up` preloads the runtime into mosquitto when told where it
    is."""
    env = dict(os.environ)
    if sanitized():
        env["IOTP_BROKER_PRELOAD"] = subprocess.run(
            ["clang", "-print-file-name=libclang_rt.asan-x86_64.so"], capture_output=True,
            text=True).stdout.strip()
    return env


class Up:
    """`iotprov up` in the background, its output collected as it comes
    (raw reads: select() and Python's buffered readers do not mix)."""

    def __init__(self, args):
        self.proc = subprocess.Popen([IOTPROV, "up"] + args, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=up_env())
        self.fds = {self.proc.stdout.fileno(): "out", self.proc.stderr.fileno(): "err"}
        self.data = {"out": b"", "err": b""}

    def pump(self, timeout):
        if not self.fds:
            return False
        r, _, _ = select.select(list(self.fds), [], [], timeout)
        for fd in r:
            chunk = os.read(fd, 65536)
            if chunk:
                self.data[self.fds[fd]] += chunk
            else:
                del self.fds[fd]  # EOF
        return bool(r)

    def wait_for(self, text, timeout=60):
        end = time.time() + timeout
        while time.time() < end and text not in self.stdout():
            if not self.pump(0.5) and self.proc.poll() is not None:
                break
        return text in self.stdout()

    def finish(self, timeout=30):
        end = time.time() + timeout
        while self.proc.poll() is None and time.time() < end:
            self.pump(0.2)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        while self.fds and self.pump(1):
            pass
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode

    def stdout(self):
        return self.data["out"].decode(errors="replace")

    def stderr(self):
        return self.data["err"].decode(errors="replace")


def creds(d):
    cp = configparser.ConfigParser()
    cp.read(os.path.join(d, "admin-credentials"))
    return cp["iotprov"]["aws_access_key_id"], cp["iotprov"]["aws_secret_access_key"]


def boto(d, url):
    key_id, secret = creds(d)
    s = botocore.session.get_session()
    return s.create_client("iot", region_name="us-east-1", endpoint_url=url,
                           verify=os.path.join(d, "ca-bundle.pem"), aws_access_key_id=key_id,
                           aws_secret_access_key=secret,
                           config=Config(retries={"max_attempts": 1}))


def der_sha256(pem_path):
    der = subprocess.run(["openssl", "x509", "-in", pem_path, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def test_printed_examples(up, d, url):
    """Paste the printed lines exactly, with each aws CLI."""
    text = up.stdout()
    create = [l.strip() for l in text.splitlines() if " iot create-thing " in l]
    describe = [l.strip() for l in text.splitlines() if " iot describe-thing " in l]
    check(len(create) == 1 and len(describe) == 1, "up prints a create-thing and a "
          "describe-thing example", text)
    if not create or not describe:
        return
    expect = ("AWS_SHARED_CREDENTIALS_FILE=%s AWS_CA_BUNDLE=%s aws --profile iotprov "
              "--region us-east-1 --endpoint-url %s iot create-thing --thing-name my-first-thing"
              % (os.path.join(d, "admin-credentials"), os.path.join(d, "ca-bundle.pem"), url))
    check(create[0] == expect, "the example has absolute paths, the profile, region and "
          "endpoint", create[0])
    check(os.path.join(d, "ca-bundle.pem") in text and url in text,
          "up prints the API endpoint and the CA bundle path")
    check(len(AWS_CLIS) > 0, "an aws CLI is installed", "none of /usr/bin/aws, pyenv aws")
    client = boto(d, url)
    for aws in AWS_CLIS:
        env = dict(os.environ)
        env["PATH"] = os.path.dirname(aws) + ":" + env.get("PATH", "")
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
                    "AWS_DEFAULT_PROFILE", "AWS_CA_BUNDLE", "AWS_SHARED_CREDENTIALS_FILE"):
            env.pop(var, None)
        env["AWS_PAGER"] = ""
        r = subprocess.run(["bash", "-c", create[0]], capture_output=True, text=True,
                           timeout=120, env=env)
        out = json.loads(r.stdout) if r.returncode == 0 else {}
        check(r.returncode == 0 and out.get("thingName") == "my-first-thing" and
              out.get("thingArn", "").endswith(":thing/my-first-thing"),
              "%s: the printed create-thing works as pasted" % aws, r.stdout + r.stderr)
        r = subprocess.run(["bash", "-c", describe[0]], capture_output=True, text=True,
                           timeout=120, env=env)
        out = json.loads(r.stdout) if r.returncode == 0 else {}
        check(r.returncode == 0 and out.get("thingName") == "my-first-thing" and
              out.get("version") == 1, "%s: the printed describe-thing shows the thing" % aws,
              r.stdout + r.stderr)
        r = run(["things", "ls", "--json", "--data-dir", d, "--endpoint-url", url])
        names = [t["thingName"] for t in json.loads(r.stdout)["things"]] \
            if r.returncode == 0 else []
        check(names == ["my-first-thing"], "iotprov things ls --json sees the thing",
              r.stdout + r.stderr)
        r = run(["things", "ls", "--data-dir", d, "--endpoint-url", url])
        check(r.returncode == 0 and r.stdout.split("\n")[0].split() ==
              ["NAME", "TYPE", "VERSION", "ATTRIBUTES"] and
              r.stdout.split("\n")[1].split()[0] == "my-first-thing",
              "iotprov things ls prints a table with the thing", r.stdout + r.stderr)
        # Start the next CLI from the same state.
        client.delete_thing(thingName="my-first-thing")


def test_lists(d, url):
    client = boto(d, url)
    for i in range(PAGED_THINGS):
        client.create_thing(thingName="pump-%03d" % i,
                            attributePayload={"attributes": {"line": "a" if i % 2 else "b"}})
    r = run(["things", "ls", "--json", "--data-dir", d, "--endpoint-url", url])
    names = [t["thingName"] for t in json.loads(r.stdout)["things"]] if r.returncode == 0 else []
    check(sorted(names) == ["pump-%03d" % i for i in range(PAGED_THINGS)],
          "things ls follows every page: %d things, each once" % PAGED_THINGS,
          "%d names, %d distinct" % (len(names), len(set(names))))
    r = run(["things", "ls", "--data-dir", d, "--endpoint-url", url, "--attribute", "line=a"])
    rows = r.stdout.strip().split("\n")[1:] if r.returncode == 0 else []
    check(len(rows) == PAGED_THINGS // 2 and all("line=a" in l for l in rows),
          "things ls --attribute filters on the server", r.stderr)
    starts = {tuple(m.start() for m in re.finditer(r"(?<=  )\S", l))
              for l in r.stdout.split("\n") if l}
    check(len(starts) == 1 and len(next(iter(starts))) == 3,
          "table columns are aligned (every column starts at the same place on every line)",
          repr(starts))

    made = client.create_keys_and_certificate(setAsActive=True)
    r = run(["certs", "ls", "--json", "--data-dir", d, "--endpoint-url", url])
    certs = json.loads(r.stdout)["certificates"] if r.returncode == 0 else []
    check([c["certificateId"] for c in certs] == [made["certificateId"]] and
          certs[0]["status"] == "ACTIVE", "certs ls --json lists the new certificate",
          r.stdout + r.stderr)
    r = run(["certs", "ls", "--data-dir", d, "--endpoint-url", url])
    check(r.returncode == 0 and made["certificateId"] in r.stdout and "ACTIVE" in r.stdout,
          "certs ls prints it in a table", r.stdout + r.stderr)

    r = run(["cas", "ls", "--json", "--data-dir", d, "--endpoint-url", url])
    ids = {c["certificateId"] for c in json.loads(r.stdout)["certificates"]} \
        if r.returncode == 0 else set()
    check(ids == {der_sha256(os.path.join(d, "root-ca.crt")),
                  der_sha256(os.path.join(d, "issuing-ca.crt"))},
          "cas ls --json lists iotprov's root and issuing CA by their ids", r.stdout + r.stderr)
    return made["certificateId"]


def test_audit(d, url, cert_id):
    r = run(["audit", "tail", "-n", "3", "--json", "--data-dir", d, "--endpoint-url", url])
    events = [json.loads(l) for l in r.stdout.splitlines()] if r.returncode == 0 else []
    check(len(events) == 3 and events[-1].get("action") == "cert.create" and
          cert_id in events[-1].get("object", "") and
          [e["id"] for e in events] == sorted(e["id"] for e in events),
          "audit tail -n 3 --json gives the last three events, newest last",
          r.stdout + r.stderr)
    r = run(["audit", "tail", "--data-dir", d, "--endpoint-url", url, "-n", "1000"])
    lines = r.stdout.strip().split("\n") if r.returncode == 0 else []
    check(len(lines) > PAGED_THINGS and lines[0].split()[:4] == ["ID", "TIME", "ACTOR", "ACTION"]
          and "cacert.create" in lines[1], "audit tail -n 1000 shows the whole log from init",
          "%d lines" % len(lines))

    follow = subprocess.Popen([IOTPROV, "audit", "tail", "-n", "0", "--follow", "--json",
                               "--data-dir", d, "--endpoint-url", url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    boto(d, url).create_thing(thingName="followed-thing")
    seen = False
    end = time.time() + 15
    while time.time() < end and not seen:
        rr, _, _ = select.select([follow.stdout], [], [], 1)
        if rr:
            line = follow.stdout.readline()
            seen = "followed-thing" in line and "thing.create" in line
    check(seen, "audit tail --follow prints a new event as it happens")
    follow.send_signal(signal.SIGINT)
    try:
        rc = follow.wait(10)
    except subprocess.TimeoutExpired:
        follow.kill()
        rc = None
    follow.communicate()
    check(rc == 0, "audit tail --follow stops with status 0 on Ctrl-C", repr(rc))


def test_client_errors(d, url):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIAAAAAAAAAAAAAAAAA",
               AWS_SECRET_ACCESS_KEY="x" * 40, AWS_CA_BUNDLE=os.path.join(d, "ca-bundle.pem"))
    r = run(["things", "ls", "--endpoint-url", url], env=env)
    check(r.returncode == 1 and "refused the credentials" in r.stderr,
          "an unknown key is a clear failure", r.stderr)
    key_id, secret = creds(d)
    env.update(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    r = run(["things", "ls", "--endpoint-url", url, "--json"], env=env)
    check(r.returncode == 0 and "things" in json.loads(r.stdout or "{}"),
          "--endpoint-url with AWS_* variables works")
    env.pop("AWS_CA_BUNDLE")
    r = run(["things", "ls", "--endpoint-url", url], env=env)
    check(r.returncode == 1 and "does not verify" in r.stderr,
          "a server certificate that does not verify is a clear failure", r.stderr)
    env.pop("AWS_SECRET_ACCESS_KEY")
    r = run(["things", "ls", "--endpoint-url", url], env=env)
    check(r.returncode == 1 and "AWS_SECRET_ACCESS_KEY" in r.stderr,
          "missing credentials say which variables to set", r.stderr)
    r = run(["things", "ls", "--data-dir", d, "--endpoint-url",
             "https://127.0.0.1:%d" % free_port()])
    check(r.returncode == 1 and "Is `iotprov up` running?" in r.stderr,
          "nothing listening is a clear failure", r.stderr)
    # An operator key may list things but not read the audit log.
    r = run(["key", "create", "--data-dir", d, "--role", "operator"])
    op = dict(l.split("=", 1) for l in r.stdout.split())
    env = dict(os.environ, AWS_CA_BUNDLE=os.path.join(d, "ca-bundle.pem"), **op)
    r = run(["audit", "tail", "--endpoint-url", url], env=env)
    check(r.returncode == 1 and "denied" in r.stderr,
          "audit tail with an operator key is refused with a message", r.stderr)


def test_port_taken(d, port, with_broker):
    # Taken by the running iotprov up.
    t0 = time.time()
    second = Up(["--data-dir", d, "--api-listen", "127.0.0.1:%d" % port,
                 "--mqtt-listen", "127.0.0.1:%d" % free_port()])
    rc = second.finish(60)
    check(rc == 1 and "already in use" in second.stderr() and "--api-listen" in
          second.stderr(), "up on a taken port exits 1 with a message", second.stderr())
    check(children_of(second.proc.pid) == [] and time.time() - t0 < 30,
          "up on a taken port starts nothing")
    # Taken by another program, API then MQTT.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    other = s.getsockname()[1]
    third = Up(["--data-dir", d, "--api-listen", "127.0.0.1:%d" % other,
                "--mqtt-listen", "127.0.0.1:%d" % free_port()])
    rc = third.finish(60)
    check(rc == 1 and "127.0.0.1:%d is already in use" % other in third.stderr(),
          "up on an API port another program holds exits 1 naming the address",
          third.stderr())
    if with_broker:
        fourth = Up(["--data-dir", d, "--api-listen", "127.0.0.1:%d" % free_port(),
                     "--mqtt-listen", "127.0.0.1:%d" % other])
        rc = fourth.finish(60)
        check(rc == 1 and "127.0.0.1:%d is already in use" % other in fourth.stderr() and
              "--mqtt-listen" in fourth.stderr() and children_of(fourth.proc.pid) == [],
              "up on a taken MQTT port exits 1 naming it, nothing started", fourth.stderr())
    s.close()


def start_up(d):
    up = Up(["--data-dir", d, "--api-listen", "127.0.0.1:%d" % free_port(),
             "--mqtt-listen", "127.0.0.1:%d" % free_port()])
    ready = up.wait_for("Stop with Ctrl-C")
    kids = children_of(up.proc.pid)
    return up, ready, kids


def stop_with(sig, d):
    up, ready, kids = start_up(d)
    names = [os.path.basename(cmdline(k)) for k in kids]
    check(ready and "iotprovd" in names and all(alive(k) for k in kids),
          "up runs its services (%s) as its children" % ", ".join(names), up.stderr())
    up.proc.send_signal(sig)
    rc = up.finish(30)
    check(rc == 0, "up exits 0 after %s" % signal.Signals(sig).name, up.stderr())
    check(kids and not any(alive(k) for k in kids),
          "after %s no child is left (PIDs %s)" % (signal.Signals(sig).name, kids))
    check("stopped" in up.stdout(), "up says it stopped")


def test_child_dies(d):
    up, ready, kids = start_up(d)
    victim = [k for k in kids if os.path.basename(cmdline(k)) == "iotprovd"]
    if victim:
        os.kill(victim[0], signal.SIGKILL)
    rc = up.finish(30)
    check(rc == 1 and "iotprovd (pid %d) was killed by signal 9" % (victim or [0])[0] in
          up.stderr(), "up fails with a message when a service dies", up.stderr())
    check(kids and not any(alive(k) for k in kids),
          "after a service died, up left no child behind (PIDs %s)" % kids)


def main():
    if not os.access(IOTPROV, os.X_OK):
        print("iotprov not built at " + IOTPROV)
        return 1
    with tempfile.TemporaryDirectory(prefix="e2e-cli-up-") as tmp:
        d = os.path.join(tmp, "data")
        r = run(["init", "--data-dir", d])
        if r.returncode != 0:
            print("init failed: " + r.stderr)
            return 1
        r = run(["up", "--data-dir", os.path.join(tmp, "nothing-here")])
        check(r.returncode == 1 and "iotprov init" in r.stderr,
              "up on a missing data directory says to run iotprov init", r.stderr)
        r = run(["up", "--data-dir", d, "--api-listen", "nowhere"])
        check(r.returncode == 2 and "--api-listen" in r.stderr, "up --api-listen nowhere is "
              "bad usage", r.stderr)

        port, mqtt = free_port(), free_port()
        url = "https://127.0.0.1:%d" % port
        up = Up(["--data-dir", d, "--api-listen", "127.0.0.1:%d" % port,
                 "--mqtt-listen", "127.0.0.1:%d" % mqtt])
        try:
            ready = up.wait_for("Stop with Ctrl-C")
            check(ready, "up becomes ready and prints its banner", up.stdout() + up.stderr())
            with_broker = any(os.path.basename(cmdline(k)) == "mosquitto"
                              for k in children_of(up.proc.pid))
            if ready:
                test_printed_examples(up, d, url)
                cert_id = test_lists(d, url)
                test_audit(d, url, cert_id)
                test_client_errors(d, url)
                test_port_taken(d, port, with_broker)
        finally:
            kids = children_of(up.proc.pid)
            up.proc.send_signal(signal.SIGTERM)
            rc = up.finish(30)
        check(rc == 0 and not any(alive(k) for k in kids),
              "the first up stops cleanly on SIGTERM", up.stderr()[-2000:])
        stop_with(signal.SIGTERM, d)
        stop_with(signal.SIGINT, d)
        test_child_dies(d)
    if failures:
        print("%d check(s) failed:\n  %s" % (len(failures), "\n  ".join(failures)))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
