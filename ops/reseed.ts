// npm run reseed -- --stack <name>
//
// Seeds the stack's read replica again in place, from the primary, which
// keeps running: for a replica that can no longer catch up (npm run status,
// the backup's ping: "… must be seeded again"), or one the operator no longer
// trusts. It runs `replica.sh reseed` on the server (through the install
// helper) and prints its log as it goes; no `pulumi up`, and no container is
// created or removed, so the stack's state is unchanged. While it runs the
// app's reads go to the primary, Metabase's fail, and the backup dumps the
// primary (replica.bash says how). How long it waits for the seeded replica
// to catch up: `REPLICA_RESEED_WAIT_SECONDS` on the server's script, 30 min.
// Exit status (ops/exit.ts): 0 seeded and caught up, 1 failed (run it again:
// it starts over), 2 usage, an unknown stack, an invalid stack file, a stack
// without a replica, one on another server, or one promoted.
import { localReplica, replicaNames } from "../infra/replica/render.js";
import { stackNames } from "../infra/server/render.js";
import type { Reporter } from "./deploy/orchestrator.js";
import { runScript } from "./deploy/server.js";
import { EXIT, runCommand } from "./exit.js";
import { productionDeps, readReplicaStack, replicaStepCommand, type PromoteDeps } from "./promote.js";

/** What the command needs: the stack file and the server (no engine: nothing of the stack's state changes). */
export type ReseedDeps = Pick<PromoteDeps, "readConfig" | "shell" | "privilege">;

/** Runs the command; returns the exit status. */
export async function runReseedCommand(argv: string[], deps: ReseedDeps, out: Reporter, errors: Reporter): Promise<number> {
  const read = readReplicaStack("reseed", argv, deps.readConfig, errors);
  if ("exit" in read) return read.exit;
  const { stack, config, file } = read;
  if (config.database.primary !== "original") {
    errors.line(`reseed: ${file} says database.primary: ${config.database.primary}: the replica is (or is becoming) the primary; seeding it again from the original would lose its writes. Nothing was done`);
    return EXIT.usage;
  }
  if (!localReplica(config.database)) {
    errors.line(
      `reseed: ${file}'s replica is on another server (database.replicas[0].server): seeding it again in place is not supported yet; take it out of database.replicas, pulumi up, put it back, pulumi up (README, "Read replicas": a replica that cannot catch up). Nothing was done`,
    );
    return EXIT.usage;
  }
  const names = stackNames(config.service, stack, config.server.dataDir);
  const replica = replicaNames(names.prefix);
  const script = replica.script(names.stackDir);
  const shell = deps.shell(config);
  out.line(`reseed of ${stack}: ${replica.container} is seeded again from the primary (replica.sh reseed on ${shell.where}); the app reads from the primary meanwhile`);
  try {
    const run = await runScript(shell, replicaStepCommand(script, "reseed", deps.privilege), "", (line) => out.line(`      ${line}`));
    if (run.status !== 0) {
      errors.line(`reseed of ${stack} FAILED on the server (exit ${run.status}): the primary is untouched and the app reads from it; fix what the log above says and run npm run reseed -- --stack ${stack} again (it starts over).`);
      return EXIT.failed;
    }
  } catch (err) {
    errors.line(`reseed of ${stack} failed: ${(err as Error).message ?? String(err)}`);
    return EXIT.failed;
  }
  out.line(`${stack}: ${replica.container} is seeded again and caught up; the app reads from it again.`);
  return EXIT.ok;
}

if (require.main === module) {
  const lines = (stream: NodeJS.WriteStream): Reporter => ({ line: (text) => stream.write(`${text}\n`) });
  runCommand("reseed", () => runReseedCommand(process.argv.slice(2), productionDeps, lines(process.stdout), lines(process.stderr)));
}
