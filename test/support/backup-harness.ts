// What the backup tests share: the real scripts rendered for a committed
// stack, and stand-ins for the two things only the server has (`docker exec`
// into the database container, and the drill's throwaway container) that
// point the SAME scripts at the test's own local servers.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MYSQL_DUMP_OPTIONS, backupPaths, backupScript, restoreDrillScript, stackBackupTargets, uploaderScript, type BackupTarget } from "../../infra/backup/render.js";
import { shellQuote } from "../../infra/server/render.js";
import { REPO } from "./project.js";
import { loadStack } from "../../stacks/config/load.js";

export interface RenderedScripts {
  backup: string;
  drill: string;
  targets: BackupTarget[];
  bucket: string;
}

/**
 * Renders the committed stack's backup and drill scripts, keeping only the
 * targets `keep` accepts, with the uploader beside them as on the server.
 */
export function renderStackScripts(stack: string, dir: string, keep: (t: BackupTarget) => boolean): RenderedScripts {
  const config = loadStack(stack).config;
  const targets = stackBackupTargets(config, stack).filter(keep);
  const spec = { service: config.service, stack, backup: config.backup, targets, paths: backupPaths(config.service, stack, config.server.dataDir) };
  const backup = join(dir, "backup.sh");
  const drill = join(dir, "restore-drill.sh");
  writeFileSync(backup, backupScript(spec), { mode: 0o755 });
  writeFileSync(drill, restoreDrillScript(spec), { mode: 0o755 });
  writeFileSync(join(dir, "s3-put.py"), uploaderScript(), { mode: 0o755 });
  return { backup, drill, targets, bucket: config.backup.bucket };
}

/** How a client reaches a local test server: MYSQL_UNIX_PORT, or PGHOST and PGPORT. */
export type ClientEnv = Record<string, string>;

function exportLines(env: ClientEnv): string {
  return Object.entries(env)
    .map(([k, v]) => `export ${k}=${shellQuote(v)}`)
    .join("\n");
}

// Debian's client configuration names the system socket, which beats
// MYSQL_UNIX_PORT: the socket goes on the command line, right after the program.
// The local server's socket goes after the first MariaDB/MySQL program named,
// which may come wrapped (the backup script's stdbuf wrapper).
const SOCKET_ARG = `if [[ -n \${MYSQL_UNIX_PORT:-} ]]; then
  args=() added=false
  for word in "$@"; do
    args+=("$word")
    if [[ $added == false && ( $word == mariadb* || $word == mysql* ) ]]; then args+=(--socket="$MYSQL_UNIX_PORT"); added=true; fi
  done
  set -- "\${args[@]}"
fi`;

/**
 * Stands in for `docker exec <container>`: runs the command with the local
 * server's client environment. With TEST_KILL_DUMP_AFTER=<bytes> set, the
 * dump program is killed with SIGKILL after that many bytes went through.
 */
export function writeDbExecHook(dir: string, env: ClientEnv): string {
  const path = join(dir, "db-exec");
  writeFileSync(
    path,
    `#!/usr/bin/env bash
# Test stand-in for docker exec: $1 is the container, the rest the command.
shift
${exportLines(env)}
${SOCKET_ARG}
# The dump may come wrapped (the script's stdbuf wrapper): look at every word.
is_dump=false is_psql=false
for word in "$@"; do
  [[ $word == mariadb-dump || $word == pg_dump ]] && is_dump=true
  [[ $word == psql ]] && is_psql=true
done
# TEST_SESSION_DOWN: the PostgreSQL session (psql reading SQL from stdin: no -c)
# connects where no server is, so it fails for real just after the version check.
if [[ -n \${TEST_SESSION_DOWN:-} && $is_psql == true && " $* " != *" -c "* ]]; then export PGHOST=$TEST_SESSION_DOWN; fi
if [[ -n \${TEST_KILL_DUMP_AFTER:-} && $is_dump == true ]]; then
  fifo=$(mktemp -u)
  mkfifo "$fifo"
  "$@" >"$fifo" &
  pid=$!
  # Holding the FIFO open keeps the dump from dying of SIGPIPE before the SIGKILL.
  exec 3<"$fifo"
  head -c "$TEST_KILL_DUMP_AFTER" <&3
  kill -KILL "$pid"
  wait "$pid"
  status=$?
  rm -f "$fifo"
  exit "$status"
fi
exec "$@"
`,
  );
  chmodSync(path, 0o755);
  return path;
}

/** Stands in for the drill's throwaway container: a fresh `restore_drill` database on the local server. */
export function writeDrillHook(dir: string, env: ClientEnv): string {
  const path = join(dir, "drill-db");
  writeFileSync(
    path,
    `#!/usr/bin/env bash
# Test stand-in for the restore drill's throwaway server: $1 start|exec|stop, $2 engine.
set -euo pipefail
action=$1 engine=$2
shift 2
${exportLines(env)}
${SOCKET_ARG}
case $action in
  start)
    if [[ $engine == postgres ]]; then
      # A fresh container has no drill role either: the script creates it.
      psql -X -q -U postgres -d postgres -c 'DROP DATABASE IF EXISTS restore_drill' -c 'DROP ROLE IF EXISTS restore_drill' -c 'CREATE DATABASE restore_drill'
    else
      mariadb --socket="$MYSQL_UNIX_PORT" -uroot -e 'DROP DATABASE IF EXISTS restore_drill; CREATE DATABASE restore_drill'
    fi ;;
  exec) exec "$@" ;;
  stop)
    if [[ $engine == postgres ]]; then
      psql -X -q -U postgres -d postgres -c 'DROP DATABASE IF EXISTS restore_drill' -c 'DROP ROLE IF EXISTS restore_drill'
    else
      mariadb --socket="$MYSQL_UNIX_PORT" -uroot -e 'DROP DATABASE IF EXISTS restore_drill'
    fi ;;
esac
`,
  );
  chmodSync(path, 0o755);
  return path;
}

