#!/usr/bin/env python3
"""The SQLite store on a full disk: iotprovd answers clear errors, keeps
serving reads, loses nothing it acknowledged, half-writes nothing, and takes
writes again by itself once space is back.

The data dir lives on a 2 MB tmpfs (mount -t tmpfs -o size=2m; the test runs
as root in CI). Where mounting is not permitted the test says so and limits
the file size instead: iotprovd runs with RLIMIT_FSIZE just above the
store's size and SIGXFSZ ignored, so a write past it fails with EFBIG as a
full disk fails with ENOSPC, and "freeing space" raises the limit (prlimit).

Steps: CreateThing with large attributes until the store refuses writes
(each refusal must be a 500/503 in the AWS shape, and the daemon must stay
up); reads still work; space comes back (the ballast file on the tmpfs is
removed); within a few seconds writes succeed again; every acknowledged
thing exists and no refused one does; SIGTERM exits 0; `iotprov check`
finds no problem.
"""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from api_e2e import (check, failures, healthy, key_create, make_data_dir,  # noqa: E402
                     section, signed_request, summary)
import reliab_e2e as rel  # noqa: E402

TMPFS_SIZE = "2m"
MAX_WRITES = 3000
VALUE = "v" * 700  # an attribute value (the registry allows 800 characters)


def try_mount(mnt):
    """Mounts a 2 MB tmpfs on mnt; False (with the reason printed) when the
    sandbox does not permit it, or when IOTP_TEST_NO_MOUNT is set (to test
    the fallback)."""
    if os.environ.get("IOTP_TEST_NO_MOUNT"):
        print("IOTP_TEST_NO_MOUNT set: not mounting")
        return False
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + TMPFS_SIZE, "tmpfs", mnt],
                           capture_output=True, text=True, timeout=30)
    except OSError as e:
        print("mount not available: %s" % e)
        return False
    if r.returncode != 0:
        print("mount -t tmpfs not permitted here: %s" % r.stderr.strip())
        return False
    return True


class Ctx:
    pass


def create(ctx, name):
    body = json.dumps({"attributePayload": {"attributes": {
        "a": VALUE, "b": VALUE, "c": name}}}).encode()
    return signed_request(ctx.daemon.port, ctx.ca, ctx.key, "POST", "/things/" + name, body,
                          headers={"content-type": "application/json"})


def describe(ctx, name):
    return signed_request(ctx.daemon.port, ctx.ca, ctx.key, "GET", "/things/" + name)


def fill(ctx):
    """Writes until the store refuses five in a row."""
    streak, n = 0, 0
    while streak < 5 and n < MAX_WRITES:
        name = "fill-%05d" % n
        n += 1
        st, hdrs, body = create(ctx, name)
        if st == 200:
            ctx.acked.append(name)
            streak = 0
            continue
        streak += 1
        etype = (hdrs.get("x-amzn-errortype") or "").rstrip(":")
        try:
            msg = json.loads(body).get("message", "")
        except ValueError:
            msg = ""
        ctx.refused.append(name)
        if len(ctx.refused) == 1:
            print("first refusal after %d writes: %d %s %r" % (len(ctx.acked), st, etype, msg))
        check(st in (500, 503) and etype in ("InternalFailureException",
                                             "ServiceUnavailableException") and msg,
              "%s refused with a clear 500/503 (%d %s %r)" % (name, st, etype, msg[:120]))
        check(ctx.daemon.alive(), "iotprovd still running after a refused write")
    check(len(ctx.acked) > 0, "some writes were acknowledged before the disk filled")
    check(streak >= 5, "the disk filled within %d writes (%d acknowledged)" %
          (MAX_WRITES, len(ctx.acked)))


def while_full(ctx):
    check(healthy(ctx.daemon.port, ctx.ca), "healthz answers while the disk is full")
    st, _, body = describe(ctx, ctx.acked[0])
    check(st == 200 and json.loads(body)["attributes"]["c"] == ctx.acked[0],
          "reads still work while the disk is full")


