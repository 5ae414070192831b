// A restore, step by step: pick the backup (newest with a manifest at or
// before a time, or a named key), download it, check its sha256 against the
// manifest, refuse a non-empty target unless forced, stream it through zstd
// into the target's client, then compare the target with the manifest.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { MANIFEST_KEY, type BackupManifest } from "../../infra/backup/render.js";
import { BackupError, awsAsync, chooseBackup, formatBytes, listBackups, readManifest, type BackupEntry, type BackupStore } from "./backups.js";
import { clientEnv, describeTarget, existingObjects, familyOf, restoreCommand, type RestoreTarget } from "./target.js";

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
  seconds: { download: number; verify: number; restore: number };
}

/** The manifest key a data or manifest key belongs to. */
export function manifestKeyFor(key: string): string {
  if (MANIFEST_KEY.test(key)) return key;
  const m = /^([^/]+\/[^/]+\/\d{8}T\d{6}Z)\.[a-z.]+$/.exec(key);
  if (!m) throw new BackupError(`--key "${key}" is not a backup key (<stack>/<database>/<YYYYMMDDTHHMMSSZ>.<ext>)`);
  return `${m[1]}.manifest.json`;
}

function pickBackup(request: RestoreRequest): string {
  const { store, database, at, key } = request;
  if (key) {
    const manifestKey = manifestKeyFor(key);
    if (!manifestKey.startsWith(`${store.stack}/`)) throw new BackupError(`--key "${key}" is not under stack ${store.stack}'s prefix ${store.stack}/`);
    return manifestKey;
  }
  const entries = listBackups(store);
  const chosen: BackupEntry | undefined = chooseBackup(entries, database, at);
  if (!chosen) {
    const when = at ? ` at or before ${at.toISOString()}` : "";
    const known = [...new Set(entries.map((e) => e.database))];
    throw new BackupError(
      `no backup of ${store.stack}/${database}${when} has a manifest in s3://${store.bucket}/${store.stack}/${database}/` + (known.length ? ` (databases with backups: ${known.join(", ")})` : ""),
    );
  }
  return chosen.manifestKey;
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

async function download(request: RestoreRequest, manifest: BackupManifest, dir: string): Promise<string> {
  const { store, say } = request;
  const file = join(dir, "backup");
  const downloaded = () => readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
  const progress = throttled(() => say(`  download ${percent(downloaded(), manifest.size)} (${formatBytes(downloaded())} of ${formatBytes(manifest.size)})`));
  const timer = setInterval(() => progress.tick(), 250);
  try {
    await awsAsync(store, ["s3", "cp", `s3://${store.bucket}/${manifest.key}`, file, "--only-show-errors"], `downloading s3://${store.bucket}/${manifest.key}`);
  } finally {
    clearInterval(timer);
  }
  progress.done();
  return file;
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(file), hash);
  return hash.digest("hex");
}

/** Streams `file` through `zstd -dc` into the target's client, reporting bytes of dump restored. */
async function feedTarget(request: RestoreRequest, manifest: BackupManifest, file: string): Promise<void> {
  const { target, say, force } = request;
  const [command, args] = restoreCommand(target, { force });
  const zstd = spawn("zstd", ["--decompress", "--stdout", "--quiet", file], { stdio: ["ignore", "pipe", "pipe"] });
  const client = spawn(command, args, { stdio: ["pipe", "ignore", "pipe"], env: clientEnv(target) });
  let zstdErr = "";
  let clientErr = "";
  zstd.stderr.on("data", (d: Buffer) => (zstdErr += d.toString()));
  client.stderr.on("data", (d: Buffer) => (clientErr += d.toString()));
  const exit = (child: typeof zstd | typeof client, name: string) =>
    new Promise<number>((resolve, reject) => {
      child.once("error", (err) => reject(new BackupError(`${name} could not run: ${err.message}`)));
      child.once("close", (code) => resolve(code ?? -1));
    });
  const zstdExit = exit(zstd, "zstd");
  const clientExit = exit(client, command);
  let restored = 0;
  const progress = throttled(() => say(`  restore ${percent(restored, manifest.dumpBytes)} (${formatBytes(restored)} of ${formatBytes(manifest.dumpBytes)} of dump)`));
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      restored += chunk.length;
      progress.tick();
      callback(null, chunk);
    },
  });
  let streamError: unknown;
  try {
    await pipeline(zstd.stdout, counter, client.stdin);
  } catch (err) {
    // The client stopped reading (it failed): its own message says why.
    streamError = err;
  }
  const [zstdCode, clientCode] = await Promise.all([zstdExit, clientExit]);
  progress.done();
  if (zstdCode !== 0) throw new BackupError(`decompressing ${manifest.key} failed: ${zstdErr.trim() || `zstd exited with ${zstdCode}`}`);
  if (clientCode !== 0) throw new BackupError(`${command} failed to restore into ${target.shown}: ${clientErr.trim().split("\n").slice(-5).join(" ") || `exit ${clientCode}`}`);
  if (streamError) throw new BackupError(`streaming the dump into ${target.shown} failed: ${(streamError as Error).message}`);
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
  const manifestKey = pickBackup(request);
  say(`Backup: s3://${store.bucket}/${manifestKey}`);
  const manifest = readManifest(store, manifestKey);
  say(`  ${manifest.engine} ${manifest.serverVersion}, taken ${manifest.createdAt}, ${formatBytes(manifest.size)} compressed, ${manifest.tables.length} tables`);
  if (familyOf(manifest.engine) !== target.family) {
    throw new BackupError(`the backup is ${manifest.engine} but --target ${target.shown} is ${target.family === "postgres" ? "PostgreSQL" : "MySQL/MariaDB"}`);
  }

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
    say(`Downloading ${manifest.key}`);
    const file = await download(request, manifest, dir);
    const seconds = { download: (Date.now() - started) / 1000, verify: 0, restore: 0 };

    started = Date.now();
    const sha = await sha256Of(file);
    if (sha !== manifest.sha256) throw new BackupError(`s3://${store.bucket}/${manifest.key} does not match its manifest: sha256 ${sha}, expected ${manifest.sha256}; nothing was restored`);
    seconds.verify = (Date.now() - started) / 1000;
    say(`  sha256 matches the manifest (${sha.slice(0, 16)}…)`);

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
