// The test images (test/support/docker-images.ts) on a real Docker daemon
// (test/support/docker-host.ts): each is built offline from this machine's
// Debian packages under the exact reference the committed stacks pin, and
// each keeps the part of its official image's contract the program relies
// on (test/docker/images/CONTRACTS.md). The containers are run with what the
// program renders: the database's environment, command and health check, the
// app's environment and health check, the proxy's nginx.conf and activation
// commands, Metabase's entrypoint and set-up script, the backup's and the
// restore drill's client commands. Without dockerd this fails, naming the
// Debian package; it never skips.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { slotEnvs, slotHealthCheck } from "../../infra/app/render.js";
import { APP_PASSWORD_FILE, databaseSpec, postgresAppUserScript, ROOT_PASSWORD_FILE } from "../../infra/database/render.js";
import { adminSqlCommand, metabaseEntrypoint, METABASE_SECRETS_MOUNT, READONLY_USER, readOnlyUserSql, setupScript } from "../../infra/metabase/render.js";
import { dockerNginxCommands } from "../../infra/proxy/activation.js";
import { INTERNAL_PORT, MAIN_CONF, proxyDirs, SLOT_HEADER, stackFilePaths } from "../../infra/proxy/contract.js";
import { containerLayout, renderMainConf, stackProxyFiles } from "../../infra/proxy/render.js";
import { platformSettings } from "../../infra/server/container.js";
import { edgeAddressing } from "../../infra/server/render.js";
import { loadStack } from "../../stacks/config/load.js";
import type { StackConfig } from "../../stacks/config/schema.js";
import { describeHealthCheck } from "../../ops/deploy/status.js";
import { parseLastHealthCheck } from "../../ops/deploy/server.js";
import { docker, startDockerHost, type DockerHost } from "../support/docker-host.js";
import { APP_IMAGE_USER, APP_REPOSITORY, buildTestImages, COMMITTED_IMAGE_REFS, committedImageRefs, CONTENT_LABEL, tagAppVersion, type BuiltImage } from "../support/docker-images.js";
import { selfSignedCertificate } from "../support/nginx.js";
import { REPO } from "../support/project.js";
import { tempDir, waitFor } from "../support/system.js";

const prod = loadStack("prod", REPO).config;
const refs = committedImageRefs();
const only = (list: string[], what: string) => {
  assert.equal(list.length, 1, `the committed stacks pin one ${what} image: ${list.join(", ")}`);
  return list[0]!;
};
const IMAGE = {
  nginx: only(refs.nginx, "nginx"),
  mariadb: only(refs.mariadb, "MariaDB"),
  postgres: only(refs.postgres, "PostgreSQL"),
  metabase: only(refs.metabase, "Metabase"),
  blue: refs.app[0]!,
  green: refs.app.find((r) => r !== refs.app[0]) ?? refs.app[0]!,
};
const ROOT_PASSWORD = "R00tPasswordForImages";
const APP_PASSWORD = "AppPassw0rdForImages";
const N = "bbimg";

const mariadbConfig: StackConfig["database"] = { ...prod.database, engine: "mariadb", memoryMb: 256 };
const postgresConfig: StackConfig["database"] = { ...prod.database, engine: "postgres", version: "16.13", memoryMb: 256 };

