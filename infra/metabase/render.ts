// Pure renderers for Metabase: the read-only database user it reads through
// (SQL for each engine, idempotent), the commands that apply it inside the
// database container, and the first-run setup through Metabase's setup API.
import type { DatabaseEngine, StackConfig } from "../../stacks/config/schema.js";
import { DATABASE_ALIAS, PG_UNLOGGED_STATEMENTS, ROOT_PASSWORD_FILE, SECRETS_MOUNT } from "../database/render.js";

/** The login Metabase uses on the service database: SELECT and nothing else. */
export const READONLY_USER = "metabase_ro";

/** Quotes a string literal for SQL (both engines); passwords are generated alphanumerics, this is defence in depth. */
export function sqlString(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

function mysqlGrantSql(db: StackConfig["database"], tables: readonly string[], password: string): string {
  const user = `'${READONLY_USER}'@'%'`;
  const grants =
    tables.length === 0
      ? [`GRANT SELECT ON \`${db.name}\`.* TO ${user};`]
      : tables.map((t) => `GRANT SELECT ON \`${db.name}\`.\`${t}\` TO ${user};`);
  return [
    `CREATE USER IF NOT EXISTS ${user} IDENTIFIED BY ${sqlString(password)};`,
    `ALTER USER ${user} IDENTIFIED BY ${sqlString(password)};`,
    // Start from nothing every time, so a table removed from the list loses its grant.
    `REVOKE ALL PRIVILEGES, GRANT OPTION FROM ${user};`,
    ...grants,
    "FLUSH PRIVILEGES;",
    "",
  ].join("\n");
}

function postgresGrantSql(db: StackConfig["database"], tables: readonly string[], password: string): string {
  const role = READONLY_USER;
  const grants =
    tables.length === 0
      ? [
          `GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role};`,
          // Tables the app creates later are readable too.
          `ALTER DEFAULT PRIVILEGES FOR ROLE ${db.user} IN SCHEMA public GRANT SELECT ON TABLES TO ${role};`,
        ]
      : [
          `ALTER DEFAULT PRIVILEGES FOR ROLE ${db.user} IN SCHEMA public REVOKE SELECT ON TABLES FROM ${role};`,
          ...tables.map((t) => `GRANT SELECT ON public.${t} TO ${role};`),
        ];
  return [
    PG_UNLOGGED_STATEMENTS,
    "DO $$ BEGIN",
    `  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') THEN CREATE ROLE ${role} LOGIN; END IF;`,
    "END $$;",
    `ALTER ROLE ${role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD ${sqlString(password)};`,
    // Even a mistaken grant cannot write: every transaction of this role is read-only.
    `ALTER ROLE ${role} SET default_transaction_read_only = on;`,
    `REVOKE ALL ON DATABASE ${db.name} FROM ${role};`,
    `GRANT CONNECT ON DATABASE ${db.name} TO ${role};`,
    // Before PostgreSQL 15 every role may create tables in public.
    "REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
    `REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${role};`,
    `REVOKE ALL ON SCHEMA public FROM ${role};`,
    `GRANT USAGE ON SCHEMA public TO ${role};`,
    ...grants,
    "",
  ].join("\n");
}

/**
 * SQL that creates or updates the read-only user: SELECT on the service schema
 * (or only `tables`), nothing else. Running it twice changes nothing.
 */
export function readOnlyUserSql(db: StackConfig["database"], tables: readonly string[], password: string): string {
  return db.engine === "postgres" ? postgresGrantSql(db, tables, password) : mysqlGrantSql(db, tables, password);
}

/**
 * The same login on a MariaDB/MySQL replica, which keeps its own accounts (the
 * `mysql` schema is not replicated): outside the replica's binary log, so its
 * GTIDs stay the primary's alone. (A PostgreSQL standby has the primary's roles.)
 */
export function replicaReadOnlyUserSql(db: StackConfig["database"], tables: readonly string[], password: string): string {
  return `SET SESSION sql_log_bin = 0;\n${mysqlGrantSql(db, tables, password)}`;
}

/** Runs SQL from stdin as the database's administrator, inside its container. */
export function adminSqlCommand(engine: DatabaseEngine, container: string, database: string): string {
  if (engine === "postgres") {
    return `docker exec -i ${container} psql -v ON_ERROR_STOP=1 --quiet -U postgres -d ${database}`;
  }
  const client = engine === "mariadb" ? "mariadb" : "mysql";
  return `docker exec -i ${container} sh -c 'MYSQL_PWD="$(cat ${SECRETS_MOUNT}/${ROOT_PASSWORD_FILE})" exec ${client} -uroot --batch'`;
}

/** Where Metabase's own secrets are mounted inside its container. */
export const METABASE_SECRETS_MOUNT = "/run/secrets/metabase";

/** The entrypoint's secrets: the environment variable Metabase reads, from the file of that name under METABASE_SECRETS_MOUNT. */
const METABASE_ENV_SECRETS = [
  ["MB_DB_PASS", "app_db_password"],
  ["MB_ENCRYPTION_SECRET_KEY", "encryption_key"],
] as const;

/**
 * Exports Metabase's secrets from files, then runs the image's own
 * entrypoint: kept out of `docker inspect` and the state's container
 * definition. (The image's run_metabase.sh reads MB_DB_PASS_FILE itself, but
 * not the encryption key: one way for both.) A missing or empty file stops
 * the container, naming it: with an empty key Metabase would start and store
 * connection details unencrypted, or fail to read those it encrypted.
 */
export function metabaseEntrypoint(): string[] {
  const reads = METABASE_ENV_SECRETS.map(
    ([env, file]) =>
      `${env}=$(cat ${METABASE_SECRETS_MOUNT}/${file}) && [ -n "$${env}" ] || { echo "metabase: cannot read ${METABASE_SECRETS_MOUNT}/${file}, or it is empty: not starting" >&2; exit 1; }`,
  );
  return ["/bin/sh", "-c", `${reads.join("; ")}; export ${METABASE_ENV_SECRETS.map(([env]) => env).join(" ")}; exec /app/run_metabase.sh`];
}

export interface SetupArgs {
  engine: DatabaseEngine;
  databaseName: string;
  databasePort: number;
  /** Where Metabase reads the service database: the read replica's alias when the stack has one (analytics never loads the primary), else the primary's. */
  databaseHost?: string;
  adminEmail: string;
  siteName: string;
}

const METABASE_ENGINE: Record<DatabaseEngine, string> = { mariadb: "mysql", mysql: "mysql", postgres: "postgres" };
/**
 * Connection options Metabase appends to the JDBC URL (`additional-options`).
 * MySQL 8 logins use caching_sha2_password, whose login without TLS needs the
 * server's RSA key; Metabase's mysql driver (MariaDB's Connector/J) asks for
 * it only when told, so its connection check would refuse the read-only login
 * (Metabase issues 12545, 15436) and the setup fail with a 400. MariaDB and
 * PostgreSQL need nothing.
 */
const METABASE_OPTIONS: Record<DatabaseEngine, string | undefined> = { mariadb: undefined, mysql: "allowPublicKeyRetrieval=true", postgres: undefined };

/**
 * Setup, run inside the Metabase container: waits for Metabase, creates the
 * admin if there is none yet (`POST /api/setup`), then, as that admin, adds
 * the service database through the read-only login unless Metabase already
 * has a data source of that name (`POST /api/database`). Metabase's setup API
 * takes only the admin and the site's settings: a `database` in its body is
 * accepted and ignored (Metabase's setup_rest/api.clj), so the data source is
 * its own request. Idempotent; a Metabase whose admin password was changed
 * there is left as it is, saying so. The passwords go in request bodies on
 * curl's stdin and the session in a header file: none is on a command line.
 */
export function setupScript(args: SetupArgs): string {
  const secret = (name: string) => `$(cat ${METABASE_SECRETS_MOUNT}/${name})`;
  const host = args.databaseHost ?? DATABASE_ALIAS;
  return `set -eu
base=http://127.0.0.1:3000
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# call <method> <path> [curl options…]: Metabase's answer on stdout; on an
# HTTP error, what was asked and what Metabase answered on stderr (its first
# 2,000 bytes: the command provider stops at a 64 KiB line), and fails.
call() {
  method=$1 path=$2
  shift 2
  code=$(curl -sS -o "$work/answer" -w '%{http_code}' -X "$method" "$@" "$base$path") || return 1
  printf '%s' "$code" > "$work/code"
  case $code in
    2??) cat "$work/answer" ;;
    *) echo "Metabase answered $method $path with HTTP $code: $(head -c 2000 "$work/answer")" >&2; return 1 ;;
  esac
}
# The first string value of a key in the JSON on stdin.
value() { sed -n 's/.*"'"$1"'":"\\([^"]*\\)".*/\\1/p'; }
i=0
until curl -fsS "$base/api/health" >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -gt 120 ]; then echo "Metabase did not become healthy in 10 minutes" >&2; exit 1; fi
  sleep 5
done
props=$(call GET /api/session/properties)
case "$props" in
  *'"has-user-setup":true'*)
    if ! answer=$(cat <<JSON | call POST /api/session -H 'Content-Type: application/json' --data-binary @-
{"username":"${args.adminEmail}","password":"${secret("admin_password")}"}
JSON
    ); then
      # 401: the password was changed in Metabase; anything else is a failure.
      [ "$(cat "$work/code" 2>/dev/null)" = 401 ] || exit 1
      echo "Metabase is set up, but its admin ${args.adminEmail} cannot log in with the stack's password (changed in Metabase?): its data sources are left as they are" >&2
      exit 0
    fi ;;
  *)
    token=$(printf '%s' "$props" | value setup-token)
    if [ -z "$token" ]; then echo "Metabase offered no setup token" >&2; exit 1; fi
    answer=$(cat <<JSON | call POST /api/setup -H 'Content-Type: application/json' --data-binary @-
{"token":"$token",
 "user":{"email":"${args.adminEmail}","password":"${secret("admin_password")}","first_name":"Admin","last_name":"${args.siteName}"},
 "prefs":{"site_name":"${args.siteName}","allow_tracking":false}}
JSON
    )
    echo "Metabase admin created: ${args.adminEmail}" ;;
esac
session=$(printf '%s' "$answer" | value id)
if [ -z "$session" ]; then echo "Metabase answered with no session: $(printf '%s' "$answer" | head -c 2000)" >&2; exit 1; fi
printf 'X-Metabase-Session: %s\\n' "$session" > "$work/session"
databases=$(call GET /api/database -H @"$work/session")
case "$databases" in
  *'"name":"${args.siteName}"'*) echo "Metabase already has the data source ${args.siteName}; nothing to do"; exit 0 ;;
esac
cat <<JSON | call POST /api/database -H @"$work/session" -H 'Content-Type: application/json' --data-binary @- >/dev/null
{"name":"${args.siteName}","engine":"${METABASE_ENGINE[args.engine]}",
 "details":{"host":"${host}","port":${args.databasePort},"dbname":"${args.databaseName}","user":"${READONLY_USER}","password":"${secret("readonly_password")}"${METABASE_OPTIONS[args.engine] ? `,"additional-options":"${METABASE_OPTIONS[args.engine]}"` : ""}}}
JSON
echo "Metabase reads ${args.databaseName} at ${host} as ${READONLY_USER} (read-only): data source ${args.siteName}"
`;
}
