// The read replica of a MariaDB database, for real: two Debian MariaDB servers
// on loopback started with the flags the program gives the primary and the
// replica, and the rendered replica script (setup, wait, status, promote)
// run against them. The only stand-in is `docker exec` (test/support/replica-harness.ts).
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { spawn } from "node:child_process";
import { REPLICATION_USER, replicaApplyThreads, replicaServerFlags } from "../../infra/replica/render.js";
import type { MariaDb } from "../support/mariadb.js";
import { PRIMARY_CONTAINER, REPLICA_CONTAINER, generatedPassword, renderReplicaScript, replicaEnv, replicaStatus, replicatedDatabase, runReplica, startMariaDbPair, startReplicatedMariaDb, writeReplicaRole } from "../support/replica-harness.js";
import { requireCommand, tempDir, waitFor } from "../support/system.js";

const DB = "bbaegok";
const APP_PASSWORD = generatedPassword();
const REPLICA_MEMORY_MB = 1024;

/** Runs SQL as root over `socket` in a client of its own, so that several run at once on the primary. */
function sqlInBackground(socket: string, statements: string): Promise<void> {
  const client = spawn(requireCommand("mariadb", "mariadb-client"), ["--no-defaults", `--socket=${socket}`, "-uroot", DB], { stdio: ["pipe", "ignore", "pipe"] });
  let stderr = "";
  client.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  client.stdin.end(statements);
  return new Promise((resolve, reject) => client.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`a writer failed (${code}): ${stderr}`)))));
}


