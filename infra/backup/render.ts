// Pure renderers for database backups: the backup and restore-drill scripts,
// the uploader the backup runs (s3-put.py), the cron entry, the IAM policies
// of the server's two S3 identities, the bucket's policy (TLS only, no
// overwrites, no SSE-C) and
// lifecycle rules, and the credentials file.
// No Pulumi import: tested on its own and by real tools (bash, shellcheck,
// MariaDB, PostgreSQL, S3 API servers, Debian's AWS CLI and boto3, zstd).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { DatabaseEngine, StackConfig } from "../../stacks/config/schema.js";
import { cronFilePath, shellQuote, stackNames } from "../server/render.js";
import { allowedBackupAgeMs, normalizeSchedule } from "./schedule.js";
import { normalCron } from "../../stacks/config/cron.js";
import { DATABASE_UID, SECRETS_MOUNT, databaseSpec } from "../database/render.js";
import { BACKUP_PASSWORD_FILE, BACKUP_USER, linkAddressOfReplica, readReplica, replicaIsPrimary, replicaNames, type ReplicaConfig } from "../replica/render.js";
import { LINK_STALL_SECONDS, linkStallGuardBash } from "../link/render.js";

export type BackupConfig = StackConfig["backup"];

/** One database the stack backs up. */
export interface BackupTarget {
  /** The database's name on its server; also its folder in the bucket: `<stack>/<name>/`. */
  name: string;
  engine: DatabaseEngine;
  /** The container `docker exec` reaches the database in, e.g. `bbaegok-prod-db`. */
  container: string;
  /**
   * The login the dump runs as inside the container: `root` for MySQL/MariaDB
   * (password from the container's own secret file), the superuser role for PostgreSQL.
   */
  adminUser: string;
  /** The image a restore drill starts its throwaway server from: the same engine and version. */
  image: string;
  /**
   * The database's read replica (database.replicas): backed up from it while
   * it is healthy and at most `maxLagSeconds` behind, from `container` otherwise.
   * `link`: it runs on another server; its replication is checked the same
   * way (over the link), and it is dumped over the link, at its link address
   * and port, as the backup login (BACKUP_USER), by the client in the
   * primary's container: this server keeps the backup's tools and
   * credentials, the replica's server does the reading. The dump crosses the
   * link uncompressed, as the writes it replicates do.
   */
  replica?: { container: string; maxLagSeconds: number; link?: { host: string; port: number } };
  /**
   * The database runs on another server: a replica there promoted by npm run
   * promote. Nothing to check: always dumped over the link, at its link
   * address and port, as the backup login (BACKUP_USER), by a one-off client
   * container of `image` on this server's network (the original's container
   * here is fenced and kept stopped), the login's password file mounted
   * from the database's secrets folder here read-only.
   */
  remote?: { host: string; port: number };
}

/** Where one stack's backup pieces live on the server. */
export function backupPaths(service: string, stack: string, dataDir: string) {
  const { prefix, stackDir, secretsDir: stackSecretsDir } = stackNames(service, stack, dataDir);
  const dir = `${stackDir}/backup`;
  const secretsDir = `${stackSecretsDir}/backup`;
  return {
    dir,
    /** The database containers' password files (mounted at SECRETS_MOUNT): a one-off client's, for a promoted replica elsewhere. */
    databaseSecretsDir: `${stackSecretsDir}/db`,
    backupScript: `${dir}/backup.sh`,
    drillScript: `${dir}/restore-drill.sh`,
    /** The backup's uploader (infra/backup/s3-put.py): beside backup.sh, which runs it from there. */
    uploader: `${dir}/s3-put.py`,
    secretsDir,
    /** The writer identity's key: may only put objects under `<stack>/`. */
    credentialsFile: `${secretsDir}/aws-credentials`,
    /** The restore drill's key: may only list and read objects under `<stack>/`. */
    drillCredentialsFile: `${secretsDir}/drill-aws-credentials`,
    pingUrlFile: `${secretsDir}/ping-url`,
    /** One file per stack: a stack's entry never touches another's. */
    cronFile: cronFilePath(service, stack, "backup"),
    lockFile: `/run/lock/${prefix}-backup.lock`,
    drillLockFile: `/run/lock/${prefix}-restore-drill.lock`,
    /** The syslog tag: `journalctl -t bbaegok-prod-backup`. */
    logTag: `${prefix}-backup`,
    drillContainer: `${prefix}-restore-drill`,
    /** The read replica's script (infra/replica), whose `status` picks the backup's source. */
    replicaScript: replicaNames(prefix).script(stackDir),
  };
}
export type BackupPaths = ReturnType<typeof backupPaths>;

