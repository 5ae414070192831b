// npm run status: what serves a stack now. The live slot the stack's state
// records, the slot the proxy actually routes to, each slot's image and
// health, and when each was last deployed (from the deploy history).
import { SLOTS, slotContainerName } from "../../infra/app/render.js";
import { describeReplication, replicaNames, type ReplicaStatus } from "../../infra/replica/render.js";
import { containerPrefix, healthCheckHost, stackNames } from "../../infra/server/render.js";
import type { DeployedSlots } from "../../infra/app/rollout.js";
import type { Slot, StackConfig } from "../../stacks/config/schema.js";
import type { DeployRecord, HealthCheckRun, ServerControl, SlotHealth } from "./orchestrator.js";

export interface SlotState {
  slot: Slot;
  container: string;
  image: string;
  health: SlotHealth | `unknown (${string})`;
  /** When the slot is not healthy: Docker's last run of its health check, which says why. */
  lastCheck?: HealthCheckRun;
  /** The last successful deploy to this slot. */
  lastDeploy?: DeployRecord;
}

export interface StackStatus {
  stack: string;
  /** The live slot the stack's state records (undefined before the first run). */
  recordedLive: Slot | undefined;
  /** The slot the proxy routes to now, undefined when no slot answers; a string when the proxy could not be asked. */
  served: Slot | undefined | { error: string };
  slots: SlotState[];
  recent: DeployRecord[];
  /** With a read replica: its container and `replica.sh status`'s answer (or why it could not be asked). */
  replica?: { container: string; state: ReplicaStatus | { error: string } };
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err)).split("\n")[0]!;

/** Asks the server for each slot's health, the proxy's live route and the recent history. */
export async function gatherStatus(
  stack: string,
  config: Pick<StackConfig, "service" | "app" | "domains"> & Partial<Pick<StackConfig, "server" | "database">>,
  deployed: DeployedSlots | undefined,
  server: ServerControl,
  historyLines = 50,
): Promise<StackStatus> {
  const hostHeader = healthCheckHost(config);
  const [served, history, slots, replica] = await Promise.all([
    server.servedBy(hostHeader).catch((err: unknown) => ({ error: errorText(err) })),
    server.readHistory(historyLines).catch(() => [] as DeployRecord[]),
    Promise.all(
      SLOTS.map(async (slot): Promise<SlotState> => {
        const container = slotContainerName(containerPrefix(config.service, stack), slot);
        const health = await server.health(container).catch((err: unknown) => `unknown (${errorText(err)})` as const);
        const lastCheck = health === "unhealthy" || health === "starting" ? await server.lastHealthCheck?.(container).catch(() => undefined) : undefined;
        return { slot, container, image: deployed?.slots[slot].container.image ?? "(never deployed)", health, ...(lastCheck ? { lastCheck } : {}) };
      }),
    ),
    replicaState(stack, config, server),
  ]);
  for (const state of slots) {
    const last = history.filter((r) => r.slot === state.slot && r.result === "succeeded").pop();
    if (last) state.lastDeploy = last;
  }
  return { stack, recordedLive: deployed?.liveSlot, served, slots, recent: history.slice(-5), ...(replica ? { replica } : {}) };
}

/** With database.replicas: the replica's state as its script on the stack's server reports it (over the link for a replica on another server). */
async function replicaState(stack: string, config: Partial<Pick<StackConfig, "service" | "server" | "database">>, server: ServerControl): Promise<StackStatus["replica"]> {
  if (!config.database || config.database.replicas.length === 0 || !config.server || !config.service || !server.replication) return undefined;
  const stackPaths = stackNames(config.service, stack, config.server.dataDir);
  const names = replicaNames(stackPaths.prefix);
  const state = await server.replication(names.script(stackPaths.stackDir)).catch((err: unknown) => ({ error: errorText(err) }));
  return { container: names.container, state };
}

function describeRecord(r: DeployRecord): string {
  return `${r.at}  ${r.by ?? "?"}  ${r.action} of ${r.image} to ${r.slot}: ${r.result}`;
}

/**
 * A slot's last health check as the operator reads it. A check that could not
 * run at all (no /bin/sh, no curl nor wget in the image: Paketo's and
 * distroless images) says what the image lacks.
 */
export function describeHealthCheck(s: SlotState): string | undefined {
  if (!s.lastCheck) return undefined;
  const { exitCode, output } = s.lastCheck;
  const toolsMissing = /\/bin\/sh.*(no such file|not found)|(curl|wget): (command )?not found/i.test(output);
  const hint = toolsMissing ? " (the health check runs /bin/sh with curl or wget inside the slot: the image has to have them; README, Blue/green deploys)" : "";
  return `${s.container} is ${s.health}; Docker's last health check of it (exit ${exitCode}): ${output || "no output"}${hint}`;
}

/** The status as the operator reads it; the last line says what is true now. */
export function formatStatus(status: StackStatus): string[] {
  const lines = [`Stack ${status.stack}`];
  for (const s of status.slots) {
    const live = s.slot === status.recordedLive ? "live" : "idle";
    const deployed = s.lastDeploy ? `deployed ${s.lastDeploy.at} by ${s.lastDeploy.by ?? "?"}` : "no deploy recorded";
    lines.push(`  ${s.slot.padEnd(5)}  ${live}  ${s.image}  ${s.health}  ${deployed}`);
    const check = describeHealthCheck(s);
    if (check) lines.push(`    ${check}`);
  }
  if (status.replica) {
    const state = status.replica.state;
    lines.push(`  replica  ${status.replica.container}  ${"error" in state ? `could not be asked: ${state.error}` : describeReplication(state)}`);
  }
  if (status.recent.length > 0) {
    lines.push("  recent deploys and rollbacks:");
    for (const r of status.recent) lines.push(`    ${describeRecord(r)}`);
  }
  const served = status.served;
  if (served !== undefined && typeof served === "object") {
    lines.push(`${status.recordedLive ?? "no slot"} is live in the stack's state; the proxy could not be asked which slot serves: ${served.error}`);
  } else if (served === status.recordedLive) {
    lines.push(`${served} is live and serving.`);
  } else {
    lines.push(`WARNING: the stack's state says ${status.recordedLive ?? "no slot"} is live, but the proxy routes to ${served ?? "no slot that answers"}. The next rollout refuses until they agree.`);
  }
  return lines;
}
