// `npm run deploy/rollback/status` as a user runs them, where they can run
// here: a usage error exits 2 with the usage, and without the Pulumi CLI a
// deploy says how to install it (no stack trace) before touching the server.
// (The commands against a server run in test/real/deploy-orchestrator.test.ts.)
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { REPO } from "../support/project.js";

function deployCli(args: string[]) {
  // Only node and the base system on PATH: no `pulumi`, no `ssh` reached.
  const env = { ...process.env, PATH: `${dirname(process.execPath)}:/usr/bin:/bin` };
  const result = spawnSync(process.execPath, ["--import", "tsx", join(REPO, "ops", "deploy.ts"), ...args], { cwd: REPO, env, encoding: "utf8", timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("npm run deploy / rollback / status", () => {
  it("without the Pulumi CLI: a deploy says how to install it, exits 1, no stack trace", () => {
    const probe = spawnSync("sh", ["-c", "command -v pulumi"], { env: { PATH: `${dirname(process.execPath)}:/usr/bin:/bin` } });
    assert.notEqual(probe.status, 0, "this test needs a PATH without pulumi");
    const result = deployCli(["deploy", "--stack", "staging", "--image", "ghcr.io/bbaegok/bbaegok-api:1.9.0"]);
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stderr, /deploy: cannot deploy staging\.\nThe Pulumi CLI is not installed/);
    assert.match(result.stderr, /curl -fsSL https:\/\/get\.pulumi\.com \| sh/);
    assert.doesNotMatch(result.stderr, /^\s+at /m, "a stack trace was printed");
    assert.equal(result.stdout, "");
  });

  it("a usage error exits 2 with the usage (every usage error: test/unit/deploy-command.test.ts)", () => {
    const result = deployCli([]);
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /no command given\nusage: npm run deploy -- --stack <name> \[--image <ref>\]\n {7}npm run rollback -- --stack <name>\n {7}npm run status -- --stack <name>/);
  });
});
