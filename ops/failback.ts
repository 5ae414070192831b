// npm run failback -- --stack <name>
//
// The way back after `npm run promote`: the original container (`db`) is the
// primary again and the promoted one (`db-replica`) its replica, with every
// write the app made since the promotion. The order keeps the app's write
// outage to the window from the fence to the flip, as a promotion does:
//   1. on the server, `failback.sh follow`: the original is started if it is
//      stopped, its own data dumped (replica/failback/ on the server), and it
//      is seeded again as a replica of the promoted container, which keeps
//      taking the app's writes; it waits until the original is caught up;
//   2. `database.primary: returning` is written and `pulumi up` runs: the
//      warm slot is re-created naming the original, as it will run once
//      returned (reading the replica); nothing flips. A failed run puts the
//      file back; the original follows, harmless, and nothing is returned;
//   3. `failback.sh return`: the promoted container is fenced, the original
//      applies up to its position, stops following and takes writes; the
//      promoted container's logins are locked. From here the app's writes
//      fail, until 4's flip;
//   4. `database.primary: original` is written and `pulumi up` runs: the
//      upstream flips to the slot staged in 2; the original gets its restart
//      policy back (in place), backups and Metabase follow. A failed run puts
//      the file back as it was before 1;
//   5. `pulumi up` again: the slot that served before is re-created naming
//      the original (a rewarm);
//   6. `npm run reseed`: the promoted container is seeded again from the
//      original, a read replica again; the app's reads go to the primary
//      until it is.
// Run again after a failure, it goes on: follow only waits for a following
// original, and follow and return find a return made before and change
// nothing. Commit the stack file afterwards: it is what CI deploys. Both
// containers on the stack's server only (failback.sh refuses a replica on
// another server). ARCHITECTURE.md ("After a promotion: a replica again").
// Exit status (ops/exit.ts): 0 done, 1 failed, 2 usage, an unknown stack, an
// invalid stack file, a stack without a promoted replica, one whose replica
// is on another server, or a file a stopped promote or failback left staged.
import { join } from "node:path";
import { PROMOTE_UNTOUCHED_EXIT, replicaNames } from "../infra/replica/render.js";
import { stackNames } from "../infra/server/render.js";
import { PulumiCliMissingError } from "./automation.js";
import { upFailureReason, type Reporter } from "./deploy/orchestrator.js";
import { runScript } from "./deploy/server.js";
import { EXIT, runCommand } from "./exit.js";
import { productionDeps, readReplicaStack, replicaStepCommand, writePromotion, type PromoteDeps } from "./promote.js";
import { runReseedCommand } from "./reseed.js";

/** ssh's own exit status: it could not connect, or the connection ended (failback.sh exits 0 to 3). */
const SSH_CONNECTION_LOST = 255;

