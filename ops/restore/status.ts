// The state of a stack's backups as S3 holds them: for each database, the
// backup whose manifest S3 received last, its age and size, and whether it
// is older than the backup schedule allows. Read with the operator's own
// credentials, every key at its first version (ops/restore/backups.ts).
//
// A backup's age counts from the earlier of the time in its key (when the
// run started, by the server's clock) and its manifest's LastModified (S3's
// clock): neither a server clock running ahead nor a mis-named key can make
// an old backup look fresh. A key dated after S3 received it, or with more
// than one version, is named SUSPICIOUS; the former is never the newest.
// The restore drill judges staleness the same way.
import { MANIFEST_KEY, backupPaths, type BackupManifest } from "../../infra/backup/render.js";
import { allowedBackupAgeMs } from "../../infra/backup/schedule.js";
import type { StackConfig } from "../../stacks/config/schema.js";
import { backupsFromObjects, formatAge, formatBytes, listObjects, readManifest, timestampOfKey, type BackupStore, type StoredObject } from "./backups.js";

export type BackupState = "ok" | "STALE" | "MISSING" | "BROKEN" | "SUSPICIOUS";

export interface NewestBackup {
  manifestKey: string;
  /** The data object the manifest names. */
  key: string;
  /** The earlier of the key's time and the manifest's LastModified. */
  takenAt: Date;
  ageMs: number;
  /** From the manifest: bytes compressed, bytes of dump, base tables. */
  size: number;
  dumpBytes: number;
  tables: number;
  engine: string;
  /** With a read replica: which server the backup was dumped from, why, and the replication position the manifest records. */
  source?: Pick<BackupManifest, "source" | "replication">;
}

export interface DatabaseBackupStatus {
  database: string;
  state: BackupState;
  newest?: NewestBackup;
  /** Why the state is not ok, as a sentence. */
  problem?: string;
  /** Data objects newer than the newest manifest and without one of their own: failed (or running) backups. */
  unmarked: string[];
  /** Keys with more than one version, or dated after S3 received them: each as a sentence. */
  suspicious: string[];
}

export interface StackBackupStatus {
  stack: string;
  bucket: string;
  schedule: string;
  timezone: string;
  allowedAgeMs: number;
  databases: DatabaseBackupStatus[];
  /** The syslog tag the restore drill logs under on the server. */
  drillLogTag: string;
}

const DATA_KEY = /^([^/]+)\/([^/]+)\/(\d{8}T\d{6}Z)\.(?:sql|pgdump)\.zst$/;

/** One database's state from the listed objects (first versions); `manifestOf` reads a manifest (S3 in production). */
export async function judgeDatabase(
  objects: readonly StoredObject[],
  stack: string,
  database: string,
  allowedAgeMs: number,
  now: Date,
  manifestOf: (manifest: StoredObject) => Promise<BackupManifest>,
): Promise<DatabaseBackupStatus> {
  const mine = objects.filter((o) => o.key.startsWith(`${stack}/${database}/`));
  const byKey = new Map(mine.map((o) => [o.key, o]));
  const { entries, suspicious } = backupsFromObjects(stack, mine);
  const newestEntry = entries[entries.length - 1];
  const newestStamp = newestEntry ? (MANIFEST_KEY.exec(newestEntry.manifestKey)?.[3] ?? "") : "";
  const unmarked = mine
    .map((o) => DATA_KEY.exec(o.key))
    .filter((m): m is RegExpExecArray => m !== null && m[3]! > newestStamp && !byKey.has(`${m[1]}/${m[2]}/${m[3]}.manifest.json`))
    .map((m) => m[0]);
  const found = { unmarked, suspicious };
  if (!newestEntry) {
    return { database, state: "MISSING", problem: `no backup with a manifest under ${stack}/${database}/`, ...found };
  }
  const manifestObject = byKey.get(newestEntry.manifestKey)!;
  const takenAt = new Date(Math.min(timestampOfKey(newestStamp).getTime(), manifestObject.lastModified.getTime()));
  let manifest: BackupManifest;
  try {
    manifest = await manifestOf(manifestObject);
  } catch (err) {
    return { database, state: "BROKEN", problem: `its newest manifest ${newestEntry.manifestKey} cannot be read: ${(err as Error).message}`, ...found };
  }
  const newest: NewestBackup = {
    manifestKey: newestEntry.manifestKey,
    key: manifest.key,
    takenAt,
    ageMs: now.getTime() - takenAt.getTime(),
    size: manifest.size,
    dumpBytes: manifest.dumpBytes,
    tables: manifest.tables.length,
    engine: manifest.engine,
    ...(manifest.source ? { source: { source: manifest.source, replication: manifest.replication } } : {}),
  };
  const data = byKey.get(manifest.key);
  if (!data) return { database, state: "BROKEN", newest, problem: `its newest manifest names ${manifest.key}, which is not in the bucket`, ...found };
  if (data.size !== manifest.size) return { database, state: "BROKEN", newest, problem: `${manifest.key} holds ${data.size} bytes, its manifest says ${manifest.size}`, ...found };
  if (newest.ageMs > allowedAgeMs) {
    return { database, state: "STALE", newest, problem: `its newest backup is ${formatAge(newest.ageMs)} old, more than the ${formatAge(allowedAgeMs)} the schedule allows`, ...found };
  }
  if (suspicious.length > 0) {
    return { database, state: "SUSPICIOUS", newest, problem: `${suspicious.length} key${suspicious.length > 1 ? "s" : ""} under ${stack}/${database}/ ${suspicious.length > 1 ? "were" : "was"} written or dated by someone other than the backup job`, ...found };
  }
  return { database, state: "ok", newest, ...found };
}

