// The backup schedule as both sides read it: the allowed age of the newest
// backup (the status command and the restore drill judge staleness by it),
// checked against a minute-by-minute walk of cron's own rule; and the bash
// side's "is it due now?" (schedule_is_due in the rendered script) against
// the TypeScript rule, in zones with DST and half-hour offsets.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { backupPaths, backupScript, stackBackupTargets } from "../../infra/backup/render.js";
import { allowedBackupAgeMs, BACKUP_GRACE_MS, longestIntervalMs, normalizeSchedule, scheduleMatches } from "../../infra/backup/schedule.js";
import { tempDir } from "../support/system.js";
import { loadStack } from "../../stacks/config/load.js";

const HOUR = 3_600_000;

/** The longest gap between firings, found by asking scheduleMatches about every minute of `days` days. */
function walkedLongestInterval(schedule: string, days: number): number {
  const start = Date.UTC(2025, 0, 1);
  let previous: number | undefined;
  let longest = 0;
  for (let t = start; t < start + days * 24 * HOUR; t += 60_000) {
    if (!scheduleMatches(schedule, new Date(t), "UTC")) continue;
    if (previous !== undefined) longest = Math.max(longest, t - previous);
    previous = t;
  }
  return longest;
}

describe("the age past which the newest backup is stale", () => {
  it("is the schedule's longest interval plus a 2 h grace", () => {
    assert.equal(allowedBackupAgeMs("0 4 * * *"), 26 * HOUR);
    assert.equal(allowedBackupAgeMs("@daily"), 26 * HOUR);
    assert.equal(allowedBackupAgeMs("30 5 * * 0"), 7 * 24 * HOUR + BACKUP_GRACE_MS);
    assert.equal(allowedBackupAgeMs("0 4 * * mon-fri"), 72 * HOUR + BACKUP_GRACE_MS, "Friday to Monday");
    assert.equal(allowedBackupAgeMs("0 4,16 * * *"), 12 * HOUR + BACKUP_GRACE_MS);
    assert.equal(allowedBackupAgeMs("*/15 * * * *"), 15 * 60_000 + BACKUP_GRACE_MS);
    assert.equal(allowedBackupAgeMs("0 3 1 * *"), 31 * 24 * HOUR + BACKUP_GRACE_MS, "the longest month");
  });

  for (const expression of ["0 4 * * *", "0 4 * * 1-5", "15 2,14 * * 0,3", "0 */6 * * *", "0 4 1,15 * 6"]) {
    it(`agrees with a minute-by-minute walk of cron's rule for "${expression}"`, () => {
      const schedule = normalizeSchedule(expression);
      assert.equal(longestIntervalMs(schedule), walkedLongestInterval(schedule, 22));
    });
  }
});

describe("schedule_is_due in the rendered backup script agrees with scheduleMatches", () => {
  const dir = tempDir("backup-schedule");
  after(() => dir.remove());
  const prod = loadStack("prod").config;

  for (const [timezone, expression] of [
    ["Asia/Seoul", "0 4 * * *"],
    ["America/New_York", "30 1 * * 1-5"],
    ["Asia/Kolkata", "*/20 9-10 1,15 * sun"],
  ] as const) {
    it(`in ${timezone} for "${expression}"`, () => {
      const backup = { ...prod.backup, schedule: expression, timezone };
      const script = join(dir.path, `backup-${timezone.replace("/", "-")}.sh`);
      writeFileSync(script, backupScript({ service: prod.service, stack: "prod", backup, targets: stackBackupTargets(prod, "prod"), paths: backupPaths(prod.service, "prod", "/nonexistent") }));
      const schedule = normalizeSchedule(expression);
      // Instants around the schedule's minutes, across a DST change in New York (2025-03-09), and some that are not due.
      const instants: Date[] = [];
      for (let day = 0; day < 40; day += 3) {
        for (const [h, m] of [[1, 30], [4, 0], [9, 20], [10, 40], [11, 0]] as const) {
          const wall = Date.UTC(2025, 2, 1 + day, h, m);
          instants.push(new Date(wall - 9 * HOUR), new Date(wall + 5 * HOUR), new Date(wall - 5.5 * HOUR));
        }
      }
      let due = 0;
      for (const instant of instants) {
        const expected = scheduleMatches(schedule, instant, timezone);
        // Not due: exits 0 at once. Due: goes on and stops at its setup checks (exit 3: no uploader beside it, no credentials file).
        const run = spawnSync("bash", [script, "--scheduled"], {
          env: { PATH: process.env.PATH, BACKUP_NOW: String(instant.getTime() / 1000), BACKUP_AWS_CREDENTIALS_FILE: "/nonexistent/credentials", BACKUP_PING_URL_FILE: "/nonexistent/ping" },
          encoding: "utf8",
        });
        assert.equal(run.status, expected ? 3 : 0, `${instant.toISOString()} in ${timezone}: expected ${expected ? "due" : "not due"}; ${run.stderr}`);
        if (expected) due++;
      }
      assert.ok(due > 0 && due < instants.length, `the sample has no ${due === 0 ? "due" : "undue"} instant`);
    });
  }
});
