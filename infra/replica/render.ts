// Pure renderers for the read replica: its names, the server flags of the
// primary and the replica, the PostgreSQL replica's entrypoint, and the
// replica's commands (setup, wait, status, promote) as one bash script.
// No Pulumi import: tested on its own and run for real against MariaDB and
// PostgreSQL (test/real/replica-*.test.ts).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { DatabaseEngine, StackConfig } from "../../stacks/config/schema.js";
import { DATABASE_ALIAS, DATABASE_UID, DATA_PATHS, SECRETS_MOUNT } from "../database/render.js";
import { LINK_STALL_SECONDS, linkStallGuardBash } from "../link/render.js";
import { containerPrefix, shellQuote } from "../server/render.js";

export type ReplicaConfig = StackConfig["database"]["replicas"][number];

/** The login the replica replicates as: replication grants only. */
export const REPLICATION_USER = "replicator";
/** Files beside the database's other secrets (`<secretsDir>/db`, mounted in the primary and the replica). */
export const REPLICATION_PASSWORD_FILE = "replication_password";
/**
 * MariaDB/MySQL, a replica on another server: the login its server dumps the
 * primary as, over the link, to seed it (read grants only; replica.bash).
 */
export const SEEDING_USER = "replica_seed";
export const SEEDING_PASSWORD_FILE = "replica_seed_password";
/**
 * MariaDB/MySQL, a replica on another server: the login on the replica the
 * primary's server reads its replication state as, over the link (`SLAVE
 * MONITOR` only: backups' source check, npm run status).
 */
export const MONITOR_USER = "replica_monitor";
export const MONITOR_PASSWORD_FILE = "replica_monitor_password";
/**
 * A replica on another server: the login the primary's server's backup dumps
 * the replica as, over the link (read grants only). MariaDB/MySQL: made on the
 * replica outside its binary log, as the monitoring login; PostgreSQL: a role
 * made on the primary (a standby has the primary's roles) with
 * pg_read_all_data and BYPASSRLS, what a dump needs and no more.
 */
export const BACKUP_USER = "replica_backup";
export const BACKUP_PASSWORD_FILE = "replica_backup_password";
/** PostgreSQL's password file for the replica's connection (libpq's format; 0400, the database's uid). */
export const REPLICATION_PGPASS_FILE = "replication.pgpass";
/** The name the app, Metabase and backups reach the replica by on the data network. */
export const REPLICA_ALIAS = "db-replica";
/**
 * How long the primary's binary log is kept (MariaDB and MySQL) and a MariaDB
 * replica's (kept for a promotion): a week. Set on both, never left to the image's
 * config (the official MariaDB image's says 10 days, other builds nothing: a
 * replica's log would then grow until the disk is full).
 */
const BINLOG_KEEP_SECONDS = 7 * 24 * 3600;
/** The primary's server id; the replica's is 2 (MariaDB/MySQL need them distinct). */
const PRIMARY_SERVER_ID = 1;
const REPLICA_SERVER_ID = 2;

/**
 * True once `npm run promote` made the replica the primary (`database.primary:
 * replica`), and while `npm run failback` prepares the way back
 * (`returning`): the databases, backups and Metabase as promoted.
 */
export function replicaIsPrimary(db: Pick<StackConfig["database"], "primary" | "replicas">): boolean {
  return (db.primary === "replica" || db.primary === "returning") && db.replicas.length > 0;
}

/**
 * True while `npm run promote` or `npm run failback` prepares its switch of
 * the primary (`database.primary: promoting` or `returning`): the run may
 * only start the warm slot, rendered as it is once switched (slotDatabase);
 * the databases, backups and Metabase stay as before.
 */
export function promotionStaged(db: Pick<StackConfig["database"], "primary" | "replicas">): boolean {
  return (db.primary === "promoting" || db.primary === "returning") && db.replicas.length > 0;
}

