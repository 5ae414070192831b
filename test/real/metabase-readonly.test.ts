// The read-only login Metabase uses, created by the generated SQL on real
// MariaDB and real PostgreSQL: it reads what it is allowed to, and every write,
// DDL and read of an excluded table is refused. Running the SQL twice changes nothing.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { READONLY_USER, readOnlyUserSql } from "../../infra/metabase/render.js";
import type { StackConfig } from "../../stacks/config/schema.js";
import { startMariaDb, type MariaDb } from "../support/mariadb.js";
import { startPostgres, type Postgres } from "../support/postgres.js";
import { waitFor } from "../support/system.js";

const PASSWORD = "Ro0nlyPassw0rdForTests";
/** Every statement the read-only login must be refused, on either engine. */
const REFUSED = [
  "SELECT phone FROM member_secrets",
  "INSERT INTO members VALUES (3, 'x')",
  "UPDATE members SET nickname = 'x'",
  "DELETE FROM readings",
  "CREATE TABLE hack (id INT)",
  "DROP TABLE readings",
  "ALTER TABLE members ADD COLUMN x INT",
  "TRUNCATE TABLE readings",
];
const database = (engine: StackConfig["database"]["engine"]): StackConfig["database"] => ({ engine, version: "0.0", name: "bbaegok", user: "bbaegok", memoryMb: 256, replicas: [], primary: "original" });

describe("read-only login on MariaDB", () => {
  let db: MariaDb;
  before(async () => {
    db = await startMariaDb();
    db.sql(`
      CREATE DATABASE bbaegok CHARACTER SET utf8mb4;
      CREATE USER 'bbaegok'@'%' IDENTIFIED BY 'app';
      GRANT ALL ON bbaegok.* TO 'bbaegok'@'%';
      CREATE TABLE bbaegok.members (id INT PRIMARY KEY, nickname VARCHAR(40));
      CREATE TABLE bbaegok.readings (id INT PRIMARY KEY, member_id INT, pages INT);
      CREATE TABLE bbaegok.member_secrets (member_id INT PRIMARY KEY, phone VARCHAR(20));
      INSERT INTO bbaegok.members VALUES (1, '빼곡이'), (2, '독서왕 📚');
      INSERT INTO bbaegok.readings VALUES (1, 1, 30);
      INSERT INTO bbaegok.member_secrets VALUES (1, '010-0000-0000');
    `);
  });
  after(async () => db?.stop());

  const ro = (sql: string) => db.sqlAs(READONLY_USER, PASSWORD, sql, "bbaegok");
  const grants = () => db.sql(`SHOW GRANTS FOR '${READONLY_USER}'@'%'`);

  it("limited to chosen tables: reads them, and nothing else", () => {
    const sql = readOnlyUserSql(database("mariadb"), ["members", "readings"], PASSWORD);
    db.sql(sql);
    const first = grants();
    db.sql(sql);
    assert.equal(grants(), first, "running the SQL twice changed the grants");

    const read = ro("SELECT nickname FROM members ORDER BY id");
    assert.equal(read.status, 0, read.stderr);
    assert.equal(read.stdout, "빼곡이\n독서왕 📚\n");
    assert.equal(ro("SELECT COUNT(*) FROM readings").stdout, "1\n");
    for (const statement of REFUSED) {
      const result = ro(statement);
      assert.notEqual(result.status, 0, `${statement} was allowed`);
      assert.match(result.stderr, /denied/i, `${statement}: ${result.stderr}`);
    }
  });

  it("whole schema: reads every table, still writes nothing; the old table list is revoked", () => {
    db.sql(readOnlyUserSql(database("mariadb"), [], PASSWORD));
    assert.equal(ro("SELECT phone FROM member_secrets").stdout, "010-0000-0000\n");
    assert.notEqual(ro("INSERT INTO member_secrets VALUES (2, 'x')").status, 0);
    db.sql(readOnlyUserSql(database("mariadb"), ["members"], PASSWORD));
    assert.notEqual(ro("SELECT phone FROM member_secrets").status, 0, "narrowing the list did not revoke the schema grant");
    assert.equal(ro("SELECT COUNT(*) FROM members").stdout, "2\n");
  });
});

