// How backup:status and restore read what S3 lists (every key at its first
// version; keys with more versions, or dated after S3 received them, named;
// backups ordered by S3's LastModified), how backup:status judges one
// database, and how the drill command is put together: pure functions, no S3
// and no ssh.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { BackupManifest } from "../../infra/backup/render.js";
import { ALLOWED_CLOCK_SKEW_MS, backupsFromObjects, chooseBackup, firstVersions, parseManifest, type StoredObject } from "../../ops/restore/backups.js";
import { drillCommand, drillOutcome } from "../../ops/restore/drill.js";
import { formatStackStatus, judgeDatabase } from "../../ops/restore/status.js";

const HOUR = 3_600_000;
const NOW = new Date("2026-01-10T12:00:00Z");
const ALLOWED = 26 * HOUR;

function manifestFor(key: string, size: number): BackupManifest {
  return { format: 1, stack: "prod", database: "bbaegok", engine: "mariadb", serverVersion: "11.4.4-MariaDB", key, createdAt: "", compression: "zstd", size, sha256: "0".repeat(64), dumpBytes: size * 4, durationSeconds: 3, tables: [{ name: "users", rows: 2 }], objects: [] };
}

/** A backup run's objects: data (and its manifest unless `marked` is false), uploaded `uploadedAfterMs` after the key's time. */
function run(stamp: string, options: { marked?: boolean; size?: number; dataSize?: number; uploadedAfterMs?: number; uploadedAt?: Date } = {}): StoredObject[] {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(stamp)!;
  const taken = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  const uploaded = options.uploadedAt ?? new Date(taken + (options.uploadedAfterMs ?? 60_000));
  const objects: StoredObject[] = [{ key: `prod/bbaegok/${stamp}.sql.zst`, size: options.dataSize ?? options.size ?? 1000, lastModified: uploaded, versions: 1 }];
  if (options.marked !== false) objects.push({ key: `prod/bbaegok/${stamp}.manifest.json`, size: 500, lastModified: uploaded, versions: 1 });
  return objects;
}

const judge = (objects: StoredObject[], sizes: Record<string, number> = {}) =>
  judgeDatabase(objects, "prod", "bbaegok", ALLOWED, NOW, async (manifest) => {
    const key = manifest.key.replace(".manifest.json", ".sql.zst");
    return manifestFor(key, sizes[key] ?? 1000);
  });

