// npm run backup:status -- --stack <s> [--endpoint-url <url>]
//
// For each database the stack backs up: the newest backup with a manifest in
// S3, its age, compressed size and table count, judged against the backup
// schedule, and any key that is SUSPICIOUS (more than one version, or dated
// after S3 received it). Read with the operator's own AWS credentials
// (environment or profile) through the AWS SDK. Exit status: 0 every database
// has a backup within the schedule, 1 one is STALE, MISSING, BROKEN or
// SUSPICIOUS, 2 usage, an unknown stack or an invalid stack file, 3 the check
// could not run (ops/exit.ts).
import { parseArgs } from "node:util";
import { stackBackupTargets } from "../infra/backup/render.js";
import { EXIT, isStackFileProblem, runCommand } from "./exit.js";
import { loadStack } from "../stacks/config/load.js";
import { BackupError, backupStore } from "./restore/backups.js";
import { formatStackStatus, stackBackupStatus } from "./restore/status.js";

const USAGE = `usage: npm run backup:status -- --stack <name> [--endpoint-url <url>]
  --endpoint-url  an S3-compatible endpoint instead of AWS (also AWS_ENDPOINT_URL)`;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ options: { stack: { type: "string" }, "endpoint-url": { type: "string" } }, strict: true }));
  } catch (err) {
    process.stderr.write(`backup:status: ${(err as Error).message}\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (!values.stack) {
    process.stderr.write(`backup:status: --stack is required\n${USAGE}\n`);
    return EXIT.usage;
  }
  try {
    const config = loadStack(values.stack).config;
    const store = backupStore(values.stack, config, values["endpoint-url"] ? { endpointUrl: values["endpoint-url"] } : {});
    const databases = stackBackupTargets(config, values.stack).map((t) => t.name);
    const status = await stackBackupStatus(store, config, databases);
    process.stdout.write(formatStackStatus(status));
    return status.databases.every((d) => d.state === "ok") ? EXIT.ok : EXIT.failed;
  } catch (err) {
    if (isStackFileProblem(err)) {
      process.stderr.write(`backup:status: ${err.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof BackupError) {
      process.stderr.write(`backup:status: could not check the backups of ${values.stack}: ${err.message}\n`);
      return EXIT.unknown;
    }
    throw err;
  }
}

runCommand("backup:status", main, EXIT.unknown);
