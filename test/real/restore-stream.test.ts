// How `npm run restore` moves a dump: from zstd straight into the target's
// client, as `zstd -dc | mariadb` does, with the restore command feeding zstd
// the compressed object and never handling the dump itself (which costs a
// copy of every byte of it beside the database server's work). A real MariaDB,
// moto's S3 server and the prod stack's backup script, as in backup-mariadb.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { BackupManifest } from "../../infra/backup/render.js";
import { mariadbLogicalDump, renderStackScripts, runRestore, runScript, writeDbExecHook } from "../support/backup-harness.js";
import { startMariaDb, type MariaDb } from "../support/mariadb.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { tempDir } from "../support/system.js";

const STACK = "prod";
const DB = "bbaegok";
const MiB = 1024 * 1024;

describe("npm run restore streams the dump from zstd to the client, not through itself", () => {
  let db: MariaDb;
  let s3: MotoServer;
  const dir = tempDir("restore-stream");

  before(async () => {
    [db, s3] = await Promise.all([startMariaDb(), startMoto([{ name: "bbaegok-prod-db-backups", versioned: true }])]);
    // 48 MiB of dump that zstd leaves at well under 1 MiB: the two sizes far apart.
    db.sql(`CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE ${DB};
CREATE TABLE notes (id INT PRIMARY KEY, body TEXT NOT NULL);
SET SESSION max_recursive_iterations = 100000;
INSERT INTO notes WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 12000) SELECT n, REPEAT('빼곡 만두 ', 400) FROM seq;`);
  });
  after(async () => {
    await Promise.all([db?.stop(), s3?.stop()]);
    dir.remove();
  });

  it("reads the compressed object, never the dump: the restore process's own reads stay far below the dump's size", async () => {
    const scripts = renderStackScripts(STACK, dir.path, (t) => t.engine === "mariadb");
    const backup = await runScript(scripts.backup, {
      BACKUP_DB_EXEC: writeDbExecHook(dir.path, { MYSQL_UNIX_PORT: db.socket }),
      BACKUP_AWS_CREDENTIALS_FILE: s3.credentialsFile("moto"),
      BACKUP_S3_ENDPOINT_URL: s3.endpoint,
      BACKUP_LOCK_FILE: join(dir.path, "backup.lock"),
      BACKUP_PING_URL_FILE: join(dir.path, "no-ping-url"),
    });
    assert.equal(backup.status, 0, backup.stderr);
    const manifestKey = s3.keys(scripts.bucket, `${STACK}/${DB}/`).find((k) => k.endsWith(".manifest.json"))!;
    const manifest = JSON.parse(s3.get(scripts.bucket, manifestKey).toString("utf8")) as BackupManifest;
    assert.ok(manifest.dumpBytes > 40 * MiB && manifest.size < MiB, `the dump is ${manifest.dumpBytes} bytes, ${manifest.size} compressed`);

    const original = mariadbLogicalDump(db.socket, DB);
    db.sql(`DROP DATABASE ${DB}; CREATE DATABASE ${DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`);
    // What the restore process itself read (files, sockets, pipes), as it
    // exits: rchar of each of its threads (/proc/self/io would add the
    // children it has reaped, the client among them).
    const reads = join(dir.path, "rchar");
    const preload = join(dir.path, "count-reads.mjs");
    writeFileSync(
      preload,
      `import { readdirSync, readFileSync, writeFileSync } from "node:fs";
process.on("exit", () => {
  let read = 0;
  for (const task of readdirSync("/proc/self/task")) read += Number(/^rchar: (\\d+)$/m.exec(readFileSync(\`/proc/self/task/\${task}/io\`, "utf8"))[1]);
  writeFileSync(${JSON.stringify(reads)}, String(read));
});
`,
    );
    const run = await runRestore(["--stack", STACK, "--key", manifest.key, "--target", `mariadb://root@localhost/${DB}?socket=${encodeURIComponent(db.socket)}`, "--endpoint-url", s3.endpoint], {
      ...s3.operatorEnv(),
      NODE_OPTIONS: `--import=${preload}`,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /sha256 matches the manifest/);
    assert.match(run.stderr, /restore 100%/);
    assert.equal(mariadbLogicalDump(db.socket, DB), original, "the restored database dumps differently from the original");

    // The object twice (download, then the file into zstd), its modules and the queries: a few MiB.
    const read = Number(readFileSync(reads, "utf8"));
    assert.ok(read < manifest.dumpBytes / 4, `the restore process read ${read} bytes for a ${manifest.dumpBytes}-byte dump of ${manifest.size} bytes compressed`);
  });
});
