// The command that places files on the server, run for real by a local shell:
// atomic, with its mode and owner, idempotent, and removable.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { installFileCommand, removeFileCommand, shellQuote, validateFileSpec } from "../../infra/server/render.js";
import { tempDir } from "../support/system.js";

function sh(command: string, stdin = ""): string {
  return execFileSync("sh", ["-c", command], { input: stdin, encoding: "utf8" });
}

describe("server files", () => {
  const dir = tempDir("server-file");
  after(() => dir.remove());
  const owner = `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`;

  it("installs content from stdin with its mode, creating the directory", () => {
    const spec = { path: join(dir.path, "secrets/db/db_password"), mode: "0400", owner };
    sh(installFileCommand(spec, "none"), "s3cr3t with 'quotes' and $dollars\n");
    assert.equal(readFileSync(spec.path, "utf8"), "s3cr3t with 'quotes' and $dollars\n");
    assert.equal(statSync(spec.path).mode & 0o777, 0o400);
    assert.deepEqual(readdirSync(join(dir.path, "secrets/db")), ["db_password"], "a temp file was left behind");
  });

  it("a file for another user is readable by that user through private directories it can traverse but not list", () => {
    // As a slot's password: owned by the container's uid, under directories made private by umask 077.
    const spec = { path: join(dir.path, "srv/prod/secrets/app/spring.datasource.password"), mode: "0400", owner: "nobody:nogroup" };
    sh(installFileCommand(spec, "none"), "pw\n");
    assert.equal(execFileSync("runuser", ["-u", "nobody", "--", "cat", spec.path], { encoding: "utf8" }), "pw\n");
    assert.throws(() => execFileSync("runuser", ["-u", "nobody", "--", "ls", join(dir.path, "srv/prod/secrets/app")], { stdio: "pipe" }), "the directory stays unlistable");
    assert.equal(statSync(join(dir.path, "srv/prod/secrets")).mode & 0o777, 0o701);
  });

  it("a root file in a directory another user must list (an entrypoint's init folder) gets that directory's mode", () => {
    const spec = { path: join(dir.path, "srv/prod/db-init/10-app-user.sh"), mode: "0755", owner, dirMode: "0755" };
    sh(installFileCommand(spec, "none"), "#!/bin/sh\n");
    assert.equal(execFileSync("runuser", ["-u", "nobody", "--", "ls", join(dir.path, "srv/prod/db-init")], { encoding: "utf8" }), "10-app-user.sh\n");
  });

  it("a root file stays behind private directories", () => {
    const spec = { path: join(dir.path, "private/backup/credentials"), mode: "0600", owner };
    sh(installFileCommand(spec, "none"), "k\n");
    assert.equal(statSync(join(dir.path, "private")).mode & 0o777, 0o700);
  });

  it("replaces the content when run again, and leaves nothing else", () => {
    const spec = { path: join(dir.path, "conf/app.conf"), mode: "0644", owner };
    sh(installFileCommand(spec, "none"), "one\n");
    sh(installFileCommand(spec, "none"), "two\n");
    assert.equal(readFileSync(spec.path, "utf8"), "two\n");
    assert.deepEqual(readdirSync(join(dir.path, "conf")), ["app.conf"]);
  });

  it("keeps the old file when writing fails midway", () => {
    const spec = { path: join(dir.path, "conf/keep.conf"), mode: "0644", owner };
    sh(installFileCommand(spec, "none"), "good\n");
    // An owner that does not exist makes chown fail after the content was written to the temp file.
    const failed = spawnSync("sh", ["-c", installFileCommand({ ...spec, owner: "no-such-user:no-such-group" }, "none")], { input: "bad\n", encoding: "utf8" });
    assert.notEqual(failed.status, 0);
    assert.match(failed.stderr, /chown: invalid user: .no-such-user:no-such-group./, "the failure is said, naming the owner");
    assert.equal(readFileSync(spec.path, "utf8"), "good\n");
    assert.deepEqual(readdirSync(join(dir.path, "conf")).sort(), ["app.conf", "keep.conf"]);
  });

  it("removes the file, and succeeds when it is already gone", () => {
    const spec = { path: join(dir.path, "conf/app.conf"), mode: "0644", owner };
    sh(removeFileCommand(spec, "none"));
    assert.ok(!existsSync(spec.path));
    sh(removeFileCommand(spec, "none"));
  });

  it("goes through the install helper by default, the deploy user's only sudo rule", () => {
    assert.equal(installFileCommand({ path: "/srv/x", mode: "0600", owner: "root:root" }), "sudo -n /usr/local/sbin/bbaegok-install install '/srv/x' '0600' 'root:root'");
    assert.equal(installFileCommand({ path: "/srv/x", mode: "0600", owner: "1000:1000", dirMode: "0755" }), "sudo -n /usr/local/sbin/bbaegok-install install '/srv/x' '0600' '1000:1000' '0755'");
    assert.equal(removeFileCommand({ path: "/srv/x", mode: "0600", owner: "root:root" }), "sudo -n /usr/local/sbin/bbaegok-install remove '/srv/x'");
  });

  it("refuses paths and modes that could escape", () => {
    assert.throws(() => validateFileSpec({ path: "/srv/../etc/passwd", mode: "0600", owner: "root:root" }), /absolute file path/);
    assert.throws(() => validateFileSpec({ path: "/srv/x; rm -rf /", mode: "0600", owner: "root:root" }), /absolute file path/);
    assert.throws(() => validateFileSpec({ path: "/srv/x", mode: "777", owner: "root:root" }), /octal/);
    assert.equal(sh(`printf %s ${shellQuote("it's $HOME")}`), "it's $HOME");
  });
});