describe("read-only login on PostgreSQL", () => {
  let pg: Postgres;
  before(async () => {
    pg = await startPostgres();
    pg.sql("CREATE ROLE bbaegok LOGIN PASSWORD 'app'; CREATE DATABASE bbaegok OWNER bbaegok;");
    pg.sql(
      `SET ROLE bbaegok;
       CREATE TABLE members (id INT PRIMARY KEY, nickname TEXT);
       CREATE TABLE readings (id INT PRIMARY KEY, member_id INT, pages INT);
       CREATE TABLE member_secrets (member_id INT PRIMARY KEY, phone TEXT);
       CREATE VIEW member_pages AS SELECT m.nickname, r.pages FROM members m JOIN readings r ON r.member_id = m.id;
       INSERT INTO members VALUES (1, '빼곡이'), (2, '독서왕 📚');
       INSERT INTO readings VALUES (1, 1, 30);
       INSERT INTO member_secrets VALUES (1, '010-0000-0000');`,
      "bbaegok",
    );
  });
  after(async () => pg?.stop());

  const ro = (sql: string) => pg.sqlAs(READONLY_USER, PASSWORD, sql, "bbaegok");
  const privileges = () =>
    pg.sql(
      `SELECT table_name, privilege_type FROM information_schema.role_table_grants WHERE grantee = '${READONLY_USER}' ORDER BY 1, 2;
       SELECT rolsuper, rolcreatedb, rolcreaterole, rolconfig FROM pg_roles WHERE rolname = '${READONLY_USER}';
       SELECT defaclacl FROM pg_default_acl;`,
      "bbaegok",
    );

  it("limited to chosen tables and views: reads them, and nothing else", () => {
    const sql = readOnlyUserSql(database("postgres"), ["members", "readings", "member_pages"], PASSWORD);
    pg.sql(sql, "bbaegok");
    const first = privileges();
    pg.sql(sql, "bbaegok");
    assert.equal(privileges(), first, "running the SQL twice changed the privileges");

    const read = ro("SELECT nickname FROM members ORDER BY id");
    assert.equal(read.status, 0, read.stderr);
    assert.equal(read.stdout, "빼곡이\n독서왕 📚\n");
    assert.equal(ro("SELECT pages FROM member_pages").stdout, "30\n");
    for (const statement of REFUSED) {
      const result = ro(statement);
      assert.notEqual(result.status, 0, `${statement} was allowed`);
      assert.match(result.stderr, /permission denied|must be owner|read-only transaction/i, `${statement}: ${result.stderr}`);
    }
  });

  it("whole schema: reads tables created later, still writes nothing", () => {
    pg.sql(readOnlyUserSql(database("postgres"), [], PASSWORD), "bbaegok");
    assert.equal(ro("SELECT phone FROM member_secrets").stdout, "010-0000-0000\n");
    pg.sql("SET ROLE bbaegok; CREATE TABLE badges (id INT); INSERT INTO badges VALUES (7);", "bbaegok");
    assert.equal(ro("SELECT id FROM badges").stdout, "7\n", "a table the app creates later is not readable");
    assert.notEqual(ro("INSERT INTO badges VALUES (8)").status, 0);
    // Even a write the grants would allow fails: the role's transactions are read-only.
    pg.sql(`GRANT INSERT ON badges TO ${READONLY_USER}`, "bbaegok");
    assert.match(ro("INSERT INTO badges VALUES (9)").stderr, /read-only transaction/);
  });

  it("a failing statement that carries the password (here: the server read-only) leaves the password out of the server's log, which docker logs shows", async () => {
    const secret = "never-in-the-log-7f3a";
    pg.sql(readOnlyUserSql(database("postgres"), [], PASSWORD), "bbaegok");
    pg.sql("ALTER SYSTEM SET default_transaction_read_only = on; SELECT pg_reload_conf();");
    try {
      assert.throws(() => pg.sql(readOnlyUserSql(database("postgres"), [], secret), "bbaegok"), /read-only transaction/);
    } finally {
      pg.sql("ALTER SYSTEM RESET default_transaction_read_only; SELECT pg_reload_conf();");
    }
    // The server's log reaches this process a moment later.
    await waitFor("the failure in the server's log", () => /ERROR: {2}cannot execute ALTER ROLE in a read-only transaction/.test(pg.log()), 10_000, 100);
    assert.ok(!pg.log().includes(secret), `the password is in the server's log:\n${pg.log().slice(-1500)}`);
  });
});
