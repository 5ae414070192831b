// The server's two S3 identities, with the IAM policies the program renders,
// on moto's S3 server with IAM enforcement on (every request authenticated
// and authorized by moto's IAM): what a compromised server can do with the
// keys it holds. The writer's requests go through the real uploader
// (infra/backup/s3-put.py); the rest through the AWS CLI. The bucket is set
// up as prod's: versioned, Object Lock with a default retention.
//
// moto does not evaluate what the bucket policy adds (README, Backups: what
// moto shows and what it does not): its conditions are not evaluated, so the
// policy is not applied here, and test/support/backup-stack.ts checks its
// statements instead. Nor does moto authorize PutObjectRetention as its own
// action (it takes it for s3:PutObject), so the writer's lack of it is shown
// by its policy's statements, not here.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { backupWriterPolicy, restoreDrillReaderPolicy } from "../../infra/backup/render.js";
import { SERVER_PATH } from "../support/backup-harness.js";
import { MOTO_REGION, startMoto, type MotoServer } from "../support/moto.js";
import { answerLosingRelay } from "../support/relay.js";
import { REPO } from "../support/project.js";
import { tempDir } from "../support/system.js";

const BUCKET = "bbaegok-prod-db-backups";
const STACK = "prod";
const UPLOADER = join(REPO, "infra", "backup", "s3-put.py");
const EXISTING = `${STACK}/bbaegok/20260101T040001Z.sql.zst`;

interface Identity {
  id: string;
  secret: string;
  /** The AWS CLI's environment as this identity. */
  env: NodeJS.ProcessEnv;
  /** A shared-credentials file holding its key, as the server has it. */
  file: string;
}

