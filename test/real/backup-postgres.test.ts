// The prod stack's backup of its PostgreSQL database (Metabase's), run for
// real against a local PostgreSQL, moto's S3 server on loopback (a versioned
// bucket), the AWS CLI (the drill) and zstd: round trip through `npm run restore`, a dump killed midway, and
// the restore drill. Only `docker exec` is stood in for.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { BackupManifest } from "../../infra/backup/render.js";
import { assertBackupRefusedWhileLocked, postgresLogicalDump, renderStackScripts, runRestore, runScript, writeDbExecHook, writeDrillHook, type RenderedScripts } from "../support/backup-harness.js";
import { startPostgres, type Postgres } from "../support/postgres.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { freePort, tempDir } from "../support/system.js";

const STACK = "prod";
const DB = "metabase";

function seedSql(blob: Buffer): string {
  return `
CREATE TABLE users (
  id serial PRIMARY KEY,
  name text NOT NULL,
  bio text,
  avatar bytea,
  balance numeric(12,2),
  joined timestamptz NOT NULL,
  tags text[],
  meta jsonb
);
INSERT INTO users (name, bio, avatar, balance, joined, tags, meta) VALUES
  ('김철수', '안녕하세요 👋 빼곡 🥟', '\\x00ff10a0fffe', 1234.50, '2025-01-02 03:04:05.123456+09', ARRAY['관리자', '🎉'], '{"lang": "ko", "이모지": "😀"}'),
  ('이영희', NULL, NULL, NULL, '2025-02-03 04:05:06+00', NULL, NULL),
  ('O''Brien', E'line one\\nline two\\ttab \\\\ backslash', '\\x', -5, '2025-03-04 05:06:07+00', '{}', 'null');
CREATE TABLE orders (id bigint PRIMARY KEY, user_id int NOT NULL REFERENCES users (id), total numeric(10,2) NOT NULL, memo text);
CREATE TABLE audit (id serial PRIMARY KEY, order_id bigint NOT NULL, note text NOT NULL);
CREATE FUNCTION orders_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit (order_id, note) VALUES (NEW.id, '주문 ' || NEW.id); RETURN NEW; END $$;
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION orders_audit();
INSERT INTO orders SELECT n, 1 + n % 3, n * 1.25, CASE WHEN n % 7 = 0 THEN NULL ELSE '메모 ' || n || ' 😀' END FROM generate_series(1, 3000) n;
CREATE TABLE attachments (id int PRIMARY KEY, name text NOT NULL, body bytea NOT NULL);
INSERT INTO attachments VALUES (1, '첨부.bin', '\\x${blob.toString("hex")}'), (2, 'empty.bin', '\\x');
CREATE TABLE empty_table (id int PRIMARY KEY, v text);
CREATE SEQUENCE invoice_numbers START 1000;
SELECT nextval('invoice_numbers');
CREATE VIEW user_totals AS SELECT u.name, sum(o.total) AS total FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.name;
CREATE PROCEDURE add_order(p_id bigint, p_user int) LANGUAGE sql AS $$ INSERT INTO orders (id, user_id, total) VALUES (p_id, p_user, 0) $$;
CREATE FUNCTION greeting(p_name text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT '안녕, ' || p_name $$;
`;
}

