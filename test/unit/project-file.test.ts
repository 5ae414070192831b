// Pulumi.yaml's declared config keys, held to the CLI's own rule (pulumi/pulumi
// pkg/workspace/config.go, mergeConfig): a key of the project's namespace that
// has no default and is not set in a stack file stops every command of that
// stack with "Stack '<stack>' is missing configuration value '<key>'", before
// the program runs. The real-engine suite (test/engine/) shows the same thing
// with the CLI itself; this checks it in milliseconds for every stack file.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { PROJECT } from "../../stacks/config/schema.js";
import { REPO } from "../support/project.js";

interface Declared {
  type?: string;
  default?: unknown;
  secret?: boolean;
}

const project = parse(readFileSync(join(REPO, "Pulumi.yaml"), "utf8")) as { name: string; config?: Record<string, Declared> };
const stackFiles = readdirSync(REPO).filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f));

/** The declared keys a stack file must set: no default, in the project's namespace. */
function requiredKeys(config: Record<string, Declared>): string[] {
  return Object.entries(config)
    .filter(([key, declared]) => declared.default === undefined && (!key.includes(":") || key.startsWith(`${PROJECT}:`)))
    .map(([key]) => (key.includes(":") ? key : `${PROJECT}:${key}`));
}

describe("Pulumi.yaml's declared config", () => {
  it("is the project's", () => assert.equal(project.name, PROJECT));

  it("the rule catches a declared key no stack sets (the backupPingUrl defect)", () => {
    const declared = { service: { type: "string", default: "bbaegok" }, backupPingUrl: { type: "string", secret: true } };
    assert.deepEqual(requiredKeys(declared), [`${PROJECT}:backupPingUrl`]);
  });

  for (const file of stackFiles) {
    it(`${file} sets every declared key without a default`, () => {
      const stackConfig = (parse(readFileSync(join(REPO, file), "utf8")) as { config?: Record<string, unknown> }).config ?? {};
      const missing = requiredKeys(project.config ?? {}).filter((key) => !(key in stackConfig));
      assert.deepEqual(missing, [], `${file} misses ${missing.join(", ")}: the CLI would stop before the program runs`);
    });
  }

  it("declares no secret: an optional secret is read by the program, a required one would have to be in every stack file", () => {
    const secrets = Object.entries(project.config ?? {}).filter(([, declared]) => declared.secret).map(([key]) => key);
    assert.deepEqual(secrets, []);
  });
});
