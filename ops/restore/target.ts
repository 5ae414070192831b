// The database a restore writes into, given as a connection URL, and the
// client programs that reach it. Passwords go to the clients through their
// environment (MYSQL_PWD, PGPASSWORD), never on a command line.
//
// A dump comes from the server, so a compromised server writes it: the
// clients run with nothing a dump could use against this machine or the
// target's server (MariaDB's --sandbox, a PostgreSQL role without superuser).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { DatabaseEngine } from "../../stacks/config/schema.js";
import { MYSQL_OBJECTS_SQL, MYSQL_TABLES_SQL, PG_COUNTS_SQL, PG_OBJECTS_SQL } from "../../infra/backup/render.js";
import { BackupError } from "./backups.js";

export type EngineFamily = "mysql" | "postgres";

export interface RestoreTarget {
  family: EngineFamily;
  user: string;
  password: string | undefined;
  host: string;
  port: number;
  database: string;
  /** MySQL/MariaDB: the server's socket file; PostgreSQL: the socket directory. */
  socket: string | undefined;
  /** The URL without its password, for messages. */
  shown: string;
}

export const PASSWORD_HELP = "set MYSQL_PWD (MySQL/MariaDB) or PGPASSWORD (PostgreSQL) in the environment, or pass --password-file <file>";

export const TARGET_HELP =
  "mariadb://USER@HOST:PORT/DATABASE, mysql://…, or postgres://USER@HOST:PORT/DATABASE (a PostgreSQL user without SUPERUSER); " +
  `add ?socket=PATH for a local socket; no password in the URL: ${PASSWORD_HELP}`;

export function familyOf(engine: DatabaseEngine): EngineFamily {
  return engine === "postgres" ? "postgres" : "mysql";
}

/**
 * The target from `--target`. A password in the URL is refused: it would be
 * on the command line (ps, shell history); it comes from the client's own
 * variable or from `passwordFile` (its first line).
 */
export function parseTarget(text: string, options: { passwordFile?: string } = {}): RestoreTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // The text itself may hold a password: it is not repeated.
    throw new BackupError(`--target is not a connection URL: expected ${TARGET_HELP}`);
  }
  if (url.password) {
    throw new BackupError(`--target ${redact(url)} holds a password, which would show in ps and your shell history: remove it from the URL and ${PASSWORD_HELP}`);
  }
  const scheme = url.protocol.replace(/:$/, "");
  const family: EngineFamily | undefined = scheme === "mariadb" || scheme === "mysql" ? "mysql" : scheme === "postgres" || scheme === "postgresql" ? "postgres" : undefined;
  if (!family) throw new BackupError(`--target: unknown engine "${scheme}": expected ${TARGET_HELP}`);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (!database || database.includes("/")) throw new BackupError(`--target "${redact(url)}" names no database: expected ${TARGET_HELP}`);
  const user = decodeURIComponent(url.username) || (family === "postgres" ? "postgres" : "root");
  const socket = url.searchParams.get("socket") ?? undefined;
  return {
    family,
    user,
    password: options.passwordFile === undefined ? undefined : readPasswordFile(options.passwordFile),
    host: url.hostname || "127.0.0.1",
    port: url.port ? Number(url.port) : family === "postgres" ? 5432 : 3306,
    database,
    socket,
    shown: redact(url),
  };
}

function readPasswordFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new BackupError(`--password-file ${path} cannot be read: ${(err as Error).message}`);
  }
  const password = text.split(/\r?\n/)[0] ?? "";
  if (password === "") throw new BackupError(`--password-file ${path}: its first line is empty; write the target's password there`);
  return password;
}

function redact(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password) copy.password = "***";
  return copy.href;
}

/** The environment a client needs: the password, if any, as its variable. */
export function clientEnv(t: RestoreTarget): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (t.password !== undefined) env[t.family === "postgres" ? "PGPASSWORD" : "MYSQL_PWD"] = t.password;
  return env;
}

const MARIADB_CLIENT_HELP = "MariaDB's client 10.5.25, 10.6.18, 10.11.8, 11.0.6, 11.1.5, 11.2.4, 11.4.2 or later (apt-get install mariadb-client), which restores MySQL dumps too";

/**
 * The MySQL/MariaDB client, only if it has --sandbox: without it a dump's
 * `\!` (system) lines run as the operator, on the machine holding the admin
 * keys. Oracle's mysql client has no --sandbox and is refused.
 */
