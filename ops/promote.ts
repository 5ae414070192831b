// npm run promote -- --stack <name>
//
// The runbook's failover: the read replica becomes the primary and the app
// writes to it. Four steps, in this order:
//   1. `database.primary: promoting` is written into the stack file and
//      `pulumi up` runs: the warm slot is re-created with the file's release
//      naming the replica as its primary (it starts against the read-only
//      replica, as a JVM app may take half a minute to) and checked; nothing
//      flips, nothing else changes. A failed run puts the file back; nothing
//      is promoted;
//   2. on the server, `replica.sh promote` (through the install helper): the
//      original primary is fenced (it refuses the app's writes), the replica
//      catches up, stops replicating and takes writes. From here the app's
//      writes fail, until 3's flip;
//   3. `database.primary: replica` is written and `pulumi up` runs, as `npm
//      run deploy` does: the slot staged in 1 is what the file wants, so the
//      upstream flips to it and no container starts (the serving slot is never
//      touched), once `replica.sh writable` found the replica promoted and
//      taking writes; backups and the promoted replica's role file follow (its
//      container is left as it is). A failed run puts the file back as it was
//      before 1;
//   4. `pulumi up` again: the slot that served before, warm now, still names
//      the original (a rollout cannot touch it: it serves until the flip); it
//      is re-created naming the promoted container (a rewarm, see
//      infra/app/rollout.ts). Left as it was, it would hold connections to the
//      fenced original, and once that is down (after a reboot Docker does not
//      start it) it would fail at start again and again.
// Commit the stack file afterwards: it is what CI deploys. The why, and what
// the operator does with the old primary: ARCHITECTURE.md and README ("Read
// replicas").
// Exit status (ops/exit.ts): 0 done, 1 failed, 2 usage, an unknown stack, an
// invalid stack file, a stack without a replica or one already promoted.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseDocument } from "yaml";
import { PROMOTE_UNTOUCHED_EXIT, replicaIsPrimary, replicaNames } from "../infra/replica/render.js";
import { asRootCommand, shellQuote, stackNames, type Privilege } from "../infra/server/render.js";
import { PROJECT, PROJECT_DIR, loadStack } from "../stacks/config/index.js";
import type { StackConfig } from "../stacks/config/schema.js";
import { stackFileName } from "../stacks/config/validate.js";
import { PulumiCliMissingError } from "./automation.js";
import { automationStackControl } from "./deploy/engine.js";
import { upFailureReason, type Reporter, type StackControl } from "./deploy/orchestrator.js";
import { runScript, sshShell, type Shell } from "./deploy/server.js";
import { EXIT, readStackOrExit, runCommand } from "./exit.js";

/** What the command is wired to: the engine, the stack file and the server in production; stand-ins in tests. */
export interface PromoteDeps {
  readConfig(stack: string): StackConfig;
  openEngine(stack: string, reporter: Reporter): Promise<Pick<StackControl, "up">>;
  /** The folder holding `Pulumi.<stack>.yaml`. */
  projectDir: string;
  /** A shell on a server of the stack: its own, or the replica's. */
  shell(server: Pick<StackConfig["server"], "host" | "ssh">): Shell;
  /** "sudo": through the install helper, as the deploy user; "none" where the shell may run the script itself. */
  privilege: Privilege;
}

export const productionDeps: PromoteDeps = {
  readConfig: (stack) => loadStack(stack).config,
  openEngine: automationStackControl,
  projectDir: PROJECT_DIR,
  shell: sshShell,
  privilege: "sudo",
};

/** Writes `database.primary: <value>` into the stack file, comments and order kept; returns what puts the file back. */
export function writePromotion(path: string, value: StackConfig["database"]["primary"] = "replica"): () => void {
  const before = readFileSync(path, "utf8");
  const doc = parseDocument(before);
  // The key as the file spells it: Pulumi takes `database` as the project's own too, and a second, partial key would not validate.
  const key = !doc.hasIn(["config", `${PROJECT}:database`]) && doc.hasIn(["config", "database"]) ? "database" : `${PROJECT}:database`;
  doc.setIn(["config", key, "primary"], value);
  writeFileSync(path, doc.toString());
  return () => writeFileSync(path, before);
}

/** `replica.sh <command…>` on a server (promote; reseed and its steps); its log lines (stderr) are the progress. */
export function replicaStepCommand(script: string, args: string[], privilege: Privilege): string {
  return privilege === "sudo" ? asRootCommand("run", script, ...args) : `bash ${[script, ...args].map(shellQuote).join(" ")}`;
}

/**
 * The start the replica's commands share: `--stack <name>` parsed, its file
 * read, a replica in it. The stack, its config and its file's name; or, said
 * on `errors`, the status to exit with.
 */
