// What the real Spring Boot app (test/docker/images/spring-app, on this
// machine's JVM) answers when its database drops the connection under it: a
// crash, a power cut, the container replaced by an image bump, the original
// stopped after a promotion. Two real MariaDB servers on loopback stand for
// the primary and the replica (no replication needed here: each only has to
// answer and then die). Spring Framework 6.2's DefaultHandlerExceptionResolver
// takes an exception with an EOFException among its causes for a client that
// went away (DisconnectedClientHelper), and MariaDB Connector/J reports a
// connection the server closed with one: the request is answered 200 with an
// empty body. README "Read replicas" tells the team to map the database's
// connection failures to 503 (the app's DatabaseErrors); here both, so the
// advice is shown to be needed and to work. PostgreSQL stopped as Docker
// stops its image (SIGINT, a fast shutdown) tells its clients why (SQLSTATE
// 57P01): a 500 unless the advice counts that as unreachable too.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { springAppJar } from "../support/docker-images.js";
import { startMariaDb, type MariaDb } from "../support/mariadb.js";
import { startPostgres } from "../support/postgres.js";
import { freePort, requireCommand, tempDir, waitFor } from "../support/system.js";

const PASSWORD = "app-password-1";
let primary: MariaDb;
let replica: MariaDb;
let secrets: ReturnType<typeof tempDir>;
let jar: string;

before(async () => {
  requireCommand("java", "openjdk-17-jdk-headless");
  jar = springAppJar().path;
  [primary, replica] = await Promise.all([startMariaDb(), startMariaDb()]);
  for (const db of [primary, replica]) db.sql(`CREATE DATABASE bbaegok; CREATE USER bbaegok@'%' IDENTIFIED BY '${PASSWORD}'; GRANT ALL ON bbaegok.* TO bbaegok@'%';`);
  // On the "replica", what the primary's JPA schema and first row would have replicated.
  replica.sql("CREATE TABLE note (id BIGINT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(255)); INSERT INTO note VALUES (1, 'replicated');", "bbaegok");
  secrets = tempDir("spring-secrets");
  writeFileSync(join(secrets.path, "spring.datasource.password"), PASSWORD);
  chmodSync(join(secrets.path, "spring.datasource.password"), 0o400);
});

after(async () => {
  await Promise.all([primary?.stop(), replica?.stop()]);
  secrets?.remove();
});

interface App {
  get(path: string): Promise<{ status: number; body: string }>;
  post(path: string): Promise<{ status: number; body: string }>;
  stop(): Promise<void>;
}

/** The app with the program's environment (as slotEnvs renders it, on loopback); `raw`: without its DatabaseErrors advice. */
async function startApp(raw: boolean, urls = { primary: `jdbc:mariadb://127.0.0.1:${primary.port}/bbaegok`, replica: `jdbc:mariadb://127.0.0.1:${replica.port}/bbaegok` }): Promise<App> {
  const port = await freePort();
  const child: ChildProcess = spawn("java", ["-jar", jar], {
    env: {
      PATH: process.env["PATH"],
      SERVER_PORT: String(port),
      SERVER_SHUTDOWN: "graceful",
      SPRING_DATASOURCE_URL: urls.primary,
      SPRING_DATASOURCE_USERNAME: "bbaegok",
      SPRING_DATASOURCE_REPLICA_URL: urls.replica,
      SPRING_DATASOURCE_REPLICA_USERNAME: "bbaegok",
      MANAGEMENT_HEALTH_DB_IGNOREROUTINGDATASOURCES: "true",
      SPRING_CONFIG_IMPORT: `optional:configtree:${secrets.path}/`,
      BBAEGOK_TEST_RAW_DATABASE_ERRORS: String(raw),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const call = async (method: string, path: string) => {
    const answer = await fetch(`http://127.0.0.1:${port}${path}`, { method, signal: AbortSignal.timeout(60_000) });
    return { status: answer.status, body: await answer.text() };
  };
  try {
    await waitFor("the app to answer its health", async () => (await call("GET", "/actuator/health")).status === 200, 120_000, 500);
  } catch (err) {
    child.kill("SIGKILL");
    throw new Error(`${(err as Error).message}\n${log.slice(-3000)}`);
  }
  return {
    get: (path) => call("GET", path),
    post: (path) => call("POST", path),
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

for (const raw of [true, false]) {
  describe(raw ? "Spring as it comes (BBAEGOK_TEST_RAW_DATABASE_ERRORS=true)" : "with the README's advice (connection failures answer 503)", () => {
    let app: App;
    before(async () => {
      app = await startApp(raw);
    });
    after(async () => {
      await app?.stop();
      await Promise.all([primary.restart([]), replica.restart([])]);
    });

    it(raw ? "a readOnly read on a replica connection the server dropped (SIGKILL) is answered 200 with an empty body" : "a readOnly read on a replica connection the server dropped is answered 503", async () => {
      const before = await app.get("/test/notes/1");
      assert.equal(before.status, 200, before.body);
      assert.equal((JSON.parse(before.body) as { body: string }).body, "replicated");
      await replica.crash();
      const after = await app.get("/test/notes/1");
      if (raw) assert.deepEqual(after, { status: 200, body: "" });
      else assert.deepEqual([after.status, JSON.parse(after.body)], [503, { status: 503, error: "the database cannot be reached" }]);
    });

    it(raw ? "a write on a primary connection the server dropped is answered 200 with an empty body, and nothing was written" : "a write on a primary connection the server dropped is answered 503, and nothing was written", async () => {
      const body = raw ? "lost-raw" : "lost-advised";
      const first = await app.post("/test/notes?body=written");
      assert.equal(first.status, 200, first.body);
      await primary.crash();
      const lost = await app.post(`/test/notes?body=${body}`);
      if (raw) assert.deepEqual(lost, { status: 200, body: "" });
      else assert.equal(lost.status, 503, lost.body);
      await primary.restart([]);
      assert.equal(primary.sql(`SELECT count(*) FROM note WHERE body = '${body}';`, "bbaegok"), "0\n");
    });
  });
}

describe("PostgreSQL, with the README's advice", () => {
  it("a readOnly read after the replica's fast shutdown (SIGINT, as Docker stops the postgres image: SQLSTATE 57P01 to its clients) is answered 503", async () => {
    const [pgPrimary, pgReplica] = await Promise.all([startPostgres(), startPostgres()]);
    let app: App | undefined;
    try {
      for (const pg of [pgPrimary, pgReplica]) pg.sql(`CREATE ROLE bbaegok LOGIN PASSWORD '${PASSWORD}'; CREATE DATABASE bbaegok OWNER bbaegok;`);
      pgReplica.sql("CREATE TABLE note (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, body VARCHAR(255)); INSERT INTO note VALUES (1, 'replicated'); GRANT ALL ON note TO bbaegok;", "bbaegok");
      app = await startApp(false, { primary: `jdbc:postgresql://127.0.0.1:${pgPrimary.port}/bbaegok`, replica: `jdbc:postgresql://127.0.0.1:${pgReplica.port}/bbaegok` });
      const before = await app.get("/test/notes/1");
      assert.equal(before.status, 200, before.body);
      await pgReplica.stop();
      const after = await app.get("/test/notes/1");
      assert.deepEqual([after.status, JSON.parse(after.body)], [503, { status: 503, error: "the database cannot be reached" }]);
    } finally {
      await app?.stop();
      await Promise.all([pgPrimary.stop(), pgReplica.stop()]);
    }
  });
});
