// A restore, step by step: pick the backup (the one S3 received last among
// those taken at or before a time, or a named key), download its first
// version while checking its sha256 against the manifest, refuse a non-empty
// target unless forced, stream it through zstd into the target's client,
// then compare the target with the manifest. What a compromised server may
// have added (a key with more versions, a future-dated key) is named; the
// first version is what is read, and a future-dated key is refused.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { MANIFEST_KEY, type BackupManifest } from "../../infra/backup/render.js";
import {
  BackupError,
  backupsFromObjects,
  chooseBackup,
  formatBytes,
  listObjects,
  openObject,
  readManifest,
  S3RequestError,
  s3Failure,
  suspicion,
  type BackupEntry,
  type BackupStore,
  type StoredObject,
} from "./backups.js";
import { clientEnv, clientFailure, describeTarget, existingObjects, familyOf, pgRestoreProblem, restoreCommand, type RestoreTarget } from "./target.js";

export interface RestoreRequest {
  store: BackupStore;
  /** Which database of the stack (its folder in the bucket). */
  database: string;
  /** The newest backup at or before this instant; the newest of all when neither this nor `key` is given. */
  at?: Date;
  /** A backup's data or manifest key, instead of a time. */
  key?: string;
  target: RestoreTarget;
  /** Restore into a database that already holds objects; the backup's objects replace those of the same name. */
  force: boolean;
  /** Where progress and steps go, one line each. */
  say: (line: string) => void;
}

export interface RestoreResult {
  manifestKey: string;
  manifest: BackupManifest;
  tables: number;
  /** The download includes its sha256 check (hashed as it arrives). */
  seconds: { download: number; restore: number };
}

/** The manifest key a data or manifest key belongs to. */
export function manifestKeyFor(key: string): string {
  if (MANIFEST_KEY.test(key)) return key;
  const m = /^([^/]+\/[^/]+\/\d{8}T\d{6}Z)\.[a-z.]+$/.exec(key);
  if (!m) throw new BackupError(`--key "${key}" is not a backup key (<stack>/<database>/<YYYYMMDDTHHMMSSZ>.<ext>)`);
  return `${m[1]}.manifest.json`;
}

interface PickedBackup {
  entry: BackupEntry;
  /** Every key of the backup's database, at its first version. */
  objects: StoredObject[];
}

/** Lists the database's folder once, says what is suspicious there, and picks the backup. */
async function pickBackup(request: RestoreRequest): Promise<PickedBackup> {
  const { store, at, key, say } = request;
  let database = request.database;
  let manifestKey: string | undefined;
  if (key) {
    manifestKey = manifestKeyFor(key);
    if (!manifestKey.startsWith(`${store.stack}/`)) throw new BackupError(`--key "${key}" is not under stack ${store.stack}'s prefix ${store.stack}/`);
    database = MANIFEST_KEY.exec(manifestKey)![2]!;
  }
  const folder = `${store.stack}/${database}/`;
  const objects = await listObjects(store, folder);
  const { entries, suspicious } = backupsFromObjects(store.stack, objects);
  for (const why of suspicious) say(`  SUSPICIOUS: ${why}`);
  if (manifestKey) {
    const named = entries.find((e) => e.manifestKey === manifestKey);
    if (named) return { entry: named, objects };
    const listed = objects.find((o) => o.key === manifestKey);
    const doubt = listed && suspicion(listed);
    throw new BackupError(doubt?.refused ? `--key "${key}": ${doubt.why}` : `--key "${key}": no manifest ${manifestKey} in s3://${store.bucket}/${folder}, so it is not a backup`);
  }
  const chosen = chooseBackup(entries, database, at);
  if (!chosen) {
    const when = at ? ` at or before ${at.toISOString()}` : "";
    throw new BackupError(`no backup of ${store.stack}/${database}${when} has a manifest in s3://${store.bucket}/${folder}`);
  }
  return { entry: chosen, objects };
}

/** Calls `report` at most once a second, and once at the end. */
function throttled(report: () => void): { tick(): void; done(): void } {
  let last = 0;
  return {
    tick() {
      const now = Date.now();
      if (now - last >= 1000) {
        last = now;
        report();
      }
    },
    done: report,
  };
}

function percent(part: number, whole: number): string {
  return whole > 0 ? `${Math.min(100, Math.floor((part / whole) * 100))}%` : "";
}

/**
 * Streams the data object's first version to `dir`, hashing it on the way;
 * refuses it unless its size and sha256 are the manifest's.
 */
