// npm run restore -- --stack <s> [--database <name>] [--at <time> | --key <key>] --target <connection> [--password-file <file>] [--force] [--endpoint-url <url>]
//
// Restores a backup of a stack's database into the database the operator
// names, with the operator's own AWS credentials (environment or profile),
// never the server's (through the AWS SDK: no AWS CLI needed). Only backups
// with a manifest are restored, each key at its first version; the sha256 is
// checked before anything is written, and the result is compared with the
// manifest's tables, row counts and objects. Exit status (ops/exit.ts): 0
// restored, 1 the restore failed, 2 usage, an unknown stack, an invalid stack
// file, --target, --at or --password-file: nothing was restored.
import { parseArgs } from "node:util";
import { EXIT, isStackFileProblem, runCommand } from "./exit.js";
import { loadStack } from "../stacks/config/load.js";
import { BackupError, backupStore, parseTime, type BackupStore } from "./restore/backups.js";
import { restoreBackup } from "./restore/restore.js";
import { TARGET_HELP, parseTarget } from "./restore/target.js";

const USAGE = `usage: npm run restore -- --stack <name> [--database <name>] [--at <time> | --key <key>] --target <connection> [--password-file <file>] [--force] [--endpoint-url <url>]
  --target    ${TARGET_HELP}
  --password-file  a file whose first line is the target's password (instead of MYSQL_PWD or PGPASSWORD)
  --database  which database of the stack (default: the service database; "metabase" for Metabase's)
  --at        the newest backup at or before this time (default: the newest), e.g. 2026-01-05T04:30:00Z or "2026-01-05 13:30" in the stack's time zone
  --key       a backup's key instead, e.g. prod/bbaegok/20260105T040001Z.sql.zst
  --force     restore into a database that is not empty`;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        stack: { type: "string" },
        database: { type: "string" },
        at: { type: "string" },
        key: { type: "string" },
        target: { type: "string" },
        "password-file": { type: "string" },
        force: { type: "boolean", default: false },
        "endpoint-url": { type: "string" },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`restore: ${(err as Error).message}\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (!values.stack || !values.target) {
    process.stderr.write(`restore: --stack and --target are required\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (values.at && values.key) {
    process.stderr.write(`restore: give --at or --key, not both\n${USAGE}\n`);
    return EXIT.usage;
  }
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const started = Date.now();
  // What the operator gave, checked before S3 is asked anything: a problem here is theirs to fix (exit 2).
  let config, store: BackupStore, target, at: Date | undefined;
  try {
    config = loadStack(values.stack).config;
    store = backupStore(values.stack, config, values["endpoint-url"] ? { endpointUrl: values["endpoint-url"] } : {});
    const passwordFile = values["password-file"];
    target = parseTarget(values.target, passwordFile === undefined ? {} : { passwordFile });
    at = values.at ? parseTime(values.at, config.backup.timezone) : undefined;
  } catch (err) {
    if (isStackFileProblem(err) || err instanceof BackupError) {
      process.stderr.write(`restore: ${err.message}\n`);
      return EXIT.usage;
    }
    throw err;
  }
  try {
    const result = await restoreBackup({
      store,
      database: values.database ?? config.database.name,
      ...(at ? { at } : {}),
      ...(values.key ? { key: values.key } : {}),
      target,
      force: values.force,
      say,
    });
    const s = result.seconds;
    process.stdout.write(
      `Restored ${result.manifest.key} (taken ${result.manifest.createdAt}) into ${target.shown}: ${result.tables} tables and ${result.manifest.objects.length} objects match the manifest ` +
        `(download and sha256 ${s.download.toFixed(1)} s, restore ${s.restore.toFixed(1)} s, total ${((Date.now() - started) / 1000).toFixed(1)} s).\n`,
    );
    return EXIT.ok;
  } catch (err) {
    if (err instanceof BackupError) {
      process.stderr.write(`restore: ${err.message}\n`);
      return EXIT.failed;
    }
    throw err;
  }
}

runCommand("restore", main);
