#!/usr/bin/env python3
"""Bulk registration end to end: a real iotprovd on 127.0.0.1, tasks started
and followed with boto3 and the aws CLI, the registry checked through the API
and the store.

What an operator checks: a 10,000-line JSON-lines file becomes exactly 10,000
things with their attributes; Describe shows the progress and then Completed
with successCount 10000; an input with bad lines reports each of them (line
number and reason) in the ERRORS report and applies every good one; a
stopped task stops (status Cancelled, counters frozen, no thing added after
the stop); a file uploaded through the API and a csv manifest import the
same way; input files outside the import directory are refused.
"""
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from api_e2e import (CLIS, IOTPROV, Daemon, boto3_client, check, cli, error_of,  # noqa: E402
                     key_create, make_data_dir, run, section, signed_request, summary)

TEMPLATE = json.dumps({
    "Parameters": {"ThingName": {"Type": "String"},
                   "Serial": {"Type": "String", "Default": "none"}},
    "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {
        "ThingName": {"Ref": "ThingName"},
        "AttributePayload": {"serial": {"Ref": "Serial"}}}}}})
ROLE = "arn:aws:iam::123456789012:role/iotprov-import"


class Ctx:
    pass


def write_input(ctx, key, lines):
    path = os.path.join(ctx.data, "import", "bkt", key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(l + "\n" for l in lines))


def start(ctx, key, **extra):
    return ctx.iot.start_thing_registration_task(templateBody=TEMPLATE, inputFileBucket="bkt",
                                                 inputFileKey=key, roleArn=ROLE,
                                                 **extra)["taskId"]


def wait_done(ctx, task, seconds=60):
    end = time.monotonic() + seconds
    d = {}
    while time.monotonic() < end:
        d = ctx.iot.describe_thing_registration_task(taskId=task)
        if d["status"] != "InProgress":
            return d
        time.sleep(0.1)
    return d


def db_count(ctx, sql, *args):
    with sqlite3.connect(os.path.join(ctx.data, "iotprov.db"), timeout=30) as c:
        return c.execute(sql, args).fetchone()[0]


def report_lines(ctx, task, kind):
    links, token = [], None
    while True:
        kw = {"taskId": task, "reportType": kind}
        if token:
            kw["nextToken"] = token
        r = ctx.iot.list_thing_registration_task_reports(**kw)
        links += r["resourceLinks"]
        token = r.get("nextToken")
        if not token:
            break
    lines = []
    for link in links:
        path = link.split(str(ctx.daemon.port), 1)[1]
        status, _, body = signed_request(ctx.daemon.port, ctx.ca, ctx.key, "GET", path)
        check(status == 200, "report part %s answers 200" % path)
        lines += [json.loads(l) for l in body.decode().splitlines() if l]
    return lines


