// The blue/green rollout as a pure plan. Which slot serves, and exactly what
// each slot's container was created with, is the stack's state: the `app`
// output of its last run, read back through the stack's own StackReference.
// What should serve is the stack file (git). From the two, each run decides:
//
//   - nothing changes: the file's release is what the live slot runs;
//   - flip: the file's release is what the idle slot runs (a rollback, or a
//     release going back): no container starts, the upstream flips;
//   - rollout: anything else (image, env, memory, health check, mounts, or a
//     change in how this code renders a slot): the idle slot gets it, turns
//     healthy, passes the smoke checks, then the upstream flips;
//   - staged (`npm run promote`'s first step, `database.primary: promoting`):
//     the idle slot gets the file's release as it will run once promoted and
//     is checked as a rewarm is; nothing flips, whatever the file says of the
//     live slot. The promotion's own run then finds it there and only flips.
//   - rewarm: nothing to release, but the idle slot's container is not what
//     its own release renders now (a rollout of a setting outside the release
//     left it as it was: `npm run promote` moving the datasource to the
//     promoted database is one): it is re-created with its release as the
//     stack says now, turns healthy and passes the smoke checks; nothing flips.
//     A rollout cannot do this in its own run: the slot it leaves warm serves
//     until the flip at the run's end.
//
// The live slot's container is always the one recorded, field for field: no
// change in the file or in this code can update or replace the container
// that serves. The previous release stays warm in the other slot.
import { z } from "zod";
import { appSchema, type Slot, type StackConfig } from "../../stacks/config/schema.js";
import { platformSettings, type PlatformSettings } from "../server/container.js";
import { APP_SECRETS_MOUNT, SLOTS, otherSlot, slotContainerName, slotEnvs, slotHealthCheck, slotWaitSeconds } from "./render.js";

/**
 * The stack file's part that makes a release: what `npm run rollback` writes
 * back so the file says what serves again.
 */
export interface SlotRelease {
  image: string;
  env: Record<string, string>;
  memoryMb: number;
  healthCheck: StackConfig["app"]["healthCheck"];
  deployTimeout: string;
}

/** A slot's container exactly as created: every input but the image's id, which its RemoteImage of `image` gives. */
export interface ContainerSpec extends PlatformSettings {
  name: string;
  image: string;
  memory: number;
  memorySwap: number;
  /** `app.runAs`. Absent in slots recorded before it was set: those ran as their image's own user. */
  user?: string;
  envs: string[];
  networksAdvanced: { name: string; ipv4Address?: string }[];
  mounts: { type: string; source: string; target: string; readOnly: boolean }[];
  healthcheck: ReturnType<typeof slotHealthCheck>;
  stopTimeout: number;
  waitTimeout: number;
}

export interface SlotSpec {
  release: SlotRelease;
  container: ContainerSpec;
}

/** The `app` output: what the next run reads back. */
export interface DeployedSlots {
  liveSlot: Slot;
  slots: Record<Slot, SlotSpec>;
  /** The slot the last change re-created without a flip (a rewarm); absent when it was a rollout or a flip. */
  rewarmed?: Slot;
}

/** What a run's checks (infra/proxy/rollout.ts) are about. */
export interface RolloutChecks {
  /** "rollout": the target goes live (a first run, a rollout, a flip); "rewarm": the idle target is re-created and stays idle. */
  action: "rollout" | "rewarm";
  target: Slot;
}

export type RolloutAction = "first" | "none" | "flip" | "rollout" | "rewarm";

export interface RolloutPlan {
  action: RolloutAction;
  /** The slot serving when the run ends. */
  live: Slot;
  /** The slot serving when the run starts (undefined on a stack's first run). */
  previous: Slot | undefined;
  /**
   * What the checks are about: this run's change (the slot a rollout or a flip
   * makes live, the warm slot a rewarm re-creates), or the last run's when
   * nothing changes, so that their text, and so the run, stays the same.
   */
  checks: RolloutChecks;
  /** What each slot's container is after the run. */
  slots: Record<Slot, SlotSpec>;
}

/** What the stack's names and addresses give a slot. */
export interface SlotPlace {
  /** `<service>-<stack>`. */
  prefix: string;
  stack: string;
  edgeNetwork: string;
  dataNetwork: string;
  secretsDir: string;
  addresses: Record<Slot, string>;
  hostHeader: string;
}

export function releaseOf(app: StackConfig["app"]): SlotRelease {
  return { image: app.image, env: app.env, memoryMb: app.memoryMb, healthCheck: app.healthCheck, deployTimeout: app.deployTimeout };
}

