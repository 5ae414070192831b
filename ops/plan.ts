// npm run plan -- --stack <name> [--json] [--out <dir>]
//
// The offline plan: runs the real program for one stack under the Pulumi SDK's
// mocks (no CLI, no credentials, no network) and shows every resource the stack
// declares. --json prints only the resource array; --out writes every file the
// stack would place on the server under <dir>, at its server path.
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { EXIT, isStackFileProblem, runCommand } from "./exit.js";
import { planStack, type PlannedResource, type StackPlan } from "./offline/plan.js";
import { renderTree } from "./offline/tree.js";

const USAGE = "usage: npm run plan -- --stack <name> [--json] [--out <dir>]";

/** Files the stack places on the server: the ServerFile components' inputs. */
export function serverFiles(plan: StackPlan): { path: string; mode: string; content: string }[] {
  return plan.resources
    .filter((r: PlannedResource) => r.type === "bbaegok:server:File")
    .map((r) => ({ path: String(r.inputs["path"]), mode: String(r.inputs["mode"]), content: String(r.inputs["content"]) }));
}

function writeFiles(outDir: string, files: ReturnType<typeof serverFiles>): void {
  for (const file of files) {
    const target = join(outDir, file.path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, file.content);
    chmodSync(target, parseInt(file.mode, 8));
  }
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ options: { stack: { type: "string" }, json: { type: "boolean", default: false }, out: { type: "string" } }, strict: true });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return EXIT.usage;
  }
  const { stack, json, out } = args.values;
  if (!stack) {
    process.stderr.write(`--stack is required\n${USAGE}\n`);
    return EXIT.usage;
  }
  const started = process.hrtime.bigint();
  let plan: StackPlan;
  try {
    plan = await planStack(stack);
  } catch (err) {
    if (isStackFileProblem(err)) {
      process.stderr.write(`plan: ${err.message}\nNothing was planned or written.\n`);
      return EXIT.usage;
    }
    throw err;
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const files = serverFiles(plan);
  if (out) writeFiles(resolve(out), files);

  if (json) {
    const rows = plan.resources.map((r) => ({ type: r.type, name: r.name, parent: r.parent ?? null, inputs: r.inputs }));
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  } else {
    process.stdout.write(renderTree(plan));
    const protectedCount = plan.resources.filter((r) => r.options.protect).length;
    process.stdout.write(
      `\nStack ${stack}: ${plan.resources.length} resources (${protectedCount} protected), ${files.length} server files, planned offline in ${(ms / 1000).toFixed(1)} s.\n`,
    );
    if (out) process.stdout.write(`Wrote ${files.length} server files under ${resolve(out)}.\n`);
  }
  return EXIT.ok;
}

runCommand("plan", main);
