// npm run drift -- --stack <name>
//
// What changed on the server or in the clouds outside the code: a refresh in
// preview mode reads every resource of the stack from where it lives (Docker
// on the server, AWS, Cloudflare) and compares it with the state Pulumi
// recorded, writing nothing. Exit status (ops/exit.ts): 0 no drift, 1 drift
// found, 2 usage or an invalid stack file, 3 the check could not run (no
// Pulumi CLI, no such stack in the backend, no credentials…).
import type * as automation from "@pulumi/pulumi/automation";
import { parseArgs } from "node:util";
import { PulumiCliMissingError, selectStack } from "./automation.js";
import { loadStack } from "../stacks/config/load.js";
import { EXIT, isStackFileProblem, runCommand } from "./exit.js";

const USAGE = "usage: npm run drift -- --stack <name>";

/** What drift detection needs from Pulumi's engine; the Automation API's Stack implements it. */
export type RefreshPreviewer = Pick<automation.Stack, "previewRefresh">;

export interface DriftedResource {
  urn: string;
  type: string;
  /** The resource's logical name (the last part of its URN). */
  name: string;
  /** "gone": deleted outside the code; "changed": its properties differ from the recorded state. */
  change: "changed" | "gone";
  /** The properties that differ (names only: values may be secrets). */
  properties: string[];
}

export interface DriftReport {
  stack: string;
  drifted: DriftedResource[];
  /** The engine's own count of operations, e.g. { same: 40, update: 1 }. */
  changeSummary: automation.OpMap;
  /** The operations of that count that mean drift: `[op, count]`, without the steps that are not drift (reads of stack outputs). */
  changed: [string, number][];
}

/** Prints progress; the CLI writes lines, tests collect them. */
export interface Reporter {
  line(text: string): void;
}

// A refresh step that found nothing reports "same" (or "refresh" with no diff); reads are data sources.
const UNCHANGED_OPS: ReadonlySet<string> = new Set(["same", "read", "refresh"]);
// Not resources outside the code: the stack itself, and stack outputs read through a
// StackReference (the stack's own last run, the proxy owner's), which change with every up.
const NOT_DRIFT: ReadonlySet<string> = new Set(["pulumi:pulumi:Stack", "pulumi:pulumi:StackReference"]);

function driftOf(step: automation.StepEventMetadata): DriftedResource | undefined {
  if (NOT_DRIFT.has(step.type)) return undefined;
  const properties = step.diffs && step.diffs.length > 0 ? step.diffs : Object.keys(step.detailedDiff ?? {});
  if (UNCHANGED_OPS.has(step.op) && properties.length === 0) return undefined;
  const gone = step.op === "delete" || step.op === "delete-replaced" || (step.op === "refresh" && step.new === undefined && step.old !== undefined);
  return { urn: step.urn, type: step.type, name: step.urn.split("::").pop() ?? step.urn, change: gone ? "gone" : "changed", properties };
}

/** The resources whose real state differs from Pulumi's, from a refresh preview's events (one entry per resource). */
export function driftedResources(events: readonly automation.EngineEvent[]): DriftedResource[] {
  const byUrn = new Map<string, DriftedResource>();
  for (const event of events) {
    const step = event.resourcePreEvent?.metadata ?? event.resOutputsEvent?.metadata;
    const drift = step && driftOf(step);
    if (!drift) continue;
    const seen = byUrn.get(drift.urn);
    byUrn.set(drift.urn, seen ? { ...seen, properties: [...new Set([...seen.properties, ...drift.properties])] } : drift);
  }
  return [...byUrn.values()];
}

/** Operations in the engine's summary that mean something differs, less the steps that are not drift (see NOT_DRIFT). */
function changedCounts(summary: automation.OpMap, events: readonly automation.EngineEvent[] = []): [string, number][] {
  const notDrift = new Map<string, number>();
  for (const event of events) {
    const step = event.resOutputsEvent?.metadata;
    if (step && NOT_DRIFT.has(step.type) && !UNCHANGED_OPS.has(step.op)) notDrift.set(step.op, (notDrift.get(step.op) ?? 0) + 1);
  }
  return Object.entries(summary)
    .map(([op, n]): [string, number] => [op, typeof n === "number" ? n - (notDrift.get(op) ?? 0) : 0])
    .filter(([op, n]) => !UNCHANGED_OPS.has(op) && n > 0);
}

