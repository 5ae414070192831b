// The backups of a stack as the operator sees them in S3: which exist (only
// those with a manifest count), which one a time asks for, and the manifest
// itself. S3 is reached through the AWS SDK for JavaScript with the
// operator's own credentials from the environment (AWS_PROFILE,
// AWS_ACCESS_KEY_ID, …), never the server's; no AWS CLI is needed.
//
// Nothing read here is trusted for being there: the server that wrote the
// backups may be compromised. Its key cannot overwrite (the bucket policy
// demands If-None-Match: *), but it can add keys. So every key is read at its
// FIRST version (a later one was written by someone else, and is named as
// suspicious), backups are ordered by S3's own LastModified, and a key dated
// after S3 received it is refused: a future-dated key planted by the server
// never becomes "the newest".
import { GetObjectCommand, ListObjectVersionsCommand, S3Client, S3ServiceException } from "@aws-sdk/client-s3";
import type { Readable } from "node:stream";
import type { StackConfig } from "../../stacks/config/schema.js";
import { MANIFEST_KEY, backupExtension, stackPrefix, type BackupManifest } from "../../infra/backup/render.js";

/** Where a stack's backups are, and how to reach them. */
export interface BackupStore {
  stack: string;
  bucket: string;
  region: string;
  /** An S3-compatible endpoint instead of AWS (`--endpoint-url`, or AWS_ENDPOINT_URL). */
  endpointUrl?: string;
  /** The lifecycle's expiry (backup.retention.expireAfterDays): its delete markers are not suspicious. */
  expireAfterDays?: number;
}

export class BackupError extends Error {
  override name = "BackupError";
}

