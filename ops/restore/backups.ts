// The backups of a stack as the operator sees them in S3: which exist (only
// those with a manifest count), which one a time asks for, and the manifest
// itself. S3 is reached through the AWS CLI with the operator's own
// credentials from the environment (AWS_PROFILE, AWS_ACCESS_KEY_ID, …), never
// the server's.
import { spawn, spawnSync } from "node:child_process";
import { PROJECT_DIR } from "../../stacks/config/index.js";
import { readSiblings, readStackFile } from "../../stacks/config/files.js";
import type { StackConfig } from "../../stacks/config/schema.js";
import { rawFromPulumiConfig, validateStackConfig } from "../../stacks/config/validate.js";
import { MANIFEST_KEY, stackPrefix, type BackupManifest } from "../../infra/backup/render.js";

/** Where a stack's backups are, and how to reach them. */
export interface BackupStore {
  stack: string;
  bucket: string;
  region: string;
  /** An S3-compatible endpoint instead of AWS (`--endpoint-url`, or AWS_ENDPOINT_URL). */
  endpointUrl?: string;
}

export class BackupError extends Error {
  override name = "BackupError";
}

/** The stack's validated config, read from its Pulumi.<stack>.yaml. */
export function stackConfig(stack: string, projectDir = PROJECT_DIR): StackConfig {
  return validateStackConfig(stack, rawFromPulumiConfig(readStackFile(projectDir, stack).config), readSiblings(projectDir, stack));
}

/** The bucket and region of a stack's backups, from its stack file. */
export function backupStore(stack: string, options: { endpointUrl?: string; projectDir?: string } = {}): BackupStore {
  const config = stackConfig(stack, options.projectDir);
  const endpointUrl = options.endpointUrl ?? process.env.AWS_ENDPOINT_URL;
  return { stack, bucket: config.backup.bucket, region: config.backup.region, ...(endpointUrl ? { endpointUrl } : {}) };
}

function awsArgs(store: BackupStore, args: string[]): string[] {
  return ["--region", store.region, ...(store.endpointUrl ? ["--endpoint-url", store.endpointUrl] : []), ...args];
}

/** Runs the AWS CLI; throws a sentence naming what failed. */
export function aws(store: BackupStore, args: string[], what: string): string {
  const result = spawnSync("aws", awsArgs(store, args), { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw new BackupError(`${what} failed: the AWS CLI could not run (${result.error.message}); install it (Debian: apt-get install awscli)`);
  if (result.status !== 0) throw new BackupError(`${what} failed: ${result.stderr.trim() || `aws exited with ${result.status}`}`);
  return result.stdout;
}

/** Runs the AWS CLI without blocking the event loop (long downloads with progress). */
export function awsAsync(store: BackupStore, args: string[], what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("aws", awsArgs(store, args), { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", (err) => reject(new BackupError(`${what} failed: the AWS CLI could not run (${err.message})`)));
    child.once("close", (code) => (code === 0 ? resolve() : reject(new BackupError(`${what} failed: ${stderr.trim() || `aws exited with ${code}`}`))));
  });
}

/** One good backup: a manifest and the data object it names. */
export interface BackupEntry {
  database: string;
  manifestKey: string;
  /** When the run started (from the key, UTC). */
  takenAt: Date;
}

/** `20260105T040001Z` → that instant. */
export function timestampOfKey(stamp: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(stamp);
  if (!m) throw new BackupError(`"${stamp}" is not a backup timestamp (YYYYMMDDTHHMMSSZ)`);
  return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

/** The good backups among listed keys, oldest first. A data object without a manifest is not one. */
export function backupsFromKeys(stack: string, keys: readonly string[]): BackupEntry[] {
  const entries: BackupEntry[] = [];
  for (const key of keys) {
    const m = MANIFEST_KEY.exec(key);
    if (!m || m[1] !== stack) continue;
    entries.push({ database: m[2] as string, manifestKey: key, takenAt: timestampOfKey(m[3] as string) });
  }
  return entries.sort((a, b) => a.takenAt.getTime() - b.takenAt.getTime() || a.manifestKey.localeCompare(b.manifestKey));
}

/**
 * A point in time from the command line: ISO 8601 with a zone
 * (`2026-01-05T04:00:00Z`, `2026-01-05T13:00+09:00`), or a date or date-time
 * without one, read in `timeZone` (the stack's backup time zone).
 */
export function parseTime(text: string, timeZone: string): Date {
  if (/[zZ]$|[+-]\d{2}:?\d{2}$/.test(text)) {
    const date = new Date(text);
    if (!Number.isNaN(date.getTime())) return date;
  }
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(text);
  if (!m) throw new BackupError(`--at "${text}" is not a time: use e.g. 2026-01-05, "2026-01-05 13:30" (in ${timeZone}) or 2026-01-05T04:30:00Z`);
  const wall = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4] ?? 23), Number(m[5] ?? 59), Number(m[6] ?? 59));
  // The zone's offset at that wall time (twice, to settle across a DST change).
  let guess = wall;
  for (let i = 0; i < 2; i++) guess = wall - zoneOffsetMs(new Date(guess), timeZone);
  return new Date(guess);
}