def ten_thousand(ctx):
    write_input(ctx, "devices.jsonl",
                [json.dumps({"ThingName": "dev-%05d" % i, "Serial": "SN%05d" % i})
                 for i in range(10000)])
    t0 = time.monotonic()
    task = start(ctx, "devices.jsonl")
    seen_progress = False
    while True:
        d = ctx.iot.describe_thing_registration_task(taskId=task)
        if d["status"] == "InProgress" and 0 < d["percentageProgress"] < 100:
            seen_progress = True
        if d["status"] != "InProgress" or time.monotonic() - t0 > 60:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    print("10,000 lines applied in %.1f s" % elapsed)
    check(d["status"] == "Completed", "the 10,000-line task completes (%s)" % d["status"])
    check(d["successCount"] == 10000 and d["failureCount"] == 0,
          "successCount 10000, failureCount 0 (%s/%s)" % (d["successCount"], d["failureCount"]))
    check(d["percentageProgress"] == 100, "percentageProgress 100 at the end")
    check(seen_progress, "Describe showed progress between 0 and 100 while running")
    check(d["templateBody"] == TEMPLATE and d["inputFileKey"] == "devices.jsonl"
          and d["roleArn"] == ROLE, "Describe returns the task's input")
    check(db_count(ctx, "SELECT COUNT(*) FROM things WHERE name LIKE 'dev-%'") == 10000,
          "exactly 10,000 things exist")
    t = ctx.iot.describe_thing(thingName="dev-09999")
    check(t["attributes"] == {"serial": "SN09999"}, "the last thing has its attributes")
    lst = ctx.iot.list_things(maxResults=250)
    check(len(lst["things"]) == 250 and "nextToken" in lst, "ListThings pages over them")
    res = report_lines(ctx, task, "RESULTS")
    check(len(res) == 10000 and sorted(r["lineNumber"] for r in res) == list(range(1, 10001)),
          "RESULTS has one line per input line, numbered 1..10000")
    check(res[0].get("thingName") == "dev-00000", "a RESULTS line names its thing")
    check(report_lines(ctx, task, "ERRORS") == [], "ERRORS is empty")
    ids = ctx.iot.list_thing_registration_tasks()["taskIds"]
    check(task in ids, "ListThingRegistrationTasks lists the task")
    done = ctx.iot.list_thing_registration_tasks(status="Completed")["taskIds"]
    check(task in done, "ListThingRegistrationTasks filters by status")
    for aws in CLIS:
        rc, out, err = cli(aws, ctx.daemon.url, ctx.ca, ctx.key, "describe-thing-registration-task",
                           "--task-id", task)
        check(rc == 0 and out and out.get("successCount") == 10000,
              "%s describe-thing-registration-task works (%s)" % (aws, err.strip()[-200:]))


def bad_lines(ctx):
    lines = []
    for i in range(1, 51):
        if i == 7:
            lines.append("{not json")
        elif i == 19:
            lines.append(json.dumps({"ThingName": "bad name with spaces"}))
        elif i == 33:
            lines.append(json.dumps({"Serial": "no thing name"}))
        elif i == 40:
            lines.append(json.dumps({"ThingName": 12}))
        else:
            lines.append(json.dumps({"ThingName": "mixed-%02d" % i}))
    write_input(ctx, "mixed.jsonl", lines)
    task = start(ctx, "mixed.jsonl")
    d = wait_done(ctx, task)
    check(d["status"] == "Completed", "a task with bad lines completes")
    check(d["successCount"] == 46 and d["failureCount"] == 4,
          "46 good lines applied, 4 bad lines counted (%s/%s)"
          % (d["successCount"], d["failureCount"]))
    check(db_count(ctx, "SELECT COUNT(*) FROM things WHERE name LIKE 'mixed-%'") == 46,
          "every good line made its thing")
    errs = report_lines(ctx, task, "ERRORS")
    check(sorted(e["lineNumber"] for e in errs) == [7, 19, 33, 40],
          "ERRORS names lines 7, 19, 33 and 40 (%s)" % [e["lineNumber"] for e in errs])
    reasons = {e["lineNumber"]: e.get("reason", "") for e in errs}
    check("JSON" in reasons.get(7, ""), "line 7's reason says it is not JSON")
    check("ThingName" in reasons.get(33, "") or "missing" in reasons.get(33, ""),
          "line 33's reason names the missing parameter (%s)" % reasons.get(33))
    check(len(report_lines(ctx, task, "RESULTS")) == 46, "RESULTS has the 46 good lines")


