// The prod stack's backup script, restore command and restore drill, run for
// real against a local MariaDB, moto's S3 server on loopback (a versioned
// bucket, as every backup bucket), the AWS CLI (the drill) and zstd. The only
// stand-in is `docker exec` (test/support/backup-harness.ts).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { BackupManifest } from "../../infra/backup/render.js";
import { assertBackupRefusedWhileLocked, mariadbLogicalDump, renderStackScripts, runRestore, runScript, startPingServer, writeDbExecHook, writeDrillHook, type RenderedScripts } from "../support/backup-harness.js";
import { startMariaDb, type MariaDb } from "../support/mariadb.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { freePort, tempDir } from "../support/system.js";

const STACK = "prod";
const DB = "bbaegok";

// Several tables; Korean text and emoji; binary columns; NULLs; strings that
// look like the dump's own row separators; large rows; a view, triggers,
// routines and an event.
function seedSql(blobs: Buffer[]): string {
  return `
CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE ${DB};
CREATE TABLE users (
  id INT AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  bio TEXT NULL,
  avatar VARBINARY(64) NULL,
  balance DECIMAL(12,2) NULL,
  joined DATETIME(6) NOT NULL
) ENGINE=InnoDB;
INSERT INTO users (name, bio, avatar, balance, joined) VALUES
  ('김철수', '안녕하세요 👋 빼곡 🥟', 0x00FF10A0FFFE, 1234.50, '2025-01-02 03:04:05.123456'),
  ('이영희', NULL, NULL, NULL, '2025-02-03 04:05:06'),
  ('O''Brien), (evil', 'line one\nline two\ttab \\\\ backslash '', quote ),( more', 0x27292C2827, -5.00, '2025-03-04 05:06:07'),
  ('🎉🎊', '', X'', 0.00, '2025-04-05 06:07:08');
CREATE TABLE orders (
  id BIGINT PRIMARY KEY,
  user_id INT NOT NULL,
  total DECIMAL(10,2) NOT NULL,
  memo VARCHAR(255) CHARACTER SET utf8mb4 NULL,
  CONSTRAINT fk_orders_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, order_id BIGINT NOT NULL, note VARCHAR(100) NOT NULL);
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (order_id, note) VALUES (NEW.id, CONCAT('주문 ', NEW.id));
SET SESSION max_recursive_iterations = 100000;
INSERT INTO orders (id, user_id, total, memo)
  WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 3000)
  SELECT n, 1 + (n MOD 4), n * 1.25, IF(n MOD 7 = 0, NULL, CONCAT('메모 ', n, ' 😀')) FROM seq;
CREATE TABLE attachments (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, body LONGBLOB NOT NULL);
${blobs.map((b, i) => `INSERT INTO attachments VALUES (${i + 1}, '첨부${i + 1}.bin', X'${b.toString("hex")}');`).join("\n")}
CREATE TABLE empty_table (id INT PRIMARY KEY, v VARCHAR(10));
CREATE VIEW user_totals AS SELECT u.name, SUM(o.total) AS total FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.name;
DELIMITER //
CREATE PROCEDURE add_order(IN p_id BIGINT, IN p_user INT) BEGIN INSERT INTO orders (id, user_id, total) VALUES (p_id, p_user, 0); END//
CREATE FUNCTION greeting(p_name VARCHAR(100)) RETURNS VARCHAR(120) DETERMINISTIC RETURN CONCAT('안녕, ', p_name)//
DELIMITER ;
CREATE EVENT nightly_cleanup ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM audit WHERE id < 0;
`;
}

