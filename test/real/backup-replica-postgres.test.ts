// Backups of a PostgreSQL database that has a read replica, for real: Debian's
// PostgreSQL as the primary (the program's flags) and a hot standby started
// by the rendered entrypoint, the rendered replica.sh, the backup script
// rendered for a stack with that replica, moto's S3 server, and `npm run
// restore`. The backup is taken from the standby (pg_dump in a snapshot
// exported there) while it is healthy, from the primary (saying why, and
// pinging the failure URL) while its WAL replay is paused. Only `docker exec`
// is stood in for.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { primaryReplicationFlags } from "../../infra/replica/render.js";
import { postgresLogicalDump, runRestore, runScript, startPingServer } from "../support/backup-harness.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { startPostgres, type Postgres } from "../support/postgres.js";
import { PRIMARY_CONTAINER, REPLICA_CONTAINER, generatedPassword, renderReplicaScript, newestManifest, renderReplicatedBackupScript, replicaEnv, replicatedBackupEnv, replicatedDatabase, runReplica, startStandby, writePostgresReplicationSecrets, type Standby } from "../support/replica-harness.js";
import { tempDir, waitFor } from "../support/system.js";

const DB = "bbaegok";

// Korean text and emoji, bytea, arrays, jsonb, NULLs, a 2 MiB row, a view, a
// trigger, a sequence, a procedure.
function seedSql(blob: Buffer): string {
  return `
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, bio text, avatar bytea, tags text[], meta jsonb);
INSERT INTO users (name, bio, avatar, tags, meta) VALUES
  ('김철수', '안녕하세요 👋 빼곡 🥟', '\\x00ff10a0fffe', ARRAY['관리자', '🎉'], '{"이모지": "😀"}'),
  ('O''Brien', E'line one\\nline two\\ttab \\\\ backslash', NULL, '{}', 'null');
CREATE TABLE orders (id bigint PRIMARY KEY, user_id int NOT NULL REFERENCES users (id), memo text);
CREATE TABLE audit (id serial PRIMARY KEY, order_id bigint NOT NULL);
CREATE FUNCTION orders_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit (order_id) VALUES (NEW.id); RETURN NEW; END $$;
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION orders_audit();
INSERT INTO orders SELECT n, 1 + n % 2, CASE WHEN n % 7 = 0 THEN NULL ELSE '메모 ' || n || ' 😀' END FROM generate_series(1, 2000) n;
CREATE TABLE attachments (id int PRIMARY KEY, body bytea NOT NULL);
INSERT INTO attachments VALUES (1, '\\x${blob.toString("hex")}');
CREATE SEQUENCE invoice_numbers START 1000;
SELECT nextval('invoice_numbers');
CREATE VIEW user_orders AS SELECT u.name, count(*) AS n FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.name;
CREATE PROCEDURE add_order(p_id bigint, p_user int) LANGUAGE sql AS $$ INSERT INTO orders (id, user_id) VALUES (p_id, p_user) $$;
`;
}

