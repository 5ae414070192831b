// A replica away for longer than its primary keeps what it needs, for real:
// PostgreSQL's slot invalidated (its WAL past max_slot_wal_keep_size, set
// small here) and MariaDB's binary logs purged past the replica's position.
// Neither ever catches up by itself; `replica.sh status` (the rendered
// script, whose reason the backup's failure ping and npm run status carry)
// says so and that it must be seeded again, and says nothing of the kind for
// a replica merely stopped, which resumes.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { primaryReplicationFlags } from "../../infra/replica/render.js";
import { runScript } from "../support/backup-harness.js";
import type { MariaDb } from "../support/mariadb.js";
import { startPostgres, type Postgres } from "../support/postgres.js";
import {
  PRIMARY_CONTAINER,
  REPLICA_CONTAINER,
  generatedPassword,
  mariaDbPairEnv,
  renderReplicaScript,
  replicaEnv,
  replicaStatus,
  replicatedDatabase,
  runReplica,
  setUpReplica,
  startReplicaSession,
  startReplicatedMariaDb,
  startMariaDbReplica,
  startStandby,
  writePostgresReplicationSecrets,
  type Standby,
} from "../support/replica-harness.js";
import { tempDir, waitFor } from "../support/system.js";

const DB = "bbaegok";
const MUST_SEED = /it cannot continue from its position and must be seeded again: npm run reseed -- --stack prod \(README, "Read replicas": a replica that cannot catch up\)/;