/**
 * Every database a stack backs up: the service database and, when Metabase
 * is enabled, Metabase's application database. Container names are the ones
 * infra/database and infra/metabase give their containers.
 */
export function stackBackupTargets(config: Pick<StackConfig, "service" | "server" | "database" | "metabase">, stack: string): BackupTarget[] {
  const names = stackNames(config.service, stack, config.server.dataDir);
  const db = config.database;
  // Promoted (npm run promote): the replica is the primary, backed up as the primary is.
  const promoted = replicaIsPrimary(db);
  // Promoted, no replica is left (readReplica); one on another server is checked, the primary dumped.
  const replica = readReplica(db);
  const targets: BackupTarget[] = [
    {
      name: db.name,
      engine: db.engine,
      container: promoted ? replicaNames(names.prefix).container : names.databaseContainer,
      adminUser: db.engine === "postgres" ? "postgres" : "root",
      image: `${db.engine}:${db.version}`,
      ...(replica ? { replica: replicaTarget(replica, names.prefix, db) } : {}),
      ...(promoted ? remoteTarget(db.replicas[0]!, db) : {}),
    },
  ];
  if (config.metabase.enabled) {
    targets.push({ name: "metabase", engine: "postgres", container: names.metabaseDatabaseContainer, adminUser: "metabase", image: config.metabase.databaseImage });
  }
  return targets;
}

/** A promoted replica on another server: where it is reached over the link (none on this server). */
function remoteTarget(replica: ReplicaConfig, database: StackConfig["database"]): Pick<BackupTarget, "remote"> {
  const host = linkAddressOfReplica(replica);
  return host ? { remote: { host, port: databaseSpec(database).port } } : {};
}

/** A target's replica: its container, bound and, on another server, where it is reached over the link. */
function replicaTarget(replica: ReplicaConfig, prefix: string, database: StackConfig["database"]): NonNullable<BackupTarget["replica"]> {
  const host = linkAddressOfReplica(replica);
  return {
    container: replicaNames(prefix).container,
    maxLagSeconds: replica.maxLagSeconds,
    // Published on its link address at the engine's port (infra/replica).
    ...(host ? { link: { host, port: databaseSpec(database).port } } : {}),
  };
}

export interface BackupScriptSpec {
  service: string;
  stack: string;
  backup: BackupConfig;
  targets: readonly BackupTarget[];
  paths: BackupPaths;
}

/**
 * mysqldump/mariadb-dump options of every MySQL/MariaDB backup: one consistent
 * snapshot (InnoDB), every kind of object, binary data as hex, utf8mb4 whatever
 * the server's default, and no date, so two dumps of the same data are equal.
 */
export const MYSQL_DUMP_OPTIONS = [
  "--single-transaction",
  "--routines",
  "--triggers",
  "--events",
  "--hex-blob",
  "--default-character-set=utf8mb4",
  "--max-allowed-packet=1G",
  "--skip-dump-date",
] as const;

/**
 * zstd level 2: on bench:backup's data level 3 made the output 0.6 % smaller
 * for about 40 % more CPU (1 GB dump: 312.6 vs 314.4 MB, 5.5 vs 4.0 CPU-s),
 * and the backup competes for the server's cores with the dump and the app.
 * Level 1 was no cheaper there (5.08 vs 5.02 CPU-s, 3 runs each in turn) and
 * 23 % larger (385.5 MB); --fast levels leave literals uncompressed and end
 * larger than gzip -6 (400.1 MB): 493 MB at --fast=1.
 */
export const ZSTD_LEVEL = 2;

/** The file extension of a backup object, per engine. */
export function backupExtension(engine: DatabaseEngine): string {
  return engine === "postgres" ? "pgdump.zst" : "sql.zst";
}

/** Matches a manifest's key, `<stack>/<database>/<UTC timestamp>.manifest.json`, and captures the timestamp. */
export const MANIFEST_KEY = /^([^/]+)\/([^/]+)\/(\d{8}T\d{6}Z)\.manifest\.json$/;

