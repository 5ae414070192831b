// StackControl on Pulumi's engine (Automation API): the stack's config from
// its file, a targeted `pulumi up` of one slot, and the live slot kept in the
// stack config so a later `pulumi up` keeps it.
import type * as automation from "@pulumi/pulumi/automation";
import { PROJECT, PROJECT_DIR } from "../../stacks/config/index.js";
import { readSiblings, readStackFile } from "../../stacks/config/files.js";
import type { Slot } from "../../stacks/config/schema.js";
import { rawFromPulumiConfig, validateStackConfig } from "../../stacks/config/validate.js";
import { selectStack, urnOf } from "../automation.js";
import type { Reporter, StackControl } from "./orchestrator.js";

const APP_SLOTS = "bbaegok:app:AppSlots";

/**
 * The URNs of one slot's image and container, from the stack's state when it
 * has them (exact), else as the engine will name them (first deploy).
 */
async function slotUrns(stack: automation.Stack, stackName: string, slot: Slot): Promise<string[]> {
  const wanted = new Set([`app-${slot}-image`, `app-${slot}`]);
  const state = await stack.exportStack();
  const resources = ((state.deployment as { resources?: { urn: string }[] }).resources ?? []).map((r) => r.urn);
  const found = resources.filter((urn) => wanted.has(urn.split("::").pop() ?? "") && urn.includes(`${APP_SLOTS}$`));
  if (found.length === wanted.size) return found;
  return [urnOf(stackName, [APP_SLOTS, "docker:index/remoteImage:RemoteImage"], `app-${slot}-image`), urnOf(stackName, [APP_SLOTS, "docker:index/container:Container"], `app-${slot}`)];
}

/** Reads and validates a stack's file the way the program does. */
export function readStackConfig(stack: string) {
  const file = readStackFile(PROJECT_DIR, stack);
  return validateStackConfig(stack, rawFromPulumiConfig(file.config), readSiblings(PROJECT_DIR, stack));
}

export async function automationStackControl(stackName: string, reporter: Reporter): Promise<StackControl> {
  const stack: automation.Stack = await selectStack(stackName);
  const onOutput = (out: string) => {
    for (const line of out.split("\n")) if (line.trim()) reporter.line(`      ${line}`);
  };
  return {
    async config() {
      return readStackConfig(stackName);
    },
    async updateSlot(slot: Slot, image: string) {
      await stack.setConfig(`${PROJECT}:app.slots.${slot}.image`, { value: image }, true);
      // Only this slot's image and container: the live slot and everything else stay as they are.
      const target = await slotUrns(stack, stackName, slot);
      await stack.up({ target, onOutput, color: "never" });
    },
    async recordLiveSlot(slot: Slot) {
      await stack.setConfig(`${PROJECT}:app.liveSlot`, { value: slot }, true);
    },
  };
}
