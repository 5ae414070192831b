// A MariaDB replica on another server, over the program's WireGuard link, for
// real: two network namespaces stand for the two servers
// (test/support/link-harness.ts: the rendered wg-quick files and up script),
// each with a Debian MariaDB started with the program's flags, the primary
// listening on its link address only. Each server runs its own copy of the
// rendered replica.sh: the primary's makes the logins, the replica's seeds
// the replica by a dump of the primary over the link and starts GTID
// replication from the primary's link address. Each copy's stand-in for
// `docker exec` knows only its own server's container (the replica's runs in
// the replica's namespace), so neither side can reach the other but by the link.
// The replica listens on its link address (standing for its port published
// there): the app's and Metabase's logins read it from the primary's server.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BACKUP_USER, MONITOR_USER } from "../../infra/replica/render.js";
import { READONLY_USER, replicaReadOnlyUserSql } from "../../infra/metabase/render.js";
import { LINK, UNDERLAY, type LinkedServers } from "../support/link-harness.js";
import { linkedMariaDb, type LinkedMariaDb } from "../support/link-mariadb.js";
import { formatStatus, gatherStatus } from "../../ops/deploy/status.js";
import { loadStack } from "../../stacks/config/load.js";
import { runScript, startPingServer } from "../support/backup-harness.js";
import type { MariaDb } from "../support/mariadb.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { PRIMARY_CONTAINER, REPLICA_CONTAINER, generatedPassword, writeReplicaExecHook, type ContainerEnvs, newestManifest, renderReplicatedBackupScript, replicaStatus, replicatedBackupEnv, replicatedDatabase, runReplica } from "../support/replica-harness.js";
import { requireCommand, tempDir, waitFor } from "../support/system.js";

const DB = "bbaegok";
const APP_PASSWORD = generatedPassword();
const tag = String(process.pid % 100000);

