// The failback's server side against a real MariaDB GTID pair: after
// `replica.sh promote`, the rendered failback.sh (the replica's script with
// the roles swapped) seeds the original again as a replica of the promoted
// one (`follow`), then makes it the primary again (`return`), and the
// replica's own script seeds the promoted one again as its replica
// (`reseed`). The only stand-in is `docker exec` (test/support/replica-harness.ts).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { failbackScript, type ReplicationState } from "../../infra/replica/render.js";
import type { MariaDb } from "../support/mariadb.js";
import { PRIMARY_CONTAINER, REPLICA_CONTAINER, generatedPassword, replicaStatus, replicatedDatabase, runReplica, startReplicatedMariaDb } from "../support/replica-harness.js";
import { tempDir, waitFor } from "../support/system.js";

const DB = "bbaegok";
const APP_PASSWORD = generatedPassword();

describe("npm run failback's server side (a real MariaDB pair, promoted)", () => {
  let original: MariaDb;
  let promoted: MariaDb;
  let script: string;
  let failback: string;
  let env: Record<string, string>;
  const dir = tempDir("failback-mariadb");
  const dumps = join(dir.path, "failback");
  const memos = (db: MariaDb) => db.sql("SELECT GROUP_CONCAT(memo ORDER BY id SEPARATOR '|') FROM orders", DB).trim();
  const appWrite = (db: MariaDb, memo: string) => db.sqlAs(DB, APP_PASSWORD, `INSERT INTO orders (memo) VALUES ('${memo}')`, DB);
  const readOnly = (db: MariaDb) => db.sql("SELECT @@read_only").trim();

  before(async () => {
    let primary: MariaDb;
    ({ primary, replica: promoted, script, env } = await startReplicatedMariaDb(dir.path, {
      database: DB,
      appPassword: APP_PASSWORD,
      memoryMb: 1024,
      schema: "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, memo VARCHAR(100) NOT NULL); INSERT INTO orders (memo) VALUES ('주문 1');",
    }));
    original = primary;
    const promote = await runReplica(script, env, "promote");
    assert.equal(promote.status, 0, promote.stderr);
    assert.equal(appWrite(promoted, "승격 후").status, 0);
    // What a promotion without a fence leaves on the original alone: a write the replica never got.
    original.sql("SET SESSION sql_log_bin = 0; INSERT INTO orders (memo) VALUES ('원본에만');", DB);
    failback = join(dir.path, "failback.sh");
    writeFileSync(
      failback,
      failbackScript({
        stack: "prod",
        service: "bbaegok",
        database: { ...replicatedDatabase("mariadb", 30), primary: "replica" },
        replica: { maxLagSeconds: 30 },
        primaryContainer: PRIMARY_CONTAINER,
        replicaContainer: REPLICA_CONTAINER,
        slot: "replica_1",
        failbackDir: dumps,
        promotedHost: "127.0.0.1",
        promotedPort: promoted.port,
      }),
      { mode: 0o755 },
    );
  });
  after(async () => {
    await Promise.all([original?.stop(), promoted?.stop()]);
    dir.remove();
  });

  it("the replica's setup, as an up of a stack file edited back to database.primary: original would run it, refuses to seed the promoted one over its writes", async () => {
    const setup = await runReplica(script, env, "setup");
    assert.equal(setup.status, 1, setup.stderr);
    assert.match(setup.stderr, /bbaegok-prod-db-replica takes writes: promoted \(npm run promote\)\? Seeding it from bbaegok-prod-db would replace its data: refused/);
    assert.equal(memos(promoted), "주문 1|승격 후");
  });

  it("return before follow, and follow while the promoted one refuses writes, are refused and change nothing", async () => {
    const early = await runReplica(failback, env, "return");
    assert.equal(early.status, 1, early.stderr);
    assert.match(early.stderr, /bbaegok-prod-db does not follow bbaegok-prod-db-replica \(f\): run npm run failback again, which seeds it first; nothing was changed/);
    promoted.sql("SET GLOBAL read_only = ON");
    const refused = await runReplica(failback, env, "follow");
    promoted.sql("SET GLOBAL read_only = OFF");
    assert.equal(refused.status, 1, refused.stderr);
    assert.match(refused.stderr, /bbaegok-prod-db-replica, the promoted primary, does not take writes \(false\): bbaegok-prod-db is left as it is/);
    assert.equal(memos(original), "주문 1|원본에만");
    assert.equal(readOnly(promoted), "0");
    assert.equal(existsSync(dumps), false, "nothing was dumped");
  });

  it("follow whose dump of the original fails drops nothing: the original keeps its own data", async () => {
    const run = await runReplica(failback, { ...env, FAILBACK_DIR: "/dev/null/failback" }, "follow");
    assert.equal(run.status, 1, run.stderr);
    assert.equal(memos(original), "주문 1|원본에만");
    assert.equal(original.sql("SHOW SLAVE STATUS").trim(), "");
  });

  it("follow dumps the original's own data, seeds it from the promoted one and waits until it follows, caught up: read-only, the app may read", async () => {
    const run = await runReplica(failback, env, "follow");
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /bbaegok-prod-db follows bbaegok-prod-db-replica, caught up/);
    const dump = readdirSync(dumps).find((f) => f.endsWith(".sql.zst")) ?? assert.fail(`no dump in ${dumps}`);
    assert.match(dump, /^bbaegok-prod-db-\d{8}T\d{6}Z\.sql\.zst$/);
    assert.match(execFileSync("zstd", ["-dc", join(dumps, dump)], { encoding: "utf8" }), /원본에만/, "the original's own write is in its dump");
    assert.equal(memos(original), "주문 1|승격 후", "the original holds the promoted one's data, its own write gone");
    assert.equal(readOnly(original), "1");
    const replication = original.sql("SHOW SLAVE STATUS\\G");
    assert.match(replication, new RegExp(`^127\\.0\\.0\\.1\\nreplicator\\n${promoted.port}$`, "m"), "it replicates from the promoted one");
    assert.match(replication, /^Slave_Pos$/m, "by GTID (Using_Gtid)");
    const refused = appWrite(original, "원본에 쓰기");
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /--read-only/);
    assert.equal(original.sqlAs(DB, APP_PASSWORD, "SELECT count(*) FROM orders", DB).stdout.trim(), "2");
    const state = await replicaStatus<ReplicationState>(failback, env);
    assert.equal(state.healthy, true, JSON.stringify(state));
    assert.equal(state.replicaPosition, promoted.sql("SELECT @@gtid_binlog_pos").trim());
  });

  it("the promoted one's writes reach the original; follow run again only waits, and dumps nothing more", async () => {
    assert.equal(appWrite(promoted, "되돌리기 전").status, 0);
    await waitFor("the original to apply the write", () => memos(original).endsWith("되돌리기 전"), 30_000, 200);
    const again = await runReplica(failback, env, "follow");
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /bbaegok-prod-db already follows bbaegok-prod-db-replica: waiting until it is caught up/);
    assert.equal(readdirSync(dumps).filter((f) => f.endsWith(".sql.zst")).length, 1);
  });

  it("return fences the promoted one, the original applies up to its position and takes the app's writes; the promoted one's app login is locked", async () => {
    const run = await runReplica(failback, env, "return");
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /bbaegok-prod-db is the primary again; bbaegok-prod-db-replica is fenced/);
    assert.equal(original.sql("SHOW SLAVE STATUS").trim(), "");
    assert.equal(readOnly(original), "0");
    assert.equal(readOnly(promoted), "1");
    assert.equal(appWrite(original, "되돌린 후").status, 0);
    assert.equal(memos(original), "주문 1|승격 후|되돌리기 전|되돌린 후");
    assert.match(promoted.sqlAs(DB, APP_PASSWORD, "SELECT 1").stderr, /locked/);
    assert.equal(existsSync(join(dumps, "original-dumped")), false);
    // What a return that switched and then failed (its lock of the promoted one's login) leaves: the dump's marker,
    // which would make the follow of a later failback skip its dump. The return run again takes it away.
    writeFileSync(join(dumps, "original-dumped"), `${join(dumps, "an-earlier-failback.sql.zst")}\n`);
    const again = await runReplica(failback, env, "return");
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /already takes writes and bbaegok-prod-db-replica is fenced: returned before/);
    assert.equal(existsSync(join(dumps, "original-dumped")), false, "the marker of the dump outlived its failback");
  });

  it("replica.sh reseed then seeds the promoted one again from the original: it replicates the original's writes, read-only, and the app reads there again", async () => {
    const run = await runReplica(script, { ...env, REPLICA_RESEED_WAIT_SECONDS: "60" }, "reseed");
    assert.equal(run.status, 0, run.stderr);
    assert.equal(appWrite(original, "다시 복제").status, 0);
    const position = original.sql("SELECT @@gtid_binlog_pos").trim();
    await waitFor("the reseeded replica to apply the original's write", () => promoted.sql("SELECT @@gtid_slave_pos").trim() === position, 30_000, 200);
    assert.equal(memos(promoted), memos(original));
    assert.equal(readOnly(promoted), "1");
    assert.equal(promoted.sqlAs(DB, APP_PASSWORD, "SELECT count(*) FROM orders", DB).stdout.trim(), "5");
    const state = await replicaStatus<ReplicationState>(script, env);
    assert.equal(state.healthy, true, JSON.stringify(state));
    assert.deepEqual([state.primaryPosition, state.replicaPosition, state.behind], [position, position, 0]);
  });
});
