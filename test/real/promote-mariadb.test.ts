// npm run promote against a real MariaDB GTID pair: ops/promote.ts runs the
// rendered replica.sh promote through a local shell (the server's `docker
// exec` stood in by the replica harness's hook), writes the promotion into a
// copy of prod's stack file, and hands `pulumi up` to a stand-in engine that
// records what the file said. The app's datasource is then rendered from that
// file, as the program renders it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { slotEnvs } from "../../infra/app/render.js";
import { stackBackupTargets } from "../../infra/backup/render.js";
import { localShell, SshServerControl } from "../../ops/deploy/server.js";
import { formatStatus, gatherStatus } from "../../ops/deploy/status.js";
import { EXIT } from "../../ops/exit.js";
import { runPromoteCommand, type PromoteDeps } from "../../ops/promote.js";
import { readStackFile } from "../../stacks/config/files.js";
import { rawFromPulumiConfig, validateStackConfig } from "../../stacks/config/validate.js";
import type { MariaDb } from "../support/mariadb.js";
import { generatedPassword, replicaEnv, replicatedDatabase, runReplica, PRIMARY_CONTAINER, REPLICA_CONTAINER, mariaDbPairEnv, setUpReplica, startMariaDbPair, writeReplicatedStackFile } from "../support/replica-harness.js";
import { replicaScript } from "../../infra/replica/render.js";
import { runScript } from "../support/backup-harness.js";
import { tempDir } from "../support/system.js";

const DB = "bbaegok";
const APP_PASSWORD = generatedPassword();