async function download(request: RestoreRequest, manifest: BackupManifest, data: StoredObject, dir: string): Promise<{ file: string; sha256: string }> {
  const { store, say } = request;
  const file = join(dir, "backup");
  const where = `s3://${store.bucket}/${manifest.key}`;
  if (data.size !== manifest.size) throw new BackupError(`${where} holds ${data.size} bytes, its manifest says ${manifest.size}; nothing was restored`);
  const { body } = await openObject(store, manifest.key, data.versionId).catch((err: unknown) => {
    if (err instanceof S3RequestError && err.code === "InvalidObjectState") throw new BackupError(archivedObject(store, manifest.key, data.versionId));
    throw err;
  });
  let received = 0;
  const hash = createHash("sha256");
  const progress = throttled(() => say(`  download ${percent(received, manifest.size)} (${formatBytes(received)} of ${formatBytes(manifest.size)})`));
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      hash.update(chunk);
      progress.tick();
      callback(null, chunk);
    },
  });
  try {
    await pipeline(body, meter, createWriteStream(file, { mode: 0o600 }));
  } catch (err) {
    throw s3Failure(err, `downloading ${where}`, store);
  }
  progress.done();
  const sha256 = hash.digest("hex");
  if (received !== manifest.size || sha256 !== manifest.sha256) {
    throw new BackupError(`${where} does not match its manifest: ${received} bytes with sha256 ${sha256}, expected ${manifest.size} bytes with ${manifest.sha256}; nothing was restored`);
  }
  return { file, sha256 };
}

/**
 * What to do about a data object S3 will not serve until it is thawed: one in
 * Glacier Flexible Retrieval or Deep Archive (this program's lifecycle archives
 * to Glacier Instant Retrieval, which reads at once; an object moved by an
 * older rule, or by hand, may still be there).
 */
export function archivedObject(store: Pick<BackupStore, "bucket">, key: string, versionId?: string): string {
  const version = versionId ? ` --version-id ${versionId}` : "";
  return (
    `s3://${store.bucket}/${key} is archived (S3 Glacier Flexible Retrieval or Deep Archive) and cannot be read until it is restored from the archive; nothing was restored. ` +
    `Bring it back for a few days with \`aws s3api restore-object --bucket ${store.bucket} --key ${key}${version} --restore-request Days=3\`, ` +
    `wait until \`aws s3api head-object --bucket ${store.bucket} --key ${key}${version}\` says ongoing-request="false" (minutes to hours; Deep Archive up to 48 h), then run this restore again`
  );
}

/**
 * Streams `file` through `zstd -dc` into the target's client. The dump goes
 * from zstd straight into the client through a pipe of their own (as in
 * `zstd -dc | mariadb`): this process feeds zstd the compressed file, counting
 * it for the progress, and never handles the dump, which is 3 to 4 times
 * larger and whose every byte it would otherwise copy once more beside the
 * database server's work.
 */
async function feedTarget(request: RestoreRequest, manifest: BackupManifest, file: string): Promise<void> {
  const { target, say, force } = request;
  const [command, args] = restoreCommand(target, { force });
  const zstd = spawn("zstd", ["--decompress", "--stdout", "--quiet"], { stdio: ["pipe", "pipe", "pipe"] });
  const client = spawn(command, args, { stdio: [zstd.stdout, "ignore", "pipe"], env: clientEnv(target) });
  // The client holds the pipe's read end now; this process's copy would only compete with it.
  zstd.stdout.destroy();
  let zstdErr = "";
  let clientErr = "";
  zstd.stderr.on("data", (d: Buffer) => (zstdErr += d.toString()));
  client.stderr!.on("data", (d: Buffer) => (clientErr += d.toString()));
  const exit = (child: typeof zstd | typeof client, name: string) =>
    new Promise<number>((resolve, reject) => {
      child.once("error", (err) => reject(new BackupError(`${name} could not run: ${err.message}`)));
      child.once("close", (code) => resolve(code ?? -1));
    });
  const zstdExit = exit(zstd, "zstd");
  const clientExit = exit(client, command);
  let fed = 0;
  const progress = throttled(() => say(`  restore ${percent(fed, manifest.size)} (${formatBytes(fed)} of ${formatBytes(manifest.size)} compressed, ${formatBytes(manifest.dumpBytes)} of dump)`));
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      fed += chunk.length;
      progress.tick();
      callback(null, chunk);
    },
  });
  let streamError: unknown;
  try {
    await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), counter, zstd.stdin);
  } catch (err) {
    // zstd stopped reading: the client failed and zstd's output broke, and their messages say why.
    streamError = err;
  }
  const [zstdCode, clientCode] = await Promise.all([zstdExit, clientExit]);
  progress.done();
  // The client first: when it fails, zstd fails too, writing into the closed pipe.
  if (clientCode !== 0) throw new BackupError(`${command} failed to restore into ${target.shown}: ${clientFailure(clientErr) || `exit ${clientCode}`}`);
  if (zstdCode !== 0) throw new BackupError(`decompressing ${manifest.key} failed: ${zstdErr.trim() || `zstd exited with ${zstdCode}`}`);
  if (streamError) throw new BackupError(`streaming ${manifest.key} into zstd failed: ${(streamError as Error).message}`);
}

