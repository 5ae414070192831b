// A PostgreSQL replica on another server, over the program's WireGuard link,
// for real: two network namespaces stand for the two servers (a veth pair is
// their network: test/support/link-harness.ts), each brought up by the rendered wg-quick file and up script
// (infra/link/render.ts; userspace wireguard-go when the kernel has no
// WireGuard, as here); the primary listens on its link address only, the
// replica is seeded and streams through the rendered entrypoint and flags
// (infra/replica/render.ts) from the primary's link address. The standby
// listens on its own link address (standing for its port published there):
// the app's and Metabase's logins read it from the primary's server.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { READONLY_USER, readOnlyUserSql } from "../../infra/metabase/render.js";
import { BACKUP_PASSWORD_FILE, BACKUP_USER } from "../../infra/replica/render.js";
import { runScript, startPingServer } from "../support/backup-harness.js";
import { startMoto } from "../support/moto.js";
import { linkedPostgres, type LinkedPostgres } from "../support/link-postgres.js";
import {
  PRIMARY_CONTAINER,
  REPLICA_CONTAINER,
  generatedPassword,
  newestManifest,
  renderReplicaScript,
  renderReplicatedBackupScript,
  replicaEnv,
  replicaStatus,
  replicatedBackupEnv,
  replicatedDatabase,
  runReplica,
  writePostgresReplicationSecrets,
} from "../support/replica-harness.js";
import { LINK, UNDERLAY, linkedServers, type LinkedServers } from "../support/link-harness.js";
import { freePort, requireCommand, tempDir, waitFor } from "../support/system.js";

const DB = "bbaegok";
const APP_PASSWORD = generatedPassword();
const tag = String(process.pid % 100000);