describe("test images on a real Docker daemon", () => {
  let host: DockerHost;
  let dir: ReturnType<typeof tempDir>;
  let built: BuiltImage[];
  const d = (args: string[], input?: string) => docker(args, { host, input }).stdout.trim();
  const attempt = (args: string[], input?: string) => docker(args, { host, input, allowFailure: true });
  /** A script run by sh here with the test daemon as DOCKER_HOST (the program's commands are shell strings). */
  const sh = (script: string, input = "") => {
    const r = spawnSync("sh", ["-c", script], { env: host.dockerEnv, input, encoding: "utf8", timeout: 120_000 });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  const logs = (container: string) => {
    const r = attempt(["logs", "--tail", "60", container]);
    return `${r.stdout}${r.stderr}`;
  };
  const healthy = async (container: string, timeoutMs = 120_000) => {
    try {
      await waitFor(`${container} to be healthy`, () => d(["inspect", "-f", "{{.State.Health.Status}}", container]) === "healthy", timeoutMs, 250);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- docker logs ${container}:\n${logs(container)}`);
    }
  };
  /**
   * PostgreSQL's health check (pg_isready on the socket) already passes while
   * the entrypoint's temporary server runs, as in the official image: the
   * server is up for good once it answers on TCP, which the temporary one never does.
   */
  const postgresUp = async (container: string) => {
    await healthy(container);
    await waitFor(`${container} to answer on TCP`, () => attempt(["exec", container, "pg_isready", "-h", "127.0.0.1"]).status === 0, 60_000, 250);
  };
  const healthArgs = (test: string[]) => {
    const [kind, ...rest] = test;
    assert.ok(kind === "CMD" || kind === "CMD-SHELL", `health check ${test.join(" ")}`);
    // docker run takes a shell line; CMD's words are simple here, so joined they are the same command.
    return ["--health-cmd", rest.join(" "), "--health-interval", "1s", "--health-retries", "3"];
  };
  const secretFile = (path: string, content: string, owner: number, dirMode = 0o701) => {
    mkdirSync(join(path, ".."), { recursive: true });
    chmodSync(join(path, ".."), dirMode);
    writeFileSync(path, content);
    chownSync(path, owner, owner);
    chmodSync(path, 0o400);
  };
  /** A release as the program runs it in prod's green slot on MariaDB, with the health check run every second. */
  const greenSlot = (name: string, image: string) =>
    d([
      ...["run", "--detach", "--name", name, "--network", `${N}-data`, "--user", prod.app.runAs],
      ...slotEnvs({ app: prod.app, database: mariadbConfig }, "green").flatMap((e) => ["--env", e]),
      ...["--mount", `type=bind,source=${join(dir.path, "app")},target=/run/secrets/app,readonly`],
      ...healthArgs(slotHealthCheck(prod.app, prod.domains.api).tests),
      image,
    ]);
  const ip = (container: string, network: string) => d(["inspect", "-f", `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container]);

  before(async () => {
    host = await startDockerHost();
    dir = tempDir("bbaegok-images");
    chmodSync(dir.path, 0o711);
    built = await buildTestImages({ env: host.dockerEnv });
    for (const image of built) console.log(`built ${image.ref} in ${image.seconds.toFixed(2)} s`);
    // Two data networks, each with its database under the program's alias "db": MariaDB's and PostgreSQL's.
    d(["network", "create", `${N}-data`]);
    d(["network", "create", `${N}-pgdata`]);
  });
  after(async () => {
    await host?.stop();
    dir?.remove();
  });

  it("builds every reference the committed stacks pin; a second build changes nothing", async () => {
    assert.deepEqual(
      built.map((b) => b.ref),
      [...COMMITTED_IMAGE_REFS],
    );
    for (const image of built) {
      const inspected = JSON.parse(d(["image", "inspect", image.ref])) as [{ Id: string; Config: { Labels: Record<string, string> } }];
      assert.equal(inspected[0].Id, image.id, image.ref);
      assert.match(inspected[0].Config.Labels[CONTENT_LABEL] ?? "", /^[0-9a-f]{64}$/, image.ref);
    }
    const again = await buildTestImages({ env: host.dockerEnv });
    assert.deepEqual(
      again.map((b) => [b.ref, b.built, b.id]),
      built.map((b) => [b.ref, false, b.id]),
      "a second build rebuilt an image",
    );
    assert.equal(d(["image", "inspect", "-f", "{{.Config.StopSignal}}", IMAGE.nginx]), "SIGQUIT");
    assert.equal(d(["image", "inspect", "-f", "{{.Config.StopSignal}}", IMAGE.postgres]), "SIGINT");
  });

  it("MariaDB initialises from the *_FILE passwords, runs the init folder as mysql (999), and passes the program's health check", async () => {
    const spec = databaseSpec(mariadbConfig);
    assert.equal(spec.image, IMAGE.mariadb);
    secretFile(join(dir.path, "db", ROOT_PASSWORD_FILE), ROOT_PASSWORD, 999);
    secretFile(join(dir.path, "db", APP_PASSWORD_FILE), APP_PASSWORD, 999);
    const init = join(dir.path, "mariadb-init");
    mkdirSync(init, { mode: 0o755 });
    writeFileSync(join(init, "10-whoami.sh"), '#!/bin/sh\necho "init script ran as uid $(id -u)"\n', { mode: 0o755 });
    writeFileSync(join(init, "20-table.sql"), "CREATE TABLE readings (id INT PRIMARY KEY, pages INT);\nINSERT INTO readings VALUES (1, 30), (2, 12);\n");
    d([
      ...["run", "--detach", "--name", `${N}-db`, "--network", `${N}-data`, "--network-alias", "db", "--memory", `${mariadbConfig.memoryMb}m`],
      ...spec.envs.flatMap((e) => ["--env", e]),
      ...["--mount", `type=bind,source=${join(dir.path, "db")},target=/run/secrets,readonly`, "--mount", `type=bind,source=${init},target=/docker-entrypoint-initdb.d,readonly`],
      ...healthArgs(spec.healthcheck),
      spec.image,
      ...spec.command,
    ]);
    await healthy(`${N}-db`);
    const output = logs(`${N}-db`);
    assert.match(output, /init script ran as uid 999/);
    // 11.4's collation map, rendered for the tag (11.4.12), is what 10.11 inside cannot take: dropped, said in the log.
    assert.ok(spec.command.includes("--character-set-collations=utf8mb4=utf8mb4_unicode_ci"));
    const whole = attempt(["logs", `${N}-db`]);
    assert.match(whole.stdout + whole.stderr, /test image: --character-set-collations=utf8mb4=utf8mb4_unicode_ci dropped: MariaDB 10\.11\.\d+ inside has no character_set_collations/);
    assert.equal(d(["exec", `${N}-db`, ...spec.healthcheck.slice(1)]), "");
    assert.match(d(["top", `${N}-db`, "-o", "pid,uid,args"]), /^\s*\d+\s+999\s+mariadbd /m);
    // As 11.4.12's entrypoint: the server's own environment holds no password it was given through *_FILE.
    const serverEnv = d(["exec", "--user", "999:999", `${N}-db`, "sh", "-c", "tr '\\0' '\\n' < /proc/1/environ"]);
    assert.match(serverEnv, /^TZ=UTC$/m);
    assert.doesNotMatch(serverEnv, /^(MARIADB|MYSQL)_(ROOT_)?PASSWORD=/m);
    assert.ok(!serverEnv.includes(ROOT_PASSWORD) && !serverEnv.includes(APP_PASSWORD), "a password in the server's environment");

    // The backup's commands (infra/backup/common.bash, backup.bash): root's password from the container's own file, stdbuf when present.
    const dbExec = (...command: string[]) => ["exec", "-i", `${N}-db`, "sh", "-c", 'MYSQL_PWD="$(cat /run/secrets/db_root_password)" exec "$@"', "db-exec", ...command];
    assert.equal(d(dbExec("mariadb", "--batch", "--skip-column-names", "-uroot", "bbaegok", "-e", "SELECT COUNT(*) FROM readings")), "2");
    const dump = d(dbExec("sh", "-c", 'if command -v stdbuf >/dev/null 2>&1; then exec stdbuf -o1M "$@"; fi; exec "$@"', "dump", "mariadb-dump", "--single-transaction", "--routines", "--triggers", "--events", "--hex-blob", "--default-character-set=utf8mb4", "-uroot", "bbaegok"));
    assert.match(dump, /INSERT INTO `readings`/);
    assert.match(d(["exec", `${N}-db`, "sh", "-c", "command -v stdbuf"]), /stdbuf/);
    // The app's login from the other file, over the network.
    assert.equal(d(["exec", "-e", `MYSQL_PWD=${APP_PASSWORD}`, `${N}-db`, "mariadb", "-h127.0.0.1", "-ubbaegok", "--batch", "--skip-column-names", "bbaegok", "-e", "SELECT @@character_set_server"]), "utf8mb4");
  });

  it("PostgreSQL initialises from POSTGRES_PASSWORD_FILE and runs the program's init script as postgres (999)", async () => {
    const spec = databaseSpec(postgresConfig);
    assert.equal(spec.image, IMAGE.postgres);
    secretFile(join(dir.path, "pg", ROOT_PASSWORD_FILE), ROOT_PASSWORD, 999);
    secretFile(join(dir.path, "pg", APP_PASSWORD_FILE), APP_PASSWORD, 999);
    const init = join(dir.path, "pg-init");
    mkdirSync(init, { mode: 0o755 });
    for (const file of spec.initFiles) writeFileSync(join(init, file.name), file.content, { mode: 0o755 });
    assert.equal(spec.initFiles[0]?.content, postgresAppUserScript(postgresConfig));
    writeFileSync(join(init, "20-whoami.sh"), '#!/bin/sh\necho "init script ran as uid $(id -u)"\n', { mode: 0o755 });
    writeFileSync(join(init, "30-table.sql"), "CREATE TABLE readings (id INT PRIMARY KEY, pages INT);\nINSERT INTO readings VALUES (1, 30), (2, 12);\nALTER TABLE readings OWNER TO bbaegok;\n");
    d([
      ...["run", "--detach", "--name", `${N}-pg`, "--network", `${N}-pgdata`, "--network-alias", "db", "--memory", `${postgresConfig.memoryMb}m`],
      ...spec.envs.flatMap((e) => ["--env", e]),
      ...["--mount", `type=bind,source=${join(dir.path, "pg")},target=/run/secrets,readonly`, "--mount", `type=bind,source=${init},target=/docker-entrypoint-initdb.d,readonly`],
      ...healthArgs(spec.healthcheck),
      spec.image,
      ...spec.command,
    ]);
    await postgresUp(`${N}-pg`);
    assert.match(logs(`${N}-pg`), /init script ran as uid 999/);
    assert.equal(d(["exec", `${N}-pg`, ...spec.healthcheck.slice(1)]).includes("accepting connections"), true);
    const psql = (sql: string) => d(["exec", "-i", `${N}-pg`, "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", "bbaegok", "-c", sql]);
    assert.equal(psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'bbaegok'"), "bbaegok");
    assert.equal(psql("SHOW listen_addresses"), "*");
    // The passwords from the files, over the network (host all all all scram-sha-256; loopback is trusted, as in the official image).
    const address = ip(`${N}-pg`, `${N}-pgdata`);
    const login = (user: string, password: string) => attempt(["exec", "-e", `PGPASSWORD=${password}`, `${N}-pg`, "psql", "-X", "-A", "-t", "-h", address, "-U", user, "-d", "bbaegok", "-c", "SELECT current_user"]);
    assert.equal(login("postgres", ROOT_PASSWORD).stdout.trim(), "postgres");
    assert.equal(login("bbaegok", APP_PASSWORD).stdout.trim(), "bbaegok");
    assert.match(login("postgres", "wrong").stderr, /password authentication failed/);
    // The backup's dump (custom format through stdbuf) restores with pg_restore.
    const dump = docker(["exec", "-i", `${N}-pg`, "sh", "-c", 'if command -v stdbuf >/dev/null 2>&1; then exec stdbuf -o1M "$@"; fi; exec "$@"', "dump", "pg_dump", "--format=custom", "--compress=0", "-U", "postgres", "-d", "bbaegok"], { host });
    assert.match(dump.stdout, /^PGDMP/);
    assert.match(d(["exec", `${N}-pg`, "pg_restore", "--version"]), /pg_restore \(PostgreSQL\)/);
  });

  it("the app reads its password from a 0400 file owned by 1000, is healthy only while its database answers, and tells its slot and version", async () => {
    const app = (name: string, image: string, database: StackConfig["database"], slot: "blue" | "green", secrets: string) =>
      d([
        ...["run", "--detach", "--name", name, "--network", database.engine === "postgres" ? `${N}-pgdata` : `${N}-data`, "--user", prod.app.runAs],
        ...slotEnvs({ app: prod.app, database }, slot).flatMap((e) => ["--env", e]),
        ...["--mount", `type=bind,source=${secrets},target=/run/secrets/app,readonly`],
        ...healthArgs(slotHealthCheck(prod.app, prod.domains.api).tests),
        image,
      ]);
    // The app's database password, as a listable config tree (Spring lists the folder).
    secretFile(join(dir.path, "app", "spring.datasource.password"), APP_PASSWORD, 1000, 0o755);
    app(`${N}-blue`, IMAGE.blue, mariadbConfig, "blue", join(dir.path, "app"));
    app(`${N}-green`, IMAGE.green, postgresConfig, "green", join(dir.path, "app"));
    await healthy(`${N}-blue`);
    await healthy(`${N}-green`);
    // The image names another user (APP_IMAGE_USER); the slot runs as app.runAs, the password file's owner.
    assert.equal(d(["image", "inspect", "-f", "{{.Config.User}}", IMAGE.blue]), APP_IMAGE_USER);
    assert.equal(d(["inspect", "-f", "{{.Config.User}}", `${N}-blue`]), prod.app.runAs);
    const get = (container: string, path: string) => attempt(["exec", container, "curl", "-sS", "-w", "\n%{http_code}", `http://127.0.0.1:8080${path}`]).stdout;
    assert.equal(get(`${N}-blue`, "/actuator/health"), '{"status":"UP"}\n\n200');
    const blue = JSON.parse(get(`${N}-blue`, "/anything").split("\n")[0]!) as { slot: string; version: string };
    const green = JSON.parse(get(`${N}-green`, "/anything").split("\n")[0]!) as { slot: string; version: string };
    assert.deepEqual([blue.slot, blue.version], ["blue", IMAGE.blue.split(":").pop()]);
    assert.deepEqual([green.slot, green.version], ["green", IMAGE.green.split(":").pop()]);

    // Its database stopped: 503, and Docker's health check (the program's) turns unhealthy; back when it is.
    d(["stop", `${N}-db`]);
    assert.match(get(`${N}-blue`, "/actuator/health"), /"status":"DOWN"[\s\S]*\n503$/);
    await waitFor("the blue slot to turn unhealthy", () => d(["inspect", "-f", "{{.State.Health.Status}}", `${N}-blue`]) === "unhealthy", 60_000, 250);
    d(["start", `${N}-db`]);
    await healthy(`${N}-db`);
    await healthy(`${N}-blue`);
  });

  it("the app stops at start while its database does not answer, as the team's JPA app does; the program's restart policy brings it up once the database answers", async () => {
    const slot = [
      ...["--network", `${N}-data`, "--user", prod.app.runAs, ...slotEnvs({ app: prod.app, database: mariadbConfig }, "blue").flatMap((e) => ["--env", e])],
      ...["--mount", `type=bind,source=${join(dir.path, "app")},target=/run/secrets/app,readonly`],
    ];
    d(["stop", `${N}-db`]);
    try {
      const refused = attempt(["run", "--rm", ...slot, IMAGE.blue]);
      assert.equal(refused.status, 1, refused.stdout + refused.stderr);
      assert.match(refused.stdout + refused.stderr, /APPLICATION FAILED TO START: Failed to initialize JPA EntityManagerFactory: .*Unable to determine Dialect without JDBC metadata/);
      // As after a reboot, when Docker starts every container at once: the app exits until its database answers.
      const restart = platformSettings("app", "prod").restart;
      d(["run", "--detach", "--name", `${N}-restarting`, "--restart", restart, ...slot, ...healthArgs(slotHealthCheck(prod.app, prod.domains.api).tests), IMAGE.blue]);
      await waitFor("the app to exit and be restarted by Docker", () => Number(d(["inspect", "-f", "{{.RestartCount}}", `${N}-restarting`])) >= 2, 60_000, 250);
    } finally {
      d(["start", `${N}-db`]);
    }
    await healthy(`${N}-db`);
    await healthy(`${N}-restarting`);
    assert.match(logs(`${N}-restarting`), /Unable to determine Dialect without JDBC metadata[\s\S]*Started bbaegok-api/);
    d(["rm", "--force", `${N}-restarting`]);
  });

  it("the app stops at start when its config tree cannot be listed, as Spring Boot does", () => {
    secretFile(join(dir.path, "closed", "spring.datasource.password"), APP_PASSWORD, 1000, 0o701);
    const r = attempt([
      ...["run", "--rm", "--network", `${N}-data`, ...slotEnvs({ app: prod.app, database: mariadbConfig }, "blue").flatMap((e) => ["--env", e])],
      ...["--mount", `type=bind,source=${join(dir.path, "closed")},target=/run/secrets/app,readonly`, IMAGE.blue],
    ]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /Unable to find files in '\/run\/secrets\/app'.*permission denied/);
  });

  it("tags other app versions: each its own image; an unhealthy one never passes its health check", async () => {
    const next = await tagAppVersion({ env: host.dockerEnv }, "1.8.3");
    const broken = await tagAppVersion({ env: host.dockerEnv }, "1.8.4-broken", { unhealthy: true });
    assert.equal(next.ref, `${APP_REPOSITORY}:1.8.3`);
    assert.notEqual(next.id, built.find((b) => b.ref === IMAGE.blue)?.id);
    assert.equal((await tagAppVersion({ env: host.dockerEnv }, "1.8.3")).built, false);
    greenSlot(`${N}-broken`, broken.ref);
    await waitFor("the broken release to turn unhealthy", () => d(["inspect", "-f", "{{.State.Health.Status}}", `${N}-broken`]) === "unhealthy", 60_000, 250);
    assert.match(attempt(["exec", `${N}-broken`, "curl", "-sS", "http://127.0.0.1:8080/"]).stdout, /"version":"1.8.4-broken"/);
    // What npm run status and a failed deploy print of it: Docker's last run of the check, read as the server control reads it.
    const last = parseLastHealthCheck(attempt(["inspect", "-f", "{{json .State.Health}}", `${N}-broken`]));
    assert.equal(last?.exitCode, 1);
    assert.match(last!.output, /curl: \(22\) The requested URL returned error: 503/);
    d(["rm", "--force", `${N}-broken`]);
  });

  it("an image without a shell, curl or wget (Paketo's tiny, distroless) never turns healthy, and Docker's last check says what it lacks", async () => {
    const bare = await tagAppVersion({ env: host.dockerEnv }, "1.8.4-no-health-tools", { withoutHealthTools: true });
    greenSlot(`${N}-bare`, bare.ref);
    try {
      await waitFor("the bare image to turn unhealthy", () => d(["inspect", "-f", "{{.State.Health.Status}}", `${N}-bare`]) === "unhealthy", 60_000, 250);
      const last = parseLastHealthCheck(attempt(["inspect", "-f", "{{json .State.Health}}", `${N}-bare`]))!;
      assert.match(last.output, /\/bin\/sh.*no such file/i);
      const line = describeHealthCheck({ slot: "green", container: `${N}-bare`, image: bare.ref, health: "unhealthy", lastCheck: last });
      assert.match(line!, /the health check runs \/bin\/sh with curl or wget inside the slot: the image has to have them/);
    } finally {
      d(["rm", "--force", `${N}-bare`]);
    }
  });

  it("an app bundling only MySQL's Connector/J: stops at start on the default jdbc:mariadb URL, as Spring Boot does; healthy with app.jdbcDriver: mysql-connector-j", async () => {
    const image = await tagAppVersion({ env: host.dockerEnv }, "1.8.5-mysql-connector", { jdbcDrivers: ["mysql-connector-j"] });
    const slot = (app: StackConfig["app"]) => [
      ...["--network", `${N}-data`, "--user", app.runAs, ...slotEnvs({ app, database: mariadbConfig }, "blue").flatMap((e) => ["--env", e])],
      ...["--mount", `type=bind,source=${join(dir.path, "app")},target=/run/secrets/app,readonly`],
    ];
    const refused = attempt(["run", "--rm", ...slot(prod.app), image.ref]);
    assert.equal(refused.status, 1, refused.stdout + refused.stderr);
    assert.match(refused.stdout + refused.stderr, /APPLICATION FAILED TO START: Failed to load driver class org\.mariadb\.jdbc\.Driver in either of HikariConfig class loader/);
    d(["run", "--detach", "--name", `${N}-connector-j`, ...slot({ ...prod.app, jdbcDriver: "mysql-connector-j" }), ...healthArgs(slotHealthCheck(prod.app, prod.domains.api).tests), image.ref]);
    await healthy(`${N}-connector-j`);
    assert.match(d(["inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", `${N}-connector-j`]), /^SPRING_DATASOURCE_URL=jdbc:mysql:\/\/db:3306\//m);
    d(["rm", "--force", `${N}-connector-j`]);
  });

  it("the app finishes an in-flight request on SIGTERM before it exits", async () => {
    const slow = spawnSync("sh", ["-c", `docker exec ${N}-green curl -sS -w ' %{http_code}' 'http://127.0.0.1:8080/slow?ms=2500' & sleep 0.7; docker stop --time 30 ${N}-green >/dev/null; wait`], {
      env: host.dockerEnv,
      encoding: "utf8",
    });
    assert.match(slow.stdout, /"sleptMs":2500[\s\S]* 200$/, slow.stderr);
    assert.equal(d(["inspect", "-f", "{{.State.ExitCode}}", `${N}-green`]), "0");
    assert.match(logs(`${N}-green`), /graceful shutdown complete/);
  });

  it("nginx runs the program's nginx.conf at its host path: nginx -t and reload through the program's commands, curl to the slots", async () => {
    const proxyDir = join(dir.path, "proxy");
    const layout = containerLayout(proxyDir);
    const live = proxyDirs(proxyDir).live;
    for (const sub of ["conf.d", "upstreams", "certs"]) mkdirSync(join(live, sub), { recursive: true });
    const edge = edgeAddressing(prod.server.edgeSubnet);
    const where: Record<string, string> = { [edge.blue]: ip(`${N}-blue`, `${N}-data`), [edge.green]: ip(`${N}-blue`, `${N}-data`), [edge.metabase]: ip(`${N}-blue`, `${N}-data`) };
    // The slots' fixed edge addresses mapped to the test containers (nothing here reaches 172.30.x).
    const address = (ipAndPort: string) => `${where[ipAndPort.split(":")[0]!] ?? assert.fail(`unmapped ${ipAndPort}`)}:${ipAndPort.split(":")[1]}`;
    const files = stackProxyFiles(prod, "prod", layout, "blue", address);
    const paths = stackFilePaths("prod");
    writeFileSync(join(live, MAIN_CONF), renderMainConf(layout, { cloudflareRanges: ["173.245.48.0/20", "2400:cb00::/32"], workerShutdownTimeout: "30s" }));
    writeFileSync(join(live, paths.conf), files.conf);
    writeFileSync(join(live, paths.upstreams), files.upstreams);
    selfSignedCertificate(layout, "prod", [prod.domains.api, prod.domains.metabase ?? prod.domains.api]);
    const endpoint = { container: `${N}-proxy`, image: IMAGE.nginx, dir: proxyDir };
    const commands = dockerNginxCommands(endpoint);

    // Before the container runs, the program checks the files with a throwaway container of the image.
    const early = sh(commands.test);
    assert.equal(early.status, 0, early.stderr);
    assert.match(early.stderr, /syntax is ok/);

    d([
      ...["run", "--detach", "--name", endpoint.container, "--network", `${N}-data`, "--env", "NGINX_ENTRYPOINT_QUIET_LOGS=1"],
      ...["--mount", `type=bind,source=${live},target=${live},readonly`, "--publish", "127.0.0.1::80"],
      IMAGE.nginx,
      ...["nginx", "-c", `${live}/${MAIN_CONF}`, "-g", "daemon off;"],
    ]);
    await waitFor("nginx in the proxy container", () => attempt(["exec", endpoint.container, "sh", "-c", "test -s /var/run/nginx.pid"]).status === 0, 20_000, 200);
    const ps = d(["exec", endpoint.container, "ps", "-o", "user,args"]);
    assert.match(ps, /root\s+nginx: master process/);
    assert.match(ps, /nginx\s+nginx: worker process/);
    const workers = () =>
      d(["top", endpoint.container, "-o", "pid,args"])
        .split("\n")
        .filter((line) => line.includes("worker process"))
        .map((line) => line.trim().split(/\s+/)[0]!);
    const before = workers();
    assert.ok(before.length > 0, "no nginx worker is running");
    for (const command of [commands.test, commands.reload]) {
      const r = sh(command);
      assert.equal(r.status, 0, `${command}\n${r.stderr}`);
    }
    await waitFor("new nginx workers after the reload", () => !workers().some((pid) => before.includes(pid)), 10_000, 100);
    // The deploy's smoke check (ops/deploy/server.ts): curl inside the proxy to the internal port, a slot picked by header.
    const head = d(["exec", endpoint.container, "curl", "-sS", "--max-time", "15", "-o", "/dev/null", "-D", "-", "-H", `Host: ${prod.domains.api}`, "-H", `${SLOT_HEADER}: blue`, `http://127.0.0.1:${INTERNAL_PORT}${prod.app.healthCheck.path}`]);
    assert.match(head, /^HTTP\/1\.1 200/);
    // A closed default server on port 80, published through docker-proxy.
    const port = d(["port", endpoint.container, "80/tcp"]).split(":").pop();
    const r = spawnSync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", `http://127.0.0.1:${port}/`], { encoding: "utf8" });
    assert.match(`${r.stdout} ${r.stderr}`, /000|Empty reply/);
    const stop = Date.now();
    d(["stop", endpoint.container]);
    assert.ok(Date.now() - stop < 10_000, "nginx did not stop gracefully on SIGQUIT");
  });

  it("the restore drill's throwaway servers start from the drill's own settings and take a restore", async () => {
    const drill = (name: string, env: string[], image: string) =>
      d(["run", "--detach", "--rm", "--name", name, "--network", "none", "--label", "bbaegok.role=restore-drill", ...env.flatMap((e) => ["-e", e]), image]);
    drill(`${N}-drill-mariadb`, ["MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1", "MARIADB_DATABASE=restore_drill"], IMAGE.mariadb);
    drill(`${N}-drill-pg`, ["POSTGRES_HOST_AUTH_METHOD=trust", "POSTGRES_DB=restore_drill"], IMAGE.postgres);
    const probes: Record<string, string[]> = {
      [`${N}-drill-mariadb`]: ["mariadb", "-uroot", "restore_drill", "-e", "SELECT 1"],
      [`${N}-drill-pg`]: ["psql", "-X", "-U", "postgres", "-d", "restore_drill", "-c", "SELECT 1"],
    };
    for (const [name, probe] of Object.entries(probes)) {
      // The drill's readiness: three answers in a row.
      let ok = 0;
      await waitFor(`${name} to answer three times in a row`, () => {
        ok = attempt(["exec", "-i", name, ...probe]).status === 0 ? ok + 1 : 0;
        return ok >= 3;
      }, 120_000, 1000);
    }
    const mariadbDump = docker(["exec", "-i", `${N}-db`, "sh", "-c", 'MYSQL_PWD="$(cat /run/secrets/db_root_password)" exec mariadb-dump --single-transaction --hex-blob --default-character-set=utf8mb4 -uroot bbaegok'], { host }).stdout;
    d(["exec", "-i", `${N}-drill-mariadb`, "mariadb", "--default-character-set=utf8mb4", "--max-allowed-packet=1G", "-uroot", "restore_drill"], mariadbDump);
    assert.equal(d(["exec", `${N}-drill-mariadb`, "mariadb", "--batch", "--skip-column-names", "-uroot", "restore_drill", "-e", "SELECT COUNT(*) FROM readings"]), "2");
    const pgDump = spawnSync("sh", ["-c", `docker exec -i ${N}-pg pg_dump --format=custom --compress=0 -U postgres -d bbaegok | docker exec -i ${N}-drill-pg pg_restore --no-owner --no-privileges --exit-on-error -U postgres -d restore_drill`], { env: host.dockerEnv, encoding: "utf8" });
    assert.equal(pgDump.status, 0, pgDump.stderr);
    assert.equal(d(["exec", `${N}-drill-pg`, "psql", "-X", "-A", "-t", "-U", "postgres", "-d", "restore_drill", "-c", "SELECT COUNT(*) FROM readings"]), "2");
    d(["rm", "--force", `${N}-drill-mariadb`, `${N}-drill-pg`]);
  });

  it("Metabase starts through the program's entrypoint with its PostgreSQL, answers health, and the program's set-up runs once", async () => {
    // Its application database, as the program runs it.
    secretFile(join(dir.path, "metabase-db", "db_password"), "MetabaseDbPassw0rd", 999);
    d([
      ...["run", "--detach", "--name", `${N}-metabase-db`, "--network", `${N}-data`, "--network-alias", "metabase-db"],
      ...["--env", "POSTGRES_PASSWORD_FILE=/run/secrets/db_password", "--env", "POSTGRES_USER=metabase", "--env", "POSTGRES_DB=metabase"],
      ...["--mount", `type=bind,source=${join(dir.path, "metabase-db")},target=/run/secrets,readonly`],
      ...healthArgs(["CMD", "pg_isready", "-U", "metabase", "-d", "metabase"]),
      IMAGE.postgres,
    ]);
    // The read-only login on the service database, through the program's admin command.
    const readonlyPassword = "Ro0nlyPassw0rdForImages";
    const grant = sh(adminSqlCommand("mariadb", `${N}-db`, "bbaegok"), readOnlyUserSql(mariadbConfig, [], readonlyPassword));
    assert.equal(grant.status, 0, grant.stderr);
    // Metabase's own secrets: root's, 0400, read by the entrypoint before Metabase drops to its user.
    const secrets = join(dir.path, "metabase");
    secretFile(join(secrets, "app_db_password"), "MetabaseDbPassw0rd", 0, 0o700);
    secretFile(join(secrets, "encryption_key"), "0123456789abcdef0123456789abcdef", 0, 0o700);
    secretFile(join(secrets, "admin_password"), "Adm1nPasswordForImages", 0, 0o700);
    secretFile(join(secrets, "readonly_password"), readonlyPassword, 0, 0o700);
    await postgresUp(`${N}-metabase-db`);
    const [entrypoint, ...args] = metabaseEntrypoint();
    d([
      ...["run", "--detach", "--name", `${N}-metabase`, "--network", `${N}-data`, "--entrypoint", entrypoint!],
      ...["MB_DB_TYPE=postgres", "MB_DB_HOST=metabase-db", "MB_DB_PORT=5432", "MB_DB_DBNAME=metabase", "MB_DB_USER=metabase", "MB_SITE_URL=https://metabase.bbaegok.kr", "MB_ANON_TRACKING_ENABLED=false", "JAVA_OPTS=-Xmx1536m"].flatMap((e) => ["--env", e]),
      ...["--mount", `type=bind,source=${secrets},target=${METABASE_SECRETS_MOUNT},readonly`],
      ...healthArgs(["CMD-SHELL", "curl -fsS http://127.0.0.1:3000/api/health || exit 1"]),
      IMAGE.metabase,
      ...args,
    ]);
    await healthy(`${N}-metabase`);
    assert.match(d(["top", `${N}-metabase`, "-o", "pid,uid,args"]), /^\s*\d+\s+2000\s+\/app\/metabase/m);
    const script = setupScript({ engine: "mariadb", databaseName: "bbaegok", databasePort: 3306, adminEmail: prod.metabase.adminEmail, siteName: prod.service });
    const sources = () => d(["exec", `${N}-metabase-db`, "psql", "-X", "-tA", "-U", "metabase", "-d", "metabase", "-c", "SELECT name, target FROM metabase_standin_database"]);
    const first = sh(`docker exec -i ${N}-metabase sh -s`, script);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`^Metabase admin created: ${prod.metabase.adminEmail}\nMetabase reads bbaegok at db as ${READONLY_USER} \\(read-only\\): data source bbaegok\n$`));
    assert.equal(sources(), `bbaegok|mysql://${READONLY_USER}@db:3306/bbaegok`);
    const second = sh(`docker exec -i ${N}-metabase sh -s`, script);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(second.stdout, "Metabase already has the data source bbaegok; nothing to do\n");
    // The set-up outlives the container: it is in the application database.
    d(["restart", `${N}-metabase`]);
    await healthy(`${N}-metabase`);
    assert.match(sh(`docker exec -i ${N}-metabase sh -s`, script).stdout, /already has the data source bbaegok/);
    // A Metabase set up by the earlier script (admin made, its data source
    // never added: Metabase ignores a database in /api/setup): the next run
    // logs in as the admin and adds it.
    d(["exec", `${N}-metabase-db`, "psql", "-X", "-q", "-U", "metabase", "-d", "metabase", "-c", "DELETE FROM metabase_standin_database"]);
    d(["restart", `${N}-metabase`]);
    await healthy(`${N}-metabase`);
    const repaired = sh(`docker exec -i ${N}-metabase sh -s`, script);
    assert.equal(repaired.status, 0, repaired.stderr);
    assert.equal(repaired.stdout, `Metabase reads bbaegok at db as ${READONLY_USER} (read-only): data source bbaegok\n`);
    assert.equal(sources(), `bbaegok|mysql://${READONLY_USER}@db:3306/bbaegok`);
    // Its admin password changed in Metabase: left as it is, saying so; not a failed up.
    const changed = sh(`docker exec -i ${N}-metabase sh -s`, script.replace(`$(cat ${METABASE_SECRETS_MOUNT}/admin_password)`, "NotTheSameAnymore1"));
    assert.equal(changed.status, 0, changed.stderr);
    assert.match(changed.stderr, /Metabase answered POST \/api\/session with HTTP 401: .*\nMetabase is set up, but its admin .* cannot log in with the stack's password \(changed in Metabase\?\): its data sources are left as they are/);
    assert.match(d(["exec", `${N}-db`, "sh", "-c", `MYSQL_PWD="$(cat /run/secrets/db_root_password)" mariadb -uroot --batch --skip-column-names -e "SELECT COUNT(*) FROM mysql.user WHERE user = '${READONLY_USER}'"`]), /^1$/);
  });
});
