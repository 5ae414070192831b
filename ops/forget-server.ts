// npm run forget-server -- --stack <name> --server <host> [--dry-run]
//
// A replica's server is gone (dead disk, stolen, wiped): the stack file no
// longer names it, but `pulumi up` would still try to reach it, to delete
// what the state says is there (its Docker provider, the replica's container
// and volume, the files and the link's end there), and fail every time. This
// takes exactly those resources out of the stack's state, and nothing else:
// the next `pulumi up` then removes the rest on the stack's own server as
// for any replica taken out (the link's end, the primary's port on it, and
// `replica.sh retire`, which drops the replica's slot and logins there).
//
// Refused (nothing done) when the stack file still names the server, when it
// is the stack's own server, or when the server still answers SSH as the
// program reached it (then `pulumi up` removes what is there).
// Exit status (ops/exit.ts): 0 done (or nothing of it in the state), 1
// failed, 2 usage, a stack file naming the server, a server that answers.
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { PulumiCliMissingError, hasPulumiCli } from "./automation.js";
import type { Reporter } from "./deploy/orchestrator.js";
import { EXIT, readStackOrExit, runCommand } from "./exit.js";
import { forgetServer, type StateDeployment } from "./forget-server/state.js";
import { PROJECT_DIR, loadStack } from "../stacks/config/index.js";
import type { StackConfig } from "../stacks/config/schema.js";
import { stackFileName } from "../stacks/config/validate.js";

const USAGE = "usage: npm run forget-server -- --stack <name> --server <host> [--dry-run]";

/** A stack's state, read and written whole. */
export interface StateStore {
  /** The state, its secrets encrypted (what is edited and written back), and the same with them shown (only read: where each command runs). */
  read(): Promise<{ state: StateDeployment; readable: StateDeployment }>;
  write(state: StateDeployment): Promise<void>;
}

/** What the command is wired to: the stack file, the engine and ssh in production; stand-ins in tests. */
export interface ForgetDeps {
  readConfig(stack: string): StackConfig;
  openState(stack: string): Promise<StateStore>;
  /** Whether the server answers at `host` (ssh://user@host:port) with these client options; `why`: what ssh said. */
  answers(host: string, sshOpts: string[]): { answers: boolean; why: string };
}

/** What ssh says when nothing answers at the address: the only answers that make a server gone. */
const NOTHING_THERE = /Connection timed out|No route to host|Connection refused|Network is unreachable|Could not resolve hostname|Name or service not known/i;

/**
 * One `ssh … true` with the provider's own options (its pinned host key), no
 * shared connection, 10 s to connect. Anything but "nothing there" counts as
 * an answer: a refused key or login, or a host key that changed, is a
 * machine at that address, and the state is not edited on a guess.
 */