describe("PostgreSQL: a standby whose slot the primary invalidated while it was away", () => {
  let primary: Postgres;
  let standby: Standby | undefined;
  const dir = tempDir("replica-lost-slot");
  let both: { script: string; env: Record<string, string> };
  let fromPrimary: { script: string; env: Record<string, string> };
  const primaryContainer = () => ({ PGHOST: primary.socketDir, PGPORT: String(primary.port), PGDATA: join(primary.socketDir, "data") });

  before(async () => {
    // The program's flags, then a bound of one megabyte instead of 4 GiB: a few WAL segments away is too far.
    primary = await startPostgres([...primaryReplicationFlags("postgres"), "-c", "max_slot_wal_keep_size=1MB"]);
    primary.sql(`CREATE DATABASE ${DB}`);
    primary.sql("CREATE TABLE orders (id serial PRIMARY KEY, memo text NOT NULL); INSERT INTO orders (memo) VALUES ('주문 1');", DB);
    writePostgresReplicationSecrets(dir.path);
    both = { script: renderReplicaScript(dir.path, { database: replicatedDatabase("postgres", 30), replica: { maxLagSeconds: 30 }, primaryHost: "127.0.0.1", primaryPort: primary.port }), env: {} };
    both.env = replicaEnv(dir.path, { [PRIMARY_CONTAINER]: primaryContainer(), [REPLICA_CONTAINER]: { PGHOST: dir.path, PGPORT: "1" } });
    const setup = await runReplica(both.script, both.env, "setup");
    assert.equal(setup.status, 0, setup.stderr);
    standby = await startStandby(primary, dir.path, dir.path, DB);
    both.env = replicaEnv(dir.path, { [PRIMARY_CONTAINER]: primaryContainer(), [REPLICA_CONTAINER]: { PGHOST: standby.socketDir, PGPORT: String(standby.port) } });
    // The copy of the stack's server when the standby is on another one: it asks the primary alone.
    const own = join(dir.path, "primary-server");
    mkdirSync(own);
    fromPrimary = {
      script: renderReplicaScript(own, { database: replicatedDatabase("postgres", 30), replica: { maxLagSeconds: 30 }, primaryHost: "127.0.0.1", primaryPort: primary.port, replicaHost: "127.0.0.1", thisServer: "primary" }),
      env: replicaEnv(own, { [PRIMARY_CONTAINER]: primaryContainer() }),
    };
    await waitFor("the standby to be caught up", async () => (await replicaStatus(both.script, both.env)).healthy, 60_000, 300);
  });
  after(async () => {
    await Promise.all([standby?.stop(), primary?.stop()]);
    dir.remove();
  });

  it("stopped, with its slot still holding its WAL: not streaming, and nothing said of seeding it again", async () => {
    await standby!.stop();
    const state = await replicaStatus(fromPrimary.script, fromPrimary.env);
    assert.equal(state.healthy, false);
    assert.match(state.reason ?? "", /not streaming from the primary \(its connection: none\)$/);
    assert.equal(primary.sql("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'replica_1'").trim(), "reserved");
  });

  it("the primary writes past the bound and checkpoints: the slot is lost; started again, the standby cannot stream, and both copies of status say it must be seeded again", async () => {
    for (let segment = 0; segment < 4; segment++) primary.sql("INSERT INTO orders (memo) SELECT md5(g::text) FROM generate_series(1, 2000) g; SELECT pg_switch_wal();", DB);
    primary.sql("CHECKPOINT");
    assert.equal(primary.sql("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'replica_1'").trim(), "lost");
    const seen = await replicaStatus(fromPrimary.script, fromPrimary.env);
    assert.equal(seen.healthy, false);
    assert.match(seen.reason ?? "", /the primary removed WAL its slot replica_1 held for it \(it was away past max_slot_wal_keep_size\)/);
    assert.match(seen.reason ?? "", MUST_SEED);
    // Started again on its folder (its container restarted): it serves what it had, and never streams again.
    standby = await startStandby(primary, dir.path, dir.path, DB);
    await new Promise((r) => setTimeout(r, 3000));
    assert.notEqual(standby.sql("SELECT COALESCE((SELECT status FROM pg_stat_wal_receiver), 'none')"), "streaming");
    both.env = replicaEnv(dir.path, { [PRIMARY_CONTAINER]: primaryContainer(), [REPLICA_CONTAINER]: { PGHOST: standby.socketDir, PGPORT: String(standby.port) } });
    const state = await replicaStatus(both.script, both.env);
    assert.equal(state.healthy, false, JSON.stringify(state));
    assert.match(state.reason ?? "", /the replica's WAL receiver is not streaming/);
    assert.match(state.reason ?? "", MUST_SEED);
  });

  it("seeded again as the README says, taken out and put back: retire (the up's delete, its container gone) drops the lost slot; setup and a new volume's first start seed a standby that streams", async () => {
    await standby!.stop();
    const retire = await runReplica(both.script, both.env, "retire");
    assert.equal(retire.status, 0, retire.stderr);
    assert.equal(primary.sql("SELECT count(*) FROM pg_replication_slots").trim(), "0");
    const setup = await runReplica(both.script, both.env, "setup");
    assert.equal(setup.status, 0, setup.stderr);
    const volume = join(dir.path, "new-volume");
    mkdirSync(volume);
    standby = await startStandby(primary, volume, dir.path, DB);
    both.env = replicaEnv(dir.path, { [PRIMARY_CONTAINER]: primaryContainer(), [REPLICA_CONTAINER]: { PGHOST: standby.socketDir, PGPORT: String(standby.port) } });
    await waitFor("the new standby to be caught up", async () => (await replicaStatus(both.script, both.env)).healthy, 60_000, 300);
    assert.equal(standby.sql("SELECT count(*) FROM orders"), primary.sql("SELECT count(*) FROM orders", DB).trim());
    assert.equal(primary.sql("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'replica_1'").trim(), "reserved");
  });
});

describe("MariaDB: a replica whose position the primary's binary logs no longer hold", () => {
  let primary: MariaDb;
  let replica: MariaDb;
  const dir = tempDir("replica-purged");
  let script: string;
  let env: Record<string, string>;

  const appPassword = generatedPassword();
  const appRead = () => replica.sqlAs(DB, appPassword, "SELECT count(*) FROM orders", DB);

  before(async () => {
    ({ primary, replica, script, env } = await startReplicatedMariaDb(dir.path, { database: DB, appPassword, memoryMb: 512, schema: "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, memo VARCHAR(100) NOT NULL) ENGINE=InnoDB; INSERT INTO orders (memo) VALUES ('주문 1');" }));
  });
  after(async () => {
    await Promise.all([primary?.stop(), replica?.stop()]);
    dir.remove();
  });

  it("its IO thread stopped by hand: unhealthy, and nothing said of seeding it again", async () => {
    replica.sql("STOP SLAVE IO_THREAD");
    const state = await replicaStatus(script, env);
    assert.equal(state.healthy, false);
    assert.match(state.reason ?? "", /the replica's IO thread is not running \(No\)$/);
    replica.sql("START SLAVE IO_THREAD");
  });

  it("away while the primary purged its binary logs: the replica's restart fails with 1236, and status says it must be seeded again", async () => {
    replica.sql("STOP SLAVE");
    for (let log = 0; log < 2; log++) primary.sql("INSERT INTO orders (memo) VALUES ('away'); FLUSH BINARY LOGS;", DB);
    // MariaDB keeps a log until its binlog checkpoint has passed it (InnoDB's commits durable): flushed and purged until one is left.
    await waitFor(
      "the primary's binary logs to be purged but the current one",
      () => {
        primary.sql("FLUSH BINARY LOGS");
        const current = primary.sql("SHOW MASTER STATUS").trim().split("\t")[0]!;
        primary.sql(`PURGE BINARY LOGS TO '${current}'`);
        return primary.sql("SHOW BINARY LOGS").trim().split("\n").length === 1;
      },
      30_000,
      500,
    );
    replica.sql("START SLAVE");
    let state = await replicaStatus(script, env);
    await waitFor("the replica's IO thread to fail", async () => /1236/.test((state = await replicaStatus(script, env)).reason ?? ""), 30_000, 300);
    assert.equal(state.healthy, false, JSON.stringify(state));
    assert.match(state.reason ?? "", /the replica's IO thread is not running \(No\): Got fatal error 1236/);
    assert.match(state.reason ?? "", MUST_SEED);
  });

  it("npm run reseed's replica.sh reseed, failing to catch up (its replication login locked on the primary): exit 1, and the app's login stays locked on the replica, so its reads go to the primary", async () => {
    primary.sql("SET SESSION sql_log_bin = 0; ALTER USER 'replicator'@'%' ACCOUNT LOCK;");
    const reseed = await runReplica(script, { ...env, REPLICA_RESEED_WAIT_SECONDS: "5" }, "reseed");
    assert.equal(reseed.status, 1, reseed.stderr);
    assert.match(reseed.stderr, /seeding bbaegok-prod-db-replica again from bbaegok-prod-db; its replication before: .*must be seeded again/);
    assert.match(reseed.stderr, /bbaegok@% on bbaegok-prod-db-replica: locked/);
    assert.match(reseed.stderr, /seeded again, does not replicate from bbaegok-prod-db yet .*run npm run reseed again if it stays so/);
    assert.doesNotMatch(reseed.stderr, /unlocked/);
    assert.deepEqual(JSON.parse((await runScript(script, env, ["reseed", "last"])).stdout), { step: "all", run: "", state: "failed" });
    // Status, why the replica is not healthy: that reseed failed, when, and where its log is.
    const state = await replicaStatus(script, env);
    assert.equal(state.healthy, false, JSON.stringify(state));
    assert.match(state.reason ?? "", /; the last reseed here failed at \S+Z: its log is \S+\/bbaegok-prod-replica-both\.log on this server$/, JSON.stringify(state));
    const refused = appRead();
    assert.notEqual(refused.status, 0, "the app's login read the replica of a failed reseed");
    assert.match(refused.stderr, /account is locked/i);
  });

  it("run again, its session killed while it waits (the replicator still locked): the reseed goes on, status names it, and the same command run again follows it to its end once it can catch up; it seeds the replica in place: every row, replicating, the app's login unlocked; the primary keeps running", async () => {
    const rows = primary.sql("SELECT count(*) FROM orders", DB).trim();
    const uptime = Number(primary.sql("SHOW GLOBAL STATUS LIKE 'Uptime'").trim().split("\t")[1]);
    const waiting = { ...env, REPLICA_RESEED_WAIT_SECONDS: "120" };
    const first = startReplicaSession(script, waiting, "reseed");
    await waitFor("the reseed to load the dump", () => /seeding bbaegok-prod-db-replica from a consistent dump/.test(first.stderr()), 30_000, 100);
    await first.hangUp();
    const state = await replicaStatus(script, env);
    assert.match(state.reason ?? "", /; replica\.sh reseed \(pid \d+, since \S+Z\) is running on this server$/, JSON.stringify(state));
    // A second reseed is not started beside it: this one follows the first, from its log's first line.
    const again = startReplicaSession(script, waiting, "reseed");
    await waitFor("the second run to follow the first", () => /following its log to its end/.test(again.stderr()), 10_000, 100);
    primary.sql("SET SESSION sql_log_bin = 0; ALTER USER 'replicator'@'%' ACCOUNT UNLOCK;");
    const reseed = await again.done;
    assert.equal(reseed.status, 0, reseed.stderr);
    assert.match(reseed.stderr, /replica\.sh reseed \(pid \d+, since \S+Z\) is running on this server: following its log to its end/);
    assert.match(reseed.stderr, /seeding bbaegok-prod-db-replica again from bbaegok-prod-db/, "the log was not followed from its start");
    assert.equal(reseed.stderr.match(/seeding bbaegok-prod-db-replica from a consistent dump/g)?.length, 1, "the replica was seeded twice");
    assert.match(reseed.stderr, /bbaegok@% on bbaegok-prod-db-replica: unlocked/);
    assert.deepEqual(JSON.parse((await runScript(script, env, ["reseed", "last"])).stdout), { step: "all", run: "", state: "ok" });
    assert.equal(appRead().stdout.trim(), rows);
    primary.sql("INSERT INTO orders (memo) VALUES ('after the reseed')", DB);
    await waitFor("the row written after the reseed on the replica", () => appRead().stdout.trim() === String(Number(rows) + 1), 30_000, 300);
    assert.equal((await replicaStatus(script, env)).healthy, true);
    assert.ok(Number(primary.sql("SHOW GLOBAL STATUS LIKE 'Uptime'").trim().split("\t")[1]) >= uptime, "the primary restarted");
  });

  it("seeded again as the README says, taken out and put back: retire (its server gone) drops the logins; setup seeds a new server, which replicates every row", async () => {
    await replica.stop();
    const retire = await runReplica(script, env, "retire");
    assert.equal(retire.status, 0, retire.stderr);
    assert.equal(primary.sql("SELECT count(*) FROM mysql.user WHERE user = 'replicator'").trim(), "0");
    replica = await startMariaDbReplica(dir.path, { database: DB, appPassword: generatedPassword(), memoryMb: 512 });
    env = mariaDbPairEnv(dir.path, { primary, replica });
    await setUpReplica(script, env);
    assert.equal(replica.sql("SELECT count(*) FROM orders", DB).trim(), primary.sql("SELECT count(*) FROM orders", DB).trim());
    assert.equal((await replicaStatus(script, env)).healthy, true);
  });
});
