// npm run deploy / rollback as the stack file (git) and Pulumi's state see
// them: the rollout itself is the program's (infra/app, run by `pulumi up`),
// the one implementation every command shares. A deploy writes the release
// into the stack file and runs `pulumi up`; a rollback writes back the release
// the idle slot still runs, so the same `pulumi up` only flips. Either way the
// file then says what serves, and the next `pulumi up` (CI's, from the commit)
// changes nothing. A failed run puts the file back as it was.
import type { ReplicaStatus } from "../../infra/replica/render.js";
import type { DeployedSlots, SlotRelease } from "../../infra/app/rollout.js";
import { otherSlot, SLOTS } from "../../infra/app/render.js";
import type { Slot } from "../../stacks/config/schema.js";

export type SlotHealth = "healthy" | "unhealthy" | "starting" | "stopped" | "missing";

/** One line of the stack's deploy history on the server, written by the rollout's verification. */
export interface DeployRecord {
  /** ISO-8601 UTC. */
  at: string;
  action: string;
  stack: string;
  slot: Slot;
  image: string;
  release?: string;
  result: "succeeded" | "failed";
  /** Who ran it, as the server saw the SSH session: `deploy from 192.0.2.7`. */
  by?: string;
}

/** What a deploy needs from Pulumi (implemented with the Automation API). */
export interface StackControl {
  /** The stack's `appSlots` output of its last run: which slot serves and what each runs (undefined before the first run). */
  deployed(): Promise<DeployedSlots | undefined>;
  /** `pulumi up` of the stack from its file (the policy pack enforced); the rollout happens inside. */
  up(): Promise<void>;
}

/** The stack file's app release: read, and written with a way back. */
export interface ReleaseFile {
  read(): SlotRelease;
  /** Writes `release` into the file; returns what puts the file back as it was. */
  write(release: Partial<SlotRelease>): () => void;
}

/** Docker's last run of a container's health check. */
export interface HealthCheckRun {
  exitCode: number;
  output: string;
}

/** What the server answers for status (over SSH; locally in tests). */
export interface ServerControl {
  health(container: string): Promise<SlotHealth>;
  /** Docker's last run of the container's health check; undefined when it has none or never ran it. */
  lastHealthCheck?(container: string): Promise<HealthCheckRun | undefined>;
  /** Which slot answers a request through the proxy's public route now. */
  servedBy(hostHeader: string): Promise<Slot | undefined>;
  readHistory(limit: number): Promise<DeployRecord[]>;
  /** The read replica's state: its script's `status` (infra/replica), run on the server. */
  replication?(script: string): Promise<ReplicaStatus>;
}

/** Prints progress; the CLI writes lines, tests collect them. */
export interface Reporter {
  line(text: string): void;
}

export interface Clock {
  now(): number;
}

export const realClock: Clock = { now: () => Date.now() };

export interface Outcome {
  ok: boolean;
  summary: string;
}

/** The lines of a failed pulumi up that say why (the engine's error is long). */
export function upFailureReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split("\n").filter((l) => /error|refus|fail/i.test(l)).slice(-3).join(" / ") || "pulumi up failed";
}

/**
 * What to do when an up failed on what an interrupted one left (a cancelled
 * job, a lost runner, a killed deploy): the stack's lock, or the idle slot's
 * container it was creating, which Pulumi's state does not know and whose
 * name the next create then finds taken. Such a container serves nothing:
 * the slots are created only after the precheck found the recorded live
 * slot serving. `failure` is the engine's whole error.
 */
export function interruptedRunHint(stack: string, failure: string, deployed: DeployedSlots | undefined): string | undefined {
  if (/the stack is currently locked/.test(failure)) {
    return `Another pulumi up of ${stack} holds its lock, or one was interrupted and left it: once sure none runs (GitHub Actions, a teammate's deploy), remove it with pulumi cancel --stack ${stack} --yes and deploy again`;
  }
  const taken = /The container name "\/([^"]+)" is already in use/.exec(failure)?.[1];
  const slot = deployed && SLOTS.find((s) => deployed.slots[s].container.name === taken);
  if (!deployed || !slot || slot === deployed.liveSlot) return undefined;
  return `${taken} is a container an interrupted pulumi up of ${stack} was creating: Pulumi's state does not know it, and it serves nothing (${deployed.liveSlot} serves). Remove it on the server (docker rm -f ${taken}) and deploy again`;
}

const seconds = (clock: Clock, since: number) => `${((clock.now() - since) / 1000).toFixed(1)} s`;

async function release(
  stack: string,
  change: Partial<SlotRelease>,
  what: string,
  deps: { engine: StackControl; file: ReleaseFile; reporter: Reporter; clock: Clock },
): Promise<Outcome> {
  const { engine, file, reporter, clock } = deps;
  const started = clock.now();
  const restore = file.write(change);
  reporter.line(`${what}: pulumi up of ${stack} (the rollout: idle slot, health, smoke checks, flip, verification)`);
  try {
    await engine.up();
  } catch (err) {
    restore();
    const hint = interruptedRunHint(stack, err instanceof Error ? err.message : String(err), await engine.deployed().catch(() => undefined));
    return { ok: false, summary: `${what} of ${stack} FAILED after ${seconds(clock, started)}: ${upFailureReason(err)}. The stack file is back as it was.${hint ? ` ${hint}.` : ""}` };
  }
  const now = await engine.deployed();
  const live = now?.liveSlot;
  return {
    ok: true,
    summary:
      `${stack}: ${live ?? "?"} serves ${live && now ? now.slots[live].container.image : "?"} (${seconds(clock, started)}); ` +
      `${live ? otherSlot(live) : "the other slot"} keeps the previous release warm. Commit Pulumi.${stack}.yaml: the stack file is what CI deploys.`,
  };
}

/** Puts `image` (or what the stack file already says) on the idle slot and flips to it. */
export async function deploy(stack: string, image: string | undefined, engine: StackControl, file: ReleaseFile, reporter: Reporter, clock: Clock = realClock): Promise<Outcome> {
  const change = image ? { image } : {};
  return release(stack, change, `deploy of ${image ?? file.read().image}`, { engine, file, reporter, clock });
}

/** Flips back to the release the idle slot runs, writing it back into the stack file; nothing is pulled or started. */
export async function rollback(stack: string, engine: StackControl, file: ReleaseFile, reporter: Reporter, clock: Clock = realClock): Promise<Outcome> {
  const deployed = await engine.deployed();
  if (!deployed) return { ok: false, summary: `rollback of ${stack}: the stack has never been deployed; nothing to roll back to` };
  const idle = otherSlot(deployed.liveSlot);
  const previous = deployed.slots[idle].release;
  return release(stack, previous, `rollback to ${previous.image} (${idle})`, { engine, file, reporter, clock });
}
