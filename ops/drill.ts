// npm run drill -- --stack <s> [--database <name>]
//
// Runs the stack's restore drill on the server now, over SSH (BatchMode, the
// stack file's user, host and port): `sudo -n /usr/local/sbin/bbaegok-install run <dataDir>/<stack>/backup/restore-drill.sh`.
// Its output streams here; the exit status is the drill's (0 passed, 1 failed,
// 3 could not run there, 75 another drill running, 255 ssh could not connect),
// or 2 for usage, an unknown stack or database, an invalid stack file (ops/exit.ts).
import { backupPaths, stackBackupTargets } from "../infra/backup/render.js";
import { parseArgs } from "node:util";
import { sshShell } from "./deploy/server.js";
import { loadStack } from "../stacks/config/load.js";
import { drillOutcome, runDrill } from "./restore/drill.js";
import { EXIT, isStackFileProblem, runCommand } from "./exit.js";

const USAGE = `usage: npm run drill -- --stack <name> [--database <name>]
  --database  drill only this database of the stack (default: every one)`;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ options: { stack: { type: "string" }, database: { type: "string" } }, strict: true }));
  } catch (err) {
    process.stderr.write(`drill: ${(err as Error).message}\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (!values.stack) {
    process.stderr.write(`drill: --stack is required\n${USAGE}\n`);
    return EXIT.usage;
  }
  const stack = values.stack;
  let config;
  try {
    config = loadStack(stack).config;
  } catch (err) {
    if (isStackFileProblem(err)) {
      process.stderr.write(`drill: ${err.message}\n`);
      return EXIT.usage;
    }
    throw err;
  }
  const databases = stackBackupTargets(config, stack).map((t) => t.name);
  if (values.database !== undefined && !databases.includes(values.database)) {
    process.stderr.write(`drill: stack ${stack} backs up no database "${values.database}"; its databases: ${databases.join(", ")}\n`);
    return EXIT.usage;
  }
  const shell = sshShell(config.server);
  const script = backupPaths(config.service, stack, config.server.dataDir).drillScript;
  process.stderr.write(`Running the restore drill of ${stack}${values.database ? ` (${values.database})` : ""} on ${shell.where}: ${script}\n`);
  const status = await runDrill({ shell, script, privilege: "sudo", ...(values.database ? { database: values.database } : {}), stdout: process.stdout, stderr: process.stderr });
  process.stderr.write(`${drillOutcome(status, shell.where, stack)}\n`);
  return status;
}

runCommand("drill", main, EXIT.unknown);
