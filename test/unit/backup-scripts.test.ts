// The backup and restore-drill scripts as rendered for every committed stack
// pass shellcheck, and the drill carries the staleness limit of its stack's
// backup schedule.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { backupPaths, backupScript, restoreDrillScript, stackBackupTargets } from "../../infra/backup/render.js";
import { allowedBackupAgeMs } from "../../infra/backup/schedule.js";
import { listStacks } from "../../stacks/config/files.js";
import { stackConfig } from "../../ops/restore/backups.js";
import { REPO } from "../support/project.js";
import { requireCommand } from "../support/system.js";

function shellcheck(name: string, script: string): void {
  const bin = requireCommand("shellcheck", "shellcheck");
  const r = spawnSync(bin, ["--shell=bash", "--severity=style", "-"], { input: script, encoding: "utf8" });
  assert.equal(r.status, 0, `${name} is not shellcheck-clean:\n${r.stdout}${r.stderr}`);
}

for (const stack of listStacks(REPO)) {
  describe(`backup scripts of stack ${stack}`, () => {
    const config = stackConfig(stack);
    const spec = { service: config.service, stack, backup: config.backup, targets: stackBackupTargets(config, stack), paths: backupPaths(config.service, stack, config.server.dataDir) };

    it("are shellcheck-clean", () => {
      shellcheck("backup.sh", backupScript(spec));
      shellcheck("restore-drill.sh", restoreDrillScript(spec));
    });

    it("give the drill the stack's staleness limit", () => {
      const drill = restoreDrillScript(spec);
      assert.ok(drill.includes(`readonly MAX_BACKUP_AGE_SECONDS=${allowedBackupAgeMs(config.backup.schedule) / 1000}\n`), "the limit is not the schedule's");
      assert.ok(drill.includes(`readonly BACKUP_SCHEDULE='${config.backup.schedule}'\n`));
    });
  });
}