function mysqlClient(): string {
  const candidate = ["mariadb", "mysql"].find((name) => spawnSync("sh", ["-c", `command -v ${name}`]).status === 0);
  if (!candidate) throw new BackupError(`restoring a MySQL/MariaDB backup needs ${MARIADB_CLIENT_HELP}`);
  const help = spawnSync(candidate, ["--no-defaults", "--help"], { encoding: "utf8" });
  if (!/^\s*--sandbox\b/m.test(help.stdout ?? "")) {
    const version = (help.stdout ?? "").split("\n")[0]?.trim() || `${candidate} (its --help did not run: ${help.error?.message ?? help.stderr})`;
    throw new BackupError(`the ${candidate} client here (${version}) has no --sandbox, so a dump's \\! lines would run commands on this machine; restoring needs ${MARIADB_CLIENT_HELP}`);
  }
  return candidate;
}

function connectionArgs(t: RestoreTarget): string[] {
  if (t.family === "postgres") return ["-h", t.socket ?? t.host, "-p", String(t.port), "-U", t.user, "-d", t.database];
  return [...(t.socket ? [`--socket=${t.socket}`] : [`--host=${t.host}`, `--port=${t.port}`, "--protocol=TCP"]), `--user=${t.user}`];
}

/** The client command that reads SQL on stdin, with its arguments. */
export function sqlCommand(t: RestoreTarget): [string, string[]] {
  if (t.family === "postgres") return ["psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", ...connectionArgs(t)]];
  return [mysqlClient(), ["--default-character-set=utf8mb4", "--batch", "--skip-column-names", ...connectionArgs(t), t.database]];
}

