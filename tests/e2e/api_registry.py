#!/usr/bin/env python3
"""The registry through the AWS IoT API: a real iotprovd on 127.0.0.1 driven
with boto3 and with both aws CLIs (Debian's awscli 2, which signs as
execute-api, and the pyenv awscli 1, which signs as iot).

Covers the whole life of thing types, things, thing groups with a parent,
membership, policies with versions and group attachments, with what an
operator checks: the values read back, versions and their conflicts,
deletion conflicts, ResourceAlreadyExists with resourceId/resourceArn, and
pagination that returns every item exactly once when there are more items
than a page holds.
"""
import json
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from api_e2e import (CLIS, IOTPROVD, Daemon, boto3_client, check, cli, error_of,  # noqa: E402
                     failures, healthy, key_create, make_data_dir, section,
                     summary)

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]})
POLICY2 = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
     "Resource": "arn:aws:iot:us-east-1:*:topic/dev/${iot:ClientId}/*"}]})


def walk(fn, key, token_in, token_out, **kw):
    """Every item of a paged list, following the tokens by hand."""
    items, token, pages = [], None, 0
    while True:
        args = dict(kw)
        if token:
            args[token_in] = token
        r = fn(**args)
        items += r.get(key, [])
        pages += 1
        token = r.get(token_out)
        if not token or pages > 100:
            return items, pages


def things_life(iot):
    # thing type
    r = iot.create_thing_type(thingTypeName="sensor", thingTypeProperties={
        "thingTypeDescription": "a sensor", "searchableAttributes": ["site"]})
    check(r["thingTypeName"] == "sensor" and r["thingTypeArn"].endswith(":thingtype/sensor") and
          r.get("thingTypeId"), "CreateThingType")
    d = iot.describe_thing_type(thingTypeName="sensor")
    check(d["thingTypeProperties"].get("thingTypeDescription") == "a sensor" and
          d["thingTypeProperties"].get("searchableAttributes") == ["site"] and
          d["thingTypeMetadata"]["deprecated"] is False, "DescribeThingType")
    check([t["thingTypeName"] for t in iot.list_thing_types()["thingTypes"]] == ["sensor"],
          "ListThingTypes")

    # thing
    r = iot.create_thing(thingName="pump-1", thingTypeName="sensor",
                         attributePayload={"attributes": {"site": "north", "floor": "2"}})
    check(r["thingName"] == "pump-1" and r["thingArn"].endswith(":thing/pump-1") and
          len(r["thingId"]) == 36, "CreateThing")
    again = iot.create_thing(thingName="pump-1", thingTypeName="sensor",
                             attributePayload={"attributes": {"site": "north", "floor": "2"}})
    check(again["thingId"] == r["thingId"], "CreateThing again with the same values is idempotent")
    try:
        iot.create_thing(thingName="pump-1", attributePayload={"attributes": {"site": "south"}})
        exists = None
    except iot.exceptions.ResourceAlreadyExistsException as e:
        exists = e.response
    check(exists is not None and exists.get("resourceId") == r["thingId"] and
          exists.get("resourceArn") == r["thingArn"],
          "CreateThing with other values -> ResourceAlreadyExists with resourceId/resourceArn")
    d = iot.describe_thing(thingName="pump-1")
    check(d["attributes"] == {"site": "north", "floor": "2"} and d["version"] == 1 and
          d["thingTypeName"] == "sensor" and d["thingId"] == r["thingId"] and
          d["defaultClientId"] == "pump-1", "DescribeThing reads back type, attributes, version 1")
    iot.update_thing(thingName="pump-1", expectedVersion=1,
                     attributePayload={"attributes": {"floor": "", "room": "b"}, "merge": True})
    d = iot.describe_thing(thingName="pump-1")
    check(d["attributes"] == {"site": "north", "room": "b"} and d["version"] == 2,
          "UpdateThing merge: '' removes, version 2")
    code, st, _ = error_of(lambda: iot.update_thing(thingName="pump-1", expectedVersion=1,
                                                    removeThingType=True))
    check(code == "VersionConflictException" and st == 409, "stale expectedVersion -> 409 %s" % code)
    code, st, _ = error_of(lambda: iot.describe_thing(thingName="nope"))
    check(code == "ResourceNotFoundException" and st == 404, "DescribeThing absent -> 404 %s" % code)
    code, st, _ = error_of(lambda: iot.create_thing(thingName="bad/name"))
    check(code == "InvalidRequestException" and st == 400,
          "a thing name with '/' -> 400 %s" % code)
    code, st, _ = error_of(lambda: iot.create_thing(thingName="x", thingTypeName="no-such-type"))
    check(code == "ResourceNotFoundException" and st == 404, "unknown thing type -> 404 %s" % code)
    iot.create_thing(thingName="pump-2", attributePayload={"attributes": {"site": "south"}})
    names = [t["thingName"] for t in iot.list_things(attributeName="site",
                                                     attributeValue="north")["things"]]
    check(names == ["pump-1"], "ListThings attribute filter: %s" % names)
    names = [t["thingName"] for t in iot.list_things(thingTypeName="sensor")["things"]]
    check(names == ["pump-1"], "ListThings type filter: %s" % names)

    # deprecation and type deletion rules
    iot.deprecate_thing_type(thingTypeName="sensor")
    check(iot.describe_thing_type(thingTypeName="sensor")["thingTypeMetadata"]["deprecated"],
          "DeprecateThingType")
    code, st, _ = error_of(lambda: iot.create_thing(thingName="pump-3", thingTypeName="sensor"))
    check(code == "InvalidRequestException" and st == 400,
          "a deprecated type takes no new thing -> 400 %s" % code)
    code, st, _ = error_of(lambda: iot.delete_thing_type(thingTypeName="sensor"))
    check(code == "InvalidRequestException" and st == 400,
          "DeleteThingType while a thing has it -> 400 %s" % code)
    iot.update_thing(thingName="pump-1", removeThingType=True)
    iot.delete_thing_type(thingTypeName="sensor")
    code, _, _ = error_of(lambda: iot.describe_thing_type(thingTypeName="sensor"))
    check(code == "ResourceNotFoundException", "thing type deleted")


