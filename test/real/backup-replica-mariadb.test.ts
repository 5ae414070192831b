// Backups of a MariaDB database that has a read replica, for real: two Debian
// MariaDB servers replicating by GTID (the program's flags, the rendered
// replica.sh), the backup script rendered for a stack with that replica,
// moto's S3 server, and `npm run restore` into a third server. The backup is
// taken from the replica while it is healthy, from the primary (saying why,
// and pinging the failure URL) when its SQL thread is stopped. Only `docker
// exec` is stood in for.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { primaryReplicationFlags, replicaServerFlags } from "../../infra/replica/render.js";
import { SshServerControl, localShell } from "../../ops/deploy/server.js";
import { formatStatus, gatherStatus } from "../../ops/deploy/status.js";
import { mariadbLogicalDump, runNodeCommand, runRestore, runScript, startPingServer } from "../support/backup-harness.js";
import { REPO } from "../support/project.js";
import { startMariaDb, type MariaDb } from "../support/mariadb.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { PRIMARY_CONTAINER, REPLICA_CONTAINER, generatedPassword, renderReplicaScript, newestManifest, renderReplicatedBackupScript, replicaEnv, replicaStatus, replicatedBackupEnv, replicatedDatabase, runReplica, writeReplicaRole } from "../support/replica-harness.js";
import { tempDir, waitFor } from "../support/system.js";
import { loadStack } from "../../stacks/config/load.js";

const DB = "bbaegok";

// Korean text and emoji, binary data, NULLs, strings that look like the dump's
// row separators, a 2 MiB row, a view, a trigger, a routine.
function seedSql(blob: Buffer): string {
  return `
CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, bio TEXT NULL, avatar VARBINARY(64) NULL, joined DATETIME(6) NOT NULL) ENGINE=InnoDB;
INSERT INTO users (name, bio, avatar, joined) VALUES
  ('김철수', '안녕하세요 👋 빼곡 🥟', 0x00FF10A0FFFE, '2025-01-02 03:04:05.123456'),
  ('O''Brien), (evil', 'line one\\nline two \\\\ '', quote ),( more', NULL, '2025-03-04 05:06:07');
CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id INT NOT NULL, memo VARCHAR(255) NULL, CONSTRAINT fk_orders_user FOREIGN KEY (user_id) REFERENCES users (id)) ENGINE=InnoDB;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, order_id BIGINT NOT NULL) ENGINE=InnoDB;
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (order_id) VALUES (NEW.id);
SET SESSION max_recursive_iterations = 100000;
INSERT INTO orders WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 2000) SELECT n, 1 + (n MOD 2), IF(n MOD 7 = 0, NULL, CONCAT('메모 ', n, ' 😀')) FROM seq;
CREATE TABLE attachments (id INT PRIMARY KEY, body LONGBLOB NOT NULL) ENGINE=InnoDB;
INSERT INTO attachments VALUES (1, X'${blob.toString("hex")}');
CREATE VIEW user_orders AS SELECT u.name, COUNT(*) AS n FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.name;
CREATE FUNCTION greeting(p_name VARCHAR(100)) RETURNS VARCHAR(120) DETERMINISTIC RETURN CONCAT('안녕, ', p_name);
`;
}