export function sshAnswers(host: string, sshOpts: string[]): { answers: boolean; why: string } {
  const url = new URL(host);
  // ssh takes the first value it is given for an option: these come before the provider's.
  const options = ["-o", "ControlPath=none", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2", ...sshOpts];
  const destination = `${decodeURIComponent(url.username)}@${url.hostname.replace(/^\[|\]$/g, "")}`;
  const run = spawnSync("ssh", [...options, "-p", url.port || "22", destination, "--", "true"], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8", timeout: 30_000 });
  const why = (run.stderr ?? "").trim().split("\n").pop() || (run.error ? run.error.message : `exit ${run.status}`);
  if (run.status === 0) return { answers: true, why: "it ran a command" };
  return { answers: !NOTHING_THERE.test(run.stderr ?? ""), why };
}

/**
 * The stack's state through the Pulumi CLI, by pipes only. Not the Automation
 * API's exportStack/importStack: those export with every secret shown and
 * import through a file in the temp folder, the secrets in clear on disk
 * (and left there when the import fails).
 */
function cliState(stack: string): StateStore {
  if (!hasPulumiCli()) throw new PulumiCliMissingError();
  const pulumi = (args: string[], input?: string): string => {
    const run = spawnSync("pulumi", [...args, "--stack", stack, "--non-interactive"], { cwd: PROJECT_DIR, input, encoding: "utf8", maxBuffer: 1 << 30 });
    if (run.status !== 0) throw new Error(`pulumi ${args.join(" ")} failed (exit ${run.status}): ${(run.stderr || run.error?.message || "").trim()}`);
    return run.stdout;
  };
  return {
    read: async () => ({ state: JSON.parse(pulumi(["stack", "export"])), readable: JSON.parse(pulumi(["stack", "export", "--show-secrets"])) }),
    write: async (state) => void pulumi(["stack", "import"], JSON.stringify(state)),
  };
}

export const productionDeps: ForgetDeps = {
  readConfig: (stack) => loadStack(stack).config,
  openState: async (stack) => cliState(stack),
  answers: sshAnswers,
};

/** Runs the command; returns the exit status. */
export async function runForgetServerCommand(argv: string[], deps: ForgetDeps, out: Reporter, errors: Reporter): Promise<number> {
  let stack: string;
  let host: string;
  let dryRun: boolean;
  try {
    const { values } = parseArgs({ args: argv, options: { stack: { type: "string" }, server: { type: "string" }, "dry-run": { type: "boolean" } }, strict: true });
    if (!values.stack) throw new Error("--stack is required");
    if (!values.server) throw new Error("--server is required (the gone server's host, as its stack file named it)");
    stack = values.stack;
    host = values.server;
    dryRun = values["dry-run"] ?? false;
  } catch (err) {
    errors.line(`${(err as Error).message}\n${USAGE}`);
    return EXIT.usage;
  }
  const read = readStackOrExit("forget-server", () => deps.readConfig(stack), errors);
  if ("exit" in read) return read.exit;
  const config = read.config;
  const file = stackFileName(stack);
  if (host === config.server.host) {
    errors.line(`forget-server: ${host} is ${file}'s own server (server.host), not another one: nothing was done`);
    return EXIT.usage;
  }
  const named = config.database.replicas.findIndex((r) => r.server?.host === host);
  if (named >= 0) {
    errors.line(
      `forget-server: ${file} still names ${host} (database.replicas[${named}].server): take that replica out of the stack file first, or pulumi up would create it there again; nothing was done`,
    );
    return EXIT.usage;
  }
  try {
    const state = await deps.openState(stack);
    const exported = await state.read();
    const forgetting = forgetServer(exported.state, host, exported.readable);
    if (forgetting.forgotten.length === 0) {
      out.line(`${stack}: nothing in its state is on ${host}; nothing to forget`);
      return EXIT.ok;
    }
    for (const r of forgetting.reach) {
      const reply = deps.answers(r.host, r.sshOpts);
      if (reply.answers) {
        errors.line(
          `forget-server: ${host} answers SSH at ${r.host} (${reply.why}): it is not gone. pulumi up -s ${stack} removes what the stack has there (or, for another machine now at that address, take it off the network first); nothing was forgotten`,
        );
        return EXIT.usage;
      }
      out.line(`${stack}: ${r.host} does not answer: ${reply.why}`);
    }
    out.line(`${stack}: ${forgetting.forgotten.length} resources on ${host}, which does not answer, ${dryRun ? "would be" : "are"} taken out of the state (nothing is run there):`);
    for (const r of forgetting.forgotten) out.line(`  ${r.type}  ${r.name}`);
    if (dryRun) {
      out.line("--dry-run: the state is unchanged");
      return EXIT.ok;
    }
    await state.write(forgetting.deployment);
    out.line(
      `${stack}: done. Now pulumi up -s ${stack} (or npm run deploy -- --stack ${stack}): it removes the rest on ${config.server.host} ` +
        `(the link's end there, the primary's port on it, the replica's slot and logins by replica.sh retire) and moves the app's reads back to the primary.`,
    );
    return EXIT.ok;
  } catch (err) {
    if (err instanceof PulumiCliMissingError) {
      errors.line(`forget-server: cannot read ${stack}'s state.\n${err.message}`);
      return EXIT.failed;
    }
    errors.line(`forget-server of ${stack} failed: ${(err as Error).message ?? String(err)}`);
    return EXIT.failed;
  }
}

if (require.main === module) {
  const lines = (stream: NodeJS.WriteStream): Reporter => ({ line: (text) => stream.write(`${text}\n`) });
  runCommand("forget-server", () => runForgetServerCommand(process.argv.slice(2), productionDeps, lines(process.stdout), lines(process.stderr)));
}