/** The database part of the stack file as the slots are rendered: a staged slot as it is once the switch is made, so that the switch's flip starts nothing. */
export function slotDatabase<T extends Pick<StackConfig["database"], "primary" | "replicas">>(db: T): T {
  if (db.replicas.length === 0) return db;
  if (db.primary === "promoting") return { ...db, primary: "replica" };
  if (db.primary === "returning") return { ...db, primary: "original" };
  return db;
}

/**
 * Where the app writes: the original (`db` on the data network), or the
 * promoted replica (and the slot staged for it): on the data network, or on
 * another server at its link address, where its port is published.
 */
export function primaryHost(db: Pick<StackConfig["database"], "primary" | "replicas">): string {
  const replica = db.replicas[0];
  return replica && replicaIsPrimary(slotDatabase(db)) ? replicaReadHost(replica) : DATABASE_ALIAS;
}

/**
 * How long the app waits for the primary's answer (its driver's
 * socketTimeout): none on the app's own server, the replica's
 * `readTimeoutSeconds` once a replica on another server is promoted. Writes
 * then cross the link, and a server that loses power answers nothing, not
 * even a reset: a write in flight would wait for TCP's keepalive, or forever.
 */
export function primaryReadTimeoutSeconds(db: Pick<StackConfig["database"], "primary" | "replicas">): number | undefined {
  const replica = db.replicas[0];
  return replica && replicaIsPrimary(slotDatabase(db)) && linkAddressOfReplica(replica) ? replica.readTimeoutSeconds : undefined;
}

/**
 * How a replica's volume name ends: the one volume the guardrails let go
 * unprotected (policy/rules.ts), a copy of the primary's data that goes with
 * the replica; the program protects it once the replica is promoted.
 */
export const REPLICA_VOLUME_SUFFIX = "-db-replica-data";

/** Names of the replica's container, volume and PostgreSQL slot; one function, used by infra, ops and tests. */
export function replicaNames(prefix: string) {
  return {
    container: `${prefix}-db-replica`,
    volume: `${prefix}${REPLICA_VOLUME_SUFFIX}`,
    /** PostgreSQL's physical replication slot (and the replica's application_name). */
    slot: "replica_1",
    /** The replica's script on the server: `replica.sh setup|wait|status|promote|writable|reseed|retire`. */
    script: (stackDir: string) => `${stackDir}/replica/replica.sh`,
    /** Once promoted, the failback's copy of it (failbackScript): `failback.sh follow|return|status`. */
    failbackScript: (stackDir: string) => `${stackDir}/replica/failback.sh`,
    /** Where failback.sh dumps the original's own data before it seeds it again (root's). */
    failbackDir: (stackDir: string) => `${stackDir}/replica/failback`,
    /** MariaDB/MySQL: the replica's role option file on the server (replicaRoleOptions), mounted at REPLICA_ROLE_MOUNT. */
    roleFile: (stackDir: string) => `${stackDir}/replica/role.cnf`,
    /** With a replica on another server: the primary's routed bridge, through which its port is published on the link's address. */
    linkNetwork: `${prefix}-db-link`,
    /** The replica's network on the other server: routed, so it reaches the primary's link address. */
    remoteNetwork: `${prefix}-db-replica`,
  };
}

/** The replica on the stack's own server, if any: the one `npm run promote` can promote (replica.sh promote needs both containers on one server). */
export function localReplica(db: Pick<StackConfig["database"], "replicas">): ReplicaConfig | undefined {
  return db.replicas.find((r) => !r.server);
}

/**
 * The replica the app's read-only datasource and Metabase read: none once
 * promoted (it is the primary then, and no other replica is left).
 */
export function readReplica(db: Pick<StackConfig["database"], "primary" | "replicas">): ReplicaConfig | undefined {
  return replicaIsPrimary(db) ? undefined : db.replicas[0];
}

/**
 * Where the app and Metabase reach a replica: its alias on the data network;
 * on another server, its address on the link, where its port is published
 * and nowhere else. The slots and Metabase get there through their routed
 * edge network: Docker masquerades what leaves it, so the replica's server
 * sees the primary server's link address, the only peer its link accepts.
 */
