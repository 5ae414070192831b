// npm run restore's --target: a password in the URL is refused (it would be
// on the command line: ps, shell history) with where to put it instead; the
// password comes from the client's own variable or from --password-file, and
// reaches the client through its environment only.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { BackupError, parseTime } from "../../ops/restore/backups.js";
import { clientEnv, parseTarget, pgRestoreProblem } from "../../ops/restore/target.js";
import { runRestore } from "../support/backup-harness.js";
import { tempDir } from "../support/system.js";

const refused = (text: string, ...parts: (string | RegExp)[]) =>
  assert.throws(
    () => parseTarget(text),
    (err: Error) => {
      assert.ok(err instanceof BackupError, String(err));
      for (const part of parts) typeof part === "string" ? assert.ok(err.message.includes(part), `"${err.message}" lacks "${part}"`) : assert.match(err.message, part);
      assert.ok(!err.message.includes("hunter2"), `the password is in the message: ${err.message}`);
      return true;
    },
  );

describe("restore --target and its password", () => {
  const dir = tempDir("restore-target");
  after(() => dir.remove());

  it("refuses a password in the URL, without repeating it, and says where to put it", () => {
    refused("mariadb://root:hunter2@127.0.0.1:3306/bbaegok", "--target mariadb://root:***@127.0.0.1:3306/bbaegok holds a password, which would show in ps and your shell history", "set MYSQL_PWD (MySQL/MariaDB) or PGPASSWORD (PostgreSQL) in the environment, or pass --password-file <file>");
    refused("postgres://metabase:hunter2@db.internal/metabase", "postgres://metabase:***@db.internal/metabase holds a password");
    refused("postgres://metabase:hunter2@db internal/metabase", /^--target is not a connection URL: expected /);
  });

  it("takes the password from --password-file (its first line) and hands it to the client's variable only", () => {
    const file = join(dir.path, "pw");
    writeFileSync(file, "s3cret with spaces\nignored second line\n", { mode: 0o600 });
    const mysql = parseTarget("mariadb://root@127.0.0.1/bbaegok", { passwordFile: file });
    assert.equal(clientEnv(mysql).MYSQL_PWD, "s3cret with spaces");
    assert.ok(!mysql.shown.includes("s3cret"));
    const pg = parseTarget("postgres://restorer@127.0.0.1/metabase", { passwordFile: file });
    assert.equal(clientEnv(pg).PGPASSWORD, "s3cret with spaces");
  });

  it("without a file, the client's own variable from the environment passes through", () => {
    const saved = process.env.PGPASSWORD;
    process.env.PGPASSWORD = "from-env";
    try {
      assert.equal(clientEnv(parseTarget("postgres://restorer@127.0.0.1/metabase")).PGPASSWORD, "from-env");
    } finally {
      if (saved === undefined) delete process.env.PGPASSWORD;
      else process.env.PGPASSWORD = saved;
    }
  });

  it("names a missing or empty password file", () => {
    assert.throws(() => parseTarget("postgres://r@h/d", { passwordFile: join(dir.path, "nope") }), /--password-file .*\/nope cannot be read: ENOENT/);
    const empty = join(dir.path, "empty");
    writeFileSync(empty, "\n");
    assert.throws(() => parseTarget("postgres://r@h/d", { passwordFile: empty }), /--password-file .*\/empty: its first line is empty; write the target's password there/);
  });

  it("npm run restore exits 2 (bad input) with that sentence before reaching S3 or the database", async () => {
    const run = await runRestore(["--stack", "prod", "--target", "mariadb://root:hunter2@127.0.0.1:1/bbaegok", "--endpoint-url", "http://127.0.0.1:1"], { ...process.env });
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /^restore: --target mariadb:\/\/root:\*\*\*@127\.0\.0\.1:1\/bbaegok holds a password/m);
    assert.ok(!run.stderr.includes("hunter2"));
  });
});

describe("pg_restore's version against the dump's (pgRestoreProblem)", () => {
  const debian12 = "pg_restore (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)";
  it("a dump of a newer major version is refused, naming both and the package", () => {
    assert.equal(
      pgRestoreProblem("16.10 (Debian 16.10-1.pgdg120+1)", debian12),
      "the dump comes from PostgreSQL 16.10 (Debian 16.10-1.pgdg120+1) and pg_restore here is 15 (pg_restore (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)), which cannot read it; install postgresql-client-16 (apt.postgresql.org for Debian) and restore again",
    );
  });
  it("the same major version, or an older dump, restores", () => {
    assert.equal(pgRestoreProblem("15.4", debian12), undefined);
    assert.equal(pgRestoreProblem("13.2 (Debian 13.2-1)", debian12), undefined);
    assert.equal(pgRestoreProblem("16.10", "pg_restore (PostgreSQL) 17.2"), undefined);
  });
  it("no pg_restore at all names the package for the dump's version", () => {
    assert.match(pgRestoreProblem("16.10", null) ?? "", /needs pg_restore 16 or later, and none runs here: install postgresql-client-16/);
  });
});

describe("restore --at (parseTime)", () => {
  it("reads a date, a wall time in the stack's zone, or a zoned time", () => {
    assert.equal(parseTime("2026-01-05", "Asia/Seoul").toISOString(), "2026-01-05T14:59:59.000Z");
    assert.equal(parseTime("2026-01-05 13:30", "Asia/Seoul").toISOString(), "2026-01-05T04:30:59.000Z");
    assert.equal(parseTime("2026-01-05T04:30:00Z", "Asia/Seoul").toISOString(), "2026-01-05T04:30:00.000Z");
    assert.equal(parseTime("2024-02-29T13:00+09:00", "UTC").toISOString(), "2024-02-29T04:00:00.000Z");
  });

  it("refuses a date or time that does not exist instead of rolling it over to another moment", () => {
    for (const text of ["2026-13-45", "2026-02-30", "2026-01-05 25:00", "2026-01-05 13:60", "2026-02-30T00:00:00Z", "2025-02-29T13:00+09:00"]) {
      assert.throws(() => parseTime(text, "Asia/Seoul"), (err: unknown) => err instanceof BackupError && err.message.startsWith(`--at "${text}": there is no such date or time; use e.g.`), text);
    }
    assert.throws(() => parseTime("yesterday", "Asia/Seoul"), /--at "yesterday" is not a time: use e\.g\. 2026-01-05/);
  });
});