describe("reading S3's listing as a compromised server may have left it", () => {
  const at = (iso: string) => new Date(iso);
  const version = (key: string, id: string, when: string, size = 10, deleteMarker = false) => ({ key, versionId: id, size, lastModified: at(when), deleteMarker });

  it("reads every key at its first version and counts its versions and delete markers", () => {
    // As S3 lists them: a key's versions newest first.
    const objects = firstVersions([
      version("prod/bbaegok/20260110T040001Z.manifest.json", "v3", "2026-01-10T04:00:40Z", 0, true),
      version("prod/bbaegok/20260110T040001Z.manifest.json", "v2", "2026-01-10T09:00:00Z", 99),
      version("prod/bbaegok/20260110T040001Z.manifest.json", "v1", "2026-01-10T04:00:30Z", 500),
      version("prod/bbaegok/20260110T040001Z.sql.zst", "d1", "2026-01-10T04:00:20Z", 1000),
      version("prod/bbaegok/gone.sql.zst", "x1", "2026-01-10T04:00:20Z", 0, true),
    ]);
    assert.deepEqual(objects, [
      { key: "prod/bbaegok/20260110T040001Z.manifest.json", size: 500, lastModified: at("2026-01-10T04:00:30Z"), versionId: "v1", versions: 3 },
      { key: "prod/bbaegok/20260110T040001Z.sql.zst", size: 1000, lastModified: at("2026-01-10T04:00:20Z"), versionId: "d1", versions: 1 },
    ]);
  });

  it("does not count the lifecycle's own expiry: a delete marker no sooner than expireAfterDays after the first version", () => {
    // Expiry of a versioned backup puts a delete marker on it; counted, every
    // expired backup would be SUSPICIOUS (and fail the drill) for the
    // noncurrent versions' lifetime.
    const listed = [
      version("prod/bbaegok/20250101T040001Z.sql.zst", "m2", "2026-01-02T00:00:00Z", 0, true),
      version("prod/bbaegok/20250101T040001Z.sql.zst", "d1", "2025-01-01T04:00:20Z", 1000),
      version("prod/bbaegok/20250601T040001Z.sql.zst", "m1", "2026-05-31T23:00:00Z", 0, true),
      version("prod/bbaegok/20250601T040001Z.sql.zst", "d2", "2025-06-01T04:00:20Z", 1000),
    ];
    const counted = (days?: number) => Object.fromEntries(firstVersions(listed, days).map((o) => [o.key, o.versions]));
    // 2025-01-01 + 365 days is 2026-01-01: the marker of 2026-01-02 is the lifecycle's.
    // 2025-06-01 + 365 days is 2026-06-01: a marker of 2026-05-31 is not.
    assert.deepEqual(counted(365), { "prod/bbaegok/20250101T040001Z.sql.zst": 1, "prod/bbaegok/20250601T040001Z.sql.zst": 2 });
    assert.deepEqual(counted(undefined), { "prod/bbaegok/20250101T040001Z.sql.zst": 2, "prod/bbaegok/20250601T040001Z.sql.zst": 2 });
  });

  it("orders backups by S3's LastModified, not by the time in the key: an old-dated key uploaded last is the newest", () => {
    const objects: StoredObject[] = [
      { key: "prod/bbaegok/20260110T040001Z.manifest.json", size: 1, lastModified: at("2026-01-10T04:01:00Z"), versions: 1 },
      { key: "prod/bbaegok/20260105T040001Z.manifest.json", size: 1, lastModified: at("2026-01-10T05:00:00Z"), versions: 1 },
    ];
    const { entries, suspicious } = backupsFromObjects("prod", objects);
    assert.deepEqual(suspicious, []);
    assert.deepEqual(
      entries.map((e) => e.manifestKey),
      ["prod/bbaegok/20260110T040001Z.manifest.json", "prod/bbaegok/20260105T040001Z.manifest.json"],
    );
    assert.equal(chooseBackup(entries, "bbaegok")?.manifestKey, "prod/bbaegok/20260105T040001Z.manifest.json");
    assert.equal(chooseBackup(entries, "bbaegok", at("2026-01-06T00:00:00Z"))?.manifestKey, "prod/bbaegok/20260105T040001Z.manifest.json");
  });

  it(`refuses a key dated more than ${ALLOWED_CLOCK_SKEW_MS / 60_000} min after S3 received it, and names it; up to that skew is allowed`, () => {
    const received = at("2026-01-10T04:00:00Z");
    const objects: StoredObject[] = [
      { key: "prod/bbaegok/20260109T040001Z.manifest.json", size: 1, lastModified: at("2026-01-09T04:01:00Z"), versions: 1 },
      { key: "prod/bbaegok/29991231T000000Z.manifest.json", size: 1, lastModified: received, versions: 1 },
      { key: "prod/bbaegok/20260110T041500Z.manifest.json", size: 1, lastModified: received, versions: 1 },
      { key: "prod/bbaegok/20260110T041501Z.manifest.json", size: 1, lastModified: received, versions: 1 },
    ];
    const { entries, suspicious } = backupsFromObjects("prod", objects);
    assert.deepEqual(
      entries.map((e) => e.manifestKey),
      ["prod/bbaegok/20260109T040001Z.manifest.json", "prod/bbaegok/20260110T041500Z.manifest.json"],
    );
    assert.equal(suspicious.length, 2);
    assert.match(suspicious[0]!, /^prod\/bbaegok\/29991231T000000Z\.manifest\.json is dated 29991231T000000Z, after S3 received it \(2026-01-10T04:00:00Z; 15 min of clock skew allowed\): refused/);
    assert.match(suspicious[1]!, /^prod\/bbaegok\/20260110T041501Z\.manifest\.json is dated/);
  });

  it("names a key with more than one version as suspicious, and still offers its first version", () => {
    const objects: StoredObject[] = [{ key: "prod/bbaegok/20260110T040001Z.manifest.json", size: 1, lastModified: at("2026-01-10T04:01:00Z"), versionId: "first", versions: 2 }];
    const { entries, suspicious } = backupsFromObjects("prod", objects);
    assert.equal(entries[0]?.manifestVersionId, "first");
    assert.deepEqual(suspicious, ["prod/bbaegok/20260110T040001Z.manifest.json has 2 versions: it was written or hidden after its first upload, which is the one read"]);
  });

  it("refuses a manifest that names another run's data object", () => {
    const manifest = manifestFor("prod/bbaegok/20260110T040001Z.sql.zst", 1000);
    assert.equal(parseManifest(JSON.stringify(manifest), "prod/bbaegok/20260110T040001Z.manifest.json").key, manifest.key);
    for (const key of ["prod/bbaegok/20260109T040001Z.sql.zst", "staging/bbaegok/20260110T040001Z.sql.zst", "prod/bbaegok/20260110T040001Z.pgdump.zst"]) {
      assert.throws(() => parseManifest(JSON.stringify({ ...manifest, key }), "prod/bbaegok/20260110T040001Z.manifest.json"), /manifest prod\/bbaegok\/20260110T040001Z\.manifest\.json has no valid "key"/);
    }
  });
});

