// What the replica tests share: the real replica script rendered for a
// stack with a replica, pointed at two local servers (the primary and the
// replica) through a stand-in for `docker exec <container>`.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { BACKUP_PASSWORD_FILE, MONITOR_PASSWORD_FILE, SEEDING_PASSWORD_FILE, postgresReplicaEntrypoint, primaryReplicationFlags, replicaRoleOptions, replicaScript, replicaServerFlags, replicationPgpass, type ReplicaScriptSpec, type ReplicaStatus, type ReplicationState } from "../../infra/replica/render.js";
import { shellQuote } from "../../infra/server/render.js";
import type { StackConfig } from "../../stacks/config/schema.js";
import { backupPaths, backupScript, stackBackupTargets, uploaderScript, type BackupManifest } from "../../infra/backup/render.js";
import { loadStack } from "../../stacks/config/load.js";
import { runScript, serverEnv, type ScriptRun } from "./backup-harness.js";
import { startMariaDb, type MariaDb } from "./mariadb.js";
import { POSTGRES_OS_USER, uidOf, type Postgres } from "./postgres.js";
import type { MotoServer } from "./moto.js";
import { freePort, requireCommand, waitFor } from "./system.js";
import { LINK } from "./link-harness.js";
import { REPO } from "./project.js";

export const PRIMARY_CONTAINER = "bbaegok-prod-db";
export const REPLICA_CONTAINER = "bbaegok-prod-db-replica";

/** How a client reaches each local server: MYSQL_UNIX_PORT, or PGHOST/PGPORT/PGDATA, by container name. */
export type ContainerEnvs = Record<string, Record<string, string>>;

/**
 * Stands in for `docker exec <container>`: runs the command with that
 * container's local server environment. Debian's client configuration names
 * the system socket, which beats MYSQL_UNIX_PORT: the socket goes right after
 * the first MariaDB program named. A container named in `netns` runs its
 * commands in that network namespace: on another server (a link test).
 */
export function writeReplicaExecHook(dir: string, envs: ContainerEnvs, netns: Record<string, string> = {}): string {
  const path = join(dir, "replica-exec");
  const cases = Object.entries(envs)
    .map(([container, env]) => {
      const settings = [...Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}`), ...(netns[container] ? [`netns=${shellQuote(netns[container])}`] : [])];
      return `  ${shellQuote(container)}) ${settings.join("; ")} ;;`;
    })
    .join("\n");
  writeFileSync(
    path,
    `#!/usr/bin/env bash
# Test stand-in for docker exec: $1 is the container, the rest the command.
container=$1 netns=''
shift
case $container in
${cases}
  *) echo "no such container: $container" >&2; exit 1 ;;
esac
if [[ -n \${MYSQL_UNIX_PORT:-} ]]; then
  args=() added=false
  for word in "$@"; do
    args+=("$word")
    if [[ $added == false && ( $word == mariadb || $word == mariadb-dump ) ]]; then args+=(--socket="$MYSQL_UNIX_PORT"); added=true; fi
  done
  set -- "\${args[@]}"
fi
if [[ -n $netns ]]; then exec ip netns exec "$netns" "$@"; fi
exec "$@"
`,
  );
  chmodSync(path, 0o755);
  return path;
}

/**
 * Stands in for `docker inspect`'s State.Running of `<container>` ($1): a
 * container runs while its server process does, whether or not it answers
 * SQL, so the server is asked whether it is there at all: `mariadb-admin
 * ping` says alive even to a login it refuses, `pg_isready` exits 0 or 1
 * (accepting, or rejecting while it starts or stops) for a server there,
 * 2 for none. A container not named here does not run.
 */
export function writeReplicaRunningHook(dir: string, envs: ContainerEnvs): string {
  const path = join(dir, "replica-running");
  const cases = Object.entries(envs)
    .map(([container, env]) => `  ${shellQuote(container)}) ${Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}`).join("; ")} ;;`)
    .join("\n");
  writeFileSync(
    path,
    `#!/usr/bin/env bash
# Test stand-in for docker inspect's State.Running: $1 is the container.
case $1 in
${cases}
  *) exit 1 ;;
esac
if [[ -n \${MYSQL_UNIX_PORT:-} ]]; then
  exec mariadb-admin --no-defaults --socket="$MYSQL_UNIX_PORT" --connect-timeout=5 ping >/dev/null 2>&1
fi
pg_isready -q -t 5
(($? < 2))
`,
  );
  chmodSync(path, 0o755);
  return path;
}

