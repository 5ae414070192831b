// The restore drill reads S3 as ops/ does: its first_versions (jq, in
// infra/backup/restore-drill.bash) is run by the real jq on version listings
// as Debian's AWS CLI prints them, and must agree with ops/restore/backups.ts
// (firstVersions, suspicion, the newest by LastModified) on each: which
// version of every key is read, which keys are suspicious and why (the same
// sentences), and which manifest is the newest backup.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { backupPaths, restoreDrillScript, stackBackupTargets } from "../../infra/backup/render.js";
import { backupsFromObjects, chooseBackup, firstVersions, type ListedVersion } from "../../ops/restore/backups.js";
import { requireCommand } from "../support/system.js";
import { loadStack } from "../../stacks/config/load.js";

const STACK = "prod";
const DB = "bbaegok";
const config = loadStack(STACK).config;
const script = restoreDrillScript({ service: config.service, stack: STACK, backup: config.backup, targets: stackBackupTargets(config, STACK), paths: backupPaths(config.service, STACK, config.server.dataDir) });
const firstVersionsFn = /^first_versions\(\) \{\n[\s\S]*?\n\}$/m.exec(script)?.[0];
// The header line first_versions reads: the lifecycle's expiry, as rendered.
const expireLine = /^readonly EXPIRE_AFTER_DAYS=\d+$/m.exec(script)?.[0];
const EXPIRE_DAYS = config.backup.retention.expireAfterDays;

interface DrillReading {
  first: Record<string, { version: string; modified: number }>;
  suspicious: string[];
  newest: { key: string; version: string; modified: number } | null;
}

