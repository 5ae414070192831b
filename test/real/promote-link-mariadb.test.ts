// Promoting a MariaDB replica on another server, for real: the two servers of
// test/real/replica-link-mariadb.test.ts (network namespaces joined by the
// rendered WireGuard link, a Debian MariaDB in each), each with its own copy
// of the rendered replica.sh. The primary's copy fences the primary and
// prints its position; the replica's copy, given that position, waits until
// the replica has applied it, then stops replicating and takes writes. Each
// copy's stand-in for `docker exec` knows its own server's container alone.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { PromotedState } from "../../infra/replica/render.js";
import { LINK } from "../support/link-harness.js";
import { linkedMariaDb, type LinkedMariaDb } from "../support/link-mariadb.js";
import { runScript } from "../support/backup-harness.js";
import type { MariaDb } from "../support/mariadb.js";
import { generatedPassword, renderReplicaScript, replicaStatus, runReplica } from "../support/replica-harness.js";
import { requireCommand, tempDir } from "../support/system.js";

const DB = "bbaegok";
const APP_PASSWORD = generatedPassword();
const tag = String(process.pid % 100000);

describe("promoting a MariaDB replica on another server: fenced on the primary's server, taken over on the replica's at the fence's position (network namespaces)", () => {
  const dir = tempDir("promote-link-mariadb");
  let servers: LinkedMariaDb;
  let primary: MariaDb;
  let replica: MariaDb;
  let side: LinkedMariaDb["side"];
  /** The primary's server's copy as rendered once the stack file says database.primary: replica. */
  let promotedOnPrimary: string;
  let fencedAt = "";

  /** The app on the primary's server, as its slots reach a database: the original at the primary's link address, the promoted replica at the replica's. */
  const app = (at: "primary" | "replica", statements: string) =>
    spawnSync("ip", servers.link.inNs("primary", requireCommand("mariadb", "mariadb-client"), "--no-defaults", "--default-character-set=utf8mb4", "--connect-timeout=3", `-h${LINK[at]}`, `-P${servers[at].port}`, `-u${DB}`, "--batch", "--skip-column-names", DB), {
      input: statements,
      encoding: "utf8",
      env: { ...process.env, MYSQL_PWD: APP_PASSWORD },
    });
  const memos = (db: MariaDb) => db.sql("SELECT GROUP_CONCAT(memo ORDER BY id) FROM orders", DB).trim();

  before(async () => {
    servers = await linkedMariaDb(dir.path, tag, DB, APP_PASSWORD);
    ({ primary, replica, side } = servers);
    for (const s of ["primary", "replica"] as const) side[s].env.REPLICA_PROMOTE_WAIT_SECONDS = "60";
    primary.sql("CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, memo VARCHAR(100) NOT NULL) ENGINE=InnoDB; INSERT INTO orders (memo) VALUES ('주문 1');", DB);
    const promotedDir = join(side.primary.dir, "promoted");
    mkdirSync(promotedDir);
    promotedOnPrimary = renderReplicaScript(promotedDir, { ...servers.spec, database: { ...servers.spec.database, primary: "replica" }, thisServer: "primary" });
    for (const [s, command] of [["primary", "setup"], ["replica", "setup"], ["replica", "wait"]] as const) {
      const run = await runReplica(side[s].script, side[s].env, command);
      assert.equal(run.status, 0, `${s} ${command}: ${run.stderr}`);
    }
  });
  after(async () => {
    await servers?.stop();
    dir.remove();
  });

  it("the primary's copy fences the primary (the app's writes refused) and prints its GTID position: everything it committed", async () => {
    // The replica stops applying; the primary takes one more write: the replica is now behind the fence's position.
    replica.sql("STOP SLAVE SQL_THREAD");
    const before = app("primary", "INSERT INTO orders (memo) VALUES ('주문 2 before the fence')");
    assert.equal(before.status, 0, before.stderr);
    const fence = await runReplica(side.primary.script, side.primary.env, "promote");
    assert.equal(fence.status, 0, fence.stderr);
    assert.match(fence.stderr, /bbaegok-prod-db fenced: it refuses the app's writes from now on/);
    fencedAt = fence.stdout.trim();
    assert.equal(fencedAt, primary.sql("SELECT @@gtid_binlog_pos").trim());
    assert.match(fencedAt, /^0-1-\d+$/);
    const refused = app("primary", "INSERT INTO orders (memo) VALUES ('after the fence')");
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /--read-only/);
    assert.notEqual(replica.sql("SELECT @@gtid_slave_pos").trim(), fencedAt, "the replica applied the last write already: nothing left to wait for");
  });

  it("the replica's copy, given that position, waits until the replica applied it, then stops replicating and takes writes: the app writes there over the link", async () => {
    // The replica resumes applying two seconds into the wait: promoted at once, it would have stopped without the last write.
    const resume = setTimeout(() => replica.sql("START SLAVE SQL_THREAD"), 2000);
    let take: Awaited<ReturnType<typeof runScript>>;
    try {
      take = await runScript(side.replica.script, side.replica.env, ["promote", fencedAt]);
    } finally {
      clearTimeout(resume);
    }
    assert.equal(take.status, 0, take.stderr);
    assert.doesNotMatch(take.stderr, /has not applied/);
    assert.match(take.stderr, new RegExp(`promoting bbaegok-prod-db-replica at ${fencedAt} \\(the primary's position: ${fencedAt}\\)`));
    assert.match(take.stderr, /bbaegok-prod-db-replica promoted: it takes writes now/);
    assert.equal(memos(replica), "주문 1,주문 2 before the fence");
    assert.equal(replica.sql("SHOW SLAVE STATUS").trim(), "", "the replica still has its replication configured");
    assert.equal(replica.sql("SELECT @@read_only").trim(), "0");
    const write = app("replica", "INSERT INTO orders (memo) VALUES ('주문 3 on the promoted replica'); SELECT COUNT(*) FROM orders;");
    assert.equal(write.status, 0, write.stderr);
    assert.equal(write.stdout.trim(), "3");
    assert.equal(memos(primary), "주문 1,주문 2 before the fence", "the write reached the fenced original");
  });

  it("the primary's server's status, rendered promoted, reads the promoted replica over the link (its monitoring login): takes writes, the original fenced; an original writable again is unhealthy", async () => {
    const state = await replicaStatus<PromotedState>(promotedOnPrimary, side.primary.env);
    assert.deepEqual(state, { promoted: true, healthy: true, writable: true, originalAnswers: true, originalWritable: false, originalFollows: false });
    primary.sql("SET GLOBAL read_only = OFF");
    try {
      const again = await replicaStatus<PromotedState>(promotedOnPrimary, side.primary.env);
      assert.equal(again.healthy, false);
      assert.match(again.reason ?? "", /the original bbaegok-prod-db takes writes again \(started by hand\?\): stop it/);
    } finally {
      primary.sql("SET GLOBAL read_only = ON");
    }
  });

  it("promote again on each server changes nothing; a position that is not one is refused before any SQL", async () => {
    const position = replica.sql("SELECT @@gtid_binlog_pos").trim();
    const fence = await runReplica(side.primary.script, side.primary.env, "promote");
    assert.equal(fence.status, 0, fence.stderr);
    assert.equal(fence.stdout.trim(), fencedAt);
    const take = await runScript(side.replica.script, side.replica.env, ["promote", fencedAt]);
    assert.equal(take.status, 0, take.stderr);
    assert.doesNotMatch(take.stderr, /promoting/);
    assert.match(take.stderr, /bbaegok-prod-db-replica is the primary: it takes writes/);
    assert.equal(replica.sql("SELECT @@gtid_binlog_pos").trim(), position);
    const bad = await runScript(side.replica.script, side.replica.env, ["promote", "0-1-1'; DROP DATABASE bbaegok; --"]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /expected the primary's position as its fence printed it/);
    const extra = await runScript(side.primary.script, side.primary.env, ["promote", fencedAt]);
    assert.equal(extra.status, 2);
    assert.match(extra.stderr, /promote takes no position on the primary's server/);
    assert.equal(memos(replica), "주문 1,주문 2 before the fence,주문 3 on the promoted replica");
  });

  it("the primary down: its container stopped, its copy cannot fence it, says so and prints no position (the replica's is then promoted with what it has)", async () => {
    await primary.crash();
    const fence = await runReplica(side.primary.script, side.primary.env, "promote");
    assert.equal(fence.status, 0, fence.stderr);
    assert.equal(fence.stdout, "");
    assert.match(fence.stderr, /bbaegok-prod-db cannot be fenced \(.+\) and its container does not run; bbaegok-prod-db-replica is promoted with what it has/);
  });
});
