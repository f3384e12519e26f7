#!/usr/bin/env python3
"""A bulk registration task survives kill -9 of iotprovd.

A 10,000-line task is started, iotprovd is killed with SIGKILL while the
task is part way, and started again on the same data dir. What an operator
checks: the task resumes by itself and completes with successCount 10000;
exactly 10,000 things exist, each created once (one thing.create event per
thing in the audit log), each with its certificate-free attributes; the
RESULTS report has each line number exactly once. Done twice, so a kill in
a different batch is covered too.
"""
import json
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from api_e2e import (Daemon, boto3_client, check, key_create, make_data_dir,  # noqa: E402
                     section, summary)

TEMPLATE = json.dumps({
    "Parameters": {"ThingName": {"Type": "String"}, "Batch": {"Type": "String"}},
    "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {
        "ThingName": {"Ref": "ThingName"},
        "AttributePayload": {"batch": {"Ref": "Batch"}}}}}})
ROLE = "arn:aws:iam::123456789012:role/iotprov-import"
LINES = 10000


class Ctx:
    pass


def db(ctx, sql, *args):
    with sqlite3.connect(os.path.join(ctx.data, "iotprov.db"), timeout=30) as c:
        return c.execute(sql, args).fetchall()


def kill_midway(ctx, task, at_least):
    """Polls Describe and SIGKILLs iotprovd once at_least lines are done."""
    end = time.monotonic() + 60
    while time.monotonic() < end:
        d = ctx.iot.describe_thing_registration_task(taskId=task)
        if d["status"] != "InProgress":
            return d
        if d["successCount"] >= at_least:
            ctx.daemon.proc.send_signal(signal.SIGKILL)
            ctx.daemon.proc.wait()
            return d
        time.sleep(0.01)
    return None


def resume_after_kill(ctx, name, kills):
    path = os.path.join(ctx.data, "import", "bkt", name + ".jsonl")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for i in range(LINES):
            f.write(json.dumps({"ThingName": "%s-%05d" % (name, i), "Batch": name}) + "\n")
    task = ctx.iot.start_thing_registration_task(templateBody=TEMPLATE, inputFileBucket="bkt",
                                                 inputFileKey=name + ".jsonl",
                                                 roleArn=ROLE)["taskId"]
    for at_least in kills:
        d = kill_midway(ctx, task, at_least)
        killed = d is not None and d["status"] == "InProgress"
        check(killed, "iotprovd killed with the task at %s of %d lines"
              % (d["successCount"] if d else "?", LINES))
        if not killed:
            return
        row = db(ctx, "SELECT status, success_count FROM bulk_tasks WHERE id = ?", task)[0]
        check(row[0] == "InProgress" and 0 < row[1] < LINES,
              "the store holds a part-way InProgress task (%s, %d)" % row)
        ctx.daemon = Daemon(ctx.data)
        ctx.iot = boto3_client(ctx.daemon.url, ctx.ca, ctx.key)
    end = time.monotonic() + 60
    d = {}
    while time.monotonic() < end:
        d = ctx.iot.describe_thing_registration_task(taskId=task)
        if d["status"] != "InProgress":
            break
        time.sleep(0.1)
    check(d.get("status") == "Completed", "the task resumed by itself and completed")
    check(d.get("successCount") == LINES and d.get("failureCount") == 0,
          "successCount is exactly %d (%s, %s failures)"
          % (LINES, d.get("successCount"), d.get("failureCount")))
    things = db(ctx, "SELECT COUNT(*) FROM things WHERE name LIKE ?", name + "-%")[0][0]
    check(things == LINES, "exactly %d things exist (%d)" % (LINES, things))
    creates = db(ctx, "SELECT COUNT(*), COUNT(DISTINCT object) FROM events WHERE action = "
                      "'thing.create' AND object LIKE ?", "thing/" + name + "-%")[0]
    check(creates == (LINES, LINES), "each thing was created once (%d events, %d things)"
          % creates)
    lines = db(ctx, "SELECT COUNT(*), COUNT(DISTINCT line), MIN(line), MAX(line) FROM "
                    "bulk_reports WHERE task_id = ? AND kind = 'RESULTS'", task)[0]
    check(lines == (LINES, LINES, 1, LINES), "RESULTS holds each line once (%s)" % (lines,))
    t = ctx.iot.describe_thing(thingName="%s-%05d" % (name, LINES - 1))
    check(t["attributes"] == {"batch": name}, "the last thing has its attributes")


def killed_once(ctx):
    resume_after_kill(ctx, "once", [2500])


def killed_twice(ctx):
    resume_after_kill(ctx, "twice", [1200, 6000])


def main():
    tmp = tempfile.mkdtemp(prefix="iotp-e2e-resume-")
    ctx = Ctx()
    ctx.data = os.path.join(tmp, "data")
    ctx.daemon = None
    try:
        print("data dir made with " + make_data_dir(ctx.data))
        ctx.ca = os.path.join(ctx.data, "ca-bundle.pem")
        ctx.key = key_create(ctx.data, "operator")
        ctx.daemon = Daemon(ctx.data)
        ctx.iot = boto3_client(ctx.daemon.url, ctx.ca, ctx.key)
        section(killed_once, ctx)
        section(killed_twice, ctx)
        check(ctx.daemon.stop() == 0, "iotprovd stops cleanly")
    finally:
        if ctx.daemon is not None and ctx.daemon.alive():
            ctx.daemon.proc.kill()
        if os.environ.get("KEEP_TMP") is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
