// The backup and restore-drill scripts as rendered for every committed stack
// pass shellcheck, and the drill carries the staleness limit of its stack's
// backup schedule.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { backupIamUserName, backupPaths, backupScript, restoreDrillScript, stackBackupTargets } from "../../infra/backup/render.js";
import { allowedBackupAgeMs } from "../../infra/backup/schedule.js";
import { listStacks } from "../../stacks/config/files.js";
import { REPO } from "../support/project.js";
import { requireCommand, tempDir } from "../support/system.js";
import { loadStack } from "../../stacks/config/load.js";

function shellcheck(name: string, script: string): void {
  const bin = requireCommand("shellcheck", "shellcheck");
  const r = spawnSync(bin, ["--shell=bash", "--severity=style", "-"], { input: script, encoding: "utf8" });
  assert.equal(r.status, 0, `${name} is not shellcheck-clean:\n${r.stdout}${r.stderr}`);
}

for (const stack of listStacks(REPO)) {
  describe(`backup scripts of stack ${stack}`, () => {
    const config = loadStack(stack).config;
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

// The manifest's figures come from the streams as they pass: rows and bytes of
// the dump here (the sha256 and size of what is uploaded come from the
// uploader, test/real/backup-uploads.test.ts). Both layouts a server's dump
// tool may write are counted with strings built to fool a careless counter:
// row separators, statement ends and escaped quotes and newlines in values.
describe("the backup's stream meter", () => {
  const stack = listStacks(REPO)[0]!;
  const config = loadStack(stack).config;
  const script = backupScript({ service: config.service, stack, backup: config.backup, targets: stackBackupTargets(config, stack), paths: backupPaths(config.service, stack, config.server.dataDir) });
  const meter = /^meter_stream\(\) \{\n[\s\S]*?\n\}$/m.exec(script)?.[0];

  /** Runs the script's own meter_stream on `input`: what passed through, and the figures it wrote. */
  function measure(what: string, input: string | Buffer): { passed: Buffer; figures: string } {
    assert.ok(meter, "the rendered backup script has no meter_stream function");
    const dir = tempDir("meter-stream");
    try {
      const figures = join(dir.path, "figures");
      const r = spawnSync("bash", ["-c", `${meter}\nmeter_stream "$1" "$2"`, "bash", what, figures], { input, maxBuffer: 64 * 1024 * 1024 });
      assert.equal(r.status, 0, r.stderr.toString());
      return { passed: r.stdout, figures: readFileSync(figures, "utf8") };
    } finally {
      dir.remove();
    }
  }

  function count(dump: string): { rows: string; bytes: number } {
    const r = measure("sql-rows", dump);
    assert.equal(r.passed.toString("utf8"), dump, "the dump did not pass through unchanged");
    const [bytes, ...rows] = r.figures.split("\n");
    return { rows: rows.join("\n"), bytes: Number(bytes) };
  }

  const header = "-- MariaDB dump\n/*!40101 SET NAMES utf8mb4 */;\nDROP TABLE IF EXISTS `orders`;\nCREATE TABLE `orders` (`id` int) ENGINE=InnoDB;\n";

  it("counts one row per line after a bare INSERT header (MariaDB 10.11 and later)", () => {
    const dump =
      header +
      "INSERT INTO `orders` VALUES\n" +
      "(1,'looks like a separator: ),( and an end: );'),\n" +
      "(2,'escaped \\' quote and \\n newline, 한국어 😀'),\n" +
      "(3,NULL);\n" +
      "INSERT INTO `orders` VALUES\n" +
      "(4,'x;');\n" +
      "INSERT INTO `we``ird` VALUES\n" +
      "(1,0x00FF);\n" +
      "INSERT INTO `users` VALUES\n" +
      "(1,'(2,3)');\n";
    const r = count(dump);
    assert.equal(r.rows, "orders\t4\nusers\t1\nwe`ird\t1\n");
    assert.equal(r.bytes, Buffer.byteLength(dump));
  });

  it("counts the tuples outside quoted strings when a statement's rows share one line (MySQL, older MariaDB)", () => {
    const dump =
      header +
      "INSERT INTO `orders` VALUES (1,'a),(b'),(2,'it\\'s ),( here);'),(3,NULL);\n" +
      "INSERT INTO `orders` VALUES (4,'한국어 😀');\n" +
      "INSERT INTO `users` VALUES (1,'(2,3)'),(2,0xABCD);\n";
    const r = count(dump);
    assert.equal(r.rows, "orders\t4\nusers\t2\n");
    assert.equal(r.bytes, Buffer.byteLength(dump));
  });

  it("counts rows of a dump larger than its read blocks, lines and statements cut anywhere", () => {
    // 40 000 rows per statement over 3 statements (MariaDB layout), then one
    // MySQL-layout line of 30 000 rows: each far larger than a 1 MiB block.
    const perLine = Array.from({ length: 3 }, (_, s) =>
      "INSERT INTO `events` VALUES\n" + Array.from({ length: 40_000 }, (_, i) => `(${s * 40_000 + i},'p;${"x".repeat(i % 50)}),(')`).join(",\n") + ";\n",
    ).join("");
    const oneLine = "INSERT INTO `orders` VALUES " + Array.from({ length: 30_000 }, (_, i) => `(${i},'a),(b ${"y".repeat(i % 40)}')`).join(",") + ";\n";
    const dump = header + perLine + "/*!40000 ALTER TABLE `events` ENABLE KEYS */;\n" + oneLine + "-- Dump completed\n";
    assert.ok(Buffer.byteLength(dump) > 4 * 1024 * 1024);
    const r = count(dump);
    assert.equal(r.rows, "events\t120000\norders\t30000\n");
    assert.equal(r.bytes, Buffer.byteLength(dump));
  });

  it("passes binary streams through unchanged, with their size, across many blocks", () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const counted = measure("bytes", data);
    assert.ok(counted.passed.equals(data), "the stream changed on its way through");
    assert.equal(counted.figures, `${data.length}\n`);
  });

  it("refuses a measure it does not know", () => {
    assert.ok(meter);
    const r = spawnSync("bash", ["-c", `${meter}\nmeter_stream rows /dev/null`], { input: "x", encoding: "utf8" });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /unknown measure "rows"/);
  });
});

describe("the backup identities' IAM user names", () => {
  it("<service>-<stack>-<role> within AWS's 64 characters; longer is refused at preview, naming it and what to shorten", () => {
    assert.equal(backupIamUserName("bbaegok-prod", "restore-drill"), "bbaegok-prod-restore-drill");
    const prefix = `${"s".repeat(32)}-${"t".repeat(17)}`;
    assert.equal(backupIamUserName(prefix, "restore-drill").length, 64);
    assert.throws(() => backupIamUserName(`${prefix}t`, "restore-drill"), /the backup's IAM user name "s{32}-t{18}-restore-drill" is 65 characters; AWS allows 64: shorten the service's or the stack's name/);
    assert.equal(backupIamUserName(`${prefix}t`, "backup").length, 58);
  });
});
