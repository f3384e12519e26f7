#!/usr/bin/env python3
"""`iotprov init` and `iotprov key` end to end, in temporary directories,
checked the way an operator would check them: the data directory is 0700
with private keys and credentials 0600, its certificates verify with the
openssl command line, the registry records both CAs under their real ids,
the admin credentials file is one the aws CLI reads; a second init changes
nothing and says so; an init that fails half-way (the disk fills up) leaves
nothing behind; access keys are created (secret shown once), listed without
secrets and disabled; every mistake is a clear message with exit status 1
(failure) or 2 (bad usage).
"""
import configparser
import hashlib
import json
import os
import re
import resource
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile

SRC = os.environ.get("IOTP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("IOTP_BUILD_DIR", os.path.join(SRC, "build"))
IOTPROV = os.path.join(BUILD, "iotprov")

failures = []


def check(cond, what, detail=""):
    print(("ok   " if cond else "FAIL ") + what + ("" if cond or not detail else ": " + detail),
          flush=True)
    if not cond:
        failures.append(what)


def run(args, **kw):
    return subprocess.run([IOTPROV] + args, capture_output=True, text=True, timeout=120, **kw)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def der_sha256(pem_path):
    der = subprocess.run(["openssl", "x509", "-in", pem_path, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def snapshot(d):
    """Every file under d with its content hash, mode and mtime."""
    out = {}
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            h = ""
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, d)] = (h, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def leftovers(parent, base):
    return [n for n in os.listdir(parent) if n.startswith("." + base + ".tmp-")]


def test_usage(tmp):
    r = run(["--help"])
    check(r.returncode == 0 and "init" in r.stdout and "things ls" in r.stdout,
          "iotprov --help lists the commands")
    r = run(["frobnicate"])
    check(r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr,
          "an unknown command is bad usage (2)", r.stderr)
    r = run(["key"])
    check(r.returncode == 2 and "missing subcommand" in r.stderr and "key create" in r.stderr,
          "`iotprov key` alone says a subcommand is missing and lists them", r.stderr)
    for cmd in (["init"], ["up"], ["key", "create"], ["key", "list"], ["key", "disable"],
                ["things", "ls"], ["certs", "ls"], ["cas", "ls"], ["audit", "tail"]):
        r = run(cmd + ["--help"])
        check(r.returncode == 0 and r.stdout.startswith("usage: iotprov " + " ".join(cmd)),
              "iotprov %s --help" % " ".join(cmd), r.stdout[:80])
    r = run(["init", "--data-dir", os.path.join(tmp, "x"), "--frob"])
    check(r.returncode == 2 and "unknown option --frob" in r.stderr,
          "an unknown option is bad usage naming it", r.stderr)
    check(not os.path.exists(os.path.join(tmp, "x")), "bad usage creates nothing")
    r = run(["init", "--data-dir"])
    check(r.returncode == 2 and "--data-dir needs a value" in r.stderr,
          "a missing option value is bad usage", r.stderr)


def test_init(tmp):
    d = os.path.join(tmp, "data")
    r = run(["init", "--data-dir", d])
    check(r.returncode == 0, "init exits 0", r.stderr)
    check("created " + os.path.realpath(d) in r.stdout and "iotprov up --data-dir" in r.stdout,
          "init says what it created and what to run next", r.stdout)
    check(mode(d) == 0o700, "data directory is mode 0700", oct(mode(d)))
    for name in ("iotprov.conf", "ca-bundle.pem", "admin-credentials", "root-ca.crt",
                 "root-ca.key", "issuing-ca.crt", "issuing-ca.key", "server.crt", "server.key",
                 "iotprov.db"):
        check(os.path.isfile(os.path.join(d, name)), "init created " + name)
    check(os.path.isdir(os.path.join(d, "import")), "init created import/")
    for name in ("root-ca.key", "issuing-ca.key", "server.key", "admin-credentials",
                 "iotprov.db"):
        check(mode(os.path.join(d, name)) == 0o600, name + " is mode 0600",
              oct(mode(os.path.join(d, name))))
    check(leftovers(tmp, "data") == [], "no temporary directory is left next to it")

    # The PKI, checked with openssl.
    def ossl(*args):
        return subprocess.run(["openssl"] + list(args), capture_output=True, text=True, cwd=d)

    v = ossl("verify", "-CAfile", "ca-bundle.pem", "-untrusted", "issuing-ca.crt",
             "-purpose", "sslserver", "server.crt")
    check(v.returncode == 0 and "server.crt: OK" in v.stdout,
          "server.crt verifies for TLS server use against ca-bundle.pem", v.stdout + v.stderr)
    # server.crt carries its chain: the issuing CA follows the server certificate.
    with open(os.path.join(d, "server.crt")) as f:
        chain = f.read()
    with open(os.path.join(d, "issuing-ca.crt")) as f:
        issuing = f.read()
    check(chain.count("BEGIN CERTIFICATE") == 2 and chain.endswith(issuing),
          "server.crt is the server certificate followed by the issuing CA")
    san = ossl("x509", "-in", "server.crt", "-noout", "-ext", "subjectAltName").stdout
    check("DNS:localhost" in san and "IP Address:127.0.0.1" in san and
          "IP Address:0:0:0:0:0:0:0:1" in san, "server certificate names localhost, 127.0.0.1, ::1",
          san)
    key = ossl("pkey", "-in", "server.key", "-noout", "-text").stdout
    check("prime256v1" in key or "P-256" in key, "server key is ECDSA P-256 (the default)")
    v = ossl("verify", "-CAfile", "root-ca.crt", "issuing-ca.crt")
    check(v.returncode == 0, "the issuing CA chains to the root", v.stderr)
    with open(os.path.join(d, "ca-bundle.pem")) as f, \
            open(os.path.join(d, "root-ca.crt")) as g:
        check(f.read() == g.read(), "ca-bundle.pem is the root CA")

    # The configuration: every option there, commented, nothing active.
    with open(os.path.join(d, "iotprov.conf")) as f:
        conf = f.read()
    active = [l for l in conf.splitlines() if l.strip() and l.strip()[0] not in "#;["]
    check(active == [], "iotprov.conf has no active line (defaults only)", repr(active[:3]))
    for opt in (";listen = 127.0.0.1:8443", ";url = sqlite:iotprov.db", ";key_type = ec-p256",
                ";region = us-east-1"):
        check(opt in conf, "iotprov.conf shows " + opt)

    # The credentials file, read as the aws CLI reads it.
    cp = configparser.ConfigParser()
    cp.read(os.path.join(d, "admin-credentials"))
    prof = cp["iotprov"] if cp.has_section("iotprov") else {}
    key_id = prof.get("aws_access_key_id", "")
    secret = prof.get("aws_secret_access_key", "")
    check(re.fullmatch(r"AKIA[A-Z2-7]{16}", key_id) is not None, "admin key id looks like AKIA...",
          key_id)
    check(len(secret) == 40, "admin secret is 40 characters")
    check(prof.get("region") == "us-east-1", "credentials profile carries the region")
    check(secret not in r.stdout and secret not in r.stderr, "init does not print the secret")

    # The registry: both CAs under their real ids, the admin key.
    db = sqlite3.connect(os.path.join(d, "iotprov.db"))
    cas = dict(db.execute("SELECT origin, id FROM cas").fetchall())
    check(cas.get("ROOT") == der_sha256(os.path.join(d, "root-ca.crt")),
          "store records the root CA (origin ROOT) under the SHA-256 of its DER")
    check(cas.get("ISSUING") == der_sha256(os.path.join(d, "issuing-ca.crt")),
          "store records the issuing CA (origin ISSUING) under the SHA-256 of its DER")
    rows = db.execute("SELECT role, status FROM access_keys WHERE id = ?", (key_id,)).fetchall()
    check(rows == [("admin", "ACTIVE")], "store holds the admin key, active", repr(rows))
    db.close()
    return d


def test_init_again(tmp, d):
    before = snapshot(d)
    r = run(["init", "--data-dir", d])
    check(r.returncode == 0, "second init exits 0", r.stderr)
    check("already" in r.stdout and "nothing was changed" in r.stdout,
          "second init says the directory exists and nothing changed", r.stdout)
    check(snapshot(d) == before, "second init changed no file (content, mode, time)")
    r = run(["init", "--data-dir", d, "--key-type", "rsa-2048"])
    check(r.returncode == 0 and snapshot(d) == before,
          "init with other options does not touch an existing data directory either")


def test_init_refusals(tmp):
    # A directory with something else in it.
    other = os.path.join(tmp, "other")
    os.makedirs(other)
    with open(os.path.join(other, "notes.txt"), "w") as f:
        f.write("mine\n")
    before = snapshot(other)
    r = run(["init", "--data-dir", other])
    check(r.returncode == 1 and "not empty" in r.stderr and "not an iotprov data directory" in
          r.stderr, "init refuses a non-empty foreign directory", r.stderr)
    check(snapshot(other) == before, "the foreign directory is untouched")

    # An empty existing directory is filled.
    empty = os.path.join(tmp, "empty")
    os.makedirs(empty, mode=0o755)
    r = run(["init", "--data-dir", empty])
    check(r.returncode == 0 and os.path.isfile(os.path.join(empty, "iotprov.conf")) and
          mode(empty) == 0o700, "init fills an empty directory and makes it 0700", r.stderr)

    # A file in the way, a missing parent.
    path = os.path.join(tmp, "afile")
    open(path, "w").close()
    r = run(["init", "--data-dir", path])
    check(r.returncode == 1 and "not a directory" in r.stderr, "init refuses a file", r.stderr)
    r = run(["init", "--data-dir", os.path.join(tmp, "no", "such", "parent")])
    check(r.returncode == 1 and "does not exist" in r.stderr,
          "init names a missing parent directory", r.stderr)

    # Bad options: usage errors, nothing left behind.
    for args, what in ((["--key-type", "dsa"], "--key-type"),
                       (["--server-names", "bad name!"], "--server-names")):
        d = os.path.join(tmp, "bad")
        r = run(["init", "--data-dir", d] + args)
        check(r.returncode == 2 and what in r.stderr, "init %s is bad usage" % " ".join(args),
              r.stderr)
        check(not os.path.exists(d) and leftovers(tmp, "bad") == [],
              "init %s leaves nothing behind" % " ".join(args))

    # Other key types and extra server names.
    d = os.path.join(tmp, "rsa")
    r = run(["init", "--data-dir", d, "--key-type", "rsa-2048", "--server-names",
             "iot.example.com,10.1.2.3"])
    check(r.returncode == 0, "init --key-type rsa-2048 --server-names ...", r.stderr)
    if r.returncode == 0:
        txt = subprocess.run(["openssl", "x509", "-in", os.path.join(d, "server.crt"), "-noout",
                              "-text"], capture_output=True, text=True).stdout
        check("rsaEncryption" in txt and "DNS:iot.example.com" in txt and
              "IP Address:10.1.2.3" in txt and "DNS:localhost" in txt,
              "the server certificate is RSA with the extra names and the defaults")
        with open(os.path.join(d, "iotprov.conf")) as f:
            conf = f.read()
        check("\nkey_type = rsa-2048\n" in conf and
              "\nserver_names = localhost,127.0.0.1,::1,iot.example.com,10.1.2.3\n" in conf,
              "iotprov.conf records the chosen key type and names as active lines")

    # A failure half-way (the disk fills up while the registry is written):
    # no data directory, no temporary directory.
    d = os.path.join(tmp, "full")

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    r = subprocess.run([IOTPROV, "init", "--data-dir", d], capture_output=True, text=True,
                       timeout=120, preexec_fn=small_disk)
    check(r.returncode == 1 and "cannot create" in r.stderr and "nothing was left behind" in
          r.stderr, "init that fails half-way exits 1 and says so", r.stderr)
    check(not os.path.exists(d) and leftovers(tmp, "full") == [],
          "init that fails half-way leaves no directory behind", repr(os.listdir(tmp)))


def test_keys(tmp, d):
    r = run(["key", "create", "--data-dir", d, "--role", "operator", "--description", "ci"])
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and len(lines) == 2 and
          re.fullmatch(r"AWS_ACCESS_KEY_ID=AKIA[A-Z2-7]{16}", lines[0]) is not None and
          re.fullmatch(r"AWS_SECRET_ACCESS_KEY=\S{40}", lines[1]) is not None,
          "key create prints AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY lines", r.stdout)
    check("only this once" in r.stderr, "key create says the secret is shown once", r.stderr)
    op_id = lines[0].split("=", 1)[1] if r.returncode == 0 else ""
    op_secret = lines[1].split("=", 1)[1] if r.returncode == 0 else "-"

    r = run(["key", "create", "--data-dir", d, "--role", "installer", "--templates",
             "line-a,line-b", "--format", "json"])
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    check(j.get("role") == "installer" and j.get("templates") == "line-a,line-b" and
          len(j.get("secretAccessKey", "")) == 40 and j.get("accessKeyId", "").startswith("AKIA"),
          "key create --format json gives id, secret, role and templates", r.stdout + r.stderr)
    inst_secret = j.get("secretAccessKey", "-")

    for args, what in ((["--role", "installer"], "installer without --templates"),
                       (["--role", "boss"], "an unknown role"),
                       (["--role", "admin", "--templates", "x"], "--templates on an admin key"),
                       (["--role", "admin", "--format", "yaml"], "an unknown --format"),
                       ([], "no --role")):
        r = run(["key", "create", "--data-dir", d] + args)
        check(r.returncode == 2 and r.stderr.startswith("iotprov key create: "),
              "key create with %s is bad usage" % what, r.stderr)

    r = run(["key", "list", "--data-dir", d, "--json"])
    keys = {k["accessKeyId"]: k for k in json.loads(r.stdout)["accessKeys"]} \
        if r.returncode == 0 else {}
    check(len(keys) == 3 and keys.get(op_id, {}).get("role") == "operator" and
          keys[op_id].get("status") == "ACTIVE" and keys[op_id].get("description") == "ci",
          "key list --json shows the three keys with roles and status", r.stdout)
    check(op_secret not in r.stdout and inst_secret not in r.stdout and
          "secret" not in r.stdout.lower(), "key list shows no secret")
    r = run(["key", "list", "--data-dir", d])
    check(r.returncode == 0 and r.stdout.startswith("ID ") and "ROLE" in r.stdout and
          op_id in r.stdout and "installer" in r.stdout and "line-a,line-b" in r.stdout,
          "key list prints a table", r.stdout)

    r = run(["key", "disable", op_id, "--data-dir", d])
    check(r.returncode == 0 and op_id in r.stdout, "key disable exits 0", r.stderr)
    r = run(["key", "list", "--data-dir", d, "--json"])
    st = {k["accessKeyId"]: k["status"] for k in json.loads(r.stdout)["accessKeys"]}
    check(st.get(op_id) == "DISABLED" and list(st.values()).count("ACTIVE") == 2,
          "the disabled key is listed DISABLED, the others stay active", repr(st))
    r = run(["key", "disable", "AKIAAAAAAAAAAAAAAAAA", "--data-dir", d])
    check(r.returncode == 1 and "no access key AKIAAAAAAAAAAAAAAAAA" in r.stderr,
          "disabling an unknown key is a failure that names it", r.stderr)
    r = run(["key", "disable", "not-a-key", "--data-dir", d])
    check(r.returncode == 2 and "not an access key id" in r.stderr,
          "disabling a malformed id is bad usage", r.stderr)
    r = run(["key", "disable", "--data-dir", d])
    check(r.returncode == 2 and "missing argument" in r.stderr,
          "key disable without an id is bad usage", r.stderr)


def test_not_a_data_dir(tmp, d):
    r = run(["key", "list", "--data-dir", os.path.join(tmp, "nowhere")])
    check(r.returncode == 1 and "iotprov init" in r.stderr,
          "a command on a missing data directory says to run iotprov init", r.stderr)
    r = run(["things", "ls", "--data-dir", tmp])
    check(r.returncode == 1 and "not an iotprov data directory" in r.stderr,
          "an API verb on a directory without iotprov.conf says what is wrong", r.stderr)
    # A mistake in iotprov.conf: named with file, line and option.
    conf = os.path.join(d, "iotprov.conf")
    with open(conf) as f:
        text = f.read()
    nlines = text.count("\n")
    with open(conf, "a") as f:
        f.write("[api]\nmax_body = big\n")
    r = run(["key", "list", "--data-dir", d])
    want = "%s:%d: [api] max_body: 'big' is not a whole number" % (
        os.path.realpath(conf), nlines + 2)
    check(r.returncode == 1 and want in r.stderr, "a bad value in iotprov.conf is named with "
          "file:line and option", r.stderr)
    with open(conf, "w") as f:
        f.write(text)


def main():
    if not os.access(IOTPROV, os.X_OK):
        print("iotprov not built at " + IOTPROV)
        return 1
    with tempfile.TemporaryDirectory(prefix="e2e-cli-init-") as tmp:
        test_usage(tmp)
        d = test_init(tmp)
        test_init_again(tmp, d)
        test_init_refusals(tmp)
        test_keys(tmp, d)
        test_not_a_data_dir(tmp, d)
    if failures:
        print("%d check(s) failed:\n  %s" % (len(failures), "\n  ".join(failures)))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