/** What the backup script writes beside each good backup, and what restores and drills trust. */
export interface BackupManifest {
  format: 1;
  stack: string;
  database: string;
  engine: DatabaseEngine;
  serverVersion: string;
  /** The data object's key in the bucket. */
  key: string;
  createdAt: string;
  compression: "zstd";
  /** Bytes of the compressed object. */
  size: number;
  /** sha256 of the compressed object. */
  sha256: string;
  /** Bytes of the dump before compression. */
  dumpBytes: number;
  durationSeconds: number;
  /** Every base table with its row count in the dump's snapshot (PostgreSQL names are schema-qualified). */
  tables: { name: string; rows: number }[];
  /** Views, routines, triggers, events (MySQL/MariaDB); views, functions, procedures, triggers, sequences (PostgreSQL). */
  objects: { type: string; name: string }[];
  /** A database with a read replica: which server the dump was taken from. */
  source?: "replica" | "primary";
  /** A database with a read replica: why that source, and the replication position read just before the dump (the dump holds at least every transaction up to it). */
  replication?: {
    why: string;
    positionType: "gtid" | "lsn";
    /** The dumped server's position: the replica's applied GTIDs / replayed LSN, or the primary's. */
    position: string;
    /** The other server's, when it answered. */
    primaryPosition?: string;
    replicaPosition?: string;
    lagSeconds: number | null;
  };
}

function validateTargets(targets: readonly BackupTarget[]): void {
  if (targets.length === 0) throw new Error("backup script: no database to back up");
  const seen = new Set<string>();
  for (const t of targets) {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(t.name)) throw new Error(`backup target "${t.name}": expected a database identifier (lower-case letters, digits, _)`);
    if (seen.has(t.name)) throw new Error(`backup target "${t.name}" is listed twice: each database needs its own folder in the bucket`);
    seen.add(t.name);
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(t.container)) throw new Error(`backup target "${t.name}": container name "${t.container}" is not a Docker container name`);
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(t.adminUser)) throw new Error(`backup target "${t.name}": admin user "${t.adminUser}" is not an identifier`);
    if (!/^[A-Za-z0-9][A-Za-z0-9_./:@-]*$/.test(t.image)) throw new Error(`backup target "${t.name}": image "${t.image}" is not an image reference`);
    if (t.replica && !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(t.replica.container)) throw new Error(`backup target "${t.name}": replica container name "${t.replica.container}" is not a Docker container name`);
    if (t.replica && !(Number.isInteger(t.replica.maxLagSeconds) && t.replica.maxLagSeconds > 0)) throw new Error(`backup target "${t.name}": replica maxLagSeconds ${t.replica.maxLagSeconds} is not a positive whole number of seconds`);
  }
}

// The catalog queries shared by the scripts (rendered into them) and the
// restore command, so a manifest and a restored database are listed alike.
/** MySQL/MariaDB: the base tables of the current database. */
export const MYSQL_TABLES_SQL = "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1";
/** MySQL/MariaDB: `type<TAB>name` of every view, routine, trigger and event. */
export const MYSQL_OBJECTS_SQL = [
  "SELECT 'view', TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()",
  "UNION ALL SELECT LOWER(ROUTINE_TYPE), ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()",
  "UNION ALL SELECT 'trigger', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()",
  "UNION ALL SELECT 'event', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()",
  "ORDER BY 1, 2",
].join("\n");
/** PostgreSQL: `schema.table<TAB>rows` of every table, counted in the session's snapshot. */
export const PG_COUNTS_SQL = [
  "SELECT format('%s.%s', n.nspname, c.relname) || E'\\t' ||",
  "  (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text",
  "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace",
  "WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'",
  "ORDER BY 1;",
].join("\n");
/** PostgreSQL: `type<TAB>name` of every view, sequence, function, procedure and trigger (not an extension's). */
export const PG_OBJECTS_SQL = [
  "SELECT kind || E'\\t' || name FROM (",
  "  SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'sequence' END AS kind, format('%s.%s', n.nspname, c.relname) AS name",
  "    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace",
  "    WHERE c.relkind IN ('v', 'm', 'S') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'",
  "  UNION ALL SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END, format('%s.%s', n.nspname, p.proname)",
  "    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace",
  "    WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'",
  "      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')",
  "  UNION ALL SELECT 'trigger', format('%s.%s.%s', n.nspname, c.relname, t.tgname)",
  "    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace",
  "    WHERE NOT t.tgisinternal",
  ") o ORDER BY 1;",
].join("\n");

