// Pure renderers for Metabase: the read-only database user it reads through
// (SQL for each engine, idempotent), the commands that apply it inside the
// database container, and the first-run setup through Metabase's setup API.
import type { DatabaseEngine, StackConfig } from "../../stacks/config/schema.js";
import { DATABASE_ALIAS, ROOT_PASSWORD_FILE, SECRETS_MOUNT } from "../database/render.js";

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

/**
 * Metabase reads its secrets from the environment only; exporting them from
 * files in the entrypoint keeps them out of `docker inspect` and the state's
 * container definition.
 */
export function metabaseEntrypoint(): string[] {
  const read = (name: string) => `"$(cat ${METABASE_SECRETS_MOUNT}/${name})"`;
  return [
    "/bin/sh",
    "-c",
    `export MB_DB_PASS=${read("app_db_password")} MB_ENCRYPTION_SECRET_KEY=${read("encryption_key")}; exec /app/run_metabase.sh`,
  ];
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
 * First-run setup, run inside the Metabase container: waits for Metabase, then
 * — only if no admin exists yet — creates the admin and adds the service
 * database (through the read-only user) with Metabase's setup API.
 * Idempotent: a set-up Metabase is left alone.
 */
export function setupScript(args: SetupArgs): string {
  const secret = (name: string) => `$(cat ${METABASE_SECRETS_MOUNT}/${name})`;
  return `set -eu
base=http://127.0.0.1:3000
i=0
until curl -fsS "$base/api/health" >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -gt 120 ]; then echo "Metabase did not become healthy in 10 minutes" >&2; exit 1; fi
  sleep 5
done
props=$(curl -fsS "$base/api/session/properties")
case "$props" in
  *'"has-user-setup":true'*) echo "Metabase is already set up; nothing to do"; exit 0 ;;
esac
token=$(printf '%s' "$props" | sed -n 's/.*"setup-token":"\\([^"]*\\)".*/\\1/p')
if [ -z "$token" ]; then echo "Metabase offered no setup token" >&2; exit 1; fi
body=$(cat <<JSON
{"token":"$token",
 "user":{"email":"${args.adminEmail}","password":"${secret("admin_password")}","first_name":"Admin","last_name":"${args.siteName}","site_name":"${args.siteName}"},
 "prefs":{"site_name":"${args.siteName}","allow_tracking":false},
 "database":{"engine":"${METABASE_ENGINE[args.engine]}","name":"${args.siteName}","details":{"host":"${args.databaseHost ?? DATABASE_ALIAS}","port":${args.databasePort},"dbname":"${args.databaseName}","user":"${READONLY_USER}","password":"${secret("readonly_password")}"}}}
JSON
)
printf '%s' "$body" | curl -fsS -o /dev/null -H 'Content-Type: application/json' --data-binary @- "$base/api/setup"
echo "Metabase set up: admin ${args.adminEmail}, data source ${args.databaseName} (read-only)"
`;
}
