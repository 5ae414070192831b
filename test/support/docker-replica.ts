// What the replica tests on the real Docker host ask the running containers
// and the installed backup: shared by the replica on the stack's server
// (test/docker/replica.test.ts) and on another server (replica-elsewhere.test.ts).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { BackupManifest } from "../../infra/backup/render.js";
import { docker, type DockerHost, type RunResult } from "./docker-host.js";
import { CLOUDFLARE_CLIENT, httpsGet, opsAsync, opsSession, pulumi, startLoad } from "./docker-stacks.js";
import { outputOf } from "./engine.js";
import type { EngineWorkspace } from "../../engine/workspace.js";
import type { MotoServer } from "./moto.js";
import { waitFor } from "./system.js";

export type Engine = "mariadb" | "postgres";

/** Which Docker host a container is on (default: the newest test host's daemon); a second server's `dockerEnv` too. */
type On = Pick<DockerHost, "dockerEnv">;

/** A field of `docker inspect`, parsed. */
export function inspect<T>(container: string, field: string, on?: On): T {
  return JSON.parse(docker(["inspect", "-f", `{{json ${field}}}`, container], { host: on }).stdout) as T;
}

/** SQL as the app's user (its password from the database's file, inside the container): what the app may do there. */
export function asAppUser(engine: Engine, container: string, sql: string, on?: On): RunResult {
  const client =
    engine === "mariadb"
      ? 'MYSQL_PWD="$(cat /run/secrets/db_password)" exec mariadb -N -ubbaegok bbaegok'
      : 'PGPASSWORD="$(cat /run/secrets/db_password)" exec psql -X -q -tA -v ON_ERROR_STOP=1 -h 127.0.0.1 -U bbaegok -d bbaegok';
  return docker(["exec", "-i", container, "sh", "-c", client], { host: on, input: sql, allowFailure: true });
}

/** SQL as the database's administrator inside a container (the test's own steps); it must succeed. */
export function asAdmin(engine: Engine, container: string, sql: string, on?: On): RunResult {
  const client =
    engine === "mariadb" ? 'MYSQL_PWD="$(cat /run/secrets/db_root_password)" exec mariadb -uroot' : "exec psql -X -q -tA -F ' ' -v ON_ERROR_STOP=1 -U postgres -d bbaegok";
  return docker(["exec", "-i", container, "sh", "-c", client], { host: on, input: sql });
}

/** What the engine says when a read-only database refuses the app's write. */
export function readOnlyRefusal(engine: Engine): RegExp {
  return engine === "mariadb" ? /--read-only/ : /read-only transaction/;
}

/** Creates `notes` with one row through the app's login on the primary, waits for it on the replica, and has the replica refuse the app's write. */
export async function writeAndSeeReplicated(engine: Engine, primary: string, replica: string, replicaOn?: On): Promise<void> {
  const write = asAppUser(engine, primary, "CREATE TABLE IF NOT EXISTS notes (id INT PRIMARY KEY, body VARCHAR(40)); INSERT INTO notes VALUES (1, '빼곡 노트');");
  assert.equal(write.status, 0, write.stderr);
  await waitFor("the row on the replica", () => asAppUser(engine, replica, "SELECT body FROM notes WHERE id = 1;", replicaOn).stdout === "빼곡 노트\n", 60_000, 500);
  const refused = asAppUser(engine, replica, "INSERT INTO notes VALUES (2, 'refused');", replicaOn);
  assert.notEqual(refused.status, 0, "the replica took a write");
  assert.match(refused.stderr, readOnlyRefusal(engine));
}

/** The proxy container's address on prod's edge network: where "Cloudflare" connects (for either stack's names). */
export function proxyAddress(): string {
  return docker(["inspect", "-f", '{{(index .NetworkSettings.Networks "bbaegok-prod-edge").IPAddress}}', "bbaegok-proxy"]).stdout.trim();
}

/** The slot container that serves a name now, as the proxy answers. */
export async function servingSlot(stack: string, api: string): Promise<string> {
  const answer = await httpsGet(api, "/", { address: proxyAddress(), localAddress: CLOUDFLARE_CLIENT });
  assert.equal(answer.status, 200, answer.body);
  return `bbaegok-${stack}-app-${(JSON.parse(answer.body) as { slot: string }).slot}`;
}

