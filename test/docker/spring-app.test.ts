// The real Spring Boot app on the real Docker host, where every other Docker
// test runs the Go stand-in (test/docker/images/app): the app of
// test/docker/images/spring-app (Spring Boot 3.5, JPA, actuator, the MariaDB
// and PostgreSQL JDBC drivers, and the read-only routing README "Read
// replicas" tells the team to write), on Debian's OpenJDK 17, as the app
// image of prod (MariaDB) and staging (PostgreSQL), each with a replica,
// brought up by the real engine. What the stand-in imitates is then Spring
// Boot's own doing: the password read from the config tree the program
// names, the JDBC URLs the program renders, the db health indicator and the
// program's MANAGEMENT_HEALTH_DB_IGNOREROUTINGDATASOURCES, readOnly
// transactions reaching the replica, a JVM's start in a rollout under load,
// and `npm run promote` under the app's own writes (none acknowledged lost).
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { APP_REPOSITORY, buildTestImages, tagSpringAppVersion } from "../support/docker-images.js";
import { docker, startDockerHost, type DockerHost } from "../support/docker-host.js";
import { asAppUser, inspect, proxyAddress, servingSlot } from "../support/docker-replica.js";
import { addCloudflareClientAddress, CLOUDFLARE_CLIENT, httpsGet, opsAsync, pointStackAtHost, pulumi, pulumiAsync, setStackValue, stagingOnPostgres, startLoad } from "../support/docker-stacks.js";
import { engineWorkspace, outputOf } from "../support/engine.js";
import { waitFor } from "../support/system.js";

let host: DockerHost;
let ws: ReturnType<typeof engineWorkspace>;
let removeClientAddress: (() => void) | undefined;
/** Docker's id of the Spring Boot image: what the slots run (the program pins the image by id). */
let springImageId: string;

const SPRING_IMAGE = `${APP_REPOSITORY}:2.0.0-spring`;
const STACKS = [
  { stack: "prod", engine: "mariadb", api: "api.bbaegok.kr", database: "MariaDB" },
  { stack: "staging", engine: "postgres", api: "staging-api.bbaegok.kr", database: "PostgreSQL" },
] as const;

before(async () => {
  removeClientAddress = addCloudflareClientAddress();
  host = await startDockerHost();
  await buildTestImages({ env: host.dockerEnv });
  springImageId = (await tagSpringAppVersion({ env: host.dockerEnv }, "2.0.0-spring")).id;
  ws = engineWorkspace("server", host.operatorEnv);
  for (const { stack } of STACKS) {
    pointStackAtHost(ws.projectDir, stack, host);
    setStackValue(ws.projectDir, stack, ["bbaegok-infra:database", "replicas"], [{}]);
    setStackValue(ws.projectDir, stack, ["bbaegok-infra:app", "image"], SPRING_IMAGE);
    const init = pulumi(ws, ["stack", "init", stack]);
    assert.equal(init.status, 0, outputOf(init));
  }
  stagingOnPostgres(ws.projectDir);
});

after(async () => {
  ws?.remove();
  await host?.stop();
  removeClientAddress?.();
});

function up(stack: string): void {
  const result = pulumi(ws, ["up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview"]);
  assert.equal(result.status, 0, outputOf(result));
}

interface Answer {
  status: number;
  body: string;
}

/** An HTTP request to the app from inside a container (its own curl), on the app's port. */
function http(container: string, method: "GET" | "POST", path: string, timeoutSeconds = 60): Answer {
  const out = docker(["exec", container, "curl", "-s", "-m", String(timeoutSeconds), "-X", method, "-w", "\n%{http_code}", `http://127.0.0.1:8080${path}`], { allowFailure: true }).stdout;
  const at = out.lastIndexOf("\n");
  return { status: Number(out.slice(at + 1)), body: out.slice(0, at) };
}

/** The answer's JSON, after its status; `logsOf`: a container whose log's tail a wrong status shows (the app's own account of it). */
function json<T>(answer: Answer, expectedStatus = 200, logsOf?: string): T {
  const logs = () => {
    const tail = docker(["logs", "--tail", "40", logsOf!], { allowFailure: true });
    return `\n${logsOf}'s log:\n${tail.stdout}${tail.stderr}`;
  };
  assert.equal(answer.status, expectedStatus, `${answer.body}${answer.status !== expectedStatus && logsOf ? logs() : ""}`);
  return JSON.parse(answer.body) as T;
}

