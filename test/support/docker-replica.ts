// What the replica tests on the real Docker host ask the running containers
// and the installed backup: shared by the replica on the stack's server
// (test/docker/replica.test.ts) and on another server (replica-elsewhere.test.ts).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { BackupManifest } from "../../infra/backup/render.js";
import { docker, type DockerHost, type RunResult } from "./docker-host.js";
import { CLOUDFLARE_CLIENT, httpsGet } from "./docker-stacks.js";
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
