// The program's door to configuration: read this stack's config from the engine,
// validate it once, and hand typed values (and secrets as secret Outputs) on.
import * as pulumi from "@pulumi/pulumi";
import { PROJECT_DIR, validateFlatConfig } from "./load.js";
import { PROJECT, SECRET_KEYS, type SecretKey, type StackConfig } from "./schema.js";

export * from "./schema.js";
export { StackConfigError, formatProblem, validateStackConfig, stackFileName } from "./validate.js";
export { PROJECT_DIR, loadStack, type LoadedStack } from "./load.js";

/** The stack's secrets as secret Outputs, each present only when set (the loader has refused a stack missing one its config needs). */
export type StackSecrets = Partial<Record<SecretKey, pulumi.Output<string>>>;

export interface LoadedConfig {
  stack: string;
  config: StackConfig;
  /** Read here once and handed to the components that need them; no component reads config itself. */
  secrets: StackSecrets;
}

export function loadStackConfig(): LoadedConfig {
  const stack = pulumi.getStack();
  const config = validateFlatConfig(stack, pulumi.runtime.allConfig(), PROJECT_DIR);
  const pulumiConfig = new pulumi.Config(PROJECT);
  const secrets: StackSecrets = {};
  for (const key of Object.keys(SECRET_KEYS) as SecretKey[]) {
    const value = pulumiConfig.getSecret(key);
    if (value !== undefined) secrets[key] = value;
  }
  return { stack, config, secrets };
}