/**
 * The PATH the scripts get, as cron (/etc/cron.d sets no more) and sudo's
 * secure_path give them on the server: Debian's own tools, never one that a
 * developer's PATH puts first (a newer AWS CLI or Python from pyenv, say).
 */
export const SERVER_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

let serverToolsChecked = false;

/** Fails loudly, naming the Debian package, when a tool the scripts run is not on SERVER_PATH. */
function requireServerTools(): void {
  if (serverToolsChecked) return;
  for (const [command, pkg] of [["zstd", "zstd"], ["jq", "jq"], ["aws", "awscli"], ["flock", "util-linux"], ["python3", "python3"]] as const) {
    if (spawnSync("sh", ["-c", `command -v ${command}`], { env: { PATH: SERVER_PATH } }).status !== 0) {
      throw new Error(`${command} is required in ${SERVER_PATH} by this test but is not installed. Run: bash scripts/install-test-deps.sh (Debian package: ${pkg})`);
    }
  }
  if (spawnSync("python3", ["-c", "import boto3"], { env: { PATH: SERVER_PATH } }).status !== 0) {
    throw new Error("Debian's python3 has no boto3 module, which the backup's uploader needs. Run: bash scripts/install-test-deps.sh (Debian package: python3-boto3)");
  }
  serverToolsChecked = true;
}

export interface ScriptRun {
  status: number;
  stdout: string;
  stderr: string;
}

/** A script's environment as the server gives it (its PATH alone), with the test's own variables. */
export function serverEnv(env: Record<string, string>): Record<string, string> {
  return { PATH: SERVER_PATH, HOME: process.env.HOME ?? "/root", TMPDIR: process.env.TMPDIR ?? "/tmp", ...env };
}

/** Runs a rendered script with the given environment (added to a clean one), bounded in time. */
export function runScript(script: string, env: Record<string, string>, args: string[] = [], timeoutMs = 120_000): Promise<ScriptRun> {
  requireServerTools();
  return new Promise((resolve) => {
    const child = spawn("bash", [script, ...args], { env: serverEnv(env), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ status: code ?? (signal ? 128 : -1), stdout, stderr });
    });
  });
}

/**
 * Holds `lockPath` with flock in another process until `release`, the way a
 * running backup does; resolves only once the lock is really held.
 */
export async function holdLock(lockPath: string): Promise<{ release(): void }> {
  const holder = spawn("flock", [lockPath, "sleep", "120"], { stdio: "ignore" });
  for (let i = 0; i < 200; i++) {
    if (spawnSync("flock", ["-n", lockPath, "true"]).status !== 0) return { release: () => holder.kill("SIGKILL") };
    await new Promise((r) => setTimeout(r, 25));
  }
  holder.kill("SIGKILL");
  throw new Error(`flock never took ${lockPath}`);
}

/** Runs the backup while another run holds its lock: the run must be refused with exit 75, naming the lock. */
export async function assertBackupRefusedWhileLocked(script: string, env: Record<string, string>): Promise<void> {
  const lock = await holdLock(env.BACKUP_LOCK_FILE!);
  try {
    const run = await runScript(script, env);
    assert.equal(run.status, 75);
    assert.match(run.stderr, /backup of stack prod refused: another run holds .*backup\.lock/);
  } finally {
    lock.release();
  }
}

/** Runs `npm run restore` as the operator would (same entry file), with the operator's S3 environment. */
export function runRestore(args: string[], env: NodeJS.ProcessEnv): Promise<ScriptRun> {
  return runNodeCommand(join(REPO, "ops", "restore.ts"), args, env);
}

export function runNodeCommand(entry: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<ScriptRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", entry, ...args], { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ status: code ?? -1, stdout, stderr });
    });
  });
}

/** The whole database as its own dump tool prints it, for byte-for-byte comparison before and after. */
export function mariadbLogicalDump(socket: string, database: string): string {
  const r = spawnSync(
    "mariadb-dump",
    ["--no-defaults", `--socket=${socket}`, "-uroot", ...MYSQL_DUMP_OPTIONS, database],
    { encoding: "utf8", maxBuffer: 512 * 1024 * 1024 },
  );
  if (r.status !== 0) throw new Error(`mariadb-dump of ${database} failed: ${r.stderr}`);
  return r.stdout;
}

export function postgresLogicalDump(socketDir: string, port: number, database: string): string {
  const r = spawnSync("pg_dump", ["-h", socketDir, "-p", String(port), "-U", "postgres", "-d", database, "--format=plain"], { encoding: "utf8", maxBuffer: 512 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`pg_dump of ${database} failed: ${r.stderr}`);
  // pg_dump (since 15.14/17.6) fences its output with \restrict <random key>: different on every run.
  return r.stdout.replace(/^\\(un)?restrict \S+$/gm, "\\$1restrict <key>");
}

/** A health-check endpoint on 127.0.0.1 that records the paths it is called on. */
export async function startPingServer(): Promise<{ url: string; hits: string[]; stop(): Promise<void> }> {
  const { createServer } = await import("node:http");
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(req.url ?? "");
    res.end("OK");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return { url: `http://127.0.0.1:${port}/ping/test-check`, hits, stop: () => new Promise((resolve) => server.close(() => resolve())) };
}