/** The other slot's container: the warm one when `serving` serves. */
export function otherSlotOf(serving: string): string {
  const [, prefix, slot] = /^(.*-app-)(blue|green)$/.exec(serving) ?? assert.fail(`${serving} is not a slot's container`);
  return `${prefix}${slot === "blue" ? "green" : "blue"}`;
}

/** A command in an app slot, its output. */
export function inSlot(slot: string, command: string): string {
  return docker(["exec", slot, "sh", "-c", command]).stdout;
}

/** The stack's installed backup script, run as root as cron runs it, against the S3 stand-in; its result. */
export function runInstalledBackup(host: DockerHost, s3: MotoServer, stack: string): RunResult {
  const credentials = `${host.dir}/s3-credentials`;
  host.asRoot(`umask 077; cat > '${credentials}'`, readFileSync(s3.credentialsFile("docker-replica-test")));
  return host.asRoot(
    `env BACKUP_S3_ENDPOINT_URL=${s3.endpoint} BACKUP_AWS_CREDENTIALS_FILE='${credentials}' BACKUP_PING_URL_FILE=/nonexistent '${host.dataDir}/${stack}/backup/backup.sh'`,
    undefined,
    { timeoutMs: 300_000 },
  );
}

/** The newest manifest of the stack's service database in the S3 stand-in. */
export function newestManifest(s3: MotoServer, stack: string): BackupManifest {
  const bucket = `bbaegok-${stack}-db-backups`;
  const key = s3.keys(bucket, `${stack}/bbaegok/`).filter((k) => k.endsWith(".manifest.json")).sort().at(-1);
  assert.ok(key, `no manifest under s3://${bucket}/${stack}/bbaegok/`);
  return JSON.parse(s3.get(bucket, key).toString("utf8")) as BackupManifest;
}

/** The title of reseedInPlace's test, the same for a replica on the stack's server and on another. */
export const RESEED_IN_PLACE =
  "a replica that can no longer catch up (MariaDB: its binary logs purged; PostgreSQL: its slot lost) is seeded again in place by npm run reseed: no read of it ever sees part of the rows, the primary never restarts, and the stack's state is unchanged";

/**
 * The replica of `stack` made unable to catch up for real, then `npm run
 * reseed` with the app's login reading the replica all along; what must hold
 * after it. Leaves the stack as it found it: its table is dropped at the end.
 */
