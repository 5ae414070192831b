// StackControl on Pulumi's engine (Automation API), and the stack file's app
// release (read and written in place, comments kept), for deploy and rollback.
import type * as automation from "@pulumi/pulumi/automation";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { parseDeployed, releaseOf, type DeployedSlots, type SlotRelease } from "../../infra/app/rollout.js";
import { PROJECT, PROJECT_DIR, loadStack } from "../../stacks/config/index.js";
import { stackFileName } from "../../stacks/config/validate.js";
import { selectStack } from "../automation.js";
import type { ReleaseFile, Reporter, StackControl } from "./orchestrator.js";

/** The app release in `Pulumi.<stack>.yaml`: written key by key into the document, so comments and order stay. */
export function stackReleaseFile(stack: string, projectDir = PROJECT_DIR): ReleaseFile {
  const path = join(projectDir, stackFileName(stack));
  return {
    read: () => releaseOf(loadStack(stack, projectDir).config.app),
    write(release: Partial<SlotRelease>) {
      const before = readFileSync(path, "utf8");
      const doc = parseDocument(before);
      for (const [key, value] of Object.entries(release)) doc.setIn(["config", `${PROJECT}:app`, key], value);
      writeFileSync(path, doc.toString());
      return () => writeFileSync(path, before);
    },
  };
}

export async function automationStackControl(stackName: string, reporter: Reporter): Promise<StackControl> {
  const stack: automation.Stack = await selectStack(stackName);
  const onOutput = (out: string) => {
    for (const line of out.split("\n")) if (line.trim()) reporter.line(`      ${line}`);
  };
  return {
    async deployed(): Promise<DeployedSlots | undefined> {
      return parseDeployed((await stack.outputs())["appSlots"]?.value);
    },
    async up() {
      await stack.up({ onOutput, color: "never", policyPacks: [join(PROJECT_DIR, "policy")] });
    },
  };
}
