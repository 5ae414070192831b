// The backup checks every stack must pass under mocks, written once and run
// by one test file per stack (test/stack/backup-<stack>.test.ts): the bucket's
// settings follow the stack file, the server's identities can do only what
// they must, secrets stay secret, and the cron entry is valid.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MOCK_SECRET_PREFIX } from "../../ops/offline/mocks.js";
import type { PlannedResource } from "../../ops/offline/plan.js";
import { violations } from "../../policy/rules.js";
import { uploaderScript } from "../../infra/backup/render.js";
import { cronProblem } from "../../stacks/config/cron.js";
import { loadStack } from "../../stacks/config/load.js";
import { planInChild, REPO } from "./project.js";

interface Statement {
  Sid?: string;
  Effect?: string;
  Action?: string | string[];
  NotAction?: unknown;
  Resource?: string | string[];
  NotResource?: unknown;
  Principal?: unknown;
  Condition?: Record<string, Record<string, string | string[]>>;
}

const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function statements(policy: unknown): Statement[] {
  assert.equal(typeof policy, "string", "the policy is not a JSON string");
  const doc = JSON.parse(policy as string) as { Version?: string; Statement?: Statement[] };
  assert.equal(doc.Version, "2012-10-17");
  assert.ok(Array.isArray(doc.Statement) && doc.Statement.length > 0, "the policy has no statements");
  return doc.Statement;
}

