// The database a restore writes into, given as a connection URL, and the
// client programs that reach it. Passwords go to the clients through their
// environment (MYSQL_PWD, PGPASSWORD), never on a command line.
import { spawnSync } from "node:child_process";
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

export const TARGET_HELP =
  "mariadb://USER@HOST:PORT/DATABASE, mysql://…, or postgres://USER@HOST:PORT/DATABASE; add ?socket=PATH for a local socket; " +
  "the password comes from MYSQL_PWD or PGPASSWORD (or USER:PASSWORD@ in the URL)";

export function familyOf(engine: DatabaseEngine): EngineFamily {
  return engine === "postgres" ? "postgres" : "mysql";
}

export function parseTarget(text: string): RestoreTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BackupError(`--target "${text}" is not a connection URL: expected ${TARGET_HELP}`);
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
    password: url.password ? decodeURIComponent(url.password) : undefined,
    host: url.hostname || "127.0.0.1",
    port: url.port ? Number(url.port) : family === "postgres" ? 5432 : 3306,
    database,
    socket,
    shown: redact(url),
  };
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

function mysqlClient(): string {
  for (const candidate of ["mariadb", "mysql"]) {
    if (spawnSync("sh", ["-c", `command -v ${candidate}`]).status === 0) return candidate;
  }
  throw new BackupError("restoring a MySQL/MariaDB backup needs the mariadb (or mysql) client: apt-get install mariadb-client");
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

/** The command a restore pipes the decompressed dump into. */
export function restoreCommand(t: RestoreTarget, options: { force: boolean }): [string, string[]] {
  if (t.family === "postgres") {
    // One transaction: a failed restore leaves the target as it was.
    const clean = options.force ? ["--clean", "--if-exists"] : [];
    return ["pg_restore", ["--exit-on-error", "--single-transaction", ...clean, ...connectionArgs(t)]];
  }
  return [mysqlClient(), ["--default-character-set=utf8mb4", "--max-allowed-packet=1G", ...connectionArgs(t), t.database]];
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