describe("backups of a PostgreSQL database with a read replica (for real)", () => {
  let primary: Postgres;
  let replica: Standby;
  let s3: MotoServer;
  let ping: Awaited<ReturnType<typeof startPingServer>>;
  const dir = tempDir("backup-replica-postgres");
  let backup: { script: string; bucket: string };
  let env: Record<string, string>;
  const blob = randomBytes(2 * 1024 * 1024);
  const newest = () => newestManifest(s3, backup.bucket, DB);

  before(async () => {
    [primary, s3, ping] = await Promise.all([startPostgres(primaryReplicationFlags("postgres")), startMoto([{ name: "bbaegok-prod-db-backups", versioned: true }]), startPingServer()]);
    // As the image and the program's init file make it: the database, owned by the app's role, which owns its objects.
    primary.sql(`CREATE ROLE ${DB} LOGIN; CREATE DATABASE ${DB} OWNER ${DB} ENCODING 'UTF8';`);
    primary.sql(`ALTER SCHEMA public OWNER TO ${DB}; SET ROLE ${DB};\n${seedSql(blob)}`, DB);
    // The restore's target: an empty database the app's role owns (a restore runs as a role without superuser).
    primary.sql(`CREATE DATABASE restored OWNER ${DB} ENCODING 'UTF8';`);
    primary.sql(`ALTER SCHEMA public OWNER TO ${DB};`, "restored");
    writePostgresReplicationSecrets(dir.path);
    writeFileSync(join(dir.path, "ping-url"), `${ping.url}\n`, { mode: 0o600 });
    const replicaScript = renderReplicaScript(dir.path, { database: replicatedDatabase("postgres", 30), replica: { maxLagSeconds: 30 }, primaryHost: "127.0.0.1", primaryPort: primary.port });
    const primaryEnv = { PGHOST: primary.socketDir, PGPORT: String(primary.port) };
    const setup = await runReplica(replicaScript, replicaEnv(dir.path, { [PRIMARY_CONTAINER]: primaryEnv }), "setup");
    assert.equal(setup.status, 0, setup.stderr);
    replica = await startStandby(primary, dir.path, dir.path, DB);
    const hook = replicaEnv(dir.path, { [PRIMARY_CONTAINER]: primaryEnv, [REPLICA_CONTAINER]: { PGHOST: replica.socketDir, PGPORT: String(replica.port) } });
    const wait = await runReplica(replicaScript, hook, "wait");
    assert.equal(wait.status, 0, wait.stderr + wait.stdout);
    backup = renderReplicatedBackupScript(dir.path, "postgres", 30);
    env = replicatedBackupEnv(dir.path, hook, replicaScript, s3);
  });
  after(async () => {
    await Promise.all([replica?.stop(), s3?.stop(), ping?.stop()]);
    await primary?.stop();
    dir.remove();
  });

  it("backs up from the healthy standby: the manifest says so, why, and the replayed LSN, equal to the primary's", async () => {
    const lsn = primary.sql("SELECT pg_current_wal_lsn()").trim();
    await waitFor("the standby to replay everything", () => replica.sql("SELECT pg_last_wal_replay_lsn()") === lsn, 30_000, 200);
    const run = await runScript(backup.script, env);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /backup of prod\/bbaegok from its replica bbaegok-prod-db-replica: the replica is healthy and \d+ s behind \(bound 30 s\)/);
    assert.match(run.stderr, /backup of prod\/bbaegok \(postgres in container bbaegok-prod-db-replica\) done/);
    const manifest = newest();
    assert.equal(manifest.source, "replica");
    assert.equal(manifest.replication?.positionType, "lsn");
    assert.equal(manifest.replication?.position, lsn);
    assert.equal(manifest.replication?.primaryPosition, lsn);
    assert.deepEqual(manifest.tables.find((t) => t.name === "public.orders"), { name: "public.orders", rows: 2000 });
    assert.deepEqual(ping.hits, ["/ping/test-check"]);
  });

  it("the standby's backup restores byte for byte: npm run restore into an empty database dumps exactly as the primary's", async () => {
    const target = `postgres://${DB}@localhost:${primary.port}/restored?socket=${encodeURIComponent(primary.socketDir)}`;
    const run = await runRestore(["--stack", "prod", "--database", DB, "--target", target, "--endpoint-url", s3.endpoint], s3.operatorEnv());
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /sha256 matches the manifest/);
    assert.ok(postgresLogicalDump(primary.socketDir, primary.port, "restored") === postgresLogicalDump(primary.socketDir, primary.port, DB), "the restored database dumps differently from the primary's");
    assert.equal(primary.sql("SELECT encode(sha256(body), 'hex') FROM attachments", "restored").trim(), createHash("sha256").update(blob).digest("hex"));
  });

  it("with the standby's WAL replay paused and writes on the primary: backs up from the primary, says why, pings the failure URL", async () => {
    replica.sql("SELECT pg_wal_replay_pause()");
    primary.sql("INSERT INTO orders (id, user_id, memo) VALUES (5001, 1, '복제 안 됨'), (5002, 2, NULL);", DB);
    const lsn = primary.sql("SELECT pg_current_wal_lsn()").trim();
    ping.hits.length = 0;
    const run = await runScript(backup.script, env);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /replication of prod\/bbaegok is broken or lagging: the replica bbaegok-prod-db-replica is not usable: the replica's WAL replay is paused; backing up from the primary bbaegok-prod-db instead/);
    assert.match(run.stderr, /backup of prod\/bbaegok \(postgres in container bbaegok-prod-db\) done/);
    assert.deepEqual(ping.hits, ["/ping/test-check/fail"]);
    const manifest = newest();
    assert.equal(manifest.source, "primary");
    assert.equal(manifest.replication?.why, "the replica bbaegok-prod-db-replica is not usable: the replica's WAL replay is paused");
    assert.equal(manifest.replication?.position, lsn);
    assert.deepEqual(manifest.tables.find((t) => t.name === "public.orders"), { name: "public.orders", rows: 2002 });
    replica.sql("SELECT pg_wal_replay_resume()");
  });
});
