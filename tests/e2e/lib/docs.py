"""Runs the examples of docs/*.md, as written, against a real iotprov stack.

The convention (docs/README.md, "Examples are tested", is the user-facing
description; keep the two in step):

    <!-- test: NAME [OPTION...] -->
    <!-- expect: REGEX -->            zero or more
    ```sh
    commands
    ```

- The fenced blocks right after a `test:` comment run, in the order of the
  page, each in its own `bash -e -o pipefail`. Shell variables,
  exports, functions, aliases and the working directory carry over from one
  block of a page to the next, as in one terminal.
- `expect:` comments right before the fence are Python regular expressions
  (re.M) that must each be found in the block's output (stdout and stderr).
- Options: `exit=N` (the block must end with status N, default 0;
  `exit=nonzero` for any failure),
  `timeout=S` (seconds, default 90), `background` (the block runs, on a
  terminal of its own, while the next ones run, as in a second terminal;
  with `ready="REGEX"` the runner first waits until its output shows REGEX.
  At the end of the page the runner waits for it to end by itself, within
  its timeout, then checks its exit status and `expect:` lines against all
  it printed; one still running then is stopped by its PID and fails),
  `from-banner="TEXT"` (the block is output, not a command: the runner
  runs the line of `iotprov up`'s banner holding TEXT, as the page tells the
  reader to paste it, and checks it against the block's `expect:` lines),
  `write=FILE` (the block is a file the page tells the reader to save, e.g. a
  template: the runner writes it, as shown, to FILE in the shell's current
  directory).
- Every ```sh block must be tagged `test:` or exempted with
  `<!-- no-test: REASON -->`, so an example nobody runs cannot slip in.
- Each page gets a fresh directory holding `iotprov-data` (`iotprov init`,
  with `[api] listen` and `[mqtt] listen` set to free ports) and `build` (a
  link to the build directory), `iotprov up --data-dir iotprov-data` running,
  and the build directory first on PATH. The blocks run there, with HOME
  there too and no AWS_* or IOTP_* variable from the caller's environment.
  `127.0.0.1:8443`, `127.0.0.1:8883`, `-p 8883` and `127.0.0.1:8080` in a
  block are rewritten to the ports the runner chose (the API, the broker,
  and one more free port).
- A sanitizer report in a block's output or in iotprov up's log fails too.

Not a test itself: it lives under lib/ so that the e2e glob does not pick it
up; tests/e2e/docs_examples.py imports it.
"""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

SRC = os.path.abspath(os.environ.get(
    "IOTP_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")))
BUILD = os.path.abspath(os.environ.get("IOTP_BUILD_DIR", os.path.join(SRC, "build")))
DOCS = os.path.join(SRC, "docs")
IOTPROV = os.path.join(BUILD, "iotprov")

TAG_RE = re.compile(r"^<!--\s*test:\s*(\S+)(.*?)-->$")
NOTEST_RE = re.compile(r"^<!--\s*no-test:\s*(.+?)\s*-->$")
EXPECT_RE = re.compile(r"^<!--\s*expect:\s(.*?)\s*-->$")
FENCE_RE = re.compile(r"^(\s*)```(\S*)\s*$")
OPT_RE = re.compile(r'([a-z][a-z-]*)(?:=("[^"]*"|\S+))?')

DEFAULT_TIMEOUT = 90

# A sanitizer report fails the block (or the page, from iotprov up's log) even
# when the program's exit status hides it.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


@dataclass
class Block:
    page: str
    line: int          # line of the opening fence, 1-based
    lang: str
    text: str
    name: str = ""
    opts: dict = field(default_factory=dict)
    expects: list = field(default_factory=list)
    tagged: bool = False
    exempt: str = ""

    def where(self):
        return "docs/%s:%d [%s]" % (self.page, self.line, self.name or "untagged")