export function readReplicaStack(
  command: "promote" | "reseed" | "failback",
  argv: string[],
  readConfig: PromoteDeps["readConfig"],
  errors: Reporter,
): { stack: string; config: StackConfig; file: string } | { exit: number } {
  let stack: string;
  try {
    const { values } = parseArgs({ args: argv, options: { stack: { type: "string" } }, strict: true });
    if (!values.stack) throw new Error("--stack is required");
    stack = values.stack;
  } catch (err) {
    errors.line(`${(err as Error).message}\nusage: npm run ${command} -- --stack <name>`);
    return { exit: EXIT.usage };
  }
  const read = readStackOrExit(command, () => readConfig(stack), errors);
  if ("exit" in read) return read;
  const file = stackFileName(stack);
  if (read.config.database.replicas.length === 0) {
    const what = { promote: "there is no replica to promote", reseed: "there is no replica to seed", failback: "no replica was promoted" }[command];
    errors.line(`${command}: ${file} lists no database.replicas: ${what}`);
    return { exit: EXIT.usage };
  }
  return { stack, config: read.config, file };
}

/** Where the promotion runs: the stack's server, and the replica's when it is on another one. */
interface PromotionServers {
  primary: { shell: Shell; script: string };
  replica?: { shell: Shell; script: string };
}

function promotionServers(stack: string, config: StackConfig, deps: PromoteDeps): PromotionServers {
  const script = (dataDir: string) => replicaNames(stackNames(config.service, stack, dataDir).prefix).script(stackNames(config.service, stack, dataDir).stackDir);
  const other = config.database.replicas[0]?.server;
  return {
    primary: { shell: deps.shell(config.server), script: script(config.server.dataDir) },
    ...(other ? { replica: { shell: deps.shell(other), script: script(other.dataDir) } } : {}),
  };
}

/**
 * `replica.sh promote` on the server: with both containers on the stack's
 * server, one run there; with the replica on another server, the fence on
 * the stack's server, which prints the primary's position then, and the
 * replica's server's `promote <position>`, which applies up to it before it
 * takes writes. Their log lines are the progress. The first that fails ends
 * it: `where` it failed, and what it `left`: "unfenced" when nothing changed
 * on the replica and the original takes writes again (replica.sh took the
 * fence off, or never put it on); else "unknown" (the log says).
 */
async function promoteOnServers(servers: PromotionServers, privilege: Privilege, out: Reporter): Promise<{ status: number; where: string; left: "unfenced" | "unknown" }> {
  const step = async (server: { shell: Shell; script: string }, args: string[]) => {
    const run = await runScript(server.shell, replicaStepCommand(server.script, args, privilege));
    for (const line of run.stderr.split("\n")) if (line.trim()) out.line(`      ${line}`);
    return run;
  };
  const fence = await step(servers.primary, ["promote"]);
  // Both halves ran there, or the fence's own step failed; its refusal (the position unreadable) took the fence off again.
  if (!servers.replica || fence.status !== 0) return { status: fence.status, where: servers.primary.shell.where, left: fence.status === PROMOTE_UNTOUCHED_EXIT ? "unfenced" : "unknown" };
  const position = fence.stdout.trim();
  const take = await step(servers.replica, position ? ["promote", position] : ["promote"]);
  if (take.status !== PROMOTE_UNTOUCHED_EXIT || !position) return { status: take.status, where: servers.replica.shell.where, left: "unknown" };
  // Nothing changed on the replica: the original takes the writes again, as before.
  const unfence = await step(servers.primary, ["unfence"]);
  return { status: take.status, where: servers.replica.shell.where, left: unfence.status === 0 ? "unfenced" : "unknown" };
}

