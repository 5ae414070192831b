// npm run reseed -- --stack <name>
//
// Seeds the stack's read replica again in place, from the primary, which
// keeps running: for a replica that can no longer catch up (npm run status,
// the backup's ping: "… must be seeded again"), or one the operator no longer
// trusts. It runs `replica.sh reseed` on the server (through the install
// helper) and prints its log as it goes; for a replica on another server, the
// same steps one by one, each on the server holding what it changes
// (replica.bash lists them), over two SSH connections. No `pulumi up`, and no
// container is created or removed, so the stack's state is unchanged. While
// it runs the app's reads go to the primary, Metabase's fail, and the backup
// dumps the primary (replica.bash says how). It waits 30 min for the seeded
// replica to catch up (`REPLICA_RESEED_WAIT_SECONDS`, when the script is run
// by hand on the server). The reseed runs detached on the server: a dropped
// connection (or Ctrl-C) ends the following, not the reseed, and running
// this again follows it (replica.bash, detach); for a replica elsewhere, it
// goes on from the step where the run was cut (resumePoint), and two runs
// started at once never alternate their steps (replica.bash, in_run_order).
// Exit status (ops/exit.ts): 0 seeded and caught up, 1 failed (run it again:
// it starts over) or the connection lost (run it again: it follows or goes
// on), 2 usage, an unknown stack, an invalid stack file, a stack
// without a replica, or one promoted or promoting.
import { randomBytes } from "node:crypto";
import { RESEED_STEPS, replicaNames, replicaReseedLog } from "../infra/replica/render.js";
import { stackNames, type Privilege } from "../infra/server/render.js";
import { loadStack } from "../stacks/config/index.js";
import type { StackConfig } from "../stacks/config/schema.js";
import type { Reporter } from "./deploy/orchestrator.js";
import { runScript, sshShell, type Shell } from "./deploy/server.js";
import { EXIT, runCommand } from "./exit.js";
import { readReplicaStack, replicaStepCommand } from "./promote.js";

/** What the command needs: the stack file and its servers (no engine: nothing of the stack's state changes). */
export interface ReseedDeps {
  readConfig(stack: string): StackConfig;
  /** A shell on a server of the stack: its own, or the replica's. */
  shell(server: Pick<StackConfig["server"], "host" | "ssh">): Shell;
  /** "sudo": through the install helper, as the deploy user; "none" where the shell may run the script itself. */
  privilege: Privilege;
}

export const productionDeps: ReseedDeps = {
  readConfig: (stack) => loadStack(stack).config,
  shell: sshShell,
  privilege: "sudo",
};

/** ssh's own exit status: it could not connect, or the connection ended (replica.sh exits 0, 1 or 2). */
const SSH_CONNECTION_LOST = 255;

type Server = "primary" | "replica";

/** `replica.sh reseed last` on one server: its last reseed step ({} when none). */
export interface LastStep {
  step?: string;
  run?: string;
  state?: "running" | "ok" | "failed" | "killed";
}

/**
 * Where a replica elsewhere's reseed goes on from, after a run was cut (a
 * dropped connection ends npm run reseed, not the step on the server): the
 * later of the two servers' last steps, if the step before it, on the other
 * server, is of the same run and ended ok. Running, it is followed; ended
 * ok, the run goes on with the next step. Anything else (failed, killed,
 * finished, two runs mixed) starts a new run.
 */
export function resumePoint(last: Record<Server, LastStep>): { run: string; from: number; follow: boolean } | undefined {
  const at = (server: Server) => RESEED_STEPS.findIndex(([step, on]) => step === last[server].step && on === server);
  const later: Server = at("primary") > at("replica") ? "primary" : "replica";
  const other: Server = later === "primary" ? "replica" : "primary";
  const k = at(later);
  const { run, state } = last[later];
  if (k < 0 || !run || k === RESEED_STEPS.length - 1) return undefined;
  const before = k === 0 || (last[other].run === run && at(other) === k - 1 && last[other].state === "ok");
  if (!before) return undefined;
  if (state === "running") return { run, from: k, follow: true };
  if (state === "ok") return { run, from: k + 1, follow: false };
  return undefined;
}

/** A server's `replica.sh reseed last`. */
async function lastStep(server: { shell: Shell; script: string }, privilege: Privilege): Promise<LastStep> {
  const run = await runScript(server.shell, replicaStepCommand(server.script, ["reseed", "last"], privilege));
  if (run.status !== 0) throw new Error(`asking ${server.shell.where} for its last reseed step failed (exit ${run.status}): ${run.stderr.trim()}`);
  return JSON.parse(run.stdout) as LastStep;
}