export function replicaReadHost(replica: Pick<ReplicaConfig, "server" | "link">): string {
  return linkAddressOfReplica(replica) ?? REPLICA_ALIAS;
}

/** The address a replica on another server publishes its port on: its address on the link. */
export function linkAddressOfReplica(replica: Pick<ReplicaConfig, "server" | "link">): string | undefined {
  return replica.server && replica.link ? replica.link.replicaAddress : undefined;
}

/** The address the primary listens on for a replica on another server: its address on the link. */
export function linkAddressOfPrimary(replica: Pick<ReplicaConfig, "server" | "link">): string | undefined {
  return replica.server && replica.link ? replica.link.primaryAddress : undefined;
}

/**
 * The most WAL a PostgreSQL primary's replication slot keeps for a standby that
 * stopped: the original's flag, and what replica.sh's setup writes into a
 * promoted primary's own configuration before a failback makes a slot there.
 */
export const PG_SLOT_WAL_KEEP = "4096MB";

/**
 * Flags the primary gets when the stack has a replica. MariaDB/MySQL: a
 * binary log in row format with GTIDs (MySQL: gtid_mode), kept a week.
 * PostgreSQL: its defaults already stream (wal_level replica, 10 senders);
 * the slot keeps at most this much WAL for a replica that stopped, so a dead
 * replica cannot fill the primary's disk.
 */
export function primaryReplicationFlags(engine: DatabaseEngine): string[] {
  switch (engine) {
    case "mariadb":
      return [`--server-id=${PRIMARY_SERVER_ID}`, "--log-bin=mysql-bin", "--binlog-format=ROW", "--gtid-strict-mode=ON", `--binlog-expire-logs-seconds=${BINLOG_KEEP_SECONDS}`];
    case "mysql":
      return [`--server-id=${PRIMARY_SERVER_ID}`, "--log-bin=mysql-bin", "--gtid-mode=ON", "--enforce-gtid-consistency=ON", `--binlog-expire-logs-seconds=${BINLOG_KEEP_SECONDS}`];
    case "postgres":
      return ["-c", `max_slot_wal_keep_size=${PG_SLOT_WAL_KEEP}`];
  }
}

export interface ReplicaServerSpec {
  engine: DatabaseEngine;
  /** The replica container's memory limit (MiB): MariaDB's apply workers are sized from it (replicaApplyThreads). */
  memoryMb: number;
  /** Where the replica reaches the primary: the data network's alias and port on the server. */
  primaryHost: string;
  primaryPort: number;
  /** Where the password files are, as the replica sees them. */
  secretsDir: string;
  slot: string;
}

/**
 * MariaDB: how many workers apply the primary's transactions on the replica.
 * One thread (MariaDB's default, 0) applies one transaction at a time and
 * falls behind 4 connections writing as fast as they can. The program does
 * not know the server's cores, so the container's memory stands in for the
 * server's size: one worker per 256 MiB, at least 2 and at most 4 (a 2-4
 * core home server, whose cores the primary and the app share; more workers
 * than cores only add optimistic mode's rollbacks and retries).
 */
export function replicaApplyThreads(memoryMb: number): number {
  return Math.min(4, Math.max(2, Math.floor(memoryMb / 256)));
}

/**
 * Where a MariaDB/MySQL replica's role option file is mounted: a directory
 * both images' option files include (the official images' `my.cnf` ends with
 * `!includedir /etc/mysql/conf.d/`, as Debian's does), under a name sorted
 * after the image's own files there.
 */
export const REPLICA_ROLE_MOUNT = "/etc/mysql/conf.d/zz-bbaegok-replica-role.cnf";

/**
 * A MariaDB/MySQL replica's role: read-only (super_read_only on MySQL) until
 * promoted, writable after. An option file rather than a server flag: the
 * flip's `pulumi up` after `replica.sh promote` (which made the running
 * server writable by SET GLOBAL) rewrites this file and changes nothing of
 * the container, so the promoted database is not restarted while the app
 * waits to write (it was: a 12 s longer write window on prod, its health
 * check's first run 10 s after the start), and a later restart still finds it
 * writable. PostgreSQL: none (promotion removes the standby's marker).
 */
