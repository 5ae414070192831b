// The read replica of a PostgreSQL database, for real: Debian's PostgreSQL
// (as an unprivileged user) for the primary with the program's flags, and the
// replica started by the rendered entrypoint (pg_basebackup through the slot,
// then a hot standby with the program's flags); the rendered replica script
// (setup, wait, status, promote) run against both. The only stand-in is
// `docker exec` (test/support/replica-harness.ts).
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { PG_SLOT_WAL_KEEP, primaryReplicationFlags, type PromotedState } from "../../infra/replica/render.js";
import { startPostgres, type Postgres } from "../support/postgres.js";
import { PRIMARY_CONTAINER, REPLICA_CONTAINER, generatedPassword, renderReplicaScript, replicaEnv, replicaStatus, replicatedDatabase, runReplica, startStandby, writePostgresReplicationSecrets, type Standby } from "../support/replica-harness.js";
import { tempDir, waitFor } from "../support/system.js";

const DB = "bbaegok";
const APP_PASSWORD = generatedPassword();

describe("a PostgreSQL read replica (the rendered setup and entrypoint, for real)", () => {
  let primary: Postgres;
  let replica: Standby;
  const dir = tempDir("replica-postgres");
  let script: string;
  let env: Record<string, string>;
  const status = () => replicaStatus(script, env);
  const primaryEnv = () => ({ PGHOST: primary.socketDir, PGPORT: String(primary.port), PGDATA: join(primary.socketDir, "data") });

  before(async () => {
    primary = await startPostgres(primaryReplicationFlags("postgres"));
    // What the image and the program's init file make of a new server: the database and the app's owner role.
    // With a versioned collation, as the official image's en_US.utf8 is (this
    // machine generates no such locale; ICU's root locale is versioned too).
    primary.sql(`CREATE DATABASE ${DB} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'und'`);
    primary.sql(`CREATE ROLE ${DB} LOGIN PASSWORD '${APP_PASSWORD}'; ALTER DATABASE ${DB} OWNER TO ${DB}; ALTER SCHEMA public OWNER TO ${DB};`, DB);
    primary.sql("CREATE TABLE orders (id serial PRIMARY KEY, memo text NOT NULL); INSERT INTO orders (memo) VALUES ('주문 1'), ('주문 2 😀');", DB);
    primary.sql(`ALTER TABLE orders OWNER TO ${DB}`, DB);
    writePostgresReplicationSecrets(dir.path);
    script = renderReplicaScript(dir.path, { database: replicatedDatabase("postgres", 30), replica: { maxLagSeconds: 30 }, primaryHost: "127.0.0.1", primaryPort: primary.port });
    // The replica's server is not there yet: only the primary's side is set up first.
    env = replicaEnv(dir.path, { [PRIMARY_CONTAINER]: primaryEnv(), [REPLICA_CONTAINER]: { PGHOST: dir.path, PGPORT: "1" } });
  });
  after(async () => {
    await Promise.all([replica?.stop(), primary?.stop()]);
    dir.remove();
  });

  it("the primary's side: a replication role with REPLICATION and LOGIN only, a slot, and a pg_hba line", async () => {
    const setup = await runReplica(script, env, "setup");
    assert.equal(setup.status, 0, setup.stderr);
    assert.equal(primary.sql("SELECT rolreplication, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = 'replicator'").trim(), "t|t|f|f|f");
    assert.equal(primary.sql("SELECT slot_type FROM pg_replication_slots WHERE slot_name = 'replica_1'").trim(), "physical");
    // In the server's own configuration, not only its flags: a promoted primary, where a failback makes the slot, has none.
    assert.equal(primary.sql("SELECT setting FROM pg_file_settings WHERE name = 'max_slot_wal_keep_size' AND sourcefile LIKE '%postgresql.auto.conf'").trim(), PG_SLOT_WAL_KEEP);
    assert.equal(primary.sql("SELECT count(*) FROM pg_hba_file_rules WHERE 'replication' = ANY(database) AND 'replicator' = ANY(user_name)").trim(), "1");
    const again = await runReplica(script, env, "setup");
    assert.equal(again.status, 0, again.stderr);
    assert.equal(primary.sql("SELECT count(*) FROM pg_hba_file_rules WHERE 'replicator' = ANY(user_name)").trim(), "1", "a second setup added a second pg_hba line");
  });

  it("the replica seeds itself with pg_basebackup, streams, and the positions equal", async () => {
    replica = await startStandby(primary, dir.path, dir.path, DB);
    // The hook reaches the replica on its own port.
    env = replicaEnv(dir.path, { [PRIMARY_CONTAINER]: primaryEnv(), [REPLICA_CONTAINER]: { PGHOST: replica.socketDir, PGPORT: String(replica.port) } });
    const wait = await runReplica(script, env, "wait");
    assert.equal(wait.status, 0, wait.stderr + wait.stdout);
    assert.equal(replica.sql("SELECT pg_is_in_recovery()"), "t");
    assert.equal(replica.sql("SELECT string_agg(memo, ',' ORDER BY id) FROM orders"), "주문 1,주문 2 😀");
    assert.equal(primary.sql("SELECT state FROM pg_stat_replication WHERE application_name = 'replica_1'").trim(), "streaming");
  });

  it("writes on the primary appear on the replica, and the recorded positions match", async () => {
    primary.sql("INSERT INTO orders (memo) VALUES ('주문 3'); UPDATE orders SET memo = '바뀜' WHERE id = 1;", DB);
    const lsn = primary.sql("SELECT pg_current_wal_lsn()").trim();
    await waitFor("the replica to replay the writes", () => replica.sql("SELECT pg_last_wal_replay_lsn()") === lsn, 30_000, 200);
    assert.equal(replica.sql("SELECT string_agg(memo, ',' ORDER BY id) FROM orders"), "바뀜,주문 2 😀,주문 3");
    const state = await status();
    assert.equal(state.healthy, true, JSON.stringify(state));
    assert.equal(state.unit, "bytes");
    assert.equal(state.replicaPosition, lsn);
  });

  it("with the server warning on every connection (a collation version mismatch, as after an image's collation library changed), status still reads the positions: the warning is logged, never taken for a value", async () => {
    // The database's recorded collation version made stale on the primary (the
    // catalog replicates, so the standby says it too): each server then sends
    // psql a WARNING on connecting, which psql prints on stderr, and answers.
    const recorded = primary.sql(`SELECT datcollversion FROM pg_database WHERE datname = '${DB}'`).trim();
    assert.notEqual(recorded, "", "the database records no collation version: no mismatch to warn about");
    primary.sql(`UPDATE pg_database SET datcollversion = '0.1' WHERE datname = '${DB}'`);
    try {
      const lsn = primary.sql("SELECT pg_current_wal_lsn()").trim();
      await waitFor("the replica to replay the catalog change", () => replica.sql("SELECT pg_last_wal_replay_lsn()") === lsn, 30_000, 200);
      const run = await runReplica(script, env, "status");
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stderr, /WARNING: +database "bbaegok" has a collation version mismatch/);
      const state = JSON.parse(run.stdout) as { healthy: boolean; primaryPosition: string; replicaPosition: string; behind: number };
      assert.deepEqual([state.healthy, state.primaryPosition, state.replicaPosition, state.behind], [true, lsn, lsn, 0], run.stdout);
    } finally {
      primary.sql(`UPDATE pg_database SET datcollversion = '${recorded}' WHERE datname = '${DB}'`);
    }
  });

  it("the replica refuses the app's writes (a hot standby)", () => {
    const write = replica.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('x')");
    assert.notEqual(write.status, 0);
    assert.match(write.stderr, /cannot execute INSERT in a read-only transaction/);
    assert.equal(replica.sqlAs(DB, APP_PASSWORD, "SELECT count(*) FROM orders").stdout.trim(), "3");
  });

  it("with WAL replay paused and writes on the primary, status says so and how far behind", async () => {
    replica.sql("SELECT pg_wal_replay_pause()");
    primary.sql("INSERT INTO orders (memo) SELECT 'row ' || n FROM generate_series(1, 1000) n;", DB);
    const state = await status();
    assert.equal(state.healthy, false);
    assert.equal(state.reason, "the replica's WAL replay is paused");
    assert.ok(state.behind > 0, JSON.stringify(state));
    replica.sql("SELECT pg_wal_replay_resume()");
    await waitFor("the replica to catch up", async () => (await status()).behind === 0, 30_000, 300);
  });

  it("promote, when pg_promote answers false (the standby has not finished promoting within its 60 s: PostgreSQL says so without an error): it fails saying so, never that the replica takes writes", async () => {
    // The server's answer stood in: the SQL reaches the real server but for pg_promote, which answers f.
    const hook = join(dir.path, "slow-promote-exec");
    writeFileSync(hook, `#!/bin/bash\nsql=$(cat)\n[[ $sql == *pg_promote* ]] && { echo f; exit 0; }\nprintf '%s\\n' "$sql" | exec ${env.REPLICA_DB_EXEC} "$@"\n`, { mode: 0o755 });
    const run = await runReplica(script, { ...env, REPLICA_DB_EXEC: hook }, "promote");
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /bbaegok-prod-db-replica has not finished promoting within 60 s \(pg_promote answered false\)/);
    assert.doesNotMatch(run.stderr, /takes writes now/);
    // The original stays fenced (the replica may still come out of recovery): taken off here, for the real promotion below.
    const unfence = await runReplica(script, env, "unfence");
    assert.equal(unfence.status, 0, unfence.stderr);
  });

  it("promote: the old replica leaves recovery and takes the app's writes; writable (the flip's check) refuses before it, passes after", async () => {
    // The script as the flip's up renders it (database.primary: replica) and as before it.
    const promotedDir = join(dir.path, "flip");
    mkdirSync(promotedDir);
    const promoted = renderReplicaScript(promotedDir, { database: { ...replicatedDatabase("postgres", 30), primary: "replica" }, replica: { maxLagSeconds: 30 }, primaryHost: "127.0.0.1", primaryPort: primary.port });
    const early = await runReplica(promoted, env, "writable");
    assert.equal(early.status, 1, early.stderr);
    assert.match(early.stderr, /bbaegok-prod-db-replica still replicates from bbaegok-prod-db: it was not promoted .*refused/);
    const unpromoted = await runReplica(script, env, "writable");
    assert.equal(unpromoted.status, 1, unpromoted.stderr);
    assert.match(unpromoted.stderr, /is a replica \(the stack file does not say database\.primary: replica\): refused/);
    const run = await runReplica(script, env, "promote");
    assert.equal(run.status, 0, run.stderr);
    assert.equal(replica.sql("SELECT pg_is_in_recovery()"), "f");
    const write = replica.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('승격 후')");
    assert.equal(write.status, 0, write.stderr);
    assert.equal(replica.sql("SELECT count(*) FROM orders"), "1004");
    const check = await runReplica(promoted, env, "writable");
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stderr, /bbaegok-prod-db-replica is the primary: it takes writes/);
    const state = await status();
    assert.equal(state.healthy, false);
    assert.match(state.reason ?? "", /not in recovery: it was promoted/);
  });

  it("status, rendered after promotion (database.primary: replica): the promoted one takes writes, the original is fenced", async () => {
    const promotedDir = join(dir.path, "promoted");
    mkdirSync(promotedDir);
    const promoted = renderReplicaScript(promotedDir, { database: { ...replicatedDatabase("postgres", 30), primary: "replica" }, replica: { maxLagSeconds: 30 }, primaryHost: "127.0.0.1", primaryPort: primary.port });
    assert.deepEqual(await replicaStatus<PromotedState>(promoted, env), { promoted: true, healthy: true, writable: true, originalAnswers: true, originalWritable: false, originalFollows: false });
    // The promoted server warning on every connection (a stale collation version): the same answer, the warning logged.
    const recorded = replica.sql(`SELECT datcollversion FROM pg_database WHERE datname = '${DB}'`).trim();
    replica.sql(`UPDATE pg_database SET datcollversion = '0.1' WHERE datname = '${DB}'`);
    try {
      const run = await runReplica(promoted, env, "status");
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stderr, /WARNING: +database "bbaegok" has a collation version mismatch/);
      assert.deepEqual(JSON.parse(run.stdout), { promoted: true, healthy: true, writable: true, originalAnswers: true, originalWritable: false, originalFollows: false });
    } finally {
      replica.sql(`UPDATE pg_database SET datcollversion = '${recorded}' WHERE datname = '${DB}'`);
    }
  });
});

