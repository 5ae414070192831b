// The door to Pulumi's engine for the operator commands (deploy, rollback,
// drift…): the Automation API over the project in this repository. The Pulumi
// CLI must be installed; without it, a clear message instead of a stack trace.
import { execFileSync } from "node:child_process";
import * as automation from "@pulumi/pulumi/automation";
import { PROJECT_DIR } from "../stacks/config/index.js";

export class PulumiCliMissingError extends Error {
  override name = "PulumiCliMissingError";
  constructor() {
    super(
      [
        "The Pulumi CLI is not installed (no `pulumi` on PATH); this command drives Pulumi's engine.",
        "Install it, log in to the state backend, then run the command again:",
        "  curl -fsSL https://get.pulumi.com | sh      # or: brew install pulumi",
        "  pulumi login --local                        # or your team's backend, see README",
        "The offline plan needs no CLI: npm run plan -- --stack <name>",
      ].join("\n"),
    );
  }
}

/** True when a `pulumi` executable is on PATH. */
export function hasPulumiCli(env: NodeJS.ProcessEnv = process.env): boolean {
  try {
    execFileSync("sh", ["-c", "command -v pulumi"], { env, stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Selects an existing stack of this project, or explains what is missing. */
export async function selectStack(stack: string): Promise<automation.Stack> {
  if (!hasPulumiCli()) throw new PulumiCliMissingError();
  try {
    return await automation.LocalWorkspace.selectStack({ stackName: stack, workDir: PROJECT_DIR });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (/no stack named|not found/i.test(message)) {
      throw new Error(`Pulumi has no stack "${stack}" in this backend. Create it with: pulumi stack init ${stack} (and check \`pulumi whoami\`).`);
    }
    throw err;
  }
}

/** The URN of a resource of this project, from its type chain (parent types first) and logical name. */
export function urnOf(stack: string, typeChain: readonly string[], name: string): string {
  return `urn:pulumi:${stack}::bbaegok-infra::${typeChain.join("$")}::${name}`;
}
