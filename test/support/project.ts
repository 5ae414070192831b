// The project as a user has it: plan a committed stack in a child process, or
// copy the project to a temp dir to plan stack files the tests write.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { StackPlan } from "../../ops/offline/plan.js";
import { tempDir } from "./system.js";

export const REPO = join(__dirname, "..", "..");

/**
 * Plans `stack` of the project at `projectDir` in a child process; `stackOutputs`
 * are what referenced stacks export, by qualified name; `asUp` plans as
 * `pulumi up` runs, so the stack's outputs are known (its `appSlots` included).
 */
export function planInChild(stack: string, projectDir = REPO, stackOutputs: Record<string, Record<string, unknown>> = {}, asUp = false): StackPlan {
  const out = execFileSync(process.execPath, ["--import", "tsx", join(projectDir, "test", "support", "plan-child.ts"), stack], {
    cwd: projectDir,
    env: { ...process.env, PLAN_STACK_OUTPUTS: JSON.stringify(stackOutputs), PLAN_AS_UP: asUp ? "1" : "0" },
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(out) as StackPlan;
}

/** A copy of the project's program and stack files, sharing node_modules. */
export function copyProject(): { dir: string; remove(): void; writeStackFile(stack: string, yaml: string): void } {
  const tmp = tempDir("bbaegok-project");
  for (const entry of ["Pulumi.yaml", "package.json", "tsconfig.json", "stacks", "infra", "ops", "policy", "test"]) {
    cpSync(join(REPO, entry), join(tmp.path, entry), { recursive: true });
  }
  for (const file of execFileSync("sh", ["-c", "ls Pulumi.*.yaml"], { cwd: REPO, encoding: "utf8" }).split("\n").filter(Boolean)) {
    cpSync(join(REPO, file), join(tmp.path, file));
  }
  symlinkSync(join(REPO, "node_modules"), join(tmp.path, "node_modules"));
  return {
    dir: tmp.path,
    remove: tmp.remove,
    writeStackFile: (stack, yaml) => writeFileSync(join(tmp.path, `Pulumi.${stack}.yaml`), yaml),
  };
}

/** Runs `npm run plan` as a user would (through node directly, same script). */
export function runPlan(projectDir: string, args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ["--import", "tsx", join(projectDir, "ops", "plan.ts"), ...args], {
    cwd: projectDir,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}