def groups_and_policies(iot):
    r = iot.create_thing_group(thingGroupName="plant", thingGroupProperties={
        "thingGroupDescription": "the plant", "attributePayload": {"attributes": {"city": "x"}}})
    check(r["thingGroupArn"].endswith(":thinggroup/plant"), "CreateThingGroup plant")
    iot.create_thing_group(thingGroupName="line-a", parentGroupName="plant")
    d = iot.describe_thing_group(thingGroupName="line-a")
    md = d["thingGroupMetadata"]
    check(md.get("parentGroupName") == "plant" and
          [g["groupName"] for g in md.get("rootToParentThingGroups", [])] == ["plant"],
          "DescribeThingGroup: parent and rootToParentThingGroups")
    d = iot.describe_thing_group(thingGroupName="plant")
    check(d["thingGroupProperties"].get("thingGroupDescription") == "the plant" and
          d["thingGroupProperties"]["attributePayload"]["attributes"] == {"city": "x"},
          "DescribeThingGroup: properties")
    v = iot.update_thing_group(thingGroupName="plant", expectedVersion=d["version"],
                               thingGroupProperties={"thingGroupDescription": "renamed"})
    check(v["version"] == d["version"] + 1, "UpdateThingGroup bumps the version")
    code, st, _ = error_of(lambda: iot.update_thing_group(
        thingGroupName="plant", expectedVersion=d["version"],
        thingGroupProperties={"thingGroupDescription": "again"}))
    check(code == "VersionConflictException" and st == 409, "UpdateThingGroup stale -> 409")
    iot.add_thing_to_thing_group(thingGroupName="line-a", thingName="pump-1")
    iot.add_thing_to_thing_group(thingGroupArn=r["thingGroupArn"].replace("plant", "line-a"),
                                 thingArn=iot.describe_thing(thingName="pump-2")["thingArn"])
    check(sorted(iot.list_things_in_thing_group(thingGroupName="line-a")["things"]) ==
          ["pump-1", "pump-2"], "AddThingToThingGroup by name and by ARN")
    check(iot.list_things_in_thing_group(thingGroupName="plant")["things"] == [] and
          sorted(iot.list_things_in_thing_group(thingGroupName="plant", recursive=True)["things"])
          == ["pump-1", "pump-2"], "ListThingsInThingGroup recursive")
    check([g["groupName"] for g in iot.list_thing_groups_for_thing(thingName="pump-1")
           ["thingGroups"]] == ["line-a"], "ListThingGroupsForThing")
    check([g["groupName"] for g in iot.list_thing_groups(parentGroup="plant")["thingGroups"]] ==
          ["line-a"], "ListThingGroups parentGroup")
    iot.remove_thing_from_thing_group(thingGroupName="line-a", thingName="pump-2")
    check(iot.list_things_in_thing_group(thingGroupName="line-a")["things"] == ["pump-1"],
          "RemoveThingFromThingGroup")
    code, st, _ = error_of(lambda: iot.add_thing_to_thing_group(thingGroupName="line-a"))
    check(code == "InvalidRequestException" and st == 400, "membership without a thing -> 400")

    # policies and versions
    p = iot.create_policy(policyName="dev-connect", policyDocument=POLICY)
    check(p["policyVersionId"] == "1" and json.loads(p["policyDocument"]) == json.loads(POLICY) and
          p["policyArn"].endswith(":policy/dev-connect"), "CreatePolicy")
    code, st, _ = error_of(lambda: iot.create_policy(policyName="bad", policyDocument="{not json"))
    check(code == "MalformedPolicyException" and st == 400, "malformed policy -> 400 %s" % code)
    v2 = iot.create_policy_version(policyName="dev-connect", policyDocument=POLICY2,
                                   setAsDefault=True)
    check(v2["policyVersionId"] == "2" and v2["isDefaultVersion"], "CreatePolicyVersion default")
    g = iot.get_policy(policyName="dev-connect")
    check(g["defaultVersionId"] == "2" and json.loads(g["policyDocument"]) == json.loads(POLICY2),
          "GetPolicy shows version 2")
    vs = iot.list_policy_versions(policyName="dev-connect")["policyVersions"]
    check(sorted((x["versionId"], x["isDefaultVersion"]) for x in vs) ==
          [("1", False), ("2", True)], "ListPolicyVersions")
    check(json.loads(iot.get_policy_version(policyName="dev-connect", policyVersionId="1")
                     ["policyDocument"]) == json.loads(POLICY), "GetPolicyVersion 1")
    code, st, _ = error_of(lambda: iot.delete_policy_version(policyName="dev-connect",
                                                             policyVersionId="2"))
    check(code == "DeleteConflictException" and st == 409,
          "DeletePolicyVersion of the default -> 409 %s" % code)
    iot.set_default_policy_version(policyName="dev-connect", policyVersionId="1")
    iot.delete_policy_version(policyName="dev-connect", policyVersionId="2")
    check([x["versionId"] for x in iot.list_policy_versions(policyName="dev-connect")
           ["policyVersions"]] == ["1"], "SetDefaultPolicyVersion + DeletePolicyVersion")
    group_arn = iot.describe_thing_group(thingGroupName="line-a")["thingGroupArn"]
    iot.attach_policy(policyName="dev-connect", target=group_arn)
    check([x["policyName"] for x in iot.list_attached_policies(target=group_arn)["policies"]] ==
          ["dev-connect"], "AttachPolicy to a group + ListAttachedPolicies")
    check(iot.list_targets_for_policy(policyName="dev-connect")["targets"] == [group_arn],
          "ListTargetsForPolicy")
    code, st, _ = error_of(lambda: iot.delete_policy(policyName="dev-connect"))
    check(code == "DeleteConflictException" and st == 409,
          "DeletePolicy while attached -> 409 %s" % code)
    code, st, _ = error_of(lambda: iot.delete_thing_group(thingGroupName="plant"))
    check(code == "InvalidRequestException" and st == 400,
          "DeleteThingGroup with a child group -> 400 %s" % code)
    iot.detach_policy(policyName="dev-connect", target=group_arn)
    iot.delete_policy(policyName="dev-connect")
    code, _, _ = error_of(lambda: iot.get_policy(policyName="dev-connect"))
    check(code == "ResourceNotFoundException", "DeletePolicy")
    iot.delete_thing_group(thingGroupName="line-a")
    iot.delete_thing_group(thingGroupName="plant")
    check(iot.list_thing_groups()["thingGroups"] == [] and
          iot.list_thing_groups_for_thing(thingName="pump-1")["thingGroups"] == [],
          "groups deleted, memberships gone with them")
    iot.delete_thing(thingName="pump-1")
    iot.delete_thing(thingName="pump-2")
    iot.delete_thing(thingName="pump-2")
    check(iot.list_things()["things"] == [], "DeleteThing (twice is fine)")


