// npm run failback against a real MariaDB GTID pair promoted by replica.sh:
// the command's order (follow, the staged up, return, the flip's up, the
// rewarm, the reseed), what it leaves when an up or the return fails, and a
// run again after a failure finishing the way back. Its `pulumi up` is a
// stand-in that records the stack file and places the two scripts rendered
// from it, as the program's up does; `docker exec` is the harness's stand-in
// (test/support/replica-harness.ts). The real engine's run of it is in
// test/docker/replica.test.ts.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { describeReplication, failbackScript, replicaIsPrimary, replicaNames, replicaScript, type PromotedState } from "../../infra/replica/render.js";
import { stackNames } from "../../infra/server/render.js";
import { localShell } from "../../ops/deploy/server.js";
import { EXIT } from "../../ops/exit.js";
import { runFailbackCommand } from "../../ops/failback.js";
import { writePromotion, type PromoteDeps } from "../../ops/promote.js";
import { readStackFile } from "../../stacks/config/files.js";
import { rawFromPulumiConfig, validateStackConfig } from "../../stacks/config/validate.js";
import type { MariaDb } from "../support/mariadb.js";
import { generatedPassword, mariaDbPairEnv, PRIMARY_CONTAINER, REPLICA_CONTAINER, replicaStatus, runReplica, setUpReplica, startMariaDbPair, writeReplicatedStackFile } from "../support/replica-harness.js";
import { tempDir, waitFor } from "../support/system.js";

const DB = "bbaegok";
const APP_PASSWORD = generatedPassword();