/** The drill's own first_versions on a listing (JSON as the CLI prints it). */
function drillReading(listing: unknown): DrillReading {
  assert.ok(firstVersionsFn, "the rendered drill has no first_versions function");
  assert.equal(expireLine, `readonly EXPIRE_AFTER_DAYS=${EXPIRE_DAYS}`, "the rendered drill does not carry the stack's expireAfterDays");
  requireCommand("jq", "jq");
  const r = spawnSync("bash", ["-c", `${expireLine}\n${firstVersionsFn}\nfirst_versions`], { input: JSON.stringify(listing), encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as DrillReading;
}

/** LastModified as AWS CLI 2 prints it (Python's isoformat: microseconds only when there are any). */
const cliTime = (date: Date) => date.toISOString().replace(/\.000Z$/, "+00:00").replace(/\.(\d{3})Z$/, ".$1000+00:00");
const stampOf = (date: Date) => date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z");

/** A listing as S3 gives it: each key's versions newest first, delete markers apart. */
function listing(entries: ListedVersion[]) {
  const row = (v: ListedVersion) => ({ Key: v.key, VersionId: v.versionId, LastModified: cliTime(v.lastModified) });
  return { Versions: entries.filter((v) => !v.deleteMarker).map(row), DeleteMarkers: entries.filter((v) => v.deleteMarker).map(row) };
}

/** What ops/ makes of the same entries. */
function opsReading(entries: ListedVersion[]) {
  const objects = firstVersions(entries, EXPIRE_DAYS);
  const { entries: backups, suspicious } = backupsFromObjects(STACK, objects);
  const newest = chooseBackup(backups, DB);
  return {
    first: Object.fromEntries(objects.map((o) => [o.key, o.versionId])),
    suspicious: [...suspicious].sort(),
    newest: newest ? { key: newest.manifestKey, version: newest.manifestVersionId } : null,
  };
}

function assertAgree(entries: ListedVersion[], what: string) {
  const drill = drillReading(listing(entries));
  const ops = opsReading(entries);
  assert.deepEqual(Object.fromEntries(Object.entries(drill.first).map(([k, v]) => [k, v.version])), ops.first, `${what}: the version read`);
  assert.deepEqual([...drill.suspicious].sort(), ops.suspicious, `${what}: what is suspicious`);
  assert.deepEqual(drill.newest && { key: drill.newest.key, version: drill.newest.version }, ops.newest, `${what}: the newest backup`);
}

/** A small deterministic PRNG, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("the restore drill's reading of a version listing (first_versions, real jq) agrees with ops/restore/backups.ts", () => {
  const base = Date.UTC(2026, 0, 5, 4, 0, 1);
  let ids = 0;
  const version = (key: string, at: number, deleteMarker = false): ListedVersion => ({ key, versionId: `v${++ids}`, size: deleteMarker ? 0 : 10, lastModified: new Date(at), deleteMarker });

  it("an untouched backup: nothing suspicious, its manifest the newest", () => {
    const run = `${STACK}/${DB}/${stampOf(new Date(base))}`;
    const entries = [version(`${run}.sql.zst`, base + 30_000), version(`${run}.manifest.json`, base + 31_000)];
    assertAgree(entries, "untouched");
    const drill = drillReading(listing(entries));
    assert.deepEqual(drill.suspicious, []);
    assert.equal(drill.newest?.key, `${run}.manifest.json`);
  });

  it("an overwritten data object, a delete marker, a future-dated manifest and a later upload under an earlier name: the same verdicts and sentences", () => {
    const run = `${STACK}/${DB}/${stampOf(new Date(base))}`;
    const earlier = `${STACK}/${DB}/20200101T000000Z`;
    const future = `${STACK}/${DB}/29991231T000000Z`;
    const entries = [
      // Newest first, as S3 lists a key's versions.
      version(`${run}.sql.zst`, base + 3_600_000),
      version(`${run}.sql.zst`, base + 30_000),
      version(`${run}.manifest.json`, base + 31_000),
      version(`${earlier}.manifest.json`, base + 60_000),
      version(`${earlier}.sql.zst`, base + 59_000),
      version(`${future}.manifest.json`, base + 90_000),
      version(`${run}.manifest.json`, base + 7_200_000, true),
    ];
    assertAgree(entries, "planted");
    const drill = drillReading(listing(entries));
    assert.equal(drill.newest?.key, `${earlier}.manifest.json`, "the later upload is the newest, whatever its name");
    assert.deepEqual([...drill.suspicious].sort(), [
      `${future}.manifest.json is dated 29991231T000000Z, after S3 received it (2026-01-05T04:01:31Z; 15 min of clock skew allowed): refused, a future-dated key is never the newest backup`,
      `${run}.manifest.json has 2 versions: it was written or hidden after its first upload, which is the one read`,
      `${run}.sql.zst has 2 versions: it was written or hidden after its first upload, which is the one read`,
    ].sort());
    assert.equal(drill.first[`${run}.sql.zst`]?.version, entries[1]!.versionId, "the first version is read");
  });

  it("keys dated exactly 15 min after S3 received them pass, one second more is refused; a key with only delete markers is not read", () => {
    const at = base + 500;
    const edge = `${STACK}/${DB}/${stampOf(new Date(base + 15 * 60_000))}`;
    const over = `${STACK}/${DB}/${stampOf(new Date(base + 15 * 60_000 + 1000))}`;
    const entries = [version(`${edge}.manifest.json`, base), version(`${over}.manifest.json`, at - 500), version(`${STACK}/${DB}/gone.manifest.json`, base, true)];
    assertAgree(entries, "edges");
    const drill = drillReading(listing(entries));
    assert.equal(drill.newest?.key, `${edge}.manifest.json`);
    assert.equal(drill.first[`${STACK}/${DB}/gone.manifest.json`], undefined);
  });

  it("does not count the lifecycle's expiry marker (no sooner than expireAfterDays after the first version); an earlier one is suspicious", () => {
    const run = `${STACK}/${DB}/${stampOf(new Date(base))}`;
    const old = `${STACK}/${DB}/${stampOf(new Date(base - 3_600_000))}`;
    const entries = [
      version(`${run}.sql.zst`, base + EXPIRE_DAYS * 86_400_000, true),
      version(`${run}.sql.zst`, base),
      version(`${run}.manifest.json`, base + 1000),
      version(`${old}.manifest.json`, base - 3_600_000 + EXPIRE_DAYS * 86_400_000 - 1000, true),
      version(`${old}.manifest.json`, base - 3_600_000),
    ];
    assertAgree(entries, "lifecycle");
    const drill = drillReading(listing(entries));
    assert.deepEqual(drill.suspicious, [`${old}.manifest.json has 2 versions: it was written or hidden after its first upload, which is the one read`]);
  });

  it("agrees on 100 random listings (versions at equal times, delete markers, clock skew either way)", () => {
    const next = random(15);
    for (let round = 0; round < 100; round++) {
      const entries: ListedVersion[] = [];
      const runs = 1 + Math.floor(next() * 4);
      for (let r = 0; r < runs; r++) {
        // The run's name: mostly its own time, sometimes well before or after S3 receives it.
        const received = base + Math.floor(next() * 4) * 3_600_000 + Math.floor(next() * 1000);
        const skew = next() < 0.7 ? -30_000 : Math.floor((next() - 0.3) * 3 * 3_600_000);
        const run = `${STACK}/${DB}/${stampOf(new Date(received + skew))}`;
        for (const key of [`${run}.sql.zst`, `${run}.manifest.json`]) {
          if (next() < 0.15) continue;
          const writes = 1 + (next() < 0.3 ? 1 + Math.floor(next() * 2) : 0);
          const times = Array.from({ length: writes }, (_, i) => received + (next() < 0.3 ? 0 : i * 1000 + Math.floor(next() * 999)));
          const versions = times.map((t) => version(key, t, false));
          if (next() < 0.2) versions.push(version(key, received + 86_400_000, true));
          // The lifecycle's expiry marker, about at the boundary either way.
          if (next() < 0.2) versions.push(version(key, times[0]! + EXPIRE_DAYS * 86_400_000 + Math.floor((next() - 0.5) * 7_200_000), true));
          // Newest first; a tie keeps the order the versions were written in, reversed.
          entries.push(...versions.reverse().sort((x, y) => y.lastModified.getTime() - x.lastModified.getTime()));
        }
      }
      assertAgree(entries, `round ${round}: ${JSON.stringify(listing(entries))}`);
    }
  });
});