describe("backup:status's judgement of one database", () => {
  it("is ok when the newest backup with a manifest is within the allowed age, and names it", async () => {
    const status = await judge([...run("20260108T040001Z"), ...run("20260110T040001Z")]);
    assert.equal(status.state, "ok");
    assert.equal(status.newest?.key, "prod/bbaegok/20260110T040001Z.sql.zst");
    assert.equal(status.newest?.ageMs, 8 * HOUR - 1000);
    assert.equal(status.newest?.tables, 1);
    assert.deepEqual(status.suspicious, []);
  });

  it("is STALE one second past the allowed age, and ok one second before", async () => {
    assert.equal((await judge(run("20260109T095959Z"))).state, "STALE");
    assert.equal((await judge(run("20260109T100001Z"))).state, "ok");
    assert.match((await judge(run("20260108T120000Z"))).problem!, /its newest backup is 2 d 0 h old, more than the 26 h 0 min the schedule allows/);
  });

  it("never picks a data object without a manifest, and lists newer ones as failed or running runs", async () => {
    const status = await judge([...run("20260108T040001Z"), ...run("20260110T040001Z", { marked: false }), ...run("20260109T040001Z", { marked: false })]);
    assert.equal(status.state, "STALE");
    assert.equal(status.newest?.key, "prod/bbaegok/20260108T040001Z.sql.zst");
    assert.deepEqual(status.unmarked.sort(), ["prod/bbaegok/20260109T040001Z.sql.zst", "prod/bbaegok/20260110T040001Z.sql.zst"]);
  });

  it("is MISSING with no manifest at all, and ignores other databases' and stacks' backups", async () => {
    const elsewhere = run("20260110T040001Z").map((o) => ({ ...o, key: o.key.replace("prod/bbaegok/", "prod/metabase/") }));
    const otherStack = run("20260110T040001Z").map((o) => ({ ...o, key: o.key.replace("prod/", "staging/") }));
    const status = await judge([...elsewhere, ...otherStack, ...run("20260110T050001Z", { marked: false })]);
    assert.equal(status.state, "MISSING");
    assert.deepEqual(status.unmarked, ["prod/bbaegok/20260110T050001Z.sql.zst"]);
  });

  it("never takes a future-dated key for the newest: the backup before it is judged, and the key is named", async () => {
    const status = await judge([...run("20260108T040001Z"), ...run("29991231T000000Z", { uploadedAt: new Date(NOW.getTime() - HOUR) })]);
    assert.equal(status.state, "STALE");
    assert.equal(status.newest?.key, "prod/bbaegok/20260108T040001Z.sql.zst");
    assert.equal(status.suspicious.length, 2, status.suspicious.join("\n"));
    assert.ok(status.suspicious.every((why) => /29991231T000000Z.* is dated 29991231T000000Z, after S3 received it/.test(why)));
  });

  it("is SUSPICIOUS, not ok, when a fresh backup's key has more than one version", async () => {
    const objects = run("20260110T040001Z").map((o) => (o.key.endsWith(".sql.zst") ? { ...o, versions: 2 } : o));
    const status = await judge(objects);
    assert.equal(status.state, "SUSPICIOUS");
    assert.equal(status.newest?.key, "prod/bbaegok/20260110T040001Z.sql.zst");
    assert.match(status.problem!, /1 key under prod\/bbaegok\/ was written or dated by someone other than the backup job/);
  });

  it("is BROKEN when the manifest's data object is missing, has another size, or the manifest cannot be read", async () => {
    const noData = run("20260110T040001Z").filter((o) => o.key.endsWith(".manifest.json"));
    assert.equal((await judge(noData)).state, "BROKEN");
    const resized = await judge(run("20260110T040001Z", { dataSize: 999 }));
    assert.equal(resized.state, "BROKEN");
    assert.match(resized.problem!, /holds 999 bytes, its manifest says 1000/);
    const unreadable = await judgeDatabase(run("20260110T040001Z"), "prod", "bbaegok", ALLOWED, NOW, async () => {
      throw new Error("manifest prod/bbaegok/20260110T040001Z.manifest.json is not JSON");
    });
    assert.equal(unreadable.state, "BROKEN");
    assert.match(unreadable.problem!, /is not JSON/);
  });

  it("ends its report with one line saying what is true, and lists what is suspicious", async () => {
    const base = { stack: "prod", bucket: "b", schedule: "0 4 * * *", timezone: "Asia/Seoul", allowedAgeMs: ALLOWED, drillLogTag: "bbaegok-prod-backup-drill" };
    const ok = formatStackStatus({ ...base, databases: [await judge(run("20260110T040001Z"))] });
    assert.match(ok, /\nOK: every database of prod \(bbaegok\) has a backup within the schedule\.\n$/);
    const bad = formatStackStatus({
      ...base,
      databases: [await judge(run("20260101T040001Z")), { database: "metabase", state: "MISSING", problem: "no backup with a manifest under prod/metabase/", unmarked: [], suspicious: [] }],
    });
    assert.match(bad, /\nSTALE, MISSING: bbaegok STALE \(its newest backup is 9 d 7 h old, .*\); metabase MISSING \(no backup with a manifest under prod\/metabase\/\)\.\n$/);
    const doubled = formatStackStatus({ ...base, databases: [await judge(run("20260110T040001Z").map((o) => ({ ...o, versions: 2 })))] });
    assert.match(doubled, /SUSPICIOUS: prod\/bbaegok\/20260110T040001Z\.manifest\.json has 2 versions/);
    assert.match(doubled, /\nSUSPICIOUS: bbaegok SUSPICIOUS \(2 keys under prod\/bbaegok\/ were written or dated by someone other than the backup job\)\.\n$/);
  });
});