def parse(page, text):
    """Every fenced block of a page, with the comments right above it.
    Raises ValueError on a malformed tag."""
    lines = text.split("\n")
    blocks = []
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.group(1), m.group(2)
        start = i
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            ln = lines[i]
            body.append(ln[len(indent):] if ln.startswith(indent) else ln.lstrip())
            i += 1
        if i >= len(lines):
            raise ValueError("docs/%s:%d: unclosed code fence" % (page, start + 1))
        i += 1
        b = Block(page, start + 1, lang, "\n".join(body) + "\n")
        j = start - 1
        comments = []
        while j >= 0 and lines[j].strip().startswith("<!--"):
            comments.insert(0, lines[j].strip())
            j -= 1
        for c in comments:
            t, n, e = TAG_RE.match(c), NOTEST_RE.match(c), EXPECT_RE.match(c)
            if t:
                b.tagged, b.name = True, t.group(1)
                for om in OPT_RE.finditer(t.group(2)):
                    v = om.group(2)
                    b.opts[om.group(1)] = v.strip('"') if v is not None else True
            elif n:
                b.exempt = n.group(1)
            elif e:
                b.expects.append(e.group(1))
            else:
                raise ValueError("docs/%s:%d: unknown comment above a code block: %s"
                                 % (page, start + 1, c))
        if "ready" in b.opts and "background" not in b.opts:
            raise ValueError("%s: ready= is for background blocks" % b.where())
        if (b.expects or b.opts) and not b.tagged:
            raise ValueError("%s: expect/options without a test: tag" % b.where())
        for k in b.opts:
            if k not in ("exit", "timeout", "background", "ready", "from-banner", "write"):
                raise ValueError("%s: unknown option %s" % (b.where(), k))
        for x in b.expects:
            re.compile(x)
        blocks.append(b)
    return blocks


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sanitized_build():
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return re.search(r"^IOTP_SANITIZE:BOOL=(ON|1|TRUE)$", f.read(), re.M) is not None
    except OSError:
        return False


# Saves what a block left in its shell for the next block: variables (not
# bash's own or read-only ones), functions, aliases and the directory.
SAVE_STATE = r'''
__iotp_save() {
  local __v __d __f
  for __v in $(compgen -v); do
    case $__v in
      BASH*|EUID|PPID|UID|SHLVL|SHELLOPTS|PWD|OLDPWD|_|FUNCNAME|GROUPS|PIPESTATUS|\
      LINENO|RANDOM|SRANDOM|SECONDS|EPOCHSECONDS|EPOCHREALTIME|HISTCMD|DIRSTACK|COMP_*|\
      OPTIND|OPTARG|OPTERR|IFS|__v|__d|__f) continue ;;
    esac
    __d=$(declare -p "$__v" 2>/dev/null) || continue
    __f=${__d#declare }; __f=${__f%% *}
    case $__f in *r*) continue ;; esac
    printf '%s\n' "$__d"
  done
  declare -f | sed '/^__iotp_save ()/,/^}/d'
  alias -p
  printf 'cd %q\n' "$PWD"
}
'''


