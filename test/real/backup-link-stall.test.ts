// A backup of a replica on another server dumps it over the link; when that
// server loses power mid-dump nothing comes back, not even a reset, and a
// dump client would wait for TCP's keepalive (two hours) with the backup's
// lock held. The rendered backup script runs every client over the link
// under a guard that stops it once nothing has come for link_stall_seconds.
// Here the script's own functions (the rendered text, sourced) dump a real
// MariaDB and a real PostgreSQL through a relay on loopback that goes silent
// after the first bytes of the dump (test/support/relay.ts). Only `docker
// exec` is stood in for: the hook runs the client on this machine.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { backupPaths, backupScript, stackBackupTargets } from "../../infra/backup/render.js";
import { LINK_STALL_SECONDS } from "../../infra/link/render.js";
import { loadStack } from "../../stacks/config/index.js";
import { startMariaDb, type MariaDb } from "../support/mariadb.js";
import { startPostgres, type Postgres } from "../support/postgres.js";
import { cuttableRelay } from "../support/relay.js";
import { tempDir } from "../support/system.js";

const PASSWORD = "backup-login-1";
const DB = "bbaegok";
/** What the relay passes before it goes silent: the dump has begun, well before its end. */
const CUT_AFTER_BYTES = 256 * 1024;

/** The backup script prod renders with a replica on another server: its functions, without its last line (`main "$@"`). */
function renderedFunctions(): string {
  const config = loadStack("prod").config;
  const elsewhere = {
    maxLagSeconds: 30,
    readTimeoutSeconds: 30,
    server: { host: "replica.bbaegok.kr", ssh: { user: "deploy", port: 22, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIReplica" }, dataDir: "/srv/bbaegok" },
    link: { type: "tailnet" as const, primaryAddress: "100.101.102.103", replicaAddress: "100.101.102.104" },
  };
  const replicated = { ...config, database: { ...config.database, replicas: [elsewhere] } };
  const script = backupScript({ service: config.service, stack: "prod", backup: config.backup, targets: stackBackupTargets(replicated, "prod"), paths: backupPaths(config.service, "prod", config.server.dataDir) });
  assert.ok(script.includes(`link_stall_seconds=\${BACKUP_LINK_STALL_SECONDS:-${LINK_STALL_SECONDS}}`), "the header sets the stall bound");
  assert.ok(script.trimEnd().endsWith('main "$@"'));
  return script.trimEnd().slice(0, -'main "$@"'.length);
}

/** In `dir`: the rendered functions, the `docker exec` hook (the client runs on this machine, the container dropped) and the backup login's password file. */
function prepare(dir: string, password = PASSWORD): { functions: string; hook: string; passwordFile: string } {
  const functions = join(dir, "backup-functions.sh");
  writeFileSync(functions, renderedFunctions());
  const hook = join(dir, "db-exec");
  writeFileSync(hook, '#!/bin/sh\nshift\nexec "$@"\n', { mode: 0o755 });
  const passwordFile = join(dir, "backup_password");
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o400 });
  return { functions, hook, passwordFile };
}

/**
 * dump_database of the rendered script over the "link" (login at
 * 127.0.0.1:<port>, password from its file), as pick_source leaves it;
 * `serverPort`: PostgreSQL's own, for the snapshot's session. The exit
 * status, stderr and how many bytes came out.
 */
async function dumpOverLink(dir: string, engine: "mariadb" | "postgres", port: number, { serverPort = 0, stallSeconds = 3, password = PASSWORD } = {}): Promise<{ status: number; stderr: string; bytes: number }> {
  const { functions, hook, passwordFile } = prepare(dir, password);
  const login = engine === "postgres" ? `-h 127.0.0.1 -p ${port} -U backup` : `-h 127.0.0.1 -P ${port} -u backup`;
  // PostgreSQL's dump shares a snapshot the script's session exports: here a session of the test's own, straight to the server.
  const snapshot =
    engine === "postgres"
      ? `coproc SESSION { PGPASSWORD=${PASSWORD} psql -X -q -A -t -h 127.0.0.1 -p ${serverPort} -U backup -d ${DB}; }
printf '%s\\n' 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;' 'SELECT pg_export_snapshot();' >&"\${SESSION[1]}"
read -r snapshot <&"\${SESSION[0]}"`
      : "snapshot=''";
  const driver = `set -euo pipefail
source ${JSON.stringify(functions)}
link_password_file=${JSON.stringify(passwordFile)}
login=(${login})
${snapshot}
dump_database ${DB} ${engine} bbaegok-prod-db "$snapshot"`;
  const child = spawn("bash", ["-c", driver], { env: { PATH: process.env["PATH"], BACKUP_DB_EXEC: hook, BACKUP_LINK_STALL_SECONDS: String(stallSeconds) }, stdio: ["ignore", "pipe", "pipe"] });
  let bytes = 0;
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (bytes += d.length));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  // The test's own bound: without the guard the dump is still waiting when it is reached.
  const killer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const status = await new Promise<number>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  clearTimeout(killer);
  return { status, stderr, bytes };
}