/** A generated password as the program makes them: letters and digits. */
export function generatedPassword(): string {
  return randomBytes(24).toString("base64").replace(/[^A-Za-z0-9]/g, "").slice(0, 24);
}

/** The password files of a MariaDB replica on another server, as both servers' containers see them (generated here). */
export function elsewherePasswords(): Record<string, string> {
  return {
    replication_password: generatedPassword(),
    [SEEDING_PASSWORD_FILE]: generatedPassword(),
    [MONITOR_PASSWORD_FILE]: generatedPassword(),
    [BACKUP_PASSWORD_FILE]: generatedPassword(),
    db_root_password: "unused-root-uses-the-socket",
  };
}

/** The database config of a stack with one replica. */
export function replicatedDatabase(engine: StackConfig["database"]["engine"], maxLagSeconds = 300): StackConfig["database"] {
  return { engine, version: engine === "postgres" ? "16.6" : "11.4.4", name: "bbaegok", user: "bbaegok", memoryMb: 1024, replicas: [{ maxLagSeconds, readTimeoutSeconds: 30 }], primary: "original" };
}

/**
 * Writes a MariaDB replica's role option file as the program renders it
 * (read-only, or writable once promoted) at `dir/role.cnf`, what its
 * container's conf.d has: startMariaDb's `optionFile`.
 */
export function writeReplicaRole(dir: string, promoted = false): string {
  const path = join(dir, "role.cnf");
  writeFileSync(path, replicaRoleOptions("mariadb", promoted)!);
  return path;
}

/** Writes the rendered replica script into `dir`. */
export function renderReplicaScript(dir: string, spec: Omit<ReplicaScriptSpec, "stack" | "service" | "primaryContainer" | "replicaContainer" | "slot">): string {
  const path = join(dir, "replica.sh");
  writeFileSync(path, replicaScript({ stack: "prod", service: "bbaegok", primaryContainer: PRIMARY_CONTAINER, replicaContainer: REPLICA_CONTAINER, slot: "replica_1", ...spec }), { mode: 0o755 });
  return path;
}


