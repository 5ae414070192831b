// The deploy, rollback and status sequences, written against two narrow
// interfaces: StackControl (Pulumi's engine, through the Automation API) and
// ServerControl (the server: Docker health, the proxy's routes and reload).
// Invariant: until the flip succeeds, the live slot is never touched; a failure
// says which step failed and why, and leaves the idle slot for inspection.
import { otherSlot, slotContainerName } from "../../infra/app/render.js";
import { durationSeconds } from "../../stacks/config/rules.js";
import type { Slot, StackConfig } from "../../stacks/config/schema.js";

export type SlotHealth = "healthy" | "unhealthy" | "starting" | "stopped" | "missing";

export interface SmokeResult {
  status: number;
}

export interface DeployRecord {
  /** ISO-8601 UTC. */
  at: string;
  action: "deploy" | "rollback";
  stack: string;
  who: string;
  image: string;
  slot: Slot;
  result: "succeeded" | "failed";
  /** The failed step and its reason, when failed. */
  detail?: string;
  seconds: number;
}

/** What the engine does for a deploy (implemented with the Automation API). */
export interface StackControl {
  /** The stack's validated config as the engine has it. */
  config(): Promise<StackConfig>;
  /** Puts `image` on `slot` (pulumi up on that slot only; Pulumi waits for Docker's healthy). */
  updateSlot(slot: Slot, image: string): Promise<void>;
  /** Makes `slot` the live slot in the stack config, so the next `pulumi up` keeps it. */
  recordLiveSlot(slot: Slot): Promise<void>;
}

/** What the server does for a deploy (implemented over SSH; locally in tests). */
export interface ServerControl {
  /** Takes the stack's deploy lock, or throws DeployLockedError naming the holder. */
  lock(holder: string): Promise<{ release(): Promise<void> }>;
  health(container: string): Promise<SlotHealth>;
  /** A request to `slot` through the proxy's internal route (not reachable from outside). */
  smoke(slot: Slot, path: string, hostHeader: string): Promise<SmokeResult>;
  /** Points the stack's upstream at `slot`: file, `nginx -t`, graceful reload. Throws with nginx's message; the old upstream stays live on failure. */
  switchTo(slot: Slot): Promise<void>;
  /** Which slot answers a request through the proxy's public route now. */
  servedBy(hostHeader: string): Promise<Slot | undefined>;
  appendHistory(record: DeployRecord): Promise<void>;
  readHistory(limit: number): Promise<DeployRecord[]>;
}

export class DeployLockedError extends Error {
  override name = "DeployLockedError";
}

export class StepFailed extends Error {
  override name = "StepFailed";
  constructor(
    readonly step: string,
    readonly reason: string,
  ) {
    super(`${step} failed: ${reason}`);
  }
}

/** Prints progress; the CLI writes lines, tests collect them. */
export interface Reporter {
  line(text: string): void;
}

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

interface Context {
  stack: string;
  who: string;
  engine: StackControl;
  server: ServerControl;
  reporter: Reporter;
  clock: Clock;
}

async function step<T>(ctx: Context, index: number, total: number, name: string, run: () => Promise<T>): Promise<T> {
  const started = ctx.clock.now();
  ctx.reporter.line(`[${index}/${total}] ${name} ...`);
  try {
    const result = await run();
    ctx.reporter.line(`[${index}/${total}] ${name}: done in ${((ctx.clock.now() - started) / 1000).toFixed(1)} s`);
    return result;
  } catch (err) {
    const reason = err instanceof StepFailed ? err.reason : err instanceof Error ? err.message : String(err);
    throw new StepFailed(name, reason);
  }
}

async function waitHealthy(ctx: Context, container: string, timeoutMs: number): Promise<void> {
  const deadline = ctx.clock.now() + timeoutMs;
  let last: SlotHealth = "missing";
  while (ctx.clock.now() <= deadline) {
    last = await ctx.server.health(container);
    if (last === "healthy") return;
    if (last === "unhealthy" || last === "stopped" || last === "missing") break;
    await ctx.clock.sleep(1000);
  }
  throw new StepFailed("wait until healthy", `${container} is ${last}${last === "starting" ? ` after ${timeoutMs / 1000} s` : ""}; see: docker logs ${container}`);
}

/** Requests through the proxy reach `slot` several times in a row. */
async function verifyServing(ctx: Context, slot: Slot, hostHeader: string): Promise<void> {
  const deadline = ctx.clock.now() + 10_000;
  let streak = 0;
  let last: Slot | undefined;
  while (ctx.clock.now() <= deadline) {
    last = await ctx.server.servedBy(hostHeader);
    streak = last === slot ? streak + 1 : 0;
    if (streak >= 5) return;
    await ctx.clock.sleep(100);
  }
  throw new Error(`requests still reach ${last ?? "no slot"} 10 s after the switch to ${slot}`);
}

/** Flips to `target` and checks traffic moved; if it did not, puts `previous` back rather than leave it half-switched. */
async function switchAndVerify(ctx: Context, target: Slot, previous: Slot, hostHeader: string): Promise<void> {
  await ctx.server.switchTo(target);
  try {
    await verifyServing(ctx, target, hostHeader);
  } catch (err) {
    await ctx.server.switchTo(previous);
    throw err;
  }
}