describe("backups of a MariaDB database (the prod stack's script, for real)", () => {
  let db: MariaDb;
  let s3: MotoServer;
  let scripts: RenderedScripts;
  let ping: Awaited<ReturnType<typeof startPingServer>>;
  const dir = tempDir("backup-mariadb");
  let env: Record<string, string>;
  const blobs = [randomBytes(3 * 1024 * 1024), randomBytes(1024 * 1024), Buffer.alloc(0)];
  const target = () => `mariadb://root@localhost/${DB}?socket=${encodeURIComponent(db.socket)}`;
  const manifests = () => s3.keys(scripts.bucket, `${STACK}/`).filter((k) => k.endsWith(".manifest.json"));

  before(async () => {
    [db, s3, ping] = await Promise.all([startMariaDb(), startMoto([{ name: "bbaegok-prod-db-backups", versioned: true }]), startPingServer()]);
    scripts = renderStackScripts(STACK, dir.path, (t) => t.engine === "mariadb");
    db.sql(seedSql(blobs));
    const pingFile = join(dir.path, "ping-url");
    writeFileSync(pingFile, `${ping.url}\n`, { mode: 0o600 });
    env = {
      BACKUP_DB_EXEC: writeDbExecHook(dir.path, { MYSQL_UNIX_PORT: db.socket }),
      BACKUP_AWS_CREDENTIALS_FILE: s3.credentialsFile("moto"),
      BACKUP_S3_ENDPOINT_URL: s3.endpoint,
      BACKUP_LOCK_FILE: join(dir.path, "backup.lock"),
      BACKUP_PING_URL_FILE: pingFile,
    };
  });
  after(async () => {
    await Promise.all([db?.stop(), s3?.stop(), ping?.stop()]);
    dir.remove();
  });

  let firstManifest: BackupManifest;
  let before_: string;

  it("backs up: a compressed dump and, last, its manifest with size, sha256, version, tables and row counts", async () => {
    const run = await runScript(scripts.backup, env);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /backup of prod\/bbaegok \(mariadb in container bbaegok-prod-db\) done/);
    const keys = s3.keys(scripts.bucket, `${STACK}/${DB}/`);
    assert.equal(keys.length, 2, String(keys));
    const manifestKey = keys.find((k) => k.endsWith(".manifest.json"))!;
    assert.match(manifestKey, /^prod\/bbaegok\/\d{8}T\d{6}Z\.manifest\.json$/);
    firstManifest = JSON.parse(s3.get(scripts.bucket, manifestKey).toString("utf8")) as BackupManifest;
    const data = s3.get(scripts.bucket, firstManifest.key);
    assert.equal(firstManifest.key, manifestKey.replace(".manifest.json", ".sql.zst"));
    assert.equal(firstManifest.size, data.length);
    assert.equal(firstManifest.sha256, createHash("sha256").update(data).digest("hex"));
    assert.equal(firstManifest.engine, "mariadb");
    assert.match(firstManifest.serverVersion, /MariaDB/);
    assert.ok(firstManifest.dumpBytes > blobs[0]!.length * 2, "the dump is smaller than its hex-encoded blobs");
    assert.ok(firstManifest.size < firstManifest.dumpBytes, "not compressed");
    assert.deepEqual(firstManifest.tables, [
      { name: "attachments", rows: 3 },
      { name: "audit", rows: 3000 },
      { name: "empty_table", rows: 0 },
      { name: "orders", rows: 3000 },
      { name: "users", rows: 4 },
    ]);
    assert.deepEqual(
      firstManifest.objects.map((o) => `${o.type} ${o.name}`),
      ["event nightly_cleanup", "function greeting", "procedure add_order", "trigger orders_audit", "view user_totals"],
    );
    const dump = spawnSync("zstd", ["-dc"], { input: data, maxBuffer: 256 * 1024 * 1024 }).stdout.toString("utf8");
    assert.ok(dump.includes("안녕하세요 👋 빼곡 🥟"), "Korean text and emoji are not in the dump as UTF-8");
    assert.ok(ping.hits.includes("/ping/test-check"), `success was not pinged: ${ping.hits.join(", ")}`);
  });

  it("restores with npm run restore into an emptied database: every table byte for byte, every object back", async () => {
    before_ = mariadbLogicalDump(db.socket, DB);
    db.sql(`DROP DATABASE ${DB}; CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`);
    assert.equal(db.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'bbaegok'").trim(), "0");
    const run = await runRestore(["--stack", STACK, "--target", target(), "--endpoint-url", s3.endpoint], s3.operatorEnv());
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /sha256 matches the manifest/);
    assert.match(run.stderr, /restore \d+%/);
    assert.match(run.stdout, /^Restored prod\/bbaegok\/\d{8}T\d{6}Z\.sql\.zst .* 5 tables and 5 objects match the manifest/);
    assert.equal(mariadbLogicalDump(db.socket, DB), before_, "the restored database dumps differently from the original");
    assert.equal(db.sql(`SELECT bio FROM ${DB}.users WHERE id = 1`).trim(), "안녕하세요 👋 빼곡 🥟");
    assert.equal(db.sql(`SELECT HEX(avatar) FROM ${DB}.users WHERE id = 1`).trim(), "00FF10A0FFFE");
    assert.equal(db.sql(`SELECT bio IS NULL, avatar IS NULL, balance IS NULL FROM ${DB}.users WHERE id = 2`).trim(), "1\t1\t1");
    const sha = db.sql(`SELECT SHA2(body, 256) FROM ${DB}.attachments WHERE id = 1`).trim();
    assert.equal(sha, createHash("sha256").update(blobs[0]!).digest("hex"), "the 3 MiB binary row changed");
    assert.equal(db.sql(`SELECT ${DB}.greeting('빼곡')`).trim(), "안녕, 빼곡");
  });

  it("refuses a target that is not empty, and restores over it with --force", async () => {
    const refused = await runRestore(["--stack", STACK, "--target", target(), "--endpoint-url", s3.endpoint], s3.operatorEnv());
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /restore: the target mariadb:\/\/root@localhost\/bbaegok\?socket=.* is not empty \(table attachments, .*\); restore into an empty database, or pass --force/);
    db.sql(`UPDATE ${DB}.users SET name = 'changed' WHERE id = 1`);
    const forced = await runRestore(["--stack", STACK, "--target", target(), "--force", "--endpoint-url", s3.endpoint], s3.operatorEnv());
    assert.equal(forced.status, 0, forced.stderr);
    assert.equal(mariadbLogicalDump(db.socket, DB), before_);
  });

  it("picks the newest backup at or before --at, and a backup by --key", async () => {
    db.sql(`INSERT INTO ${DB}.users (name, joined) VALUES ('새 사용자', NOW())`);
    const second = await runScript(scripts.backup, env);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(manifests().length, 2);
    const firstTaken = /(\d{8}T\d{6}Z)/.exec(firstManifest.key)![1]!;
    const at = `${firstTaken.slice(0, 4)}-${firstTaken.slice(4, 6)}-${firstTaken.slice(6, 8)}T${firstTaken.slice(9, 11)}:${firstTaken.slice(11, 13)}:${firstTaken.slice(13, 15)}Z`;
    db.sql(`DROP DATABASE ${DB}; CREATE DATABASE ${DB};`);
    const older = await runRestore(["--stack", STACK, "--at", at, "--target", target(), "--endpoint-url", s3.endpoint], s3.operatorEnv());
    assert.equal(older.status, 0, older.stderr);
    assert.equal(db.sql(`SELECT COUNT(*) FROM ${DB}.users`).trim(), "4");
    db.sql(`DROP DATABASE ${DB}; CREATE DATABASE ${DB};`);
    const newest = await runRestore(["--stack", STACK, "--target", target(), "--endpoint-url", s3.endpoint], s3.operatorEnv());
    assert.equal(newest.status, 0, newest.stderr);
    assert.equal(db.sql(`SELECT COUNT(*) FROM ${DB}.users`).trim(), "5");
    db.sql(`DROP DATABASE ${DB}; CREATE DATABASE ${DB};`);
    const byKey = await runRestore(["--stack", STACK, "--key", firstManifest.key, "--target", target(), "--endpoint-url", s3.endpoint], s3.operatorEnv());
    assert.equal(byKey.status, 0, byKey.stderr);
    assert.equal(db.sql(`SELECT COUNT(*) FROM ${DB}.users`).trim(), "4");
    const tooEarly = await runRestore(["--stack", STACK, "--at", "2001-01-01", "--target", target(), "--force", "--endpoint-url", s3.endpoint], s3.operatorEnv());
    assert.equal(tooEarly.status, 1);
    assert.match(tooEarly.stderr, /no backup of prod\/bbaegok at or before 2001-01-01T14:59:59\.000Z has a manifest/);
  });

  it("reads every key at its first version: a second version of the newest backup, or a future-dated manifest, is named SUSPICIOUS and never restored", async () => {
    const newestManifest = manifests().sort().pop()!;
    const manifest = JSON.parse(s3.get(scripts.bucket, newestManifest).toString("utf8")) as BackupManifest;
    // What the server's key could do without the bucket policy (moto does not evaluate it): write the key again.
    const garbage = join(dir.path, "garbage");
    writeFileSync(garbage, "encrypted by ransomware");
    assert.equal(s3.aws(["s3", "cp", garbage, `s3://${scripts.bucket}/${manifest.key}`]).status, 0);
    // And plant a manifest dated in the future, naming that key.
    const planted = join(dir.path, "planted.json");
    writeFileSync(planted, JSON.stringify({ ...manifest, key: `${STACK}/${DB}/29991231T000000Z.sql.zst` }));
    assert.equal(s3.aws(["s3", "cp", planted, `s3://${scripts.bucket}/${STACK}/${DB}/29991231T000000Z.manifest.json`]).status, 0);
    assert.equal(s3.aws(["s3", "cp", garbage, `s3://${scripts.bucket}/${STACK}/${DB}/29991231T000000Z.sql.zst`]).status, 0);
    try {
      db.sql(`DROP DATABASE ${DB}; CREATE DATABASE ${DB};`);
      const run = await runRestore(["--stack", STACK, "--target", target(), "--endpoint-url", s3.endpoint], s3.operatorEnv());
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stderr, new RegExp(`SUSPICIOUS: ${manifest.key.replace(/\./g, "\\.")} has 2 versions: it was written or hidden after its first upload, which is the one read`));
      assert.match(run.stderr, /SUSPICIOUS: prod\/bbaegok\/29991231T000000Z\.manifest\.json is dated 29991231T000000Z, after S3 received it .*refused/);
      assert.match(run.stderr, new RegExp(`Backup: s3://${scripts.bucket}/${newestManifest.replace(/\./g, "\\.")} `));
      assert.match(run.stderr, /sha256 matches the manifest/);
      assert.equal(db.sql(`SELECT COUNT(*) FROM ${DB}.users`).trim(), "5");
      const byKey = await runRestore(["--stack", STACK, "--key", `${STACK}/${DB}/29991231T000000Z.sql.zst`, "--target", target(), "--force", "--endpoint-url", s3.endpoint], s3.operatorEnv());
      assert.equal(byKey.status, 1);
      assert.match(byKey.stderr, /restore: --key "prod\/bbaegok\/29991231T000000Z\.sql\.zst": prod\/bbaegok\/29991231T000000Z\.manifest\.json is dated 29991231T000000Z, after S3 received it/);
    } finally {
      for (const key of [`${STACK}/${DB}/29991231T000000Z.manifest.json`, `${STACK}/${DB}/29991231T000000Z.sql.zst`]) s3.purge(scripts.bucket, key);
      // A key with two versions fails the restore drill as SUSPICIOUS (the drill tests below expect a clean bucket): the rewrite goes.
      const versions = JSON.parse(s3.aws(["s3api", "list-object-versions", "--bucket", scripts.bucket, "--prefix", manifest.key, "--output", "json"]).stdout) as { Versions: { VersionId: string; IsLatest: boolean }[] };
      const rewrite = versions.Versions.find((v) => v.IsLatest)!;
      assert.equal(s3.aws(["s3api", "delete-object", "--bucket", scripts.bucket, "--key", manifest.key, "--version-id", rewrite.VersionId]).status, 0);
    }
  });

  it("a backup archived where S3 will not serve it (Glacier Flexible Retrieval) is named with the command that brings it back, and nothing is restored; once brought back, and in Glacier Instant Retrieval (the lifecycle's archive), it restores", async () => {
    // Copies of the first backup under keys of their own, uploaded straight
    // into a storage class, as a lifecycle transition leaves them (moto runs
    // no lifecycle): moto, as S3, refuses a GET of a GLACIER object until it
    // is restored from the archive.
    const stamp = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString().replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z");
    const data = join(dir.path, "first.sql.zst");
    writeFileSync(data, s3.get(scripts.bucket, firstManifest.key));
    const upload = (storageClass: string, run: string) => {
      const key = `${STACK}/${DB}/${run}.sql.zst`;
      assert.equal(s3.aws(["s3", "cp", data, `s3://${scripts.bucket}/${key}`, "--storage-class", storageClass]).status, 0);
      const manifest = join(dir.path, `${run}.manifest.json`);
      writeFileSync(manifest, JSON.stringify({ ...firstManifest, key }));
      assert.equal(s3.aws(["s3", "cp", manifest, `s3://${scripts.bucket}/${STACK}/${DB}/${run}.manifest.json`]).status, 0);
      return key;
    };
    const archived = upload("GLACIER", stamp(30));
    const instant = upload("GLACIER_IR", stamp(20));
    try {
      db.sql(`INSERT INTO ${DB}.users (name, joined) VALUES ('복원 전', NOW())`);
      const rows = db.sql(`SELECT COUNT(*) FROM ${DB}.users`).trim();
      const refused = await runRestore(["--stack", STACK, "--key", archived, "--target", target(), "--force", "--endpoint-url", s3.endpoint], s3.operatorEnv());
      assert.equal(refused.status, 1, refused.stderr);
      assert.match(refused.stderr, new RegExp(`s3://${scripts.bucket}/${archived.replace(/\./g, "\\.")} is archived \\(S3 Glacier Flexible Retrieval or Deep Archive\\) and cannot be read until it is restored from the archive; nothing was restored`));
      assert.equal(db.sql(`SELECT COUNT(*) FROM ${DB}.users`).trim(), rows, "the target changed");
      // The command it names, run as printed.
      const command = /`aws (s3api restore-object [^`]+)`/.exec(refused.stderr)?.[1];
      if (!command?.includes("--version-id ")) assert.fail(`no restore-object command naming the version: ${refused.stderr}`);
      const thawed = s3.aws(command.split(" "));
      assert.equal(thawed.status, 0, thawed.stderr);
      assert.match(s3.aws(["s3api", "head-object", "--bucket", scripts.bucket, "--key", archived]).stdout, /ongoing-request=\\"false\\"/);
      const restored = await runRestore(["--stack", STACK, "--key", archived, "--target", target(), "--force", "--endpoint-url", s3.endpoint], s3.operatorEnv());
      assert.equal(restored.status, 0, restored.stderr);
      assert.equal(db.sql(`SELECT COUNT(*) FROM ${DB}.users`).trim(), "4");
      db.sql(`DROP DATABASE ${DB}; CREATE DATABASE ${DB};`);
      const fromInstant = await runRestore(["--stack", STACK, "--key", instant, "--target", target(), "--endpoint-url", s3.endpoint], s3.operatorEnv());
      assert.equal(fromInstant.status, 0, fromInstant.stderr);
      assert.equal(mariadbLogicalDump(db.socket, DB), before_);
    } finally {
      for (const key of [archived, instant]) {
        s3.purge(scripts.bucket, key);
        s3.purge(scripts.bucket, key.replace(/\.sql\.zst$/, ".manifest.json"));
      }
    }
  });

  describe("a failed run exits non-zero, says what failed, pings /fail and leaves no manifest", () => {
    const failedRun = async (overrides: Record<string, string>, expected: RegExp) => {
      const manifestsBefore = manifests();
      const hitsBefore = ping.hits.length;
      const run = await runScript(scripts.backup, { ...env, ...overrides });
      assert.notEqual(run.status, 0, "the run succeeded");
      assert.match(run.stderr, expected);
      assert.match(run.stderr, /backup of stack prod: 1 of 1 databases FAILED/);
      assert.deepEqual(manifests(), manifestsBefore, "a failed run wrote a manifest");
      assert.deepEqual(ping.hits.slice(hitsBefore), ["/ping/test-check/fail"]);
      return run;
    };

    it("when the database is down", async () => {
      await failedRun({ BACKUP_DB_EXEC: writeDbExecHook(join(dir.path), { MYSQL_UNIX_PORT: join(dir.path, "no-such.sock") }) }, /backup of prod\/bbaegok \(mariadb in container bbaegok-prod-db\) failed: the database did not answer: .*Can't connect/);
      // Restore the working hook for the next tests.
      env.BACKUP_DB_EXEC = writeDbExecHook(dir.path, { MYSQL_UNIX_PORT: db.socket });
    });

    it("when S3 is unreachable", async () => {
      const closed = await freePort();
      await failedRun({ BACKUP_S3_ENDPOINT_URL: `http://127.0.0.1:${closed}` }, /failed at: .*upload \(exit \d+\); no manifest written, s3:\/\/bbaegok-prod-db-backups\/prod\/bbaegok\/\d{8}T\d{6}Z\.sql\.zst is not a backup\. .*Could not connect to the endpoint URL/);
    });

    it("when the dump is killed midway: the uploader writes nothing (no object, no pending multipart upload) and the newest backup still restores", async () => {
      const keysBefore = s3.keys(scripts.bucket, `${STACK}/${DB}/`);
      // The dump's end looks clean downstream (zstd closes its frame): only the stage's status stops the upload.
      const run = await failedRun({ TEST_KILL_DUMP_AFTER: "200000" }, /failed at: dump \(exit 137\) upload \(exit 4\); no manifest written/);
      assert.match(run.stderr, /s3-put: upload to s3:\/\/bbaegok-prod-db-backups\/prod\/bbaegok\/\d{8}T\d{6}Z\.sql\.zst abandoned: a stage before it failed: dump \(exit 137\); nothing was written/);
      assert.deepEqual(s3.keys(scripts.bucket, `${STACK}/${DB}/`), keysBefore, "the killed run left an object");
      assert.deepEqual(s3.pendingUploads(scripts.bucket), [], "the killed run left a multipart upload");
      db.sql(`DROP DATABASE ${DB}; CREATE DATABASE ${DB};`);
      const restore = await runRestore(["--stack", STACK, "--target", target(), "--endpoint-url", s3.endpoint], s3.operatorEnv());
      assert.equal(restore.status, 0, restore.stderr);
      assert.equal(db.sql(`SELECT COUNT(*) FROM ${DB}.users`).trim(), "5");
    });
  });

  it("refuses a second run while one holds the lock", async () => {
    await assertBackupRefusedWhileLocked(scripts.backup, env);
  });

  describe("the restore drill", () => {
    let drillEnv: Record<string, string>;
    before(() => {
      drillEnv = { ...env, BACKUP_DRILL_DB: writeDrillHook(dir.path, { MYSQL_UNIX_PORT: db.socket }), BACKUP_LOCK_FILE: join(dir.path, "drill.lock") };
    });

    it("restores the newest backup into a throwaway database and matches the manifest", async () => {
      const hitsBefore = ping.hits.length;
      const run = await runScript(scripts.drill, drillEnv);
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stderr, /restore drill of prod\/bbaegok \(mariadb\) passed: .* 5 tables and 5 objects match the manifest/);
      assert.deepEqual(ping.hits.slice(hitsBefore), ["/ping/test-check/log"]);
      assert.equal(db.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'restore_drill'").trim(), "0", "the throwaway database was left behind");
    });

    it("fails, and pings /fail, when the backup does not match its manifest", async () => {
      const newest = manifests().sort().pop()!;
      const manifest = JSON.parse(s3.get(scripts.bucket, newest).toString("utf8")) as BackupManifest;
      manifest.tables = manifest.tables.map((t) => (t.name === "users" ? { ...t, rows: t.rows + 1 } : t));
      // A run of its own, received last, so the drill picks it: its dump a copy of the newest, its manifest one row off.
      const run = `${STACK}/${DB}/${new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z")}`;
      const dump = join(dir.path, "copied.sql.zst");
      writeFileSync(dump, s3.get(scripts.bucket, manifest.key));
      const forged = join(dir.path, "forged.json");
      writeFileSync(forged, JSON.stringify({ ...manifest, key: `${run}.sql.zst` }));
      assert.equal(s3.aws(["s3", "cp", dump, `s3://${scripts.bucket}/${run}.sql.zst`]).status, 0);
      assert.equal(s3.aws(["s3", "cp", forged, `s3://${scripts.bucket}/${run}.manifest.json`]).status, 0);
      const hitsBefore = ping.hits.length;
      const drill = await runScript(scripts.drill, drillEnv);
      assert.equal(drill.status, 1);
      assert.match(drill.stderr, /restore drill of prod\/bbaegok \(mariadb\) FAILED .*row counts differ from the manifest .*< users\t6 > users\t5/);
      assert.deepEqual(ping.hits.slice(hitsBefore), ["/ping/test-check/fail"]);
    });
  });
});
