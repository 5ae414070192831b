// Run from a project copy by test/engine/: the deploy command's engine side
// (ops/deploy/engine.ts) against the real CLI — one slot's targeted up, then
// the live slot recorded in config. Prints, last, the logical names whose
// recorded outputs changed: `{"updated": [...]}`.
// usage: engine-deploy-child.ts <stack> <slot> <image>
import * as automation from "@pulumi/pulumi/automation";
import { automationStackControl } from "../../ops/deploy/engine.js";
import { PROJECT_DIR } from "../../stacks/config/index.js";
import type { Slot } from "../../stacks/config/schema.js";

type Resource = { urn: string; outputs?: unknown };

async function outputsByUrn(stack: automation.Stack): Promise<Map<string, string>> {
  const state = await stack.exportStack();
  const resources = (state.deployment as { resources?: Resource[] }).resources ?? [];
  return new Map(resources.map((r) => [r.urn, JSON.stringify(r.outputs ?? {})]));
}

async function main(): Promise<void> {
  const [stackName, slot, image] = process.argv.slice(2) as [string, Slot, string];
  const stack = await automation.LocalWorkspace.selectStack({ stackName, workDir: PROJECT_DIR });
  const before = await outputsByUrn(stack);
  const control = await automationStackControl(stackName, { line: (text) => console.error(text) });
  await control.updateSlot(slot, image);
  await control.recordLiveSlot(slot);
  const after = await outputsByUrn(stack);
  // The stack's own outputs and its reads of stack outputs follow any change; they are not resources on the server.
  const updated = [...after]
    .filter(([urn, outputs]) => before.get(urn) !== outputs && !urn.includes("::pulumi:pulumi:Stack::") && !urn.includes("::pulumi:pulumi:StackReference::"))
    .map(([urn]) => urn.split("::").pop());
  console.log(JSON.stringify({ updated }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