def stop_task(ctx):
    # Stop right after the start: the runner may have applied some lines or
    # none, but never all 50,000 (a wait for the first line raced with fast
    # runners, which finished 10,000 lines before the stop arrived).
    lines = 50000
    write_input(ctx, "stop.jsonl", [json.dumps({"ThingName": "stop-%05d" % i})
                                    for i in range(lines)])
    task = start(ctx, "stop.jsonl")
    ctx.iot.stop_thing_registration_task(taskId=task)
    d1 = ctx.iot.describe_thing_registration_task(taskId=task)
    time.sleep(1.5)
    d2 = ctx.iot.describe_thing_registration_task(taskId=task)
    n = db_count(ctx, "SELECT COUNT(*) FROM things WHERE name LIKE 'stop-%'")
    check(d1["status"] == "Cancelled", "a stopped task is Cancelled (%s)" % d1["status"])
    check(d1["successCount"] == d2["successCount"] and d2["successCount"] < lines,
          "its counters stay frozen after the stop (%d)" % d2["successCount"])
    check(n == d2["successCount"], "no thing was added after the stop (%d things)" % n)
    code, status, _ = error_of(lambda: ctx.iot.describe_thing_registration_task(taskId="nope"))
    check(code == "ResourceNotFoundException" and status == 404, "an unknown task is 404")


def upload_and_csv(ctx):
    body = "ThingName,Serial\ncsv-1,A\n\"csv-2\",\"B,2\"\ncsv-3\n".encode()
    path = "/iotprov/import-files?bucket=uploads&key=batch%2Fone.csv&offset=0"
    status, _, resp = signed_request(ctx.daemon.port, ctx.ca, ctx.key, "PUT", path, body)
    check(status == 200 and json.loads(resp)["size"] == len(body), "an input file uploads")
    status, _, _ = signed_request(ctx.daemon.port, ctx.ca, ctx.key, "PUT", path.replace(
        "offset=0", "offset=5"), b"x")
    check(status == 409, "a chunk at the wrong offset is refused with 409")
    task = ctx.iot.start_thing_registration_task(
        templateBody=TEMPLATE, inputFileBucket="uploads", inputFileKey="batch/one.csv",
        roleArn=ROLE)["taskId"]
    # botocore cannot send inputFormat: the format defaults to jsonl, so
    # this task reads the csv as JSON lines and reports every line.
    d = wait_done(ctx, task)
    check(d["failureCount"] == 4, "csv read as jsonl fails every line (%s)" % d["failureCount"])
    status, _, resp = signed_request(
        ctx.daemon.port, ctx.ca, ctx.key, "POST", "/thing-registration-tasks",
        json.dumps({"templateBody": TEMPLATE, "inputFileBucket": "uploads",
                    "inputFileKey": "batch/one.csv", "roleArn": ROLE,
                    "inputFormat": "csv"}).encode(),
        headers={"Content-Type": "application/x-amz-json-1.1"})
    check(status == 200, "a csv task starts with inputFormat csv")
    d = wait_done(ctx, json.loads(resp)["taskId"])
    check(d["successCount"] == 2 and d["failureCount"] == 1,
          "the csv manifest applies 2 rows and reports the short one (%s/%s)"
          % (d["successCount"], d["failureCount"]))
    t = ctx.iot.describe_thing(thingName="csv-2")
    check(t["attributes"] == {"serial": "B,2"}, "a quoted csv field keeps its comma")
    for key in ("../bkt/devices.jsonl", "/etc/passwd"):
        code, status, _ = error_of(lambda: ctx.iot.start_thing_registration_task(
            templateBody=TEMPLATE, inputFileBucket="bkt", inputFileKey=key, roleArn=ROLE))
        check(code == "InvalidRequestException", "input key %r is refused" % key)
    code, _, msg = error_of(lambda: start(ctx, "absent.jsonl"))
    check(code == "InvalidRequestException" and "not found" in msg,
          "a missing input file is refused at start")