/** The differences between the restored target and the manifest, as sentences. */
export function compareWithManifest(manifest: BackupManifest, actual: ReturnType<typeof describeTarget>): string[] {
  const problems: string[] = [];
  const rows = new Map(actual.tables.map((t) => [t.name, t.rows]));
  for (const table of manifest.tables) {
    const found = rows.get(table.name);
    if (found === undefined) problems.push(`table ${table.name} is missing`);
    else if (found !== table.rows) problems.push(`table ${table.name} has ${found} rows, the backup ${table.rows}`);
  }
  const objects = new Set(actual.objects.map((o) => `${o.type} ${o.name}`));
  for (const object of manifest.objects) {
    if (!objects.has(`${object.type} ${object.name}`)) problems.push(`${object.type} ${object.name} is missing`);
  }
  return problems;
}

export async function restoreBackup(request: RestoreRequest): Promise<RestoreResult> {
  const { store, target, say } = request;
  const { entry, objects } = await pickBackup(request);
  const manifestKey = entry.manifestKey;
  say(`Backup: s3://${store.bucket}/${manifestKey} (received by S3 ${entry.storedAt.toISOString()})`);
  const manifest = await readManifest(store, manifestKey, entry.manifestVersionId);
  say(`  ${manifest.engine} ${manifest.serverVersion}, taken ${manifest.createdAt}, ${formatBytes(manifest.size)} compressed, ${manifest.tables.length} tables`);
  if (familyOf(manifest.engine) !== target.family) {
    throw new BackupError(`the backup is ${manifest.engine} but --target ${target.shown} is ${target.family === "postgres" ? "PostgreSQL" : "MySQL/MariaDB"}`);
  }
  const tooOld = target.family === "postgres" ? pgRestoreProblem(manifest.serverVersion) : undefined;
  if (tooOld) throw new BackupError(`${tooOld}; nothing was restored`);
  const data = objects.find((o) => o.key === manifest.key);
  if (!data) throw new BackupError(`the manifest ${manifestKey} names ${manifest.key}, which is not in s3://${store.bucket}/; nothing was restored`);

  const existing = existingObjects(target);
  if (existing.length > 0 && !request.force) {
    throw new BackupError(
      `the target ${target.shown} is not empty (${existing.slice(0, 5).join(", ")}${existing.length > 5 ? `, and ${existing.length - 5} more` : ""}); ` +
        "restore into an empty database, or pass --force to replace the backup's objects there (objects the backup does not have are left as they are)",
    );
  }
  if (existing.length > 0) say(`  --force: ${existing.length} existing objects in ${target.shown}; the backup's objects replace those of the same name`);

  const dir = mkdtempSync(join(tmpdir(), "bbaegok-restore-"));
  try {
    let started = Date.now();
    say(`Downloading ${manifest.key}${data.versions > 1 ? ` (its first version, ${data.versionId})` : ""}`);
    const { file, sha256 } = await download(request, manifest, data, dir);
    const seconds = { download: (Date.now() - started) / 1000, restore: 0 };
    say(`  sha256 matches the manifest (${sha256.slice(0, 16)}…)`);

    started = Date.now();
    say(`Restoring into ${target.shown}`);
    await feedTarget(request, manifest, file);
    seconds.restore = (Date.now() - started) / 1000;

    const problems = compareWithManifest(manifest, describeTarget(target));
    if (problems.length > 0) throw new BackupError(`the restored database differs from the backup's manifest: ${problems.join("; ")}`);
    return { manifestKey, manifest, tables: manifest.tables.length, seconds };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