interface Health {
  status: string;
  components: Record<string, { status: string; details?: Record<string, unknown>; components?: Record<string, Health["components"][string]> }>;
}

/** Which database server answered, as the app's query read it: MariaDB's host name (the container's) or PostgreSQL's address on the data network. */
function serverIdentity(engine: "mariadb" | "postgres", stack: string, container: string): string {
  return engine === "mariadb" ? inspect<string>(container, ".Config.Hostname") : inspect<Record<string, { IPAddress: string }>>(container, ".NetworkSettings.Networks")[`bbaegok-${stack}-data`]!.IPAddress;
}


interface WriteAnswer {
  body: string;
  /** ms since the writes started. */
  at: number;
  /** The server that acknowledged it (its answer), or why it failed. */
  server?: string;
  error?: string;
}

/** The app's JPA writes through the proxy, one after another (each `<prefix>-<n>`), each answer recorded: acknowledged by which server, or failed. */
function startWrites(api: string, prefix: string) {
  const t0 = Date.now();
  const answers: WriteAnswer[] = [];
  let running = true;
  const loop = (async () => {
    for (let n = 0; running; n++) {
      const body = `${prefix}-${n}`;
      const at = Date.now() - t0;
      try {
        const answer = await httpsGet(api, `/test/notes?body=${body}`, { address: proxyAddress(), localAddress: CLOUDFLARE_CLIENT, method: "POST", timeoutMs: 40_000 });
        if (answer.status === 200) answers.push({ body, at, server: (JSON.parse(answer.body) as { server: string }).server });
        else answers.push({ body, at, error: `HTTP ${answer.status}` });
      } catch (err) {
        answers.push({ body, at, error: (err as Error).message });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    answers,
    /** When the writes began (Date.now()): each answer's `at` is counted from it. */
    startedAt: t0,
    async stop(): Promise<WriteAnswer[]> {
      running = false;
      await loop;
      return answers;
    },
  };
}

for (const { stack, engine, api, database } of STACKS) {
  const primary = `bbaegok-${stack}-db`;
  const replica = `bbaegok-${stack}-db-replica`;
  const slots = [`bbaegok-${stack}-app-blue`, `bbaegok-${stack}-app-green`];

  describe(`${stack}: the Spring Boot app on ${engine} with a replica, on the real Docker host`, () => {
    it("pulumi up: both slots run the Spring Boot image and turn healthy by the program's health check; Spring's db indicator checks the primary's pool only", () => {
      up(stack);
      for (const slot of slots) {
        assert.equal(inspect<string>(slot, ".Image"), springImageId);
        assert.equal(inspect<{ Health?: { Status: string } }>(slot, ".State").Health?.Status, "healthy", slot);
        const health = json<Health>(http(slot, "GET", "/actuator/health"));
        assert.equal(health.status, "UP", JSON.stringify(health));
        // One DataSource checked (the primaryDataSource bean): the routing one is ignored, as the program's variable says.
        assert.equal(health.components.db?.status, "UP", JSON.stringify(health.components.db));
        assert.equal(health.components.db?.details?.database, database, JSON.stringify(health.components.db));
        assert.equal(health.components.db?.components, undefined, `more than one DataSource checked: ${JSON.stringify(health.components.db)}`);
        // The program's JAVA_TOOL_OPTIONS: the heap is sized from the container's memory limit, not the host's 24 GiB.
        const limit = inspect<number>(slot, ".HostConfig.Memory");
        const flags = docker(["exec", slot, "java", "-XX:+PrintFlagsFinal", "-version"]).stdout;
        const maxHeap = Number(/\bMaxHeapSize\s*=\s*(\d+)/.exec(flags)?.[1]);
        assert.ok(limit > 0 && maxHeap <= limit * 0.75 && maxHeap >= limit * 0.7, `MaxHeapSize ${maxHeap} for a limit of ${limit}`);
      }
    });

    it("Spring read the datasource's password from the config tree the program mounts: no password in the slot's environment, the file readable by the app's uid only", () => {
      for (const slot of slots) {
        const env = inspect<string[]>(slot, ".Config.Env");
        assert.ok(!env.some((e) => /PASSWORD/.test(e.split("=")[0]!)), `${slot}: ${env.join(" ")}`);
        assert.ok(env.includes("SPRING_CONFIG_IMPORT=optional:configtree:/run/secrets/app/"), env.join(" "));
        assert.equal(docker(["exec", slot, "id", "-u"]).stdout.trim(), "1000");
        assert.equal(docker(["exec", slot, "stat", "-c", "%a %u", "/run/secrets/app/spring.datasource.password"]).stdout.trim(), "400 1000");
      }
    });

    it("a write goes to the primary; a @Transactional(readOnly = true) read goes to the replica (as each server says of itself) and sees it; a write in a readOnly transaction is refused there", async () => {
      const [slot] = slots as [string, string];
      const written = json<{ id: number; server: string; readOnlyServer: boolean }>(http(slot, "POST", "/test/notes?body=ppaegok-note"));
      assert.equal(written.server, serverIdentity(engine, stack, primary));
      assert.equal(written.readOnlyServer, false);
      type Read = { body: string | null; server: string; readOnlyServer: boolean };
      let read: Read = { body: null, server: "", readOnlyServer: false };
      await waitFor("the note through the read-only datasource", () => (read = json<Read>(http(slot, "GET", `/test/notes/${written.id}`))).body === "ppaegok-note", 60_000, 500);
      assert.equal(read.server, serverIdentity(engine, stack, replica));
      assert.equal(read.readOnlyServer, true);
      const refused = http(slot, "POST", "/test/notes/read-only?body=refused");
      assert.equal(refused.status, 500, refused.body);
      assert.equal(asAppUser(engine, primary, "SELECT count(*) FROM note WHERE body = 'refused';").stdout, "0\n");
    });

    it("the replica stopped: the slots stay healthy (the program's MANAGEMENT_HEALTH_DB_IGNOREROUTINGDATASOURCES), writes go on, readOnly reads go to the primary (the README's routing falls back); the same app without that variable says DOWN; the replica back, reads go to it again", async () => {
      const [slot] = slots as [string, string];
      docker(["stop", replica]);
      try {
        for (const s of slots) assert.equal(json<Health>(http(s, "GET", "/actuator/health")).status, "UP", s);
        json(http(slot, "POST", "/test/notes?body=while-the-replica-is-down"));
        // The routing's fallback: the replica gives no connection, so the readOnly transaction runs on the primary.
        const read = json<{ server: string; readOnlyServer: boolean }>(http(slot, "GET", "/test/notes/1"), 200, slot);
        assert.equal(read.server, serverIdentity(engine, stack, primary));
        assert.equal(read.readOnlyServer, false);
        // The counterfactual, for real: the slot's own container settings without the program's variable.
        const env = inspect<string[]>(slot, ".Config.Env").filter((e) => !e.startsWith("MANAGEMENT_HEALTH_DB_IGNOREROUTINGDATASOURCES="));
        const envFile = join(host.dir, "spring-probe.env");
        writeFileSync(envFile, `${env.join("\n")}\n`);
        const source = inspect<{ Source: string; Destination: string }[]>(slot, ".Mounts").find((m) => m.Destination === "/run/secrets/app")!.Source;
        docker(["run", "-d", "--name", "bbaegok-spring-probe", "--user", inspect<string>(slot, ".Config.User"), "--env-file", envFile, "--network", `bbaegok-${stack}-data`, "--mount", `type=bind,source=${source},target=/run/secrets/app,readonly`, SPRING_IMAGE]);
        let health: Answer = { status: 0, body: "" };
        await waitFor("the probe's health answer", () => (health = http("bbaegok-spring-probe", "GET", "/actuator/health")).status !== 0, 120_000, 1000);
        const probe = json<Health>(health, 503);
        assert.equal(probe.status, "DOWN");
        assert.equal(probe.components.db?.components?.primaryDataSource?.status, "UP", JSON.stringify(probe.components.db));
        assert.equal(probe.components.db?.components?.dataSource?.status, "DOWN", JSON.stringify(probe.components.db));
      } finally {
        docker(["rm", "--force", "bbaegok-spring-probe"], { allowFailure: true });
        docker(["start", replica]);
      }
      await waitFor(`${replica} healthy again`, () => inspect<{ Health?: { Status: string } }>(replica, ".State").Health?.Status === "healthy", 120_000, 1000);
      // After the routing's retry period (30 s), the replica is tried again.
      await waitFor("readOnly reads served by the replica again", () => json<{ server: string }>(http(slot, "GET", "/test/notes/1")).server === serverIdentity(engine, stack, replica), 120_000, 1000);
    });

    if (stack === "prod") {
      it("what the Go stand-in imitates at start holds for the real app: with no database it exits 1 (Hibernate's \"Unable to determine Dialect without JDBC metadata\"); a secrets folder its uid cannot list stops it (Spring lists the config tree)", () => {
        const [slot] = slots as [string, string];
        const envFile = join(host.dir, "spring-probe.env");
        writeFileSync(envFile, `${inspect<string[]>(slot, ".Config.Env").join("\n")}\n`);
        const source = inspect<{ Source: string; Destination: string }[]>(slot, ".Mounts").find((m) => m.Destination === "/run/secrets/app")!.Source;
        const probe = (args: string[]) => docker(["run", "--rm", "--user", inspect<string>(slot, ".Config.User"), "--env-file", envFile, ...args, SPRING_IMAGE], { allowFailure: true, timeoutMs: 180_000 });
        // The slot's own settings, but no network: its database does not answer.
        const alone = probe(["--network", "none", "--mount", `type=bind,source=${source},target=/run/secrets/app,readonly`]);
        assert.equal(alone.status, 1, alone.stdout.slice(-2000));
        assert.match(alone.stdout, /Unable to determine Dialect without JDBC metadata/);
        // The password file as the program places it, in a folder uid 1000 may traverse but not list.
        const hidden = join(host.dir, "spring-unlistable");
        host.asRoot(`mkdir -p '${hidden}' && cp '${source}/spring.datasource.password' '${hidden}/' && chown 1000:1000 '${hidden}/spring.datasource.password' && chmod 0400 '${hidden}/spring.datasource.password' && chmod 0711 '${hidden}'`);
        const unlistable = probe(["--network", `bbaegok-${stack}-data`, "--mount", `type=bind,source=${hidden},target=/run/secrets/app,readonly`]);
        assert.equal(unlistable.status, 1, unlistable.stdout.slice(-2000));
        assert.match(unlistable.stdout, /Unable to find files in '\/run\/secrets\/app'/);
      });

      it("a release of the Spring Boot app (a changed app.env) by pulumi up under HTTPS load: the other slot starts, turns healthy and takes over; no request fails", async () => {
        const before = await servingSlot(stack, api);
        setStackValue(ws.projectDir, stack, ["bbaegok-infra:app", "env", "FEATURE_X"], "on");
        const load = startLoad(proxyAddress, api);
        try {
          const result = await pulumiAsync(ws, ["up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview"]);
          assert.equal(result.status, 0, outputOf(result));
          await new Promise((r) => setTimeout(r, 1500));
        } finally {
          await load.stop();
        }
        const failed = load.answers.filter((a) => a.error);
        assert.deepEqual(failed, [], `failed requests during the rollout (of ${load.answers.length})`);
        const after = await servingSlot(stack, api);
        assert.notEqual(after, before);
        assert.ok(inspect<string[]>(after, ".Config.Env").includes("FEATURE_X=on"));
        assert.ok(load.answers.some((a) => `bbaegok-${stack}-app-${a.slot}` === after), "the new slot never answered under load");
      });
    }

    it("npm run promote while the real app writes through the proxy: every write the app acknowledged is on the promoted container; writes fail only between the fence and the flip; afterwards both slots write to it", async () => {
      const writes = startWrites(api, `promotion-${stack}`);
      let result: Awaited<ReturnType<typeof opsAsync>>;
      try {
        await waitFor("writes acknowledged before the promotion", () => writes.answers.filter((a) => a.server).length >= 5, 60_000, 200);
        result = await opsAsync(ws, "promote.ts", ["--stack", stack]);
        await waitFor("writes acknowledged after the promotion", () => writes.answers.slice(-5).every((a) => a.server === serverIdentity(engine, stack, replica)), 60_000, 200);
      } finally {
        await writes.stop();
      }
      assert.equal(result.status, 0, result.stdout + result.stderr);
      const file = parse(readFileSync(join(ws.projectDir, `Pulumi.${stack}.yaml`), "utf8")) as { config: Record<string, { primary?: string }> };
      assert.equal(file.config["bbaegok-infra:database"]?.primary, "replica");
      const original = serverIdentity(engine, stack, primary);
      const promoted = serverIdentity(engine, stack, replica);
      const acknowledged = writes.answers.filter((a) => a.server);
      const failed = writes.answers.filter((a) => a.error);
      // Nothing acknowledged is lost: the replica had applied every write of the original before it took writes.
      const onPromoted = new Set(asAppUser(engine, replica, `SELECT body FROM note WHERE body LIKE 'promotion-${stack}-%';`).stdout.split("\n").filter(Boolean));
      const lost = acknowledged.filter((a) => !onPromoted.has(a.body));
      assert.deepEqual(lost, [], `acknowledged writes missing on the promoted container (${acknowledged.length} acknowledged, ${failed.length} failed)`);
      // One window of failures at most: acknowledged by the original, then failing (fenced), then by the promoted one.
      const sequence = writes.answers.map((a) => (a.server === original ? "o" : a.server === promoted ? "p" : a.error ? "x" : "?")).join("");
      assert.match(sequence, /^o+x*p+$/, `writes in order (o original, x failed, p promoted): ${sequence}`);
      const window = failed.length > 0 ? `${failed.length} failed writes, ${failed.at(-1)!.at - failed[0]!.at} ms apart` : "no failed write";
      console.log(`${stack}: promotion under writes: ${acknowledged.length} acknowledged, ${window}, ${failed.map((f) => f.error).filter((e, i, all) => all.indexOf(e) === i).join("; ")}`);
      // Where the window goes: replica.sh's own log lines (to the second) and the first write the promoted container acknowledged.
      const logged = (what: string) => Date.parse(new RegExp(`^\\s*(\\S+Z) \\S+\\[info\\]: \\S+ ${what}$`, "m").exec(result.stdout)?.[1] ?? "");
      const fenced = logged("fenced: it refuses the app's writes from now on");
      const promotedAt = logged("promoted: it takes writes now");
      const firstOnPromoted = writes.startedAt + writes.answers.find((a) => a.server === promoted)!.at;
      console.log(`${stack}: promotion's parts: fence to promoted ${((promotedAt - fenced) / 1000).toFixed(0)} s (replica.sh, its log to the second), promoted to the first write the promoted container acknowledged ${((firstOnPromoted - promotedAt) / 1000).toFixed(1)} s (the flip's pulumi up)`);
      // Both slots, the rewarmed warm one too, write to the promoted container.
      for (const slot of slots) {
        const written = json<{ server: string; readOnlyServer: boolean }>(http(slot, "POST", `/test/notes?body=after-promotion-${slot}`));
        assert.equal(written.server, promoted, slot);
        assert.equal(written.readOnlyServer, false);
      }
    });

    if (stack === "prod") {
      it("a power cut after the promotion: Docker alone brings the promoted database and both JVM slots back healthy (each slot's restarts by Docker printed), and the app writes to the promoted container through the proxy", async () => {
        const serving = await servingSlot(stack, api);
        const started = slots.map((slot) => inspect<string>(slot, ".State.StartedAt"));
        await host.powerCut();
        await waitFor(`${replica} and both slots to run again and be healthy`, () => [replica, ...slots].every((name) => inspect<{ Health?: { Status: string } }>(name, ".State").Health?.Status === "healthy"), 300_000, 1000);
        slots.forEach((slot, i) => assert.notEqual(inspect<string>(slot, ".State.StartedAt"), started[i], `${slot} was not started again: the cut did not stop it`));
        assert.equal(await servingSlot(stack, api), serving);
        const answer = await httpsGet(api, "/test/notes?body=after-the-cut", { address: proxyAddress(), localAddress: CLOUDFLARE_CLIENT, method: "POST" });
        assert.equal(answer.status, 200, answer.body);
        assert.equal((JSON.parse(answer.body) as { server: string }).server, serverIdentity(engine, stack, replica));
        console.log(`${stack}: after the power cut, restarts by Docker: ${slots.map((slot) => `${slot} ${inspect<number>(slot, ".RestartCount")}`).join(", ")}`);
      });
    }
  });
}
