// npm run status: what serves a stack now. The live slot the stack file
// records, the slot the proxy actually routes to, each slot's image and
// health, and when each was last deployed (from the deploy history).
import { SLOTS, slotContainerName, slotImage } from "../../infra/app/render.js";
import type { Slot, StackConfig } from "../../stacks/config/schema.js";
import type { DeployRecord, ServerControl, SlotHealth } from "./orchestrator.js";

export interface SlotState {
  slot: Slot;
  container: string;
  image: string;
  health: SlotHealth | `unknown (${string})`;
  /** The last successful deploy to this slot. */
  lastDeploy?: DeployRecord;
}

export interface StackStatus {
  stack: string;
  recordedLive: Slot;
  /** The slot the proxy routes to now, undefined when no slot answers; a string when the proxy could not be asked. */
  served: Slot | undefined | { error: string };
  slots: SlotState[];
  recent: DeployRecord[];
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err)).split("\n")[0]!;

/** Asks the server for each slot's health, the proxy's live route and the recent history. */
export async function gatherStatus(stack: string, config: Pick<StackConfig, "service" | "app" | "domains">, server: ServerControl, historyLines = 50): Promise<StackStatus> {
  const hostHeader = config.app.healthCheck.hostHeader ?? config.domains.api;
  const [served, history, slots] = await Promise.all([
    server.servedBy(hostHeader).catch((err: unknown) => ({ error: errorText(err) })),
    server.readHistory(historyLines).catch(() => [] as DeployRecord[]),
    Promise.all(
      SLOTS.map(async (slot): Promise<SlotState> => {
        const container = slotContainerName(`${config.service}-${stack}`, slot);
        const health = await server.health(container).catch((err: unknown) => `unknown (${errorText(err)})` as const);
        return { slot, container, image: slotImage(config.app, slot), health };
      }),
    ),
  ]);
  for (const state of slots) {
    const last = history.filter((r) => r.slot === state.slot && r.action === "deploy" && r.result === "succeeded").pop();
    if (last) state.lastDeploy = last;
  }
  return { stack, recordedLive: config.app.liveSlot, served, slots, recent: history.slice(-5) };
}

function describeRecord(r: DeployRecord): string {
  const what = r.action === "deploy" ? `deploy of ${r.image} to ${r.slot}` : `rollback to ${r.slot} (${r.image})`;
  return `${r.at}  ${r.who}  ${what}: ${r.result}${r.detail ? ` (${r.detail})` : ""}, ${r.seconds} s`;
}

/** The status as the operator reads it; the last line says what is true now. */
export function formatStatus(status: StackStatus): string[] {
  const lines = [`Stack ${status.stack}`];
  for (const s of status.slots) {
    const live = s.slot === status.recordedLive ? "live" : "idle";
    const deployed = s.lastDeploy ? `deployed ${s.lastDeploy.at} by ${s.lastDeploy.who}` : "no deploy recorded";
    lines.push(`  ${s.slot.padEnd(5)}  ${live}  ${s.image}  ${s.health}  ${deployed}`);
  }
  if (status.recent.length > 0) {
    lines.push("  recent deploys and rollbacks:");
    for (const r of status.recent) lines.push(`    ${describeRecord(r)}`);
  }
  const served = status.served;
  if (served !== undefined && typeof served === "object") {
    lines.push(`${status.recordedLive} is live in the stack file; the proxy could not be asked which slot serves: ${served.error}`);
  } else if (served === status.recordedLive) {
    lines.push(`${served} is live and serving.`);
  } else {
    lines.push(`WARNING: the stack file says ${status.recordedLive} is live, but the proxy routes to ${served ?? "no slot that answers"}.`);
  }
  return lines;
}