export function replicaRoleOptions(engine: DatabaseEngine, promoted: boolean): string | undefined {
  if (engine === "postgres") return undefined;
  const setting = engine === "mysql" ? "super_read_only" : "read_only";
  const why = promoted ? "promoted (npm run promote): it takes the writes" : "a read replica: only its replication writes to it";
  return `# The read replica's role, rendered by infra/replica/render.ts: ${why}.\n[mysqld]\n${setting} = ${promoted ? "OFF" : "ON"}\n`;
}

/**
 * The replica's own server flags. MariaDB/MySQL (read-only by its role
 * option file, replicaRoleOptions): its own id, a binary log of what it applies (so it can be
 * promoted and replicated from), and the `mysql` schema not replicated: the
 * replica keeps its own accounts (its image creates root and the app user
 * from the same password files; the replication user exists on the primary
 * only), and parallel apply: optimistic mode runs any InnoDB transactions
 * side by side, rolling back and retrying one that conflicts, and commits them
 * in the primary's order (so gtid_slave_pos, promotion and STOP SLAVE see the
 * same sequence as with one thread). Conservative mode (Debian's 10.11
 * default) would apply in parallel only what the primary group-committed,
 * which depends on the primary's timing (binlog_commit_wait_count, 0, would
 * delay its commits to make groups). slave_parallel_max_queued keeps its
 * default (128 KiB read ahead per worker: many of the app's short transactions). PostgreSQL: a hot standby streaming from the primary through the slot,
 * telling the primary which rows its queries still read (so a long backup on
 * the replica is not cancelled).
 */
export function replicaServerFlags(spec: ReplicaServerSpec): string[] {
  // The same once promoted, so promotion never re-creates the container: the role is in its option file
  // (replicaRoleOptions); PostgreSQL's standby flags are inert once promotion removed standby.signal.
  switch (spec.engine) {
    case "mariadb":
      return [`--server-id=${REPLICA_SERVER_ID}`, "--log-bin=mysql-bin", "--log-slave-updates=ON", "--binlog-format=ROW", "--gtid-strict-mode=ON", `--binlog-expire-logs-seconds=${BINLOG_KEEP_SECONDS}`, "--relay-log=relay-bin", "--replicate-wild-ignore-table=mysql.%", `--slave-parallel-threads=${replicaApplyThreads(spec.memoryMb)}`, "--slave-parallel-mode=optimistic"];
    case "mysql":
      return [`--server-id=${REPLICA_SERVER_ID}`, "--log-bin=mysql-bin", "--gtid-mode=ON", "--enforce-gtid-consistency=ON", "--relay-log=relay-bin", "--replicate-wild-ignore-table=mysql.%"];
    case "postgres":
      return [
        "-c", "hot_standby=on",
        "-c", "hot_standby_feedback=on",
        "-c", `primary_conninfo=host=${spec.primaryHost} port=${spec.primaryPort} user=${REPLICATION_USER} passfile=${spec.secretsDir}/${REPLICATION_PGPASS_FILE} application_name=${spec.slot}`,
        "-c", `primary_slot_name=${spec.slot}`,
      ];
  }
}

/**
 * How long the PostgreSQL standby's first base backup waits on a dead link
 * before it gives up: keepalive probes after 20 s of silence, every
 * few seconds, and the same bound on data sent and never acknowledged. A
 * healthy link acknowledges at once, and a primary busy with its checkpoint
 * still answers the probes (the kernel does), so only a gone peer trips it.
 * Only the seeding's connections: the standby's own streaming is bounded by
 * wal_receiver_timeout (60 s), and its command left unchanged, so a promoted
 * replica's container is not re-created for it.
 */
export const BASE_BACKUP_DEAD_LINK_SECONDS = 40;
const BASE_BACKUP_KEEPALIVE_IDLE = 20;
const BASE_BACKUP_KEEPALIVE_PROBES = 4;