describe("a MariaDB replica on another server, seeded and replicating over the rendered WireGuard link (network namespaces)", () => {
  const dir = tempDir("replica-link-mariadb");
  let servers: LinkedMariaDb;
  let link: LinkedServers;
  let primary: MariaDb;
  let replica: MariaDb;
  let s3: MotoServer;
  let ping: Awaited<ReturnType<typeof startPingServer>>;
  // Each server's copy of replica.sh, its password files (as its containers see them) and its docker exec stand-in.
  let side: LinkedMariaDb["side"];
  const onReplica = (sql: string) => replica.sql(sql, DB).trim();

  before(async () => {
    [servers, s3, ping] = await Promise.all([linkedMariaDb(dir.path, tag, DB, APP_PASSWORD), startMoto([{ name: "bbaegok-prod-db-backups", versioned: true }]), startPingServer()]);
    ({ link, primary, replica, side } = servers);
    // A trigger and a routine: the seeding login's grants must be enough for the dump to carry them.
    primary.sql(`CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, memo VARCHAR(100) NOT NULL, memo_length INT) ENGINE=InnoDB;
      CREATE TRIGGER orders_length BEFORE INSERT ON orders FOR EACH ROW SET NEW.memo_length = CHAR_LENGTH(NEW.memo);
      CREATE PROCEDURE order_count() SELECT COUNT(*) FROM orders;
      INSERT INTO orders (memo) VALUES ('주문 1'), ('주문 2 😀');`, DB);
  });
  after(async () => {
    await Promise.all([servers?.stop(), s3?.stop(), ping?.stop()]);
    dir.remove();
  });

  it("the primary's copy makes the replication user with the replication grant only, and a seeding login with read grants only", async () => {
    const setup = await runReplica(side.primary.script, side.primary.env, "setup");
    assert.equal(setup.status, 0, setup.stderr);
    assert.doesNotMatch(setup.stderr, /seeding/);
    const grants = (user: string) => primary.sql(`SHOW GRANTS FOR '${user}'@'%'`).trim().split("\n").map((g) => g.replace(/ IDENTIFIED BY PASSWORD '[^']+'/, ""));
    assert.deepEqual(grants("replicator"), ["GRANT REPLICATION SLAVE ON *.* TO `replicator`@`%`"]);
    assert.deepEqual(grants("replica_seed").sort(), [
      "GRANT SELECT ON `mysql`.`proc` TO `replica_seed`@`%`",
      "GRANT SELECT, SHOW VIEW, EVENT, TRIGGER ON `bbaegok`.* TO `replica_seed`@`%`",
      "GRANT USAGE ON *.* TO `replica_seed`@`%`",
    ]);
    // Outside the primary's binary log: the replica keeps its own accounts.
    assert.doesNotMatch(primary.sql("SHOW BINLOG EVENTS"), /replica_seed|replicator/);
  });

  it("the replica's copy seeds it by a dump of the primary over the link and replicates by GTID from the primary's link address", async () => {
    const setup = await runReplica(side.replica.script, side.replica.env, "setup");
    assert.equal(setup.status, 0, setup.stderr);
    assert.match(setup.stderr, new RegExp(`seeding bbaegok-prod-db-replica from a consistent dump of bbaegok on ${LINK.primary.replace(/\./g, "\\.")}:${primary.port}`));
    const wait = await runReplica(side.replica.script, side.replica.env, "wait");
    assert.equal(wait.status, 0, wait.stderr + wait.stdout);
    assert.equal(onReplica("SELECT GROUP_CONCAT(CONCAT(memo, ':', memo_length) ORDER BY id) FROM orders"), "주문 1:4,주문 2 😀:6");
    assert.equal(onReplica("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_NAME = 'orders_length'"), "1");
    assert.equal(onReplica("SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_NAME = 'order_count'"), "1");
    // The harness's client prints values only: Master_Host and Using_Gtid among them.
    const status = replica.sql("SHOW SLAVE STATUS\\G");
    assert.match(status, new RegExp(`^${LINK.primary.replace(/\./g, "\\.")}$`, "m"));
    assert.match(status, /^Slave_Pos$/m, "replication does not use GTIDs (Using_Gtid)");
    assert.equal(replica.sql("SELECT @@gtid_slave_pos").trim(), primary.sql("SELECT @@gtid_binlog_pos").trim());
  });

  it("the primary sees the replica connected from the replica's link address: it came through the tunnel", () => {
    const dump = primary.sql("SELECT USER, SUBSTRING_INDEX(HOST, ':', 1) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'").trim();
    assert.equal(dump, `replicator\t${LINK.replica}`);
    assert.match(primary.sql("SHOW SLAVE HOSTS"), /^2\t/m, "the replica (server id 2) is not registered with the primary");
  });

  it("writes on the primary appear on the replica, and the GTID positions equal; the replica's server reports them by replica.sh status", async () => {
    primary.sql("INSERT INTO orders (memo) VALUES ('주문 3 over the link'); UPDATE orders SET memo = '바뀜' WHERE id = 1;", DB);
    const position = primary.sql("SELECT @@gtid_binlog_pos").trim();
    await waitFor("the replica to apply the writes", () => replica.sql("SELECT @@gtid_slave_pos").trim() === position, 30_000, 200);
    assert.equal(onReplica("SELECT GROUP_CONCAT(memo ORDER BY id) FROM orders"), "바뀜,주문 2 😀,주문 3 over the link");
    const state = await replicaStatus(side.replica.script, side.replica.env);
    assert.deepEqual([state.healthy, state.primaryPosition, state.replicaPosition, state.behind], [true, position, position, 0], JSON.stringify(state));
  });

  it("the replica refuses the app's writes (read_only) and serves its reads", () => {
    const write = replica.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('x')", DB);
    assert.notEqual(write.status, 0);
    assert.match(write.stderr, /--read-only/);
    const read = replica.sqlAs(DB, APP_PASSWORD, "SELECT COUNT(*) FROM orders", DB);
    assert.equal(read.stdout.trim(), "3", read.stderr);
  });

  it("the app and Metabase on the primary's server read the replica at its link address, seen coming from the primary's; neither can write there", () => {
    const client = requireCommand("mariadb", "mariadb-client");
    // A client on the primary's server (the slots' and Metabase's traffic leaves their edge network masqueraded as this server).
    const fromPrimaryServer = (user: string, password: string, statements: string, host: string = LINK.replica) =>
      spawnSync("ip", link.inNs("primary", client, "--no-defaults", "--default-character-set=utf8mb4", "--connect-timeout=3", `-h${host}`, `-P${replica.port}`, `-u${user}`, "--batch", "--skip-column-names", DB), {
        input: statements,
        encoding: "utf8",
        env: { ...process.env, MYSQL_PWD: password },
      });
    const read = fromPrimaryServer(DB, APP_PASSWORD, "SELECT COUNT(*) FROM orders; SELECT SUBSTRING_INDEX(HOST, ':', 1) FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID();");
    assert.equal(read.status, 0, read.stderr);
    assert.equal(read.stdout, `3\n${LINK.primary}\n`);
    const write = fromPrimaryServer(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('x')");
    assert.notEqual(write.status, 0);
    assert.match(write.stderr, /--read-only/);
    // Metabase's login, as its component makes it on the replica: outside the replica's binary log.
    const position = replica.sql("SELECT @@gtid_binlog_pos").trim();
    const metabasePassword = generatedPassword();
    replica.sql(replicaReadOnlyUserSql(replicatedDatabase("mariadb"), [], metabasePassword));
    assert.equal(replica.sql("SELECT @@gtid_binlog_pos").trim(), position, "the login was written to the replica's binary log");
    const analytics = fromPrimaryServer(READONLY_USER, metabasePassword, "SELECT GROUP_CONCAT(memo ORDER BY id) FROM orders");
    assert.equal(analytics.stdout.trim(), "바뀜,주문 2 😀,주문 3 over the link", analytics.stderr);
    // Its own grants are SELECT alone (read_only refuses every write on the replica anyway).
    const grants = fromPrimaryServer(READONLY_USER, metabasePassword, "SHOW GRANTS");
    assert.deepEqual(grants.stdout.trim().split("\n").map((g) => g.replace(/ IDENTIFIED BY PASSWORD '[^']+'/, "")), [`GRANT USAGE ON *.* TO \`${READONLY_USER}\`@\`%\``, `GRANT SELECT ON \`${DB}\`.* TO \`${READONLY_USER}\`@\`%\``], grants.stderr);
    // Nowhere but the link: the replica's server's own (underlay) address does not answer.
    const underlay = fromPrimaryServer(DB, APP_PASSWORD, "SELECT 1", UNDERLAY.replica);
    assert.notEqual(underlay.status, 0);
    assert.match(underlay.stderr, /Can't connect/);
  });

  it("the primary's server reads the replica's state over the link as the monitoring login (SLAVE MONITOR only, outside the replica's binary log): healthy, then a stopped SQL thread and the lag it leaves", async () => {
    const grants = replica.sql(`SHOW GRANTS FOR '${MONITOR_USER}'@'%'`).trim().split("\n").map((g) => g.replace(/ IDENTIFIED BY PASSWORD '[^']+'/, ""));
    assert.deepEqual(grants, [`GRANT SLAVE MONITOR ON *.* TO \`${MONITOR_USER}\`@\`%\``]);
    assert.equal(replica.sql("SELECT @@gtid_binlog_pos").trim(), primary.sql("SELECT @@gtid_binlog_pos").trim(), "the login went into the replica's binary log");
    const position = primary.sql("SELECT @@gtid_binlog_pos").trim();
    const healthy = await replicaStatus(side.primary.script, side.primary.env);
    assert.deepEqual([healthy.healthy, healthy.primaryPosition, healthy.replicaPosition, healthy.behind, healthy.lagSeconds], [true, position, position, 0, 0], JSON.stringify(healthy));
    // npm run status asks the stack's server's copy, the replica on another server as on the same one.
    const elsewhere = { maxLagSeconds: 30, readTimeoutSeconds: 30, server: { host: "replica.bbaegok.kr", ssh: { user: "deploy", port: 22, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIReplica" }, dataDir: "/srv/bbaegok" }, link: { type: "wireguard" as const, primaryAddress: LINK.primary, replicaAddress: LINK.replica, port: LINK.port } };
    const config = { ...loadStack("prod").config, database: { ...replicatedDatabase("mariadb", 30), replicas: [elsewhere] } };
    const asked: string[] = [];
    const server = { health: async () => "healthy" as const, servedBy: async () => "blue" as const, readHistory: async () => [], replication: (path: string) => (asked.push(path), replicaStatus(side.primary.script, side.primary.env)) };
    const line = formatStatus(await gatherStatus("prod", config, undefined, server)).find((l) => l.startsWith("  replica "));
    assert.deepEqual(asked, ["/srv/bbaegok/prod/replica/replica.sh"]);
    assert.equal(line, `  replica  bbaegok-prod-db-replica  healthy, 0 s behind (0 transactions), primary at ${position}, replica at ${position}`);
    // The primary's copy reaches the replica by the link only: its docker exec stand-in knows the primary's container alone.
    assert.equal(replica.sql(`SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '${MONITOR_USER}'`).trim(), "0", "the monitoring connection was left open");
    replica.sql("STOP SLAVE SQL_THREAD");
    try {
      primary.sql("INSERT INTO orders (memo) VALUES ('주문 4 while the replica does not apply')", DB);
      const stopped = await replicaStatus(side.primary.script, side.primary.env);
      assert.equal(stopped.healthy, false);
      assert.match(stopped.reason ?? "", /the replica's SQL thread is stopped/);
      assert.equal(stopped.behind, 1);
      assert.notEqual(stopped.primaryPosition, stopped.replicaPosition);
    } finally {
      replica.sql("START SLAVE SQL_THREAD");
    }
    await waitFor("the replica to catch up again", async () => (await replicaStatus(side.primary.script, side.primary.env)).behind === 0, 30_000, 300);
  });

  it("with a client that warns on stderr over TCP as MariaDB 11.4+'s does (password from MYSQL_PWD), each server's status still reads the positions: the warning is logged, never taken for a value", async () => {
    // Production runs mariadb:11.4.12, whose client prints this warning when it
    // connects over TCP with the password in MYSQL_PWD, as the link's logins
    // do (its sslopt-vars.h); Debian's 10.11 here does not. A wrapper that
    // says the 11.4 client's words on stderr, then runs the real client,
    // stands in for that one behaviour.
    const warning = "WARNING: option --ssl-verify-server-cert is disabled, because of an insecure passwordless login.";
    const bin = join(dir.path, "client-11.4");
    mkdirSync(bin);
    writeFileSync(join(bin, "mariadb"), `#!/bin/bash\nfor a in "$@"; do [[ $a == -h ]] && [[ -n \${MYSQL_PWD:-} ]] && { echo '${warning}' >&2; break; }; done\nexec ${requireCommand("mariadb", "mariadb-client")} "$@"\n`, { mode: 0o755 });
    const path = `${bin}:${process.env.PATH}`;
    const position = primary.sql("SELECT @@gtid_binlog_pos").trim();
    for (const s of ["primary", "replica"] as const) {
      const container: ContainerEnvs = s === "primary" ? { [PRIMARY_CONTAINER]: { MYSQL_UNIX_PORT: primary.socket, PATH: path } } : { [REPLICA_CONTAINER]: { MYSQL_UNIX_PORT: replica.socket, PATH: path } };
      const hookDir = join(bin, s);
      mkdirSync(hookDir);
      const env = { ...side[s].env, REPLICA_DB_EXEC: writeReplicaExecHook(hookDir, container, { [PRIMARY_CONTAINER]: link.ns.primary, [REPLICA_CONTAINER]: link.ns.replica }) };
      const run = await runReplica(side[s].script, env, "status");
      assert.equal(run.status, 0, run.stderr);
      assert.ok(run.stderr.includes(warning), `the ${s}'s copy did not go through the warning client over the link: ${run.stderr}`);
      const state = JSON.parse(run.stdout) as { healthy: boolean; primaryPosition: string; replicaPosition: string; behind: number; reason?: string };
      assert.deepEqual([state.healthy, state.primaryPosition, state.replicaPosition, state.behind], [true, position, position, 0], `${s}: ${run.stdout}`);
    }
  });

  it("the primary's server's backup checks the replica over the link and dumps it there as the backup login (read grants only, on the replica alone): healthy, then a stopped SQL thread fails the run, pings the failure URL and dumps the primary", async () => {
    const own = side.primary.dir;
    writeFileSync(join(own, "ping-url"), `${ping.url}\n`, { mode: 0o600 });
    // The replica's copy made the backup login on the replica, outside its binary log: the primary has no such login.
    const grants = replica.sql(`SHOW GRANTS FOR '${BACKUP_USER}'@'%'`).trim().split("\n").map((g) => g.replace(/ IDENTIFIED BY PASSWORD '[^']+'/, ""));
    assert.deepEqual(grants, [`GRANT USAGE ON *.* TO \`${BACKUP_USER}\`@\`%\``, `GRANT SELECT, SHOW VIEW, EVENT, TRIGGER ON \`${DB}\`.* TO \`${BACKUP_USER}\`@\`%\``, `GRANT SELECT ON \`mysql\`.\`proc\` TO \`${BACKUP_USER}\`@\`%\``]);
    assert.equal(primary.sql(`SELECT COUNT(*) FROM mysql.user WHERE user = '${BACKUP_USER}'`).trim(), "0");
    const backup = renderReplicatedBackupScript(own, "mariadb", 30, { elsewhere: true, replicaPort: replica.port });
    const env = { ...replicatedBackupEnv(own, side.primary.env, side.primary.script, s3), BACKUP_SECRETS_DIR: own };
    const position = primary.sql("SELECT @@gtid_binlog_pos").trim();
    // A row on the replica alone (its administrator, outside the binary log): the dump has it only if it read the replica.
    replica.sql("SET SESSION sql_log_bin = 0; INSERT INTO orders (id, memo) VALUES (1000, 'on the replica only')", DB);
    let healthy: Awaited<ReturnType<typeof runScript>>;
    try {
      healthy = await runScript(backup.script, env);
    } finally {
      replica.sql("SET SESSION sql_log_bin = 0; DELETE FROM orders WHERE id = 1000", DB);
    }
    assert.equal(healthy.status, 0, healthy.stderr);
    assert.match(healthy.stderr, /backup of prod\/bbaegok \(mariadb in container bbaegok-prod-db, over the link from its replica at 10\.99\.0\.2:\d+\) done/);
    let manifest = newestManifest(s3, backup.bucket, DB);
    assert.equal(manifest.source, "replica");
    assert.deepEqual(manifest.replication, {
      why: `the replica bbaegok-prod-db-replica on another server is healthy and 0 s behind (bound 30 s); dumped over the link at ${LINK.replica}:${replica.port}`,
      positionType: "gtid",
      position,
      primaryPosition: position,
      lagSeconds: 0,
    });
    const rows = Number(primary.sql("SELECT COUNT(*) FROM orders", DB).trim());
    assert.equal(manifest.tables.find((t) => t.name === "orders")?.rows, rows + 1);
    const dump = spawnSync("zstd", ["-dc"], { input: s3.get(backup.bucket, manifest.key), maxBuffer: 64 << 20 });
    assert.equal(dump.status, 0, String(dump.stderr));
    const sql = dump.stdout.toString("utf8");
    assert.ok(sql.includes("'on the replica only'"), "the dump does not have the replica's own row");
    // The trigger and the routine came through the backup login's grants.
    assert.match(sql, /TRIGGER `?orders_length`?/);
    assert.match(sql, /PROCEDURE `?order_count`?/);
    assert.deepEqual(ping.hits, ["/ping/test-check"]);

    replica.sql("STOP SLAVE SQL_THREAD");
    try {
      primary.sql("INSERT INTO orders (memo) VALUES ('주문 5 not applied')", DB);
      ping.hits.length = 0;
      const broken = await runScript(backup.script, env);
      assert.equal(broken.status, 1, broken.stderr);
      assert.match(broken.stderr, /replication of prod\/bbaegok is broken or lagging: the replica bbaegok-prod-db-replica is not usable: the replica's SQL thread is stopped; backing up from the primary bbaegok-prod-db instead/);
      assert.deepEqual(ping.hits, ["/ping/test-check/fail"]);
      manifest = newestManifest(s3, backup.bucket, DB);
      assert.equal(manifest.source, "primary");
      assert.equal(manifest.tables.find((t) => t.name === "orders")?.rows, Number(primary.sql("SELECT COUNT(*) FROM orders", DB).trim()));
    } finally {
      replica.sql("START SLAVE SQL_THREAD");
    }
  });

  it("a second setup on each server leaves the replica replicating", async () => {
    for (const s of ["primary", "replica"] as const) {
      const again = await runReplica(side[s].script, side[s].env, "setup");
      assert.equal(again.status, 0, again.stderr);
      assert.doesNotMatch(again.stderr, /seeding/);
    }
    primary.sql("INSERT INTO orders (memo) VALUES ('주문 4')", DB);
    const position = primary.sql("SELECT @@gtid_binlog_pos").trim();
    await waitFor("the replica to apply the write", () => replica.sql("SELECT @@gtid_slave_pos").trim() === position, 30_000, 200);
  });

  /** The replica's logins on the primary, and the binlog dump threads it serves them. */
  const replicationOnPrimary = () => ({
    logins: primary.sql("SELECT COALESCE(GROUP_CONCAT(user ORDER BY user), '-') FROM mysql.user WHERE user IN ('replicator', 'replica_seed')").trim(),
    dumps: Number(primary.sql("SELECT COUNT(*) FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'").trim()),
  });

  it("retire on the primary's server while the replica still replicates and answers over the link: everything kept, said so", async () => {
    const run = await runReplica(side.primary.script, { ...side.primary.env, RETIRE_WAIT_SECONDS: "2" }, "retire");
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /a replica still replicates from bbaegok-prod-db after 2 s: its slot and logins are kept/);
    assert.deepEqual(replicationOnPrimary(), { logins: "replica_seed,replicator", dumps: 1 });
  });

  it("its server gone (unplugged from the link's underlay): the primary keeps the dead binlog dump thread; retire ends it once the replica does not answer, and drops the logins", async () => {
    const down = spawnSync("ip", link.inNs("replica", "ip", "link", "set", `bbv${tag}r`, "down"), { encoding: "utf8" });
    assert.equal(down.status, 0, down.stderr);
    // A write the dead peer never acknowledges: the thread stays (TCP retries for minutes).
    const rows = Number(primary.sql("SELECT COUNT(*) FROM orders", DB).trim());
    primary.sql("INSERT INTO orders (memo) VALUES ('주문 5')", DB);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.equal(replicationOnPrimary().dumps, 1, "the primary noticed the dead peer by itself");
    const run = await runReplica(side.primary.script, { ...side.primary.env, RETIRE_WAIT_SECONDS: "2" }, "retire");
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, new RegExp(`does not answer at ${LINK.replica.replace(/\./g, "\\.")}:${replica.port}: the replication connection still open on bbaegok-prod-db is a dead one \\(its server gone\\); it is ended`));
    assert.match(run.stderr, /the replica's slot and logins are dropped on bbaegok-prod-db/);
    await waitFor("the dead binlog dump thread to end", () => replicationOnPrimary().dumps === 0, 15_000, 200);
    assert.deepEqual(replicationOnPrimary(), { logins: "-", dumps: 0 });
    assert.equal(Number(primary.sql("SELECT COUNT(*) FROM orders", DB).trim()), rows + 1, "the primary's data changed");
  });
});
