// The server's install helper (infra/server/bbaegok-install), the one command
// the deploy user may run as root: run as the real script, as root, against a
// data folder and a cron folder in a temporary directory (named by a
// configuration file, as /etc/bbaegok-install.conf does on the server).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { INSTALL_HELPER_SOURCE } from "../../infra/server/render.js";
import { REPO } from "../support/project.js";
import { requireCommand, tempDir } from "../support/system.js";

const HELPER = join(REPO, INSTALL_HELPER_SOURCE);

const dir = tempDir("install-helper");
const dataDir = join(dir.path, "srv", "bbaegok");
const cronDir = join(dir.path, "cron.d");
const conf = join(dir.path, "bbaegok-install.conf");

function helper(args: string[], stdin = "", env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(HELPER, args, { input: stdin, encoding: "utf8", env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", BBAEGOK_INSTALL_CONF: conf, ...env } });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}
const modeOf = (path: string) => (statSync(path).mode & 0o7777).toString(8).padStart(4, "0");

describe("bbaegok-install, the server's install helper", () => {
  before(() => {
    assert.equal(process.getuid?.(), 0, "the helper's tests run as root (it chowns and installs as root does on the server)");
    mkdirSync(dataDir, { recursive: true });
    mkdirSync(cronDir);
    writeFileSync(conf, `data_dir=${dataDir}\nservice=bbaegok\ncron_dir=${cronDir}\n`);
  });
  after(() => dir.remove());

  it("is shellcheck-clean as POSIX sh", () => {
    const result = spawnSync(requireCommand("shellcheck", "shellcheck"), ["-s", "sh", HELPER], { encoding: "utf8" });
    assert.equal(result.status, 0, result.stdout);
  });

  it("installs a file from stdin with its mode and owner, creating private folders", () => {
    const path = join(dataDir, "prod", "secrets", "app", "db_password");
    const result = helper(["install", path, "0400", "1000:1000"], "s3cret");
    assert.equal(result.status, 0, result.stderr);
    assert.equal(readFileSync(path, "utf8"), "s3cret");
    assert.equal(modeOf(path), "0400");
    assert.deepEqual([statSync(path).uid, statSync(path).gid], [1000, 1000]);
    // Folders are created private; a file for another uid gets traverse (o+x, never o+r) on the way.
    assert.equal(modeOf(join(dataDir, "prod", "secrets", "app")), "0701");
  });

  it("replaces a file by renaming a complete one over it: a reader never sees it half-written, and no temp file stays", () => {
    const path = join(dataDir, "prod", "app.env");
    assert.equal(helper(["install", path, "0644", "root:root"], "OLD=1\n").status, 0);
    const before = statSync(path).ino;
    const reader = openSync(path, "r");
    try {
      const result = helper(["install", path, "0600", "root:root", "0755"], "NEW=2\n");
      assert.equal(result.status, 0, result.stderr);
      const buffer = Buffer.alloc(16);
      assert.equal(buffer.subarray(0, readSync(reader, buffer, 0, 16, 0)).toString(), "OLD=1\n", "the open file is the old one, whole");
    } finally {
      closeSync(reader);
    }
    assert.notEqual(statSync(path).ino, before, "a new file was renamed over the old one");
    assert.equal(readFileSync(path, "utf8"), "NEW=2\n");
    assert.equal(modeOf(path), "0600");
    assert.equal(modeOf(join(dataDir, "prod")), "0755", "DIRMODE sets the file's folder");
    assert.deepEqual(readdirSync(join(dataDir, "prod")).filter((f) => f.startsWith(".")), []);
  });

  it("installs and removes the service's cron files, and nothing else in the cron folder", () => {
    const cron = join(cronDir, "bbaegok-prod-backup");
    assert.equal(helper(["install", cron, "0644", "root:root"], "0 4 * * * root true\n").status, 0);
    assert.equal(modeOf(cron), "0644");
    assert.equal(helper(["remove", cron]).status, 0);
    assert.equal(helper(["remove", cron]).status, 0, "removing a removed file succeeds");
    for (const other of [join(cronDir, "evil"), join(cronDir, "bbaegokx-prod"), join(cronDir, "bbaegok-x", "y")]) {
      const result = helper(["install", other, "0644", "root:root"], "* * * * * root id\n");
      assert.equal(result.status, 2, other);
      assert.match(result.stderr, /^bbaegok-install: ".*" (is outside .* refused|is not a file directly in)/);
    }
  });

  it("refuses paths outside the data folder, naming them, and writes nothing", () => {
    for (const path of ["/etc/sudoers.d/deploy", `${dataDir}-evil/x`, join(dir.path, "x"), "/root/.ssh/authorized_keys"]) {
      const result = helper(["install", path, "0644", "root:root"], "x");
      assert.equal(result.status, 2, path);
      assert.equal(result.stderr, `bbaegok-install: "${path}" is outside ${dataDir}/ and ${cronDir}/bbaegok-*: refused\n`);
    }
    assert.equal(readdirSync(dir.path).includes("x"), false);
  });

  it("refuses . and .. components, relative paths and odd characters", () => {
    const cases: [string, RegExp][] = [
      [`${dataDir}/prod/../../../etc/passwd`, /has a \. or \.\. component/],
      [`${dataDir}/..`, /has a \. or \.\. component/],
      [`${dataDir}/./prod/x`, /has a \. or \.\. component/],
      ["srv/bbaegok/x", /is not an absolute path/],
      [`${dataDir}/prod/x y`, /has a character other than/],
      [`${dataDir}/prod/`, /is not a file path/],
    ];
    for (const [path, says] of cases) {
      const result = helper(["install", path, "0644", "root:root"], "x");
      assert.equal(result.status, 2, path);
      assert.match(result.stderr, says, path);
    }
  });

  it("refuses a symlink anywhere on the way, for every command", () => {
    const outside = join(dir.path, "outside");
    mkdirSync(outside);
    writeFileSync(join(outside, "target"), "root's file\n", { mode: 0o644 });
    symlinkSync(outside, join(dataDir, "linked"));
    symlinkSync(join(outside, "target"), join(dataDir, "file-link"));
    for (const [verb, path, ...rest] of [
      ["install", join(dataDir, "linked", "x"), "0644", "root:root"],
      ["append", join(dataDir, "file-link")],
      ["read", join(dataDir, "file-link")],
      ["remove", join(dataDir, "file-link")],
      ["install", join(dataDir, "file-link"), "0644", "root:root"],
    ] as string[][]) {
      const result = helper([verb!, path!, ...rest], "x");
      assert.equal(result.status, 2, `${verb} ${path}`);
      assert.match(result.stderr, /is a symlink: refused/);
    }
    assert.equal(readFileSync(join(outside, "target"), "utf8"), "root's file\n");
    assert.deepEqual(readdirSync(outside), ["target"]);
  });

  it("refuses setuid modes and malformed owners", () => {
    const path = join(dataDir, "prod", "x");
    assert.match(helper(["install", path, "4755", "root:root"], "x").stderr, /mode "4755" must be octal like 0640/);
    assert.match(helper(["install", path, "0644", "root"], "x").stderr, /owner "root" must be user:group/);
    assert.match(helper(["install", path, "0644", "root:root:x"], "x").stderr, /owner "root:root:x" must be user:group/);
  });

  it("appends to the history, reads only what others may read, and says whether a file exists", () => {
    const history = join(dataDir, "prod", "deploy-history.jsonl");
    assert.equal(helper(["exists", history]).status, 1);
    assert.equal(helper(["append", history], '{"a":1}\n').status, 0);
    assert.equal(helper(["append", history], '{"a":2}\n').status, 0);
    assert.equal(helper(["exists", history]).status, 0);
    assert.equal(modeOf(history), "0644");
    assert.equal(helper(["read", history]).stdout, '{"a":1}\n{"a":2}\n');
    const secret = join(dataDir, "prod", "secrets", "app", "db_password");
    const refused = helper(["read", secret]);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /is not readable by others \(mode 400\): refused/);
    assert.equal(refused.stdout, "");
  });

  it("runs only an executable script root owns and only root may write, with its arguments and stdin", () => {
    const script = join(dataDir, "prod", "backup", "job.sh");
    assert.equal(helper(["install", script, "0700", "root:root"], '#!/bin/sh\necho "ran as $(id -u) with $*: $(cat)"\n').status, 0);
    const ran = helper(["run", script, "--database", "bbaegok"], "input");
    assert.equal(ran.status, 0, ran.stderr);
    assert.equal(ran.stdout, "ran as 0 with --database bbaegok: input\n");
    chownSync(script, 1000, 1000);
    assert.match(helper(["run", script]).stderr, /is not owned by root: refused/);
    chownSync(script, 0, 0);
    chmodSync(script, 0o770);
    assert.match(helper(["run", script]).stderr, /is writable by others than root: refused/);
    chmodSync(script, 0o600);
    assert.match(helper(["run", script]).stderr, /is not an executable file/);
    assert.match(helper(["run", "/bin/sh", "-c", "id"]).stderr, /is outside .*: refused/);
  });

  it("takes its configuration from the environment only when not run through sudo", () => {
    const result = helper(["exists", join(dataDir, "x")], "", { SUDO_USER: "deploy" });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /BBAEGOK_INSTALL_CONF is for tests run as root, not through sudo/);
  });

  it("refuses an unknown command, naming the ones it knows", () => {
    assert.match(helper(["chmod", join(dataDir, "x")]).stderr, /unknown command "chmod": expected install, remove, append, exists, read or run/);
  });
});