/** libpq's connection options of the base backup (BASE_BACKUP_DEAD_LINK_SECONDS), and the connection bound the link's other clients have. */
export function baseBackupConnectionOptions(): string {
  const interval = (BASE_BACKUP_DEAD_LINK_SECONDS - BASE_BACKUP_KEEPALIVE_IDLE) / BASE_BACKUP_KEEPALIVE_PROBES;
  return [
    `connect_timeout=${LINK_CONNECT_SECONDS}`,
    "keepalives=1",
    `keepalives_idle=${BASE_BACKUP_KEEPALIVE_IDLE}`,
    `keepalives_interval=${interval}`,
    `keepalives_count=${BASE_BACKUP_KEEPALIVE_PROBES}`,
    `tcp_user_timeout=${BASE_BACKUP_DEAD_LINK_SECONDS * 1000}`,
  ].join(" ");
}

/**
 * The PostgreSQL replica's entrypoint, run as the database's uid before the
 * image's own: on an empty data folder, a base backup of the primary through
 * the slot (WAL streamed alongside, so it is consistent) and the standby
 * marker; then the server command it is given. Its connection settings are
 * server flags (replicaServerFlags), so nothing secret is written here.
 */
export function postgresReplicaEntrypoint(spec: ReplicaServerSpec): string {
  const pgpass = `${spec.secretsDir}/${REPLICATION_PGPASS_FILE}`;
  return `#!/bin/bash
# The read replica's first start: seeded by pg_basebackup (rendered by infra/replica/render.ts).
set -euo pipefail
# A folder seeded and never started still holds pg_basebackup's backup_label (the server renames it at
# its first start): a base backup cut short (the container stopped, a power cut) or one whose
# standby.signal below was never written. Started as it is, it would run on a partial copy, or as a
# writable primary. Cleared and seeded again; so is a folder with files but no PG_VERSION. A folder a
# server has run on (the replica, or once promoted the primary) has neither.
if [ -e "$PGDATA/backup_label" ] || { [ ! -s "$PGDATA/PG_VERSION" ] && [ -n "$(ls -A "$PGDATA")" ]; }; then
  echo "replica: $PGDATA holds a base backup that never started (cut short, or stopped before its standby.signal): cleared, seeded again" >&2
  find "$PGDATA" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "replica: waiting for the primary at ${spec.primaryHost}:${spec.primaryPort}" >&2
  until pg_isready -q -h ${shellQuote(spec.primaryHost)} -p ${spec.primaryPort}; do sleep 1; done
  echo "replica: base backup of the primary into $PGDATA" >&2
  # Bounded on a link that goes dead (its other end lost power: no reset, no FIN): libpq's TCP keepalives
  # and user timeout end the copy in ${BASE_BACKUP_DEAD_LINK_SECONDS} s instead of the kernel's two hours; the container then
  # exits, Docker starts it again, and pg_basebackup has cleared the folder it made (or the check above does).
  PGPASSFILE=${shellQuote(pgpass)} pg_basebackup --no-password -d ${shellQuote(baseBackupConnectionOptions())} \\
    -h ${shellQuote(spec.primaryHost)} -p ${spec.primaryPort} -U ${REPLICATION_USER} -D "$PGDATA" -X stream -S ${shellQuote(spec.slot)} --checkpoint=fast
  chmod 0700 "$PGDATA"
  touch "$PGDATA/standby.signal"
fi
exec "$@"
`;
}

/**
 * Waits, on the standby's own server, until it streams from the primary
 * (`pg_stat_wal_receiver` says so), up to `seconds`: replica.sh's `wait`
 * needs both containers on one host, and a standby elsewhere is not.
 */
export function standbyStreamingWaitCommand(container: string, seconds = 120): string {
  const query = "SELECT status FROM pg_stat_wal_receiver";
  const loop = `for _ in $(seq ${seconds}); do [ "$(psql -U postgres -tAc ${shellQuote(query)})" = streaming ] && exit 0; sleep 1; done; echo "replica: not streaming from the primary after ${seconds} s" >&2; exit 1`;
  return `docker exec ${shellQuote(container)} sh -c ${shellQuote(loop)}`;
}

