#!/usr/bin/env python3
"""The documentation, kept true: runs every tagged example of docs/*.md
(the convention is in tests/e2e/lib/docs.py and docs/README.md), each page on
its own fresh `iotprov init` + `iotprov up` stack on free 127.0.0.1 ports,
and checks the pages' links: every relative link and #anchor resolves, the
index docs/README.md lists every page, and README.md links the index. First
it checks itself on synthetic pages that it must pass or fail.

A failure names the page, the block (line and name), the commands as run and
their output. `python3 tests/e2e/docs_examples.py jitp.md est.md` runs only
those pages; IOTP_KEEP_TMP=1 keeps the work directories (each block's output
is in .block-<line>.out); IOTP_DOCS_JOBS=N runs N pages at a time (default 2).
"""
import concurrent.futures
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import docs  # noqa: E402

# What the examples call besides iotprov's own programs.
TOOLS = ("aws", "openssl", "curl", "jq", "python3", "mosquitto_rr", "mosquitto_pub",
         "mosquitto_sub", "softhsm2-util")

LINK_RE = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading):
    """GitHub's anchor for a heading."""
    h = re.sub(r"`|\*\*|\[|\]\([^)]*\)", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", h).replace(" ", "-")


def prose(path):
    """A page without its fenced blocks."""
    out, fence = [], None
    with open(path) as f:
        for line in f:
            m = docs.FENCE_RE.match(line.rstrip("\n"))
            if fence is None and m:
                fence = True
            elif fence and line.strip() == "```":
                fence = None
            elif fence is None:
                out.append(line)
    return "".join(out)


def anchors(path):
    text = prose(path)
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def check_links():
    """Every relative link of README.md and docs/*.md resolves."""
    problems = []
    files = [os.path.join(docs.SRC, "README.md")] + [os.path.join(docs.DOCS, p)
                                                     for p in docs.pages()]
    for path in files:
        text = prose(path)
        rel = os.path.relpath(path, docs.SRC)
        for m in LINK_RE.finditer(text):
            target = m.group(1)
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) \
                if file_part else path
            if not os.path.exists(dest):
                problems.append("%s: link to %s: no such file" % (rel, target))
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                problems.append("%s: link to %s: no heading with that anchor" % (rel, target))
    index = os.path.join(docs.DOCS, "README.md")
    if not os.path.exists(index):
        return problems + ["docs/README.md (the index) is missing"]
    with open(index) as f:
        listed = set(LINK_RE.findall(f.read()))
    for p in docs.pages():
        if p != "README.md" and p not in listed:
            problems.append("docs/README.md does not list %s" % p)
    with open(os.path.join(docs.SRC, "README.md")) as f:
        if "docs/README.md" not in set(LINK_RE.findall(f.read())):
            problems.append("README.md does not link docs/README.md")
    return problems


# The runner itself must catch what it is for: pages it must pass and pages
# it must fail, each for its own reason.
SELFTEST_PASS = """
<!-- test: define -->
<!-- expect: ^hello 1$ -->
```sh
X=1; alias greet='echo hello'
mkdir -p sub && cd sub; greet $X
```
<!-- test: file write=f.txt -->
```json
{"a": 1}
```
<!-- test: listener background ready="^listening$" -->
<!-- expect: ^got ping$ -->
```sh
echo listening; while [ ! -f ping ]; do sleep 0.1; done; echo got ping
```
<!-- test: carried -->
<!-- expect: ^2 hello sub \\{"a": 1\\}$ -->
```sh
touch ping; echo $((X + 1)) $(greet) $(basename "$PWD") $(cat f.txt)
```
<!-- test: fails-as-told exit=3 -->
```sh
exit 3
```
<!-- no-test: shows that an exemption is accepted -->
```sh
false
```
"""

SELFTEST_FAIL = {
    "expect.md": ("""
<!-- test: mismatch -->
<!-- expect: ^goodbye$ -->
```sh
echo hello
```
""", "output does not match"),
    "command.md": ("""
<!-- test: middle -->
```sh
true; false; echo not reached
```
<!-- test: after -->
```sh
echo never run
```
""", "exit status 1, expected 0"),
    "untagged.md": ("""
```sh
echo nobody runs me
```
""", "neither a test: tag nor a no-test: reason"),
    "background.md": ("""
<!-- test: bg background -->
<!-- expect: ^done$ -->
```sh
echo started; exit 4
```
""", "background block exited with 4"),
}


def selftest(root):
    """Runs the synthetic pages above; returns the runner's own defects."""
    problems = []
    d = os.path.join(root, "selftest-docs")
    os.makedirs(d)
    pages = dict(SELFTEST_FAIL, **{"pass.md": (SELFTEST_PASS, None)})
    for name, (text, want) in pages.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
        quiet = []
        got = docs.run_page(name, root, log=quiet.append, docs_dir=d)
        if want is None and got:
            problems.append("selftest: %s should pass:\n%s" % (name, "\n".join(got)))
        elif want is not None and not any(want in g for g in got):
            problems.append("selftest: %s should fail with %r, got %s" % (name, want, got))
        if name == "command.md" and any("never run" in q for q in quiet):
            problems.append("selftest: a block after a failure ran")
    return problems


def one_page(page, root):
    """Runs a page; returns its log lines and its failures."""
    lines = []
    try:
        return lines, docs.run_page(page, root, log=lines.append)
    except ValueError as e:
        return lines, [str(e)]


def main(argv):
    if not os.access(docs.IOTPROV, os.X_OK):
        print("iotprov not built in %s" % docs.BUILD)
        return 1
    t0 = time.time()
    failures = ["the examples need %s on PATH (scripts/install-deps installs it)" % t
                for t in TOOLS if shutil.which(t) is None]
    if not argv:
        failures += check_links()
        print("%s links and index" % ("FAIL" if failures else "ok  "))
    root = docs.tmp_root()
    if not argv:
        failures += selftest(root)
        print("%s runner self-test" % ("FAIL" if failures else "ok  "))
    # Pages are independent (each its own stack and directory) and mostly
    # wait on their clients: two at a time halve the wall time.
    jobs = int(os.environ.get("IOTP_DOCS_JOBS", "2"))
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for lines, got in pool.map(lambda page: one_page(page, root), argv or docs.pages()):
            print("\n".join(lines), flush=True)
            failures += got
    for f in failures:
        print("\nFAIL " + f)
    print("%d failure(s), %.1f s" % (len(failures), time.time() - t0))
    docs.cleanup(root, bool(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