/** Lists the stack's prefix once and judges every database the stack backs up. */
export async function stackBackupStatus(
  store: BackupStore,
  config: Pick<StackConfig, "service" | "server" | "backup">,
  databases: readonly string[],
  now = new Date(),
): Promise<StackBackupStatus> {
  const allowedAgeMs = allowedBackupAgeMs(config.backup.schedule);
  const objects = await listObjects(store);
  const manifestOf = (o: StoredObject) => readManifest(store, o.key, o.versionId);
  return {
    stack: store.stack,
    bucket: store.bucket,
    schedule: config.backup.schedule,
    timezone: config.backup.timezone,
    allowedAgeMs,
    databases: await Promise.all(databases.map((db) => judgeDatabase(objects, store.stack, db, allowedAgeMs, now, manifestOf))),
    drillLogTag: `${backupPaths(config.service, store.stack, config.server.dataDir).logTag}-drill`,
  };
}

/** Where a backup of a replicated database was dumped from, with the replication lag and position at that time. */
function describeSource({ source, replication }: NonNullable<NewestBackup["source"]>): string {
  const r = replication;
  const lag = r ? (r.lagSeconds === null ? "replication lag unknown" : `replication lag ${r.lagSeconds} s`) : "no replication recorded";
  const at = r ? `, ${r.positionType === "lsn" ? "LSN" : "GTID"} ${r.position || "?"}` : "";
  return source === "replica" ? `from the replica (${lag}${at})` : `from the PRIMARY, not the replica: ${r?.why ?? "no reason recorded"} (${lag}${at})`;
}

/** The report an operator reads: a line per database, the drill's whereabouts, and one line saying what is true. */
export function formatStackStatus(status: StackBackupStatus): string {
  const width = Math.max(...status.databases.map((d) => d.database.length));
  const lines = [`Backups of stack ${status.stack} in s3://${status.bucket} (schedule "${status.schedule}" in ${status.timezone}; stale after ${formatAge(status.allowedAgeMs)})`];
  for (const d of status.databases) {
    const name = d.database.padEnd(width);
    const n = d.newest;
    const detail = n
      ? `${n.key}, taken ${n.takenAt.toISOString().replace(/\.\d{3}Z$/, "Z")} (${formatAge(n.ageMs)} ago), ${formatBytes(n.size)} compressed from ${formatBytes(n.dumpBytes)}, ${n.tables} table${n.tables === 1 ? "" : "s"}`
      : (d.problem ?? "");
    lines.push(`  ${name}  ${d.state.padEnd(7)}  ${detail}`);
    if (n && d.problem) lines.push(`  ${" ".repeat(width)}           ${d.problem}`);
    if (n?.source) lines.push(`  ${" ".repeat(width)}           ${describeSource(n.source)}`);
    for (const why of d.suspicious) lines.push(`  ${" ".repeat(width)}           SUSPICIOUS: ${why}`);
    if (d.unmarked.length > 0) {
      lines.push(`  ${" ".repeat(width)}           ${d.unmarked.length} newer data object${d.unmarked.length > 1 ? "s" : ""} without a manifest (a failed or running backup): ${d.unmarked.join(", ")}`);
    }
  }
  lines.push(
    `  restore drill: results are not kept in S3 (the drill's identity may only read); see journalctl -t ${status.drillLogTag} on the server, or the ping check's log`,
  );
  const bad = status.databases.filter((d) => d.state !== "ok");
  lines.push(
    bad.length === 0
      ? `OK: every database of ${status.stack} (${status.databases.map((d) => d.database).join(", ")}) has a backup within the schedule.`
      : `${[...new Set(bad.map((d) => d.state))].join(", ")}: ${bad.map((d) => `${d.database} ${d.state} (${d.problem})`).join("; ")}.`,
  );
  return `${lines.join("\n")}\n`;
}