/** libpq's password file for the replication connection (`:` and `\\` escaped, as libpq reads them). */
export function replicationPgpass(password: string): string {
  return `*:*:*:${REPLICATION_USER}:${password.replace(/[\\:]/g, (c) => `\\${c}`)}\n`;
}

export interface ReplicaScriptSpec {
  stack: string;
  service: string;
  database: StackConfig["database"];
  /** What the script checks the replica by: how far behind backups may read it. */
  replica: Pick<ReplicaConfig, "maxLagSeconds">;
  primaryContainer: string;
  replicaContainer: string;
  /** Where the replica reaches the primary (the data network's alias on the server; 127.0.0.1 in tests). */
  primaryHost?: string;
  primaryPort?: number;
  /** A replica on another server: where the primary's server reaches it (its link address, and port: the primary's by default). */
  replicaHost?: string;
  replicaPort?: number;
  /** Where the containers see the password files. */
  secretsDir?: string;
  slot: string;
  /**
   * Which of the two containers run where this copy of the script runs:
   * both (a replica on the same server), or, for a replica on another
   * server, the primary's server's copy or the replica's; `setup` does this
   * server's side, and the replica's server reaches the primary over the link.
   * @default "both"
   */
  thisServer?: ThisServer;
}

export type ThisServer = "both" | "primary" | "replica";

const bashPart = (file: string) => readFileSync(join(__dirname, file), "utf8");

/**
 * replica.sh's queries over the link (status, and so the backup's check of
 * the replica; seeding's reads of the primary's position): how long one may
 * wait for a connection, and for its answer before the link guard stops it.
 * They are short queries; a healthy link answers them at once. Bounded, a
 * replica whose server lost power is reported unhealthy in under a minute
 * instead of hanging status, and with it the backup, for TCP's two hours.
 */
export const LINK_CONNECT_SECONDS = 10;
export const LINK_QUERY_STALL_SECONDS = 30;

/** The replica's shell variables: the header of replica.sh. */
export function replicaVariables(spec: Omit<ReplicaScriptSpec, "service">): string[] {
  const engine = spec.database.engine;
  return [
    `readonly STACK=${shellQuote(spec.stack)} ENGINE=${shellQuote(engine)}`,
    `readonly CLIENT=${engine === "mysql" ? "mysql" : "mariadb"} DUMP=${engine === "mysql" ? "mysqldump" : "mariadb-dump"}`,
    `readonly DATABASE=${shellQuote(spec.database.name)}`,
    `readonly PRIMARY=${shellQuote(spec.primaryContainer)} REPLICA=${shellQuote(spec.replicaContainer)}`,
    `readonly PRIMARY_HOST=${shellQuote(spec.primaryHost ?? DATABASE_ALIAS)} PRIMARY_PORT=${spec.primaryPort ?? (engine === "postgres" ? 5432 : 3306)}`,
    `readonly REPLICA_HOST=${shellQuote(spec.replicaHost ?? REPLICA_ALIAS)} REPLICA_PORT=${spec.replicaPort ?? spec.primaryPort ?? (engine === "postgres" ? 5432 : 3306)}`,
    `readonly REPLICATION_USER=${REPLICATION_USER} SEEDING_USER=${SEEDING_USER} MONITOR_USER=${MONITOR_USER} BACKUP_USER=${BACKUP_USER} SLOT=${shellQuote(spec.slot)} SLOT_WAL_KEEP=${PG_SLOT_WAL_KEEP}`,
    `readonly THIS_SERVER=${spec.thisServer ?? "both"}`,
    // The replica's volume inside its container: reseed empties it (PostgreSQL).
    `readonly REPLICA_DATA=${shellQuote(DATA_PATHS[engine])}`,
    `readonly MAX_LAG_SECONDS=${spec.replica.maxLagSeconds}`,
    `secrets_dir=\${REPLICA_SECRETS_DIR:-${spec.secretsDir ?? SECRETS_MOUNT}}`,
    // Queries over the link (the tests shorten the stall bound).
    `readonly LINK_CONNECT_SECONDS=${LINK_CONNECT_SECONDS}`,
    `link_query_stall_seconds=\${REPLICA_LINK_STALL_SECONDS:-${LINK_QUERY_STALL_SECONDS}} link_dump_stall_seconds=\${REPLICA_LINK_DUMP_STALL_SECONDS:-${LINK_STALL_SECONDS}}`,
  ];
}

