// Drives a running `pemba serve` through its authzed.api.v1 API with
// @authzed/authzed-node, as a Node program written for SpiceDB would:
// schema, relationships, checks (every consistency mode, caveat context),
// lookups, watch resumed from a ZedToken, deletes.
//
//   node test.mjs HOST:PORT KEY
//
// Prints "ok STEP" after each step and "PASS" at the end; on the first
// failure prints "FAIL STEP: why" and exits 1. Run by cmd/pemba's
// TestAuthzedNode.
import { v1, protobuf } from "@authzed/authzed-node";
import grpc from "@grpc/grpc-js";

const [addr, key] = process.argv.slice(2);
if (!addr || !key) {
  console.error("usage: node test.mjs HOST:PORT KEY");
  process.exit(2);
}

// No step may hang: the Go test reads the exit status.
const timer = setTimeout(() => {
  console.log("FAIL timeout: the run took more than 60 s");
  process.exit(1);
}, 60_000);

let step = "connect";
function fail(why) {
  throw new Error(why);
}
function expectEqual(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) fail(`${what}: got ${g}, want ${w}`);
}

// Plaintext to a loopback address, the key sent as a bearer token anyway.
const insecure = v1.ClientSecurity.INSECURE_PLAINTEXT_CREDENTIALS;
const client = v1.NewClient(key, addr, insecure);
const p = client.promises;

const obj = (objectType, objectId) => v1.ObjectReference.create({ objectType, objectId });
const subj = (objectType, objectId, optionalRelation = "") =>
  v1.SubjectReference.create({ object: obj(objectType, objectId), optionalRelation });
const full = v1.Consistency.create({ requirement: { oneofKind: "fullyConsistent", fullyConsistent: true } });
const fresh = (token) => v1.Consistency.create({ requirement: { oneofKind: "atLeastAsFresh", atLeastAsFresh: token } });
const exact = (token) => v1.Consistency.create({ requirement: { oneofKind: "atExactSnapshot", atExactSnapshot: token } });
const minimize = v1.Consistency.create({ requirement: { oneofKind: "minimizeLatency", minimizeLatency: true } });
const Perm = v1.CheckPermissionResponse_Permissionship;

const schema = `
caveat on_weekday(day string) {
  day != "sunday"
}

definition user {}

definition group {
  relation member: user
}

definition document {
  relation owner: user
  relation viewer: user | group#member | user with on_weekday
  permission edit = owner
  permission view = viewer + edit
}
`;

const rel = (res, relation, subject, caveat) =>
  v1.Relationship.create({
    resource: obj("document", res),
    relation,
    subject,
    optionalCaveat: caveat,
  });
const update = (operation, relationship) => v1.RelationshipUpdate.create({ operation, relationship });
const Op = v1.RelationshipUpdate_Operation;

async function check(res, permission, subject, consistency, context) {
  const r = await p.checkPermission(
    v1.CheckPermissionRequest.create({
      consistency,
      resource: obj("document", res),
      permission,
      subject,
      context: context && protobuf.Struct.fromJson(context),
    }),
  );
  return Perm[r.permissionship];
}

