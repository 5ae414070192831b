// Run as a child process: plans one stack and prints the whole StackPlan
// (resources with their options) as JSON. One plan per process, because the
// Pulumi SDK's runtime state is global.
import { planStack } from "../../ops/offline/plan.js";

const stack = process.argv[2];
if (!stack) throw new Error("usage: plan-child.ts <stack>");
planStack(stack).then(
  (plan) => process.stdout.write(JSON.stringify(plan)),
  (err: unknown) => {
    process.stderr.write(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