export interface DeployOptions {
  stack: string;
  image: string;
  who: string;
}

export interface Outcome {
  ok: boolean;
  summary: string;
}

async function withLockAndHistory(ctx: Context, action: DeployRecord["action"], image: () => string, slot: () => Slot, run: () => Promise<string>): Promise<Outcome> {
  const started = ctx.clock.now();
  let lock: { release(): Promise<void> };
  try {
    lock = await ctx.server.lock(`${ctx.who} (${action})`);
  } catch (err) {
    return { ok: false, summary: `${action} of ${ctx.stack} refused: ${(err as Error).message}` };
  }
  const record = (result: DeployRecord["result"], detail?: string): DeployRecord => ({
    at: new Date(ctx.clock.now()).toISOString(),
    action,
    stack: ctx.stack,
    who: ctx.who,
    image: image(),
    slot: slot(),
    result,
    ...(detail ? { detail } : {}),
    seconds: Math.round((ctx.clock.now() - started) / 100) / 10,
  });
  try {
    const summary = await run();
    await ctx.server.appendHistory(record("succeeded"));
    return { ok: true, summary };
  } catch (err) {
    const failure = err instanceof StepFailed ? err : new StepFailed(action, (err as Error).message);
    await ctx.server.appendHistory(record("failed", failure.message)).catch(() => undefined);
    return { ok: false, summary: `${action} of ${ctx.stack} FAILED at "${failure.step}": ${failure.reason}` };
  } finally {
    await lock.release();
  }
}

/**
 * idle slot ← image → healthy → smoke checks through the proxy → flip → verify.
 * The old slot stays running (warm) for rollback.
 */
export async function deploy(opts: DeployOptions, engine: StackControl, server: ServerControl, reporter: Reporter, clock: Clock = realClock): Promise<Outcome> {
  const ctx: Context = { stack: opts.stack, who: opts.who, engine, server, reporter, clock };
  let target: Slot = "blue";
  return withLockAndHistory(
    ctx,
    "deploy",
    () => opts.image,
    () => target,
    async () => {
      const config = await step(ctx, 1, 6, "read the stack", () => engine.config());
      const live = config.app.liveSlot;
      target = otherSlot(live);
      const prefix = `${config.service}-${opts.stack}`;
      const container = slotContainerName(prefix, target);
      const hostHeader = config.app.healthCheck.hostHeader ?? config.domains.api;
      const timeoutMs = durationSeconds(config.app.deployTimeout) * 1000;
      reporter.line(`    live: ${live} (${config.app.slots[live]?.image ?? config.app.image}); deploying ${opts.image} to ${target}`);

      await step(ctx, 2, 6, `put ${opts.image} on the idle slot ${target}`, () => engine.updateSlot(target, opts.image));
      await step(ctx, 3, 6, "wait until healthy", () => waitHealthy(ctx, container, timeoutMs));
      const checks = config.app.smokeChecks.length > 0 ? config.app.smokeChecks : [{ path: config.app.healthCheck.path, status: 200 }];
      await step(ctx, 4, 6, `smoke checks through the proxy (${checks.length})`, async () => {
        for (const check of checks) {
          const result = await server.smoke(target, check.path, hostHeader);
          if (result.status !== check.status) throw new Error(`GET ${check.path} on ${target} answered ${result.status}, expected ${check.status}`);
        }
      });
      await step(ctx, 5, 6, `switch live traffic to ${target}`, () => switchAndVerify(ctx, target, live, hostHeader));
      await step(ctx, 6, 6, "record the live slot in the stack config", () => engine.recordLiveSlot(target));
      return `${opts.stack}: ${target} is live with ${opts.image}; ${live} stays warm for rollback (npm run rollback -- --stack ${opts.stack}).`;
    },
  );
}

/** Flips back to the other (warm) slot without pulling or starting anything. */
export async function rollback(stack: string, who: string, engine: StackControl, server: ServerControl, reporter: Reporter, clock: Clock = realClock): Promise<Outcome> {
  const ctx: Context = { stack, who, engine, server, reporter, clock };
  let target: Slot = "blue";
  let image = "";
  return withLockAndHistory(
    ctx,
    "rollback",
    () => image,
    () => target,
    async () => {
      const config = await step(ctx, 1, 4, "read the stack", () => engine.config());
      const live = config.app.liveSlot;
      target = otherSlot(live);
      image = config.app.slots[target]?.image ?? config.app.image;
      const container = slotContainerName(`${config.service}-${stack}`, target);
      const hostHeader = config.app.healthCheck.hostHeader ?? config.domains.api;
      await step(ctx, 2, 4, `check that ${target} is warm`, async () => {
        const health = await server.health(container);
        if (health !== "healthy") throw new Error(`${container} is ${health}: nothing warm to roll back to; deploy a known-good image instead`);
      });
      await step(ctx, 3, 4, `switch live traffic back to ${target}`, () => switchAndVerify(ctx, target, live, hostHeader));
      await step(ctx, 4, 4, "record the live slot in the stack config", () => engine.recordLiveSlot(target));
      return `${stack}: rolled back; ${target} is live with ${image}; ${live} stays warm.`;
    },
  );
}
