// Pure description of the service database container for each engine:
// image, environment, server flags, health check and where its data lives.
// Secrets never appear here: the images read them from files (`*_FILE`).
import type { DatabaseEngine, StackConfig } from "../../stacks/config/schema.js";

/** Where the password files are mounted inside the container. */
export const SECRETS_MOUNT = "/run/secrets";
export const ROOT_PASSWORD_FILE = "db_root_password";
export const APP_PASSWORD_FILE = "db_password";
/** The official images run the server as uid/gid 999; the secret files belong to it. */
export const DATABASE_UID = "999:999";
/** The name the app and Metabase use to reach the database on the data network. */
export const DATABASE_ALIAS = "db";

export interface DatabaseSpec {
  image: string;
  port: number;
  /** The container path of the data volume. */
  dataPath: string;
  envs: string[];
  command: string[];
  healthcheck: string[];
  /** Files the container needs from the server, besides the password files. */
  initFiles: { name: string; content: string }[];
}

/** The collation of MariaDB's and MySQL's servers, and of the app's connections to them (Connector/J's URL). */
export const DATABASE_COLLATION = "utf8mb4_unicode_ci";

/**
 * PostgreSQL logs the text of a statement that fails (`log_min_error_statement`
 * is `error` by default), a password in it too, into the server's log, which
 * `docker logs` shows: a session that sends a password turns that off first
 * (a superuser's setting; the error itself is still logged).
 */
export const PG_UNLOGGED_STATEMENTS = "SET log_min_error_statement = panic;";

/** Where each engine's image keeps its data: the volume's mount in the database's and the replica's containers. */
export const DATA_PATHS: Record<DatabaseEngine, string> = {
  mysql: "/var/lib/mysql",
  mariadb: "/var/lib/mysql",
  postgres: "/var/lib/postgresql/data",
};

/**
 * MariaDB 11.2 and later map a bare `utf8mb4` (a table's `DEFAULT CHARSET=utf8mb4`
 * with no COLLATE, every connection's `SET NAMES utf8mb4`) to the collation
 * `character_set_collations` names, and the official image's config names
 * `uca1400_ai_ci`: without this flag the app's new tables would get another
 * collation than the database's `utf8mb4_unicode_ci` (joins across them fail
 * with "Illegal mix of collations", Korean text sorts and compares
 * differently). Older servers have no such variable and refuse to start with it.
 */
export function mapsCharsetCollations(db: Pick<StackConfig["database"], "engine" | "version">): boolean {
  const [major = 0, minor = 0] = db.version.split(".").map(Number);
  return db.engine === "mariadb" && (major > 11 || (major === 11 && minor >= 2));
}

export function databaseSpec(db: StackConfig["database"]): DatabaseSpec {
  const image = `${db.engine}:${db.version}`;
  const secret = (file: string) => `${SECRETS_MOUNT}/${file}`;
  switch (db.engine) {
    case "mariadb":
    case "mysql": {
      const prefix = db.engine === "mariadb" ? "MARIADB" : "MYSQL";
      return {
        image,
        port: 3306,
        dataPath: DATA_PATHS[db.engine],
        envs: [
          `${prefix}_ROOT_PASSWORD_FILE=${secret(ROOT_PASSWORD_FILE)}`,
          `${prefix}_DATABASE=${db.name}`,
          `${prefix}_USER=${db.user}`,
          `${prefix}_PASSWORD_FILE=${secret(APP_PASSWORD_FILE)}`,
          "TZ=UTC",
        ],
        command: [
          // Korean text and emoji need 4-byte UTF-8.
          "--character-set-server=utf8mb4",
          `--collation-server=${DATABASE_COLLATION}`,
          ...(mapsCharsetCollations(db) ? [`--character-set-collations=utf8mb4=${DATABASE_COLLATION}`] : []),
          "--skip-name-resolve",
          // Half the container's memory for InnoDB's cache leaves room for connections.
          `--innodb-buffer-pool-size=${Math.floor(db.memoryMb / 2)}M`,
        ],
        healthcheck:
          db.engine === "mariadb"
            ? ["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"]
            : ["CMD-SHELL", `MYSQL_PWD="$(cat ${secret(ROOT_PASSWORD_FILE)})" mysqladmin ping -h 127.0.0.1 -uroot --silent`],
        initFiles: [],
      };
    }
    case "postgres":
      return {
        image,
        port: 5432,
        dataPath: DATA_PATHS.postgres,
        envs: [`POSTGRES_PASSWORD_FILE=${secret(ROOT_PASSWORD_FILE)}`, "POSTGRES_USER=postgres", `POSTGRES_DB=${db.name}`, "TZ=UTC"],
        command: ["postgres", "-c", `shared_buffers=${Math.floor(db.memoryMb / 4)}MB`, "-c", "password_encryption=scram-sha-256"],
        // Over TCP: the image's entrypoint first runs a temporary server on the socket only, which must not count as ready.
        healthcheck: ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", "postgres", "-d", db.name],
        // The image creates only the superuser; the app gets its own owner role.
        initFiles: [{ name: "10-app-user.sh", content: postgresAppUserScript(db) }],
      };
  }
}