describe("backups of a MariaDB database with a read replica (for real)", () => {
  let primary: MariaDb;
  let replica: MariaDb;
  let restored: MariaDb;
  let s3: MotoServer;
  let ping: Awaited<ReturnType<typeof startPingServer>>;
  const dir = tempDir("backup-replica-mariadb");
  let backup: { script: string; bucket: string };
  let env: Record<string, string>;
  const blob = randomBytes(2 * 1024 * 1024);
  const newest = () => newestManifest(s3, backup.bucket, DB);
  const gtid = (db: MariaDb, variable: string) => db.sql(`SELECT @@${variable}`).trim();
  let replicaScript: string;
  let hook: Record<string, string>;
  const backupStatus = () => runNodeCommand(join(REPO, "ops", "backup-status.ts"), ["--stack", "prod", "--endpoint-url", s3.endpoint], s3.operatorEnv());
  /** npm run status's lines, the server asked through SshServerControl on a local shell (the stack's replica.sh path mapped to the test's). */
  const statusLines = async () => {
    const config = { ...loadStack("prod").config, database: replicatedDatabase("mariadb", 30) };
    const control = new SshServerControl({ stack: "prod", config, proxy: { container: "none", image: "none", dir: dir.path, internalPort: 1 }, shell: localShell(hook), privilege: "none" });
    const asked: string[] = [];
    const server = {
      health: async () => "healthy" as const,
      servedBy: async () => "blue" as const,
      readHistory: async () => [],
      replication: (script: string) => (asked.push(script), control.replication(replicaScript)),
    };
    const lines = formatStatus(await gatherStatus("prod", config, undefined, server));
    assert.deepEqual(asked, ["/srv/bbaegok/prod/replica/replica.sh"]);
    return lines;
  };

  before(async () => {
    const flags = replicaServerFlags({ engine: "mariadb", memoryMb: 1024, primaryHost: "127.0.0.1", primaryPort: 0, secretsDir: dir.path, slot: "replica_1" });
    [primary, replica, restored, s3, ping] = await Promise.all([
      startMariaDb(primaryReplicationFlags("mariadb")),
      startMariaDb(flags, { optionFile: writeReplicaRole(dir.path) }),
      startMariaDb(),
      startMoto([{ name: "bbaegok-prod-db-backups", versioned: true }]),
      startPingServer(),
    ]);
    const create = `CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`;
    primary.sql(create);
    replica.sql(`SET SESSION sql_log_bin = 0; ${create}`);
    restored.sql(create);
    primary.sql(seedSql(blob), DB);
    writeFileSync(join(dir.path, "db_root_password"), "unused-root-uses-the-socket\n", { mode: 0o400 });
    writeFileSync(join(dir.path, "replication_password"), `${generatedPassword()}\n`, { mode: 0o400 });
    writeFileSync(join(dir.path, "ping-url"), `${ping.url}\n`, { mode: 0o600 });
    replicaScript = renderReplicaScript(dir.path, { database: replicatedDatabase("mariadb", 30), replica: { maxLagSeconds: 30 }, primaryHost: "127.0.0.1", primaryPort: primary.port });
    hook = replicaEnv(dir.path, { [PRIMARY_CONTAINER]: { MYSQL_UNIX_PORT: primary.socket }, [REPLICA_CONTAINER]: { MYSQL_UNIX_PORT: replica.socket } });
    const setup = await runReplica(replicaScript, hook, "setup");
    assert.equal(setup.status, 0, setup.stderr);
    const wait = await runReplica(replicaScript, hook, "wait");
    assert.equal(wait.status, 0, wait.stderr + wait.stdout);
    backup = renderReplicatedBackupScript(dir.path, "mariadb", 30);
    env = replicatedBackupEnv(dir.path, hook, replicaScript, s3);
  });
  after(async () => {
    await Promise.all([primary?.stop(), replica?.stop(), restored?.stop(), s3?.stop(), ping?.stop()]);
    dir.remove();
  });

  it("backs up from the healthy replica: the manifest says so, why, and the GTID position, equal to the primary's", async () => {
    const position = gtid(primary, "gtid_binlog_pos");
    await waitFor("the replica to catch up", () => gtid(replica, "gtid_slave_pos") === position, 30_000, 200);
    const run = await runScript(backup.script, env);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /backup of prod\/bbaegok from its replica bbaegok-prod-db-replica: the replica is healthy and 0 s behind \(bound 30 s\)/);
    assert.match(run.stderr, /backup of prod\/bbaegok \(mariadb in container bbaegok-prod-db-replica\) done/);
    const manifest = newest();
    assert.equal(manifest.source, "replica");
    assert.deepEqual(manifest.replication, { why: "the replica is healthy and 0 s behind (bound 30 s)", positionType: "gtid", position, primaryPosition: position, lagSeconds: 0 });
    assert.equal(manifest.tables.find((t) => t.name === "orders")?.rows, 2000);
    assert.deepEqual(ping.hits, ["/ping/test-check"]);
  });

  it("npm run backup:status shows the backup was taken from the replica, its lag and GTID position; npm run status shows the replica healthy", async () => {
    const run = await backupStatus();
    const position = gtid(primary, "gtid_binlog_pos");
    assert.match(run.stdout, new RegExp(`^ +from the replica \\(replication lag 0 s, GTID ${position}\\)$`, "m"), run.stdout + run.stderr);
    const line = (await statusLines()).find((l) => l.startsWith("  replica "));
    assert.equal(line, `  replica  bbaegok-prod-db-replica  healthy, 0 s behind (0 transactions), primary at ${position}, replica at ${position}`);
  });

  it("the replica's backup restores byte for byte: npm run restore into an empty server dumps exactly as the primary", async () => {
    const run = await runRestore(["--stack", "prod", "--target", `mariadb://root@localhost/${DB}?socket=${encodeURIComponent(restored.socket)}`, "--endpoint-url", s3.endpoint], s3.operatorEnv());
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /sha256 matches the manifest/);
    // The header names each server's version, which says "-log" on a server with a binary log.
    const dump = (db: MariaDb) => mariadbLogicalDump(db.socket, DB).replace(/^-- Server version.*$/m, "");
    assert.ok(dump(restored) === dump(primary), "the restored database dumps differently from the primary");
    assert.equal(restored.sql(`SELECT SHA2(body, 256) FROM ${DB}.attachments`).trim(), createHash("sha256").update(blob).digest("hex"));
    assert.equal(restored.sql(`SELECT bio FROM ${DB}.users WHERE id = 1`).trim(), "안녕하세요 👋 빼곡 🥟");
  });

  it("with the replica's SQL thread stopped and writes on the primary: backs up from the primary, says why, pings the failure URL", async () => {
    replica.sql("STOP SLAVE SQL_THREAD");
    primary.sql("INSERT INTO orders VALUES (5001, 1, '복제 안 됨'); INSERT INTO orders VALUES (5002, 2, NULL);", DB);
    const position = gtid(primary, "gtid_binlog_pos");
    ping.hits.length = 0;
    const run = await runScript(backup.script, env);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /replication of prod\/bbaegok is broken or lagging: the replica bbaegok-prod-db-replica is not usable: the replica's SQL thread is stopped; backing up from the primary bbaegok-prod-db instead/);
    assert.match(run.stderr, /backup of prod\/bbaegok \(mariadb in container bbaegok-prod-db\) done/);
    assert.match(run.stderr, /all 1 databases backed up, but from the primary: 1 replica\(s\) broken or lagging/);
    assert.deepEqual(ping.hits, ["/ping/test-check/fail"]);
    const manifest = newest();
    assert.equal(manifest.source, "primary");
    assert.equal(manifest.replication?.why, "the replica bbaegok-prod-db-replica is not usable: the replica's SQL thread is stopped");
    assert.equal(manifest.replication?.position, position);
    assert.notEqual(manifest.replication?.replicaPosition, position);
    // The primary's rows, which the replica has not applied.
    assert.equal(manifest.tables.find((t) => t.name === "orders")?.rows, 2002);
    const status = await backupStatus();
    assert.match(status.stdout, new RegExp(`^ +from the PRIMARY, not the replica: the replica bbaegok-prod-db-replica is not usable: the replica's SQL thread is stopped \\(replication lag \\S+, GTID ${position}\\)$`, "m"), status.stdout);
    const line = (await statusLines()).find((l) => l.startsWith("  replica "));
    assert.match(line ?? "", /^  replica  bbaegok-prod-db-replica  UNHEALTHY: the replica's SQL thread is stopped; .*\(2 transactions\)/);
    replica.sql("START SLAVE SQL_THREAD");
  });

  it("with replication running but further behind than the bound (a delayed replica): backs up from the primary, says how far behind, pings the failure URL", async () => {
    await waitFor("the replica to catch up", () => gtid(replica, "gtid_slave_pos") === gtid(primary, "gtid_binlog_pos"), 30_000, 200);
    // Scripts rendered with a bound of 1 s; the replica applies each transaction 30 s after the primary wrote it.
    const bounded = join(dir.path, "bound-1s");
    mkdirSync(bounded);
    const boundedReplica = renderReplicaScript(bounded, { database: replicatedDatabase("mariadb", 1), replica: { maxLagSeconds: 1 }, primaryHost: "127.0.0.1", primaryPort: primary.port });
    const boundedBackup = renderReplicatedBackupScript(bounded, "mariadb", 1);
    replica.sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 30; START SLAVE;");
    try {
      primary.sql("INSERT INTO orders VALUES (5003, 1, '지연');", DB);
      const position = gtid(primary, "gtid_binlog_pos");
      await waitFor("the replica to be more than 1 s behind", async () => ((await replicaStatus(boundedReplica, hook)).lagSeconds ?? 0) > 1, 20_000, 250);
      const state = await replicaStatus(boundedReplica, hook);
      assert.equal(state.healthy, false);
      assert.match(state.reason ?? "", /^the replica is \d+ s behind, more than the bound of 1 s$/);
      ping.hits.length = 0;
      const run = await runScript(boundedBackup.script, replicatedBackupEnv(dir.path, hook, boundedReplica, s3));
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr, /replication of prod\/bbaegok is broken or lagging: the replica bbaegok-prod-db-replica is not usable: the replica is \d+ s behind, more than the bound of 1 s; backing up from the primary bbaegok-prod-db instead/);
      assert.deepEqual(ping.hits, ["/ping/test-check/fail"]);
      const manifest = newest();
      assert.equal(manifest.source, "primary");
      assert.equal(manifest.replication?.position, position);
      assert.ok((manifest.replication?.lagSeconds ?? 0) > 1, JSON.stringify(manifest.replication));
      assert.equal(manifest.tables.find((t) => t.name === "orders")?.rows, 2003);
    } finally {
      replica.sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE;");
    }
  });
});