/** Runs SQL on the target; returns stdout, throws a sentence with the client's error. */
export function querySql(t: RestoreTarget, sql: string): string {
  const [command, args] = sqlCommand(t);
  const result = spawnSync(command, args, { input: sql, env: clientEnv(t), encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw new BackupError(`${command} could not run: ${result.error.message}`);
  if (result.status !== 0) throw new BackupError(`the target ${t.shown} refused a query: ${result.stderr.trim()}`);
  return result.stdout;
}

/**
 * Why this machine's pg_restore cannot read a dump taken by the server of
 * `serverVersion` (the manifest's; pg_dump ran beside that server, in its
 * image), or undefined. pg_restore reads archives of its own major version
 * and older only: Debian 12's pg_restore 15 refuses a PostgreSQL 16 dump
 * ("unsupported version (1.15) in file header"), and would say so only after
 * the download.
 */
export function pgRestoreProblem(serverVersion: string, local: string | null = localPgRestoreVersion()): string | undefined {
  const dumped = /^(\d+)/.exec(serverVersion.trim())?.[1];
  if (!dumped) return undefined;
  const have = local && /\(PostgreSQL\) (\d+)/.exec(local)?.[1];
  if (!have) return `restoring a PostgreSQL ${dumped} dump needs pg_restore ${dumped} or later, and none runs here${local ? ` (${local})` : ""}: install postgresql-client-${dumped} (apt.postgresql.org for Debian)`;
  if (Number(have) >= Number(dumped)) return undefined;
  return `the dump comes from PostgreSQL ${serverVersion.trim()} and pg_restore here is ${have} (${local!.trim()}), which cannot read it; install postgresql-client-${dumped} (apt.postgresql.org for Debian) and restore again`;
}

/** `pg_restore --version`'s line, or null when none runs here. */
function localPgRestoreVersion(): string | null {
  const run = spawnSync("pg_restore", ["--version"], { encoding: "utf8" });
  return run.status === 0 ? run.stdout.trim() : null;
}

/**
 * The command a restore pipes the decompressed dump into. A PostgreSQL
 * target whose user could run programs on its server is refused here, at the
 * one place every restore passes before the dump's first byte is sent.
 */
export function restoreCommand(t: RestoreTarget, options: { force: boolean }): [string, string[]] {
  if (t.family === "postgres") {
    refusePrivilegedTarget(t);
    // One transaction: a failed restore leaves the target as it was.
    // --no-owner: the objects belong to the target's user, which need not be
    // (and must not be able to become) the roles the dump names.
    const clean = options.force ? ["--clean", "--if-exists"] : [];
    return ["pg_restore", ["--exit-on-error", "--single-transaction", "--no-owner", ...clean, ...connectionArgs(t)]];
  }
  // --sandbox: a `\!`, `system`, `\.` or `\T` line fails the restore instead of running.
  return [mysqlClient(), ["--sandbox", "--default-character-set=utf8mb4", "--max-allowed-packet=1G", ...connectionArgs(t), t.database]];
}

/**
 * Why a client failed, in one line: its first error (PostgreSQL's comes
 * before many lines of context) and its last line (pg_restore's names the
 * statement), else its last lines.
 */
export function clientFailure(stderr: string): string {
  const lines = stderr.trim().split("\n").filter((l) => l.trim() !== "");
  const first = lines.find((l) => /ERROR|error/.test(l));
  const last = lines.at(-1);
  if (first === undefined) return lines.slice(-5).join(" ");
  return first === last || last === undefined ? first : `${first} … ${last}`;
}

/** Roles whose members may run programs or touch files on the database server (COPY … PROGRAM, COPY … TO '<file>'). */
const PG_SERVER_ROLES = ["pg_execute_server_program", "pg_write_server_files", "pg_read_server_files"];

/**
 * Refuses a PostgreSQL target whose user could run a program on the database
 * server: the dump's SQL runs with that user's rights, and a superuser's (or a
 * member of the roles above, or one with CREATEROLE, which could grant those)
 * include `COPY … TO PROGRAM`.
 */
function refusePrivilegedTarget(t: RestoreTarget): void {
  const sql =
    "SELECT rolsuper, rolcreaterole, " +
    PG_SERVER_ROLES.map((r) => `pg_has_role(current_user, '${r}', 'MEMBER')`).join(", ") +
    " FROM pg_roles WHERE rolname = current_user;";
  const [superuser, createRole, ...members] = querySql(t, sql).trim().split("|");
  const powers = [
    ...(superuser === "t" ? ["SUPERUSER"] : []),
    ...(createRole === "t" ? ["CREATEROLE"] : []),
    ...PG_SERVER_ROLES.filter((_, i) => members[i] === "t").map((r) => `member of ${r}`),
  ];
  if (powers.length > 0) {
    throw new BackupError(
      `the target's user "${t.user}" (${t.shown}) is ${powers.join(", ")}: the dump's SQL runs with its rights, which include running programs on the database server (COPY … TO PROGRAM). ` +
        `Restore as a role without them, e.g. the database's owner: CREATE ROLE restorer LOGIN; CREATE DATABASE ${t.database} OWNER restorer; then --target postgres://restorer@…/${t.database}`,
    );
  }
}

/** Names of what the target database already holds (tables, views, routines…); empty when it holds nothing. */
export function existingObjects(t: RestoreTarget): string[] {
  if (t.family === "postgres") {
    return [...parseRows(querySql(t, PG_COUNTS_SQL)).map(([name]) => `table ${name}`), ...parseRows(querySql(t, PG_OBJECTS_SQL)).map(([type, name]) => `${type} ${name}`)];
  }
  return [
    ...querySql(t, MYSQL_TABLES_SQL).split("\n").filter(Boolean).map((name) => `table ${name}`),
    ...parseRows(querySql(t, MYSQL_OBJECTS_SQL)).map(([type, name]) => `${type} ${name}`),
  ];
}

function parseRows(text: string): [string, string][] {
  return text
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => {
      const [a = "", b = ""] = line.split("\t");
      return [a, b];
    });
}

/** Every table of the target with its row count, and every object, as the manifest lists them. */
export function describeTarget(t: RestoreTarget): { tables: { name: string; rows: number }[]; objects: { type: string; name: string }[] } {
  if (t.family === "postgres") {
    return {
      tables: parseRows(querySql(t, PG_COUNTS_SQL)).map(([name, rows]) => ({ name, rows: Number(rows) })),
      objects: parseRows(querySql(t, PG_OBJECTS_SQL)).map(([type, name]) => ({ type, name })),
    };
  }
  const names = querySql(t, MYSQL_TABLES_SQL).split("\n").filter(Boolean);
  const counts = names.length === 0 ? [] : parseRows(querySql(t, names.map((n) => `SELECT '${n.replace(/'/g, "''")}', COUNT(*) FROM \`${n.replace(/`/g, "``")}\`;`).join("\n")));
  return {
    tables: counts.map(([name, rows]) => ({ name, rows: Number(rows) })),
    objects: parseRows(querySql(t, MYSQL_OBJECTS_SQL)).map(([type, name]) => ({ type, name })),
  };
}
