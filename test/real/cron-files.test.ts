// The /etc/cron.d files the stacks install, read by Debian's own cron parser:
// `crontab` from the cron package checks a file with the daemon's entry
// parser before installing it, and refuses the whole file on one bad line,
// as the daemon ignores the whole file. The files are installed as a test
// user's crontab (there the sixth field is part of the command, so the
// schedule fields and variables are what is checked) and removed at once;
// no cron daemon runs here.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { backupPaths, cronFile, stackBackupTargets } from "../../infra/backup/render.js";
import { ddnsCronFile } from "../../infra/dns/render.js";
import { readStackFile } from "../../stacks/config/files.js";
import { rawFromPulumiConfig, validateStackConfig } from "../../stacks/config/validate.js";
import { REPO } from "../support/project.js";
import { requireCommand, tempDir } from "../support/system.js";

const CRON_USER = "bbaegok-crontest";

function cronUser(): string {
  if (spawnSync("id", ["-u", CRON_USER]).status !== 0) execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", CRON_USER]);
  return CRON_USER;
}

describe("rendered /etc/cron.d files pass Debian's cron parser", () => {
  const crontab = requireCommand("crontab", "cron");
  const user = cronUser();
  const dir = tempDir("cron-files");
  after(() => {
    spawnSync(crontab, ["-u", user, "-r"]);
    dir.remove();
  });

  /** Debian's crontab's verdict on a file: installed (then removed) or refused with its message. */
  const check = (name: string, text: string) => {
    const file = join(dir.path, name);
    writeFileSync(file, text);
    const run = spawnSync(crontab, ["-u", user, file], { encoding: "utf8" });
    spawnSync(crontab, ["-u", user, "-r"]);
    return { accepted: run.status === 0, message: `${run.stdout}${run.stderr}` };
  };

  for (const stack of ["prod", "staging"]) {
    it(`${stack}: the backup and DDNS files, from schedules written with tabs and runs of spaces`, () => {
      const raw = rawFromPulumiConfig(readStackFile(REPO, stack).config) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
      raw.backup.schedule = " 0\t4  * * 1-5 ";
      raw.backup.drillSchedule = "30  5 * *\tsun";
      raw.domains.ddns = { schedule: "*/5\t* * * *" };
      const config = validateStackConfig(stack, raw);
      const paths = backupPaths(config.service, stack, config.server.dataDir);
      const backup = cronFile({ service: config.service, stack, backup: config.backup, targets: stackBackupTargets(config, stack), paths });
      const ddns = ddnsCronFile(config.domains.ddns!.schedule, `${config.server.dataDir}/${stack}/ddns/ddns.sh`, `${config.service}-${stack}-ddns`);
      for (const [name, text] of [["backup", backup], ["ddns", ddns]] as const) {
        const verdict = check(`${stack}-${name}`, text);
        assert.ok(verdict.accepted, `${name}:\n${text}\n${verdict.message}`);
      }
    });
  }

  it("the parser does refuse what a multi-line schedule used to render: a comment broken into a bad entry", () => {
    const verdict = check("broken", `SHELL=/bin/bash\n# backup:        "0 4\n* * *" in Asia/Seoul\n* * * * * root /srv/bbaegok/prod/backup/backup.sh --scheduled\n`);
    assert.equal(verdict.accepted, false);
    assert.match(verdict.message, /errors in crontab file, can't install/);
  });
});
