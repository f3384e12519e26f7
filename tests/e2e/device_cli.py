#!/usr/bin/env python3
"""iotprov-device's command-line contract, without a service: every command
answers --help with exit 0, bad usage with exit 2 and a hint, failures with
exit 1 and a message (a JSON object with --json); keygen makes a 0600 key and
refuses to replace it; a key readable by others is refused with the fix; csr
prints a request signed by the device key (checked with openssl); status
reports the factory state; a second agent on the same state dir is refused;
provision and connect without an endpoint say what is missing; simulate
checks its required options.
"""
import json
import os
import stat
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import device_e2e as e  # noqa: E402

COMMANDS = ["keygen", "csr", "provision", "status", "connect", "rotate", "reset", "simulate"]


def helps(tmp):
    r = e.run([e.DEVICE, "--help"])
    e.check(r.returncode == 0 and all(c in r.stdout for c in COMMANDS), "iotprov-device --help")
    r = e.run([e.DEVICE])
    e.check(r.returncode == 2, "no command: exit 2")
    r = e.run([e.DEVICE, "frobnicate"])
    e.check(r.returncode == 2 and "unknown command" in r.stderr, "unknown command: exit 2")
    for c in COMMANDS:
        r = e.run([e.DEVICE, c, "--help"])
        e.check(r.returncode == 0 and "usage: iotprov-device " + c in r.stdout,
                "%s --help: exit 0 with usage" % c, r.stdout + r.stderr)
        r = e.run([e.DEVICE, c, "--no-such-option"])
        e.check(r.returncode == 2 and "--help" in r.stderr, "%s bad option: exit 2" % c,
                r.stderr)


def keys_and_csr(tmp):
    st = os.path.join(tmp, "state")
    r = e.device(st, "keygen", "--json")
    e.check(r.returncode == 0, "keygen: exit 0", r.stderr)
    info = json.loads(r.stdout)
    e.check(info["key"]["backend"] == "file" and info["key"]["type"] == "ec-p256",
            "keygen --json: a file P-256 key", r.stdout)
    key = os.path.join(st, "factory.key")
    e.check(stat.S_IMODE(os.stat(key).st_mode) == 0o600, "factory.key is 0600")
    e.check(stat.S_IMODE(os.stat(st).st_mode) == 0o700, "state dir is 0700")
    before = open(key).read()
    r = e.device(st, "keygen")
    e.check(r.returncode == 1 and "already" in r.stderr, "second keygen refused, exit 1",
            r.stderr)
    e.check(open(key).read() == before, "the factory key was not replaced")
    r = e.device(st, "keygen", "--type", "dsa-512")
    e.check(r.returncode == 2, "unknown key type: exit 2")
    r = e.device(st, "csr", "--cn", "dev-42", "--serial", "SN42", "--org", "Acme")
    e.check(r.returncode == 0 and "BEGIN CERTIFICATE REQUEST" in r.stdout, "csr prints a CSR")
    csr = os.path.join(tmp, "d.csr")
    with open(csr, "w") as f:
        f.write(r.stdout)
    v = e.run(["openssl", "req", "-in", csr, "-verify", "-noout", "-subject"])
    e.check(v.returncode == 0 and "CN = dev-42" in v.stdout and "serialNumber = SN42" in v.stdout,
            "openssl verifies the CSR and sees its subject", v.stdout + v.stderr)
    pub = e.run(["openssl", "req", "-in", csr, "-noout", "-pubkey"]).stdout
    pub2 = e.run(["openssl", "pkey", "-in", key, "-pubout"]).stdout
    e.check(pub == pub2, "the CSR carries the factory key")
    r = e.device(st, "csr")
    e.check(r.returncode == 2 and "--cn" in r.stderr, "csr without --cn: exit 2")
    os.chmod(key, 0o644)
    r = e.device(st, "csr", "--cn", "x")
    e.check(r.returncode == 1 and "chmod 600" in r.stderr,
            "a world-readable key is refused with the fix", r.stderr)
    os.chmod(key, 0o600)
    r = e.device(st, "status", "--json")
    s = json.loads(r.stdout)
    e.check(r.returncode == 0 and s["provisioned"] is False and s["key"]["extractable"] is True,
            "status --json: factory state", r.stdout)
    r = e.device(st, "status")
    e.check(r.returncode == 0 and "factory" in r.stdout, "status text: factory", r.stdout)


def failures_explained(tmp):
    st = os.path.join(tmp, "state2")
    r = e.device(st, "provision")
    e.check(r.returncode == 2 and "--method" in r.stderr, "provision without --method: exit 2")
    r = e.device(st, "provision", "--method", "carrier-pigeon")
    e.check(r.returncode == 2, "unknown method: exit 2")
    r = e.device(st, "provision", "--method", "claim")
    e.check(r.returncode == 1 and "--endpoint" in r.stderr, "no endpoint: exit 1, says which option",
            r.stderr)
    r = e.device(st, "provision", "--method", "claim", "--json")
    o = json.loads(r.stdout)
    e.check(r.returncode == 1 and o["ok"] is False and "endpoint" in o["error"],
            "--json failure is a JSON object", r.stdout)
    r = e.device(st, "connect")
    e.check(r.returncode == 1, "connect before provisioning: exit 1", r.stderr)
    r = e.device(st, "rotate", "--endpoint", "127.0.0.1:1", "--ca", os.devnull)
    e.check(r.returncode == 1 and "not provisioned" in r.stderr, "rotate unprovisioned: exit 1",
            r.stderr)
    r = e.device(st, "provision", "--method", "claim", "--claim-cert", "x")
    e.check(r.returncode == 2, "--claim-cert without --claim-key: exit 2")
    r = e.device(st, "connect", "--retries", "lots")
    e.check(r.returncode == 2, "bad --retries: exit 2")
    r = e.device(st, "reset")
    e.check(r.returncode == 0, "reset of a factory-fresh device: exit 0", r.stderr)
    r = e.run([e.DEVICE, "simulate", "--devices", "3"])
    e.check(r.returncode == 2 and "required" in r.stderr, "simulate without endpoint: exit 2")
    r = e.run([e.DEVICE, "simulate", "--devices", "0", "--endpoint", "x:1"])
    e.check(r.returncode == 2, "simulate --devices 0: exit 2")


def one_agent_at_a_time(tmp):
    st = os.path.join(tmp, "state3")
    e.device(st, "keygen")
    # Hold the lock from this process with flock, as a running agent would.
    import fcntl
    fd = os.open(os.path.join(st, ".lock"), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    r = e.device(st, "status")
    e.check(r.returncode == 1 and "in use" in r.stderr, "a second agent is refused", r.stderr)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    r = e.device(st, "status")
    e.check(r.returncode == 0, "and allowed once the first is gone")


def main():
    if not os.access(e.DEVICE, os.X_OK):
        print("iotprov-device not built at " + e.DEVICE)
        return 1
    tmp = e.tmpdir("device-cli")
    for part in (helps, keys_and_csr, failures_explained, one_agent_at_a_time):
        e.section(part, tmp)
    e.cleanup(tmp)
    return e.summary()


if __name__ == "__main__":
    sys.exit(main())
