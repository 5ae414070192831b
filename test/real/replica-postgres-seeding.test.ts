// A PostgreSQL replica's seeding cut short. The replica's container seeds an
// empty volume by pg_basebackup in its entrypoint, then writes standby.signal
// and starts the server. A container stopped in between (an up interrupted,
// a power cut) leaves its volume with part of a base backup, or all of it
// without standby.signal; started again as it was, the server would run on a
// partial copy, or as a writable primary beside the real one. The rendered
// entrypoint (infra/replica/render.ts) clears such a folder (it still holds
// pg_basebackup's backup_label, which a server renames at its first start)
// and seeds it again. Real Debian PostgreSQL, as an unprivileged user, for
// the primary and the replica; the base backups cut short are made by the
// same pg_basebackup command the entrypoint runs.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { REPLICATION_PGPASS_FILE, primaryReplicationFlags } from "../../infra/replica/render.js";
import { POSTGRES_OS_USER, startPostgres, uidOf, type Postgres } from "../support/postgres.js";
import { PRIMARY_CONTAINER, REPLICA_CONTAINER, renderReplicaScript, replicaEnv, replicatedDatabase, runReplica, startStandby, writePostgresReplicationSecrets, type Standby } from "../support/replica-harness.js";
import { tempDir, waitFor } from "../support/system.js";

const DB = "bbaegok";

describe("a PostgreSQL replica whose seeding was cut short is seeded again, never started as it was (real PostgreSQL)", () => {
  let primary: Postgres;
  const standbys: Standby[] = [];
  const dir = tempDir("replica-postgres-seeding");
  const { uid, gid } = uidOf(POSTGRES_OS_USER);

  /** A case's folder, the replica's data folder in it (as the entrypoint's volume: empty, the database's uid). */
  const caseDir = (name: string) => {
    const folder = join(dir.path, name);
    const data = join(folder, "replica-data");
    mkdirSync(data, { recursive: true, mode: 0o700 });
    chownSync(folder, uid, gid);
    chownSync(data, uid, gid);
    return { folder, data };
  };
  /** The entrypoint's pg_basebackup into `data`, as the database's uid; `rate` slows it (pg_basebackup's --max-rate). */
  const baseBackupArgs = (data: string, rate?: string) => [
    "-h", "127.0.0.1", "-p", String(primary.port), "-U", "replicator", "--no-password", "-D", data, "-X", "stream", "-S", "replica_1", "--checkpoint=fast", ...(rate ? [`--max-rate=${rate}`] : []),
  ];
  const pgEnv = { PATH: "/usr/bin:/bin", PGPASSFILE: "" };

  before(async () => {
    primary = await startPostgres(primaryReplicationFlags("postgres"));
    primary.sql(`CREATE DATABASE ${DB}`);
    // About 40 MB: a base backup at 1 MB/s is well under way, and far from done, a few seconds in.
    primary.sql("CREATE TABLE orders (id serial PRIMARY KEY, memo text NOT NULL); INSERT INTO orders (memo) SELECT repeat(md5(g::text), 8) FROM generate_series(1, 100000) g;", DB);
    writePostgresReplicationSecrets(dir.path);
    pgEnv.PGPASSFILE = join(dir.path, REPLICATION_PGPASS_FILE);
    const script = renderReplicaScript(dir.path, { database: replicatedDatabase("postgres", 30), replica: { maxLagSeconds: 30 }, primaryHost: "127.0.0.1", primaryPort: primary.port });
    const env = replicaEnv(dir.path, { [PRIMARY_CONTAINER]: { PGHOST: primary.socketDir, PGPORT: String(primary.port), PGDATA: join(primary.socketDir, "data") }, [REPLICA_CONTAINER]: { PGHOST: dir.path, PGPORT: "1" } });
    const setup = await runReplica(script, env, "setup");
    assert.equal(setup.status, 0, setup.stderr);
  });
  after(async () => {
    await Promise.all([...standbys.map((s) => s.stop()), primary?.stop()]);
    dir.remove();
  });

  /** Starts the replica as its container would, on the case's folder, and checks it is a standby with all the rows. */
  const startAndCheck = async (folder: string) => {
    const standby = await startStandby(primary, folder, dir.path, DB);
    standbys.push(standby);
    assert.equal(standby.sql("SELECT pg_is_in_recovery()"), "t", "the replica started as a primary");
    await waitFor("the replica to stream", () => primary.sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").trim() === "1", 60_000, 300);
    assert.equal(standby.sql("SELECT count(*) FROM orders"), "100000");
    assert.equal(existsSync(join(folder, "replica-data", "backup_label")), false, "the server did not rename backup_label at its start");
    await standby.stop();
    standbys.pop();
  };

  it("a whole base backup without its standby.signal (the container stopped between the two): seeded again, started as a standby, not as a writable primary", async () => {
    const { folder, data } = caseDir("whole-without-signal");
    const copy = spawnSync("pg_basebackup", baseBackupArgs(data), { uid, gid, env: pgEnv, encoding: "utf8" });
    assert.equal(copy.status, 0, copy.stderr);
    assert.ok(existsSync(join(data, "PG_VERSION")) && existsSync(join(data, "backup_label")) && !existsSync(join(data, "standby.signal")));
    await startAndCheck(folder);
  });

  it("a base backup killed half-way: the partial copy is cleared and seeded again", async () => {
    const { folder, data } = caseDir("killed-half-way");
    // Its own process group: killed whole, with the WAL streamer it forks, as a container's stop kills every process in it.
    const copy = spawn("pg_basebackup", baseBackupArgs(data, "1M"), { uid, gid, env: pgEnv, stdio: "ignore", detached: true });
    const exited = new Promise((resolve) => copy.once("exit", resolve));
    await waitFor("the base backup to be under way", () => existsSync(join(data, "PG_VERSION")) && existsSync(join(data, "base")), 30_000, 50);
    process.kill(-copy.pid!, "SIGKILL");
    await exited;
    await waitFor("the primary to see the copy's connections end", () => primary.sql("SELECT count(*) FROM pg_stat_replication").trim() === "0", 30_000, 100);
    assert.ok(existsSync(join(data, "backup_label")), "no backup_label in the partial copy");
    assert.ok(!existsSync(join(data, "backup_manifest")), "the base backup had finished (its manifest, written last, is there)");
    await startAndCheck(folder);
  });
});
