// What the real Spring Boot app (test/docker/images/spring-app, on this
// machine's JVM) answers when its database drops the connection under it: a
// crash, a power cut, the container replaced by an image bump, the original
// stopped after a promotion; and where its readOnly transactions go while the
// replica gives no connection. Two real MariaDB servers on loopback stand for
// the primary and the replica (no replication needed here: each only has to
// answer and then die; each holds its own row 1, so an answer says which one
// served it). Spring Framework 6.2's DefaultHandlerExceptionResolver takes an
// exception with an EOFException among its causes for a client that went away
// (DisconnectedClientHelper), and MariaDB Connector/J reports a connection the
// server closed with one: the request is answered 200 with an empty body.
// README "Read replicas" tells the team to map the database's connection
// failures to 503 (the app's DatabaseErrors); here both, so the advice is
// shown to be needed and to work. PostgreSQL stopped as Docker stops its
// image (SIGINT, a fast shutdown) tells its clients why (SQLSTATE 57P01): a
// 500 unless the advice counts that as unreachable too. The README's routing
// falls back to the primary when the replica gives no connection (refused,
// or a server that accepts and never answers), skips the replica for its
// retry period, then reads from it again; it checks a pooled replica
// connection before use (Hikari skips its own check for one used in the last
// 500 ms). A replica gone silent (a power cut) is bounded by the socketTimeout
// the program puts in the replica's URL.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { jdbcUrl, slotEnvs } from "../../infra/app/render.js";
import { DATABASE_COLLATION } from "../../infra/database/render.js";
import type { JdbcDriver } from "../../stacks/config/schema.js";
import { loadStack } from "../../stacks/config/index.js";
import { springAppJar } from "../support/docker-images.js";
import { cuttableRelay } from "../support/relay.js";
import { replicatedDatabase } from "../support/replica-harness.js";
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
  // Each its own row 1: an answer's body says which server read it.
  for (const [db, body] of [[primary, "primary"], [replica, "replicated"]] as const) {
    db.sql(`CREATE TABLE note (id BIGINT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(255)); INSERT INTO note VALUES (1, '${body}');`, "bbaegok");
  }
  secrets = tempDir("spring-secrets");
  writeFileSync(join(secrets.path, "spring.datasource.password"), PASSWORD);
  chmodSync(join(secrets.path, "spring.datasource.password"), 0o400);
});

after(async () => {
  await Promise.all([primary?.stop(), replica?.stop()]);
  secrets?.remove();
});