def cli_import(ctx):
    """`iotprov import` as a script runs it: no terminal, --wait, --json."""
    if not os.access(IOTPROV, os.X_OK):
        print("skip: no iotprov binary")
        return
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ctx.key[0], AWS_SECRET_ACCESS_KEY=ctx.key[1],
               AWS_CA_BUNDLE=ctx.ca, AWS_REGION="us-east-1")
    tmpl = os.path.join(ctx.data, "..", "tmpl.json")
    with open(tmpl, "w") as f:
        f.write(TEMPLATE)
    src = os.path.join(ctx.data, "..", "cli.jsonl")
    with open(src, "w") as f:
        for i in range(300):
            f.write(json.dumps({"ThingName": "cli-%03d" % i}) + "\n")
    r = run([IOTPROV, "import", src, "--template", "@" + tmpl, "--endpoint-url",
             ctx.daemon.url, "--wait"], env=env)
    check(r.returncode == 0 and "Completed: 300 registered, 0 failed" in r.stdout,
          "iotprov import --wait uploads, runs and summarises (%s%s)"
          % (r.stdout.strip()[-120:], r.stderr.strip()[-200:]))
    check(db_count(ctx, "SELECT COUNT(*) FROM things WHERE name LIKE 'cli-%'") == 300,
          "iotprov import made the 300 things")
    with open(src, "a") as f:
        f.write("{broken\n")
    r = run([IOTPROV, "import", src, "--template", "@" + tmpl, "--endpoint-url",
             ctx.daemon.url, "--wait", "--json"], env=env)
    out = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
    check(r.returncode == 1 and out.get("failureCount") == 1 and out.get("successCount") == 300,
          "a bad line makes iotprov import exit 1, --json gives the counts (%d)" % r.returncode)
    r = run([IOTPROV, "import", src, "--template", "@" + tmpl, "--endpoint-url",
             ctx.daemon.url], env=env)
    check(r.returncode == 0 and len(r.stdout.strip()) == 36,
          "without a terminal or --wait, iotprov import prints the task id")
    r = run([IOTPROV, "import", src, "--endpoint-url", ctx.daemon.url], env=env)
    check(r.returncode == 2, "iotprov import without --template is a usage error")
    # The input is read and uploaded a chunk at a time: a file of many
    # chunks arrives whole, every line registered.
    big = os.path.join(ctx.data, "..", "big.jsonl")
    with open(big, "w") as f:
        for i in range(3000):
            f.write(json.dumps({"ThingName": "big-%04d" % i, "Pad": "x" * 150}) + "\n")
    check(os.path.getsize(big) > 6 * 60 * 1024, "the big input spans several upload chunks")
    r = run([IOTPROV, "import", big, "--template", "@" + tmpl, "--endpoint-url",
             ctx.daemon.url, "--wait"], env=env)
    check(r.returncode == 0 and "Completed: 3,000 registered, 0 failed" in r.stdout,
          "a many-chunk input uploads whole (%s%s)"
          % (r.stdout.strip()[-120:], r.stderr.strip()[-200:]))
    # A NUL byte anywhere, even past the first chunk, is refused before
    # anything reaches the import directory.
    imports = os.path.join(ctx.data, "import", "iotprov-import")
    before = sorted(os.listdir(imports))
    with open(big, "a") as f:
        f.write("\0\n")
    r = run([IOTPROV, "import", big, "--template", "@" + tmpl, "--endpoint-url",
             ctx.daemon.url, "--wait"], env=env)
    check(r.returncode == 1 and "NUL byte" in r.stderr, "an input with a NUL byte is refused")
    check(sorted(os.listdir(imports)) == before, "nothing of the refused input was placed")


def main():
    tmp = tempfile.mkdtemp(prefix="iotp-e2e-bulk-")
    ctx = Ctx()
    ctx.data = os.path.join(tmp, "data")
    ctx.daemon = None
    try:
        print("data dir made with " + make_data_dir(ctx.data))
        ctx.ca = os.path.join(ctx.data, "ca-bundle.pem")
        ctx.key = key_create(ctx.data, "operator")
        ctx.daemon = Daemon(ctx.data)
        ctx.iot = boto3_client(ctx.daemon.url, ctx.ca, ctx.key)
        for fn in (ten_thousand, bad_lines, stop_task, upload_and_csv, cli_import):
            section(fn, ctx)
        check(ctx.daemon.stop() == 0, "iotprovd stops cleanly with a task runner")
    finally:
        if ctx.daemon is not None and ctx.daemon.alive():
            ctx.daemon.proc.kill()
        if os.environ.get("KEEP_TMP") is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