describe("a dump over the link whose far end goes silent (a power cut) is stopped by the backup script's guard", () => {
  let mariadb: MariaDb;
  let postgres: Postgres;
  const dir = tempDir("backup-link-stall");

  before(async () => {
    [mariadb, postgres] = await Promise.all([startMariaDb(), startPostgres()]);
    // A few MiB of rows: the dump is well under way when the relay goes silent.
    mariadb.sql(`CREATE DATABASE ${DB}; CREATE USER backup@'%' IDENTIFIED BY '${PASSWORD}'; GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT ON ${DB}.* TO backup@'%';`);
    mariadb.sql("CREATE TABLE note (id INT PRIMARY KEY, body VARCHAR(200)); SET SESSION max_recursive_iterations = 100000; INSERT INTO note WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 40000) SELECT n, REPEAT('빼곡', 30) FROM seq;", DB);
    postgres.sql(`CREATE ROLE backup LOGIN PASSWORD '${PASSWORD}'; CREATE DATABASE ${DB};`);
    postgres.sql("CREATE TABLE note (id INT PRIMARY KEY, body VARCHAR(200)); INSERT INTO note SELECT n, repeat('빼곡', 30) FROM generate_series(1, 40000) n; GRANT SELECT ON note TO backup;", DB);
  });
  after(async () => {
    await Promise.all([mariadb?.stop(), postgres?.stop()]);
    dir.remove();
  });

  for (const engine of ["mariadb", "postgres"] as const) {
    it(`${engine}: through the link, the whole dump comes out and the client's status is the run's (0)`, async () => {
      const relay = await cuttableRelay(engine === "postgres" ? postgres.port : mariadb.port);
      try {
        const run = await dumpOverLink(dir.path, engine, relay.port, { serverPort: postgres.port });
        assert.equal(run.status, 0, run.stderr);
        assert.ok(run.bytes > 4 * CUT_AFTER_BYTES, `${run.bytes} bytes`);
      } finally {
        await relay.close();
      }
    });

    it(`${engine}: the link silent mid-dump: the client is stopped after link_stall_seconds, exit 124, saying why (the run's dump stage fails with it)`, async () => {
      const relay = await cuttableRelay(engine === "postgres" ? postgres.port : mariadb.port, { cutAfterBytes: CUT_AFTER_BYTES });
      try {
        const run = await dumpOverLink(dir.path, engine, relay.port, { serverPort: postgres.port });
        assert.ok(relay.isCut(), "the relay never went silent: the dump was too small to be cut");
        assert.equal(run.status, 124, run.stderr);
        assert.match(run.stderr, /nothing came over the link for 3 s \(the server at its other end, or the link, is gone\): the client was stopped/);
        // At most what passed before the silence (the dump's 1 MiB output buffer may still hold it all).
        assert.ok(run.bytes <= CUT_AFTER_BYTES, `${run.bytes} bytes`);
      } finally {
        await relay.close();
      }
    });
  }

  it("postgres: the snapshot's session over the link gone silent: ending it (COMMIT, then \\q) gives up after 10 s instead of waiting for an answer that never comes", async () => {
    const relay = await cuttableRelay(postgres.port);
    try {
      const { functions, hook, passwordFile } = prepare(dir.path);
      // The session as backup_target opens it, over the link; "ready" once it answered, then wait for the test's cut.
      const driver = `set -euo pipefail
source ${JSON.stringify(functions)}
link_password_file=${JSON.stringify(passwordFile)}
login=(-h 127.0.0.1 -p ${relay.port} -U backup)
coproc PG_SESSION { link_stall_seconds=0 db_exec bbaegok-prod-db postgres psql -X -q -A -t -v ON_ERROR_STOP=1 "\${login[@]}" -d ${DB}; }
printf '%s\\n' 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;' 'SELECT pg_export_snapshot();' >&"\${PG_SESSION[1]}"
read -r snapshot <&"\${PG_SESSION[0]}"
echo ready
read -r _
end_postgres_session
echo ended`;
      const child = spawn("bash", ["-c", driver], { env: { PATH: process.env["PATH"], BACKUP_DB_EXEC: hook }, stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      await new Promise<void>((resolve) => child.stdout.on("data", (d: Buffer) => ((out += d.toString()), out.includes("ready") && resolve())));
      relay.cut();
      child.stdin.end("go\n");
      const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
      const status = await new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
      clearTimeout(killer);
      assert.equal(status, 0, stderr);
      assert.match(out, /ready\nended\n/);
    } finally {
      await relay.close();
    }
  });

  it("a client that fails over the link fails the run with its own status (a wrong password: mariadb-dump's 2)", async () => {
    const relay = await cuttableRelay(mariadb.port);
    try {
      const run = await dumpOverLink(dir.path, "mariadb", relay.port, { password: "not-the-password" });
      assert.equal(run.status, 2, run.stderr);
      assert.match(run.stderr, /Access denied for user 'backup'/);
    } finally {
      await relay.close();
    }
  });
});
