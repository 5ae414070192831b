// The one loader of a stack's configuration: flat config (from the stack file
// on disk, or as the engine hands it to the program) validated with the
// project's other stack files and the secrets the config needs, so every
// command and test checks exactly what `pulumi up` checks.
import { join } from "node:path";
import { readSiblings, readStackFile, type StackFile } from "./files.js";
import type { StackConfig } from "./schema.js";
import { rawFromPulumiConfig, secretsIn, validateStackConfig } from "./validate.js";

/** The repository root, where Pulumi.yaml and the stack files live. */
export const PROJECT_DIR = join(__dirname, "..", "..");

/** Validates flat Pulumi config (`bbaegok-infra:<key>` → text) as the program does; throws StackConfigError listing every problem. */
export function validateFlatConfig(stack: string, flat: Readonly<Record<string, string>>, projectDir = PROJECT_DIR): StackConfig {
  return validateStackConfig(stack, rawFromPulumiConfig(flat), readSiblings(projectDir, stack), secretsIn(flat));
}

export interface LoadedStack {
  /** The stack file as read (secret values are placeholders). */
  file: StackFile;
  /** Its validated config. */
  config: StackConfig;
}

/** Reads `Pulumi.<stack>.yaml` and validates it; throws StackFileError or StackConfigError. */
export function loadStack(stack: string, projectDir = PROJECT_DIR): LoadedStack {
  const file = readStackFile(projectDir, stack);
  return { file, config: validateFlatConfig(stack, file.config, projectDir) };
}