describe("the drill command", () => {
  it("runs the script as root through the install helper (sudo -n bbaegok-install run) on the server, quoted, with --database when asked", () => {
    assert.equal(drillCommand("/srv/bbaegok/prod/backup/restore-drill.sh", "sudo"), "sudo -n /usr/local/sbin/bbaegok-install run '/srv/bbaegok/prod/backup/restore-drill.sh'");
    assert.equal(drillCommand("/srv/x/restore-drill.sh", "sudo", "metabase"), "sudo -n /usr/local/sbin/bbaegok-install run '/srv/x/restore-drill.sh' '--database' 'metabase'");
    assert.equal(drillCommand("/tmp/it's/restore-drill.sh", "none", "a b"), "'/tmp/it'\\''s/restore-drill.sh' '--database' 'a b'");
  });

  it("says what each exit status means", () => {
    assert.match(drillOutcome(0, "deploy@h:22", "prod"), /passed on deploy@h:22/);
    assert.match(drillOutcome(1, "deploy@h:22", "prod"), /FAILED/);
    assert.match(drillOutcome(75, "deploy@h:22", "prod"), /another drill is running/);
    assert.match(drillOutcome(255, "deploy@h:22", "prod"), /ssh could not reach deploy@h:22/);
    assert.match(drillOutcome(42, "deploy@h:22", "prod"), /ended with status 42/);
  });
});
