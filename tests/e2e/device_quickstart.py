#!/usr/bin/env python3
"""docs/device-quickstart.md, run as written: the three commands of "The
three commands" (aws CLI create-provisioning-template and
create-provisioning-claim, then iotprov-device provision --method
trusted-user) against `iotprov up`, with only the ports, the data dir and the
build dir substituted; then its simulate example with 20 devices. The device
must end provisioned as thing sensor-0001, connected, and the simulation must
end with "20 passed, 0 failed". A doc that drifts from the code fails here.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import device_e2e as e  # noqa: E402

DOC = os.path.join(e.SRC, "docs", "device-quickstart.md")


def blocks(text, heading):
    """The ```sh blocks of the section starting at heading."""
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    section = text[start:end if end > 0 else len(text)]
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", section, re.S)]


def localize(cmd, stack):
    return (cmd.replace("127.0.0.1:8443", "127.0.0.1:%d" % stack.api_port)
               .replace("127.0.0.1:8883", stack.mqtt)
               .replace("build/iotprov-device", e.DEVICE))


def three_commands(stack, tmp):
    text = open(DOC).read()
    cmds = blocks(text, "## The three commands")
    e.check(len(cmds) == 3, "the doc has three commands", cmds)
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("AWS_"):
            del env[k]
    env["IOTP_DEVICE_STATE_DIR"] = ""  # the doc relies on the default ./device-state
    for i, c in enumerate(cmds, 1):
        r = e.run(["bash", "-c", localize(c, stack)], cwd=tmp, env=env)
        if not e.check(r.returncode == 0, "command %d succeeds" % i, r.stdout + r.stderr):
            return
    st = os.path.join(tmp, "device-state")
    s = e.status(st)
    e.check(s["provisioned"] and s["thingName"] == "sensor-0001" and s["method"] == "trusted-user",
            "the device is provisioned as sensor-0001", s)
    e.check(stack.thing("sensor-0001") is not None, "thing sensor-0001 exists")
    e.check("as sensor-0001 (p5" in stack.log_text(), "the broker let sensor-0001 in")
    r = e.device(st, "connect")
    e.check(r.returncode == 0, "what next: connect again", r.stderr)

    sims = blocks(text, "## What next")
    sim = [b for b in sims if "simulate" in b]
    e.check(len(sim) == 1, "the doc has the simulate example")
    if sim:
        cmd = localize(sim[0], stack).replace("--devices 1000", "--devices 20")
        r = e.run(["bash", "-c", cmd], cwd=tmp, env=env)
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        e.check(r.returncode == 0 and last == "20 passed, 0 failed",
                "the simulate example: 20 passed, 0 failed", r.stdout + r.stderr[-1500:])


def main():
    if not os.access(e.DEVICE, os.X_OK) or not os.access(e.IOTPROV, os.X_OK):
        print("iotprov / iotprov-device not built")
        return 1
    tmp = e.tmpdir("device-quickstart")
    stack = e.Stack(tmp)
    try:
        e.section(three_commands, stack, tmp)
    finally:
        stack.stop()
    if e.failures:
        print(stack.log_text()[-4000:])
    e.cleanup(tmp)
    return e.summary()


if __name__ == "__main__":
    sys.exit(main())