const bashPart = (file: string) => readFileSync(join(__dirname, file), "utf8");

/** What differs between the two scripts' headers; the rest is one text. */
interface ScriptKind {
  what: "backup" | "restore drill";
  script: string;
  schedule: string;
  /** Header comment lines after the two usage lines. */
  notes: string[];
  logTag: string;
  /** Its own settings, after the shared ones. */
  settings: string[];
  /** After the targets. */
  afterTargets: string[];
  credentialsFile: string;
  lockFile: string;
  clientVariables: string;
}

function backupKind(spec: BackupScriptSpec): ScriptKind {
  const { backup, paths } = spec;
  return {
    what: "backup",
    script: paths.backupScript,
    schedule: backup.schedule,
    notes: [`# Uploads with ${paths.uploader} (infra/backup/s3-put.py), found beside this script.`],
    logTag: paths.logTag,
    settings: [`readonly ZSTD_LEVEL=${ZSTD_LEVEL}`, `readonly MYSQL_DUMP_OPTIONS=(${MYSQL_DUMP_OPTIONS.join(" ")})`],
    afterTargets: replicaHeader(spec),
    credentialsFile: paths.credentialsFile,
    lockFile: paths.lockFile,
    clientVariables: "CLIENT=mariadb work=''",
  };
}

function drillKind(spec: BackupScriptSpec): ScriptKind {
  const { backup, paths } = spec;
  return {
    what: "restore drill",
    script: paths.drillScript,
    schedule: backup.drillSchedule,
    notes: [`#   ${paths.drillScript} --database <name>  drill one database (npm run drill -- --database)`],
    logTag: `${paths.logTag}-drill`,
    settings: [
      `readonly DRILL_CONTAINER=${shellQuote(paths.drillContainer)}`,
      `# The newest backup is stale past this age: the backup schedule's longest interval plus a grace (infra/backup/schedule.ts).`,
      `readonly BACKUP_SCHEDULE=${shellQuote(normalCron(backup.schedule))}`,
      `readonly MAX_BACKUP_AGE_SECONDS=${Math.round(allowedBackupAgeMs(backup.schedule) / 1000)}`,
      "# The lifecycle's expiry: its delete markers on expired backups are not suspicious.",
      `readonly EXPIRE_AFTER_DAYS=${backup.retention.expireAfterDays}`,
    ],
    afterTargets: [],
    credentialsFile: paths.drillCredentialsFile,
    lockFile: paths.drillLockFile,
    clientVariables: "CLIENT=mariadb PROBE=() work=''",
  };
}

function header(spec: BackupScriptSpec, kind: ScriptKind): string {
  const { backup, stack, paths } = spec;
  validateTargets(spec.targets);
  const schedule = normalizeSchedule(kind.schedule);
  // Comments quote the schedule too: in its one-line form, a value cannot end a comment early.
  const shown = normalCron(kind.schedule);
  const targets = spec.targets.map((t) => `  ${shellQuote([t.name, t.engine, t.container, t.adminUser, t.image].join(" "))}`);
  return [
    "#!/usr/bin/env bash",
    `# The ${kind.what} of stack "${stack}" (${spec.targets.map((t) => t.name).join(", ")}), bucket s3://${backup.bucket} in ${backup.region}.`,
    `# Rendered by infra/backup/render.ts from Pulumi.${stack}.yaml and installed by Pulumi: edit the stack, not this file.`,
    `#   ${kind.script}              run now`,
    `#   ${kind.script} --scheduled  run if "${shown}" is due this minute in ${backup.timezone} (the cron entry)`,
    ...kind.notes,
    `# Logs go to syslog: journalctl -t ${paths.logTag}`,
    "set -Eeuo pipefail",
    "umask 077",
    "",
    `readonly STACK=${shellQuote(stack)}`,
    `readonly BUCKET=${shellQuote(backup.bucket)}`,
    `readonly REGION=${shellQuote(backup.region)}`,
    `readonly TIMEZONE=${shellQuote(backup.timezone)}`,
    `readonly SCHEDULE=${shellQuote(schedule)}`,
    `readonly LOG_TAG=${shellQuote(kind.logTag)}`,
    ...kind.settings,
    "# name engine container admin-user image",
    "readonly TARGETS=(",
    ...targets,
    ")",
    ...kind.afterTargets,
    "",
    "# Overridable for tests and for a run by hand; cron sets none of these.",
    `credentials_file=\${BACKUP_AWS_CREDENTIALS_FILE:-${kind.credentialsFile}}`,
    `ping_url_file=\${BACKUP_PING_URL_FILE:-${paths.pingUrlFile}}`,
    `lock_file=\${BACKUP_LOCK_FILE:-${kind.lockFile}}`,
    "endpoint_url=${BACKUP_S3_ENDPOINT_URL:-}",
    `readonly MYSQL_TABLES_SQL=${shellQuote(MYSQL_TABLES_SQL)}`,
    `readonly MYSQL_OBJECTS_SQL=${shellQuote(MYSQL_OBJECTS_SQL)}`,
    `readonly PG_COUNTS_SQL=${shellQuote(PG_COUNTS_SQL)}`,
    `readonly PG_OBJECTS_SQL=${shellQuote(PG_OBJECTS_SQL)}`,
    kind.clientVariables,
    "",
  ].join("\n");
}