/** What `replica.sh status` prints (one JSON line). */
export interface ReplicationState {
  healthy: boolean;
  /** Seconds behind; null when the replica cannot tell. */
  lagSeconds: number | null;
  behind: number;
  unit: "transactions" | "bytes";
  /** GTID set (MariaDB/MySQL) or WAL LSN (PostgreSQL). */
  primaryPosition: string;
  replicaPosition: string;
  /** Why not healthy. */
  reason?: string;
}

/** `replica.sh status` once `npm run promote` made the replica the primary. */
export interface PromotedState {
  promoted: true;
  /** It takes writes and the original does not. */
  healthy: boolean;
  writable: boolean;
  originalAnswers: boolean;
  /** Whether the original takes writes; null when it does not answer. */
  originalWritable: boolean | null;
  /** Whether the original replicates from it (npm run failback's follow seeded it, and its return is still to come). */
  originalFollows: boolean;
  /** Why not healthy. */
  reason?: string;
}

/** What `replica.sh status` prints: the replication, or the promoted replica's role. */
export type ReplicaStatus = ReplicationState | PromotedState;

/** One line for an operator: healthy or not, why, how far behind, both positions; or the promoted replica's role. */
export function describeReplication(state: ReplicaStatus): string {
  if ("promoted" in state) {
    if (!state.healthy) return `UNHEALTHY (promoted, the primary): ${state.reason ?? "unknown"}`;
    const original = state.originalFollows
      ? "the original follows it, read-only (npm run failback seeded it and stopped before its return): run npm run failback to finish the way back"
      : state.originalAnswers
        ? "the original still answers, fenced (read-only): stop it once this one's first backup is checked"
        : "the original does not answer";
    return `promoted, the primary: takes writes; ${original}`;
  }
  const lag = state.lagSeconds === null ? "lag unknown" : `${state.lagSeconds} s behind`;
  const detail = `${lag} (${state.behind} ${state.unit}), primary at ${state.primaryPosition || "?"}, replica at ${state.replicaPosition || "?"}`;
  return state.healthy ? `healthy, ${detail}` : `UNHEALTHY: ${state.reason ?? "unknown"}; ${detail}`;
}

/** What replica.sh logs as (syslog's tag), and names its files on the server by. */
function replicaLogTag(service: string, stack: string): string {
  return `${containerPrefix(service, stack)}-replica`;
}

/** Where replica.sh keeps its server's lock: a tmpfs, like the run it stands for, gone at a reboot. */
const REPLICA_LOCK_DIR = "/run/lock";

/** A server's copy's last reseed's log, beside its lock (replica.bash lock_file, detach). */
export function replicaReseedLog(service: string, stack: string, thisServer: ThisServer): string {
  return `${REPLICA_LOCK_DIR}/${replicaLogTag(service, stack)}-${thisServer}.log`;
}

/**
 * The steps of a replica elsewhere's reseed, in order, and the server each
 * runs on (replica.bash says what each does): npm run reseed runs them one by
 * one; the script, rendered with them, refuses a step on the wrong server or
 * out of its run's order.
 */
export const RESEED_STEPS = [
  ["check", "primary"],
  ["stop", "replica"],
  ["primary", "primary"],
  ["seed", "replica"],
  ["wait", "primary"],
  ["finish", "replica"],
] as const;