/** Runs a refresh preview of `stack` and reports every resource that drifted. */
export async function detectDrift(stack: string, engine: RefreshPreviewer, reporter: Reporter): Promise<DriftReport> {
  const started = Date.now();
  reporter.line(`Refreshing ${stack} in preview mode: reading every resource from the server and the clouds (nothing is written)…`);
  const events: automation.EngineEvent[] = [];
  const result = await engine.previewRefresh({ onEvent: (event) => events.push(event), color: "never", suppressProgress: true });
  const drifted = driftedResources(events);
  const counted = changedCounts(result.changeSummary, events);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);

  for (const d of drifted) {
    const what = d.change === "gone" ? "deleted outside the code" : `changed outside the code${d.properties.length > 0 ? `: ${d.properties.join(", ")}` : ""}`;
    reporter.line(`  ${d.change === "gone" ? "-" : "~"} ${d.type}  ${d.name}  ${what}`);
  }
  const unchanged = result.changeSummary.same ?? 0;
  if (drifted.length === 0 && counted.length === 0) {
    reporter.line(`No drift in ${stack}: all ${unchanged} resources match the state Pulumi recorded (checked in ${seconds} s).`);
  } else {
    const total = Math.max(drifted.length, counted.reduce((sum, [, n]) => sum + n, 0));
    const detail = counted.length > 0 ? ` (engine summary: ${counted.map(([op, n]) => `${n} ${op}`).join(", ")})` : "";
    reporter.line(
      `Drift in ${stack}: ${total} resource${total === 1 ? "" : "s"} differ${total === 1 ? "s" : ""} from the state Pulumi recorded${detail}. ` +
        `Put back what the code says with \`pulumi up -s ${stack}\`, or accept what is there with \`pulumi refresh -s ${stack}\` and change the code to match.`,
    );
  }
  return { stack, drifted, changed: counted, changeSummary: result.changeSummary };
}

/** The command: 0 no drift, 1 drift found, 2 bad input, 3 could not check. */
export async function runDriftCommand(argv: string[], openStack: (stack: string) => Promise<RefreshPreviewer>, reporter: Reporter, errors: Reporter): Promise<number> {
  let stack: string | undefined;
  try {
    stack = parseArgs({ args: argv, options: { stack: { type: "string" } }, strict: true }).values.stack;
  } catch (err) {
    errors.line(`drift: ${(err as Error).message}\n${USAGE}`);
    return EXIT.usage;
  }
  if (!stack) {
    errors.line(`drift: --stack is required\n${USAGE}`);
    return EXIT.usage;
  }
  try {
    // The stack file first: a refresh of an invalid one would fail inside the engine, as "could not check".
    loadStack(stack);
  } catch (err) {
    if (!isStackFileProblem(err)) throw err;
    errors.line(`drift: ${err.message}`);
    return EXIT.usage;
  }
  try {
    const report = await detectDrift(stack, await openStack(stack), reporter);
    return report.drifted.length > 0 || report.changed.length > 0 ? EXIT.failed : EXIT.ok;
  } catch (err) {
    if (err instanceof PulumiCliMissingError) {
      errors.line(`drift: cannot check ${stack} for drift.\n${err.message}`);
      return EXIT.unknown;
    }
    const message = err instanceof Error ? err.message : String(err);
    errors.line(`drift: the refresh preview of ${stack} failed, so drift is unknown:\n${message.trim()}`);
    return EXIT.unknown;
  }
}

if (require.main === module) {
  const lines = (stream: NodeJS.WriteStream): Reporter => ({ line: (text) => stream.write(`${text}\n`) });
  runCommand("drift", () => runDriftCommand(process.argv.slice(2), selectStack, lines(process.stdout), lines(process.stderr)), EXIT.unknown);
}
