// npm run deploy   -- --stack <name> --image <ref>
// npm run rollback -- --stack <name>
// npm run status   -- --stack <name>
//
// Blue/green deploys of the app: the idle slot gets the image (pulumi up of
// that slot only), turns healthy, passes the smoke checks through the proxy's
// internal route, then the proxy's upstream flips to it with a graceful
// reload; the old slot stays warm for an instant rollback. Every step prints
// its start time and duration; the last line says what is now true.
// Exit status: 0 done, 1 failed (the step and why are named), 2 usage.
import { hostname, userInfo } from "node:os";
import { parseArgs } from "node:util";
import { appSchema } from "../stacks/config/schema.js";
import type { StackConfig } from "../stacks/config/schema.js";
import { StackFileError } from "../stacks/config/files.js";
import { PulumiCliMissingError } from "./automation.js";
import { automationStackControl, readStackConfig } from "./deploy/engine.js";
import { deploy, rollback, type Clock, type Outcome, type Reporter, type ServerControl, type StackControl, realClock } from "./deploy/orchestrator.js";
import { deployProxy, SshServerControl, sshShell } from "./deploy/server.js";
import { formatStatus, gatherStatus } from "./deploy/status.js";

const USAGE = `usage: npm run deploy -- --stack <name> --image <ref>
       npm run rollback -- --stack <name>
       npm run status -- --stack <name>`;

const COMMANDS = ["deploy", "rollback", "status"] as const;
type Command = (typeof COMMANDS)[number];

/** What the command is wired to: Pulumi's engine and the server in production, stand-ins and a local server in tests. */
export interface DeployDeps {
  readConfig(stack: string): StackConfig;
  openEngine(stack: string, reporter: Reporter): Promise<StackControl>;
  openServer(stack: string, config: StackConfig): ServerControl;
  /** Who runs the deploy, for the lock and the history. */
  who: string;
  clock: Clock;
}

export const productionDeps: DeployDeps = {
  readConfig: readStackConfig,
  openEngine: automationStackControl,
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
  if (command === "deploy") {
    if (!values.image) throw new UsageError("--image is required: the image reference to deploy, pinned by tag or digest");
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

/** What is true after a failed deploy or rollback, for the operator's next move. */
function afterFailure(stack: string, config: StackConfig, summary: string): string {
  if (/record the live slot/.test(summary)) {
    return `Traffic has moved, but the stack file does not record it: before the next pulumi up, run \`pulumi config set --path bbaegok-infra:app.liveSlot <the slot npm run status shows serving> -s ${stack}\`.`;
  }
  return `${config.app.liveSlot} keeps serving; the idle slot is left as it is for inspection (npm run status -- --stack ${stack}).`;
}

/** Runs one command; returns the exit status. */
export async function runDeployCommand(argv: string[], deps: DeployDeps, out: Reporter, errors: Reporter): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (err) {
    errors.line(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { command, stack } = args;
  let config: StackConfig;
  try {
    config = deps.readConfig(stack);
  } catch (err) {
    errors.line(`${command}: ${(err as Error).message}`);
    return err instanceof StackFileError && /^No stack /.test((err as Error).message) ? 2 : 1;
  }
  const progress = timestamped(out, deps.clock);
  try {
    if (command === "status") {
      const server = deps.openServer(stack, config);
      for (const line of formatStatus(await gatherStatus(stack, config, server))) out.line(line);
      return 0;
    }
    // The engine first: without the Pulumi CLI nothing on the server is touched.
    const engine = await deps.openEngine(stack, progress);
    const server = deps.openServer(stack, config);
    progress.line(`${command} of ${stack} by ${deps.who}`);
    const outcome: Outcome =
      command === "deploy"
        ? await deploy({ stack, image: args.image!, who: deps.who }, engine, server, progress, deps.clock)
        : await rollback(stack, deps.who, engine, server, progress, deps.clock);
    (outcome.ok ? progress : errors).line(outcome.summary);
    if (!outcome.ok) errors.line(afterFailure(stack, config, outcome.summary));
    return outcome.ok ? 0 : 1;
  } catch (err) {
    if (err instanceof PulumiCliMissingError) {
      errors.line(`${command}: cannot ${command} ${stack}.\n${err.message}`);
      return 1;
    }
    errors.line(`${command} of ${stack} failed: ${(err as Error).message ?? String(err)}`);
    return 1;
  }
}

if (require.main === module) {
  const lines = (stream: NodeJS.WriteStream): Reporter => ({ line: (text) => stream.write(`${text}\n`) });
  runDeployCommand(process.argv.slice(2), productionDeps, lines(process.stdout), lines(process.stderr)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`deploy failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
