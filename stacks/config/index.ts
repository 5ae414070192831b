// The program's door to configuration: read this stack's config from the engine,
// validate it once, and hand typed values (and secrets as secret Outputs) on.
import * as pulumi from "@pulumi/pulumi";
import { join } from "node:path";
import { readSiblings } from "./files.js";
import { PROJECT, type StackConfig } from "./schema.js";
import { rawFromPulumiConfig, validateStackConfig } from "./validate.js";

export * from "./schema.js";
export { StackConfigError, formatProblem, validateStackConfig, stackFileName } from "./validate.js";

/** The repository root, where Pulumi.yaml and the stack files live. */
export const PROJECT_DIR = join(__dirname, "..", "..");

export interface LoadedConfig {
  stack: string;
  config: StackConfig;
  /** Optional secrets, read with `requireSecret` semantics: present only when set. */
  backupPingUrl: pulumi.Output<string> | undefined;
}

export function loadStackConfig(): LoadedConfig {
  const stack = pulumi.getStack();
  const raw = rawFromPulumiConfig(pulumi.runtime.allConfig());
  const config = validateStackConfig(stack, raw, readSiblings(PROJECT_DIR, stack));
  const secrets = new pulumi.Config(PROJECT);
  return { stack, config, backupPingUrl: secrets.getSecret("backupPingUrl") };
}