async function main() {
  step = "wrong key";
  const bad = v1.NewClient("not-the-key", addr, insecure);
  try {
    await bad.promises.readSchema(v1.ReadSchemaRequest.create({}));
    fail("a wrong key was accepted");
  } catch (err) {
    if (err.code !== grpc.status.UNAUTHENTICATED) fail(`want UNAUTHENTICATED, got ${err.code}: ${err.message}`);
  } finally {
    bad.close();
  }
  console.log("ok wrong key");

  step = "write schema";
  const ws = await p.writeSchema(v1.WriteSchemaRequest.create({ schema }));
  if (!ws.writtenAt?.token) fail("no writtenAt ZedToken");
  const schemaToken = ws.writtenAt;
  console.log("ok write schema");

  step = "read schema";
  const rs = await p.readSchema(v1.ReadSchemaRequest.create({}));
  for (const want of ["definition document", "caveat on_weekday", "user with on_weekday"]) {
    if (!rs.schemaText.includes(want)) fail(`schema read back lacks ${JSON.stringify(want)}:\n${rs.schemaText}`);
  }
  console.log("ok read schema");

  step = "write relationships";
  const weekday = v1.ContextualizedCaveat.create({ caveatName: "on_weekday" });
  const wr = await p.writeRelationships(
    v1.WriteRelationshipsRequest.create({
      updates: [
        update(Op.CREATE, rel("readme", "owner", subj("user", "alice"))),
        update(Op.CREATE, rel("readme", "viewer", subj("group", "eng", "member"))),
        update(Op.TOUCH, rel("readme", "viewer", subj("user", "carol"), weekday)),
        update(Op.TOUCH, rel("plan", "viewer", subj("user", "bob"))),
        v1.RelationshipUpdate.create({
          operation: Op.CREATE,
          relationship: v1.Relationship.create({
            resource: obj("group", "eng"),
            relation: "member",
            subject: subj("user", "bob"),
          }),
        }),
      ],
    }),
  );
  const written = wr.writtenAt;
  if (!written?.token) fail("no writtenAt ZedToken");
  // CREATE of an existing relationship fails with ALREADY_EXISTS and
  // changes nothing.
  try {
    await p.writeRelationships(
      v1.WriteRelationshipsRequest.create({
        updates: [update(Op.CREATE, rel("readme", "owner", subj("user", "alice")))],
      }),
    );
    fail("a duplicate CREATE was accepted");
  } catch (err) {
    if (err.code !== grpc.status.ALREADY_EXISTS) fail(`duplicate CREATE: want ALREADY_EXISTS, got ${err.code}: ${err.message}`);
  }
  console.log("ok write relationships");

  step = "check";
  const checks = [
    ["readme", "view", subj("user", "alice"), full, undefined, "HAS_PERMISSION"],
    ["readme", "edit", subj("user", "alice"), fresh(written), undefined, "HAS_PERMISSION"],
    ["readme", "view", subj("user", "bob"), exact(written), undefined, "HAS_PERMISSION"],
    ["readme", "edit", subj("user", "bob"), full, undefined, "NO_PERMISSION"],
    ["readme", "view", subj("user", "dave"), full, undefined, "NO_PERMISSION"],
    ["readme", "view", subj("user", "carol"), full, undefined, "CONDITIONAL_PERMISSION"],
    ["readme", "view", subj("user", "carol"), full, { day: "monday" }, "HAS_PERMISSION"],
    ["readme", "view", subj("user", "carol"), full, { day: "sunday" }, "NO_PERMISSION"],
    // Before the relationships were written, at the schema's revision.
    ["readme", "view", subj("user", "alice"), exact(schemaToken), undefined, "NO_PERMISSION"],
  ];
  for (const [res, perm, s, cons, ctx, want] of checks) {
    const what = `${res}#${perm}@${s.object.objectType}:${s.object.objectId} ${cons.requirement.oneofKind} ${JSON.stringify(ctx ?? {})}`;
    expectEqual(await check(res, perm, s, cons, ctx), want, what);
  }
  // minimize_latency may read an older revision: only its form is checked.
  const ml = await check("readme", "view", subj("user", "alice"), minimize);
  if (!ml.startsWith("")) fail(`minimize_latency answered ${ml}`);
  // An unknown definition is the caller's error.
  try {
    await check("readme", "view", subj("robot", "r2"), full);
    fail("a check of an unknown subject type succeeded");
  } catch (err) {
    if (err.code !== grpc.status.FAILED_PRECONDITION && err.code !== grpc.status.INVALID_ARGUMENT) {
      fail(`unknown subject type: want FAILED_PRECONDITION or INVALID_ARGUMENT, got ${err.code}: ${err.message}`);
    }
  }
  console.log("ok check");

  step = "lookup resources";
  const lr = await p.lookupResources(
    v1.LookupResourcesRequest.create({
      consistency: full,
      resourceObjectType: "document",
      permission: "view",
      subject: subj("user", "bob"),
    }),
  );
  expectEqual(lr.map((r) => r.resourceObjectId).sort(), ["plan", "readme"], "documents bob can view");
  console.log("ok lookup resources");

  step = "lookup subjects";
  const ls = await p.lookupSubjects(
    v1.LookupSubjectsRequest.create({
      consistency: full,
      resource: obj("document", "readme"),
      permission: "view",
      subjectObjectType: "user",
    }),
  );
  const LP = v1.LookupPermissionship;
  expectEqual(
    ls.map((r) => `${r.subject.subjectObjectId}:${LP[r.subject.permissionship]}`).sort(),
    [
      "alice:HAS_PERMISSION",
      "bob:HAS_PERMISSION",
      "carol:CONDITIONAL_PERMISSION",
    ],
    "users who can view readme",
  );
  console.log("ok lookup subjects");

  step = "delete";
  const del = await p.deleteRelationships(
    v1.DeleteRelationshipsRequest.create({
      relationshipFilter: v1.RelationshipFilter.create({
        resourceType: "group",
        optionalResourceId: "eng",
        optionalRelation: "member",
      }),
    }),
  );
  expectEqual(
    await check("readme", "view", subj("user", "bob"), fresh(del.deletedAt), undefined),
    "NO_PERMISSION",
    "bob after leaving eng",
  );
  console.log("ok delete");

  step = "watch";
  // Resumed from the schema's ZedToken: every relationship change since,
  // in order, then the stream is cancelled.
  // A created relationship may be reported as CREATE or TOUCH (SpiceDB
  // reports TOUCH), so both read as WRITE here.
  const want = [
    "WRITE document:readme#owner@user:alice",
    "WRITE document:readme#viewer@group:eng#member",
    "WRITE document:readme#viewer@user:carol[on_weekday]",
    "WRITE document:plan#viewer@user:bob",
    "WRITE group:eng#member@user:bob",
    "DELETE group:eng#member@user:bob",
  ];
  const seen = await new Promise((resolve, reject) => {
    const got = [];
    const stream = client.watch(
      v1.WatchRequest.create({ optionalStartCursor: schemaToken, optionalObjectTypes: [] }),
    );
    stream.on("data", (resp) => {
      for (const u of resp.updates) {
        const r = u.relationship;
        const s = r.subject;
        const sr = s.optionalRelation ? `#${s.optionalRelation}` : "";
        const cv = r.optionalCaveat ? `[${r.optionalCaveat.caveatName}]` : "";
        got.push(
          `${u.operation === Op.DELETE ? "DELETE" : "WRITE"} ${r.resource.objectType}:${r.resource.objectId}#${r.relation}@${s.object.objectType}:${s.object.objectId}${sr}${cv}`,
        );
      }
      if (got.length >= want.length) {
        stream.cancel();
        resolve(got);
      }
    });
    stream.on("error", (err) => {
      if (err.code !== grpc.status.CANCELLED) reject(err);
    });
    stream.on("end", () => resolve(got));
  });
  // Within one transaction the order of updates is not specified.
  expectEqual([...seen.slice(0, 5)].sort(), [...want.slice(0, 5)].sort(), "changes of the first write");
  expectEqual(seen.slice(5), want.slice(5), "changes of the delete");
  console.log("ok watch");
}

try {
  await main();
  console.log("PASS");
} catch (err) {
  console.log(`FAIL ${step}: ${err?.message ?? err}`);
  process.exitCode = 1;
} finally {
  client.close();
  clearTimeout(timer);
}