/** The replicated targets' lines of the backup script's header; none without a replica (the script is then as before replicas existed). */
function replicaHeader(spec: BackupScriptSpec): string[] {
  const replicated = spec.targets.filter((t) => t.replica || t.remote);
  if (replicated.length === 0) return [];
  return [
    "# Dumped from the read replica while replica.sh status says it is healthy (lag within the bound), from the primary otherwise;",
    "# a replica on another server (link <host> <port>) is checked the same way and dumped over the link; a promoted one there",
    "# (promoted <host> <port> <image>), the primary, is always dumped over the link, by a one-off client of its image.",
    "# name replica-container max-lag-seconds container|link|promoted [host port [image]]",
    "readonly REPLICAS=(",
    ...replicated.map((t) => {
      if (t.remote) return `  ${shellQuote([t.name, t.container, 0, "promoted", t.remote.host, t.remote.port, t.image].join(" "))}`;
      const { container, maxLagSeconds, link } = t.replica!;
      return `  ${shellQuote([t.name, container, maxLagSeconds, ...(link ? ["link", link.host, link.port] : ["container"])].join(" "))}`;
    }),
    ")",
    // A promoted replica elsewhere's one-off client: the password files the database containers mount, and their uid.
    `readonly LINK_CLIENT_SECRETS=${shellQuote(spec.paths.databaseSecretsDir)} LINK_CLIENT_USER=${DATABASE_UID}`,
    `readonly LINK_BACKUP_USER=${BACKUP_USER} LINK_BACKUP_PASSWORD_FILE=${BACKUP_PASSWORD_FILE}`,
    // How long a client over the link may send nothing before it is stopped (the tests shorten it).
    `link_stall_seconds=\${BACKUP_LINK_STALL_SECONDS:-${LINK_STALL_SECONDS}}`,
    // Where the database containers see their password files (the tests point it at theirs).
    `link_secrets_dir=\${BACKUP_SECRETS_DIR:-${SECRETS_MOUNT}}`,
    `replica_script=\${BACKUP_REPLICA_SCRIPT:-${spec.paths.replicaScript}}`,
  ];
}

/**
 * backup.bash with its `#+replica <command>` lines: the command where a
 * target has a replica (replica-source.bash defines what they call), the line
 * gone where none has, so a stack without a replica gets the script it got
 * before replicas existed, byte for byte.
 */
function backupBash(replicated: boolean): string {
  const hook = /^( *)#\+replica (.*)\n/gm;
  const body = bashPart("backup.bash");
  return replicated ? [linkStallGuardBash(), bashPart("replica-source.bash"), body.replace(hook, "$1$2\n")].join("\n") : body.replace(hook, "");
}

/** The backup script (bash): every target dumped, compressed and streamed to S3, manifest last. */
export function backupScript(spec: BackupScriptSpec): string {
  return [header(spec, backupKind(spec)), bashPart("common.bash"), backupBash(spec.targets.some((t) => t.replica || t.remote))].join("\n");
}

/**
 * The backup's uploader (Python 3 with Debian's python3-boto3): conditional,
 * checksummed writes, streamed as a multipart upload. The same for every stack;
 * installed at `paths.uploader`, beside the backup script, which finds it there.
 */