def free_space(ctx):
    if ctx.mounted:
        os.unlink(ctx.ballast)
    else:
        resource.prlimit(ctx.daemon.proc.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    # the server recovers by itself: no restart, a few seconds at most
    end = time.monotonic() + 10
    st = None
    while time.monotonic() < end:
        st, _, body = create(ctx, "after-free")
        if st == 200:
            break
        time.sleep(0.5)
    check(st == 200, "a write succeeds again once space is back (%s)" % st)
    if st == 200:
        ctx.acked.append("after-free")
    ok = 0
    for i in range(5):
        st, _, _ = create(ctx, "after-free-%d" % i)
        if st == 200:
            ctx.acked.append("after-free-%d" % i)
            ok += 1
        else:
            ctx.refused.append("after-free-%d" % i)
    check(ok == 5, "and keeps succeeding (%d of 5)" % ok)


def nothing_lost(ctx):
    things = rel.list_all(ctx.daemon.port, ctx.ca, ctx.key, "/things", "things")
    have = {t["thingName"] for t in things}
    lost = set(ctx.acked) - have
    check(not lost, "every acknowledged thing exists (%d lost: %s)" % (len(lost),
                                                                       sorted(lost)[:5]))
    half = set(ctx.refused) & have
    check(not half, "no refused write left a thing behind %s" % sorted(half)[:5])
    check(len(have) == len(ctx.acked), "exactly the acknowledged things exist (%d, %d)" %
          (len(have), len(ctx.acked)))


def main():
    tmp = tempfile.mkdtemp(prefix="iotp-fault-disk-")
    ctx = Ctx()
    ctx.mnt = os.path.join(tmp, "mnt")
    os.makedirs(ctx.mnt)
    ctx.mounted = try_mount(ctx.mnt)
    ctx.data = os.path.join(ctx.mnt, "data")
    ctx.log = os.path.join(tmp, "iotprovd.log")
    ctx.daemon = None
    ctx.acked, ctx.refused = [], []
    try:
        print("data dir made with " + make_data_dir(ctx.data))
        ctx.ca = os.path.join(ctx.data, "ca-bundle.pem")
        ctx.key = key_create(ctx.data, "admin")
        preexec = None
        if ctx.mounted:
            # leave about 700 KB for the store to grow into; the ballast is
            # the space given back later
            st = os.statvfs(ctx.mnt)
            free = st.f_bavail * st.f_frsize
            ctx.ballast = os.path.join(ctx.mnt, "ballast")
            with open(ctx.ballast, "wb") as f:
                f.write(b"\0" * max(0, free - 700 * 1024))
            print("tmpfs of %s on %s, %d KB left for the store" %
                  (TMPFS_SIZE, ctx.mnt, os.statvfs(ctx.mnt).f_bavail *
                   os.statvfs(ctx.mnt).f_frsize // 1024))
        else:
            limit = 0
            for f in os.listdir(ctx.data):
                limit = max(limit, os.path.getsize(os.path.join(ctx.data, f)))
            limit += 700 * 1024
            print("using RLIMIT_FSIZE = %d bytes instead of a small file system" % limit)

            def preexec():
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                # soft limit only: the test raises it later without privileges
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        ctx.daemon = rel.Iotprovd(ctx.data, ctx.log, preexec_fn=preexec)
        for fn in (fill, while_full, free_space, nothing_lost):
            section(fn, ctx)
            if failures:
                break
        rc = ctx.daemon.stop()
        check(rc == 0, "SIGTERM: exit status %s" % rc)
        status, report, err = rel.check_store(ctx.data)
        check(status == 0 and report is not None and report["errors"] == 0,
              "iotprov check: no problem in the store (%s %s)" %
              (status, (report or {}).get("problems", err)))
    finally:
        if ctx.daemon is not None and ctx.daemon.alive():
            ctx.daemon.kill()
        if failures and os.path.exists(ctx.log):
            with open(ctx.log, errors="replace") as f:
                print(f.read()[-3000:])
        if ctx.mounted:
            subprocess.run(["umount", ctx.mnt], timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