describe("npm run promote (a real MariaDB primary and replica)", () => {
  let primary: MariaDb;
  let replica: MariaDb;
  const dir = tempDir("promote-mariadb");
  const project = join(dir.path, "project");
  const stackFile = join(project, "Pulumi.prod.yaml");
  const script = join(dir.path, "prod", "replica", "replica.sh");
  let env: Record<string, string>;
  const readConfig = (stack: string) => validateStackConfig(stack, rawFromPulumiConfig(readStackFile(project, stack).config), []);
  const lines = () => {
    const out: string[] = [];
    return { out, reporter: { line: (text: string) => void out.push(text) } };
  };
  /** The command wired to this machine; `up` records the stack file as pulumi up would read it. */
  const deps = (up: (file: string) => void): PromoteDeps => ({
    readConfig,
    openEngine: async () => ({ up: async () => up(readFileSync(stackFile, "utf8")) }),
    projectDir: project,
    shell: () => localShell(env),
    privilege: "none",
  });

  before(async () => {
    ({ primary, replica } = await startMariaDbPair(dir.path, { database: DB, appPassword: APP_PASSWORD, memoryMb: 1024 }));
    primary.sql("CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, memo VARCHAR(100) NOT NULL); INSERT INTO orders (memo) VALUES ('주문 1');", DB);
    // prod's stack file with one replica and the server's data folder here, where promote finds replica.sh.
    mkdirSync(join(dir.path, "prod", "replica"), { recursive: true });
    writeReplicatedStackFile(project, dir.path);
    writeFileSync(script, replicaScript({ stack: "prod", service: "bbaegok", database: replicatedDatabase("mariadb", 30), replica: { maxLagSeconds: 30 }, primaryContainer: PRIMARY_CONTAINER, replicaContainer: REPLICA_CONTAINER, slot: "replica_1", primaryHost: "127.0.0.1", primaryPort: primary.port }), { mode: 0o755 });
    env = mariaDbPairEnv(dir.path, { primary, replica });
    await setUpReplica(script, env);
  });
  after(async () => {
    await Promise.all([primary?.stop(), replica?.stop()]);
    dir.remove();
  });

  it("refuses bad usage, a stack without a replica and a file a stopped promote left staged (exit 2), touching nothing", async () => {
    const { out, reporter } = lines();
    assert.equal(await runPromoteCommand([], deps(() => assert.fail("up ran")), reporter, reporter), EXIT.usage);
    assert.match(out.join("\n"), /--stack is required\nusage: npm run promote -- --stack <name>/);
    const noReplica: PromoteDeps = { ...deps(() => assert.fail("up ran")), readConfig: (s) => ({ ...readConfig(s), database: { ...readConfig(s).database, replicas: [] } }) };
    assert.equal(await runPromoteCommand(["--stack", "prod"], noReplica, reporter, reporter), EXIT.usage);
    assert.match(out.join("\n"), /Pulumi\.prod\.yaml lists no database\.replicas: there is no replica to promote/);
    // A file a stopped promote left in its first step.
    const stopped: PromoteDeps = { ...deps(() => assert.fail("up ran")), shell: () => assert.fail("the server was reached"), readConfig: (s) => ({ ...readConfig(s), database: { ...readConfig(s).database, primary: "promoting" } }) };
    assert.equal(await runPromoteCommand(["--stack", "prod"], stopped, reporter, reporter), EXIT.usage);
    assert.match(out.join("\n"), /Pulumi\.prod\.yaml says database\.primary: promoting, .*stopped in that step, before promoting anything\. Set it back to "original" and run npm run promote again/);
    assert.equal(replica.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('x')", DB).status === 0, false, "the replica took a write before promote");
    // The server's script with both containers here reads the primary's position itself: one given is refused, not ignored.
    const positioned = await runScript(script, env, ["promote", "0-1-1"]);
    assert.equal(positioned.status, 2, positioned.stderr);
    assert.match(positioned.stderr, /promote takes no position with both containers on this server/);
    assert.equal(primary.sqlAs(DB, APP_PASSWORD, "SELECT @@read_only", DB).stdout.trim(), "0", "the primary was fenced");
    assert.match(replica.sql("SHOW STATUS LIKE 'Slave_running'"), /^Slave_running\tON$/m);
  });

  it("when the first pulumi up (starting the warm slot for the promotion) fails: the file is put back, nothing is promoted", async () => {
    const before = readFileSync(stackFile, "utf8");
    const seen: string[] = [];
    const { out, reporter } = lines();
    const status = await runPromoteCommand(["--stack", "prod"], deps((file) => { seen.push(file); throw new Error("error: the warm slot did not turn healthy"); }), reporter, reporter);
    assert.deepEqual([status, seen.length], [EXIT.failed, 1]);
    assert.match(seen[0]!, /    primary: promoting\n/, "the first up did not see the staged promotion");
    assert.equal(readFileSync(stackFile, "utf8"), before);
    assert.match(out.join("\n"), /the first pulumi up, starting the warm slot for the promotion, FAILED: error: the warm slot did not turn healthy\. The stack file is back as it was; nothing was promoted/);
    // The primary still takes the app's writes; the replica still replicates.
    assert.equal(primary.sqlAs(DB, APP_PASSWORD, "SELECT @@read_only", DB).stdout.trim(), "0");
    assert.match(replica.sql("SHOW STATUS LIKE 'Slave_running'"), /^Slave_running\tON$/m);
  });

  it("when replica.sh promote fails on the server: the file is unchanged, and one more pulumi up re-creates the warm slot naming the original", async () => {
    const before = readFileSync(stackFile, "utf8");
    const seen: string[] = [];
    const { out, reporter } = lines();
    // Its docker exec stand-in fails: neither container answers.
    const failing: PromoteDeps = { ...deps((file) => void seen.push(file)), shell: () => localShell({ ...env, REPLICA_DB_EXEC: "/bin/false" }) };
    const status = await runPromoteCommand(["--stack", "prod"], failing, reporter, reporter);
    assert.equal(status, EXIT.failed);
    assert.equal(seen.length, 2);
    assert.match(seen[0]!, /    primary: promoting\n/);
    assert.equal(seen[1], before, "the second up did not see the file as it was");
    assert.equal(readFileSync(stackFile, "utf8"), before);
    assert.match(out.join("\n"), /FAILED on this machine \(exit 3\); the stack file is unchanged; nothing changed on bbaegok-prod-db-replica, and the original primary takes the app's writes \(never fenced, or its fence taken off again\); the warm slot is re-created naming the original primary again\./);
    assert.equal(primary.sqlAs(DB, APP_PASSWORD, "SELECT @@read_only", DB).stdout.trim(), "0");
  });

  it("when the primary is fenced and then the replica does not answer: the fence comes off again, the app writes to the original", async () => {
    const { out, reporter } = lines();
    // Its docker exec stand-in fails for the replica alone.
    const hook = join(dir.path, "replica-down-exec");
    writeFileSync(hook, `#!/bin/bash\n[[ $1 == ${REPLICA_CONTAINER} ]] && { echo "Error response from daemon: container ${REPLICA_CONTAINER} is not running" >&2; exit 1; }\nexec ${env.REPLICA_DB_EXEC} "$@"\n`, { mode: 0o755 });
    const failing: PromoteDeps = { ...deps(() => undefined), shell: () => localShell({ ...env, REPLICA_DB_EXEC: hook }) };
    assert.equal(await runPromoteCommand(["--stack", "prod"], failing, reporter, reporter), EXIT.failed);
    const said = out.join("\n");
    assert.match(said, /bbaegok-prod-db fenced: it refuses the app's writes from now on/);
    assert.match(said, /bbaegok-prod-db-replica does not answer \(Error response from daemon: container bbaegok-prod-db-replica is not running\): nothing was promoted/);
    assert.match(said, /bbaegok-prod-db unfenced: it takes the app's writes again/);
    assert.match(said, /FAILED on this machine \(exit 3\); the stack file is unchanged; nothing changed on bbaegok-prod-db-replica, and the original primary takes the app's writes/);
    const write = primary.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('after a failed promote'); DELETE FROM orders WHERE memo = 'after a failed promote';", DB);
    assert.equal(write.status, 0, write.stderr);
  });

  it("when the primary is fenced and its position cannot be read: nothing is promoted (what it committed is unknown), the fence comes off again", async () => {
    const { out, reporter } = lines();
    // The replica never answers; the primary fails the one query for its position (read after the fence).
    const hook = join(dir.path, "position-lost-exec");
    writeFileSync(
      hook,
      `#!/bin/bash
[[ $1 == ${REPLICA_CONTAINER} ]] && { echo "Error response from daemon: container ${REPLICA_CONTAINER} is not running" >&2; exit 1; }
sql=$(cat)
[[ $1 == ${PRIMARY_CONTAINER} && $sql == *@@gtid_binlog_pos* ]] && { echo "Lost connection to server during query" >&2; exit 1; }
printf '%s\n' "$sql" | exec ${env.REPLICA_DB_EXEC} "$@"
`,
      { mode: 0o755 },
    );
    const failing: PromoteDeps = { ...deps(() => undefined), shell: () => localShell({ ...env, REPLICA_DB_EXEC: hook }) };
    assert.equal(await runPromoteCommand(["--stack", "prod"], failing, reporter, reporter), EXIT.failed);
    const said = out.join("\n");
    assert.match(said, /bbaegok-prod-db fenced: it refuses the app's writes from now on/);
    assert.match(said, /bbaegok-prod-db is fenced, but its position could not be read \(Lost connection to server during query\): nothing is promoted, its fence comes off again/);
    assert.match(said, /bbaegok-prod-db unfenced: it takes the app's writes again/);
    assert.match(said, /FAILED on this machine \(exit 3\); the stack file is unchanged; nothing changed on bbaegok-prod-db-replica, and the original primary takes the app's writes/);
    assert.equal(primary.sqlAs(DB, APP_PASSWORD, "SELECT @@read_only", DB).stdout.trim(), "0", "the original was left fenced");
  });

  it("when the primary's container runs but the fence fails (it refuses the admin's connection): nothing is promoted, since the app may still write there; the replica replicates on, the original takes the app's writes", async () => {
    const { out, reporter } = lines();
    // The server runs and serves the app; only the admin's session for the fence is refused, as a full server refuses it.
    const hook = join(dir.path, "fence-refused-exec");
    writeFileSync(
      hook,
      `#!/bin/bash
sql=$(cat)
[[ $1 == ${PRIMARY_CONTAINER} && $sql == *"read_only = ON"* ]] && { echo "ERROR 1040 (HY000): Too many connections" >&2; exit 1; }
printf '%s\n' "$sql" | exec ${env.REPLICA_DB_EXEC} "$@"
`,
      { mode: 0o755 },
    );
    const refused: PromoteDeps = { ...deps(() => undefined), shell: () => localShell({ ...env, REPLICA_DB_EXEC: hook }) };
    assert.equal(await runPromoteCommand(["--stack", "prod"], refused, reporter, reporter), EXIT.failed);
    const said = out.join("\n");
    assert.match(said, /bbaegok-prod-db cannot be fenced \(ERROR 1040 \(HY000\): Too many connections\), but its container runs, so it may still take the app's writes: nothing is promoted\. .*stop its container first \(docker stop bbaegok-prod-db\)/);
    assert.doesNotMatch(said, /promoted with what it has/);
    assert.match(said, /FAILED on this machine \(exit 3\); the stack file is unchanged; nothing changed on bbaegok-prod-db-replica, and the original primary takes the app's writes/);
    assert.equal(replica.sql("SELECT @@read_only;").trim(), "1", "the replica was made writable");
    assert.match(replica.sql("SHOW STATUS LIKE 'Slave_running'"), /^Slave_running\tON$/m);
    const write = primary.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('after a refused fence'); DELETE FROM orders WHERE memo = 'after a refused fence';", DB);
    assert.equal(write.status, 0, write.stderr);
  });

  it("when the replica has not applied the fenced primary's writes within REPLICA_PROMOTE_WAIT_SECONDS (its SQL thread stopped): nothing is promoted, so no acknowledged write is lost; the fence comes off, the replica replicates on", async () => {
    replica.sql("STOP SLAVE SQL_THREAD;");
    try {
      const written = primary.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('acknowledged, not yet applied');", DB);
      assert.equal(written.status, 0, written.stderr);
      const { out, reporter } = lines();
      const behind: PromoteDeps = { ...deps(() => undefined), shell: () => localShell({ ...env, REPLICA_PROMOTE_WAIT_SECONDS: "2" }) };
      assert.equal(await runPromoteCommand(["--stack", "prod"], behind, reporter, reporter), EXIT.failed);
      const said = out.join("\n");
      assert.match(said, /bbaegok-prod-db-replica has not applied bbaegok-prod-db's writes up to \S+ after 2 s \(it is at \S+\): nothing was promoted, so that no write bbaegok-prod-db acknowledged is lost/);
      assert.match(said, /bbaegok-prod-db unfenced: it takes the app's writes again/);
      assert.match(said, /FAILED on this machine \(exit 3\); the stack file is unchanged; nothing changed on bbaegok-prod-db-replica, and the original primary takes the app's writes/);
      assert.equal(primary.sqlAs(DB, APP_PASSWORD, "SELECT @@read_only", DB).stdout.trim(), "0", "the original was left fenced");
      assert.equal(replica.sql("SELECT @@read_only;").trim(), "1", "the replica was made writable");
      assert.notEqual(replica.sql("SHOW SLAVE STATUS;").trim(), "", "the replica's replication was reset");
    } finally {
      replica.sql("START SLAVE SQL_THREAD;");
    }
    const onReplica = () => replica.sql(`SELECT count(*) FROM ${DB}.orders WHERE memo = 'acknowledged, not yet applied';`).trim();
    const until = async (count: string, what: string) => {
      for (let i = 0; i < 100 && onReplica() !== count; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(onReplica(), count, what);
    };
    await until("1", "the replica did not catch up once its SQL thread ran again");
    // The later cases count the rows the promotion carries.
    primary.sqlAs(DB, APP_PASSWORD, "DELETE FROM orders WHERE memo = 'acknowledged, not yet applied';", DB);
    await until("0", "the replica did not apply the clean-up");
  });

  it("when the promotion's pulumi up fails, the stack file is put back and the operator is told the replica is promoted", async () => {
    // Written just before the promotion: it must reach the promoted replica.
    primary.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('주문 2')", DB);
    const before = readFileSync(stackFile, "utf8");
    let ups = 0;
    const { out, reporter } = lines();
    const status = await runPromoteCommand(["--stack", "prod"], deps(() => { if (++ups === 2) throw new Error("error: the rollout failed"); }), reporter, reporter);
    assert.deepEqual([status, ups], [EXIT.failed, 2]);
    assert.equal(readFileSync(stackFile, "utf8"), before);
    assert.match(out.join("\n"), /pulumi up FAILED: error: the rollout failed\. The stack file is back as it was\. bbaegok-prod-db-replica IS promoted/);
  });

  it("when the last pulumi up (the old serving slot's rewarm) fails, the stack file stays promoted and the operator is told to commit it and deploy again", async () => {
    const before = readFileSync(stackFile, "utf8");
    let ups = 0;
    const { out, reporter } = lines();
    const status = await runPromoteCommand(["--stack", "prod"], deps(() => { if (++ups === 3) throw new Error("error: the warm slot did not turn healthy"); }), reporter, reporter);
    assert.deepEqual([status, ups], [EXIT.failed, 3]);
    assert.match(readFileSync(stackFile, "utf8"), /    primary: replica\n/);
    assert.match(out.join("\n"), /bbaegok-prod-db-replica is the primary and the serving slot writes to it, but the second pulumi up, re-creating the warm slot, FAILED: error: the warm slot did not turn healthy\. The serving slot was not touched\. Commit Pulumi\.prod\.yaml .*npm run deploy -- --stack prod/);
    // As before, for the next test: promote from the unpromoted file (the server's promotion is done; again changes nothing there).
    writeFileSync(stackFile, before);
  });

  it("promotes (again, after the failed ups): the old replica takes the app's writes, the original refuses them, and the app's datasource (from the file written) is the promoted container", async () => {
    const seen: string[] = [];
    const { out, reporter } = lines();
    const status = await runPromoteCommand(["--stack", "prod"], deps((file) => void seen.push(file)), reporter, reporter);
    assert.equal(status, EXIT.ok, out.join("\n"));
    // The staged file (the warm slot started naming the replica), then two ups of the promoted file: the flip, then the rewarm.
    assert.equal(seen.length, 3);
    assert.equal(seen[0], seen[1]!.replace("primary: replica", "primary: promoting"));
    assert.equal(seen[1], seen[2]);
    assert.match(out.join("\n"), /pulumi up of prod again: the warm slot, which still names the original, is re-created naming it/);
    assert.match(out.join("\n"), /bbaegok-prod-db fenced: it refuses the app's writes from now on/);
    // Nothing the app wrote on the primary before the fence was lost.
    assert.equal(replica.sql("SELECT GROUP_CONCAT(memo ORDER BY id) FROM orders", DB).trim(), "주문 1,주문 2");
    const write = replica.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('after promote')", DB);
    assert.equal(write.status, 0, write.stderr);
    const fenced = primary.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('split brain')", DB);
    assert.notEqual(fenced.status, 0);
    assert.match(fenced.stderr, /--read-only/);

    assert.match(seen[1]!, /    primary: replica\n/, "pulumi up did not see the promotion in the stack file");
    assert.match(seen[1]!, /# No secret is stored here/, "the file's comments were lost");
    const config = readConfig("prod");
    assert.ok(slotEnvs(config, "blue").includes("SPRING_DATASOURCE_URL=jdbc:mariadb://db-replica:3306/bbaegok"));
    assert.ok(!slotEnvs(config, "green").some((e) => e.startsWith("SPRING_DATASOURCE_REPLICA_URL=")));
    assert.equal(stackBackupTargets(config, "prod")[0]?.container, REPLICA_CONTAINER);

    const again = lines();
    assert.equal(await runPromoteCommand(["--stack", "prod"], deps(() => assert.fail("up ran")), again.reporter, again.reporter), EXIT.usage);
    assert.match(again.out.join("\n"), /says database\.primary: replica already/);
  });

  it("npm run status after it: the promoted container takes writes and the original answers fenced; the original writable again (a restart) is UNHEALTHY, named", async () => {
    // pulumi up renders the script again from the file promote wrote (database.primary: replica).
    const config = readConfig("prod");
    writeFileSync(script, replicaScript({ stack: "prod", service: "bbaegok", database: config.database, replica: config.database.replicas[0]!, primaryContainer: PRIMARY_CONTAINER, replicaContainer: REPLICA_CONTAINER, slot: "replica_1", primaryHost: "127.0.0.1", primaryPort: primary.port }), { mode: 0o755 });
    const server = new SshServerControl({ stack: "prod", config, proxy: { container: "no-proxy-here", image: "none", dir: dir.path, internalPort: 1 }, shell: localShell(env), privilege: "none" });
    const replicaLine = async () => formatStatus(await gatherStatus("prod", config, undefined, server)).find((l) => l.startsWith("  replica  "));
    assert.equal(await replicaLine(), `  replica  ${REPLICA_CONTAINER}  promoted, the primary: takes writes; the original still answers, fenced (read-only): stop it once this one's first backup is checked`);
    primary.sql("SET GLOBAL read_only = OFF"); // what its next restart does
    assert.equal(await replicaLine(), `  replica  ${REPLICA_CONTAINER}  UNHEALTHY (promoted, the primary): the original ${PRIMARY_CONTAINER} takes writes again (started by hand?): stop it, the app must not write there`);
    primary.sql("SET GLOBAL read_only = ON");
  });

  it("promote run again after its up failed, the original restarted meanwhile (a restart lifts MariaDB's fence) and took the app's writes: refused, since the promoted one lacks them; the original is unfenced and keeps them", async () => {
    // The script as the stack file put back by the failed up renders it (not promoted).
    const unpromoted = join(dir.path, "unpromoted", "replica.sh");
    mkdirSync(join(dir.path, "unpromoted"), { recursive: true });
    writeFileSync(unpromoted, replicaScript({ stack: "prod", service: "bbaegok", database: replicatedDatabase("mariadb", 30), replica: { maxLagSeconds: 30 }, primaryContainer: PRIMARY_CONTAINER, replicaContainer: REPLICA_CONTAINER, slot: "replica_1", primaryHost: "127.0.0.1", primaryPort: primary.port }), { mode: 0o755 });
    primary.sql("SET GLOBAL read_only = OFF"); // what its restart does
    const written = primary.sqlAs(DB, APP_PASSWORD, "INSERT INTO orders (memo) VALUES ('after the restart')", DB);
    assert.equal(written.status, 0, written.stderr);
    const rows = replica.sql("SELECT GROUP_CONCAT(memo ORDER BY id) FROM orders", DB).trim();
    const run = await runScript(unpromoted, env, ["promote"]);
    assert.equal(run.status, 3, run.stderr);
    assert.match(run.stderr, /bbaegok-prod-db took writes after bbaegok-prod-db-replica was promoted \(it is at \S+, bbaegok-prod-db-replica at \S+\): promoting again would lose them\. Nothing was promoted/);
    assert.match(run.stderr, /bbaegok-prod-db unfenced: it takes the app's writes again/);
    assert.equal(primary.sqlAs(DB, APP_PASSWORD, "SELECT @@read_only", DB).stdout.trim(), "0", "the original was left fenced");
    assert.equal(replica.sql("SELECT GROUP_CONCAT(memo ORDER BY id) FROM orders", DB).trim(), rows, "the promoted one changed");
    primary.sql("SET GLOBAL read_only = ON");
  });

  it("the up's setup commands, on a stack promoted before they were declared in every state (its next up creates them), do nothing: exit 0, the promoted container untouched, even while a failback holds the lock", async () => {
    const rows = () => replica.sql("SELECT GROUP_CONCAT(memo ORDER BY id) FROM orders", DB).trim();
    const before = rows();
    const lock = join(env["REPLICA_LOCK_DIR"]!, "bbaegok-prod-replica-both.lock");
    const holder = spawnSync("flock", ["-n", lock, "bash", "-c", `"$0" setup && "$0" wait`, script], { env: { ...process.env, ...env }, encoding: "utf8" });
    assert.equal(holder.status, 0, holder.stderr);
    assert.match(holder.stderr, /bbaegok-prod-db-replica is the primary \(promoted\): nothing to setup; it is never set up again from bbaegok-prod-db/);
    assert.match(holder.stderr, /nothing to wait/);
    assert.equal(rows(), before);
    assert.equal(replica.sql("SHOW SLAVE STATUS").trim(), "");
    assert.equal(replica.sql("SELECT @@read_only").trim(), "0");
  });
});