/** Runs the command; returns the exit status. */
export async function runPromoteCommand(argv: string[], deps: PromoteDeps, out: Reporter, errors: Reporter): Promise<number> {
  const read = readReplicaStack("promote", argv, deps.readConfig, errors);
  if ("exit" in read) return read.exit;
  const { stack, config, file } = read;
  if (config.database.primary === "promoting") {
    errors.line(
      `promote: ${file} says database.primary: promoting, which only npm run promote writes for its first step and puts back: an earlier promote stopped in that step, before promoting anything. Set it back to "original" and run npm run promote again`,
    );
    return EXIT.usage;
  }
  if (config.database.primary === "returning") {
    errors.line(`promote: ${file} says database.primary: returning, which only npm run failback writes for its first step and puts back: an earlier failback stopped there. Set it back to "replica" and run npm run failback again`);
    return EXIT.usage;
  }
  if (replicaIsPrimary(config.database)) {
    errors.line(`promote: ${file} says database.primary: replica already: the replica is the primary; nothing to promote`);
    return EXIT.usage;
  }
  const names = stackNames(config.service, stack, config.server.dataDir);
  const replica = replicaNames(names.prefix);
  try {
    // The engine first: without the Pulumi CLI nothing on the server is touched.
    const engine = await deps.openEngine(stack, out);
    const servers = promotionServers(stack, config, deps);
    const path = join(deps.projectDir, file);
    // The slot the promotion flips to is started first, while the original still takes the writes: the writes
    // then fail from the fence to the flip only, not for as long as the app takes to start.
    const unstage = writePromotion(path, "promoting");
    out.line(`${file}: database.primary: promoting; pulumi up of ${stack}: the warm slot is started naming ${replica.container}, nothing goes live`);
    try {
      await engine.up();
    } catch (err) {
      unstage();
      errors.line(
        `promote of ${stack}: the first pulumi up, starting the warm slot for the promotion, FAILED: ${upFailureReason(err)}. The stack file is back as it was; nothing was promoted and the app still writes to the original primary. ` +
          `The warm slot may name ${replica.container} until the next npm run deploy -- --stack ${stack} re-creates it.`,
      );
      return EXIT.failed;
    }
    unstage();
    const where = servers.replica ? `${servers.primary.shell.where}, then ${servers.replica.shell.where}` : servers.primary.shell.where;
    out.line(`promote of ${stack}: ${replica.container} becomes the primary (replica.sh promote on ${where})`);
    const promoted = await promoteOnServers(servers, deps.privilege, out);
    if (promoted.status !== 0) {
      // The warm slot names the replica, which still refuses writes: re-created naming the original again, so
      // that nothing is left half done (a later flip to it would send the writes to the read-only replica).
      let warm = "the warm slot is re-created naming the original primary again";
      try {
        await engine.up();
      } catch (err) {
        warm = `re-creating the warm slot naming the original FAILED too (${upFailureReason(err)}): it names ${replica.container} until npm run deploy -- --stack ${stack} succeeds`;
      }
      const left =
        promoted.left === "unfenced"
          ? `nothing changed on ${replica.container}, and the original primary takes the app's writes (never fenced, or its fence taken off again)`
          : `the original primary may be FENCED, refusing the app's writes, and ${replica.container} half promoted: the log above says how far it got; fix its cause and run npm run promote again (it finishes what is done)`;
      errors.line(`promote of ${stack} FAILED on ${promoted.where} (exit ${promoted.status}); the stack file is unchanged; ${left}; ${warm}.`);
      return EXIT.failed;
    }
    const restore = writePromotion(path);
    out.line(`${file}: database.primary: replica; pulumi up of ${stack} (the upstream flips to the slot started above; backups)`);
    try {
      await engine.up();
    } catch (err) {
      restore();
      errors.line(
        `promote of ${stack}: pulumi up FAILED: ${upFailureReason(err)}. The stack file is back as it was. ` +
          `${replica.container} IS promoted and takes writes; the original is fenced, so the app's writes fail until the up succeeds: fix the cause and run npm run promote again (promoting again changes nothing on the server, and refuses if the original restarted meanwhile and took writes the promoted one lacks).`,
      );
      return EXIT.failed;
    }
    out.line(`${stack}: the serving slot writes to ${replica.container}; pulumi up of ${stack} again: the warm slot, which still names the original, is re-created naming it`);
    try {
      await engine.up();
    } catch (err) {
      errors.line(
        `promote of ${stack}: ${replica.container} is the primary and the serving slot writes to it, but the second pulumi up, re-creating the warm slot, FAILED: ${upFailureReason(err)}. ` +
          `The serving slot was not touched. Commit ${file} (it says database.primary: replica), fix the cause and run npm run deploy -- --stack ${stack} (no --image: what the file says) again: until then the warm slot may be down or still name the fenced original.`,
      );
      return EXIT.failed;
    }
    out.line(`${stack}: ${replica.container} is the primary; both slots and the backups use it. Commit ${file}: the stack file is what CI deploys.`);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof PulumiCliMissingError) {
      errors.line(`promote: cannot promote ${stack}.\n${err.message}`);
      return EXIT.failed;
    }
    errors.line(`promote of ${stack} failed: ${(err as Error).message ?? String(err)}`);
    return EXIT.failed;
  }
}

if (require.main === module) {
  const lines = (stream: NodeJS.WriteStream): Reporter => ({ line: (text) => stream.write(`${text}\n`) });
  runCommand("promote", () => runPromoteCommand(process.argv.slice(2), productionDeps, lines(process.stdout), lines(process.stderr)));
}
