// npm run bench:plan — how long the offline plan takes per committed stack,
// as a user runs it (a fresh node process each time, TypeScript compiled by tsx).
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { listStacks } from "../../stacks/config/files.js";

const REPO = join(__dirname, "..", "..");
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

function once(stack: string): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, ["--import", "tsx", join(REPO, "ops", "plan.ts"), "--stack", stack, "--json"], { cwd: REPO, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`plan of ${stack} failed: ${result.stderr}`);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

console.log(`offline plan, ${RUNS} runs per stack (wall time of the whole command)`);
for (const stack of listStacks(REPO)) {
  const times = Array.from({ length: RUNS }, () => once(stack)).sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  console.log(`  ${stack.padEnd(10)} mean ${mean.toFixed(2)} s   min ${times[0]!.toFixed(2)} s   max ${times[times.length - 1]!.toFixed(2)} s`);
}
