// Pulumi's real engine on the committed stacks: the CLI, the language host and
// the plugins built by `npm run engine:install`, a local file backend, the
// policy pack enforced. No server here, so this file runs the `no-server`
// profile: docker and command are stood in beside aws and cloudflare; random
// and tls are real (test/docker/ brings a server). What the SDK's mocks could
// not show: the CLI's own config rules, the StackReference resolved from a
// real backend, the Automation API commands against the real CLI.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { planInChild, REPO } from "../support/project.js";
import { engineWorkspace, outputOf, withProfile } from "../support/engine.js";

interface PreviewStep {
  op: string;
  urn: string;
  newState?: { type: string; inputs: Record<string, unknown> };
}

const ws = engineWorkspace("no-server");
after(() => ws.remove());

/** Runs one of the project's ops commands from the project copy, with the workspace's environment. */
function ops(script: string, args: string[]) {
  return spawnSync(process.execPath, ["--import", "tsx", join(ws.projectDir, "ops", script), ...args], { cwd: ws.projectDir, env: ws.env, encoding: "utf8" });
}

function previewJson(stack: string): PreviewStep[] {
  const result = ws.pulumi(["preview", "--stack", stack, "--policy-pack", "policy", "--json"]);
  assert.equal(result.status, 0, outputOf(result));
  return (JSON.parse(result.stdout) as { steps: PreviewStep[] }).steps;
}

const nameOf = (urn: string) => urn.split("::").pop()!;

describe("npm run engine:preview", () => {
  it("previews prod with the real docker and command plugins, naming what is stood in", () => {
    const result = spawnSync(process.execPath, ["--import", "tsx", join(REPO, "engine", "run.ts"), "preview", "--stack", "prod"], { cwd: REPO, encoding: "utf8" });
    assert.equal(result.status, 0, outputOf(result));
    const real = result.stdout.split("\n").find((l) => l.startsWith("engine: real: "));
    for (const part of ["cli", "language-nodejs", "random", "tls", "docker", "command"]) assert.match(real ?? "", new RegExp(`\\b${part} \\d`), `${part} should run for real`);
    assert.match(result.stdout, /^engine: STAND-IN: aws \d/m);
    assert.match(result.stdout, /^engine: STAND-IN: cloudflare \d/m);
    assert.doesNotMatch(result.stdout, /STAND-IN: (docker|command)/);
    assert.match(result.stdout, /✅ bbaegok-infra@v1\.0\.0/);
  });

  it("previews staging on its own: in a fresh backend it brings its proxy's owner up first (without a server), then previews", () => {
    const result = spawnSync(process.execPath, ["--import", "tsx", join(REPO, "engine", "run.ts"), "preview", "--stack", "staging"], { cwd: REPO, encoding: "utf8" });
    assert.equal(result.status, 0, outputOf(result));
    assert.match(result.stdout, /staging is a guest of prod, which this backend has never brought up: pulumi up of prod first/);
    assert.match(result.stdout, /Previewing update \(staging\)/);
    assert.match(result.stdout, /✅ bbaegok-infra@v1\.0\.0/);
  });

  it("refuses a stack without a file, and bad options with the usage", () => {
    const run = (args: string[]) => spawnSync(process.execPath, ["--import", "tsx", join(REPO, "engine", "run.ts"), ...args], { cwd: REPO, encoding: "utf8" });
    const missing = run(["preview", "--stack", "nope"]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /No stack "nope": .*Pulumi\.nope\.yaml does not exist\. Known stacks: prod, staging/);
    const usage = run(["preview"]);
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /--stack is required\nusage: npm run engine:<preview\|up>/);
  });
});

describe("the real engine, before any stack is up", () => {
  before(() => {
    for (const stack of ["prod", "staging"]) assert.equal(ws.pulumi(["stack", "init", stack]).status, 0);
  });

  it("previews prod: the CLI accepts Pulumi.yaml and the stack file, the program runs, the policy pack passes", () => {
    const result = ws.pulumi(["preview", "--stack", "prod", "--policy-pack", "policy"]);
    assert.equal(result.status, 0, outputOf(result));
    assert.match(result.stdout, /✅ bbaegok-infra@v1\.0\.0 \(local: policy\)/);
    assert.match(result.stdout, /\+ \d+ to create/);
  });

  it("plans for prod exactly the resources the offline plan shows (the mocks and the engine agree)", () => {
    const engine = previewJson("prod")
      // Providers are the engine's; a StackReference is read, not declared, and the offline plan records declarations.
      .filter((s) => s.newState && !s.newState.type.startsWith("pulumi:providers:") && s.newState.type !== "pulumi:pulumi:StackReference")
      .map((s) => `${s.newState!.type} ${nameOf(s.urn)}`)
      .sort();
    const offline = planInChild("prod", ws.projectDir)
      .resources.filter((r) => !r.type.startsWith("pulumi:providers:"))
      .map((r) => `${r.type} ${r.name}`)
      .sort();
    assert.deepEqual(engine, offline);
  });

  it("refuses staging while prod has never been up, naming the reference; owner-ready says to wait", () => {
    const result = ws.pulumi(["preview", "--stack", "staging"]);
    assert.notEqual(result.status, 0);
    assert.match(outputOf(result), /organization\/bbaegok-infra\/prod/);
    const ready = ops("owner-ready.ts", ["--stack", "staging"]);
    assert.equal(ready.status, 0, outputOf(ready));
    assert.equal(ready.stdout.trim(), "ready=false");
    assert.match(ready.stderr, /guest of organization\/bbaegok-infra\/prod, which has no `proxy` output yet/);
  });
});

