#!/usr/bin/env python3
"""A private, throw-away PostgreSQL cluster for tests and benchmarks.

    pg_cluster.py run [--durable] -- COMMAND [ARGS...]
        initdb a cluster in a new temporary directory, start it on a free
        port of 127.0.0.1 (its unix socket in that directory), create the
        database "iotprov", run COMMAND with
            IOTP_STORE_URL   postgresql://iotprov@127.0.0.1:PORT/iotprov?...
            IOTP_PG_RESTART  a shell command that restarts the server
        then stop the server by its PID and remove the directory. Exits with
        COMMAND's status.
    pg_cluster.py start [--durable] DIR   start one in DIR and print its URL
    pg_cluster.py stop DIR                stop it by PID and remove DIR

Without --durable the cluster runs with fsync off (tests need no crash
safety and run faster); benchmarks pass --durable to measure the real thing.

PostgreSQL refuses to run as root. When this runs as root (CI, containers)
the cluster directory is given to the unprivileged system account
"postgres" that Debian's postgresql package creates (or "nobody" where
there is no such account) and initdb, postgres and pg_ctl run as that
account through runuser; the test programs stay root and connect over TCP.
Missing server binaries are an error, not a skip: scripts/install-deps
installs them (Debian package postgresql).
"""
import glob
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PREFIX = "pg_cluster:"


def die(msg):
    print(f"{PREFIX} {msg}", file=sys.stderr)
    sys.exit(1)


def find_bindir():
    env = os.environ.get("IOTP_PG_BINDIR")
    candidates = [env] if env else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
                         reverse=True)
    for d in candidates:
        if d and all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return d
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    die("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in "
        "/usr/lib/postgresql/*/bin or PATH: run scripts/install-deps "
        "(Debian package postgresql) or set IOTP_PG_BINDIR")