def pagination(iot):
    n = 27
    for i in range(n):
        iot.create_thing(thingName="p-%02d" % i)
    items, pages = walk(iot.list_things, "things", "nextToken", "nextToken", maxResults=10)
    names = [t["thingName"] for t in items]
    check(sorted(names) == ["p-%02d" % i for i in range(n)] and len(names) == n and pages == 3,
          "ListThings maxResults=10: %d things in %d pages, each once" % (len(names), pages))
    pag = iot.get_paginator("list_things").paginate(PaginationConfig={"PageSize": 4})
    names = [t["thingName"] for page in pag for t in page["things"]]
    check(sorted(names) == ["p-%02d" % i for i in range(n)] and len(set(names)) == n,
          "boto3 paginator over ListThings: every thing once")
    for i in range(12):
        iot.create_policy(policyName="pol-%02d" % i, policyDocument=POLICY)
    items, pages = walk(iot.list_policies, "policies", "marker", "nextMarker", pageSize=5)
    names = [p["policyName"] for p in items]
    check(sorted(names) == ["pol-%02d" % i for i in range(12)] and len(names) == 12 and
          pages == 3, "ListPolicies pageSize=5 with markers: each policy once")
    for i in range(7):
        iot.create_thing_group(thingGroupName="g-%d" % i)
    items, pages = walk(iot.list_thing_groups, "thingGroups", "nextToken", "nextToken",
                        maxResults=3)
    check(sorted(g["groupName"] for g in items) == ["g-%d" % i for i in range(7)] and pages == 3,
          "ListThingGroups maxResults=3: each group once")
    code, st, _ = error_of(lambda: iot.list_things(nextToken="garbage!!", maxResults=5))
    check(code == "InvalidRequestException" and st == 400, "a corrupted nextToken -> 400 %s" % code)
    code, st, _ = error_of(lambda: iot.list_things(maxResults=251))
    check(code is not None, "maxResults=251 refused (%s)" % code)