export function uploaderScript(): string {
  return readFileSync(join(__dirname, "s3-put.py"), "utf8");
}

/** The restore drill (bash): the newest good backup of every target restored into a throwaway server and compared. */
export function restoreDrillScript(spec: BackupScriptSpec): string {
  return [header(spec, drillKind(spec)), bashPart("common.bash"), bashPart("restore-drill.bash")].join("\n");
}

/**
 * The stack's file in /etc/cron.d. Debian's cron reads schedules in the
 * server's own time zone and has no CRON_TZ, so both entries run every minute
 * and the scripts decide (`--scheduled`) whether their schedule is due in the
 * stack's time zone: correct in any server time zone, across DST changes and
 * for zones with half-hour offsets. A minute that does not exist in the
 * stack's zone (a DST gap) never fires.
 */
export function cronFile(spec: BackupScriptSpec): string {
  const { backup, paths } = spec;
  return [
    `# Backups of stack "${spec.stack}" (rendered by infra/backup/render.ts; installed by Pulumi).`,
    `# backup:        "${normalCron(backup.schedule)}" in ${backup.timezone}`,
    `# restore drill: "${normalCron(backup.drillSchedule)}" in ${backup.timezone}`,
    "# Both run every minute and exit at once unless their schedule is due in that zone.",
    `# Output goes to syslog (journalctl -t ${paths.logTag}), not to mail.`,
    "SHELL=/bin/bash",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    `* * * * * root ${paths.backupScript} --scheduled >/dev/null 2>&1`,
    `* * * * * root ${paths.drillScript} --scheduled >/dev/null 2>&1`,
    "",
  ].join("\n");
}

interface PolicyStatement {
  Sid: string;
  Effect: "Allow" | "Deny";
  Action: string | string[];
  Resource: string | string[];
  Principal?: string;
  Condition?: Record<string, Record<string, string | string[]>>;
}

function policy(statements: PolicyStatement[]): string {
  return JSON.stringify({ Version: "2012-10-17", Statement: statements }, null, 2);
}

/** The stack's folder in the bucket. */
export function stackPrefix(stack: string): string {
  return `${stack}/`;
}

/** AWS's bound on an IAM user's name (CreateUser's UserName); the provider checks only its characters. */
const IAM_USER_NAME_MAX = 64;

/**
 * The IAM user of one of a stack's backup identities (`backup`,
 * `restore-drill`): `<service>-<stack>-<role>`. Refused here, at preview, when
 * AWS would refuse it at CreateUser, after the bucket was made.
 */
export function backupIamUserName(prefix: string, role: "backup" | "restore-drill"): string {
  const name = `${prefix}-${role}`;
  if (name.length > IAM_USER_NAME_MAX) {
    throw new Error(`the backup's IAM user name "${name}" is ${name.length} characters; AWS allows ${IAM_USER_NAME_MAX}: shorten the service's or the stack's name`);
  }
  return name;
}

/**
 * The server's backup identity: PutObject under `<stack>/`, and for its own
 * multipart uploads the abort and the list of parts; nothing else. No delete,
 * no read of an object, no listing of the bucket, no bucket configuration.
 * Multipart uploads are covered by PutObject; AbortMultipartUpload discards the
 * parts of an upload that never completed and can touch no object (uploads
 * it could not abort, a killed run's, are aborted by the lifecycle rules);
 * ListMultipartUploadParts (ListParts, by upload id) tells the uploader
 * whether a completion refused on its retry was done by its first try, and
 * shows no object's data.
 */
export function backupWriterPolicy(bucket: string, stack: string): string {
  return policy([
    {
      Sid: "PutBackupsUnderStackPrefix",
      Effect: "Allow",
      Action: ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
      Resource: `arn:aws:s3:::${bucket}/${stackPrefix(stack)}*`,
    },
  ]);
}

/**
 * The restore drill's identity: list and read under `<stack>/`, versions
 * included (the drill reads a key's first version and names a key with more
 * than one), nothing that writes or deletes.
 */