function zoneOffsetMs(date: Date, timeZone: string): number {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" }).formatToParts(date);
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  return Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second")) - Math.floor(date.getTime() / 1000) * 1000;
}

/** The newest backup of `database` taken at or before `at` (any time when undefined). */
export function chooseBackup(entries: readonly BackupEntry[], database: string, at?: Date): BackupEntry | undefined {
  const candidates = entries.filter((e) => e.database === database && (at === undefined || e.takenAt.getTime() <= at.getTime()));
  return candidates[candidates.length - 1];
}

/** An object as S3 lists it. */
export interface StoredObject {
  key: string;
  size: number;
  /** When S3 received it (S3's clock, not the server's). */
  lastModified: Date;
}

/** Every object under the stack's prefix (the CLI follows the pages). */
export function listKeys(store: BackupStore, prefix = stackPrefix(store.stack)): StoredObject[] {
  const out = aws(store, ["s3api", "list-objects-v2", "--bucket", store.bucket, "--prefix", prefix, "--output", "json"], `listing s3://${store.bucket}/${prefix}`);
  const parsed = (out.trim() ? JSON.parse(out) : {}) as { Contents?: { Key: string; Size: number; LastModified: string }[] };
  return (parsed.Contents ?? []).map((c) => ({ key: c.Key, size: c.Size, lastModified: new Date(c.LastModified) }));
}

export function listBackups(store: BackupStore): BackupEntry[] {
  return backupsFromKeys(
    store.stack,
    listKeys(store).map((o) => o.key),
  );
}

/** Checks a manifest's shape; throws a sentence naming the key and the field. */
export function parseManifest(text: string, key: string): BackupManifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BackupError(`manifest ${key} is not JSON`);
  }
  const m = value as Partial<BackupManifest>;
  const need = (ok: boolean, field: string) => {
    if (!ok) throw new BackupError(`manifest ${key} has no valid "${field}"`);
  };
  need(m.format === 1, "format");
  need(m.engine === "mariadb" || m.engine === "mysql" || m.engine === "postgres", "engine");
  need(typeof m.key === "string" && m.key.length > 0, "key");
  need(typeof m.sha256 === "string" && /^[0-9a-f]{64}$/.test(m.sha256), "sha256");
  need(typeof m.size === "number", "size");
  need(typeof m.dumpBytes === "number", "dumpBytes");
  need(Array.isArray(m.tables), "tables");
  need(Array.isArray(m.objects), "objects");
  return m as BackupManifest;
}

export function readManifest(store: BackupStore, manifestKey: string): BackupManifest {
  const text = aws(store, ["s3", "cp", `s3://${store.bucket}/${manifestKey}`, "-"], `reading the manifest s3://${store.bucket}/${manifestKey}`);
  return parseManifest(text, manifestKey);
}

/** A byte count for people: 1.2 GiB, 35.0 MiB, 512 B. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** A duration for people: 3 d 4 h, 2 h 5 min, 40 s. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 120) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ${min % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}