/** Runs the command; returns the exit status. */
export async function runReseedCommand(argv: string[], deps: ReseedDeps, out: Reporter, errors: Reporter): Promise<number> {
  const read = readReplicaStack("reseed", argv, deps.readConfig, errors);
  if ("exit" in read) return read.exit;
  const { stack, config, file } = read;
  if (config.database.primary !== "original") {
    errors.line(`reseed: ${file} says database.primary: ${config.database.primary}: the replica is (or is becoming) the primary; seeding it again from the original would lose its writes. Nothing was done`);
    return EXIT.usage;
  }
  const replicaServer = config.database.replicas[0]!.server;
  const names = stackNames(config.service, stack, config.server.dataDir);
  const replica = replicaNames(names.prefix);
  const own = { shell: deps.shell(config.server), script: replica.script(names.stackDir) };
  const servers = {
    primary: own,
    replica: replicaServer ? { shell: deps.shell(replicaServer), script: replica.script(stackNames(config.service, stack, replicaServer.dataDir).stackDir) } : own,
  };
  const where = replicaServer ? `${servers.primary.shell.where} and ${servers.replica.shell.where}` : servers.primary.shell.where;
  out.line(`reseed of ${stack}: ${replica.container} is seeded again from the primary (replica.sh reseed on ${where}); the app reads from the primary meanwhile`);
  let steps: { on: Server; args: string[] }[] = [{ on: "primary", args: ["reseed"] }];
  if (replicaServer) {
    let resume: ReturnType<typeof resumePoint>;
    let last: Record<Server, LastStep>;
    try {
      last = { primary: await lastStep(servers.primary, deps.privilege), replica: await lastStep(servers.replica, deps.privilege) };
      resume = resumePoint(last);
    } catch (err) {
      errors.line(`reseed of ${stack} failed: ${(err as Error).message}; nothing was done`);
      return EXIT.failed;
    }
    const run = resume?.run ?? randomBytes(4).toString("hex");
    if (resume) {
      const [step, on] = RESEED_STEPS[resume.from]!;
      const how = resume.follow ? `its step ${step} still runs on ${servers[on].shell.where}: following it, then` : `its steps before ${step} ended ok:`;
      out.line(`reseed of ${stack}: run ${run} was cut (a dropped connection?); ${how} going on from there`);
    } else {
      // A new run after one that failed or was killed: where that one stopped, and its log, before it is overwritten.
      for (const on of ["primary", "replica"] as const) {
        const { step, run: before, state } = last[on];
        if (state !== "failed" && state !== "killed") continue;
        out.line(`reseed of ${stack}: the last run, ${before}, ${state === "failed" ? "failed" : "was killed"} at its ${step} step on ${servers[on].shell.where} (its log: ${replicaReseedLog(config.service, stack, on)} there, replaced once this run reaches that server); starting run ${run}`);
      }
    }
    steps = RESEED_STEPS.slice(resume?.from ?? 0).map(([step, on]) => ({ on, args: ["reseed", step, run] }));
  }
  for (const { on, args } of steps) {
    const server = servers[on];
    try {
      const run = await runScript(server.shell, replicaStepCommand(server.script, args, deps.privilege), "", (line) => out.line(`      ${line}`));
      if (run.status === SSH_CONNECTION_LOST) {
        const log = replicaReseedLog(config.service, stack, !replicaServer ? "both" : on);
        const next = replicaServer
          ? `npm run reseed -- --stack ${stack} again goes on from where it was cut (following the step if it still runs)`
          : `npm run reseed -- --stack ${stack} again follows it to its end (or starts one, if none runs)`;
        errors.line(
          `reseed of ${stack}: the connection to ${server.shell.where} failed or ended (ssh exit 255) during ${args.slice(0, 2).join(" ")}: a reseed that started goes on on the server, its log in ${log}; ${next}.`,
        );
        return EXIT.failed;
      }
      if (run.status !== 0) {
        errors.line(
          `reseed of ${stack} FAILED on ${server.shell.where} (${args.slice(0, 2).join(" ")}, exit ${run.status}): the primary is untouched and the app reads from it; fix what the log above says and run npm run reseed -- --stack ${stack} again (it starts over).`,
        );
        return EXIT.failed;
      }
    } catch (err) {
      errors.line(`reseed of ${stack} failed on ${server.shell.where} (${args.slice(0, 2).join(" ")}): ${(err as Error).message ?? String(err)}`);
      return EXIT.failed;
    }
  }
  out.line(`${stack}: ${replica.container} is seeded again and caught up; the app reads from it again.`);
  return EXIT.ok;
}

if (require.main === module) {
  const lines = (stream: NodeJS.WriteStream): Reporter => ({ line: (text) => stream.write(`${text}\n`) });
  runCommand("reseed", () => runReseedCommand(process.argv.slice(2), productionDeps, lines(process.stdout), lines(process.stderr)));
}