describe("backups of a PostgreSQL database (the prod stack's script, for real)", () => {
  let pg: Postgres;
  let s3: MotoServer;
  let scripts: RenderedScripts;
  const dir = tempDir("backup-postgres");
  let env: Record<string, string>;
  const blob = randomBytes(3 * 1024 * 1024);
  const target = () => `postgres://${DB}@localhost:${pg.port}/${DB}?socket=${encodeURIComponent(pg.socketDir)}`;
  const restore = (args: string[]) => runRestore(["--stack", STACK, "--database", DB, "--endpoint-url", s3.endpoint, ...args], s3.operatorEnv());

  before(async () => {
    [pg, s3] = await Promise.all([startPostgres(), startMoto([{ name: "bbaegok-prod-db-backups", versioned: true }])]);
    scripts = renderStackScripts(STACK, dir.path, (t) => t.engine === "postgres");
    assert.deepEqual(
      scripts.targets.map((t) => [t.name, t.container, t.adminUser]),
      [[DB, "bbaegok-prod-metabase-db", "metabase"]],
    );
    // As in Metabase's application database container: the database's owner is its superuser.
    pg.sql(`CREATE ROLE ${DB} LOGIN SUPERUSER; CREATE DATABASE ${DB} OWNER ${DB} ENCODING 'UTF8';`);
    // Its objects belong to it: a restore gives them to the restoring role (--no-owner), which is this one.
    pg.sql(`SET ROLE ${DB};\n${seedSql(blob)}`, DB);
    env = {
      BACKUP_DB_EXEC: writeDbExecHook(dir.path, { PGHOST: pg.socketDir, PGPORT: String(pg.port) }),
      BACKUP_AWS_CREDENTIALS_FILE: s3.credentialsFile("moto"),
      BACKUP_S3_ENDPOINT_URL: s3.endpoint,
      BACKUP_LOCK_FILE: join(dir.path, "backup.lock"),
      BACKUP_PING_URL_FILE: join(dir.path, "no-ping-url"),
    };
  });
  after(async () => {
    await Promise.all([pg?.stop(), s3?.stop()]);
    dir.remove();
  });

  let original: string;

  it("backs up in custom format with the row counts of the dump's own snapshot", async () => {
    const run = await runScript(scripts.backup, env);
    assert.equal(run.status, 0, run.stderr);
    const manifestKey = s3.keys(scripts.bucket, `${STACK}/${DB}/`).find((k) => k.endsWith(".manifest.json"));
    assert.ok(manifestKey);
    const manifest = JSON.parse(s3.get(scripts.bucket, manifestKey).toString("utf8")) as BackupManifest;
    assert.match(manifest.key, /^prod\/metabase\/\d{8}T\d{6}Z\.pgdump\.zst$/);
    assert.equal(manifest.engine, "postgres");
    assert.match(manifest.serverVersion, /^\d+\.\d+/);
    const data = s3.get(scripts.bucket, manifest.key);
    assert.equal(manifest.sha256, createHash("sha256").update(data).digest("hex"));
    assert.deepEqual(manifest.tables, [
      { name: "public.attachments", rows: 2 },
      { name: "public.audit", rows: 3000 },
      { name: "public.empty_table", rows: 0 },
      { name: "public.orders", rows: 3000 },
      { name: "public.users", rows: 3 },
    ]);
    const objects = manifest.objects.map((o) => `${o.type} ${o.name}`);
    for (const expected of ["view public.user_totals", "procedure public.add_order", "function public.greeting", "function public.orders_audit", "trigger public.orders.orders_audit", "sequence public.invoice_numbers"]) {
      assert.ok(objects.includes(expected), `${expected} is not in the manifest: ${objects.join(", ")}`);
    }
  });

  it("restores with npm run restore into an emptied database: byte for byte, every object back", async () => {
    original = postgresLogicalDump(pg.socketDir, pg.port, DB);
    pg.sql(`DROP DATABASE ${DB}; CREATE DATABASE ${DB} OWNER ${DB} ENCODING 'UTF8';`);
    // A restore runs as a role that cannot run programs on the server (test/real/restore-sandbox.test.ts).
    pg.sql(`ALTER ROLE ${DB} NOSUPERUSER`);
    const run = await restore(["--target", target()]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /sha256 matches the manifest/);
    assert.match(run.stdout, /^Restored prod\/metabase\/\d{8}T\d{6}Z\.pgdump\.zst .*: 5 tables and \d+ objects match the manifest/);
    assert.equal(postgresLogicalDump(pg.socketDir, pg.port, DB), original, "the restored database dumps differently from the original");
    assert.equal(pg.sql("SELECT bio FROM users WHERE id = 1", DB).trim(), "안녕하세요 👋 빼곡 🥟");
    assert.equal(pg.sql("SELECT encode(sha256(body), 'hex') FROM attachments WHERE id = 1", DB).trim(), createHash("sha256").update(blob).digest("hex"));
    assert.equal(pg.sql("SELECT greeting('빼곡')", DB).trim(), "안녕, 빼곡");
    assert.equal(pg.sql("SELECT nextval('invoice_numbers')", DB).trim(), "1001");
  });

  it("refuses the now non-empty target without --force", async () => {
    const run = await restore(["--target", target()]);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /restore: the target postgres:\/\/metabase@localhost:\d+\/metabase\?socket=.* is not empty \(table public\.attachments/);
  });

  it("a dump from a newer PostgreSQL than this machine's pg_restore (prod runs postgres:16, Debian 12's client is 15) is refused before the download, naming both and the package", async () => {
    const manifestKey = s3.keys(scripts.bucket, `${STACK}/${DB}/`).filter((k) => k.endsWith(".manifest.json")).sort().pop()!;
    const manifest = JSON.parse(s3.get(scripts.bucket, manifestKey).toString("utf8")) as BackupManifest;
    const local = spawnSync("pg_restore", ["--version"], { encoding: "utf8" }).stdout.trim();
    const major = Number(/\(PostgreSQL\) (\d+)/.exec(local)![1]);
    // The same archive as the next major version's pg_dump writes it: the
    // header's format version one up ("PGDMP", then major, minor, revision).
    const archive = spawnSync("zstd", ["-dc"], { input: s3.get(scripts.bucket, manifest.key), maxBuffer: 256 * 1024 * 1024 }).stdout;
    assert.equal(archive.subarray(0, 5).toString("latin1"), "PGDMP");
    archive[6] = archive[6]! + 1;
    const newer = join(dir.path, "newer.pgdump");
    writeFileSync(newer, archive);
    // What pg_restore itself says of it: only once the whole object is here.
    const own = spawnSync("pg_restore", ["-l", newer], { encoding: "utf8" });
    assert.notEqual(own.status, 0);
    assert.match(own.stderr, new RegExp(`unsupported version \\(${archive[5]}\\.${archive[6]}\\) in file header`));
    const run = new Date(Date.now() - 10 * 60_000).toISOString().replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z");
    const key = `${STACK}/${DB}/${run}.pgdump.zst`;
    const compressed = spawnSync("zstd", ["-c"], { input: archive, maxBuffer: 256 * 1024 * 1024 }).stdout;
    writeFileSync(join(dir.path, "newer.zst"), compressed);
    const serverVersion = `${major + 1}.10 (Debian ${major + 1}.10-1.pgdg120+1)`;
    writeFileSync(join(dir.path, "newer.json"), JSON.stringify({ ...manifest, key, serverVersion, size: compressed.length, sha256: createHash("sha256").update(compressed).digest("hex") }));
    assert.equal(s3.aws(["s3", "cp", join(dir.path, "newer.zst"), `s3://${scripts.bucket}/${key}`]).status, 0);
    assert.equal(s3.aws(["s3", "cp", join(dir.path, "newer.json"), `s3://${scripts.bucket}/${key.replace(".pgdump.zst", ".manifest.json")}`]).status, 0);
    try {
      const before = postgresLogicalDump(pg.socketDir, pg.port, DB);
      const refused = await restore(["--key", key, "--target", target(), "--force"]);
      assert.equal(refused.status, 1, refused.stderr);
      assert.match(refused.stderr, new RegExp(`the dump comes from PostgreSQL ${major + 1}\\.10 .*and pg_restore here is ${major} \\(pg_restore \\(PostgreSQL\\) ${major}\\..*\\), which cannot read it; install postgresql-client-${major + 1} .*; nothing was restored`));
      assert.doesNotMatch(refused.stderr, /Downloading/);
      assert.equal(postgresLogicalDump(pg.socketDir, pg.port, DB), before, "the target changed");
    } finally {
      s3.purge(scripts.bucket, key);
      s3.purge(scripts.bucket, key.replace(".pgdump.zst", ".manifest.json"));
    }
  });

  it("fails a run whose dump is killed midway, leaving no object and no pending multipart upload", async () => {
    const before = s3.keys(scripts.bucket, `${STACK}/${DB}/`);
    const run = await runScript(scripts.backup, { ...env, TEST_KILL_DUMP_AFTER: "100000" });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /backup of prod\/metabase \(postgres in container bbaegok-prod-metabase-db\) failed at: dump \(exit 137\) upload \(exit 4\); no manifest written/);
    assert.match(run.stderr, /abandoned: a stage before it failed: dump \(exit 137\); nothing was written/);
    assert.deepEqual(s3.keys(scripts.bucket, `${STACK}/${DB}/`), before, "the killed run left an object");
    assert.deepEqual(s3.pendingUploads(scripts.bucket), []);
  });

  describe("a failed run exits non-zero, says what failed and leaves no manifest", () => {
    const failedRun = async (overrides: Record<string, string>, expected: RegExp) => {
      const manifestsBefore = s3.keys(scripts.bucket, `${STACK}/${DB}/`).filter((k) => k.endsWith(".manifest.json"));
      const run = await runScript(scripts.backup, { ...env, ...overrides });
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr, expected);
      assert.match(run.stderr, /backup of stack prod: 1 of 1 databases FAILED/);
      assert.deepEqual(s3.keys(scripts.bucket, `${STACK}/${DB}/`).filter((k) => k.endsWith(".manifest.json")), manifestsBefore, "a failed run wrote a manifest");
    };

    it("when the database is down", async () => {
      // A hook of its own, pointed at a socket directory where no server listens.
      const down = join(dir.path, "down");
      mkdirSync(down, { recursive: true });
      await failedRun(
        { BACKUP_DB_EXEC: writeDbExecHook(down, { PGHOST: join(dir.path, "no-such-dir"), PGPORT: String(pg.port) }) },
        /backup of prod\/metabase \(postgres in container bbaegok-prod-metabase-db\) failed: the database did not answer: .*(No such file|could not connect|connection to server)/,
      );
    });

    it("when its snapshot session fails after the version check (bash's SIGPIPE into the dead session used to kill the run unlogged)", async () => {
      await failedRun(
        { TEST_SESSION_DOWN: join(dir.path, "no-such-dir") },
        /backup of prod\/metabase \(postgres in container bbaegok-prod-metabase-db\) failed: could not read the table list in a snapshot: .*(No such file|could not connect|connection to server)/,
      );
    });

    it("when S3 is unreachable", async () => {
      const closed = await freePort();
      await failedRun({ BACKUP_S3_ENDPOINT_URL: `http://127.0.0.1:${closed}` }, /failed at: .*upload \(exit \d+\); no manifest written, .*Could not connect to the endpoint URL/);
    });

    it("and a second run while one holds the lock is refused (75)", async () => {
      await assertBackupRefusedWhileLocked(scripts.backup, env);
    });
  });

  it("passes the restore drill: newest good backup restored into a throwaway database, matching its manifest", async () => {
    const run = await runScript(scripts.drill, { ...env, BACKUP_DRILL_DB: writeDrillHook(dir.path, { PGHOST: pg.socketDir, PGPORT: String(pg.port) }), BACKUP_LOCK_FILE: join(dir.path, "drill.lock") });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /restore drill of prod\/metabase \(postgres\) passed: .* 5 tables and \d+ objects match the manifest/);
    assert.equal(pg.sql("SELECT count(*) FROM pg_database WHERE datname = 'restore_drill'").trim(), "0");
  });
});
