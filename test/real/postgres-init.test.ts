// The PostgreSQL image's init script (infra/database/render.ts), run by bash
// against a real PostgreSQL from Debian as the image runs it: the app's role
// is created with the password from its file, and no psql command line holds
// the password (a psql stand-in first on PATH records its arguments, then
// runs the real psql).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { APP_PASSWORD_FILE, postgresAppUserScript } from "../../infra/database/render.js";
import { startPostgres, type Postgres } from "../support/postgres.js";
import { requireCommand, tempDir } from "../support/system.js";

const DB = { name: "bbaegok", user: "bbaegok" };

describe("the PostgreSQL init script takes the app's password from its file (real PostgreSQL)", () => {
  let pg: Postgres;
  const dir = tempDir("postgres-init");
  const secrets = join(dir.path, "secrets");
  const argvLog = join(dir.path, "psql-argv");
  const password = "s3cret-Init-pw-7d1f";

  const runInit = () => {
    const psql = requireCommand("psql", "postgresql-client");
    const stubs = join(dir.path, "bin");
    spawnSync("mkdir", ["-p", stubs, secrets]);
    writeFileSync(join(stubs, "psql"), `#!/bin/sh\nprintf '%s\\n' "$0" "$@" >> ${argvLog}\nexec ${psql} "$@"\n`, { mode: 0o755 });
    const script = join(dir.path, "10-app-user.sh");
    writeFileSync(script, postgresAppUserScript(DB, secrets), { mode: 0o755 });
    return spawnSync("bash", [script], { encoding: "utf8", env: { PATH: `${stubs}:${process.env.PATH}`, PGHOST: pg.socketDir, PGPORT: String(pg.port) } });
  };

  before(async () => {
    pg = await startPostgres();
    pg.sql(`CREATE DATABASE ${DB.name}`);
  });
  after(async () => {
    await pg?.stop();
    dir.remove();
  });

  it("refuses to run without the password file", () => {
    const run = runInit();
    assert.equal(run.status, 1);
    assert.match(run.stderr, /the app's password file .*\/secrets\/db_password is missing or empty/);
  });

  it("creates the app's role with that password, owner of the database, and no psql argument holds it", () => {
    writeFileSync(join(secrets, APP_PASSWORD_FILE), password);
    chmodSync(join(secrets, APP_PASSWORD_FILE), 0o600);
    const run = runInit();
    assert.equal(run.status, 0, run.stderr);
    const login = pg.sqlAs(DB.user, password, "SELECT current_user, (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database())", DB.name);
    assert.equal(login.status, 0, login.stderr);
    assert.equal(login.stdout.trim(), "bbaegok|bbaegok");
    const argv = readFileSync(argvLog, "utf8");
    assert.match(argv, /--dbname\nbbaegok/, "psql ran through the recording stand-in");
    assert.ok(!argv.includes(password), `the password was on psql's command line:\n${argv}`);
    assert.notEqual(pg.sqlAs(DB.user, "wrong", "SELECT 1", DB.name).status, 0);
  });
});