describe("npm run failback (a real MariaDB pair, promoted)", () => {
  let original: MariaDb;
  let promoted: MariaDb;
  let env: Record<string, string>;
  const dir = tempDir("failback-command");
  const project = join(dir.path, "project");
  const stackFile = join(project, "Pulumi.prod.yaml");
  const names = stackNames("bbaegok", "prod", dir.path);
  const replica = replicaNames(names.prefix);
  const readConfig = (stack: string) => validateStackConfig(stack, rawFromPulumiConfig(readStackFile(project, stack).config), []);
  const memos = (db: MariaDb) => db.sql("SELECT GROUP_CONCAT(memo ORDER BY id SEPARATOR '|') FROM orders", DB).trim();
  const appWrite = (db: MariaDb, memo: string) => db.sqlAs(DB, APP_PASSWORD, `INSERT INTO orders (memo) VALUES ('${memo}')`, DB);
  const primaryOf = () => /^ {4}primary: (\w+)$/m.exec(readFileSync(stackFile, "utf8"))?.[1];

  /** What the program's up places on the server from the stack file as it is: replica.sh, and failback.sh once promoted. */
  const place = () => {
    const config = readConfig("prod");
    const spec = { stack: "prod", service: "bbaegok", database: config.database, replica: config.database.replicas[0]!, primaryContainer: PRIMARY_CONTAINER, replicaContainer: REPLICA_CONTAINER, slot: replica.slot };
    writeFileSync(replica.script(names.stackDir), replicaScript({ ...spec, primaryHost: "127.0.0.1", primaryPort: original.port }), { mode: 0o755 });
    if (replicaIsPrimary(config.database)) {
      writeFileSync(replica.failbackScript(names.stackDir), failbackScript({ ...spec, failbackDir: replica.failbackDir(names.stackDir), promotedHost: "127.0.0.1", promotedPort: promoted.port }), { mode: 0o755 });
    }
  };
  /** The command wired to this machine; each up records the stack file's database.primary, places the scripts, then does what `ups` says (in order; ok after). */
  const run = async (ups: (() => void | Promise<void>)[] = []) => {
    const seen: (string | undefined)[] = [];
    const out: string[] = [];
    const reporter = { line: (text: string) => void out.push(text) };
    const deps: PromoteDeps = {
      readConfig,
      openEngine: async () => ({
        up: async () => {
          seen.push(primaryOf());
          place();
          await ups.shift()?.();
        },
      }),
      projectDir: project,
      shell: () => localShell(env),
      privilege: "none",
    };
    const status = await runFailbackCommand(["--stack", "prod"], deps, reporter, reporter);
    return { status, seen, out: out.join("\n") };
  };
  const failedUp = () => {
    throw new Error("the stand-in's up failed here");
  };

  before(async () => {
    ({ primary: original, replica: promoted } = await startMariaDbPair(dir.path, { database: DB, appPassword: APP_PASSWORD, memoryMb: 1024 }));
    original.sql("CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, memo VARCHAR(100) NOT NULL); INSERT INTO orders (memo) VALUES ('주문 1');", DB);
    mkdirSync(join(names.stackDir, "replica"), { recursive: true });
    writeReplicatedStackFile(project, dir.path);
    env = { ...mariaDbPairEnv(dir.path, { primary: original, replica: promoted }), REPLICA_RESEED_WAIT_SECONDS: "60" };
    place();
    await setUpReplica(replica.script(names.stackDir), env);
  });
  after(async () => {
    await Promise.all([original?.stop(), promoted?.stop()]);
    dir.remove();
  });

  it("refuses a stack whose original is the primary, a file a stopped failback left staged and a replica on another server (exit 2), running nothing", async () => {
    const notPromoted = await run([() => assert.fail("up ran")]);
    assert.equal(notPromoted.status, EXIT.usage);
    assert.match(notPromoted.out, /failback: Pulumi\.prod\.yaml says database\.primary: original: the original is the primary; nothing to fail back/);
    const unstage = writePromotion(stackFile, "returning");
    const staged = await run([() => assert.fail("up ran")]);
    unstage();
    assert.equal(staged.status, EXIT.usage);
    assert.match(staged.out, /says database\.primary: returning, which only npm run failback writes for its first step and puts back: an earlier failback stopped there\. Set it back to "replica"/);
    // A promoted replica on another server: failback.sh is not built there.
    const file = readFileSync(stackFile, "utf8");
    writeFileSync(
      stackFile,
      file.replace(
        "      - maxLagSeconds: 30\n",
        "      - maxLagSeconds: 30\n        server:\n          host: replica.bbaegok.kr\n          ssh:\n            user: deploy\n            hostKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIReplicaHostKeyForTheCommandTest00000000\n        link:\n          type: wireguard\n          primaryAddress: 10.99.0.1\n          replicaAddress: 10.99.0.2\n",
      ),
    );
    writePromotion(stackFile, "replica");
    const elsewhere = await run([() => assert.fail("up ran")]);
    writeFileSync(stackFile, file);
    assert.equal(elsewhere.status, EXIT.usage, elsewhere.out);
    assert.match(elsewhere.out, /failback: the replica of prod is on another server \(replica\.bbaegok\.kr\): npm run failback brings back an original on the stack's own server only; nothing was done/);
    assert.equal(original.sql("SELECT @@read_only").trim(), "0");
  });

  it("after replica.sh promote (and its stack file), the first up failing: the file is put back, the original follows the promoted one, read-only, which keeps the app's writes", async () => {
    const promote = await runReplica(replica.script(names.stackDir), env, "promote");
    assert.equal(promote.status, 0, promote.stderr);
    writePromotion(stackFile, "replica");
    place();
    assert.equal(appWrite(promoted, "승격 후").status, 0);

    const first = await run([failedUp]);
    assert.equal(first.status, EXIT.failed, first.out);
    assert.deepEqual(first.seen, ["returning"]);
    assert.equal(primaryOf(), "replica");
    assert.match(first.out, /bbaegok-prod-db follows bbaegok-prod-db-replica, caught up/);
    assert.match(first.out, /the first pulumi up, starting the warm slot for the way back, FAILED: the stand-in's up failed here\. The stack file is back as it was; nothing was returned/);
    assert.equal(original.sql("SELECT @@read_only").trim(), "1");
    assert.notEqual(original.sql("SHOW SLAVE STATUS").trim(), "");
    assert.equal(appWrite(promoted, "실패 후").status, 0);
    // npm run status says what is left: not "stop it", which the next run would undo.
    const state = await replicaStatus<PromotedState>(replica.script(names.stackDir), env);
    assert.deepEqual([state.healthy, state.originalFollows], [true, true], JSON.stringify(state));
    assert.match(describeReplication(state), /the original follows it, read-only \(npm run failback seeded it and stopped before its return\): run npm run failback to finish the way back/);
  });

  it("return refused on the server (another command holds its lock): the warm slot is put back naming the promoted one, which takes the app's writes", async () => {
    let holder: ChildProcess | undefined;
    const release = () => {
      if (holder?.pid && holder.exitCode === null && holder.signalCode === null) process.kill(-holder.pid, "SIGKILL");
    };
    const lock = join(env["REPLICA_LOCK_DIR"]!, "bbaegok-prod-replica-both.lock");
    const failed = await run([
      // The staged up went through; then another command holds the server's lock through the return.
      async () => {
        // A group of its own: flock's child holds the lock too, and both go at once.
        holder = spawn("flock", ["-n", lock, "sh", "-c", "echo held; exec sleep 60"], { stdio: ["ignore", "pipe", "ignore"], detached: true });
        await new Promise((resolve) => holder!.stdout!.once("data", resolve));
      },
      () => release(),
    ]);
    release();
    assert.equal(failed.status, EXIT.failed, failed.out);
    assert.deepEqual(failed.seen, ["returning", "replica"]);
    assert.match(failed.out, /another replica\.sh command is running on this server/);
    assert.match(failed.out, /failback of prod FAILED on this machine \(exit 1\); the stack file is unchanged; .*; the warm slot is re-created naming bbaegok-prod-db-replica again\./);
    assert.equal(primaryOf(), "replica");
    assert.equal(appWrite(promoted, "반환 거부 후").status, 0);
  });

  it("the flip's up failing after the return: the file is back to replica, the original IS the primary and the run says so", async () => {
    const failed = await run([() => undefined, failedUp]);
    assert.equal(failed.status, EXIT.failed, failed.out);
    assert.deepEqual(failed.seen, ["returning", "original"]);
    assert.equal(primaryOf(), "replica");
    assert.match(failed.out, /bbaegok-prod-db IS the primary again and bbaegok-prod-db-replica is fenced, so the app's writes fail until the up succeeds: fix the cause and run npm run failback again/);
    assert.equal(appWrite(original, "되돌린 후").status, 0);
    assert.match(promoted.sqlAs(DB, APP_PASSWORD, "SELECT 1").stderr, /locked/);
  });

  it("run again, it finds the return made and finishes: the flip, the rewarm, then the promoted one seeded again as the original's read replica, with every write", async () => {
    const done = await run();
    assert.equal(done.status, EXIT.ok, done.out);
    assert.deepEqual(done.seen, ["returning", "original", "original"]);
    assert.equal(primaryOf(), "original");
    assert.match(done.out, /returned before, nothing to follow/);
    assert.match(done.out, /already takes writes and bbaegok-prod-db-replica is fenced: returned before/);
    assert.match(done.out, /prod: bbaegok-prod-db is the primary again and bbaegok-prod-db-replica its read replica\. Commit Pulumi\.prod\.yaml/);
    assert.equal(memos(original), "주문 1|승격 후|실패 후|반환 거부 후|되돌린 후");
    assert.equal(appWrite(original, "다시 복제").status, 0);
    const position = original.sql("SELECT @@gtid_binlog_pos").trim();
    await waitFor("the reseeded replica to apply the original's write", () => promoted.sql("SELECT @@gtid_slave_pos").trim() === position, 30_000, 200);
    assert.equal(memos(promoted), memos(original));
    assert.equal(promoted.sql("SELECT @@read_only").trim(), "1");
    assert.equal(promoted.sqlAs(DB, APP_PASSWORD, "SELECT count(*) FROM orders", DB).stdout.trim(), "6");
    const again = await run([() => assert.fail("up ran")]);
    assert.equal(again.status, EXIT.usage);
  });
});