describe("npm run stack:clone with the built CLI", () => {
  it("creates the new stack in the backend (pulumi stack init), and the clone previews for real", () => {
    const clone = ops("stack-clone.ts", [
      ...["--from", "prod", "--to", "qa", "--host", "qa.bbaegok.kr", "--public-ip", "198.51.100.7"],
      ...["--api", "qa-api.bbaegok.kr", "--metabase", "qa-metabase.bbaegok.kr", "--bucket", "bbaegok-qa-db-backups"],
      // A new server: its host key is pinned like every stack's.
      ...["--host-key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPpoHueJZ2sr1vXtaIB4jVrI3WXzQPaRjvMbiNrjxTFG"],
    ]);
    assert.equal(clone.status, 0, outputOf(clone));
    assert.match(clone.stdout, /Creating the stack: pulumi stack init qa/);
    const stacks = ws.pulumi(["stack", "ls", "--json"]);
    assert.ok((JSON.parse(stacks.stdout) as { name: string }[]).some((s) => s.name === "qa"), stacks.stdout);
    const preview = ws.pulumi(["preview", "--stack", "qa", "--policy-pack", "policy"]);
    assert.equal(preview.status, 0, outputOf(preview));
    assert.match(preview.stdout, /qa-api\.bbaegok\.kr/);
  });
});