/**
 * Run once by the postgres image on an empty data directory. psql reads the
 * app's password from its file itself (a backquoted \set runs `cat <file>`):
 * on psql's command line (`--set`) it would be visible to every process on the
 * server (ps). `secretsDir` is for tests; the container has SECRETS_MOUNT.
 */
export function postgresAppUserScript(db: Pick<StackConfig["database"], "name" | "user">, secretsDir = SECRETS_MOUNT): string {
  return `#!/bin/bash
# Creates the application's role and makes it owner of the service database.
set -euo pipefail
if [[ ! -s ${secretsDir}/${APP_PASSWORD_FILE} ]]; then
  echo "10-app-user.sh: the app's password file ${secretsDir}/${APP_PASSWORD_FILE} is missing or empty" >&2
  exit 1
fi
psql -v ON_ERROR_STOP=1 --username postgres --dbname ${db.name} <<'SQL'
${PG_UNLOGGED_STATEMENTS}
\\set app_password \`cat ${secretsDir}/${APP_PASSWORD_FILE}\`
CREATE ROLE ${db.user} LOGIN PASSWORD :'app_password';
ALTER DATABASE ${db.name} OWNER TO ${db.user};
ALTER SCHEMA public OWNER TO ${db.user};
SQL
`;
}

/**
 * What makes Docker recreate the database container when it changes: the
 * image, the server flags and the environment. Exported by the stack, so the
 * next run can tell, before anything happens, that the database will be down.
 * `container`: the promoted replica's name, once it takes the writes (the
 * original's runtime names none, as it always has).
 */
export function databaseRuntime(spec: Pick<DatabaseSpec, "image" | "command" | "envs">, container?: string): string {
  return JSON.stringify({ ...(container ? { container } : {}), image: spec.image, command: spec.command, envs: spec.envs });
}

/** The warning a preview shows when the database container is about to be replaced; undefined when it is not. */
export function replacementNotice(container: string, previous: unknown, current: string, timeouts: { stopSeconds: number; healthySeconds: number }): string | undefined {
  if (typeof previous !== "string" || previous === current) return undefined;
  const before = JSON.parse(previous) as { container?: string; image?: string; command?: string[]; envs?: string[] };
  const after = JSON.parse(current) as { container?: string; image: string; command: string[]; envs: string[] };
  // Another container takes the writes than at the last run (npm run promote): that is no replacement of one.
  if (before.container !== after.container) return undefined;
  const changes = [
    before.image !== after.image ? `image ${before.image} → ${after.image}` : undefined,
    JSON.stringify(before.command) !== JSON.stringify(after.command) ? "server flags" : undefined,
    JSON.stringify(before.envs) !== JSON.stringify(after.envs) ? "environment" : undefined,
  ].filter((c): c is string => c !== undefined);
  return (
    `PLANNED DOWNTIME: the database container ${container} will be replaced (${changes.join(", ")}). ` +
    `The app cannot reach its database from when the old container stops (up to ${timeouts.stopSeconds} s to flush) ` +
    `until the new one is healthy (up to ${timeouts.healthySeconds} s). The data volume is kept. Take a backup first (npm run drill / the nightly backup).`
  );
}