/**
 * `replica.sh promote`'s exit status on the replica's server when it failed
 * before it changed anything there (the replica did not answer, or had not
 * applied the fenced original's position in time): the original's fence may
 * come off again (`replica.sh unfence`), and nothing is half done. On the
 * original's server: fenced, but its position could not be read, and the
 * fence came off again.
 */
export const PROMOTE_UNTOUCHED_EXIT = 3;

/** What both copies of the script start with: the shell's settings, the log tag, the lock's folder, the reseed's steps. */
function scriptPreamble(spec: Pick<ReplicaScriptSpec, "service" | "stack">, what: string): string[] {
  return [
    "#!/usr/bin/env bash",
    `# ${what}`,
    "# Rendered by infra/replica/render.ts and installed by Pulumi: edit the stack, not this file.",
    "set -Eeuo pipefail",
    "umask 077",
    "",
    `readonly LOG_TAG=${shellQuote(replicaLogTag(spec.service, spec.stack))}`,
    // The tests keep theirs in their own folder.
    `lock_dir=\${REPLICA_LOCK_DIR:-${REPLICA_LOCK_DIR}}`,
    `readonly RESEED_STEPS=(${RESEED_STEPS.map(([step, on]) => `${step}:${on}`).join(" ")})`,
    `readonly UNTOUCHED=${PROMOTE_UNTOUCHED_EXIT}`,
  ];
}

/** The replica's commands on the server: `replica.sh setup|wait|status|promote|writable|reseed|retire`. */
export function replicaScript(spec: ReplicaScriptSpec): string {
  return [
    ...scriptPreamble(spec, `The read replica of stack "${spec.stack}": ${spec.replicaContainer} replicating ${spec.database.name} from ${spec.primaryContainer}.`),
    ...replicaVariables(spec),
    // Promoted: setup and wait do nothing (never seeded again from the out-of-date original), status, writable and the rest as the primary.
    `readonly PROMOTED=${replicaIsPrimary(spec.database)}`,
    "",
    linkStallGuardBash(),
    bashPart("common.bash"),
    bashPart("replica.bash"),
    'main "$@"',
    "",
  ].join("\n");
}

/**
 * The failback's copy of the replica's script (`failback.sh
 * follow|return|status`, infra/replica/failback.bash), for npm run failback
 * once `npm run promote` made the replica the primary: the same functions,
 * rendered with the roles swapped. Its PRIMARY is the promoted replica's
 * container (reached at the replica's alias), its REPLICA the original's,
 * which it seeds as a replica of the promoted one and then makes the
 * primary again. Both containers on the stack's server only.
 */
export function failbackScript(
  spec: Omit<ReplicaScriptSpec, "primaryHost" | "replicaHost" | "thisServer" | "primaryPort" | "replicaPort"> & {
    failbackDir: string;
    /** Where the original reaches the promoted replica (its alias on the data network; 127.0.0.1 in tests). */
    promotedHost?: string;
    promotedPort?: number;
  },
): string {
  return [
    // The replica's script's lock (the same LOG_TAG, and THIS_SERVER both): a failback never runs beside its reseed or promote.
    ...scriptPreamble(spec, `The failback of stack "${spec.stack}": ${spec.primaryContainer} seeded again as a replica of ${spec.replicaContainer}, promoted since, then the primary again.`),
    "readonly RUN_BY=failback",
    // The roles swapped: the promoted replica is the primary the original follows.
    ...replicaVariables({ ...spec, primaryContainer: spec.replicaContainer, replicaContainer: spec.primaryContainer, primaryHost: spec.promotedHost ?? REPLICA_ALIAS, primaryPort: spec.promotedPort, replicaHost: DATABASE_ALIAS }),
    `readonly DATABASE_UID=${shellQuote(DATABASE_UID)} FAILBACK_DIR_DEFAULT=${shellQuote(spec.failbackDir)}`,
    "",
    linkStallGuardBash(),
    bashPart("common.bash"),
    bashPart("replica.bash"),
    bashPart("failback.bash"),
    'failback_main "$@"',
    "",
  ].join("\n");
}