describe("the real engine, after `pulumi up` of prod", () => {
  let upOutput = "";
  before(() => {
    const result = ws.pulumi(["up", "--stack", "prod", "--policy-pack", "policy", "--yes", "--skip-preview"]);
    upOutput = outputOf(result);
    assert.equal(result.status, 0, upOutput);
  });

  it("a second up would change nothing: the program is deterministic; neither the up nor the preview warns", () => {
    const result = ws.pulumi(["preview", "--stack", "prod", "--expect-no-changes"]);
    assert.equal(result.status, 0, outputOf(result));
    // A warning on every run (an undefined output did that once) teaches the team to skip the ones that matter.
    assert.doesNotMatch(upOutput, /warning/i);
    assert.doesNotMatch(outputOf(result), /warning/i);
  });

  it("keeps generated secrets out of the output and the state file", () => {
    const secrets = ["databasePassword", "metabaseAdminPassword"].map((name) => {
      const shown = ws.pulumi(["stack", "output", name, "--stack", "prod", "--show-secrets"]);
      assert.equal(shown.status, 0, outputOf(shown));
      return shown.stdout.trim();
    });
    const stateDir = join(ws.dir, "state", ".pulumi", "stacks", "bbaegok-infra");
    const state = readdirSync(stateDir).filter((f) => f.startsWith("prod.json")).map((f) => readFileSync(join(stateDir, f), "utf8")).join("\n");
    for (const secret of secrets) {
      assert.ok(secret.length >= 16, "a generated password");
      assert.ok(!upOutput.includes(secret), "a generated password reached the up's output");
      assert.ok(!state.includes(secret), "a generated password is in the state file in clear");
    }
  });

  it("announces a database replacement as planned downtime in the preview, before anything happens", () => {
    const file = join(ws.projectDir, "Pulumi.prod.yaml");
    const committed = readFileSync(file, "utf8");
    try {
      writeFileSync(file, committed.replace('version: "11.4.12"', 'version: "11.4.13"'));
      const result = ws.pulumi(["preview", "--stack", "prod"]);
      assert.equal(result.status, 0, outputOf(result));
      assert.match(result.stdout, /docker:index:Container database-container replace/);
      assert.match(result.stdout, /warning: PLANNED DOWNTIME: the database container bbaegok-prod-db will be replaced \(image mariadb:11\.4\.12 → mariadb:11\.4\.13\)/);
    } finally {
      writeFileSync(file, committed);
    }
    const unchanged = ws.pulumi(["preview", "--stack", "prod"]);
    assert.doesNotMatch(unchanged.stdout, /PLANNED DOWNTIME/);
  });

  it("refuses, at preview, a backup.region that would move the bucket: S3 cannot move one, and the protected bucket is never replaced", () => {
    const file = join(ws.projectDir, "Pulumi.prod.yaml");
    const committed = readFileSync(file, "utf8");
    assert.match(committed, /^\s+region: ap-northeast-2$/m);
    try {
      writeFileSync(file, committed.replace(/^(\s+)region: ap-northeast-2$/m, "$1region: ap-northeast-1"));
      const result = ws.pulumi(["preview", "--stack", "prod"]);
      assert.notEqual(result.status, 0, outputOf(result));
      assert.match(outputOf(result), /unable to replace resource "urn:pulumi:prod::bbaegok-infra::[^"]*aws:s3\/bucket:Bucket::backup-bucket"\s+as it is currently marked for protection/);
    } finally {
      writeFileSync(file, committed);
    }
    const unchanged = ws.pulumi(["preview", "--stack", "prod", "--expect-no-changes"]);
    assert.equal(unchanged.status, 0, outputOf(unchanged));
  });

  it("owner-ready now lets staging go", () => {
    const ready = ops("owner-ready.ts", ["--stack", "staging"]);
    assert.equal(ready.stdout.trim(), "ready=true", outputOf(ready));
  });

  it("previews staging with prod's proxy read through the StackReference from the backend", () => {
    const exported = ws.pulumi(["stack", "output", "proxy", "--stack", "prod", "--json"]);
    const proxy = JSON.parse(exported.stdout) as { containerId: string; network: string };
    assert.match(proxy.containerId, /^[0-9a-f]{64}$/);
    const attach = previewJson("staging").find((s) => s.newState?.type === "command:remote:Command" && nameOf(s.urn) === "proxy-network");
    assert.ok(attach, "the guest attaches the owner's proxy to its network");
    assert.ok(String(attach.newState!.inputs["create"]).includes(proxy.containerId), "the attach command names prod's proxy container");
    assert.deepEqual(attach.newState!.inputs["triggers"], [proxy.containerId]);
  });

  it("previews staging with the real docker and command plugins too (the server profile, same backend), warning of nothing", () => {
    const result = withProfile(ws, "server").pulumi(["preview", "--stack", "staging", "--policy-pack", "policy"]);
    assert.equal(result.status, 0, outputOf(result));
    assert.match(result.stdout, /✅ bbaegok-infra@v1\.0\.0/);
    // Staging runs no Metabase: its outputs are null, not undefined, which Pulumi warned of on every run.
    assert.doesNotMatch(outputOf(result), /warning/i);
  });

  it("npm run drift on the stack just brought up: no drift, exit 0, through the Automation API and the built CLI", () => {
    const result = ops("drift.ts", ["--stack", "prod"]);
    assert.equal(result.status, 0, outputOf(result));
    assert.match(result.stdout, /no drift/i);
  });

  it("npm run deploy through the Automation API and the built CLI: the release in the stack file, the idle slot changed, the live slot untouched", () => {
    const image = "ghcr.io/bbaegok/bbaegok-api:1.8.3";
    const state = () => {
      const exported = JSON.parse(ws.pulumi(["stack", "export", "--stack", "prod"]).stdout) as { deployment: { resources: { urn: string; type: string; inputs?: unknown; outputs?: unknown }[] } };
      return new Map(exported.deployment.resources.filter((r) => r.type.startsWith("docker:")).map((r) => [r.urn.split("::").pop()!, JSON.stringify([r.inputs, r.outputs])]));
    };
    const before = state();
    const result = ops("deploy.ts", ["deploy", "--stack", "prod", "--image", image]);
    assert.equal(result.status, 0, outputOf(result));
    const after = state();
    // Of the server's Docker resources, only the idle slot and its image changed.
    assert.deepEqual([...after].filter(([name, value]) => before.get(name) !== value).map(([name]) => name).sort(), ["app-green", "app-green-image"]);
    const file = parse(readFileSync(join(ws.projectDir, "Pulumi.prod.yaml"), "utf8")) as { config: Record<string, { image?: string }> };
    assert.equal(file.config["bbaegok-infra:app"]?.image, image);
    const slots = ws.pulumi(["stack", "output", "slotImages", "--stack", "prod", "--json"]);
    assert.deepEqual(JSON.parse(slots.stdout), { blue: "ghcr.io/bbaegok/bbaegok-api:1.8.2", green: image });
    assert.equal(ws.pulumi(["stack", "output", "liveSlot", "--stack", "prod"]).stdout.trim(), "green");
    // The file now says what serves: the next up from it changes nothing.
    assert.equal(ws.pulumi(["preview", "--stack", "prod", "--expect-no-changes"]).status, 0);
  });
});