class Page:
    """One page's stack (iotprov init + iotprov up on free ports) and shell."""

    def __init__(self, page, root, log=print):
        self.page = page
        self.log = log
        self.dir = os.path.join(root, re.sub(r"\W", "_", page[:-3]))
        os.makedirs(self.dir)
        self.data = os.path.join(self.dir, "iotprov-data")
        self.api_port = free_port()
        self.mqtt_port = free_port()
        self.extra_port = free_port()
        self.up = None
        self.up_log_path = os.path.join(self.dir, ".up.log")
        self.state = os.path.join(self.dir, ".shell-state")
        self.background = []    # (block, Popen, output path, reader thread, deadline)
        os.symlink(BUILD, os.path.join(self.dir, "build"))
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("AWS_") and not k.startswith("IOTP_")}
        # HOME is the page's directory too: `~` in an example stays inside it
        # and no personal configuration (~/.aws, ~/.config/mosquitto_pub)
        # changes what the examples do. pyenv's shims find their root by it.
        if "PYENV_ROOT" not in self.env and os.path.isdir(os.path.expanduser("~/.pyenv")):
            self.env["PYENV_ROOT"] = os.path.expanduser("~/.pyenv")
        self.env.update({"PATH": BUILD + os.pathsep + os.environ.get("PATH", ""),
                         "HOME": self.dir,
                         "AWS_CONFIG_FILE": os.path.join(self.dir, ".no-aws-config"),
                         "AWS_PAGER": "", "LC_ALL": "C.UTF-8"})

    # -- the stack ---------------------------------------------------------
    def start(self):
        r = subprocess.run([IOTPROV, "init", "--data-dir", self.data], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("iotprov init: " + r.stdout + r.stderr)
        conf = os.path.join(self.data, "iotprov.conf")
        with open(conf) as f:
            text = f.read()
        api = ";listen = 127.0.0.1:8443"
        mqtt = ";listen = 127.0.0.1:8883"
        if api not in text or mqtt not in text:
            raise RuntimeError("iotprov.conf from init lacks the default listen lines")
        text = text.replace(api, "listen = 127.0.0.1:%d" % self.api_port)
        text = text.replace(mqtt, "listen = 127.0.0.1:%d" % self.mqtt_port)
        with open(conf, "w") as f:
            f.write(text)
        env = dict(os.environ)
        if sanitized_build():
            # The instrumented plugin inside the uninstrumented mosquitto needs
            # the sanitizer runtime preloaded there (iotprov up passes it on).
            rt = subprocess.run(["clang", "-print-file-name=libclang_rt.asan-x86_64.so"],
                                capture_output=True, text=True).stdout.strip()
            env["IOTP_BROKER_PRELOAD"] = rt
        log = open(self.up_log_path, "w")
        self.up = subprocess.Popen([IOTPROV, "up", "--data-dir", self.data], cwd=self.dir,
                                   stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        end = time.time() + 60
        while time.time() < end:
            if self.up.poll() is not None:
                raise RuntimeError("iotprov up exited with %d:\n%s"
                                   % (self.up.returncode, self.up_log()))
            if "Stop with Ctrl-C" in self.up_log():
                return
            time.sleep(0.1)
        raise RuntimeError("iotprov up not ready in 60 s:\n" + self.up_log())

    def up_log(self):
        with open(self.up_log_path, errors="replace") as f:
            return f.read()

    def stop(self, wait=True):
        """Waits for the background blocks to end (when wait, else stops them
        at once), then stops iotprov up, each by its PID. Returns the problems
        found (a background block that failed)."""
        problems = []
        for b, p, out, reader, t_end in self.background:
            try:
                p.wait(max(0.0, t_end - time.time()) if wait else 0)
            except subprocess.TimeoutExpired:
                stop_group(p)
                reader.join(5)
                problems.append("%s: background block still running at the end of the page, "
                                "stopped:\n%s" % (b.where(), tail(read(out))))
                continue
            reader.join(5)
            text = read(out)
            want = b.opts.get("exit", "0")
            if (p.returncode == 0) if want == "nonzero" else (str(p.returncode) != want):
                problems.append("%s: background block exited with %d, expected %s:\n%s"
                                % (b.where(), p.returncode, want, tail(text)))
                continue
            missing = [x for x in b.expects if not re.search(x, text, re.M)]
            if missing:
                problems.append("%s: background block's output does not match %s:\n%s"
                                % (b.where(), missing, tail(text)))
            else:
                self.log("ok   %s (background, ended)" % b.where())
        self.background = []
        if self.up and self.up.poll() is None:
            self.up.send_signal(signal.SIGTERM)
            try:
                self.up.wait(30)
            except subprocess.TimeoutExpired:
                self.up.kill()
                self.up.wait()
        if self.up:
            text = self.up_log()
            marks = [m for m in SANITIZER_MARKS if m in text]
            if marks:
                problems.append("docs/%s: sanitizer report from iotprov up (%s):\n%s"
                                % (self.page, ", ".join(marks), tail(text, 6000)))
        return problems

    # -- the blocks --------------------------------------------------------
    def localize(self, text):
        for old, new in (("127.0.0.1:8443", "127.0.0.1:%d" % self.api_port),
                         ("127.0.0.1:8883", "127.0.0.1:%d" % self.mqtt_port),
                         ("-p 8883", "-p %d" % self.mqtt_port),
                         ("127.0.0.1:8080", "127.0.0.1:%d" % self.extra_port)):
            text = text.replace(old, new)
        return text

    def script(self, body, save):
        parts = ["shopt -s expand_aliases",
                 "[ -f %s ] && . %s >/dev/null 2>&1" % (shlex.quote(self.state),
                                                        shlex.quote(self.state)),
                 SAVE_STATE,
                 "set -e -o pipefail",
                 body]
        if save:
            parts += ["set +e", "__iotp_save > %s.new && mv %s.new %s"
                      % ((shlex.quote(self.state),) * 3)]
        return "\n".join(p for p in parts if p) + "\n"

    def run(self, b):
        """Runs one block; returns None when it passed, else the failure."""
        if b.opts.get("from-banner"):
            want = b.opts["from-banner"]
            lines = [ln.strip() for ln in self.up_log().splitlines() if want in ln]
            if not lines:
                return "%s: no line of the iotprov up banner holds %r" % (b.where(), want)
            body = lines[0]
        elif b.opts.get("write"):
            # A heredoc with a delimiter the text cannot hold writes it as is.
            delim = "IOTP_DOCS_EOF"
            if delim in b.text:
                return "%s: the file holds %s" % (b.where(), delim)
            body = "cat > %s <<'%s'\n%s%s\n" % (shlex.quote(b.opts["write"]), delim, b.text, delim)
        else:
            body = self.localize(b.text)
        timeout = float(b.opts.get("timeout", DEFAULT_TIMEOUT))
        script_path = os.path.join(self.dir, ".block-%d.sh" % b.line)
        if b.opts.get("background"):
            with open(script_path, "w") as f:
                f.write(self.script(body, save=False))
            out = os.path.join(self.dir, ".block-%d.out" % b.line)
            # A terminal of its own, so that its programs write lines as they
            # go (stdio buffers whole blocks into a file or a pipe).
            master, slave = os.openpty()
            try:
                p = subprocess.Popen(["bash", script_path], cwd=self.dir, env=self.env,
                                     stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
            finally:
                os.close(slave)
            reader = threading.Thread(target=copy_pty, args=(master, out), daemon=True)
            reader.start()
            self.background.append((b, p, out, reader, time.time() + timeout))
            ready = b.opts.get("ready")
            end = time.time() + timeout
            while ready:
                if re.search(ready, read(out), re.M):
                    break
                if p.poll() is not None or time.time() > end:
                    reader.join(2)
                    what = ("exited with %d" % p.returncode if p.poll() is not None
                            else "still running after %g s" % timeout)
                    return self.failure(b, body, "background block %s before showing %r"
                                        % (what, ready), read(out))
                time.sleep(0.1)
            b.seconds = 0.0
            return None
        with open(script_path, "w") as f:
            f.write(self.script(body, save=True))
        t0 = time.time()
        p = subprocess.Popen(["bash", script_path], cwd=self.dir, env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            raw, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(p)
            raw, _ = p.communicate()
            return self.failure(b, body, "timed out after %g s" % timeout,
                                raw.decode(errors="replace"))
        text = raw.decode(errors="replace")
        with open(os.path.join(self.dir, ".block-%d.out" % b.line), "w") as f:
            f.write(text)
        b.seconds = time.time() - t0
        want = b.opts.get("exit", "0")
        if (p.returncode == 0) if want == "nonzero" else (str(p.returncode) != want):
            return self.failure(b, body, "exit status %d, expected %s" % (p.returncode, want), text)
        marks = [m for m in SANITIZER_MARKS if m in text]
        if marks:
            return self.failure(b, body, "sanitizer report (%s)" % ", ".join(marks), text)
        missing = [x for x in b.expects if not re.search(x, text, re.M)]
        if missing:
            return self.failure(b, body, "output does not match %s" % missing, text)
        return None

    def failure(self, b, body, why, output):
        return ("%s: %s\n--- commands (as run)\n%s--- output\n%s"
                % (b.where(), why, body, tail(output)))


def copy_pty(master, path):
    """Copies what a background block writes on its terminal to path, without
    the terminal's carriage returns, until the block and its children close it."""
    with open(path, "wb") as f:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            f.write(data.replace(b"\r\n", b"\n"))
            f.flush()
    os.close(master)


def stop_group(p):
    """SIGTERM to the process group a block leads (its own session), then
    SIGKILL if it lingers."""
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def tail(text, n=4000):
    return text if len(text) <= n else "...\n" + text[-n:]


def pages():
    return sorted(f for f in os.listdir(DOCS) if f.endswith(".md"))


def load(page, docs_dir=DOCS):
    with open(os.path.join(docs_dir, page)) as f:
        return parse(page, f.read())


def run_page(page, root, log=print, docs_dir=DOCS):
    """Runs every tagged block of a page on a fresh stack. Returns the list of
    failures (strings); the first failing block ends the page, since the
    blocks after it build on it. Raises ValueError on a malformed tag."""
    blocks = load(page, docs_dir)
    bad = [b for b in blocks if b.lang == "sh" and not b.tagged and not b.exempt]
    failures = ["%s: a ```sh block with neither a test: tag nor a no-test: reason" % b.where()
                for b in bad]
    tagged = [b for b in blocks if b.tagged]
    if not tagged:
        return failures
    pg = Page(page, root, log)
    t0 = time.time()
    n = len(failures)
    try:
        pg.start()
        for b in tagged:
            f = pg.run(b)
            log("%s %s (%.1f s)" % ("ok  " if f is None else "FAIL", b.where(),
                                    getattr(b, "seconds", 0.0)))
            if f is not None:
                log_text = pg.up_log()
                after = log_text.split("Stop with Ctrl-C.", 1)[-1]
                failures.append(f + "\n--- iotprov up, after its banner\n" + tail(after, 3000))
                break
    except Exception as e:  # noqa: BLE001 -- a stack that will not start fails the page
        failures.append("docs/%s: %s: %s" % (page, type(e).__name__, e))
    finally:
        failures += pg.stop(wait=len(failures) == n)
    log("-- docs/%s: %d block(s), %.1f s" % (page, len(tagged), time.time() - t0))
    return failures


def tmp_root():
    return tempfile.mkdtemp(prefix="iotprov-docs-")


def cleanup(root, failed):
    if failed or os.environ.get("IOTP_KEEP_TMP") is not None:
        print("kept " + root)
    else:
        shutil.rmtree(root, ignore_errors=True)
