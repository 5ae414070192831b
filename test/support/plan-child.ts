// Run as a child process: plans one stack and prints the whole StackPlan
// (resources with their options) as JSON. One plan per process, because the
// Pulumi SDK's runtime state is global. PLAN_STACK_OUTPUTS (JSON, by fully
// qualified stack name) says what referenced stacks export, the stack's own
// last run included; PLAN_AS_UP=1 plans as `pulumi up` runs (outputs known).
import { planStack } from "../../ops/offline/plan.js";

const stack = process.argv[2];
if (!stack) throw new Error("usage: plan-child.ts <stack>");
const outputs = JSON.parse(process.env["PLAN_STACK_OUTPUTS"] ?? "{}") as Record<string, Record<string, unknown>>;
planStack(stack, { resolveStackOutputs: (name) => outputs[name] ?? {}, preview: process.env["PLAN_AS_UP"] !== "1" }).then(
  (plan) => process.stdout.write(JSON.stringify(plan)),
  (err: unknown) => {
    process.stderr.write(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