export function restoreDrillReaderPolicy(bucket: string, stack: string): string {
  return policy([
    {
      Sid: "ListStackPrefix",
      Effect: "Allow",
      Action: ["s3:ListBucket", "s3:ListBucketVersions"],
      Resource: `arn:aws:s3:::${bucket}`,
      Condition: { StringLike: { "s3:prefix": [`${stackPrefix(stack)}*`] } },
    },
    { Sid: "ReadBackupsUnderStackPrefix", Effect: "Allow", Action: ["s3:GetObject", "s3:GetObjectVersion"], Resource: `arn:aws:s3:::${bucket}/${stackPrefix(stack)}*` },
  ]);
}

/**
 * The bucket's policy, for every principal (the server's identities, the
 * operator's, anyone's):
 * - no request without TLS;
 * - no object created without `If-None-Match: *`, so no key can be written a
 *   second time: a new version of a backup (which restores would read, and
 *   which would push the locked original to noncurrent, where the lifecycle
 *   expires it) is refused. `s3:ObjectCreationOperation` is true on the
 *   requests that create the object (PutObject, CompleteMultipartUpload,
 *   CopyObject) and false on CreateMultipartUpload and UploadPart, which take
 *   no conditional header (S3 user guide, "Enforce conditional writes");
 * - no upload encrypted with a customer-provided key (SSE-C): a server that
 *   keeps the key to itself could otherwise write backups nobody else can read.
 */
export function backupBucketPolicy(bucket: string): string {
  const objects = `arn:aws:s3:::${bucket}/*`;
  return policy([
    {
      Sid: "DenyInsecureTransport",
      Effect: "Deny",
      Principal: "*",
      Action: "s3:*",
      Resource: [`arn:aws:s3:::${bucket}`, objects],
      Condition: { Bool: { "aws:SecureTransport": "false" } },
    },
    {
      Sid: "DenyWritesThatCouldReplaceAnObject",
      Effect: "Deny",
      Principal: "*",
      Action: "s3:PutObject",
      Resource: objects,
      // Without the header StringNotEquals holds as well (an absent key matches a negated operator): denied.
      Condition: { StringNotEquals: { "s3:if-none-match": "*" }, Bool: { "s3:ObjectCreationOperation": "true" } },
    },
    {
      Sid: "DenyCustomerProvidedKeys",
      Effect: "Deny",
      Principal: "*",
      Action: "s3:PutObject",
      Resource: objects,
      Condition: { Null: { "s3:x-amz-server-side-encryption-customer-algorithm": "false" } },
    },
  ]);
}

/** The bucket's lifecycle: colder classes, then expiry, from `backup.retention`. */
export function lifecycleRules(retention: BackupConfig["retention"]) {
  return [
    {
      id: "backups-age-out",
      status: "Enabled",
      // An empty prefix: every object of the bucket (the bucket holds one stack's backups).
      filter: { prefix: "" },
      transitions: [
        { days: retention.infrequentAfterDays, storageClass: "STANDARD_IA" },
        // Glacier Instant Retrieval, not Flexible Retrieval ("GLACIER"): an
        // object there is read by a plain GET, so `npm run restore --at` an old
        // date works at once; a Flexible Retrieval object must be thawed
        // (RestoreObject, hours) before any read. Storage costs about the same.
        { days: retention.archiveAfterDays, storageClass: "GLACIER_IR" },
      ],
      expiration: { days: retention.expireAfterDays },
      noncurrentVersionExpiration: { noncurrentDays: retention.noncurrentExpireDays },
      // Uploads cut off by a failed run; the server's identity cannot abort them itself.
      abortIncompleteMultipartUpload: { daysAfterInitiation: retention.abortMultipartAfterDays },
    },
  ];
}

/** Object Lock's default retention, or undefined when `objectLock.mode` is "off". */
export function objectLockRule(lock: BackupConfig["objectLock"]) {
  if (lock.mode === "off") return undefined;
  return { defaultRetention: { mode: lock.mode === "compliance" ? "COMPLIANCE" : "GOVERNANCE", days: lock.days } };
}

/** Default encryption: S3-managed keys, or the account's AWS-managed KMS key for S3 with a bucket key. */
export function encryptionRules(encryption: BackupConfig["encryption"]) {
  return encryption === "kms"
    ? [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms" }, bucketKeyEnabled: true }]
    : [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }];
}

/** An AWS shared-credentials file holding one access key. */
export function awsCredentialsFile(accessKeyId: string, secretAccessKey: string): string {
  return `[default]\naws_access_key_id = ${accessKeyId}\naws_secret_access_key = ${secretAccessKey}\n`;
}