export async function reseedInPlace({ engine, stack, primary, replica, ws, hangUp }: { engine: Engine; stack: string; primary: string; replica: string; ws: EngineWorkspace; hangUp?: "here" | "elsewhere" }): Promise<void> {
  const ROWS = 200_000;
  // A bigger table, so that the seeding lasts long enough for reads to land in it.
  const bulk =
    engine === "mariadb"
      ? `CREATE TABLE reseed_rows (id INT PRIMARY KEY, body CHAR(32)); INSERT INTO reseed_rows SELECT seq, MD5(seq) FROM seq_1_to_${ROWS};`
      : `CREATE TABLE reseed_rows (id INT PRIMARY KEY, body CHAR(32)); INSERT INTO reseed_rows SELECT g, md5(g::text) FROM generate_series(1, ${ROWS}) g;`;
  assert.equal(asAppUser(engine, primary, bulk).status, 0);
  const count = () => asAppUser(engine, replica, "SELECT count(*) FROM reseed_rows;");
  await waitFor("the bulk rows on the replica", () => count().stdout === `${ROWS}\n`, 120_000, 500);
  if (engine === "mariadb") {
    // Away while the primary wrote, then its binary logs purged past its position: error 1236 once it is back.
    asAdmin(engine, replica, "STOP SLAVE;");
    asAdmin(engine, primary, "INSERT INTO bbaegok.reseed_rows VALUES (0, 'written while it was away');");
    // MariaDB keeps a log until its binlog checkpoint has passed it: flushed and purged until one is left.
    await waitFor(
      "the primary's binary logs to be purged but the current one",
      () => {
        const current = asAdmin(engine, primary, "FLUSH BINARY LOGS; SHOW MASTER STATUS;").stdout.split("\n")[1]!.split("\t")[0]!;
        asAdmin(engine, primary, `PURGE BINARY LOGS TO '${current}';`);
        return asAdmin(engine, primary, "SHOW BINARY LOGS;").stdout.trim().split("\n").length === 2;
      },
      30_000,
      500,
    );
    asAdmin(engine, replica, "START SLAVE;");
  } else {
    // Away for more than max_slot_wal_keep_size (4 GiB) of the primary's WAL: its slot is lost. The segments are
    // made sparse (wal_init_zero off, for this test) so the 4 GiB costs no disk.
    docker(["stop", replica]);
    asAdmin(engine, primary, "ALTER SYSTEM SET wal_init_zero = off; SELECT pg_reload_conf();");
    asAdmin(engine, primary, "INSERT INTO reseed_rows VALUES (0, 'written while it was away'); CREATE TABLE wal_filler (i INT); DO $$ BEGIN FOR i IN 1..300 LOOP INSERT INTO wal_filler VALUES (i); PERFORM pg_switch_wal(); END LOOP; END $$; DROP TABLE wal_filler; CHECKPOINT;");
    asAdmin(engine, primary, "ALTER SYSTEM RESET wal_init_zero; SELECT pg_reload_conf();");
    assert.equal(asAdmin(engine, primary, "SELECT wal_status FROM pg_replication_slots;").stdout, "lost\n");
    docker(["start", replica]);
  }
  const full = ROWS + 1;
  await waitFor(
    "npm run status to say the replica must be seeded again",
    async () => /UNHEALTHY: .*must be seeded again/.test((await opsAsync(ws, "deploy.ts", ["status", "--stack", stack])).stdout),
    120_000,
    1000,
  );
  const before = { primary: [inspect<string>(primary, ".Id"), inspect<string>(primary, ".State.StartedAt")], replica: inspect<string>(replica, ".Id") };

  // Reads of the replica as the app's login, all through the seeding: each is refused or sees every row (or,
  // before the seeding starts, the stale copy); never a part of them.
  const reads: string[] = [];
  let seeding = true;
  const reader = (async () => {
    while (seeding) {
      const read = count();
      reads.push(read.status === 0 ? read.stdout.trim() : "refused");
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  let reseed: Awaited<ReturnType<typeof opsAsync>>;
  try {
    reseed = hangUp ? await reseedHungUp(stack, primary, ws, hangUp) : await opsAsync(ws, "reseed.ts", ["--stack", stack]);
  } finally {
    seeding = false;
    await reader;
  }
  assert.equal(reseed.status, 0, reseed.stdout + reseed.stderr);
  assert.match(reseed.stdout, /is seeded again and caught up; the app reads from it again/);
  // The link's guard is perl in the replica's container: with the locale the image's LANG names, it says nothing of it.
  assert.doesNotMatch(reseed.stdout + reseed.stderr, /perl: warning|Setting locale failed/);
  const firstRefused = reads.indexOf("refused");
  assert.ok(firstRefused >= 0, `no read was refused while the replica was seeded: ${reads.join(" ")}`);
  assert.deepEqual(
    reads.filter((r, i) => (i < firstRefused ? r !== String(ROWS) : r !== "refused" && r !== String(full))),
    [],
    `a read saw part of the rows: ${reads.join(" ")}`,
  );
  assert.equal(count().stdout, `${full}\n`, "the seeded replica lacks rows");
  // Replicating again: a row written now arrives.
  assert.equal(asAppUser(engine, primary, "INSERT INTO reseed_rows VALUES (-1, 'after the reseed');").status, 0);
  await waitFor("the row written after the reseed on the replica", () => count().stdout === `${full + 1}\n`, 60_000, 500);
  const status = await opsAsync(ws, "deploy.ts", ["status", "--stack", stack]);
  assert.match(status.stdout, new RegExp(`^  replica  ${replica}  healthy, `, "m"), status.stdout);
  // In place: the primary never restarted, the replica's container is the same one, and Pulumi has nothing to change.
  assert.deepEqual([inspect<string>(primary, ".Id"), inspect<string>(primary, ".State.StartedAt")], before.primary, "the primary was re-created or restarted");
  assert.equal(inspect<string>(replica, ".Id"), before.replica, "the replica's container was re-created");
  const preview = pulumi(ws, ["preview", "--stack", stack, "--expect-no-changes"]);
  assert.equal(preview.status, 0, outputOf(preview));
  assert.equal(asAppUser(engine, primary, "DROP TABLE reseed_rows;").status, 0);
}

/** What reseedInPlace's `hangUp` adds to its title. */
export const RESEED_HUNG_UP = "; the operator's connection dropped while it seeds (MariaDB), the reseed goes on on the server and npm run reseed again follows it to its end";

/**
 * MariaDB: npm run reseed, its terminal killed (the command and its ssh) while
 * the seeding dump waits for a table lock the test holds on the primary;
 * then npm run reseed again, which follows the first to its end once the lock
 * goes (elsewhere: the run's seed step, named as cut, then its last steps).
 * The second run's result.
 */
async function reseedHungUp(stack: string, primary: string, ws: EngineWorkspace, where: "here" | "elsewhere"): Promise<{ status: number; stdout: string; stderr: string }> {
  // The dump's FLUSH TABLES waits for this session's write lock (for 120 s at most, or until it is killed below).
  docker(["exec", "-d", primary, "sh", "-c", 'MYSQL_PWD="$(cat /run/secrets/db_root_password)" exec mariadb -uroot -e "LOCK TABLES bbaegok.reseed_rows WRITE; DO SLEEP(120);"']);
  const SEEDING = /seeding \S+ from a consistent dump/;
  const first = opsSession(ws, "reseed.ts", ["--stack", stack]);
  await waitFor("the first reseed to seed the replica", () => SEEDING.test(first.stdout()), 120_000, 200);
  await first.hangUp();
  const second = opsSession(ws, "reseed.ts", ["--stack", stack]);
  await waitFor("the second run to follow the first", () => /following its log to its end/.test(second.stdout()), 60_000, 200);
  asAdmin("mariadb", primary, "SELECT id FROM information_schema.processlist WHERE info LIKE 'DO SLEEP%' INTO @id; EXECUTE IMMEDIATE CONCAT('KILL ', @id);");
  const result = await second.done;
  assert.match(result.stdout, /replica\.sh reseed(?: seed [0-9a-f]{8})? \(pid \d+, since \S+Z\) is running on this server: following its log to its end/);
  assert.equal(result.stdout.match(new RegExp(SEEDING, "g"))?.length, 1, `not one seeding, followed from its first line: ${result.stdout}`);
  if (where === "elsewhere") {
    const run = /reseed seed ([0-9a-f]{8}) \(pid/.exec(result.stdout)?.[1];
    assert.ok(run, result.stdout);
    assert.match(result.stdout, new RegExp(`run ${run} was cut \\(a dropped connection\\?\\); its step seed still runs on \\S+: following it, then going on from there`));
  }
  return result;
}

/**
 * `npm run promote` (or `failback`) of a stack while clients call its API
 * through the proxy (startLoad): its result, once it succeeded and every
 * request of the more than 20 made meanwhile was answered.
 */
export async function promoteUnderLoad(ws: EngineWorkspace, stack: string, api: string, command: "promote" | "failback" = "promote"): Promise<RunResult> {
  const load = startLoad(proxyAddress, api);
  let result: Awaited<ReturnType<typeof opsAsync>>;
  try {
    result = await opsAsync(ws, `${command}.ts`, ["--stack", stack]);
    await new Promise((r) => setTimeout(r, 1500));
  } finally {
    await load.stop();
  }
  assert.equal(result.status, 0, result.stdout + result.stderr);
  assert.deepEqual(load.answers.filter((a) => a.error), [], `failed requests during npm run ${command} (of ${load.answers.length})`);
  assert.ok(load.answers.length > 20, `only ${load.answers.length} requests`);
  return result;
}
