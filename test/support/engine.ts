// For the tests that run Pulumi's real engine (test/engine/): the CLI, the
// language host and the plugins built by `npm run engine:install`. A missing
// build fails loudly with the command to run; it never skips.
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { GO_COMPONENTS } from "../../engine/components.js";
import { enginePaths, type Profile } from "../../engine/paths.js";
import { openWorkspace, type EngineWorkspace } from "../../engine/workspace.js";

export function requireEngine(): void {
  const missing = GO_COMPONENTS.map((c) => join(enginePaths.build(c.name), c.binary)).filter((p) => !existsSync(p));
  if (!existsSync(join(enginePaths.bin, "pulumi"))) missing.unshift(join(enginePaths.bin, "pulumi"));
  if (missing.length > 0) {
    throw new Error(`Pulumi's engine is not built (missing ${missing.join(", ")}). Run: npm run engine:install (the README's test command does).`);
  }
}

/** A workspace (project copy, file backend, passphrase) for one test file; `remove` at the end. */
export function engineWorkspace(profile: Profile, env?: NodeJS.ProcessEnv): EngineWorkspace & { remove(): void } {
  requireEngine();
  const workspace = openWorkspace({ profile, ...(env ? { env } : {}) });
  return { ...workspace, remove: () => rmSync(workspace.dir, { recursive: true, force: true }) };
}

/** A second view of the same workspace with another profile's plugins (same backend, project and passphrase). */
export function withProfile(workspace: EngineWorkspace, profile: Profile, env?: NodeJS.ProcessEnv): EngineWorkspace {
  return openWorkspace({ dir: workspace.dir, profile, ...(env ? { env } : {}) });
}

/** stdout+stderr of a finished CLI run, for assertion messages. */
export function outputOf(result: { stdout: string; stderr: string }): string {
  return `${result.stdout}\n${result.stderr}`;
}