/** The app's JVM with the program's environment (as slotEnvs renders it, on loopback), its output piped. */
function spawnApp(port: number, urls: { primary: string; replica: string }, { raw = false, retryAfterSeconds = 30, jvm = [] as string[] } = {}): ChildProcess {
  return spawn("java", [...jvm, "-jar", jar], {
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
      BBAEGOK_REPLICA_RETRY_AFTER_SECONDS: String(retryAfterSeconds),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

interface App {
  get(path: string): Promise<{ status: number; body: string }>;
  post(path: string): Promise<{ status: number; body: string }>;
  stop(): Promise<void>;
}

const mariadbUrls = (replicaPort = replica.port) => ({ primary: `jdbc:mariadb://127.0.0.1:${primary.port}/bbaegok`, replica: `jdbc:mariadb://127.0.0.1:${replicaPort}/bbaegok` });

/** The body of a note read, which says which server read it. */
const bodyOf = (answer: { status: number; body: string }) => {
  assert.equal(answer.status, 200, answer.body);
  return (JSON.parse(answer.body) as { body: string | null }).body;
};

/**
 * The app with the program's environment (as slotEnvs renders it, on
 * loopback); `raw`: without its DatabaseErrors advice; `retryAfterSeconds`:
 * how long its routing skips a replica that gave no connection; `jvm`: the
 * JVM's own options.
 */
async function startApp({ raw = false, urls = mariadbUrls(), retryAfterSeconds = 30, jvm = [] as string[] } = {}): Promise<App> {
  const port = await freePort();
  const child = spawnApp(port, urls, { raw, retryAfterSeconds, jvm });
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
      app = await startApp({ raw });
    });
    after(async () => {
      await app?.stop();
      await Promise.all([primary.restart([]), replica.restart([])]);
    });

    it(raw ? "a readOnly read whose replica connection the server drops inside its transaction (SIGKILL) is answered 200 with an empty body" : "a readOnly read whose replica connection the server drops inside its transaction is answered 503", async () => {
      assert.equal(bodyOf(await app.get("/test/notes/1")), "replicated");
      // The read takes its connection, holds it 4 s, then reads again: the replica dies in between.
      const held = app.get("/test/notes/1?holdMs=4000");
      await sleep(1500);
      await replica.crash();
      const after = await held;
      if (raw) assert.deepEqual(after, { status: 200, body: "" });
      else assert.deepEqual([after.status, JSON.parse(after.body)], [503, { status: 503, error: "the database cannot be reached" }]);
    });

    it("the next readOnly read, with the replica down, is answered by the primary (the routing's fallback)", async () => {
      assert.equal(bodyOf(await app.get("/test/notes/1")), "primary");
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

/** A "replica" that accepts connections and never answers (a link whose packets vanish, a hung server); counts them. */
async function silentServer(): Promise<{ port: number; accepted: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    accepted: () => accepted,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Two PostgreSQL servers for the primary and the replica, each with the app's login and its own row 1. */
async function startPostgresPair() {
  const pair = await Promise.all([startPostgres(), startPostgres()]);
  for (const [server, body] of [[pair[0], "primary"], [pair[1], "replicated"]] as const) {
    server.sql(`CREATE ROLE bbaegok LOGIN PASSWORD '${PASSWORD}'; CREATE DATABASE bbaegok OWNER bbaegok;`);
    server.sql(`CREATE TABLE note (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, body VARCHAR(255)); INSERT INTO note VALUES (1, '${body}'); GRANT ALL ON note TO bbaegok;`, "bbaegok");
  }
  return pair;
}

/** The replica's URL exactly as the program renders it for the slots (database.replicas[0].readTimeoutSeconds), pointed at 127.0.0.1:<port>. */
function renderedReplicaUrl(engine: "mariadb" | "postgres", port: number, readTimeoutSeconds: number): string {
  const prod = loadStack("prod").config;
  const database = { ...replicatedDatabase(engine), replicas: [{ maxLagSeconds: 300, readTimeoutSeconds }] };
  const url = slotEnvs({ ...prod, app: { ...prod.app, jdbcDriver: undefined }, database }, "blue").find((e) => e.startsWith("SPRING_DATASOURCE_REPLICA_URL="))!;
  return url.slice("SPRING_DATASOURCE_REPLICA_URL=".length).replace(/\/\/[^/]+\//, `//127.0.0.1:${port}/`);
}

describe("a replica whose server goes silent (a power cut: no reset, no FIN), reached through the URL the program renders", () => {
  for (const engine of ["mariadb", "postgres"] as const) {
    it(`${engine}: a read in flight gives up after database.replicas[0].readTimeoutSeconds (the driver's socketTimeout, in its own unit) with 503, instead of waiting hours for TCP; the next read is the primary's`, async () => {
      const pg = engine === "postgres" ? await startPostgresPair() : undefined;
      const [primaryPort, replicaPort] = pg ? [pg[0].port, pg[1].port] : [primary.port, replica.port];
      const relay = await cuttableRelay(replicaPort);
      let app: App | undefined;
      try {
        const replicaUrl = renderedReplicaUrl(engine, relay.port, 3);
        assert.match(replicaUrl, engine === "postgres" ? /\?socketTimeout=3$/ : /\?socketTimeout=3000$/);
        app = await startApp({ urls: { primary: pg ? `jdbc:postgresql://127.0.0.1:${primaryPort}/bbaegok` : mariadbUrls().primary, replica: replicaUrl } });
        assert.equal(bodyOf(await app.get("/test/notes/1")), "replicated");
        const held = app.get("/test/notes/1?holdMs=1500");
        await sleep(500);
        relay.cut();
        // Without the driver's timeout this waits for the test's own 60 s abort, and fails.
        const after = await held;
        assert.deepEqual([after.status, JSON.parse(after.body)], [503, { status: 503, error: "the database cannot be reached" }]);
        assert.equal(bodyOf(await app.get("/test/notes/1")), "primary");
      } finally {
        await app?.stop();
        await relay.close();
        if (pg) await Promise.all(pg.map((server) => server.stop()));
      }
    });
  }
});

describe("readOnly transactions while the replica gives no connection: the README's routing falls back to the primary", () => {
  it("a replica that accepts and never answers: reads go to the primary, and the replica is not tried again within the retry period", async () => {
    const silent = await silentServer();
    let app: App | undefined;
    try {
      app = await startApp({ urls: mariadbUrls(silent.port), retryAfterSeconds: 600 });
      assert.equal(bodyOf(await app.get("/test/notes/1")), "primary");
      const tried = silent.accepted();
      assert.ok(tried >= 1, "the first read did not try the replica");
      for (let i = 0; i < 3; i++) assert.equal(bodyOf(await app.get("/test/notes/1")), "primary");
      assert.equal(silent.accepted(), tried, "a read within the retry period tried the replica again");
      // Writes never depended on it.
      assert.equal((await app.post("/test/notes?body=while-silent")).status, 200);
    } finally {
      await app?.stop();
      await silent.close();
    }
  });

  it("the replica killed and started again: reads go to the primary, then, after the retry period, back to the replica", async () => {
    const app = await startApp({ retryAfterSeconds: 1 });
    try {
      assert.equal(bodyOf(await app.get("/test/notes/1")), "replicated");
      // At once: the next read takes a pooled connection the replica's death left dead.
      await replica.crash();
      assert.equal(bodyOf(await app.get("/test/notes/1")), "primary");
      await replica.restart([]);
      await waitFor("readOnly reads from the replica again", async () => bodyOf(await app.get("/test/notes/1")) === "replicated", 60_000, 500);
    } finally {
      await app.stop();
    }
  });

  it("a dead pooled connection Hikari hands out unchecked (it skips those used in the last 500 ms; here, by its aliveBypassWindowMs, every one): the routing's own check finds it, the read is the primary's; each retry evicts one more, until the replica's again", async () => {
    const app = await startApp({ retryAfterSeconds: 1, jvm: ["-Dcom.zaxxer.hikari.aliveBypassWindowMs=3600000"] });
    try {
      assert.equal(bodyOf(await app.get("/test/notes/1")), "replicated");
      await replica.crash();
      await sleep(1000);
      assert.equal(bodyOf(await app.get("/test/notes/1")), "primary");
      await replica.restart([]);
      await waitFor("readOnly reads from the replica again", async () => bodyOf(await app.get("/test/notes/1")) === "replicated", 60_000, 500);
    } finally {
      await app.stop();
    }
  });
});

describe("PostgreSQL, with the README's advice", () => {
  it("a readOnly read whose replica stops (fast shutdown: SIGINT, as Docker stops the postgres image, SQLSTATE 57P01 to its clients) inside its transaction is answered 503; the next read goes to the primary", async () => {
    const [pgPrimary, pgReplica] = await startPostgresPair();
    let app: App | undefined;
    try {
      app = await startApp({ urls: { primary: `jdbc:postgresql://127.0.0.1:${pgPrimary.port}/bbaegok`, replica: `jdbc:postgresql://127.0.0.1:${pgReplica.port}/bbaegok` } });
      assert.equal(bodyOf(await app.get("/test/notes/1")), "replicated");
      const held = app.get("/test/notes/1?holdMs=4000");
      await sleep(1500);
      await pgReplica.stop();
      const after = await held;
      assert.deepEqual([after.status, JSON.parse(after.body)], [503, { status: 503, error: "the database cannot be reached" }]);
      assert.equal(bodyOf(await app.get("/test/notes/1")), "primary");
    } finally {
      await app?.stop();
      await Promise.all([pgPrimary.stop(), pgReplica.stop()]);
    }
  });
});

/** The primary's URL exactly as the program renders it for `jdbcDriver` (prod's database), pointed at 127.0.0.1:<port>. */
function renderedUrl(jdbcDriver: JdbcDriver, port: number): string {
  const prod = loadStack("prod").config;
  return jdbcUrl({ app: { ...prod.app, jdbcDriver }, database: prod.database }).replace(/\/\/[^/]+\//, `//127.0.0.1:${port}/`);
}

describe("MySQL's Connector/J (app.jdbcDriver: mysql-connector-j) with the URL the program renders, on MariaDB", () => {
  it("Korean text and emoji are stored as UTF-8 and read back unchanged; the connection's collation is the database's", async () => {
    const url = renderedUrl("mysql-connector-j", primary.port);
    const app = await startApp({ urls: { primary: url, replica: url } });
    try {
      const body = "빼곡 한글 🍚";
      const written = await app.post(`/test/notes?body=${encodeURIComponent(body)}`);
      assert.equal(written.status, 200, written.body);
      const { id, collation } = JSON.parse(written.body) as { id: number; collation: string };
      assert.equal(collation, DATABASE_COLLATION);
      assert.equal(bodyOf(await app.get(`/test/notes/${id}`)), body);
      assert.equal(primary.sql(`SELECT HEX(body) FROM note WHERE id = ${id};`, "bbaegok").trim(), Buffer.from(body).toString("hex").toUpperCase());
    } finally {
      await app.stop();
    }
  });
});
