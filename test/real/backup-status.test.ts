// npm run backup:status against moto's S3 server on loopback (versioned
// buckets), as an operator runs it (same entry file, the operator's S3
// credentials): fresh backups
// written by the real backup script from a real MariaDB, and stale, missing,
// future-dated, rewritten and broken ones placed in the bucket by hand.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { BackupManifest } from "../../infra/backup/render.js";
import { formatBytes } from "../../ops/restore/backups.js";
import { renderStackScripts, runNodeCommand, runScript, writeDbExecHook } from "../support/backup-harness.js";
import { startMariaDb, type MariaDb } from "../support/mariadb.js";
import { REPO } from "../support/project.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { freePort, tempDir } from "../support/system.js";

const PROD_BUCKET = "bbaegok-prod-db-backups";
const STAGING_BUCKET = "bbaegok-staging-db-backups";
const HOUR_MS = 3_600_000;

const stampOf = (date: Date) => date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z");

describe("npm run backup:status (the operator's view of the backups in S3)", () => {
  let db: MariaDb;
  let s3: MotoServer;
  const dir = tempDir("backup-status");
  const manifests: Record<string, BackupManifest> = {};
  let uploads = 0;

  const status = (stack: string, endpoint = s3.endpoint) => runNodeCommand(join(REPO, "ops", "backup-status.ts"), ["--stack", stack, "--endpoint-url", endpoint], s3.operatorEnv());
  const newestManifest = (bucket: string, prefix: string) => JSON.parse(s3.get(bucket, s3.keys(bucket, prefix).filter((k) => k.endsWith(".manifest.json")).pop()!).toString("utf8")) as BackupManifest;

  /** Places a PostgreSQL backup of prod's Metabase database in the bucket, with or without its manifest or data. */
  const place = (taken: Date, parts: { manifest: boolean; data: boolean }): string => {
    const stamp = stampOf(taken);
    const key = `prod/metabase/${stamp}.pgdump.zst`;
    const data = Buffer.from(`not really a pg_dump ${stamp}`.repeat(100));
    const manifest: BackupManifest = {
      format: 1,
      stack: "prod",
      database: "metabase",
      engine: "postgres",
      serverVersion: "16.10",
      key,
      createdAt: taken.toISOString(),
      compression: "zstd",
      size: data.length,
      sha256: createHash("sha256").update(data).digest("hex"),
      dumpBytes: data.length * 3,
      durationSeconds: 1.5,
      tables: [
        { name: "public.report_card", rows: 12 },
        { name: "public.core_user", rows: 3 },
      ],
      objects: [],
    };
    const put = (body: Buffer | string, target: string) => {
      const file = join(dir.path, `upload-${++uploads}`);
      writeFileSync(file, body);
      const r = s3.aws(["s3", "cp", file, `s3://${PROD_BUCKET}/${target}`]);
      assert.equal(r.status, 0, r.stderr);
    };
    if (parts.data) put(data, key);
    if (parts.manifest) put(JSON.stringify(manifest), `prod/metabase/${stamp}.manifest.json`);
    return `prod/metabase/${stamp}.manifest.json`;
  };

  before(async () => {
    [db, s3] = await Promise.all([startMariaDb(), startMoto([{ name: PROD_BUCKET, versioned: true }, { name: STAGING_BUCKET, versioned: true }])]);
    db.sql(`CREATE DATABASE bbaegok CHARACTER SET utf8mb4; USE bbaegok;
      CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(50)); INSERT INTO users VALUES (1, '김철수'), (2, '🎉');
      CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(10,2)); INSERT INTO orders VALUES (1, 9.99);`);
    const env = {
      BACKUP_DB_EXEC: writeDbExecHook(dir.path, { MYSQL_UNIX_PORT: db.socket }),
      BACKUP_AWS_CREDENTIALS_FILE: s3.credentialsFile("moto"),
      BACKUP_S3_ENDPOINT_URL: s3.endpoint,
      BACKUP_LOCK_FILE: join(dir.path, "backup.lock"),
      BACKUP_PING_URL_FILE: join(dir.path, "no-ping-url"),
    };
    for (const stack of ["staging", "prod"]) {
      const scripts = renderStackScripts(stack, join(dir.path), (t) => t.engine === "mariadb");
      const run = await runScript(scripts.backup, env);
      assert.equal(run.status, 0, run.stderr);
      manifests[stack] = newestManifest(scripts.bucket, `${stack}/bbaegok/`);
    }
  });
  after(async () => {
    await Promise.all([db?.stop(), s3?.stop()]);
    dir.remove();
  });

  it("fresh: every database's newest backup with its key, age, compressed size and table count; exit 0", async () => {
    const run = await status("staging");
    assert.equal(run.status, 0, run.stdout + run.stderr);
    const m = manifests.staging!;
    const lines = run.stdout.split("\n");
    assert.equal(lines[0], `Backups of stack staging in s3://${STAGING_BUCKET} (schedule "30 4 * * *" in Asia/Seoul; stale after 26 h 0 min)`);
    assert.match(
      lines[1]!,
      new RegExp(`^  bbaegok  ok       ${m.key.replace(/\./g, "\\.")}, taken ${m.createdAt} \\(\\d+ s ago\\), ${formatBytes(m.size).replace(".", "\\.")} compressed from ${formatBytes(m.dumpBytes).replace(".", "\\.")}, 2 tables$`),
    );
    assert.match(run.stdout, /restore drill: results are not kept in S3 \(the drill's identity may only read\); see journalctl -t bbaegok-staging-backup-drill on the server/);
    assert.match(run.stdout, /^OK: every database of staging \(bbaegok\) has a backup within the schedule\.$/m);
  });

  it("missing: a database of the stack with no backup (prod's Metabase) is MISSING; exit 1", async () => {
    const run = await status("prod");
    assert.equal(run.status, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /^  bbaegok   ok       prod\/bbaegok\/\d{8}T\d{6}Z\.sql\.zst, taken /m);
    assert.match(run.stdout, /^  metabase  MISSING  no backup with a manifest under prod\/metabase\/$/m);
    assert.match(run.stdout, /^MISSING: metabase MISSING \(no backup with a manifest under prod\/metabase\/\)\.$/m);
  });

  it("stale: judged by the time in the newest manifest's key past the schedule's 26 h; a newer run without a manifest is named", async () => {
    place(new Date(Date.now() - 30 * HOUR_MS), { manifest: true, data: true });
    const failedRun = stampOf(new Date(Date.now() - 2 * HOUR_MS));
    place(new Date(Date.now() - 2 * HOUR_MS), { manifest: false, data: true });
    const run = await status("prod");
    assert.equal(run.status, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /^  metabase  STALE    prod\/metabase\/\d{8}T\d{6}Z\.pgdump\.zst, taken \S+ \(30 h 0 min ago\), 3\.6 KiB compressed from 10\.8 KiB, 2 tables$/m);
    assert.match(run.stdout, /its newest backup is 30 h 0 min old, more than the 26 h 0 min the schedule allows/);
    assert.match(run.stdout, new RegExp(`1 newer data object without a manifest \\(a failed or running backup\\): prod/metabase/${failedRun}\\.pgdump\\.zst`));
    assert.match(run.stdout, /^STALE: metabase STALE \(its newest backup is 30 h 0 min old/m);
    assert.match(run.stdout, /^  bbaegok   ok /m);
  });

  it("stale: a future-dated key cannot make a backup look fresh; it is refused and named SUSPICIOUS", async () => {
    const forged = place(new Date(Date.UTC(2999, 11, 31)), { manifest: true, data: true });
    try {
      const run = await status("prod");
      assert.equal(run.status, 1, run.stdout + run.stderr);
      assert.match(run.stdout, /^  metabase  STALE    prod\/metabase\/\d{8}T\d{6}Z\.pgdump\.zst, taken \S+ \(30 h 0 min ago\)/m);
      assert.match(run.stdout, /SUSPICIOUS: prod\/metabase\/29991231T000000Z\.manifest\.json is dated 29991231T000000Z, after S3 received it \(\S+; 15 min of clock skew allowed\): refused/);
    } finally {
      s3.purge(PROD_BUCKET, forged);
      s3.purge(PROD_BUCKET, forged.replace(".manifest.json", ".pgdump.zst"));
    }
  });

  it("fresh again once a new backup lands: every database ok, exit 0", async () => {
    place(new Date(Date.now() - 60_000), { manifest: true, data: true });
    const run = await status("prod");
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^  metabase  ok       prod\/metabase\/\d{8}T\d{6}Z\.pgdump\.zst, taken \S+ \(\d+ s ago\)/m);
    assert.match(run.stdout, /^OK: every database of prod \(bbaegok, metabase\) has a backup within the schedule\.$/m);
  });

  it("suspicious: a backup written a second time is SUSPICIOUS (exit 1), judged by its first version", async () => {
    const manifestKey = place(new Date(Date.now() - 30_000), { manifest: true, data: true });
    const dataKey = manifestKey.replace(".manifest.json", ".pgdump.zst");
    const file = join(dir.path, "rewrite");
    writeFileSync(file, "a second version, of another size");
    assert.equal(s3.aws(["s3", "cp", file, `s3://${PROD_BUCKET}/${dataKey}`]).status, 0);
    try {
      const run = await status("prod");
      assert.equal(run.status, 1, run.stdout + run.stderr);
      assert.match(run.stdout, new RegExp(`^  metabase  SUSPICIOUS  ${dataKey.replace(/\./g, "\\.")}, taken .*, 3\\.6 KiB compressed`, "m"));
      assert.match(run.stdout, new RegExp(`SUSPICIOUS: ${dataKey.replace(/\./g, "\\.")} has 2 versions: it was written or hidden after its first upload, which is the one read`));
      assert.match(run.stdout, /^SUSPICIOUS: metabase SUSPICIOUS \(1 key under prod\/metabase\/ was written or dated by someone other than the backup job\)\.$/m);
    } finally {
      s3.purge(PROD_BUCKET, manifestKey);
      s3.purge(PROD_BUCKET, dataKey);
    }
  });

  it("broken: a newest manifest whose data object is not in the bucket is BROKEN, not ok; exit 1", async () => {
    place(new Date(), { manifest: true, data: false });
    const run = await status("prod");
    assert.equal(run.status, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /^  metabase  BROKEN   prod\/metabase\/\d{8}T\d{6}Z\.pgdump\.zst, taken /m);
    assert.match(run.stdout, /its newest manifest names prod\/metabase\/\d{8}T\d{6}Z\.pgdump\.zst, which is not in the bucket/);
  });

  it("says it could not check (exit 3) when S3 is unreachable, and shows the usage (exit 2) without --stack", async () => {
    const closed = await freePort();
    const unreachable = await status("prod", `http://127.0.0.1:${closed}`);
    assert.equal(unreachable.status, 3);
    assert.match(unreachable.stderr, /^backup:status: could not check the backups of prod: listing s3:\/\/bbaegok-prod-db-backups\/prod\/ failed: could not reach http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/m);
    assert.equal(unreachable.stdout, "");
    const usage = await runNodeCommand(join(REPO, "ops", "backup-status.ts"), [], s3.operatorEnv());
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /backup:status: --stack is required\nusage: npm run backup:status -- --stack <name>/);
  });
});