def cli_life(aws, url, ca, key, tag, n_things):
    """The common operator tasks through one CLI; tag keeps names apart."""
    t = "cli-%s" % tag

    def ok(what, r, pred=lambda o: True):
        rc, out, errtext = r
        return check(rc == 0 and out is not None and pred(out),
                     "%s: %s (%s)" % (aws, what, errtext.strip()[-200:]))

    ok("create-thing-type", cli(aws, url, ca, key, "create-thing-type", "--thing-type-name",
                                t + "-type"),
       lambda o: o.get("thingTypeName") == t + "-type")
    ok("create-thing", cli(aws, url, ca, key, "create-thing", "--thing-name", t,
                           "--thing-type-name", t + "-type", "--attribute-payload",
                           '{"attributes":{"site":"lab"}}'),
       lambda o: o.get("thingName") == t)
    ok("update-thing --expected-version", cli(aws, url, ca, key, "update-thing", "--thing-name",
                                              t, "--expected-version", "1",
                                              "--attribute-payload",
                                              '{"attributes":{"rack":"7"},"merge":true}'))
    ok("describe-thing", cli(aws, url, ca, key, "describe-thing", "--thing-name", t),
       lambda o: o.get("version") == 2 and o.get("attributes") == {"site": "lab", "rack": "7"})
    rc, _, errtext = cli(aws, url, ca, key, "update-thing", "--thing-name", t,
                         "--expected-version", "1")
    check(rc != 0 and "VersionConflictException" in errtext,
          "%s: stale --expected-version -> VersionConflictException" % aws)
    # the CLI pages by itself: a page size below the count exercises nextToken
    ok("list-things --page-size 3 (all pages)",
       cli(aws, url, ca, key, "list-things", "--page-size", "3"),
       lambda o: len(o.get("things", [])) == n_things and
       len({x["thingName"] for x in o["things"]}) == n_things)
    ok("create-thing-group parent", cli(aws, url, ca, key, "create-thing-group",
                                        "--thing-group-name", t + "-root"))
    ok("create-thing-group --parent-group-name",
       cli(aws, url, ca, key, "create-thing-group", "--thing-group-name", t + "-child",
           "--parent-group-name", t + "-root"))
    ok("add-thing-to-thing-group", cli(aws, url, ca, key, "add-thing-to-thing-group",
                                       "--thing-group-name", t + "-child", "--thing-name", t))
    ok("list-things-in-thing-group --recursive",
       cli(aws, url, ca, key, "list-things-in-thing-group", "--thing-group-name", t + "-root",
           "--recursive"),
       lambda o: o.get("things") == [t])
    ok("create-policy", cli(aws, url, ca, key, "create-policy", "--policy-name", t + "-pol",
                            "--policy-document", POLICY),
       lambda o: o.get("policyVersionId") == "1")
    rc, out, _ = cli(aws, url, ca, key, "describe-thing-group", "--thing-group-name",
                     t + "-child")
    arn = out.get("thingGroupArn", "") if out else ""
    ok("attach-policy to the group", cli(aws, url, ca, key, "attach-policy", "--policy-name",
                                         t + "-pol", "--target", arn))
    ok("list-attached-policies", cli(aws, url, ca, key, "list-attached-policies", "--target", arn),
       lambda o: [p["policyName"] for p in o.get("policies", [])] == [t + "-pol"])
    rc, _, errtext = cli(aws, url, ca, key, "delete-policy", "--policy-name", t + "-pol")
    check(rc != 0 and "DeleteConflictException" in errtext,
          "%s: delete-policy while attached -> DeleteConflictException" % aws)


def main():
    if not os.access(IOTPROVD, os.X_OK):
        print("iotprovd not built at %s" % IOTPROVD)
        return 1
    tmp = tempfile.mkdtemp(prefix="iotp-e2e-api-registry-")
    data = os.path.join(tmp, "data")
    daemon = None
    try:
        print("data dir made with " + make_data_dir(data))
        ca = os.path.join(data, "ca-bundle.pem")
        operator = key_create(data, "operator")
        daemon = Daemon(data)
        iot = boto3_client(daemon.url, ca, operator)
        section(things_life, iot)
        section(groups_and_policies, iot)
        section(pagination, iot)
        for i, aws in enumerate(CLIS):
            # 27 things from pagination() + one per CLI run so far
            section(cli_life, aws, daemon.url, ca, operator, str(i), 27 + i + 1)
        if not CLIS:
            print("skip the CLI part: no aws CLI installed")
        check(healthy(daemon.port, ca), "healthz at the end")
        rc = daemon.stop()
        check(rc == 0, "SIGTERM: exit status %s" % rc)
    finally:
        if daemon is not None and daemon.alive():
            daemon.proc.kill()
            daemon.proc.wait()
        if daemon is not None and failures:
            print(daemon.read_log()[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