def run_as_account():
    """The account the server runs as, or None for the current user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    die("running as root and neither a 'postgres' nor a 'nobody' account exists")


def as_account(account, argv):
    if account is None:
        return argv
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    if not os.access(runuser, os.X_OK):
        die("running as root needs runuser (util-linux) to drop to the postgres account")
    return [runuser, "-u", account, "--"] + argv


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postmaster_pid(datadir):
    try:
        with open(os.path.join(datadir, "postmaster.pid")) as f:
            return int(f.readline().strip())
    except (OSError, ValueError):
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class Cluster:
    def __init__(self, root, durable=False):
        self.root = root
        self.datadir = os.path.join(root, "data")
        self.log = os.path.join(root, "server.log")
        self.durable = durable
        self.bindir = find_bindir()
        self.account = run_as_account()
        self.port = None
        self.pid = None

    def _run(self, argv, **kw):
        return subprocess.run(as_account(self.account, argv), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, **kw)

    def init(self):
        os.chmod(self.root, 0o700)
        if self.account is not None:
            pw = pwd.getpwnam(self.account)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        r = self._run([os.path.join(self.bindir, "initdb"), "-D", self.datadir, "-U", "iotprov",
                       "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"],
                      cwd=self.root, timeout=120)
        if r.returncode != 0:
            die(f"initdb failed:\n{r.stdout}")

    def _configure(self):
        lines = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.root}'",
            "max_connections = 60",
            "shared_buffers = 32MB",
            "log_min_messages = warning",
            "log_min_error_statement = panic",
            "log_connections = off",
        ]
        if not self.durable:
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        conf = os.path.join(self.datadir, "postgresql.auto.conf")
        # Written through the account that owns the data directory.
        r = self._run(["sh", "-c", 'cat > "$1"', "sh", conf], input="\n".join(lines) + "\n",
                      timeout=30)
        if r.returncode != 0:
            die(f"cannot write {conf}: {r.stdout}")

    def pg_ctl(self, *args):
        return [os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-l", self.log,
                "-w", "-t", "60"] + list(args)

    def start(self):
        last = ""
        for _ in range(3):
            self.port = free_port()
            self._configure()
            r = self._run(self.pg_ctl("start"), timeout=120)
            if r.returncode == 0:
                self.pid = postmaster_pid(self.datadir)
                break
            last = r.stdout + self.log_tail()
        else:
            die(f"the server did not start:\n{last}")
        r = subprocess.run([os.path.join(self.bindir, "createdb"), "-h", "127.0.0.1", "-p",
                            str(self.port), "-U", "iotprov", "iotprov"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=60)
        if r.returncode != 0:
            self.stop()
            die(f"createdb failed: {r.stdout}")

    def log_tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-20:])
        except OSError:
            return ""

    def url(self):
        return (f"postgresql://iotprov@127.0.0.1:{self.port}/iotprov"
                "?sslmode=disable&gssencmode=disable&connect_timeout=10")

    def restart_command(self):
        argv = as_account(self.account, self.pg_ctl("-m", "fast", "restart"))
        return " ".join(shlex.quote(a) for a in argv) + " >/dev/null"

    def stop(self):
        """Fast shutdown by signal to the postmaster's PID (re-read: a
        restart changes it), then immediate, then kill."""
        pid = postmaster_pid(self.datadir) or self.pid
        if pid is None or not alive(pid):
            return
        for sig, wait in ((signal.SIGINT, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not alive(pid):
                    return
                time.sleep(0.05)
        print(f"{PREFIX} postmaster {pid} did not exit", file=sys.stderr)


def cmd_run(args):
    durable = False
    while args and args[0] != "--":
        if args[0] == "--durable":
            durable = True
        else:
            die(f"unknown option {args[0]}")
        args = args[1:]
    if not args or args[0] != "--" or len(args) < 2:
        die("usage: pg_cluster.py run [--durable] -- COMMAND [ARGS...]")
    command = args[1:]
    root = tempfile.mkdtemp(prefix="iotp-pg-")
    cluster = Cluster(root, durable)
    status = 1

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        cluster.init()
        cluster.start()
        env = dict(os.environ)
        env["IOTP_STORE_URL"] = cluster.url()
        env["IOTP_PG_RESTART"] = cluster.restart_command()
        print(f"{PREFIX} PostgreSQL on 127.0.0.1:{cluster.port} in {root}", file=sys.stderr)
        # Below ctest's 600 s, so that a hung command still gets the
        # cluster stopped and removed here rather than left running.
        limit = int(os.environ.get("IOTP_PG_RUN_TIMEOUT", "540"))
        try:
            r = subprocess.run(command, env=env, timeout=limit)
            status = r.returncode if r.returncode >= 0 else 128 - r.returncode
        except subprocess.TimeoutExpired:
            print(f"{PREFIX} {command[0]} still running after {limit} s: killed",
                  file=sys.stderr)
            status = 124
        if status != 0:
            tail = cluster.log_tail()
            if tail:
                print(f"{PREFIX} server log tail:\n{tail}", file=sys.stderr)
    except KeyboardInterrupt:
        status = 130
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    return status


def cmd_start(args):
    durable = "--durable" in args
    dirs = [a for a in args if a != "--durable"]
    if len(dirs) != 1:
        die("usage: pg_cluster.py start [--durable] DIR")
    root = os.path.abspath(dirs[0])
    os.makedirs(root, exist_ok=False)
    cluster = Cluster(root, durable)
    cluster.init()
    cluster.start()
    print(f"IOTP_STORE_URL={cluster.url()}")
    return 0


def cmd_stop(args):
    if len(args) != 1:
        die("usage: pg_cluster.py stop DIR")
    root = os.path.abspath(args[0])
    if not os.path.isdir(os.path.join(root, "data")):
        die(f"{root} holds no cluster")
    Cluster(root).stop()
    shutil.rmtree(root, ignore_errors=True)
    return 0


def main(argv):
    if len(argv) < 2 or argv[1] not in ("run", "start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    return {"run": cmd_run, "start": cmd_start, "stop": cmd_stop}[argv[1]](argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
