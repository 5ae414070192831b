// How backup:status judges one database from what S3 lists, and how the drill
// command is put together: pure functions, no S3 and no ssh.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { BackupManifest } from "../../infra/backup/render.js";
import type { StoredObject } from "../../ops/restore/backups.js";
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
  const objects: StoredObject[] = [{ key: `prod/bbaegok/${stamp}.sql.zst`, size: options.dataSize ?? options.size ?? 1000, lastModified: uploaded }];
  if (options.marked !== false) objects.push({ key: `prod/bbaegok/${stamp}.manifest.json`, size: 500, lastModified: uploaded });
  return objects;
}

const judge = (objects: StoredObject[], sizes: Record<string, number> = {}) =>
  judgeDatabase(objects, "prod", "bbaegok", ALLOWED, NOW, (manifestKey) => {
    const key = manifestKey.replace(".manifest.json", ".sql.zst");
    return manifestFor(key, sizes[key] ?? 1000);
  });

describe("backup:status's judgement of one database", () => {
  it("is ok when the newest backup with a manifest is within the allowed age, and names it", () => {
    const status = judge([...run("20260108T040001Z"), ...run("20260110T040001Z")]);
    assert.equal(status.state, "ok");
    assert.equal(status.newest?.key, "prod/bbaegok/20260110T040001Z.sql.zst");
    assert.equal(status.newest?.ageMs, 8 * HOUR - 1000);
    assert.equal(status.newest?.tables, 1);
  });

  it("is STALE one second past the allowed age, and ok one second before", () => {
    assert.equal(judge(run("20260109T095959Z")).state, "STALE");
    assert.equal(judge(run("20260109T100001Z")).state, "ok");
    assert.match(judge(run("20260108T120000Z")).problem!, /its newest backup is 2 d 0 h old, more than the 26 h 0 min the schedule allows/);
  });

  it("never picks a data object without a manifest, and lists newer ones as failed or running runs", () => {
    const status = judge([...run("20260108T040001Z"), ...run("20260110T040001Z", { marked: false }), ...run("20260109T040001Z", { marked: false })]);
    assert.equal(status.state, "STALE");
    assert.equal(status.newest?.key, "prod/bbaegok/20260108T040001Z.sql.zst");
    assert.deepEqual(status.unmarked.sort(), ["prod/bbaegok/20260109T040001Z.sql.zst", "prod/bbaegok/20260110T040001Z.sql.zst"]);
  });

  it("is MISSING with no manifest at all, and ignores other databases' and stacks' backups", () => {
    const elsewhere = run("20260110T040001Z").map((o) => ({ ...o, key: o.key.replace("prod/bbaegok/", "prod/metabase/") }));
    const otherStack = run("20260110T040001Z").map((o) => ({ ...o, key: o.key.replace("prod/", "staging/") }));
    const status = judge([...elsewhere, ...otherStack, ...run("20260110T050001Z", { marked: false })]);
    assert.equal(status.state, "MISSING");
    assert.deepEqual(status.unmarked, ["prod/bbaegok/20260110T050001Z.sql.zst"]);
  });

  it("counts age from S3's LastModified when it is earlier than the key's time (a future-dated key)", () => {
    const status = judge(run("29991231T000000Z", { uploadedAt: new Date(NOW.getTime() - 30 * HOUR) }));
    assert.equal(status.state, "STALE");
    assert.equal(status.newest?.ageMs, 30 * HOUR);
  });

  it("is BROKEN when the manifest's data object is missing, has another size, or the manifest cannot be read", () => {
    const noData = run("20260110T040001Z").filter((o) => o.key.endsWith(".manifest.json"));
    assert.equal(judge(noData).state, "BROKEN");
    const resized = judge(run("20260110T040001Z", { dataSize: 999 }));
    assert.equal(resized.state, "BROKEN");
    assert.match(resized.problem!, /holds 999 bytes, its manifest says 1000/);
    const unreadable = judgeDatabase(run("20260110T040001Z"), "prod", "bbaegok", ALLOWED, NOW, () => {
      throw new Error("manifest prod/bbaegok/20260110T040001Z.manifest.json is not JSON");
    });
    assert.equal(unreadable.state, "BROKEN");
    assert.match(unreadable.problem!, /is not JSON/);
  });

  it("ends its report with one line saying what is true", () => {
    const base = { stack: "prod", bucket: "b", schedule: "0 4 * * *", timezone: "Asia/Seoul", allowedAgeMs: ALLOWED, drillLogTag: "bbaegok-prod-backup-drill" };
    const ok = formatStackStatus({ ...base, databases: [judge(run("20260110T040001Z"))] });
    assert.match(ok, /\nOK: every database of prod \(bbaegok\) has a backup within the schedule\.\n$/);
    const bad = formatStackStatus({ ...base, databases: [judge(run("20260101T040001Z")), { database: "metabase", state: "MISSING", problem: "no backup with a manifest under prod/metabase/", unmarked: [] }] });
    assert.match(bad, /\nSTALE, MISSING: bbaegok STALE \(its newest backup is 9 d 7 h old, .*\); metabase MISSING \(no backup with a manifest under prod\/metabase\/\)\.\n$/);
  });
});

describe("the drill command", () => {
  it("runs the script as root with sudo -n on the server, quoted, with --database when asked", () => {
    assert.equal(drillCommand("/srv/bbaegok/prod/backup/restore-drill.sh", "sudo"), "sudo -n '/srv/bbaegok/prod/backup/restore-drill.sh'");
    assert.equal(drillCommand("/srv/x/restore-drill.sh", "sudo", "metabase"), "sudo -n '/srv/x/restore-drill.sh' --database 'metabase'");
    assert.equal(drillCommand("/tmp/it's/restore-drill.sh", "none", "a b"), "'/tmp/it'\\''s/restore-drill.sh' --database 'a b'");
  });

  it("says what each exit status means", () => {
    assert.match(drillOutcome(0, "deploy@h:22", "prod"), /passed on deploy@h:22/);
    assert.match(drillOutcome(1, "deploy@h:22", "prod"), /FAILED/);
    assert.match(drillOutcome(75, "deploy@h:22", "prod"), /another drill is running/);
    assert.match(drillOutcome(255, "deploy@h:22", "prod"), /ssh could not reach deploy@h:22/);
    assert.match(drillOutcome(42, "deploy@h:22", "prod"), /ended with status 42/);
  });
});
