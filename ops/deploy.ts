// npm run deploy   -- --stack <name> [--image <ref>]
// npm run rollback -- --stack <name>
// npm run status   -- --stack <name>
//
// Blue/green releases of the app. The rollout is the program's own (every
// `pulumi up` does it when the stack file's release differs from what
// serves): the idle slot gets the release, turns healthy, passes the smoke
// checks through the proxy's internal route, the upstream flips with a
// graceful reload, the flip is verified; the old slot stays warm. `deploy`
// writes --image into the stack file and runs that `pulumi up`; `rollback`
// writes back the release the idle slot runs, so the same `pulumi up` only
// flips. Commit the stack file afterwards: it is what CI deploys.
// Exit status (ops/exit.ts): 0 done, 1 failed (the file is put back), 2 usage,
// an unknown stack or an invalid stack file.
import { hostname, userInfo } from "node:os";
import { parseArgs } from "node:util";
import { appSchema } from "../stacks/config/schema.js";
import type { StackConfig } from "../stacks/config/schema.js";
import { PulumiCliMissingError } from "./automation.js";
import { EXIT, readStackOrExit, runCommand } from "./exit.js";
import { loadStack } from "../stacks/config/load.js";
import { stackFileName } from "../stacks/config/validate.js";
import { automationStackControl, stackReleaseFile } from "./deploy/engine.js";
import { deploy, rollback, type Clock, type Outcome, type ReleaseFile, type Reporter, type ServerControl, type StackControl, realClock } from "./deploy/orchestrator.js";
import { deployProxy, SshServerControl, sshShell } from "./deploy/server.js";
import { describeHealthCheck, formatStatus, gatherStatus } from "./deploy/status.js";

const USAGE = `usage: npm run deploy -- --stack <name> [--image <ref>]
       npm run rollback -- --stack <name>
       npm run status -- --stack <name>`;

const COMMANDS = ["deploy", "rollback", "status"] as const;
type Command = (typeof COMMANDS)[number];

/** What the command is wired to: Pulumi's engine, the stack file and the server in production; stand-ins in tests. */
export interface DeployDeps {
  readConfig(stack: string): StackConfig;
  openEngine(stack: string, reporter: Reporter): Promise<StackControl>;
  releaseFile(stack: string): ReleaseFile;
  openServer(stack: string, config: StackConfig): ServerControl;
  /** Who runs the deploy, for the progress lines. */
  who: string;
  clock: Clock;
}

const readStackConfig = (stack: string) => loadStack(stack).config;

export const productionDeps: DeployDeps = {
  readConfig: readStackConfig,
  openEngine: automationStackControl,
  releaseFile: (stack) => stackReleaseFile(stack),
  openServer: (stack, config) =>
    new SshServerControl({ stack, config, proxy: deployProxy(config, readStackConfig), shell: sshShell(config.server), privilege: "sudo" }),
  who: process.env.GITHUB_ACTOR ? `${process.env.GITHUB_ACTOR} (GitHub Actions run ${process.env.GITHUB_RUN_ID ?? "?"})` : `${userInfo().username}@${hostname()}`,
  clock: realClock,
};

class UsageError extends Error {}

function parse(argv: string[]): { command: Command; stack: string; image?: string } {
  const [command, ...rest] = argv;
  if (!COMMANDS.includes(command as Command)) throw new UsageError(command ? `unknown command "${command}"` : "no command given");
  let values: { stack?: string; image?: string };
  try {
    values = parseArgs({ args: rest, options: { stack: { type: "string" }, image: { type: "string" } }, strict: true }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (!values.stack) throw new UsageError("--stack is required");
  if (command === "deploy" && values.image) {
    const checked = appSchema.shape.image.safeParse(values.image);
    if (!checked.success) throw new UsageError(`--image "${values.image}": ${checked.error.issues[0]?.message ?? "not an image reference"}`);
  } else if (values.image) {
    throw new UsageError(`--image is for deploy only; ${command} uses the images the slots already run`);
  }
  return { command: command as Command, stack: values.stack, ...(values.image ? { image: values.image } : {}) };
}

/** Progress lines stamped with the wall-clock time, so a slow step shows when it started. */
function timestamped(reporter: Reporter, clock: Clock): Reporter {
  return { line: (text) => reporter.line(`${new Date(clock.now()).toISOString().slice(11, 19)} ${text}`) };
}


/** Runs one command; returns the exit status. */
export async function runDeployCommand(argv: string[], deps: DeployDeps, out: Reporter, errors: Reporter): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (err) {
    errors.line(`${(err as Error).message}\n${USAGE}`);
    return EXIT.usage;
  }
  const { command, stack } = args;
  const read = readStackOrExit(command, () => deps.readConfig(stack), errors);
  if ("exit" in read) return read.exit;
  const config = read.config;
  if (command !== "status" && (config.database.primary === "promoting" || config.database.primary === "returning")) {
    // Left by a stopped npm run promote or failback: a run of it only stages the warm slot, so a release would never go live.
    const [by, before] = config.database.primary === "promoting" ? ["promote", "original"] : ["failback", "replica"];
    errors.line(
      `${command}: ${stackFileName(stack)} says database.primary: ${config.database.primary}, which only npm run ${by} writes for its first step and puts back: ` +
        `an npm run ${by} stopped in its first step, before switching anything: set it back to "${before}", then ${command} or npm run ${by} -- --stack ${stack} again`,
    );
    return EXIT.usage;
  }
  const progress = timestamped(out, deps.clock);
  try {
    // The engine first: without the Pulumi CLI nothing on the server is touched.
    const engine = await deps.openEngine(stack, progress);
    if (command === "status") {
      const status = await gatherStatus(stack, config, await engine.deployed(), deps.openServer(stack, config));
      for (const line of formatStatus(status)) out.line(line);
      return EXIT.ok;
    }
    progress.line(`${command} of ${stack} by ${deps.who}`);
    const file = deps.releaseFile(stack);
    const outcome: Outcome = command === "deploy" ? await deploy(stack, args.image, engine, file, progress, deps.clock) : await rollback(stack, engine, file, progress, deps.clock);
    (outcome.ok ? progress : errors).line(outcome.summary);
    if (!outcome.ok) {
      // What serves now, asked of the proxy: the failed step may have been anywhere.
      const status = await gatherStatus(stack, config, await engine.deployed(), deps.openServer(stack, config)).catch(() => undefined);
      if (status) {
        // Why a slot did not turn healthy, when that is what stopped the run: Docker's last check of it.
        for (const slot of status.slots) {
          const check = describeHealthCheck(slot);
          if (check) errors.line(check);
        }
        errors.line(formatStatus(status).pop()!);
      }
    }
    return outcome.ok ? EXIT.ok : EXIT.failed;
  } catch (err) {
    if (err instanceof PulumiCliMissingError) {
      errors.line(`${command}: cannot ${command} ${stack}.\n${err.message}`);
      return EXIT.failed;
    }
    errors.line(`${command} of ${stack} failed: ${(err as Error).message ?? String(err)}`);
    return EXIT.failed;
  }
}

if (require.main === module) {
  const lines = (stream: NodeJS.WriteStream): Reporter => ({ line: (text) => stream.write(`${text}\n`) });
  runCommand("deploy", () => runDeployCommand(process.argv.slice(2), productionDeps, lines(process.stdout), lines(process.stderr)));
}