describe("a PostgreSQL replica taken out of the stack: replica.sh retire on the primary (the up's delete, after the replica's container)", () => {
  let primary: Postgres;
  let replica: Standby;
  const dir = tempDir("replica-postgres-retire");
  let script: string;
  let env: Record<string, string>;
  const slots = () => primary.sql("SELECT count(*) FROM pg_replication_slots").trim();
  const roles = () => primary.sql("SELECT count(*) FROM pg_roles WHERE rolname IN ('replicator', 'replica_backup')").trim();

  before(async () => {
    primary = await startPostgres(primaryReplicationFlags("postgres"));
    primary.sql(`CREATE DATABASE ${DB}`);
    primary.sql(`CREATE ROLE ${DB} LOGIN PASSWORD '${APP_PASSWORD}'; ALTER DATABASE ${DB} OWNER TO ${DB};`, DB);
    primary.sql("CREATE TABLE orders (id int PRIMARY KEY, memo text NOT NULL); INSERT INTO orders VALUES (1, '주문 1');", DB);
    writePostgresReplicationSecrets(dir.path);
    script = renderReplicaScript(dir.path, { database: replicatedDatabase("postgres", 30), replica: { maxLagSeconds: 30 }, primaryHost: "127.0.0.1", primaryPort: primary.port });
    const primaryEnv = { PGHOST: primary.socketDir, PGPORT: String(primary.port), PGDATA: join(primary.socketDir, "data") };
    env = replicaEnv(dir.path, { [PRIMARY_CONTAINER]: primaryEnv, [REPLICA_CONTAINER]: { PGHOST: dir.path, PGPORT: "1" } });
    const setup = await runReplica(script, env, "setup");
    assert.equal(setup.status, 0, setup.stderr);
    replica = await startStandby(primary, dir.path, dir.path, DB);
    env = replicaEnv(dir.path, { [PRIMARY_CONTAINER]: primaryEnv, [REPLICA_CONTAINER]: { PGHOST: replica.socketDir, PGPORT: String(replica.port) } });
    const wait = await runReplica(script, env, "wait");
    assert.equal(wait.status, 0, wait.stderr);
  });
  after(async () => {
    await Promise.all([replica?.stop(), primary?.stop()]);
    dir.remove();
  });

  it("while the standby streams through the slot, retire keeps the slot and the roles and says so (exit 0: the up goes on)", async () => {
    const run = await runReplica(script, { ...env, RETIRE_WAIT_SECONDS: "2" }, "retire");
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /a replica still replicates from bbaegok-prod-db after 2 s: its slot and logins are kept/);
    assert.deepEqual([slots(), roles()], ["1", "1"]);
  });

  it("with the standby gone, retire drops the slot (which would keep WAL for ever) and the replication role; the data stays; a second run changes nothing", async () => {
    await replica.stop();
    const run = await runReplica(script, env, "retire");
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /the replica's slot and logins are dropped on bbaegok-prod-db/);
    assert.deepEqual([slots(), roles()], ["0", "0"]);
    assert.equal(primary.sql("SELECT memo FROM orders", DB).trim(), "주문 1");
    const again = await runReplica(script, env, "retire");
    assert.equal(again.status, 0, again.stderr);
  });
});