/** Runs `replica.sh status` and reads its JSON; fails the test when it does not run. */
export async function replicaStatus<T extends ReplicaStatus = ReplicationState>(script: string, env: Record<string, string>): Promise<T> {
  const run = await runReplica(script, env, "status");
  if (run.status !== 0) throw new Error(`replica.sh status failed (${run.status}): ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

/** The environment of the replica script in a test: the exec hook and where the password files are. */
export function replicaEnv(dir: string, envs: ContainerEnvs, netns: Record<string, string> = {}): Record<string, string> {
  return { REPLICA_DB_EXEC: writeReplicaExecHook(dir, envs, netns), REPLICA_DB_RUNNING: writeReplicaRunningHook(dir, envs), REPLICA_SECRETS_DIR: dir, REPLICA_LOCK_DIR: dir, REPLICA_WAIT_SECONDS: "60" };
}

/** Runs `replica.sh <command>` with the test's environment. */
export function runReplica(script: string, env: Record<string, string>, command: string): Promise<ScriptRun> {
  return runScript(script, env, [command]);
}

/**
 * `replica.sh <command>` as an SSH session runs it, in a process group of its
 * own; `hangUp()` kills that whole group at once (harsher than a dropped
 * connection, whose processes die at their next write), so that only what
 * the script detached from its session is left running.
 */
export function startReplicaSession(script: string, env: Record<string, string>, command: string): { stderr(): string; done: Promise<ScriptRun>; hangUp(): Promise<void> } {
  const child = spawn("bash", [script, command], { env: serverEnv(env), stdio: ["ignore", "pipe", "pipe"], detached: true });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<ScriptRun>((resolve) => child.once("close", (code, signal) => resolve({ status: code ?? (signal ? 128 : -1), stdout, stderr })));
  return {
    stderr: () => stderr,
    done,
    hangUp: async () => {
      process.kill(-child.pid!, "SIGKILL");
      await done;
    },
  };
}

/** A PostgreSQL hot standby started as the replica's container starts it. */
export interface Standby {
  port: number;
  socketDir: string;
  data: string;
  sql(statements: string): string;
  sqlAs(user: string, password: string, statements: string): { status: number; stdout: string; stderr: string };
  stop(): Promise<void>;
}

/** The replica's start as its container does it, on `dir/replica-data`: the rendered entrypoint, then the server with the replica's flags. */
export async function startStandby(primary: Postgres, dir: string, secretsDir: string, database: string): Promise<Standby> {
  const { uid, gid } = uidOf(POSTGRES_OS_USER);
  const data = join(dir, "replica-data");
  const socketDir = join(dir, "replica-run");
  // An existing data folder is started as it is (what a container started again on its volume finds).
  for (const folder of [data, socketDir]) {
    mkdirSync(folder, { mode: 0o700, recursive: true });
    chownSync(folder, uid, gid);
  }
  const port = await freePort();
  const spec = { engine: "postgres" as const, memoryMb: 1024, primaryHost: "127.0.0.1", primaryPort: primary.port, secretsDir, slot: "replica_1" };
  const entrypoint = join(dir, "replica-entrypoint.sh");
  writeFileSync(entrypoint, postgresReplicaEntrypoint(spec), { mode: 0o755 });
  const log: string[] = [];
  const child: ChildProcess = spawn(
    entrypoint,
    [join(primary.binDir, "postgres"), "-D", data, "-p", String(port), "-k", socketDir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", ...replicaServerFlags(spec)],
    { uid, gid, cwd: dir, env: { PATH: `${primary.binDir}:/usr/bin:/bin`, PGDATA: data }, stdio: ["ignore", "ignore", "pipe"] },
  );
  child.stderr?.on("data", (d: Buffer) => log.push(d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const psql = requireCommand("psql", "postgresql-client");
  const run = (user: string, password: string | undefined, statements: string) =>
    spawnSync(psql, ["-h", password ? "127.0.0.1" : socketDir, "-p", String(port), "-U", user, "-d", database, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t"], {
      input: statements,
      encoding: "utf8",
      env: { ...process.env, ...(password ? { PGPASSWORD: password } : {}) },
    });
  const standby: Standby = {
    port,
    socketDir,
    data,
    sql(statements) {
      const r = run("postgres", undefined, statements);
      if (r.status !== 0) throw new Error(`SQL on the replica failed: ${r.stderr}`);
      return r.stdout.trim();
    },
    sqlAs: (user, password, statements) => {
      const r = run(user, password, statements);
      return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGINT");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
    },
  };
  try {
    await waitFor("the replica to accept connections", () => run("postgres", undefined, "SELECT 1").status === 0, 90_000, 300);
  } catch (err) {
    await standby.stop();
    throw new Error(`${(err as Error).message}\n${log.join("").slice(-3000)}`);
  }
  return standby;
}

/** Another server of the prod stack, for a replica there. */
const REPLICA_SERVER = { host: "replica.bbaegok.kr", ssh: { user: "deploy", port: 22, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIReplica" }, dataDir: "/srv/bbaegok" };

/**
 * The backup script of the prod stack given one replica of its service
 * database on `engine` (only that database kept), with the uploader beside
 * it; the environment points it at the rendered replica.sh in `dir`.
 */
export function renderReplicatedBackupScript(
  dir: string,
  engine: StackConfig["database"]["engine"],
  maxLagSeconds: number,
  { elsewhere = false, replicaPort }: { elsewhere?: boolean; replicaPort?: number } = {},
): { script: string; bucket: string } {
  const config = loadStack("prod").config;
  const database = replicatedDatabase(engine, maxLagSeconds);
  // `elsewhere`: the replica on another server, over a link at LINK's addresses (the backup checks it and dumps it over the link).
  const replicas = elsewhere ? database.replicas.map((r) => ({ ...r, server: REPLICA_SERVER, link: { type: "wireguard" as const, primaryAddress: LINK.primary, replicaAddress: LINK.replica, port: LINK.port } })) : database.replicas;
  const replicated = { ...config, database: { ...database, replicas, name: config.database.name } };
  const targets = stackBackupTargets(replicated, "prod")
    .filter((t) => t.name === config.database.name)
    // A test's server listens on a port of its own, not the engine's (the program publishes the replica's port as it is).
    .map((t) => (replicaPort && t.replica?.link ? { ...t, replica: { ...t.replica, link: { ...t.replica.link, port: replicaPort } } } : t));
  const script = join(dir, "backup.sh");
  writeFileSync(script, backupScript({ service: config.service, stack: "prod", backup: config.backup, targets, paths: backupPaths(config.service, "prod", config.server.dataDir) }), { mode: 0o755 });
  writeFileSync(join(dir, "s3-put.py"), uploaderScript(), { mode: 0o755 });
  return { script, bucket: config.backup.bucket };
}

/**
 * The PostgreSQL replication password files in `dir`, as the containers see
 * them: the password, and libpq's file for the replica (its uid's, 0400).
 */
export function writePostgresReplicationSecrets(dir: string): void {
  chmodSync(dir, 0o755);
  const password = generatedPassword();
  writeFileSync(join(dir, "replication_password"), `${password}\n`, { mode: 0o400 });
  const pgpass = join(dir, "replication.pgpass");
  writeFileSync(pgpass, replicationPgpass(password), { mode: 0o400 });
  const { uid, gid } = uidOf(POSTGRES_OS_USER);
  chownSync(pgpass, uid, gid);
}

/** The environment of the replicated backup script: the replica's hook for both scripts, moto, a lock and the ping URL file in `dir`. */
export function replicatedBackupEnv(dir: string, hook: Record<string, string>, replicaScriptPath: string, s3: MotoServer): Record<string, string> {
  return {
    ...hook,
    BACKUP_DB_EXEC: hook.REPLICA_DB_EXEC!,
    BACKUP_REPLICA_SCRIPT: replicaScriptPath,
    BACKUP_AWS_CREDENTIALS_FILE: s3.credentialsFile("moto"),
    BACKUP_S3_ENDPOINT_URL: s3.endpoint,
    BACKUP_LOCK_FILE: join(dir, "backup.lock"),
    BACKUP_PING_URL_FILE: join(dir, "ping-url"),
  };
}

/** The newest manifest of the prod stack's database `database` in `bucket`. */
export function newestManifest(s3: MotoServer, bucket: string, database: string): BackupManifest {
  const key = s3.keys(bucket, `prod/${database}/`).filter((k) => k.endsWith(".manifest.json")).sort().at(-1);
  if (!key) throw new Error(`no manifest under s3://${bucket}/prod/${database}/`);
  return JSON.parse(s3.get(bucket, key).toString("utf8")) as BackupManifest;
}

/**
 * A MariaDB primary and replica on loopback as the program starts them (the
 * primary's replication flags; the replica's flags and its role file), each
 * initialised as the image does from its environment (the database and the
 * app's login; the replica's outside its binary log, as it keeps its own
 * accounts), and the password files the containers see under `dir`. Not
 * replicating yet: `replica.sh setup` does that.
 */
export async function startMariaDbPair(dir: string, options: { database: string; appPassword: string; memoryMb: number }): Promise<{ primary: MariaDb; replica: MariaDb }> {
  const started = await Promise.allSettled([startMariaDb(primaryReplicationFlags("mariadb")), startMariaDbReplica(dir, options)]);
  const [primary, replica] = started.map((s) => (s.status === "fulfilled" ? s.value : undefined));
  // One that failed to start must not leave the other running: the test file's after() never had them, and a
  // running server keeps the file's process (and the whole run) from ever ending.
  const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (!primary || !replica) {
    await Promise.all([primary?.stop(), replica?.stop()]);
    throw failed!.reason;
  }
  try {
    primary.sql(mariaDbImageInit(options));
  } catch (err) {
    await Promise.all([primary.stop(), replica.stop()]);
    throw err;
  }
  writeFileSync(join(dir, "db_root_password"), "unused-root-uses-the-socket\n", { mode: 0o400 });
  writeFileSync(join(dir, "replication_password"), `${generatedPassword()}\n`, { mode: 0o400 });
  return { primary, replica };
}

/** What the image makes of a new server from its environment: the database and the app's login. */
function mariaDbImageInit({ database, appPassword }: { database: string; appPassword: string }): string {
  return `CREATE DATABASE ${database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER '${database}'@'%' IDENTIFIED BY '${appPassword}';
GRANT ALL ON ${database}.* TO '${database}'@'%';`;
}

/** A new MariaDB replica's server (a new container on a new volume): the replica's flags and role file, the image's init outside its binary log. */
export async function startMariaDbReplica(dir: string, options: { database: string; appPassword: string; memoryMb: number }): Promise<MariaDb> {
  const flags = replicaServerFlags({ engine: "mariadb", memoryMb: options.memoryMb, primaryHost: "127.0.0.1", primaryPort: 0, secretsDir: dir, slot: "replica_1" });
  const replica = await startMariaDb(flags, { optionFile: writeReplicaRole(dir) });
  try {
    replica.sql(`SET SESSION sql_log_bin = 0; ${mariaDbImageInit(options)}`);
  } catch (err) {
    await replica.stop();
    throw err;
  }
  return replica;
}

/** The replica script's environment for a pair from startMariaDbPair: each "container" is its server's socket. */
export function mariaDbPairEnv(dir: string, pair: { primary: MariaDb; replica: MariaDb }): Record<string, string> {
  return replicaEnv(dir, { [PRIMARY_CONTAINER]: { MYSQL_UNIX_PORT: pair.primary.socket }, [REPLICA_CONTAINER]: { MYSQL_UNIX_PORT: pair.replica.socket } });
}

/**
 * A MariaDB pair (startMariaDbPair) with `schema` run on the primary, set up
 * replicating by the rendered replica.sh in `dir` (both containers on one
 * server); the script and its environment.
 */
export async function startReplicatedMariaDb(
  dir: string,
  options: { database: string; appPassword: string; memoryMb: number; schema: string },
): Promise<{ primary: MariaDb; replica: MariaDb; script: string; env: Record<string, string> }> {
  const { primary, replica } = await startMariaDbPair(dir, options);
  primary.sql(options.schema, options.database);
  const script = renderReplicaScript(dir, { database: replicatedDatabase("mariadb", 30), replica: { maxLagSeconds: 30 }, primaryHost: "127.0.0.1", primaryPort: primary.port });
  const env = mariaDbPairEnv(dir, { primary, replica });
  await setUpReplica(script, env);
  return { primary, replica, script, env };
}

/** `replica.sh setup`, then `wait`: the replica replicating and caught up, or an error with the script's output. */
export async function setUpReplica(script: string, env: Record<string, string>): Promise<void> {
  for (const step of ["setup", "wait"]) {
    const run = await runReplica(script, env, step);
    if (run.status !== 0) throw new Error(`replica.sh ${step} failed (${run.status}): ${run.stderr}`);
  }
}

/** prod's committed stack file in `project` with one replica and the server's data folder `dataDir` (where the commands find its scripts). */
export function writeReplicatedStackFile(project: string, dataDir: string): string {
  const file = join(project, "Pulumi.prod.yaml");
  mkdirSync(project, { recursive: true });
  writeFileSync(
    file,
    readFileSync(join(REPO, "Pulumi.prod.yaml"), "utf8")
      .replace("dataDir: /srv/bbaegok", `dataDir: ${dataDir}`)
      .replace(/(  bbaegok-infra:database:\n(?:    .*\n)+)/, "$1    replicas:\n      - maxLagSeconds: 30\n"),
  );
  return file;
}
