// npm run -s owner-ready -- --stack <name>
//
// Whether a stack can be brought up now: a guest stack reads its proxy from
// the owner stack's `proxy` output, so before the owner's first `pulumi up`
// the guest cannot run. Prints `ready=true` or `ready=false` (the form
// GitHub Actions reads from $GITHUB_OUTPUT) and, on stderr, why. deploy.yml
// uses it to defer a guest's first deploy until after its owner's.
// Exit status (ops/exit.ts): 0 with the answer; 2 usage, an unknown stack or
// an invalid stack file; 3 when it cannot tell (no CLI, the backend unreachable).
import * as automation from "@pulumi/pulumi/automation";
import { parseArgs } from "node:util";
import { PROJECT_DIR, loadStack } from "../stacks/config/index.js";
import { hasPulumiCli, PulumiCliMissingError } from "./automation.js";
import { EXIT, isStackFileProblem, runCommand } from "./exit.js";

export interface Readiness {
  ready: boolean;
  reason: string;
}

/** The owner's `proxy` output, or undefined when the owner stack does not exist yet or has never been brought up. */
export type OwnerOutputs = (ownerStack: string) => Promise<unknown>;

export async function ownerReadiness(stack: string, ownerProxy: OwnerOutputs): Promise<Readiness> {
  const { config } = loadStack(stack);
  if (config.proxy.mode === "owner") return { ready: true, reason: `${stack} owns its server's proxy` };
  const proxy = await ownerProxy(config.proxy.ownerStack);
  return proxy === undefined
    ? { ready: false, reason: `${stack} is a guest of ${config.proxy.ownerStack}, which has no \`proxy\` output yet: bring the owner up first` }
    : { ready: true, reason: `${config.proxy.ownerStack} exports its proxy` };
}

/** Reads the owner's output through the Automation API; a stack that does not exist has none. */
export const automationOwnerProxy: OwnerOutputs = async (ownerStack) => {
  if (!hasPulumiCli()) throw new PulumiCliMissingError();
  const workspace = await automation.LocalWorkspace.create({ workDir: PROJECT_DIR });
  try {
    return (await workspace.stackOutputs(ownerStack))["proxy"]?.value;
  } catch (err) {
    if (/no stack named|not found|does not exist/i.test(err instanceof Error ? err.message : String(err))) return undefined;
    throw err;
  }
};

const USAGE = "usage: npm run -s owner-ready -- --stack <name>";

async function main(): Promise<number> {
  let stack: string | undefined;
  try {
    stack = parseArgs({ options: { stack: { type: "string" } }, strict: true }).values.stack;
  } catch (err) {
    console.error(`owner-ready: ${(err as Error).message}\n${USAGE}`);
    return EXIT.usage;
  }
  if (!stack) {
    console.error(`owner-ready: --stack is required\n${USAGE}`);
    return EXIT.usage;
  }
  try {
    const r = await ownerReadiness(stack, automationOwnerProxy);
    console.error(`owner-ready: ${r.reason}`);
    console.log(`ready=${r.ready}`);
    return EXIT.ok;
  } catch (err) {
    console.error(`owner-ready: ${err instanceof Error ? err.message : String(err)}`);
    return isStackFileProblem(err) ? EXIT.usage : EXIT.unknown;
  }
}

if (require.main === module) runCommand("owner-ready", main, EXIT.unknown);