/** An S3 request that failed: what was asked, and S3's (or the network's) answer. */
export class S3RequestError extends BackupError {
  override name = "S3RequestError";
  constructor(
    message: string,
    /** S3's error code (AccessDenied, NoSuchBucket, …), or the network's (ECONNREFUSED, …). */
    readonly code: string,
    /** The HTTP status when S3 answered. */
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The bucket and region of a stack's backups, from its validated config. */
export function backupStore(stack: string, config: Pick<StackConfig, "backup">, options: { endpointUrl?: string } = {}): BackupStore {
  const endpointUrl = options.endpointUrl ?? process.env.AWS_ENDPOINT_URL;
  return {
    stack,
    bucket: config.backup.bucket,
    region: config.backup.region,
    expireAfterDays: config.backup.retention.expireAfterDays,
    ...(endpointUrl ? { endpointUrl } : {}),
  };
}

const clients = new WeakMap<BackupStore, S3Client>();

/** One client per store: credentials from the SDK's default chain (environment, profile, SSO). */
export function s3Client(store: BackupStore): S3Client {
  let client = clients.get(store);
  if (!client) {
    // The pinned SDK runs on this project's Node 20; its warning is about later releases, and would open every command's output.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
    // A stand-in answers on one host name: the bucket goes in the path, not the name.
    client = new S3Client({ region: store.region, maxAttempts: 3, ...(store.endpointUrl ? { endpoint: store.endpointUrl, forcePathStyle: true } : {}) });
    clients.set(store, client);
  }
  return client;
}

const HINTS: Record<string, string> = {
  AccessDenied: "your AWS credentials may not do this (the operator's identity needs s3:ListBucketVersions and s3:GetObjectVersion on the bucket)",
  InvalidAccessKeyId: "the access key is not known: check AWS_PROFILE or AWS_ACCESS_KEY_ID",
  SignatureDoesNotMatch: "the secret key does not match the access key",
  NoSuchBucket: "check backup.bucket and backup.region in the stack file",
  NoSuchKey: "the object is not in the bucket",
  NoSuchVersion: "that version of the object is not in the bucket",
  InvalidObjectState: "the object is archived (S3 Glacier Flexible Retrieval or Deep Archive): bring it back with `aws s3api restore-object` first",
};

/** An SDK failure as a sentence naming what was asked and what answered. */
export function s3Failure(err: unknown, what: string, store: BackupStore): S3RequestError {
  const where = store.endpointUrl ?? `S3 in ${store.region}`;
  if (err instanceof S3ServiceException) {
    const status = err.$metadata.httpStatusCode;
    const hint = HINTS[err.name];
    return new S3RequestError(`${what} failed: ${where} answered ${status ?? "?"} ${err.name}: ${err.message}${hint ? ` (${hint})` : ""}`, err.name, status);
  }
  const e = err as Error & { code?: string };
  if (e?.name === "CredentialsProviderError") {
    return new S3RequestError(`${what} failed: no AWS credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY): ${e.message}`, e.name);
  }
  const code = e?.code ?? e?.name ?? "Error";
  return new S3RequestError(`${what} failed: could not reach ${where}: ${e?.message || String(err)}`, code);
}

/** `20260105T040001Z` → that instant. */
export function timestampOfKey(stamp: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(stamp);
  if (!m) throw new BackupError(`"${stamp}" is not a backup timestamp (YYYYMMDDTHHMMSSZ)`);
  return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

/**
 * How far the time in a key may be ahead of S3's LastModified for its first
 * version: the clock skew S3 itself accepts in a signed request (15 min). A
 * key dated later than that was named for a time that had not come when S3
 * received it: refused, never taken for the newest backup.
 */
export const ALLOWED_CLOCK_SKEW_MS = 15 * 60_000;
const DAY_MS = 24 * 3600_000;

/** A key as the backups' readers see it: its FIRST version, and how many it has. */
export interface StoredObject {
  key: string;
  /** Bytes of the first version. */
  size: number;
  /** When S3 received the first version (S3's clock, not the server's). */
  lastModified: Date;
  /** The first version's id ("null" in a bucket that was never versioned). */
  versionId?: string;
  /** Versions and delete markers of the key; more than one means it was written (or hidden) after its upload. */
  versions: number;
}

/** One entry of ListObjectVersions: a version, or a delete marker. */
export interface ListedVersion {
  key: string;
  versionId?: string;
  size: number;
  lastModified: Date;
  deleteMarker: boolean;
}

/**
 * Every key's first version, from a version listing (S3 lists a key's
 * versions newest first; LastModified decides, the listing order breaks ties).
 * A key whose only entries are delete markers has no data to read: left out.
 *
 * `versions` counts what was written or hidden after the first upload, except
 * the bucket lifecycle's own expiry: on a versioned bucket, expiring a backup
 * puts a delete marker on it, no sooner than `expireAfterDays` after it was
 * written (S3 adds the days to the creation time and rounds up to midnight
 * UTC). Such a marker is not counted; counted, every backup past its expiry
 * would be SUSPICIOUS until its noncurrent version expires too, and the drill
 * would fail every run once backups start to expire. Nothing but the admin and
 * the lifecycle can write a delete marker (the server's key may not delete).
 */
export function firstVersions(listed: readonly ListedVersion[], expireAfterDays?: number): StoredObject[] {
  const byKey = new Map<string, { entry: ListedVersion; index: number }[]>();
  listed.forEach((entry, index) => {
    const all = byKey.get(entry.key) ?? [];
    all.push({ entry, index });
    byKey.set(entry.key, all);
  });
  const objects: StoredObject[] = [];
  for (const [key, all] of byKey) {
    const data = all.filter((v) => !v.entry.deleteMarker).sort((x, y) => x.entry.lastModified.getTime() - y.entry.lastModified.getTime() || y.index - x.index);
    const first = data[0]?.entry;
    if (!first) continue;
    const expiresAt = expireAfterDays === undefined ? Infinity : first.lastModified.getTime() + expireAfterDays * DAY_MS;
    const versions = all.filter((v) => !v.entry.deleteMarker || v.entry.lastModified.getTime() < expiresAt).length;
    objects.push({ key, size: first.size, lastModified: first.lastModified, ...(first.versionId ? { versionId: first.versionId } : {}), versions });
  }
  return objects.sort((x, y) => x.key.localeCompare(y.key));
}

/** Why a listed key cannot be taken at face value, or undefined. */
export function suspicion(object: StoredObject): { refused: boolean; why: string } | undefined {
  const stamp = /\/(\d{8}T\d{6}Z)\.[^/]+$/.exec(object.key)?.[1];
  if (stamp && timestampOfKey(stamp).getTime() > object.lastModified.getTime() + ALLOWED_CLOCK_SKEW_MS) {
    return {
      refused: true,
      why: `${object.key} is dated ${stamp}, after S3 received it (${isoSeconds(object.lastModified)}; ${ALLOWED_CLOCK_SKEW_MS / 60_000} min of clock skew allowed): refused, a future-dated key is never the newest backup`,
    };
  }
  if (object.versions > 1) {
    return { refused: false, why: `${object.key} has ${object.versions} versions: it was written or hidden after its first upload, which is the one read` };
  }
  return undefined;
}

function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** One good backup: a manifest and the data object it names. */
export interface BackupEntry {
  database: string;
  manifestKey: string;
  /** The manifest's first version. */
  manifestVersionId?: string;
  /** When the run started (from the key, UTC). */
  takenAt: Date;
  /** When S3 received the manifest's first version: backups are ordered by this. */
  storedAt: Date;
}

/**
 * The good backups among listed objects, in the order S3 received their
 * manifests (oldest first), and what is suspicious among them. A data object
 * without a manifest is not a backup; a future-dated manifest is refused.
 */
export function backupsFromObjects(stack: string, objects: readonly StoredObject[]): { entries: BackupEntry[]; suspicious: string[] } {
  const entries: BackupEntry[] = [];
  const suspicious: string[] = [];
  for (const object of objects) {
    if (!object.key.startsWith(stackPrefix(stack))) continue;
    const doubt = suspicion(object);
    if (doubt) suspicious.push(doubt.why);
    const m = MANIFEST_KEY.exec(object.key);
    if (!m || doubt?.refused) continue;
    entries.push({
      database: m[2] as string,
      manifestKey: object.key,
      ...(object.versionId ? { manifestVersionId: object.versionId } : {}),
      takenAt: timestampOfKey(m[3] as string),
      storedAt: object.lastModified,
    });
  }
  entries.sort((x, y) => x.storedAt.getTime() - y.storedAt.getTime() || x.takenAt.getTime() - y.takenAt.getTime() || x.manifestKey.localeCompare(y.manifestKey));
  return { entries, suspicious };
}

/** A date, with an optional time (`T` or a space) to the minute or second, at the start of `--at`. */
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?/;

/**
 * A point in time from the command line: ISO 8601 with a zone
 * (`2026-01-05T04:00:00Z`, `2026-01-05T13:00+09:00`), or a date or date-time
 * without one, read in `timeZone` (the stack's backup time zone).
 */
export function parseTime(text: string, timeZone: string): Date {
  const usage = `use e.g. 2026-01-05, "2026-01-05 13:30" (in ${timeZone}) or 2026-01-05T04:30:00Z`;
  // Date.UTC and Date's parser roll an impossible field over (2026-02-30 is
  // 2 March, 25:00 the next day): a restore of another moment than asked.
  const fields = DATE_TIME.exec(text);
  if (fields) {
    const [y, mo, d, h, mi, sec] = fields.slice(1).map((f) => Number(f ?? 0)) as [number, number, number, number, number, number];
    const t = new Date(Date.UTC(y, mo - 1, d, h, mi, sec));
    if (t.getUTCFullYear() !== y || t.getUTCMonth() !== mo - 1 || t.getUTCDate() !== d || t.getUTCHours() !== h || t.getUTCMinutes() !== mi || t.getUTCSeconds() !== sec) {
      throw new BackupError(`--at "${text}": there is no such date or time; ${usage}`);
    }
  }
  if (/[zZ]$|[+-]\d{2}:?\d{2}$/.test(text)) {
    const date = new Date(text);
    if (!Number.isNaN(date.getTime())) return date;
  }
  // Without a zone: the date (and time) and nothing else.
  const m = fields?.[0] === text ? fields : null;
  if (!m) throw new BackupError(`--at "${text}" is not a time: ${usage}`);
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

/** The backup of `database` S3 received last among those taken at or before `at` (any time when undefined). */
export function chooseBackup(entries: readonly BackupEntry[], database: string, at?: Date): BackupEntry | undefined {
  const candidates = entries.filter((e) => e.database === database && (at === undefined || e.takenAt.getTime() <= at.getTime()));
  return candidates[candidates.length - 1];
}

/** Every key under `prefix` (the stack's by default), at its first version: ListObjectVersions, every page. */
export async function listObjects(store: BackupStore, prefix = stackPrefix(store.stack)): Promise<StoredObject[]> {
  const listed: ListedVersion[] = [];
  try {
    // The SDK has no paginator for this listing: the markers carry on.
    let markers: { KeyMarker?: string; VersionIdMarker?: string } = {};
    for (;;) {
      const page = await s3Client(store).send(new ListObjectVersionsCommand({ Bucket: store.bucket, Prefix: prefix, ...markers }));
      for (const v of page.Versions ?? []) {
        listed.push({ key: v.Key!, ...(v.VersionId ? { versionId: v.VersionId } : {}), size: v.Size ?? 0, lastModified: v.LastModified!, deleteMarker: false });
      }
      for (const d of page.DeleteMarkers ?? []) {
        listed.push({ key: d.Key!, ...(d.VersionId ? { versionId: d.VersionId } : {}), size: 0, lastModified: d.LastModified!, deleteMarker: true });
      }
      if (!page.IsTruncated) break;
      markers = { ...(page.NextKeyMarker ? { KeyMarker: page.NextKeyMarker } : {}), ...(page.NextVersionIdMarker ? { VersionIdMarker: page.NextVersionIdMarker } : {}) };
    }
  } catch (err) {
    throw s3Failure(err, `listing s3://${store.bucket}/${prefix}`, store);
  }
  return firstVersions(listed, store.expireAfterDays);
}

/** An object's body as a stream (one version of it), with S3's checksum checked by the SDK where S3 has a whole-object one. */
export async function openObject(store: BackupStore, key: string, versionId?: string): Promise<{ body: Readable; size: number }> {
  const what = `reading s3://${store.bucket}/${key}${versionId ? ` (version ${versionId})` : ""}`;
  try {
    const answer = await s3Client(store).send(new GetObjectCommand({ Bucket: store.bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}), ChecksumMode: "ENABLED" }));
    return { body: answer.Body as Readable, size: answer.ContentLength ?? 0 };
  } catch (err) {
    throw s3Failure(err, what, store);
  }
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
  // A manifest names the data object of its own run, never another key (a
  // planted manifest could otherwise point a restore at anything readable).
  const run = MANIFEST_KEY.exec(key);
  if (run) need(m.key === `${run[1]}/${run[2]}/${run[3]}.${backupExtension(m.engine!)}`, "key");
  return m as BackupManifest;
}

/** Reads a manifest at the given version (its first, from the listing). */
export async function readManifest(store: BackupStore, manifestKey: string, versionId?: string): Promise<BackupManifest> {
  const { body } = await openObject(store, manifestKey, versionId);
  const chunks: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const chunk of body) {
      bytes += (chunk as Buffer).length;
      // A manifest is a few KiB; a server could put anything at the key.
      if (bytes > 16 * 1024 * 1024) throw new BackupError(`manifest ${manifestKey} is larger than 16 MiB: not a manifest`);
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw s3Failure(err, `reading s3://${store.bucket}/${manifestKey}`, store);
  }
  return parseManifest(Buffer.concat(chunks).toString("utf8"), manifestKey);
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