describe("a PostgreSQL replica on another server, over the rendered WireGuard link (network namespaces)", () => {
  const dir = tempDir("replica-link");
  const psql = requireCommand("psql", "postgresql-client");
  let link: LinkedServers;
  let pg: LinkedPostgres;
  let pgPort: number;
  const primarySocket = join(dir.path, "primary-run");
  const replicaSocket = join(dir.path, "replica-run");
  const sql = (socket: string, statements: string, database = DB) => pg.sql(socket, statements, database);
  const must = (socket: string, statements: string, database = DB) => pg.must(socket, statements, database);

  before(async () => {
    link = linkedServers(dir.path, tag);
    pgPort = await freePort();
    pg = linkedPostgres(link, dir.path, pgPort);
  });

  after(async () => {
    await pg?.stop();
    link?.remove();
    dir.remove();
  });

  it("the rendered up script brings the link up on both servers, and running it again keeps it (wg syncconf)", () => {
    for (const side of ["primary", "replica"] as const) {
      for (let run = 0; run < 2; run++) {
        const up = link.up(side);
        assert.equal(up.status, 0, up.stderr);
      }
    }
    const ping = spawnSync("ip", link.inNs("replica", "ping", "-c", "1", "-W", "5", LINK.primary), { encoding: "utf8" });
    assert.equal(ping.status, 0, ping.stdout + ping.stderr);
    const shown = spawnSync("ip", link.inNs("primary", "wg", "show", link.paths.primary.iface, "allowed-ips"), { encoding: "utf8" }).stdout;
    assert.match(shown, new RegExp(`\\t${LINK.replica.replace(/\./g, "\\.")}/32\\n$`));
  });

  it("the primary listens on its link address only: the replica's server reaches it there, not on the primary's own address", async () => {
    // On the link address only: what the program's port binding (ip: link.primaryAddress) makes of the primary's container.
    await pg.startPrimary({ data: join(dir.path, "primary-data"), socket: primarySocket });
    must(primarySocket, `CREATE DATABASE ${DB}`, "postgres");
    must(primarySocket, "CREATE TABLE orders (id serial PRIMARY KEY, memo text NOT NULL); INSERT INTO orders (memo) VALUES ('주문 1');");
    // The app's login, which may write on the primary.
    must(primarySocket, `CREATE ROLE ${DB} LOGIN PASSWORD '${APP_PASSWORD}'; GRANT SELECT, INSERT ON orders TO ${DB};`);
    const isReady = (host: string) => spawnSync("ip", link.inNs("replica", join(pg.binDir, "pg_isready"), "-h", host, "-p", String(pgPort), "-t", "3"), { encoding: "utf8" });
    assert.equal(isReady(LINK.primary).status, 0, "the replica's server does not reach the primary over the link");
    assert.equal(isReady(UNDERLAY.primary).status, 2, "the primary answers on its own (public) address");
  });

  it("the replica's server seeds a standby by the rendered entrypoint over the link; it streams, and writes on the primary appear on it", async () => {
    // The primary's side, by the rendered replica.sh: role, slot, pg_hba line.
    writePostgresReplicationSecrets(dir.path);
    const script = renderReplicaScript(dir.path, { database: replicatedDatabase("postgres", 30), replica: { maxLagSeconds: 30 }, primaryHost: LINK.primary, primaryPort: pgPort });
    const env = replicaEnv(dir.path, { [PRIMARY_CONTAINER]: { PGHOST: primarySocket, PGPORT: String(pgPort), PGDATA: join(dir.path, "primary-data") }, [REPLICA_CONTAINER]: { PGHOST: replicaSocket, PGPORT: "1" } });
    const setup = await runReplica(script, env, "setup");
    assert.equal(setup.status, 0, setup.stderr);

    await pg.startStandby({ dir: dir.path, data: join(dir.path, "replica-data"), socket: replicaSocket, secretsDir: dir.path });
    await waitFor("the standby to stream", () => sql(replicaSocket, "SELECT status FROM pg_stat_wal_receiver", "postgres").stdout.trim() === "streaming", 60_000, 200);
    // The primary sees the standby's connection coming from the replica's link address: it came through the tunnel.
    assert.equal(must(primarySocket, "SELECT client_addr, application_name, state FROM pg_stat_replication", "postgres"), `${LINK.replica}|replica_1|streaming`);
    assert.equal(must(replicaSocket, "SELECT memo FROM orders ORDER BY id"), "주문 1");
    must(primarySocket, "INSERT INTO orders (memo) VALUES ('주문 2 over the link')");
    await waitFor("the write to reach the standby", () => sql(replicaSocket, "SELECT count(*) FROM orders").stdout.trim() === "2", 30_000, 200);
    assert.equal(must(replicaSocket, "SELECT pg_is_in_recovery()", "postgres"), "t");
    const refused = sql(replicaSocket, "INSERT INTO orders (memo) VALUES ('x')");
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /read-only transaction/);
  });

  it("the app and Metabase on the primary's server read the standby at its link address, seen coming from the primary's; neither can write there", async () => {
    // A client on the primary's server (the slots' and Metabase's traffic leaves their edge network masqueraded as this server).
    const fromPrimaryServer = (user: string, password: string, statements: string, host: string = LINK.replica) =>
      spawnSync("ip", link.inNs("primary", psql, "-h", host, "-p", String(pgPort), "-U", user, "-d", DB, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t"), {
        input: statements,
        encoding: "utf8",
        env: { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: "3" },
      });
    const read = fromPrimaryServer(DB, APP_PASSWORD, "SELECT count(*) FROM orders; SELECT host(inet_client_addr());");
    assert.equal(read.status, 0, read.stderr);
    assert.equal(read.stdout, `2\n${LINK.primary}\n`);
    const write = fromPrimaryServer(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('x')");
    assert.notEqual(write.status, 0);
    assert.match(write.stderr, /read-only transaction/);
    // Metabase's login is made on the primary only (its component's plan): the standby has it by replication.
    const metabasePassword = generatedPassword();
    must(primarySocket, readOnlyUserSql(replicatedDatabase("postgres"), [], metabasePassword));
    const analytics = () => fromPrimaryServer(READONLY_USER, metabasePassword, "SELECT string_agg(memo, ',' ORDER BY id) FROM orders");
    await waitFor("the read-only login to reach the standby", () => analytics().status === 0, 30_000, 200);
    assert.equal(analytics().stdout.trim(), "주문 1,주문 2 over the link");
    // Nowhere but the link: the replica's server's own (underlay) address does not answer.
    const underlay = fromPrimaryServer(DB, APP_PASSWORD, "SELECT 1", UNDERLAY.replica);
    assert.notEqual(underlay.status, 0);
    assert.match(underlay.stderr, /Connection refused|could not connect|timeout/);
  });

  it("the primary's server's copy of replica.sh reports the standby as the primary sees it: streaming and caught up, then its replay paused: bytes behind and a lag past the bound", async () => {
    const copy = join(dir.path, "primary-server-copy");
    mkdirSync(copy, { mode: 0o700 });
    const script = renderReplicaScript(copy, { database: replicatedDatabase("postgres", 2), replica: { maxLagSeconds: 2 }, primaryHost: LINK.primary, primaryPort: pgPort, replicaHost: LINK.replica, thisServer: "primary" });
    // Its docker exec stand-in knows the primary's container only: nothing of the standby is asked but through the primary.
    const env = replicaEnv(copy, { [PRIMARY_CONTAINER]: { PGHOST: primarySocket, PGPORT: String(pgPort), PGDATA: join(dir.path, "primary-data") } });
    await waitFor("the standby to be caught up", async () => (await replicaStatus(script, env)).behind === 0, 30_000, 300);
    const caughtUp = await replicaStatus(script, env);
    assert.deepEqual([caughtUp.healthy, caughtUp.lagSeconds, caughtUp.unit, caughtUp.replicaPosition], [true, 0, "bytes", caughtUp.primaryPosition], JSON.stringify(caughtUp));
    must(replicaSocket, "SELECT pg_wal_replay_pause()", "postgres");
    try {
      must(primarySocket, "INSERT INTO orders (memo) VALUES ('주문 while the standby does not replay')");
      let state = caughtUp;
      await waitFor("the lag past the bound of 2 s", async () => !(state = await replicaStatus(script, env)).healthy, 60_000, 500);
      assert.match(state.reason ?? "", /^the replica is \d+ s behind, more than the bound of 2 s$/, JSON.stringify(state));
      assert.ok(state.behind > 0 && state.lagSeconds! > 2, JSON.stringify(state));
    } finally {
      must(replicaSocket, "SELECT pg_wal_replay_resume()", "postgres");
    }
    await waitFor("the standby to catch up again", async () => (await replicaStatus(script, env)).healthy, 60_000, 500);
    // Its connection gone (the replica's end of the link removed, so it cannot come back; its walsender ended): not streaming, no replay position.
    assert.equal(spawnSync("ip", link.inNs("replica", "ip", "link", "del", "dev", link.paths.replica.iface)).status, 0);
    must(primarySocket, "SELECT pg_terminate_backend(pid) FROM pg_stat_replication", "postgres");
    const gone = await replicaStatus(script, env);
    assert.deepEqual([gone.healthy, gone.reason, gone.replicaPosition], [false, "the standby bbaegok-prod-db-replica is not streaming from the primary (its connection: none)", ""], JSON.stringify(gone));
    const up = link.up("replica");
    assert.equal(up.status, 0, up.stderr);
    await waitFor("the standby to stream again", async () => (await replicaStatus(script, env)).healthy, 90_000, 500);
  });

  it("the primary's server's backup dumps the standby over the link as the backup role (made on the primary by its copy of replica.sh: pg_read_all_data and BYPASSRLS, no writes), reading what the standby has applied", async () => {
    const own = join(dir.path, "primary-server-backup");
    mkdirSync(own, { mode: 0o700 });
    // The primary's server's password files, as its database container sees them: the replication password it already has.
    writeFileSync(join(own, "replication_password"), readFileSync(join(dir.path, "replication_password")), { mode: 0o400 });
    writeFileSync(join(own, BACKUP_PASSWORD_FILE), `${generatedPassword()}\n`, { mode: 0o400 });
    const primaryContainer = { [PRIMARY_CONTAINER]: { PGHOST: primarySocket, PGPORT: String(pgPort), PGDATA: join(dir.path, "primary-data") } };
    const script = renderReplicaScript(own, { database: replicatedDatabase("postgres", 30), replica: { maxLagSeconds: 30 }, primaryHost: LINK.primary, primaryPort: pgPort, replicaHost: LINK.replica, thisServer: "primary" });
    // Its docker exec stand-in runs in the primary's namespace: the standby is reached over the link only.
    const env = replicaEnv(own, primaryContainer, { [PRIMARY_CONTAINER]: link.ns.primary });
    const setup = await runReplica(script, env, "setup");
    assert.equal(setup.status, 0, setup.stderr);
    const role = `SELECT rolcanlogin, rolbypassrls, rolsuper, rolreplication, rolcreatedb, rolcreaterole, pg_has_role('${BACKUP_USER}', 'pg_read_all_data', 'MEMBER') FROM pg_roles WHERE rolname = '${BACKUP_USER}'`;
    assert.equal(must(primarySocket, role, "postgres"), "t|t|f|f|f|f|t");
    await waitFor("the role to reach the standby", () => sql(replicaSocket, role, "postgres").stdout.trim() === "t|t|f|f|f|f|t", 30_000, 200);
    const write = spawnSync(psql, ["-h", primarySocket, "-p", String(pgPort), "-U", BACKUP_USER, "-d", DB, "-X", "-c", "INSERT INTO orders (memo) VALUES ('x')"], { encoding: "utf8" });
    assert.notEqual(write.status, 0);
    assert.match(write.stderr, /permission denied for table orders/);

    const [s3, ping] = await Promise.all([startMoto([{ name: "bbaegok-prod-db-backups", versioned: true }]), startPingServer()]);
    try {
      writeFileSync(join(own, "ping-url"), `${ping.url}\n`, { mode: 0o600 });
      const backup = renderReplicatedBackupScript(own, "postgres", 30, { elsewhere: true, replicaPort: pgPort });
      const backupEnv = { ...replicatedBackupEnv(own, env, script, s3), BACKUP_SECRETS_DIR: own };
      // The standby's replay paused and a row written on the primary: the dump has it only if it read the primary.
      const applied = must(primarySocket, "SELECT count(*) FROM orders");
      await waitFor("the standby to have every row", () => sql(replicaSocket, "SELECT count(*) FROM orders").stdout.trim() === applied, 30_000, 200);
      must(replicaSocket, "SELECT pg_wal_replay_pause()", "postgres");
      let run: Awaited<ReturnType<typeof runScript>>;
      try {
        must(primarySocket, "INSERT INTO orders (memo) VALUES ('주문 not replayed yet')");
        run = await runScript(backup.script, backupEnv);
      } finally {
        must(replicaSocket, "SELECT pg_wal_replay_resume()", "postgres");
      }
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stderr, /backup of prod\/bbaegok \(postgres in container bbaegok-prod-db, over the link from its replica at 10\.99\.0\.2:\d+\) done/);
      const manifest = newestManifest(s3, backup.bucket, DB);
      assert.equal(manifest.source, "replica");
      assert.match(manifest.replication?.why ?? "", new RegExp(`^the replica bbaegok-prod-db-replica on another server is healthy and \\d+ s behind \\(bound 30 s\\); dumped over the link at ${LINK.replica.replace(/\./g, "\\.")}:${pgPort}$`));
      assert.equal(manifest.replication?.positionType, "lsn");
      assert.equal(manifest.tables.find((t) => t.name === "public.orders")?.rows, Number(applied));
      // The archive restores (pg_restore reads it), with the standby's rows and not the one it had not replayed.
      const archive = spawnSync("zstd", ["-dc"], { input: s3.get(backup.bucket, manifest.key), maxBuffer: 64 << 20 });
      assert.equal(archive.status, 0, String(archive.stderr));
      const restored = spawnSync(join(pg.binDir, "pg_restore"), ["--data-only", "--table=orders", "-f", "-"], { input: archive.stdout, encoding: "utf8" });
      assert.equal(restored.status, 0, restored.stderr);
      assert.ok(restored.stdout.includes("주문 2 over the link"), restored.stdout);
      assert.ok(!restored.stdout.includes("주문 not replayed yet"), restored.stdout);
      assert.deepEqual(ping.hits, ["/ping/test-check"]);
    } finally {
      await Promise.all([s3.stop(), ping.stop()]);
    }
  });

  it("after a reboot: each server can bind its link address while the link is down (the sysctl: without it the bind fails), and the installed boot unit brings the link back; the standby streams again", async () => {
    const inNs = (side: "primary" | "replica", ...argv: string[]) => spawnSync("ip", link.inNs(side, ...argv), { encoding: "utf8" });
    // The up script applied the sysctl file on both servers (a namespace has its own): each publishes a database's port on its link address.
    for (const side of ["primary", "replica"] as const) assert.equal(inNs(side, "sysctl", "-n", "net.ipv4.ip_nonlocal_bind").stdout.trim(), "1");
    // A reboot: the interfaces are gone, the files stay.
    for (const side of ["primary", "replica"] as const) assert.equal(inNs(side, "ip", "link", "del", "dev", link.paths[side].iface).status, 0);
    // What Docker does at boot for the primary's published port: its userland proxy binds the link address
    // (Debian's docker-proxy, as dockerd runs it; it reports 0 or 1 and the error on fd 3, then serves until stopped).
    const dockerProxy = requireCommand("docker-proxy", "docker.io", ["/usr/sbin"]);
    const publish = (side: "primary" | "replica", address: string) =>
      inNs(side, "bash", "-c", `timeout 2 "$0" -proto tcp -host-ip "$1" -host-port 3306 -container-ip 127.0.0.1 -container-port 9 3>&1`, dockerProxy, address);
    for (const side of ["primary", "replica"] as const) {
      const port = publish(side, LINK[side]);
      assert.equal(port.stdout.trim(), "0", `the ${side}'s database could not start without the link: ${port.stdout}`);
      assert.equal(port.status, 124, "docker-proxy stopped serving on its own");
    }
    // Without the sysctl the same bind fails, as it did before the up script installed it.
    assert.equal(inNs("replica", "sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=0").status, 0);
    assert.match(publish("replica", LINK.replica).stdout, /^1\n.*bind: cannot assign requested address/s);
    assert.equal(inNs("replica", "sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1").status, 0);
    // The boot unit, as systemd would run it: its ExecStart, on each server.
    for (const side of ["primary", "replica"] as const) {
      const unit = readFileSync(link.paths[side].unit, "utf8");
      const start = /^ExecStart=(.+)$/m.exec(unit)?.[1];
      assert.ok(start, `no ExecStart in ${link.paths[side].unit}`);
      const r = inNs(side, "bash", "-c", start);
      assert.equal(r.status, 0, r.stderr);
    }
    await waitFor("the standby to stream again", () => sql(replicaSocket, "SELECT status FROM pg_stat_wal_receiver", "postgres").stdout.trim() === "streaming", 90_000, 500);
    must(primarySocket, "INSERT INTO orders (memo) VALUES ('주문 after the reboot')");
    const rows = must(primarySocket, "SELECT count(*) FROM orders");
    await waitFor("the write to reach the standby", () => sql(replicaSocket, "SELECT count(*) FROM orders").stdout.trim() === rows, 150_000, 500);
  });
});
