// npm run -s owner-ready -- --stack <name>
//
// Whether a stack can be brought up now: a guest stack reads its proxy from
// the owner stack's `proxy` output, so before the owner's first `pulumi up`
// the guest cannot run. Prints `ready=true` or `ready=false` (the form
// GitHub Actions reads from $GITHUB_OUTPUT) and, on stderr, why. deploy.yml
// uses it to defer a guest's first deploy until after its owner's.
// Exit status: 0 with the answer; 1 when it cannot tell (no CLI, bad stack file).
import * as automation from "@pulumi/pulumi/automation";
import { parseArgs } from "node:util";
import { PROJECT_DIR } from "../stacks/config/index.js";
import { hasPulumiCli, PulumiCliMissingError } from "./automation.js";
import { readStackConfig } from "./deploy/engine.js";

export interface Readiness {
  ready: boolean;
  reason: string;
}

/** The owner's `proxy` output, or undefined when the owner stack does not exist yet or has never been brought up. */
export type OwnerOutputs = (ownerStack: string) => Promise<unknown>;

export async function ownerReadiness(stack: string, ownerProxy: OwnerOutputs): Promise<Readiness> {
  const config = readStackConfig(stack);
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

if (require.main === module) {
  const { values } = parseArgs({ options: { stack: { type: "string" } } });
  if (!values.stack) {
    console.error("usage: npm run -s owner-ready -- --stack <name>");
    process.exit(2);
  }
  ownerReadiness(values.stack, automationOwnerProxy).then(
    (r) => {
      console.error(`owner-ready: ${r.reason}`);
      console.log(`ready=${r.ready}`);
    },
    (err) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