export function checkStackBackups(stack: string): void {
  describe(`backups of stack ${stack}, planned with the real program`, () => {
    const config = loadStack(stack, REPO).config;
    const backup = config.backup;
    const plan = planInChild(stack);
    const ofType = (type: string) => plan.resources.filter((r) => r.type === `aws:s3/${type}`);
    const only = (type: string): PlannedResource => {
      const found = ofType(type);
      assert.equal(found.length, 1, `expected one ${type}, found ${found.length}`);
      return found[0]!;
    };
    const bucketArn = `arn:aws:s3:::${backup.bucket}`;

    it("declares the stack's bucket, in its region, protected and retained on delete", () => {
      const bucket = only("bucket:Bucket");
      assert.equal(bucket.inputs["bucket"], backup.bucket);
      assert.equal(bucket.inputs["region"], backup.region);
      assert.equal(bucket.options.protect, true);
      assert.equal(bucket.options.retainOnDelete, true);
      // Object Lock comes from its own resource: turning it on must never replace the bucket.
      assert.equal(bucket.inputs["objectLockEnabled"], undefined);
    });

    it("ties every setting to that bucket, in the same region", () => {
      const settings = plan.resources.filter((r) => r.type.startsWith("aws:s3/") && r.type !== "aws:s3/bucket:Bucket");
      assert.ok(settings.length >= 6);
      for (const s of settings) {
        assert.equal(s.inputs["bucket"], backup.bucket, `${s.name} is not tied to the bucket`);
        assert.ok(s.options.dependsOn.includes("backup-bucket"), `${s.name} does not depend on the bucket`);
        assert.equal(s.inputs["region"], backup.region, `${s.name} is in another region`);
      }
    });

    it("keeps the bucket whole through a destroy or the removal of backups: every aws:s3/* resource is protected and retained on delete", () => {
      // Pulumi deletes dependents first and refuses a protected resource only
      // when its own delete comes: a configuration without these options would
      // be deleted (versioning suspended, policy and lifecycle gone) before
      // the bucket's refusal. A new configuration resource is held to it too.
      const s3 = plan.resources.filter((r) => r.type.startsWith("aws:s3/"));
      assert.ok(s3.length >= 7, `only ${s3.length} aws:s3/* resources planned`);
      const loose = s3.filter((r) => r.options.protect !== true || r.options.retainOnDelete !== true).map((r) => `${r.name} (${r.type})`);
      assert.deepEqual(loose, [], "bucket resources that a destroy would delete");
    });

    it("versions, encrypts, blocks public access and enforces bucket ownership", () => {
      assert.deepEqual(only("bucketVersioning:BucketVersioning").inputs["versioningConfiguration"], { status: "Enabled" });
      const rules = only("bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").inputs["rules"] as { applyServerSideEncryptionByDefault: { sseAlgorithm: string } }[];
      assert.equal(rules[0]?.applyServerSideEncryptionByDefault.sseAlgorithm, backup.encryption === "kms" ? "aws:kms" : "AES256");
      const block = only("bucketPublicAccessBlock:BucketPublicAccessBlock").inputs;
      for (const flag of ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"]) assert.equal(block[flag], true, flag);
      assert.deepEqual(only("bucketOwnershipControls:BucketOwnershipControls").inputs["rule"], { objectOwnership: "BucketOwnerEnforced" });
    });

    it("refuses, for every principal, requests without TLS, writes that could replace an object, and SSE-C uploads", () => {
      const all = statements(only("bucketPolicy:BucketPolicy").inputs["policy"]);
      for (const s of all) {
        assert.equal(s.Effect, "Deny", `statement ${s.Sid}`);
        assert.equal(s.Principal, "*", `statement ${s.Sid}`);
      }
      const bySid = (sid: string) => {
        const found = all.find((s) => s.Sid === sid);
        assert.ok(found, `no statement ${sid}`);
        return found;
      };
      const tls = bySid("DenyInsecureTransport");
      assert.deepEqual(list(tls.Action), ["s3:*"]);
      assert.deepEqual(list(tls.Resource).sort(), [bucketArn, `${bucketArn}/*`]);
      assert.deepEqual(tls.Condition, { Bool: { "aws:SecureTransport": "false" } });
      // Object-creating requests only: CreateMultipartUpload and UploadPart carry no If-None-Match.
      const overwrite = bySid("DenyWritesThatCouldReplaceAnObject");
      assert.deepEqual(list(overwrite.Action), ["s3:PutObject"]);
      assert.deepEqual(list(overwrite.Resource), [`${bucketArn}/*`]);
      assert.deepEqual(overwrite.Condition, { StringNotEquals: { "s3:if-none-match": "*" }, Bool: { "s3:ObjectCreationOperation": "true" } });
      const ssec = bySid("DenyCustomerProvidedKeys");
      assert.deepEqual(list(ssec.Action), ["s3:PutObject"]);
      assert.deepEqual(list(ssec.Resource), [`${bucketArn}/*`]);
      assert.deepEqual(ssec.Condition, { Null: { "s3:x-amz-server-side-encryption-customer-algorithm": "false" } });
      assert.equal(all.length, 3, `unexpected statements: ${all.map((s) => s.Sid).join(", ")}`);
    });

    it("ages backups out by the stack's retention: colder classes, expiry, old versions, abandoned uploads", () => {
      const r = backup.retention;
      const [rule, ...rest] = only("bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"] as Record<string, unknown>[];
      assert.deepEqual(rest, []);
      assert.equal(rule!["status"], "Enabled");
      assert.deepEqual(rule!["filter"], { prefix: "" });
      assert.deepEqual(rule!["transitions"], [
        { days: r.infrequentAfterDays, storageClass: "STANDARD_IA" },
        { days: r.archiveAfterDays, storageClass: "GLACIER_IR" },
      ]);
      assert.deepEqual(rule!["expiration"], { days: r.expireAfterDays });
      assert.deepEqual(rule!["noncurrentVersionExpiration"], { noncurrentDays: r.noncurrentExpireDays });
      assert.deepEqual(rule!["abortIncompleteMultipartUpload"], { daysAfterInitiation: r.abortMultipartAfterDays });
    });

    it("locks objects as the stack file says", () => {
      const locks = ofType("bucketObjectLockConfiguration:BucketObjectLockConfiguration");
      if (backup.objectLock.mode === "off") {
        assert.deepEqual(locks, []);
        return;
      }
      assert.equal(locks.length, 1);
      assert.equal(locks[0]!.inputs["objectLockEnabled"], "Enabled");
      assert.deepEqual(locks[0]!.inputs["rule"], { defaultRetention: { mode: backup.objectLock.mode.toUpperCase(), days: backup.objectLock.days } });
      assert.ok(locks[0]!.options.dependsOn.includes("backup-versioning"), "Object Lock needs versioning first");
    });

    it("gives the server's backup identity PutObject (and the abort and list of parts of its own multipart uploads) under the stack's prefix and nothing else", () => {
      const policy = plan.resources.find((r) => r.type === "aws:iam/userPolicy:UserPolicy" && r.name === "backup-writer-policy");
      assert.ok(policy);
      assert.equal(policy.inputs["user"], `${config.service}-${stack}-backup`);
      for (const s of statements(policy.inputs["policy"])) {
        assert.equal(s.Effect, "Allow", `statement ${s.Sid}`);
        assert.equal(s.NotAction, undefined);
        assert.equal(s.NotResource, undefined);
        assert.deepEqual(list(s.Action), ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"], `statement ${s.Sid} allows ${String(s.Action)}`);
        assert.deepEqual(list(s.Resource), [`${bucketArn}/${stack}/*`], `statement ${s.Sid} reaches ${String(s.Resource)}`);
        assert.equal(s.Condition, undefined);
      }
    });

    it("gives the restore drill's identity list and read under the stack's prefix, nothing that writes or deletes", () => {
      const policy = plan.resources.find((r) => r.type === "aws:iam/userPolicy:UserPolicy" && r.name === "backup-drill-policy");
      assert.ok(policy);
      const all = statements(policy.inputs["policy"]);
      for (const s of all) {
        assert.equal(s.Effect, "Allow");
        assert.equal(s.NotAction, undefined);
        assert.equal(s.NotResource, undefined);
        for (const action of list(s.Action)) assert.ok(["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:ListBucketVersions"].includes(action), `the drill may ${action}`);
        if (list(s.Action).some((a) => a.startsWith("s3:List"))) {
          assert.deepEqual(list(s.Resource), [bucketArn]);
          assert.deepEqual(s.Condition, { StringLike: { "s3:prefix": [`${stack}/*`] } });
        } else {
          assert.deepEqual(list(s.Resource), [`${bucketArn}/${stack}/*`]);
        }
      }
    });

    it("places both access keys on the server as 0600 root files, secret in the plan, never in clear", () => {
      const files = plan.resources.filter((r) => r.type === "bbaegok:server:File" && String(r.inputs["path"]).includes("/secrets/backup/"));
      assert.deepEqual(files.map((f) => f.inputs["path"]).sort(), [
        `${config.server.dataDir}/${stack}/secrets/backup/aws-credentials`,
        `${config.server.dataDir}/${stack}/secrets/backup/drill-aws-credentials`,
      ]);
      for (const f of files) {
        assert.equal(f.inputs["mode"], "0600");
        assert.equal(f.inputs["owner"], "root:root");
        assert.equal(f.inputs["content"], "[secret]");
      }
      assert.ok(!JSON.stringify(plan).includes(MOCK_SECRET_PREFIX), "a generated secret appears in clear in the plan");
    });

    it("installs the scripts for every database of the stack and one valid cron file of its own", () => {
      const file = (path: string) => plan.resources.find((r) => r.type === "bbaegok:server:File" && r.inputs["path"] === path);
      const script = file(`${config.server.dataDir}/${stack}/backup/backup.sh`);
      const drill = file(`${config.server.dataDir}/${stack}/backup/restore-drill.sh`);
      const uploader = file(`${config.server.dataDir}/${stack}/backup/s3-put.py`);
      assert.ok(script && drill && uploader, "the scripts and the uploader beside them are not all installed");
      assert.equal(script.inputs["mode"], "0755");
      assert.equal(uploader.inputs["mode"], "0755");
      assert.equal(uploader.inputs["owner"], "root:root");
      assert.equal(uploader.inputs["content"], uploaderScript());
      const content = String(script.inputs["content"]);
      assert.match(content, new RegExp(`readonly BUCKET='${backup.bucket}'`));
      assert.match(content, new RegExp(`'${config.database.name} ${config.database.engine} ${config.service}-${stack}-db `));
      assert.equal(content.includes("metabase postgres"), config.metabase.enabled);
      const cron = file(`/etc/cron.d/${config.service}-${stack}-backup`);
      assert.ok(cron, "no cron file");
      assert.equal(cron.inputs["mode"], "0644");
      const entries = String(cron.inputs["content"])
        .split("\n")
        .filter((l) => l.trim() && !l.startsWith("#") && !/^[A-Z_]+=/.test(l));
      assert.equal(entries.length, 2);
      for (const entry of entries) {
        const fields = entry.split(/\s+/);
        assert.equal(cronProblem(fields.slice(0, 5).join(" ")), undefined, entry);
        assert.equal(fields[5], "root");
        assert.match(fields[6]!, new RegExp(`^${config.server.dataDir}/${stack}/backup/(backup|restore-drill)\\.sh$`));
        assert.equal(fields[7], "--scheduled");
      }
      // A component dependency reaches the engine as its children: the commands that install the files.
      assert.ok(
        ["backup-script-install", "backup-uploader-install", "backup-credentials-install"].every((name) => cron.options.dependsOn.includes(name)),
        `cron could run before the script is there: ${cron.options.dependsOn.join(", ")}`,
      );
    });

    it("breaks no guardrail", () => {
      assert.deepEqual(violations(plan.resources), []);
    });
  });
}