describe("the backup identities on moto with IAM enforced: what a compromised server's keys can do", () => {
  let s3: MotoServer;
  let writer: Identity;
  let drill: Identity;
  let admin: Identity;
  const dir = tempDir("backup-identities");

  const identity = (user: string, policy: string, write: (id: string, secret: string) => string): Identity => {
    const must = (args: string[]) => {
      const r = s3.aws(args);
      assert.equal(r.status, 0, `aws ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    must(["iam", "create-user", "--user-name", user]);
    must(["iam", "put-user-policy", "--user-name", user, "--policy-name", `${user}-policy`, "--policy-document", policy]);
    const key = (JSON.parse(must(["iam", "create-access-key", "--user-name", user, "--output", "json"])) as { AccessKey: { AccessKeyId: string; SecretAccessKey: string } }).AccessKey;
    return {
      id: key.AccessKeyId,
      secret: key.SecretAccessKey,
      env: { AWS_ACCESS_KEY_ID: key.AccessKeyId, AWS_SECRET_ACCESS_KEY: key.SecretAccessKey },
      file: write(key.AccessKeyId, key.SecretAccessKey),
    };
  };

  /** The uploader as backup.sh runs it, with the given credentials file. */
  const upload = (credentials: string, key: string, body: string) => {
    const r = spawnSync("python3", [UPLOADER, "--region", MOTO_REGION, "--endpoint-url", s3.endpoint, "--credentials-file", credentials, "-", `s3://${BUCKET}/${key}`], {
      env: { PATH: SERVER_PATH, HOME: "/nonexistent" },
      input: body,
      encoding: "utf8",
      timeout: 60_000,
    });
    return { status: r.status ?? -1, stderr: r.stderr };
  };
  const as = (who: Identity, args: string[]) => s3.aws(args, who.env);
  const refused = (r: { status: number; stderr: string }, what: string) => {
    assert.notEqual(r.status, 0, `${what} was allowed`);
    assert.match(r.stderr, /AccessDenied|Access Denied|403/, `${what}: ${r.stderr}`);
  };
  const versionsOf = (key: string) =>
    (JSON.parse(as(admin, ["s3api", "list-object-versions", "--bucket", BUCKET, "--prefix", key, "--output", "json"]).stdout) as { Versions?: { Key: string; VersionId: string }[] }).Versions?.filter((v) => v.Key === key) ?? [];

  before(async () => {
    s3 = await startMoto([{ name: BUCKET, objectLock: true }]);
    const file = (id: string, secret: string) => s3.credentialsFileFor(id, secret);
    admin = identity("operator", JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] }), file);
    writer = identity("bbaegok-prod-backup", backupWriterPolicy(BUCKET, STACK), file);
    drill = identity("bbaegok-prod-restore-drill", restoreDrillReaderPolicy(BUCKET, STACK), file);
    await s3.enforceIam();
    const first = upload(writer.file, EXISTING, "the first backup");
    assert.equal(first.status, 0, first.stderr);
  });
  after(async () => {
    await s3?.stop();
    dir.remove();
  });

  it("enforces IAM: an unknown key and a wrong secret are refused", () => {
    const unknown = upload(s3.credentialsFileFor("AKIAUNKNOWNKEY000000", "whatever"), `${STACK}/bbaegok/x.sql.zst`, "x");
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /InvalidAccessKeyId/);
    const wrongSecret = upload(s3.credentialsFileFor(writer.id, "not-the-secret"), `${STACK}/bbaegok/x.sql.zst`, "x");
    assert.equal(wrongSecret.status, 1);
    assert.match(wrongSecret.stderr, /SignatureDoesNotMatch/);
  });

  it("the put-only key puts a new backup under its stack's prefix", () => {
    const r = upload(writer.file, `${STACK}/bbaegok/20260102T040001Z.sql.zst`, "the second backup");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(versionsOf(`${STACK}/bbaegok/20260102T040001Z.sql.zst`).length, 1);
  });

  it("the put-only key cannot overwrite a backup: 412 from If-None-Match, and the key keeps its one version", () => {
    const r = upload(writer.file, EXISTING, "ransom note");
    assert.equal(r.status, 3, r.stderr);
    assert.equal(r.stderr, `s3-put: an object already exists at s3://${BUCKET}/${EXISTING}: backups are never overwritten; the multipart upload was aborted, nothing was written\n`);
    assert.equal(versionsOf(EXISTING).length, 1);
  });

  it("the put-only key may ask whether its own upload completed: a completion whose answer was lost, refused on the retry, is found done", async () => {
    const key = `${STACK}/bbaegok/20260104T040001Z.sql.zst`;
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code><Message>forged by the test</Message></Error>`;
    const refusal = `HTTP/1.1 412 Precondition Failed\r\nContent-Type: application/xml\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
    const relay = await answerLosingRelay(s3.endpoint, new RegExp(`^POST /${BUCKET}/${key}\\?uploadId=`), refusal);
    // spawnSync would block the relay, which runs in this process.
    const r = await new Promise<{ status: number; stderr: string }>((resolve) => {
      const child = spawn("python3", [UPLOADER, "--region", MOTO_REGION, "--endpoint-url", relay.endpoint, "--credentials-file", writer.file, "-", `s3://${BUCKET}/${key}`], { env: { PATH: SERVER_PATH, HOME: "/nonexistent" } });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.once("close", (code) => resolve({ status: code ?? -1, stderr }));
      child.stdin.end("the fourth backup");
    }).finally(() => relay.close());
    assert.equal(relay.matched().length, 2, relay.matched().join(" | "));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(versionsOf(key).length, 1);
  });

  it("the put-only key cannot write outside its stack's prefix", () => {
    const r = upload(writer.file, "staging/bbaegok/20260102T040001Z.sql.zst", "x");
    assert.equal(r.status, 1);
    assert.match(r.stderr, /AccessDenied/);
  });

  it("the put-only key cannot read, list, or delete a backup or a version of it", () => {
    const [version] = versionsOf(EXISTING);
    assert.ok(version);
    refused(as(writer, ["s3api", "get-object", "--bucket", BUCKET, "--key", EXISTING, join(dir.path, "read")]), "GetObject");
    refused(as(writer, ["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", `${STACK}/`]), "ListObjectsV2");
    refused(as(writer, ["s3api", "list-object-versions", "--bucket", BUCKET, "--prefix", `${STACK}/`]), "ListObjectVersions");
    refused(as(writer, ["s3api", "delete-object", "--bucket", BUCKET, "--key", EXISTING]), "DeleteObject");
    refused(as(writer, ["s3api", "delete-object", "--bucket", BUCKET, "--key", EXISTING, "--version-id", version.VersionId]), "DeleteObjectVersion");
    assert.equal(versionsOf(EXISTING).length, 1);
  });

  it("the drill key lists versions and reads a backup's first version, and cannot write or delete", () => {
    const listed = as(drill, ["s3api", "list-object-versions", "--bucket", BUCKET, "--prefix", `${STACK}/`, "--output", "json"]);
    assert.equal(listed.status, 0, listed.stderr);
    const version = (JSON.parse(listed.stdout) as { Versions: { Key: string; VersionId: string }[] }).Versions.find((v) => v.Key === EXISTING);
    assert.ok(version, "the drill key does not see the backup");
    const read = as(drill, ["s3api", "get-object", "--bucket", BUCKET, "--key", EXISTING, "--version-id", version.VersionId, join(dir.path, "drill-read")]);
    assert.equal(read.status, 0, read.stderr);
    const put = upload(drill.file, `${STACK}/bbaegok/20260103T040001Z.sql.zst`, "x");
    assert.equal(put.status, 1);
    assert.match(put.stderr, /AccessDenied/);
    refused(as(drill, ["s3api", "delete-object", "--bucket", BUCKET, "--key", EXISTING, "--version-id", version.VersionId]), "the drill's DeleteObjectVersion");
  });

  it("Object Lock refuses to delete a version inside its retention, even to a key that may do everything", () => {
    // moto 5.2.5 applies the bucket's default retention to a PutObject only,
    // not to a completed multipart upload, which is how the uploader writes
    // every backup (S3 applies it to every new version): the locked version
    // here is the operator's PutObject.
    const key = `${STACK}/bbaegok/20260105T040001Z.sql.zst`;
    const file = join(dir.path, "locked");
    writeFileSync(file, "a locked backup");
    const md5 = createHash("md5").update("a locked backup").digest("base64");
    const put = as(admin, ["s3api", "put-object", "--bucket", BUCKET, "--key", key, "--body", file, "--content-md5", md5]);
    assert.equal(put.status, 0, put.stderr);
    const [version] = versionsOf(key);
    assert.ok(version);
    const r = as(admin, ["s3api", "delete-object", "--bucket", BUCKET, "--key", key, "--version-id", version.VersionId]);
    refused(r, "deleting a locked version");
    assert.equal(versionsOf(key).length, 1);
  });
});