/** Runs the command; returns the exit status. */
export async function runFailbackCommand(argv: string[], deps: PromoteDeps, out: Reporter, errors: Reporter): Promise<number> {
  const read = readReplicaStack("failback", argv, deps.readConfig, errors);
  if ("exit" in read) return read.exit;
  const { stack, config, file } = read;
  const primary = config.database.primary;
  if (primary !== "replica") {
    const why = {
      original: ": the original is the primary; nothing to fail back (npm run promote makes the replica the primary)",
      promoting: ', which only npm run promote writes for its first step and puts back: an earlier promote stopped there. Set it back to "original"',
      returning: ', which only npm run failback writes for its first step and puts back: an earlier failback stopped there. Set it back to "replica" and run npm run failback again',
    }[primary];
    errors.line(`failback: ${file} says database.primary: ${primary}${why}`);
    return EXIT.usage;
  }
  if (config.database.replicas[0]!.server) {
    errors.line(`failback: the replica of ${stack} is on another server (${config.database.replicas[0]!.server.host}): npm run failback brings back an original on the stack's own server only; nothing was done`);
    return EXIT.usage;
  }
  const names = stackNames(config.service, stack, config.server.dataDir);
  const replica = replicaNames(names.prefix);
  const original = names.databaseContainer;
  const shell = deps.shell(config.server);
  const script = replica.failbackScript(names.stackDir);
  /** `failback.sh <command>` on the server, its log lines shown as they come. */
  const onServer = (command: "follow" | "return") =>
    runScript(shell, replicaStepCommand(script, [command], deps.privilege), "", (line) => out.line(`      ${line}`));
  try {
    // The engine first: without the Pulumi CLI nothing on the server is touched.
    const engine = await deps.openEngine(stack, out);
    const path = join(deps.projectDir, file);

    out.line(`failback of ${stack}: ${original} is seeded again as a replica of ${replica.container}, which keeps taking the app's writes (failback.sh follow on ${shell.where})`);
    const follow = await onServer("follow");
    if (follow.status !== 0) {
      const how =
        follow.status === SSH_CONNECTION_LOST
          ? `the connection to ${shell.where} failed or ended (ssh exit 255): a follow that started goes on on the server; run npm run failback -- --stack ${stack} again to follow it`
          : `FAILED on ${shell.where} (exit ${follow.status}): fix what the log above says and run npm run failback -- --stack ${stack} again`;
      errors.line(`failback of ${stack}: ${how}. The stack file is unchanged; the app writes to ${replica.container} as before.`);
      return EXIT.failed;
    }

    // The slot the way back flips to is started first, while the promoted container still takes the writes.
    const unstage = writePromotion(path, "returning");
    out.line(`${file}: database.primary: returning; pulumi up of ${stack}: the warm slot is started naming ${original}, nothing goes live`);
    try {
      await engine.up();
    } catch (err) {
      unstage();
      errors.line(
        `failback of ${stack}: the first pulumi up, starting the warm slot for the way back, FAILED: ${upFailureReason(err)}. The stack file is back as it was; nothing was returned and the app still writes to ${replica.container} ` +
          `(${original} follows it, read-only, which is harmless: npm run failback again only waits for it). The warm slot may name ${original} until the next npm run deploy -- --stack ${stack} re-creates it.`,
      );
      return EXIT.failed;
    }
    unstage();

    out.line(`failback of ${stack}: ${original} becomes the primary again (failback.sh return on ${shell.where})`);
    const returned = await onServer("return");
    if (returned.status !== 0) {
      // The warm slot names the original, which still refuses writes: re-created naming the promoted container again.
      let warm = `the warm slot is re-created naming ${replica.container} again`;
      try {
        await engine.up();
      } catch (err) {
        warm = `re-creating the warm slot naming ${replica.container} FAILED too (${upFailureReason(err)}): it names ${original} until npm run deploy -- --stack ${stack} succeeds`;
      }
      const left =
        returned.status === PROMOTE_UNTOUCHED_EXIT
          ? `nothing changed on ${original}, and ${replica.container} takes the app's writes again (its fence taken off)`
          : `${replica.container} may be FENCED, refusing the app's writes, and ${original} half returned: the log above says how far it got; fix its cause and run npm run failback again (it finishes what is done)`;
      errors.line(`failback of ${stack} FAILED on ${shell.where} (exit ${returned.status}); the stack file is unchanged; ${left}; ${warm}.`);
      return EXIT.failed;
    }

    const restore = writePromotion(path, "original");
    out.line(`${file}: database.primary: original; pulumi up of ${stack} (the upstream flips to the slot started above; backups, Metabase, the original's restart policy)`);
    try {
      await engine.up();
    } catch (err) {
      restore();
      errors.line(
        `failback of ${stack}: pulumi up FAILED: ${upFailureReason(err)}. The stack file is back as it was (database.primary: replica). ` +
          `${original} IS the primary again and ${replica.container} is fenced, so the app's writes fail until the up succeeds: fix the cause and run npm run failback again (it finds the return made and changes nothing on the server).`,
      );
      return EXIT.failed;
    }
    out.line(`${stack}: the serving slot writes to ${original}; pulumi up of ${stack} again: the warm slot, which still names ${replica.container}, is re-created naming it`);
    try {
      await engine.up();
    } catch (err) {
      errors.line(
        `failback of ${stack}: ${original} is the primary and the serving slot writes to it, but the second pulumi up, re-creating the warm slot, FAILED: ${upFailureReason(err)}. ` +
          `The serving slot was not touched. Commit ${file} (it says database.primary: original), fix the cause and run npm run deploy -- --stack ${stack} again, then npm run reseed -- --stack ${stack}: until then the warm slot may be down or name the fenced ${replica.container}.`,
      );
      return EXIT.failed;
    }

    out.line(`${stack}: ${replica.container}, out of date and its logins locked, is seeded again as the read replica (npm run reseed)`);
    const reseeded = await runReseedCommand(["--stack", stack], deps, out, errors);
    if (reseeded !== EXIT.ok) {
      errors.line(`failback of ${stack}: ${original} is the primary again and both slots use it; only the replica's reseed failed (above). Commit ${file}; run npm run reseed -- --stack ${stack} again. Until then the app's reads go to the primary.`);
      return EXIT.failed;
    }
    out.line(`${stack}: ${original} is the primary again and ${replica.container} its read replica. Commit ${file}: the stack file is what CI deploys.`);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof PulumiCliMissingError) {
      errors.line(`failback: cannot fail back ${stack}.\n${err.message}`);
      return EXIT.failed;
    }
    errors.line(`failback of ${stack} failed: ${(err as Error).message ?? String(err)}`);
    return EXIT.failed;
  }
}

if (require.main === module) {
  const lines = (stream: NodeJS.WriteStream): Reporter => ({ line: (text) => stream.write(`${text}\n`) });
  runCommand("failback", () => runFailbackCommand(process.argv.slice(2), productionDeps, lines(process.stdout), lines(process.stderr)));
}
