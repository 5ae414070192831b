// Promoting a PostgreSQL standby on another server, for real: the two servers
// of test/real/replica-link.test.ts (network namespaces joined by the rendered
// WireGuard link, a PostgreSQL in each: test/support/link-postgres.ts, the
// standby seeded and streaming by the rendered entrypoint over the link), each
// with its own copy of the rendered replica.sh. The primary's copy fences the
// primary (default_transaction_read_only by ALTER SYSTEM) and prints its WAL
// position; the replica's copy, given that position, waits until the standby
// has replayed up to it, then promotes it. Each copy's stand-in for `docker
// exec` knows its own server's container alone, and runs in its namespace.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BACKUP_PASSWORD_FILE, type PromotedState } from "../../infra/replica/render.js";
import { runScript } from "../support/backup-harness.js";
import { LINK, linkedServers, type LinkedServers, type Side } from "../support/link-harness.js";
import { linkedPostgres, type LinkedPostgres, type NsProcess } from "../support/link-postgres.js";
import {
  PRIMARY_CONTAINER,
  REPLICA_CONTAINER,
  generatedPassword,
  renderReplicaScript,
  replicaEnv,
  replicaStatus,
  replicatedDatabase,
  runReplica,
  writePostgresReplicationSecrets,
} from "../support/replica-harness.js";
import { freePort, requireCommand, tempDir, waitFor } from "../support/system.js";

const DB = "bbaegok";
const APP_PASSWORD = generatedPassword();
const tag = String(process.pid % 100000);
const SIDES = ["primary", "replica"] as const;

