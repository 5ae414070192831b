// One error, one exit status: every operator command in package.json, run as
// npm runs it, exits 2 for bad usage, an unknown stack and an invalid stack
// file, saying what is wrong (ops/exit.ts; README, "Exit statuses"). None of
// these runs reach the Pulumi engine, S3 or a server: the input is refused first.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { EXIT } from "../../ops/exit.js";
import { copyProject, REPO } from "../support/project.js";

const scripts = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;

/** The operator commands: every script that runs a file of ops/ or engine:preview/up, with its file and leading words. */
const commands = Object.entries(scripts).flatMap(([name, line]) => {
  const m = /^node --import tsx ((?:ops\/[\w-]+|engine\/run)\.ts)((?: \w+)*)$/.exec(line);
  return m ? [{ name, file: m[1]!, lead: m[2]!.trim().split(" ").filter(Boolean) }] : [];
});

/** What each command needs besides --stack to get as far as reading the stack file. */
const EXTRA: Record<string, string[]> = {
  restore: ["--target", "postgres://restorer@127.0.0.1:1/restored"],
  "forget-server": ["--server", "198.51.100.2"],
  "stack:clone": ["--to", "qa", "--host", "qa.bbaegok.kr", "--public-ip", "203.0.113.9", "--api", "qa-api.bbaegok.kr", "--bucket", "bbaegok-qa-db-backups"],
};
const stackOption = (name: string) => (name === "stack:clone" ? "--from" : "--stack");

const project = copyProject();
after(() => project.remove());
// engine/run.ts and what it reads (its Go modules' versions among them); .engine/, the build, is not copied: nothing is run.
cpSync(join(REPO, "engine"), join(project.dir, "engine"), { recursive: true });
// Staging without its server host: the problem every command must name.
project.writeStackFile("staging", readFileSync(join(REPO, "Pulumi.staging.yaml"), "utf8").replace(/^ {4}host: home\.bbaegok\.kr\n/m, ""));

interface Run {
  status: number | null;
  stderr: string;
}

/** Runs a command in the project copy, with no `pulumi` on PATH and nothing to reach. */
function run(file: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, AWS_ENDPOINT_URL: "http://127.0.0.1:1" };
    const child = spawn(process.execPath, ["--import", "tsx", join(project.dir, file), ...args], { cwd: project.dir, env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (status) => resolve({ status, stderr }));
  });
}

it("package.json has the operator commands this test runs", () => {
  assert.deepEqual(
    commands.map((c) => c.name),
    ["plan", "engine:preview", "engine:up", "stack:clone", "drift", "restore", "deploy", "rollback", "status", "promote", "failback", "reseed", "forget-server", "drill", "backup:status", "owner-ready"],
  );
});

describe("every operator command exits 2 for bad input, naming what is wrong", () => {
  for (const { name, file, lead } of commands) {
    it(name, async () => {
      const extra = EXTRA[name] ?? [];
      const [usage, unknown, invalid] = await Promise.all([
        run(file, [...lead, "--bogus"]),
        run(file, [...lead, stackOption(name), "nope", ...extra]),
        run(file, [...lead, stackOption(name), "staging", ...extra]),
      ]);
      assert.equal(usage.status, EXIT.usage, `${name} --bogus: ${usage.stderr}`);
      assert.match(usage.stderr, /--bogus/);
      assert.match(usage.stderr, /usage: npm run/);
      assert.equal(unknown.status, EXIT.usage, `${name} of an unknown stack: ${unknown.stderr}`);
      assert.match(unknown.stderr, /Pulumi\.nope\.yaml does not exist\. Known stacks: prod, staging/);
      assert.equal(invalid.status, EXIT.usage, `${name} of an invalid stack file: ${invalid.stderr}`);
      assert.match(invalid.stderr, /Pulumi\.staging\.yaml: bbaegok-infra:server\.host( is missing)?: expected the server's DNS name/);
      for (const r of [usage, unknown, invalid]) assert.doesNotMatch(r.stderr, /^\s+at /m, `${name}: a stack trace was printed`);
    });
  }
});

it("a check that cannot run exits 3, not a verdict: owner-ready without the Pulumi CLI", async () => {
  // Staging's own file is valid in the repository (the copy's is broken on purpose).
  const env = { ...process.env, PATH: `${dirname(process.execPath)}:/usr/bin:/bin` };
  const result = spawnSync(process.execPath, ["--import", "tsx", join(REPO, "ops", "owner-ready.ts"), "--stack", "staging"], { cwd: REPO, env, encoding: "utf8" });
  assert.equal(result.status, EXIT.unknown, result.stderr);
  assert.match(result.stderr, /The Pulumi CLI is not installed/);
  assert.equal(result.stdout, "", "it answered without knowing");
});

it("the README's table of exit statuses names every operator command", () => {
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("### Exit statuses"));
  const table = section.slice(0, section.indexOf("\n\n", section.indexOf("| --- ")));
  for (const { name } of commands) assert.match(table, new RegExp(`\`${name}\``), `${name} is not in the README's exit statuses`);
});

it("a command's output is whole when its stdout is a pipe: the exit waits for it (npm run plan -- --json | …)", () => {
  // Past the pipe's 64 KiB a bare process.exit cut the JSON off.
  const piped = spawnSync("sh", ["-c", `"${process.execPath}" --import tsx ops/plan.ts --stack prod --json | cat`], { cwd: REPO, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  assert.equal(piped.status, 0, piped.stderr);
  assert.ok(Buffer.byteLength(piped.stdout) > 65536, `only ${Buffer.byteLength(piped.stdout)} bytes: the plan is too small to show it`);
  const rows = JSON.parse(piped.stdout) as { type: string }[];
  assert.ok(rows.some((r) => r.type === "docker:index/container:Container"));
});
