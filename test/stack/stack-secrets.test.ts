// The secrets a stack's config needs are checked by the loader, with every other
// problem, before any resource is declared: a DDNS stack without its token, or a
// provided certificate without its key, is refused up front with the key and the
// command that sets it. Components never read config themselves.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { loadStack, validateFlatConfig } from "../../stacks/config/load.js";
import { StackConfigError } from "../../stacks/config/validate.js";
import { ddnsStackYaml } from "../support/ddns-stack.js";
import { copyProject, REPO, runPlan } from "../support/project.js";

const prod = readFileSync(join(REPO, "Pulumi.prod.yaml"), "utf8");
const ddnsStack = ddnsStackYaml({ token: false });
const MISSING_TOKEN =
  "Pulumi.dyn.yaml: bbaegok-infra:ddnsApiToken is missing: expected a secret, because domains.ddns is set (only with domains.ddns: a Cloudflare API token";
const SET_TOKEN = "set it with `pulumi config set --secret ddnsApiToken -s dyn`";

describe("secrets a stack's config needs, checked up front", () => {
  const project = copyProject();
  after(() => project.remove());

  it("a DDNS stack without its token is refused by plan before anything is planned, naming the key and the command", () => {
    project.writeStackFile("dyn", ddnsStack);
    const run = runPlan(project.dir, ["--stack", "dyn"]);
    assert.equal(run.status, 2, run.stderr);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, /^plan: Stack "dyn" has 1 configuration problem:\n/);
    assert.ok(run.stderr.includes(MISSING_TOKEN), run.stderr);
    assert.ok(run.stderr.includes(SET_TOKEN), run.stderr);
  });

  it("lists the missing secret with the stack file's other problems, at once", () => {
    project.writeStackFile("dyn", ddnsStack.replace("engine: mariadb", "engine: oracle"));
    const run = runPlan(project.dir, ["--stack", "dyn"]);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /has 2 configuration problems:/);
    assert.ok(run.stderr.includes('bbaegok-infra:database.engine = "oracle"'), run.stderr);
    assert.ok(run.stderr.includes(MISSING_TOKEN), run.stderr);
  });

  it("a `secure:` token counts as present: the offline loader never decrypts it", () => {
    project.writeStackFile("dyn", ddnsStackYaml({ token: true }));
    const { file, config } = loadStack("dyn", project.dir);
    assert.ok(config.domains.ddns);
    assert.deepEqual(file.secretKeys, ["bbaegok-infra:ddnsApiToken"]);
  });

  it("a provided certificate without its key is refused, naming tlsPrivateKey", () => {
    const provided = prod.replace(
      "cloudflareProxied: true\n",
      "cloudflareProxied: false\n    tls:\n      source: provided\n      certificate: |\n        -----BEGIN CERTIFICATE-----\n        MIIB\n        -----END CERTIFICATE-----\n",
    );
    assert.notEqual(provided, prod);
    project.writeStackFile("cert", provided.replace("host: home.bbaegok.kr", "host: cert.bbaegok.kr"));
    assert.throws(
      () => loadStack("cert", project.dir),
      (err: unknown) =>
        err instanceof StackConfigError &&
        err.problems.length === 1 &&
        err.problems[0]!.key === "bbaegok-infra:tlsPrivateKey" &&
        err.message.includes('because proxy.tls.source is "provided"') &&
        err.message.includes("`pulumi config set --secret tlsPrivateKey -s cert`"),
    );
  });

  it("the program's path (flat config as the engine hands it, secrets decrypted) is checked by the same loader", () => {
    const flat = { ...loadStack("prod").file.config, "bbaegok-infra:domains": JSON.stringify({ zone: "bbaegok.kr", api: "api.bbaegok.kr", metabase: "metabase.bbaegok.kr", ddns: {} }) };
    assert.throws(() => validateFlatConfig("prod", flat), (err: unknown) => err instanceof StackConfigError && err.message.includes("bbaegok-infra:ddnsApiToken is missing"));
    assert.ok(validateFlatConfig("prod", { ...flat, "bbaegok-infra:ddnsApiToken": "a-token" }).domains.ddns);
  });

  it("no component reads stack config itself: secrets reach infra/ as arguments", () => {
    const offenders: string[] = [];
    for (const entry of readdirSync(join(REPO, "infra"), { recursive: true, encoding: "utf8" })) {
      if (!entry.endsWith(".ts")) continue;
      const text = readFileSync(join(REPO, "infra", entry), "utf8");
      for (const [i, line] of text.split("\n").entries()) {
        if (/new pulumi\.Config\(|\.(require|get)Secret\(|runtime\.allConfig\(/.test(line) && !/^\s*(\*|\/\/)/.test(line)) offenders.push(`infra/${entry}:${i + 1}: ${line.trim()}`);
      }
    }
    assert.deepEqual(offenders, []);
  });
});