/** The container the stack file and this code want in `slot`. */
export function desiredSpec(config: Pick<StackConfig, "app" | "database">, place: SlotPlace, slot: Slot): SlotSpec {
  const app = config.app;
  return {
    release: releaseOf(app),
    container: {
      name: slotContainerName(place.prefix, slot),
      image: app.image,
      ...platformSettings("app", place.stack, [{ label: "bbaegok.slot", value: slot }]),
      memory: app.memoryMb,
      memorySwap: app.memoryMb,
      // The owner of the password file (0400): the app must run as it whatever
      // user its image names (Paketo's builds run as their own uid, a plain
      // Dockerfile often as root).
      user: app.runAs,
      envs: slotEnvs(config, slot),
      // A fixed address on the edge network: the proxy's upstream for this slot.
      networksAdvanced: [{ name: place.edgeNetwork, ipv4Address: place.addresses[slot] }, { name: place.dataNetwork }],
      mounts: [{ type: "bind", source: `${place.secretsDir}/app`, target: APP_SECRETS_MOUNT, readOnly: true }],
      healthcheck: slotHealthCheck(app, place.hostHeader),
      // Graceful shutdown: Spring finishes in-flight requests before exiting.
      stopTimeout: 30,
      waitTimeout: slotWaitSeconds(app),
    },
  };
}

/** JSON with sorted keys: two specs are the same release exactly when these are equal. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}

const same = (a: SlotSpec, b: SlotSpec) => canonical(a.container) === canonical(b.container);

/** What this code renders for a stack: `release`'s container in `slot`, or undefined when the release is not valid in the stack file now. */
export type SlotRenderer = (slot: Slot, release: SlotRelease) => SlotSpec | undefined;

/** The stack's renderer: a release is rendered with the rest of the stack file as it is now (database, domains, port, …). */
export function slotRenderer(config: Pick<StackConfig, "app" | "database">, place: SlotPlace): SlotRenderer {
  return (slot, release) => {
    // A recorded release is checked as the stack file would be: one this code no longer accepts is left as it runs.
    const app = appSchema.safeParse({ ...config.app, ...release });
    return app.success ? desiredSpec({ ...config, app: app.data }, place, slot) : undefined;
  };
}

/**
 * Decides this run's rollout from what serves (`deployed`, the last run's
 * output) and what the file wants (`desired`); `render` gives the idle slot's
 * own release as this code and the file render it now.
 */
export function planRollout(deployed: DeployedSlots | undefined, desired: Record<Slot, SlotSpec>, render: SlotRenderer, { staged = false } = {}): RolloutPlan {
  if (!deployed && staged) throw new Error("database.primary: promoting and returning stage the warm slot of a stack that serves; this stack has not served yet (npm run promote and npm run failback write them, never by hand)");
  if (!deployed) return { action: "first", live: "blue", previous: undefined, checks: { action: "rollout", target: "blue" }, slots: desired };
  const live = deployed.liveSlot;
  const idle = otherSlot(live);
  if (staged) {
    // Started and checked as a rewarm is, and left idle: what serves is not touched until the promotion.
    if (same(desired[idle], deployed.slots[idle])) return { action: "none", live, previous: live, checks: { action: "rewarm", target: idle }, slots: deployed.slots };
    return { action: "rewarm", live, previous: live, checks: { action: "rewarm", target: idle }, slots: { ...deployed.slots, [idle]: desired[idle] } as Record<Slot, SlotSpec> };
  }
  const goLive: RolloutChecks = { action: "rollout", target: idle };
  if (same(desired[live], deployed.slots[live])) {
    const warm = render(idle, deployed.slots[idle].release);
    if (!warm || same(warm, deployed.slots[idle])) {
      const last: RolloutChecks = deployed.rewarmed ? { action: "rewarm", target: deployed.rewarmed } : { action: "rollout", target: live };
      return { action: "none", live, previous: live, checks: last, slots: deployed.slots };
    }
    return { action: "rewarm", live, previous: live, checks: { action: "rewarm", target: idle }, slots: { ...deployed.slots, [idle]: warm } as Record<Slot, SlotSpec> };
  }
  if (same(desired[idle], deployed.slots[idle])) return { action: "flip", live: idle, previous: live, checks: goLive, slots: deployed.slots };
  const slots = { ...deployed.slots, [idle]: desired[idle] } as Record<Slot, SlotSpec>;
  return { action: "rollout", live: idle, previous: live, checks: goLive, slots };
}

/** What the run exports as `app` once its checks passed: what the next run reads back. */
export function recordOf(plan: RolloutPlan): DeployedSlots {
  return { liveSlot: plan.live, slots: plan.slots, ...(plan.checks.action === "rewarm" ? { rewarmed: plan.checks.target } : {}) };
}

const containerSpec = z.looseObject({ name: z.string(), image: z.string() });
const slotSpec = z.object({ release: z.looseObject({ image: z.string() }), container: containerSpec });
const deployedSchema = z.object({ liveSlot: z.enum(SLOTS), slots: z.object({ blue: slotSpec, green: slotSpec }), rewarmed: z.enum(SLOTS).optional() });

/**
 * The last run's `app` output, checked: undefined before the first run; an
 * error (not a silent first run) when it is there but not what this code
 * writes, since guessing would replace the slot that serves.
 */
export function parseDeployed(value: unknown): DeployedSlots | undefined {
  if (value === undefined || value === null) return undefined;
  const parsed = deployedSchema.safeParse(value);
  if (!parsed.success) throw new Error(`the stack's last \`app\` output is not what this program writes (${parsed.error.issues[0]?.message}); refusing to guess which slot serves`);
  return parsed.data as unknown as DeployedSlots;
}
