// `npm run plan` as a user runs it: the tree, --json, --out, and the refusals.
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { MOCK_SECRET_PREFIX } from "../../ops/offline/mocks.js";
import { copyProject, REPO, runPlan } from "../support/project.js";
import { tempDir } from "../support/system.js";

describe("npm run plan", () => {
  const out = tempDir("plan-out");
  after(() => out.remove());

  it("--json prints only the resource array, with the Docker host, network, database and volume", () => {
    const result = runPlan(REPO, ["--stack", "prod", "--json"]);
    assert.equal(result.status, 0, result.stderr);
    const rows = JSON.parse(result.stdout) as { type: string; name: string; parent: string | null; inputs: Record<string, unknown> }[];
    assert.ok(Array.isArray(rows));
    for (const row of rows) assert.deepEqual(Object.keys(row).sort(), ["inputs", "name", "parent", "type"]);
    const byType = (t: string) => rows.filter((r) => r.type === t);
    assert.equal(byType("pulumi:providers:docker")[0]?.inputs["host"], "ssh://deploy@home.bbaegok.kr:22022");
    assert.ok(byType("docker:index/network:Network").some((n) => n.inputs["name"] === "bbaegok-prod-data"));
    assert.ok(byType("docker:index/container:Container").some((c) => c.inputs["name"] === "bbaegok-prod-db"));
    assert.ok(byType("docker:index/volume:Volume").some((v) => v.inputs["name"] === "bbaegok-prod-db-data"));
    assert.ok(!result.stdout.includes(MOCK_SECRET_PREFIX), "a secret in clear on stdout");
    assert.ok(result.stdout.includes('"[secret]"'));
  });

  it("prints a tree with types, names, key inputs and protection", () => {
    const result = runPlan(REPO, ["--stack", "staging"]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /docker:index\/volume:Volume {2}database-volume {2}\[protected, retained on delete\]/);
    assert.match(result.stdout, /[├└]─ docker:index\/network:Network {2}server-data/);
    assert.match(result.stdout, /content=\[secret\]/);
    assert.match(result.stdout, /Stack staging: \d+ resources/);
    assert.ok(!result.stdout.includes(MOCK_SECRET_PREFIX));
  });

  it("--out writes every server file at its server path, secrets masked", () => {
    const result = runPlan(REPO, ["--stack", "prod", "--out", out.path]);
    assert.equal(result.status, 0, result.stderr);
    const secretFile = join(out.path, "srv/bbaegok/prod/secrets/db/db_root_password");
    assert.equal(readFileSync(secretFile, "utf8"), "[secret]");
    assert.equal(statSync(secretFile).mode & 0o777, 0o400);
  });

  it("refuses an unknown stack, naming the known ones, and writes nothing", () => {
    const target = join(out.path, "unknown");
    const result = runPlan(REPO, ["--stack", "qa", "--out", target]);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /No stack "qa".*Known stacks: prod, staging/);
    assert.equal(result.stdout, "");
    assert.ok(!existsSync(target));
  });

  it("refuses a stack file with a missing server host, naming the key, and writes nothing", () => {
    const project = copyProject();
    try {
      const broken = readFileSync(join(REPO, "Pulumi.staging.yaml"), "utf8").replace(/^ {4}host: home\.bbaegok\.kr\n/m, "");
      assert.ok(!broken.includes("host: home.bbaegok.kr"));
      project.writeStackFile("staging", broken);
      const target = join(project.dir, "out");
      const result = runPlan(project.dir, ["--stack", "staging", "--json", "--out", target]);
      assert.notEqual(result.status, 0);
      assert.match(result.stderr, /Pulumi\.staging\.yaml: bbaegok-infra:server\.host is missing/);
      assert.equal(result.stdout, "");
      assert.ok(!existsSync(target));
    } finally {
      project.remove();
    }
  });

  it("refuses a call without --stack with the usage", () => {
    const result = runPlan(REPO, []);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /usage: npm run plan -- --stack <name>/);
  });
});