describe("a MariaDB read replica (the rendered setup, for real)", () => {
  let primary: MariaDb;
  let replica: MariaDb;
  const dir = tempDir("replica-mariadb");
  let script: string;
  let env: Record<string, string>;
  const status = () => replicaStatus(script, env);
  const onReplica = (sql: string) => replica.sql(sql, DB).trim();
  // The script as the up after `npm run promote` renders it (database.primary: replica).
  const promotedScript = () => {
    const promotedDir = join(dir.path, "promoted");
    mkdirSync(promotedDir, { recursive: true });
    return renderReplicaScript(promotedDir, { database: { ...replicatedDatabase("mariadb", 30), primary: "replica" }, replica: { maxLagSeconds: 30 }, primaryHost: "127.0.0.1", primaryPort: primary.port });
  };

  before(async () => {
    ({ primary, replica } = await startMariaDbPair(dir.path, { database: DB, appPassword: APP_PASSWORD, memoryMb: REPLICA_MEMORY_MB }));
    primary.sql(`CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, memo VARCHAR(100) NOT NULL) ENGINE=InnoDB;
      INSERT INTO orders (memo) VALUES ('주문 1'), ('주문 2 😀');`, DB);
    script = renderReplicaScript(dir.path, { database: replicatedDatabase("mariadb", 30), replica: { maxLagSeconds: 30 }, primaryHost: "127.0.0.1", primaryPort: primary.port });
    env = replicaEnv(dir.path, { [PRIMARY_CONTAINER]: { MYSQL_UNIX_PORT: primary.socket }, [REPLICA_CONTAINER]: { MYSQL_UNIX_PORT: replica.socket } });
  });
  after(async () => {
    await Promise.all([primary?.stop(), replica?.stop()]);
    dir.remove();
  });

  it("refuses to set up with an empty replication password file, naming it: no replication login with an empty password", async () => {
    const file = join(dir.path, "replication_password");
    const password = readFileSync(file, "utf8");
    chmodSync(file, 0o600);
    writeFileSync(file, "");
    try {
      const setup = await runReplica(script, env, "setup");
      assert.notEqual(setup.status, 0, setup.stderr);
      assert.match(setup.stderr, new RegExp(`no password in ${file}`));
      assert.equal(primary.sql(`SELECT COUNT(*) FROM mysql.user WHERE user = '${REPLICATION_USER}'`).trim(), "0", "a replication login was made");
    } finally {
      writeFileSync(file, password);
      chmodSync(file, 0o400);
    }
  });

  it("sets up GTID replication from a consistent dump: the primary's rows are on the replica, the positions equal", async () => {
    const setup = await runReplica(script, env, "setup");
    assert.equal(setup.status, 0, setup.stderr);
    assert.match(setup.stderr, /seeding bbaegok-prod-db-replica from a consistent dump of bbaegok on bbaegok-prod-db/);
    const wait = await runReplica(script, env, "wait");
    assert.equal(wait.status, 0, wait.stderr + wait.stdout);
    assert.equal(onReplica("SELECT GROUP_CONCAT(memo ORDER BY id) FROM orders"), "주문 1,주문 2 😀");
    assert.match(replica.sql("SHOW SLAVE STATUS\\G"), /^Slave_Pos$/m, "replication does not use GTIDs (Using_Gtid)");
    const state = await status();
    assert.equal(state.healthy, true, JSON.stringify(state));
    assert.equal(state.behind, 0);
    assert.equal(state.replicaPosition, primary.sql("SELECT @@gtid_binlog_pos").trim());
  });

  it("the replication user has only the replication grant", () => {
    assert.deepEqual(primary.sql("SHOW GRANTS FOR 'replicator'@'%'").trim().split("\n").map((g) => g.replace(/ IDENTIFIED BY PASSWORD '[^']+'/, "")), ["GRANT REPLICATION SLAVE ON *.* TO `replicator`@`%`"]);
  });

  it("writes on the primary appear on the replica, and the recorded positions match", async () => {
    primary.sql("INSERT INTO orders (memo) VALUES ('주문 3'); UPDATE orders SET memo = '바뀜' WHERE id = 1;", DB);
    const position = primary.sql("SELECT @@gtid_binlog_pos").trim();
    await waitFor("the replica to apply the writes", () => replica.sql("SELECT @@gtid_slave_pos").trim() === position, 30_000, 200);
    assert.equal(onReplica("SELECT GROUP_CONCAT(memo ORDER BY id) FROM orders"), "바뀜,주문 2 😀,주문 3");
    const state = await status();
    assert.deepEqual([state.primaryPosition, state.replicaPosition, state.behind], [position, position, 0]);
  });

  it("both keep their binary logs a week by their own flags, the replica's too (its log serves a promotion), not by the server's defaults", () => {
    for (const server of [primary, replica]) assert.deepEqual(server.sql("SELECT @@log_bin, @@binlog_expire_logs_seconds").trim().split("\t"), ["1", String(7 * 24 * 3600)]);
  });

  it("the replica refuses the app's writes (read_only)", () => {
    const write = replica.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('x')", DB);
    assert.notEqual(write.status, 0);
    assert.match(write.stderr, /--read-only/);
    const read = replica.sqlAs(DB, APP_PASSWORD, "SELECT COUNT(*) FROM orders", DB);
    assert.equal(read.stdout.trim(), "3", read.stderr);
  });

  it("a second setup leaves the running replica as it is", async () => {
    const again = await runReplica(script, env, "setup");
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /already replicates from bbaegok-prod-db; left as it is/);
    assert.equal((await status()).healthy, true);
  });

  it("an account change on the primary does not break replication (the replica keeps its own accounts)", async () => {
    primary.sql("CREATE USER 'someone'@'%' IDENTIFIED BY 'x1'; ALTER USER 'someone'@'%' IDENTIFIED BY 'x2'; GRANT SELECT ON bbaegok.* TO 'someone'@'%';");
    primary.sql("INSERT INTO orders (memo) VALUES ('주문 4')", DB);
    const position = primary.sql("SELECT @@gtid_binlog_pos").trim();
    await waitFor("the replica to catch up", () => replica.sql("SELECT @@gtid_slave_pos").trim() === position, 30_000, 200);
    assert.equal((await status()).healthy, true);
  });

  it("applies in parallel (optimistic): rows several connections wrote at once arrive identical, at the primary's GTID position", async () => {
    assert.deepEqual(replica.sql("SELECT @@slave_parallel_threads, @@slave_parallel_mode").trim().split("\t"), [String(replicaApplyThreads(REPLICA_MEMORY_MB)), "optimistic"]);
    assert.ok(replicaApplyThreads(REPLICA_MEMORY_MB) > 1);
    primary.sql("CREATE TABLE ledger (id INT AUTO_INCREMENT PRIMARY KEY, writer INT NOT NULL, n INT NOT NULL, memo VARCHAR(100) NOT NULL) ENGINE=InnoDB; CREATE TABLE counters (id INT PRIMARY KEY, total INT NOT NULL) ENGINE=InnoDB; INSERT INTO counters VALUES (0, 0), (1, 0), (2, 0);", DB);
    // Each transaction inserts its own row and bumps one of three shared counters: the workers' conflicts are retried, never lost.
    const writer = (w: number) =>
      Array.from({ length: 150 }, (_, n) => `BEGIN; INSERT INTO ledger (writer, n, memo) VALUES (${w}, ${n}, '쓰기 ${w}-${n}'); UPDATE counters SET total = total + 1 WHERE id = ${n % 3}; COMMIT;`).join("\n");
    await Promise.all([1, 2, 3, 4].map((w) => sqlInBackground(primary.socket, writer(w))));
    const position = primary.sql("SELECT @@gtid_binlog_pos").trim();
    await waitFor("the replica to apply the concurrent writes", () => replica.sql("SELECT @@gtid_slave_pos").trim() === position, 60_000, 200);
    const checksums = (server: MariaDb) => server.sql("CHECKSUM TABLE ledger, counters EXTENDED", DB);
    assert.equal(checksums(replica), checksums(primary));
    assert.equal(onReplica("SELECT SUM(total) FROM counters"), "600");
    const state = await status();
    assert.deepEqual([state.healthy, state.behind, state.replicaPosition], [true, 0, position]);
  });

  it("a replaced replica (new flags, its data kept, as a changed container on its volume) resumes from its GTID position: nothing seeded again, nothing missed", async () => {
    const rowsBefore = onReplica("SELECT COUNT(*) FROM orders");
    // Writes while the replica is down, and while it starts again.
    primary.sql("INSERT INTO orders (memo) VALUES ('while the replica was replaced')", DB);
    const restarted = replica.restart(replicaServerFlags({ engine: "mariadb", memoryMb: 512, primaryHost: "127.0.0.1", primaryPort: 0, secretsDir: dir.path, slot: "replica_1" }));
    primary.sql("INSERT INTO orders (memo) VALUES ('while it started')", DB);
    await restarted;
    primary.sql("INSERT INTO orders (memo) VALUES ('after')", DB);
    const position = primary.sql("SELECT @@gtid_binlog_pos").trim();
    await waitFor("the replaced replica to catch up by itself", () => replica.sql("SELECT @@gtid_slave_pos").trim() === position, 60_000, 200);
    assert.equal(onReplica("SELECT COUNT(*) FROM orders"), String(Number(rowsBefore) + 3));
    const checksums = (server: MariaDb) => server.sql("CHECKSUM TABLE orders, ledger, counters EXTENDED", DB);
    assert.equal(checksums(replica), checksums(primary));
    assert.deepEqual(replica.sql("SELECT @@slave_parallel_threads, @@read_only").trim().split("\t"), [String(replicaApplyThreads(512)), "1"]);
    const state = await status();
    assert.deepEqual([state.healthy, state.behind], [true, 0]);
    // The next up's setup finds it replicating and leaves it.
    const again = await runReplica(script, env, "setup");
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /already replicates from bbaegok-prod-db; left as it is/);
  });

  it("with the SQL thread stopped and writes on the primary, status says so and how far behind", async () => {
    replica.sql("STOP SLAVE SQL_THREAD");
    primary.sql("INSERT INTO orders (memo) VALUES ('a'); INSERT INTO orders (memo) VALUES ('b');", DB);
    const state = await status();
    assert.equal(state.healthy, false);
    assert.equal(state.reason, "the replica's SQL thread is stopped");
    assert.equal(state.behind, 2);
    assert.equal(state.unit, "transactions");
    replica.sql("START SLAVE SQL_THREAD");
    await waitFor("the replica to catch up", async () => (await status()).behind === 0, 30_000, 300);
  });

  it("promote: the old replica stops replicating and takes the app's writes; writable (the flip's check) refuses before it", async () => {
    const rows = Number(primary.sql("SELECT COUNT(*) FROM orders", DB).trim());
    const early = await runReplica(promotedScript(), env, "writable");
    assert.equal(early.status, 1, early.stderr);
    assert.match(early.stderr, /bbaegok-prod-db-replica still replicates from bbaegok-prod-db: it was not promoted .*refused/);
    assert.equal(onReplica("SELECT @@read_only"), "1");
    const run = await runReplica(script, env, "promote");
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /bbaegok-prod-db-replica promoted: it takes writes now/);
    const write = replica.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('승격 후')", DB);
    assert.equal(write.status, 0, write.stderr);
    assert.equal(replica.sql("SHOW SLAVE STATUS"), "");
    // Every row the primary had, and the one written after the promotion.
    assert.equal(onReplica("SELECT COUNT(*) FROM orders"), String(rows + 1));
  });

  it("promoted, but the stack file still says original (the promotion not committed when CI deployed): a reseed refuses, its writes kept", async () => {
    const rows = onReplica("SELECT COUNT(*) FROM orders");
    const reseed = await runReplica(script, env, "reseed");
    assert.equal(reseed.status, 1, reseed.stderr);
    assert.match(reseed.stderr, /bbaegok-prod-db-replica takes the app's writes: it is a primary \(promoted\?\), not a replica to seed again; nothing was touched/);
    assert.equal(onReplica("SELECT COUNT(*) FROM orders"), rows);
    assert.equal(replica.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('재시드 거부 후')", DB).status, 0, "its logins were locked");
  });

  it("promoted, its role is its option file: restarted (flags unchanged, the container left as it is) before the flip's up rewrote it, it is read-only, and the up's writable check makes it writable; once rewritten, a restart keeps it writable", async () => {
    const flags = replicaServerFlags({ engine: "mariadb", memoryMb: REPLICA_MEMORY_MB, primaryHost: "127.0.0.1", primaryPort: 0, secretsDir: dir.path, slot: "replica_1" });
    await replica.restart(flags);
    assert.equal(onReplica("SELECT @@read_only"), "1");
    assert.notEqual(replica.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('refused')", DB).status, 0);
    const check = await runReplica(promotedScript(), env, "writable");
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stderr, /bbaegok-prod-db-replica was read-only \(restarted since its promotion, before its role file said promoted\): made writable/);
    assert.equal(replica.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('확인 후')", DB).status, 0);
    writeReplicaRole(dir.path, true);
    await replica.restart(flags);
    assert.equal(onReplica("SELECT @@read_only"), "0");
    const write = replica.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('재시작 후')", DB);
    assert.equal(write.status, 0, write.stderr);
  });
});

describe("a MariaDB replica taken out of the stack: replica.sh retire on the primary (the up's delete, after the replica's container)", () => {
  let primary: MariaDb;
  let replica: MariaDb;
  const dir = tempDir("replica-mariadb-retire");
  let script: string;
  let env: Record<string, string>;
  const logins = () => primary.sql("SELECT GROUP_CONCAT(user ORDER BY user) FROM mysql.user WHERE user IN ('replicator', 'replica_seed')").trim();

  before(async () => {
    ({ primary, replica, script, env } = await startReplicatedMariaDb(dir.path, { database: DB, appPassword: APP_PASSWORD, memoryMb: 512, schema: "CREATE TABLE orders (id INT PRIMARY KEY, memo VARCHAR(100) NOT NULL); INSERT INTO orders VALUES (1, '주문 1');" }));
  });
  after(async () => {
    await Promise.all([primary?.stop(), replica?.stop()]);
    dir.remove();
  });

  it("while a replica still replicates from the primary, retire keeps its login and says so (exit 0: the up goes on)", async () => {
    const run = await runReplica(script, { ...env, RETIRE_WAIT_SECONDS: "2" }, "retire");
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /a replica still replicates from bbaegok-prod-db after 2 s: its slot and logins are kept/);
    assert.equal(logins(), "replicator");
  });

  it("with the replica gone, retire drops the replication login on the primary, outside its binary log; the data stays; a second run changes nothing", async () => {
    await replica.stop();
    const before = primary.sql("SELECT @@gtid_binlog_pos").trim();
    const run = await runReplica(script, env, "retire");
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /the replica's slot and logins are dropped on bbaegok-prod-db/);
    assert.equal(logins(), "NULL");
    assert.equal(primary.sql("SELECT @@gtid_binlog_pos").trim(), before, "the drop went into the binary log");
    assert.equal(primary.sql("SELECT memo FROM orders", DB).trim(), "주문 1");
    const again = await runReplica(script, env, "retire");
    assert.equal(again.status, 0, again.stderr);
  });

  it("rendered once promoted (database.primary: replica), retire refuses: the promoted replica is the primary", async () => {
    const promotedDir = join(dir.path, "promoted");
    mkdirSync(promotedDir, { recursive: true });
    const promoted = renderReplicaScript(promotedDir, { database: { ...replicatedDatabase("mariadb", 30), primary: "replica" }, replica: { maxLagSeconds: 30 }, primaryHost: "127.0.0.1", primaryPort: primary.port });
    const run = await runReplica(promoted, env, "retire");
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /is the primary \(promoted\): nothing of it is retired/);
  });
});
