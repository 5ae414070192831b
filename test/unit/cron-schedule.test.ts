// Schedules (backup, drill, DDNS) are one line with single spaces: a YAML
// `schedule: |` block (which ends in a line break) is refused with the file,
// the key and the value; spacing is normalised; and every rendered cron line
// and script comment comes from that one-line form, whoever calls the renderer.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { backupPaths, backupScript, cronFile, restoreDrillScript, stackBackupTargets } from "../../infra/backup/render.js";
import { ddnsCronFile } from "../../infra/dns/render.js";
import { readStackFile } from "../../stacks/config/files.js";
import { normalCron } from "../../stacks/config/cron.js";
import type { StackConfig } from "../../stacks/config/schema.js";
import { StackConfigError, rawFromPulumiConfig, validateStackConfig } from "../../stacks/config/validate.js";
import { REPO } from "../support/project.js";
import { loadStack } from "../../stacks/config/load.js";

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test fixtures are mutated freely

const prodRaw = (): Raw => structuredClone(rawFromPulumiConfig(readStackFile(REPO, "prod").config) as Raw);

function problems(raw: Raw): string[] {
  try {
    validateStackConfig("prod", raw);
  } catch (err) {
    assert.ok(err instanceof StackConfigError, String(err));
    return err.message.split("\n").slice(1).map((l) => l.replace(/^\s+- /, ""));
  }
  assert.fail("expected the config to be rejected");
}

function backupSpec(config: StackConfig) {
  return { service: config.service, stack: "prod", backup: config.backup, targets: stackBackupTargets(config, "prod"), paths: backupPaths(config.service, "prod", config.server.dataDir) };
}

// What `schedule: |` gives: the expression and a line break.
const blockScalar = (parse("schedule: |\n  0 4 * * *\n") as { schedule: string }).schedule;

describe("schedules are single-line cron expressions", () => {
  it("a YAML | block gives the expression with a line break", () => assert.equal(blockScalar, "0 4 * * *\n"));

  for (const [key, set] of [
    ["backup.schedule", (r: Raw, v: string) => (r.backup.schedule = v)],
    ["backup.drillSchedule", (r: Raw, v: string) => (r.backup.drillSchedule = v)],
    ["domains.ddns.schedule", (r: Raw, v: string) => (r.domains.ddns = { schedule: v })],
  ] as const) {
    it(`${key}: a | block or a line break inside is refused, naming the file, the key and the value`, () => {
      for (const value of [blockScalar, "0 4\n* * *", "0 4 * * *\r", "0 4 * * *\n30 5 * * *"]) {
        const raw = prodRaw();
        set(raw, value);
        const found = problems(raw).filter((p) => p.includes(key));
        assert.equal(found.length, 1, `${JSON.stringify(value)}: ${problems(raw).join("\n")}`);
        assert.ok(found[0]!.startsWith(`Pulumi.prod.yaml: bbaegok-infra:${key} = ${JSON.stringify(value)}`), found[0]);
        assert.match(found[0]!, /more than one line or holds a control character: write it on one line, as a plain or quoted YAML string, not a \| or > block/);
      }
    });
  }

  it("tabs and runs of spaces are normalised to single spaces, and the config holds that form", () => {
    const raw = prodRaw();
    raw.backup.schedule = "  0\t4  * *   * ";
    raw.backup.drillSchedule = "30 5 *\t* 0";
    raw.domains.ddns = { schedule: " */5  * * * *" };
    const config = validateStackConfig("prod", raw);
    assert.equal(config.backup.schedule, "0 4 * * *");
    assert.equal(config.backup.drillSchedule, "30 5 * * 0");
    assert.equal(config.domains.ddns?.schedule, "*/5 * * * *");
  });

  it("the rendered cron files and scripts quote only the normalised form", () => {
    const raw = prodRaw();
    raw.backup.schedule = "0\t4  * * *";
    const spec = backupSpec(validateStackConfig("prod", raw));
    assert.match(cronFile(spec), /^# backup: {8}"0 4 \* \* \*" in Asia\/Seoul$/m);
    assert.match(backupScript(spec), /run if "0 4 \* \* \*" is due this minute/);
    assert.match(restoreDrillScript(spec), /^readonly BACKUP_SCHEDULE='0 4 \* \* \*'$/m);
  });

  it("a renderer given a multi-line schedule directly throws instead of writing a broken file", () => {
    const spec = backupSpec(loadStack("prod", REPO).config);
    const broken = { ...spec, backup: { ...spec.backup, schedule: "0 4\n* * *" } };
    assert.throws(() => cronFile(broken), /"0 4\\n\* \* \*" is not a cron expression: it spans more than one line/);
    assert.throws(() => backupScript(broken), /more than one line/);
    assert.throws(() => ddnsCronFile("*/5 * * * *\n", "/srv/ddns.sh", "ddns"), /"\*\/5 \* \* \* \*\\n" is not a cron expression: it spans more than one line/);
    assert.equal(ddnsCronFile(" */5\t* * * * ", "/srv/ddns.sh", "ddns").split("\n")[3], "*/5 * * * * root /srv/ddns.sh 2>&1 | logger -t ddns");
  });

  it("normalCron keeps macros and names as written, one line", () => {
    assert.equal(normalCron(" @daily "), "@daily");
    assert.equal(normalCron("0 4 * jan-mar\tmon"), "0 4 * jan-mar mon");
  });
});
