// A dump a compromised server wrote: the server's backup script runs for real,
// but its dump program is replaced by the attacker's file (a stand-in for
// `docker exec` that prints it), so the bucket holds a hostile backup with a
// manifest and a matching sha256. `npm run restore` and the restore drill then
// restore it into real MariaDB and PostgreSQL servers from Debian: no command
// of the dump may run on the operator's machine and no program on the
// database server. Every attempt touches a marker file; none may appear.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { BackupError } from "../../ops/restore/backups.js";
import { clientEnv, parseTarget, restoreCommand } from "../../ops/restore/target.js";
import { renderStackScripts, runRestore, runScript, writeDbExecHook, writeDrillHook, type RenderedScripts } from "../support/backup-harness.js";
import { startMariaDb, type MariaDb } from "../support/mariadb.js";
import { startPostgres, type Postgres } from "../support/postgres.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { tempDir } from "../support/system.js";

const STACK = "prod";

describe("restoring a dump a compromised server wrote runs none of its commands (real MariaDB and PostgreSQL)", () => {
  let db: MariaDb;
  let pg: Postgres;
  let s3: MotoServer;
  let scripts: RenderedScripts;
  const dir = tempDir("restore-sandbox");
  // Written to by the operator's client (root here) and by PostgreSQL's own OS user.
  const markers = join(dir.path, "markers");
  const marker = (name: string) => join(markers, name);
  const touched = () => readdirSync(markers);
  let env: Record<string, string>;

  const mariadbTarget = (database: string) => `mariadb://root@localhost/${database}?socket=${encodeURIComponent(db.socket)}`;
  const postgresTarget = (user: string, database: string) => `postgres://${user}@localhost:${pg.port}/${database}?socket=${encodeURIComponent(pg.socketDir)}`;
  const restore = (database: string, target: string, ...extra: string[]) =>
    runRestore(["--stack", STACK, "--database", database, "--endpoint-url", s3.endpoint, "--target", target, ...extra], s3.operatorEnv());

  /** What the compromised server's dump programs print instead of a dump: `\!` for the client, COPY … TO PROGRAM for the server. */
  function hostileDumps(): { mariadb: string; postgres: string } {
    const mariadb = join(dir.path, "hostile.sql");
    writeFileSync(mariadb, `CREATE TABLE users (id INT PRIMARY KEY);\n\\! touch ${marker("mariadb-client")}\nINSERT INTO users VALUES (1);\n`);
    // A real custom-format archive from Debian's pg_dump: an index whose
    // expression calls a function that runs a program (as a superuser, the
    // restore would run it: checked by hand on this PostgreSQL 15). The function is made
    // hostile only after the index exists, so nothing runs here; a restore
    // runs it for every row when it builds the index.
    pg.sql("CREATE DATABASE hostile_source");
    pg.sql(
      `CREATE TABLE items (id int PRIMARY KEY);
INSERT INTO items VALUES (1), (2);
CREATE FUNCTION public.item_key(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN i; END $$;
CREATE INDEX items_key ON items (public.item_key(id));
CREATE FUNCTION public.run_program() RETURNS void LANGUAGE plpgsql AS $$
BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch ${marker("postgres-server")}'''; END $$;
-- An immutable function may not COPY itself, but may call one that does.
CREATE OR REPLACE FUNCTION public.item_key(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM public.run_program(); RETURN i; END $$;`,
      "hostile_source",
    );
    const postgres = join(dir.path, "hostile.pgdump");
    const dump = spawnSync("pg_dump", ["-h", pg.socketDir, "-p", String(pg.port), "-U", "postgres", "-d", "hostile_source", "--format=custom", "--compress=0", "-f", postgres], { encoding: "utf8" });
    assert.equal(dump.status, 0, dump.stderr);
    return { mariadb, postgres };
  }

  /** Stands in for the compromised server's `docker exec`: its dump programs print the hostile files, all else runs. */
  function writeHostileExecHook(real: string, dumps: { mariadb: string; postgres: string }): string {
    const path = join(dir.path, "hostile-exec");
    writeFileSync(
      path,
      `#!/usr/bin/env bash
for word in "$@"; do
  case $word in
    mariadb-dump) exec cat ${dumps.mariadb} ;;
    pg_dump) exec cat ${dumps.postgres} ;;
  esac
done
exec ${real} "$@"
`,
      { mode: 0o755 },
    );
    return path;
  }

  before(async () => {
    [db, pg, s3] = await Promise.all([startMariaDb(), startPostgres(), startMoto([{ name: "bbaegok-prod-db-backups", versioned: true }])]);
    chmodSync(dir.path, 0o755);
    mkdirSync(markers, { mode: 0o777 });
    chmodSync(markers, 0o777);
    scripts = renderStackScripts(STACK, dir.path, () => true);
    assert.deepEqual(
      scripts.targets.map((t) => [t.name, t.engine]),
      [["bbaegok", "mariadb"], ["metabase", "postgres"]],
    );
    // The databases the backup lists tables of; their dumps are the attacker's.
    db.sql("CREATE DATABASE bbaegok; CREATE TABLE bbaegok.users (id INT PRIMARY KEY);");
    pg.sql("CREATE ROLE metabase LOGIN; CREATE DATABASE metabase OWNER metabase;");
    const clients = { MYSQL_UNIX_PORT: db.socket, PGHOST: pg.socketDir, PGPORT: String(pg.port) };
    env = {
      BACKUP_DB_EXEC: writeHostileExecHook(writeDbExecHook(dir.path, clients), hostileDumps()),
      BACKUP_DRILL_DB: writeDrillHook(dir.path, clients),
      BACKUP_AWS_CREDENTIALS_FILE: s3.credentialsFile("moto"),
      BACKUP_S3_ENDPOINT_URL: s3.endpoint,
      BACKUP_LOCK_FILE: join(dir.path, "lock"),
      BACKUP_PING_URL_FILE: join(dir.path, "no-ping-url"),
    };
    const backup = await runScript(scripts.backup, env);
    assert.equal(backup.status, 0, backup.stderr);
    assert.deepEqual(touched(), [], "taking the hostile backup ran its commands");
  });
  beforeEach(() => {
    for (const name of touched()) rmSync(marker(name));
  });
  after(async () => {
    await Promise.all([db?.stop(), pg?.stop(), s3?.stop()]);
    dir.remove();
  });

  it("npm run restore (MariaDB): the client runs with --sandbox, so the dump's \\! line fails the restore and runs nothing", async () => {
    db.sql("CREATE DATABASE restored_mariadb");
    const run = await restore("bbaegok", mariadbTarget("restored_mariadb"));
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /restore: mariadb failed to restore into mariadb:\/\/root@localhost\/restored_mariadb\S*: ERROR at line 2: Not allowed in the sandbox mode/);
    assert.deepEqual(touched(), []);
  });

  it("the MariaDB client as the restore runs it refuses every form of a client command: \\!, \\! without a space, system, one after a statement, and \\. of a file holding one", () => {
    db.sql("CREATE DATABASE IF NOT EXISTS variants");
    const sourced = join(dir.path, "sourced.sql");
    writeFileSync(sourced, `\\! touch ${marker("sourced")}\n`);
    const target = parseTarget(mariadbTarget("variants"));
    const [command, args] = restoreCommand(target, { force: false });
    for (const line of [`\\! touch ${marker("bang")}`, `\\!touch ${marker("bang-nospace")}`, `system touch ${marker("system")}`, `SELECT 1; \\! touch ${marker("after-statement")}`, `\\. ${sourced}`]) {
      const run = spawnSync(command, args, { input: `${line}\nSELECT 2;\n`, env: clientEnv(target), encoding: "utf8" });
      assert.notEqual(run.status, 0, `${line} was accepted`);
      assert.match(run.stderr, /Not allowed in the sandbox mode/, line);
    }
    assert.deepEqual(touched(), []);
  });

  it("npm run restore (PostgreSQL) refuses a superuser target before the dump reaches it: its COPY … TO PROGRAM never runs", async () => {
    pg.sql("CREATE DATABASE restored_as_superuser");
    const run = await restore("metabase", postgresTarget("postgres", "restored_as_superuser"));
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /restore: the target's user "postgres" \(postgres:\/\/postgres@localhost:\d+\/restored_as_superuser\S*\) is SUPERUSER, CREATEROLE, member of pg_execute_server_program, .*Restore as a role without them/);
    assert.deepEqual(touched(), []);
    assert.equal(pg.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", "restored_as_superuser").trim(), "0");
  });

  it("npm run restore (PostgreSQL) as a role without superuser, its password from --password-file: the server refuses the program, the restore fails and the target stays empty", async () => {
    pg.sql("CREATE ROLE restorer LOGIN PASSWORD 'restorer-pw'; CREATE DATABASE restored OWNER restorer;");
    const passwordFile = join(dir.path, "restorer-password");
    writeFileSync(passwordFile, "restorer-pw\n", { mode: 0o600 });
    // Over TCP, where the server asks for the password.
    const run = await restore("metabase", `postgres://restorer@127.0.0.1:${pg.port}/restored`, "--password-file", passwordFile);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /restore: pg_restore failed to restore into postgres:\/\/restorer@127\.0\.0\.1:\d+\/restored: pg_restore: error: could not execute query: ERROR: {2}must be superuser or have privileges of the pg_execute_server_program role to COPY to or from an external program … Command was: CREATE INDEX items_key/);
    assert.deepEqual(touched(), []);
    assert.equal(pg.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", "restored").trim(), "0");
  });

  it("pg_restore as the restore runs it takes no SQL script: \\! and COPY … TO PROGRAM in a text dump run nothing", () => {
    const target = parseTarget(postgresTarget("restorer", "restored"));
    const [command, args] = restoreCommand(target, { force: false });
    const run = spawnSync(command, args, { input: `\\! touch ${marker("psql-bang")}\nCOPY (SELECT 1) TO PROGRAM 'touch ${marker("copy-program")}';\n`, env: clientEnv(target), encoding: "utf8" });
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /text format dump|not appear to be a valid archive/);
    assert.deepEqual(touched(), []);
  });

  it("the restore drill restores as the sandbox does: both databases FAIL, nothing runs, the throwaway databases and role are gone", async () => {
    const run = await runScript(scripts.drill, env);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /restore drill of prod\/bbaegok \(mariadb\) FAILED for \S+: the restore into the throwaway server failed: ERROR at line 2: Not allowed in the sandbox mode/);
    assert.match(run.stderr, /restore drill of prod\/metabase \(postgres\) FAILED for \S+: the restore into the throwaway server failed: .*COPY to or from an external program/);
    assert.deepEqual(touched(), []);
    assert.equal(pg.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'restore_drill'").trim(), "0");
  });

  it("refuses a MySQL/MariaDB client without --sandbox (Oracle's mysql), naming its version and the clients that have it", () => {
    // A stand-in for Oracle's client, which is not packaged for Debian: its version line and a --help without --sandbox.
    const stubs = join(dir.path, "oracle-mysql");
    mkdirSync(stubs, { recursive: true });
    for (const name of ["mariadb", "mysql"]) {
      writeFileSync(join(stubs, name), "#!/bin/sh\necho 'mysql  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)'\necho '  --batch             Don'\\''t use history file.'\n", { mode: 0o755 });
    }
    const path = process.env.PATH;
    process.env.PATH = `${stubs}:${path}`;
    try {
      assert.throws(
        () => restoreCommand(parseTarget(mariadbTarget("variants")), { force: false }),
        (err: Error) =>
          err instanceof BackupError &&
          /the mariadb client here \(mysql {2}Ver 8\.0\.36 for Linux on x86_64 \(MySQL Community Server - GPL\)\) has no --sandbox, so a dump's \\! lines would run commands on this machine; restoring needs MariaDB's client 10\.5\.25, .* or later \(apt-get install mariadb-client\)/.test(err.message),
      );
    } finally {
      process.env.PATH = path;
    }
  });

  it("the drill refuses an image whose client has no --sandbox before restoring anything", async () => {
    // The drill's stand-in container with Oracle's client: every program but its --help is the real one.
    const hook = join(dir.path, "drill-oracle-client");
    writeFileSync(hook, `#!/usr/bin/env bash\nif [[ $1 == exec && " $* " == *" --help "* ]]; then echo 'mysql  Ver 8.0.36 for Linux'; exit 0; fi\nexec ${env.BACKUP_DRILL_DB} "$@"\n`, { mode: 0o755 });
    const run = await runScript(scripts.drill, { ...env, BACKUP_DRILL_DB: hook }, ["--database", "bbaegok"]);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /restore drill of prod\/bbaegok \(mariadb\) failed: the mariadb client in mariadb:[\d.]+ has no --sandbox, so a \\! line in the dump would run as root in the container/);
    assert.equal(existsSync(marker("mariadb-client")), false);
  });
});