/** A WAL position (X/Y, as PostgreSQL prints it) as a number, to compare two. */
function lsn(text: string): bigint {
  const m = /^([0-9A-F]+)\/([0-9A-F]+)$/.exec(text);
  assert.ok(m, `not a WAL position: ${JSON.stringify(text)}`);
  return (BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`);
}

describe("promoting a PostgreSQL standby on another server: fenced on the primary's server, promoted on the replica's at the fence's WAL position (network namespaces)", () => {
  const dir = tempDir("promote-link-postgres");
  const psql = requireCommand("psql", "postgresql-client");
  let link: LinkedServers;
  let pg: LinkedPostgres;
  let pgPort: number;
  let primaryServer: NsProcess;
  const primarySocket = join(dir.path, "primary-run");
  const replicaSocket = join(dir.path, "replica-run");
  const primaryData = join(dir.path, "primary-data");
  /** Each server's copy of replica.sh and its environment. */
  const side = {} as Record<Side, { script: string; env: Record<string, string> }>;
  /** The primary's server's copy as rendered once the stack file says database.primary: replica. */
  let promotedOnPrimary: string;
  let fencedAt = "";
  const must = (socket: string, statements: string, database = DB) => pg.must(socket, statements, database);
  const memos = (socket: string) => must(socket, "SELECT string_agg(memo, ',' ORDER BY id) FROM orders");

  /** The app on the primary's server, as its slots reach a database: the original at the primary's link address, the promoted standby at the replica's. */
  const app = (at: Side, statements: string) =>
    spawnSync("ip", link.inNs("primary", psql, "-h", LINK[at], "-p", String(pgPort), "-U", DB, "-d", DB, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t"), {
      input: statements,
      encoding: "utf8",
      env: { ...process.env, PGPASSWORD: APP_PASSWORD, PGCONNECT_TIMEOUT: "3" },
    });

  before(async () => {
    link = linkedServers(dir.path, tag);
    for (const s of SIDES) {
      const up = link.up(s);
      assert.equal(up.status, 0, up.stderr);
    }
    pgPort = await freePort();
    pg = linkedPostgres(link, dir.path, pgPort);
    primaryServer = await pg.startPrimary({ data: primaryData, socket: primarySocket });
    must(primarySocket, `CREATE DATABASE ${DB}`, "postgres");
    // The app's login, which writes on the primary (and on the standby once promoted).
    must(
      primarySocket,
      `CREATE TABLE orders (id serial PRIMARY KEY, memo text NOT NULL); INSERT INTO orders (memo) VALUES ('주문 1');
CREATE ROLE ${DB} LOGIN PASSWORD '${APP_PASSWORD}'; GRANT SELECT, INSERT ON orders TO ${DB}; GRANT USAGE ON SEQUENCE orders_id_seq TO ${DB};`,
    );

    // Each server's password files, as its containers see them: the replica's the replication password and
    // libpq's file with it (its entrypoint's); the primary's the same password and the backup role's.
    const own = { primary: join(dir.path, "primary-server"), replica: join(dir.path, "replica-server") };
    for (const s of SIDES) mkdirSync(own[s], { mode: 0o700 });
    writePostgresReplicationSecrets(own.replica);
    writeFileSync(join(own.primary, "replication_password"), readFileSync(join(own.replica, "replication_password")), { mode: 0o400 });
    writeFileSync(join(own.primary, BACKUP_PASSWORD_FILE), `${generatedPassword()}\n`, { mode: 0o400 });
    const spec = { database: replicatedDatabase("postgres", 30), replica: { maxLagSeconds: 30 }, primaryHost: LINK.primary, primaryPort: pgPort, replicaHost: LINK.replica };
    const containers = {
      primary: { [PRIMARY_CONTAINER]: { PGHOST: primarySocket, PGPORT: String(pgPort), PGDATA: primaryData } },
      replica: { [REPLICA_CONTAINER]: { PGHOST: replicaSocket, PGPORT: String(pgPort) } },
    };
    const netns = { [PRIMARY_CONTAINER]: link.ns.primary, [REPLICA_CONTAINER]: link.ns.replica };
    for (const s of SIDES) {
      side[s] = { script: renderReplicaScript(own[s], { ...spec, thisServer: s }), env: { ...replicaEnv(own[s], containers[s], netns), REPLICA_PROMOTE_WAIT_SECONDS: "60" } };
    }
    const promotedDir = join(own.primary, "promoted");
    mkdirSync(promotedDir);
    promotedOnPrimary = renderReplicaScript(promotedDir, { ...spec, database: { ...spec.database, primary: "replica" }, thisServer: "primary" });

    // The primary's side, by its server's copy: the replication role, the slot, the pg_hba line, the backup role.
    const setup = await runReplica(side.primary.script, side.primary.env, "setup");
    assert.equal(setup.status, 0, setup.stderr);
    // The replica's side: its container's entrypoint seeds the standby over the link, which then streams.
    await pg.startStandby({ dir: dir.path, data: join(dir.path, "replica-data"), socket: replicaSocket, secretsDir: own.replica });
    const wait = await runReplica(side.primary.script, side.primary.env, "wait");
    assert.equal(wait.status, 0, wait.stderr);
  });

  after(async () => {
    await pg?.stop();
    link?.remove();
    dir.remove();
  });

  it("the primary's copy fences the primary (the app's writes refused) and prints its WAL position: everything it committed", async () => {
    // The replica's server is cut off under the link (its cable out); the primary takes one more write, which the
    // standby has not received: it is behind the fence's position. PostgreSQL promotes a standby with the WAL it has
    // received, so only a write it has not received shows whether the replica's half waits for the position.
    link.plug("replica", false);
    const write = app("primary", "INSERT INTO orders (memo) VALUES ('주문 2 before the fence')");
    assert.equal(write.status, 0, write.stderr);
    const afterRow = must(primarySocket, "SELECT pg_current_wal_lsn()", "postgres");
    assert.equal(memos(replicaSocket), "주문 1", "the standby has the write: nothing left to wait for");

    // A transaction of the app begun before the fence and still open: it has written a row, not committed it.
    const inFlight = spawn("ip", link.inNs("primary", psql, "-h", LINK.primary, "-p", String(pgPort), "-U", DB, "-d", DB, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t"), {
      env: { ...process.env, PGPASSWORD: APP_PASSWORD },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let inFlightOut = "";
    inFlight.stdout.on("data", (d: Buffer) => (inFlightOut += d.toString()));
    inFlight.stderr.on("data", (d: Buffer) => (inFlightOut += d.toString()));
    const inFlightExit = new Promise<number | null>((resolve) => inFlight.once("exit", resolve));
    inFlight.stdin.write("BEGIN;\nINSERT INTO orders (memo) VALUES ('in flight at the fence');\n\\echo written\n");
    await waitFor("the open transaction's write", () => inFlightOut.includes("written"), 10_000, 100);

    const fence = await runScript(side.primary.script, { ...side.primary.env, REPLICA_FENCE_DRAIN_SECONDS: "2" }, ["promote"]);
    assert.equal(fence.status, 0, fence.stderr);
    assert.match(fence.stderr, /bbaegok-prod-db fenced: it refuses the app's writes from now on/);
    // Begun before the fence, it could still commit after the position is read: ended instead, its client told so.
    assert.match(fence.stderr, /1 transaction\(s\) begun on bbaegok-prod-db before its fence still open after 2 s: ended, rolled back/);
    inFlight.stdin.end("COMMIT;\n");
    assert.notEqual(await inFlightExit, 0, inFlightOut);
    assert.match(inFlightOut, /terminating connection due to administrator command|server closed the connection unexpectedly/);
    fencedAt = fence.stdout.trim();
    const now = must(primarySocket, "SELECT pg_current_wal_lsn()", "postgres");
    // The primary's position once fenced: past the write; nothing but the server's own records (a running-transactions snapshot) after it.
    assert.ok(lsn(afterRow) <= lsn(fencedAt) && lsn(fencedAt) <= lsn(now), `fenced at ${fencedAt}: not between the write's ${afterRow} and now's ${now}`);
    const refused = app("primary", "INSERT INTO orders (memo) VALUES ('after the fence')");
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /cannot execute INSERT in a read-only transaction/);
    const received = must(replicaSocket, "SELECT COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())", "postgres");
    assert.ok(lsn(received) < lsn(afterRow), `the standby received the write (up to ${received}) with its server cut off`);
  });

  it("the replica's copy, given that position, waits until the standby replayed it, then promotes it: the app writes there over the link", async () => {
    // The replica's server is plugged back two seconds into the wait: promoted at once, the standby would have been
    // promoted without the last write (and short of the fence's position).
    const plugBack = setTimeout(() => link.plug("replica", true), 2000);
    let take: Awaited<ReturnType<typeof runScript>>;
    try {
      take = await runScript(side.replica.script, side.replica.env, ["promote", fencedAt]);
    } finally {
      clearTimeout(plugBack);
      link.plug("replica", true);
    }
    assert.equal(take.status, 0, take.stderr);
    assert.doesNotMatch(take.stderr, /has not applied/);
    assert.equal(memos(replicaSocket), "주문 1,주문 2 before the fence", "promoted without the write before the fence");
    const promoting = new RegExp(`promoting bbaegok-prod-db-replica at ([0-9A-F]+/[0-9A-F]+) \\(the primary's position: ${fencedAt}\\)`).exec(take.stderr);
    assert.ok(promoting, take.stderr);
    assert.ok(lsn(promoting[1]!) >= lsn(fencedAt), `promoted at ${promoting[1]}, short of the fence's ${fencedAt}`);
    assert.match(take.stderr, /bbaegok-prod-db-replica promoted: it takes writes now/);
    assert.equal(must(replicaSocket, "SELECT pg_is_in_recovery()", "postgres"), "f");
    const write = app("replica", "INSERT INTO orders (memo) VALUES ('주문 3 on the promoted standby'); SELECT count(*) FROM orders;");
    assert.equal(write.status, 0, write.stderr);
    assert.equal(write.stdout.trim(), "3");
    assert.equal(memos(primarySocket), "주문 1,주문 2 before the fence", "the write reached the fenced original");
  });

  it("the primary's server's status, rendered promoted, reads the promoted standby over the link (the backup's role): takes writes, the original fenced; an original writable again is unhealthy", async () => {
    const state = await replicaStatus<PromotedState>(promotedOnPrimary, side.primary.env);
    assert.deepEqual(state, { promoted: true, healthy: true, writable: true, originalAnswers: true, originalWritable: false, originalFollows: false });
    const readOnly = (value: "on" | "off") => {
      must(primarySocket, `ALTER SYSTEM SET default_transaction_read_only = ${value}; SELECT pg_reload_conf();`, "postgres");
      return waitFor(`the original's default_transaction_read_only ${value}`, () => pg.sql(primarySocket, "SHOW default_transaction_read_only", "postgres").stdout.trim() === value, 10_000, 100);
    };
    await readOnly("off");
    try {
      const again = await replicaStatus<PromotedState>(promotedOnPrimary, side.primary.env);
      assert.equal(again.healthy, false, JSON.stringify(again));
      assert.equal(again.originalWritable, true);
      assert.match(again.reason ?? "", /the original bbaegok-prod-db takes writes again \(started by hand\?\): stop it/);
    } finally {
      await readOnly("on");
    }
  });

  it("promote again on each server changes nothing; a position that is not one is refused before any SQL, and so is one given to the primary's copy", async () => {
    const fence = await runReplica(side.primary.script, side.primary.env, "promote");
    assert.equal(fence.status, 0, fence.stderr);
    assert.ok(lsn(fence.stdout.trim()) >= lsn(fencedAt), `fenced again at ${fence.stdout.trim()}, before ${fencedAt}`);
    const refused = app("primary", "INSERT INTO orders (memo) VALUES ('after the fence')");
    assert.match(refused.stderr, /cannot execute INSERT in a read-only transaction/);
    const take = await runScript(side.replica.script, side.replica.env, ["promote", fencedAt]);
    assert.equal(take.status, 0, take.stderr);
    assert.doesNotMatch(take.stderr, /promoting/);
    assert.match(take.stderr, /bbaegok-prod-db-replica is the primary: it takes writes/);
    assert.equal(must(replicaSocket, "SELECT pg_is_in_recovery()", "postgres"), "f");
    const bad = await runScript(side.replica.script, side.replica.env, ["promote", "0/1'; DROP TABLE orders; --"]);
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /expected the primary's position as its fence printed it/);
    const extra = await runScript(side.primary.script, side.primary.env, ["promote", fencedAt]);
    assert.equal(extra.status, 2, extra.stderr);
    assert.match(extra.stderr, /promote takes no position on the primary's server/);
    assert.equal(memos(replicaSocket), "주문 1,주문 2 before the fence,주문 3 on the promoted standby");
    assert.equal(memos(primarySocket), "주문 1,주문 2 before the fence");
  });

  it("the primary down: its container stopped, its copy cannot fence it, says so and prints no position (the standby is then promoted with what it has)", async () => {
    // A fast shutdown of the primary's server (its process group: the postmaster and its children).
    spawnSync("kill", ["-INT", "--", `-${primaryServer.child.pid}`]);
    await primaryServer.exited;
    const fence = await runReplica(side.primary.script, side.primary.env, "promote");
    assert.equal(fence.status, 0, fence.stderr);
    assert.equal(fence.stdout, "");
    assert.match(fence.stderr, /bbaegok-prod-db cannot be fenced \(.+\) and its container does not run; bbaegok-prod-db-replica is promoted with what it has/);
  });
});
