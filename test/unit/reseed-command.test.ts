// npm run reseed (ops/reseed.ts): when it refuses, touching nothing, and how
// it runs replica.sh reseed: on the stack's server, or step by step on each
// server of a replica elsewhere; its log shown line by line as it comes, its
// exit status passed on, nothing run after a failed step. The servers'
// scripts here are stand-ins that log and exit as told; the real one runs
// against real MariaDB in test/real/replica-cannot-catch-up.test.ts and, both
// engines in real containers, in test/docker/replica.test.ts and
// replica-elsewhere.test.ts. And the rendered script's own refusals, which
// come before it touches any container.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { replicaNames, replicaScript } from "../../infra/replica/render.js";
import { stackNames } from "../../infra/server/render.js";
import { localShell } from "../../ops/deploy/server.js";
import { EXIT } from "../../ops/exit.js";
import { runReseedCommand, type ReseedDeps } from "../../ops/reseed.js";
import { writePromotion } from "../../ops/promote.js";
import { readStackFile } from "../../stacks/config/files.js";
import { loadStack } from "../../stacks/config/index.js";
import type { StackConfig } from "../../stacks/config/schema.js";
import { replicatedDatabase } from "../support/replica-harness.js";
import { tempDir } from "../support/system.js";

const ELSEWHERE = {
  maxLagSeconds: 30,
  readTimeoutSeconds: 30,
  server: { host: "replica.bbaegok.kr", ssh: { user: "deploy", port: 22, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIReplica" }, dataDir: "/srv/bbaegok" },
  link: { type: "tailnet" as const, primaryAddress: "100.101.102.103", replicaAddress: "100.101.102.104" },
};

/** prod's stack file with `database` changed, its server's data folder `dataDir`. */
function prod(database: Partial<StackConfig["database"]>, dataDir = "/srv/bbaegok"): StackConfig {
  const config = loadStack("prod").config;
  return { ...config, server: { ...config.server, dataDir }, database: { ...config.database, ...database } };
}

function reporter() {
  const lines: string[] = [];
  return { lines, reporter: { line: (text: string) => void lines.push(text) } };
}

const noServer = (config: StackConfig): ReseedDeps => ({ readConfig: () => config, shell: () => assert.fail("a server was reached"), privilege: "none" });

describe("npm run reseed", () => {
  it("refuses bad usage, a stack without a replica, and one promoted or promoting (exit 2), reaching no server", async () => {
    const replica = { maxLagSeconds: 30, readTimeoutSeconds: 30 };
    const cases: [string[], ReseedDeps, RegExp][] = [
      [[], noServer(prod({ replicas: [replica] })), /--stack is required\nusage: npm run reseed -- --stack <name>/],
      [["--stack", "prod", "--force"], noServer(prod({ replicas: [replica] })), /Unknown option '--force'/],
      [["--stack", "prod"], noServer(prod({ replicas: [] })), /Pulumi\.prod\.yaml lists no database\.replicas: there is no replica to seed/],
      [["--stack", "prod"], noServer(prod({ replicas: [replica], primary: "replica" })), /says database\.primary: replica: the replica is \(or is becoming\) the primary; seeding it again from the original would lose its writes\. Nothing was done/],
      [["--stack", "prod"], noServer(prod({ replicas: [replica], primary: "promoting" })), /says database\.primary: promoting/],
    ];
    for (const [argv, deps, message] of cases) {
      const { lines, reporter: r } = reporter();
      assert.equal(await runReseedCommand(argv, deps, r, r), EXIT.usage, argv.join(" "));
      assert.match(lines.join("\n"), message);
    }
  });

  describe("on the servers (stand-in replica.sh copies at each server's path, each server a local shell)", () => {
    const dir = tempDir("reseed-command");
    after(() => dir.remove());
    const replicaDir = join(dir.path, "replica-server");
    const scriptIn = (dataDir: string) => {
      const names = stackNames("bbaegok", "prod", dataDir);
      return replicaNames(names.prefix).script(names.stackDir);
    };
    const ran = join(dir.path, "ran");
    const shownFirst = join(dir.path, "first-line-shown");
    /**
     * A stand-in at the script's path of `dataDir`: records where it ran and its arguments, logs two lines (stderr,
     * as replica.sh logs) and exits `status` (1) for the step `failing`. Between them it waits (10 s at most) for `shownFirst`,
     * which the test makes once the command has shown the first line: its last line says whether it came.
     */
    const standIn = (dataDir: string, label: string, failing = "", status = 1) => {
      const script = scriptIn(dataDir);
      mkdirSync(dirname(script), { recursive: true });
      writeFileSync(
        script,
        [
          // Its last step, as the test set it (none by default).
          `if [ "$*" = "reseed last" ]; then cat "${dirname(script)}/last.json" 2>/dev/null || echo '{}'; exit 0; fi`,
          `echo "${label} $*" >> "${ran}"`,
          `echo "${label}: first line" >&2`,
          `for _ in $(seq 100); do [ -e "${shownFirst}" ] && break; sleep 0.1; done`,
          `[ -e "${shownFirst}" ] && when="after the first was shown" || when="the first never shown"`,
          `rm -f "${shownFirst}"`,
          `echo "${label}: last line, $when, no newline" | tr -d '\\n' >&2`,
          // The step failing, whatever run it is of.
          `case "$* " in "${failing} "*) exit ${status} ;; esac`,
          "exit 0",
        ].join("\n"),
        { mode: 0o755 },
      );
    };
    /** A reporter collecting lines; the first line of a stand-in's log is acknowledged, as a reader would see it. */
    const collecting = () => {
      const lines: string[] = [];
      return { lines, reporter: { line: (text: string) => void (lines.push(text), / first line$/.test(text) && writeFileSync(shownFirst, "")) } };
    };
    const runs = () => readFileSync(ran, "utf8").trim().split("\n");
    /** The steps run, each run's name taken off; and the names, which must be one. */
    const steps = () => {
      const names = new Set(runs().map((line) => /\b([0-9a-f]{8})$/.exec(line)?.[1]));
      assert.equal(names.size, 1, `not one run's name: ${runs().join("; ")}`);
      return runs().map((line) => line.replace(/ [0-9a-f]{8}$/, ""));
    };
    const setLast = (dataDir: string, last: object | undefined) => {
      const file = join(dirname(scriptIn(dataDir)), "last.json");
      if (last) writeFileSync(file, JSON.stringify(last));
      else rmSync(file, { force: true });
    };
    const deps = (config: StackConfig): ReseedDeps => ({ readConfig: () => config, shell: (server) => ({ ...localShell(), where: server.host }), privilege: "none" });
    const here = prod({ replicas: [{ maxLagSeconds: 30, readTimeoutSeconds: 30 }] }, dir.path);
    const elsewhere = prod({ replicas: [{ ...ELSEWHERE, server: { ...ELSEWHERE.server, dataDir: replicaDir } }] }, dir.path);

    it("a replica on the stack's server: replica.sh reseed there, each line of its log shown as it comes, then that it is seeded (exit 0)", async () => {
      rmSync(ran, { force: true });
      standIn(dir.path, "stack's server");
      const { lines, reporter: out } = collecting();
      assert.equal(await runReseedCommand(["--stack", "prod"], deps(here), out, out), EXIT.ok);
      assert.deepEqual(runs(), ["stack's server reseed"]);
      // Shown as it came, not all at the end: the script's first line reached the reader while the script still ran.
      assert.deepEqual(lines, [
        `reseed of prod: bbaegok-prod-db-replica is seeded again from the primary (replica.sh reseed on ${here.server.host}); the app reads from the primary meanwhile`,
        "      stack's server: first line",
        "      stack's server: last line, after the first was shown, no newline",
        "prod: bbaegok-prod-db-replica is seeded again and caught up; the app reads from it again.",
      ]);
    });

    it("a replica on another server: each step on the server holding what it changes, in order, each copy at its own server's path (exit 0)", async () => {
      rmSync(ran, { force: true });
      standIn(dir.path, "stack's server");
      standIn(replicaDir, "replica's server");
      const { lines, reporter: r } = collecting();
      assert.equal(await runReseedCommand(["--stack", "prod"], deps(elsewhere), r, r), EXIT.ok, lines.join("\n"));
      assert.deepEqual(steps(), [
        "stack's server reseed check",
        "replica's server reseed stop",
        "stack's server reseed primary",
        "replica's server reseed seed",
        "stack's server reseed wait",
        "replica's server reseed finish",
      ]);
      assert.match(lines[0]!, new RegExp(`on ${here.server.host} and replica\\.bbaegok\\.kr\\)`));
    });

    it("a failed step: its log, then where it failed and what to do; no later step runs (exit 1)", async () => {
      rmSync(ran, { force: true });
      standIn(dir.path, "stack's server", "reseed primary");
      standIn(replicaDir, "replica's server");
      const { lines, reporter: r } = collecting();
      assert.equal(await runReseedCommand(["--stack", "prod"], deps(elsewhere), r, r), EXIT.failed);
      assert.deepEqual(steps(), ["stack's server reseed check", "replica's server reseed stop", "stack's server reseed primary"]);
      assert.match(
        lines.join("\n"),
        new RegExp(`      stack's server: first line\\n[^]*reseed of prod FAILED on ${here.server.host.replace(/\./g, "\\.")} \\(reseed primary, exit 1\\): the primary is untouched and the app reads from it; .*run npm run reseed -- --stack prod again \\(it starts over\\)\\.`),
      );
    });

    it("the connection lost (ssh's exit 255): the reseed goes on on that server, and what running it again does there, with its log's path; no later step runs (exit 1)", async () => {
      rmSync(ran, { force: true });
      standIn(dir.path, "stack's server", "reseed", 255);
      const { lines, reporter: r } = collecting();
      assert.equal(await runReseedCommand(["--stack", "prod"], deps(here), r, r), EXIT.failed);
      assert.equal(
        lines.at(-1),
        `reseed of prod: the connection to ${here.server.host} failed or ended (ssh exit 255) during reseed: a reseed that started goes on on the server, its log in /run/lock/bbaegok-prod-replica-both.log; npm run reseed -- --stack prod again follows it to its end (or starts one, if none runs).`,
      );
      rmSync(ran, { force: true });
      standIn(dir.path, "stack's server");
      standIn(replicaDir, "replica's server", "reseed seed", 255);
      assert.equal(await runReseedCommand(["--stack", "prod"], deps(elsewhere), r, r), EXIT.failed);
      assert.deepEqual(steps(), ["stack's server reseed check", "replica's server reseed stop", "stack's server reseed primary", "replica's server reseed seed"]);
      assert.equal(
        lines.at(-1),
        "reseed of prod: the connection to replica.bbaegok.kr failed or ended (ssh exit 255) during reseed seed: a reseed that started goes on on the server, its log in /run/lock/bbaegok-prod-replica-replica.log; npm run reseed -- --stack prod again goes on from where it was cut (following the step if it still runs).",
      );
    });

    it("run again after a cut, a replica elsewhere's reseed goes on from where its run stopped, under the same name: the step still running followed, or the next one after a step that ended ok; a failed or finished run, or two runs mixed, start a new one", async () => {
      const RUN = "0a1b2c3d";
      const again = async (primary: object, replica: object) => {
        rmSync(ran, { force: true });
        standIn(dir.path, "stack's server");
        standIn(replicaDir, "replica's server");
        setLast(dir.path, primary);
        setLast(replicaDir, replica);
        const { lines, reporter: r } = collecting();
        try {
          assert.equal(await runReseedCommand(["--stack", "prod"], deps(elsewhere), r, r), EXIT.ok, lines.join("\n"));
        } finally {
          setLast(dir.path, undefined);
          setLast(replicaDir, undefined);
        }
        return { lines, ran: runs() };
      };
      const seeding = await again({ step: "primary", run: RUN, state: "ok" }, { step: "seed", run: RUN, state: "running" });
      assert.deepEqual(seeding.ran, [`replica's server reseed seed ${RUN}`, `stack's server reseed wait ${RUN}`, `replica's server reseed finish ${RUN}`]);
      assert.equal(seeding.lines[1], `reseed of prod: run ${RUN} was cut (a dropped connection?); its step seed still runs on replica.bbaegok.kr: following it, then going on from there`);
      const seeded = await again({ step: "primary", run: RUN, state: "ok" }, { step: "seed", run: RUN, state: "ok" });
      assert.deepEqual(seeded.ran, [`stack's server reseed wait ${RUN}`, `replica's server reseed finish ${RUN}`]);
      assert.match(seeded.lines[1]!, /its steps before wait ended ok: going on from there$/);
      for (const [primary, replica] of [
        [{ step: "primary", run: RUN, state: "ok" }, { step: "seed", run: RUN, state: "failed" }],
        [{ step: "primary", run: RUN, state: "ok" }, { step: "seed", run: RUN, state: "killed" }],
        [{ step: "wait", run: RUN, state: "ok" }, { step: "finish", run: RUN, state: "ok" }],
        [{ step: "primary", run: "ffffffff", state: "ok" }, { step: "seed", run: RUN, state: "running" }],
        [{ step: "primary", run: RUN, state: "failed" }, { step: "stop", run: RUN, state: "ok" }],
        [{}, {}],
      ]) {
        const fresh = await again(primary!, replica!);
        assert.equal(fresh.ran.length, 6, `${JSON.stringify([primary, replica])}: ${fresh.ran.join("; ")}`);
        assert.doesNotMatch(fresh.ran.join("\n"), new RegExp(RUN), "a new run took the old one's name");
        // A run that failed or was killed is said first: where it stopped and its log.
        const ended = [["stack's", primary!], ["replica's", replica!]].find(([, l]) => ["failed", "killed"].includes((l as { state?: string }).state ?? ""));
        const said = fresh.lines.filter((l) => l.includes("the last run"));
        if (!ended) assert.deepEqual(said, [], JSON.stringify([primary, replica]));
        else {
          const { step, state } = ended[1] as { step: string; state: string };
          const [server, log] = ended[0] === "stack's" ? ["home.bbaegok.kr", "primary"] : ["replica.bbaegok.kr", "replica"];
          const newRun = /reseed check ([0-9a-f]{8})$/.exec(fresh.ran[0]!)![1];
          assert.deepEqual(said, [
            `reseed of prod: the last run, ${RUN}, ${state === "failed" ? "failed" : "was killed"} at its ${step} step on ${server} (its log: /run/lock/bbaegok-prod-replica-${log}.log there, replaced once this run reaches that server); starting run ${newRun}`,
          ]);
        }
      }
    });
  });

  it("the rendered replica.sh takes its server's lock for what changes the databases: a reseed, setup, promote or retire while another holds it is refused at once, naming the holder; status does not wait for it, and names the holder while its process runs", () => {
    const dir = tempDir("replica-lock");
    try {
      const script = replicaScript({ stack: "prod", service: "bbaegok", database: replicatedDatabase("postgres"), replica: { maxLagSeconds: 30 }, primaryContainer: "bbaegok-prod-db", replicaContainer: "bbaegok-prod-db-replica", slot: "replica_1" });
      writeFileSync(join(dir.path, "replica.sh"), script, { mode: 0o755 });
      const env = { ...process.env, REPLICA_LOCK_DIR: dir.path, REPLICA_DB_EXEC: "false" };
      // The first command: the lock held, and what it wrote to say who holds it, as replica.sh does.
      const lock = join(dir.path, "bbaegok-prod-replica-both.lock");
      // A pid no process can have (above the kernel's 4,194,304 limit): 4242 once was the refused command's own bash.
      writeFileSync(lock, "reseed (pid 999999999, since 2026-12-06T03:00:00Z)\n");
      for (const command of ["reseed", "setup", "promote", "retire"]) {
        const held = spawnSync("flock", [lock, "bash", join(dir.path, "replica.sh"), command], { env, encoding: "utf8" });
        // flock's own command holds it; the script's flock -n on a second descriptor is then refused.
        assert.equal(held.status, 1, `${command}: ${held.stderr}`);
        assert.match(held.stderr, new RegExp(`another replica\\.sh command is running on this server \\(reseed \\(pid 999999999, since 2026-12-06T03:00:00Z\\)\\): ${command} refused; run it again once that one has ended`));
      }
      // Status does not wait for the lock, and its reason names the command holding it while that one's process runs
      // the script (a stand-in process with the script in its command line, here); not once it has ended, nor when its
      // pid is another program's (this test's own). `; true` keeps bash from exec'ing sleep in its own place.
      const holder = spawn("bash", ["-c", "sleep 60; true", join(dir.path, "replica.sh")], { stdio: "ignore", detached: true });
      try {
        writeFileSync(lock, `reseed (pid ${holder.pid}, since 2026-12-06T03:00:00Z)\n`);
        const status = spawnSync("flock", [lock, "bash", join(dir.path, "replica.sh"), "status"], { env, encoding: "utf8", timeout: 20_000 });
        assert.doesNotMatch(status.stderr, /another replica\.sh command/);
        assert.equal(status.status, 0, status.stderr);
        const reason = (JSON.parse(status.stdout) as { reason: string }).reason;
        assert.match(reason, new RegExp(`^the replica does not answer: .*; replica\\.sh reseed \\(pid ${holder.pid}, since 2026-12-06T03:00:00Z\\) is running on this server$`));
      } finally {
        process.kill(-holder.pid!); // its sleep too
      }
      // A dead holder's pid reused by the status process itself (exec keeps the pid): not a holder either.
      const self = spawnSync("bash", ["-c", `echo "reseed (pid $$, since 2026-12-06T03:00:00Z)" >"$1"; exec bash "$2" status`, "self", lock, join(dir.path, "replica.sh")], { env, encoding: "utf8", timeout: 20_000 });
      assert.equal(self.status, 0, self.stderr);
      assert.doesNotMatch(self.stdout, /is running on this server/, "the status process took itself for the holder");
      for (const pid of [holder.pid, process.pid, 999_999_999]) {
        writeFileSync(lock, `reseed (pid ${pid}, since 2026-12-06T03:00:00Z)\n`);
        const ended = spawnSync("bash", [join(dir.path, "replica.sh"), "status"], { env, encoding: "utf8", timeout: 20_000 });
        assert.doesNotMatch(ended.stdout, /is running on this server/, `pid ${pid}`);
        // A holder gone is no error: nothing of its /proc entry on stderr (the backup's log, status' output).
        assert.doesNotMatch(ended.stderr, /\/proc\//, `pid ${pid}`);
      }
      // Free, the lock is taken and says who holds it.
      const free = spawnSync("bash", [join(dir.path, "replica.sh"), "retire"], { env: { ...env, RETIRE_WAIT_SECONDS: "0" }, encoding: "utf8" });
      assert.doesNotMatch(free.stderr, /another replica\.sh command/);
      assert.match(readFileSync(lock, "utf8"), /^retire \(pid \d+, since \S+Z\)$/m);
    } finally {
      dir.remove();
    }
  });

  it("the rendered replica.sh reseed runs detached from its session: the log in a file beside the lock; another command meanwhile refused, naming it; the follower killed, it runs on; killed itself (no exit status), its follower says so and exits 1", async () => {
    const dir = tempDir("replica-detached");
    try {
      const script = join(dir.path, "replica.sh");
      writeFileSync(script, replicaScript({ stack: "prod", service: "bbaegok", database: replicatedDatabase("mariadb"), replica: { maxLagSeconds: 30 }, primaryContainer: "bbaegok-prod-db", replicaContainer: "bbaegok-prod-db-replica", slot: "replica_1" }), { mode: 0o755 });
      // Every query hangs (a primary that does not answer yet): the reseed stays in its first step.
      const hang = join(dir.path, "hang");
      writeFileSync(hang, "#!/bin/sh\nexec sleep 60\n", { mode: 0o755 });
      const env = { ...process.env, REPLICA_LOCK_DIR: dir.path, REPLICA_DB_EXEC: hang };
      const lock = join(dir.path, "bbaegok-prod-replica-both.lock");
      const follower = spawn("bash", [script, "reseed"], { env, stdio: ["ignore", "ignore", "pipe"], detached: true });
      const followerEnded = new Promise((resolve) => follower.once("close", resolve));
      let pid = 0;
      for (let i = 0; i < 100 && !pid; i++) {
        await new Promise((r) => setTimeout(r, 100));
        pid = Number(/^reseed \(pid (\d+), since \S+Z\)$/m.exec(readFileSync(lock, "utf8"))?.[1] ?? 0);
      }
      assert.ok(pid && pid !== follower.pid, "the lock does not name a detached run");
      const setup = spawnSync("bash", [script, "setup"], { env, encoding: "utf8", timeout: 20_000 });
      assert.equal(setup.status, 1, setup.stderr);
      assert.match(setup.stderr, new RegExp(`another replica\\.sh command is running on this server \\(reseed \\(pid ${pid}, `));
      const last = () => JSON.parse(spawnSync("bash", [script, "reseed", "last"], { env, encoding: "utf8", timeout: 20_000 }).stdout) as object;
      assert.deepEqual(last(), { step: "all", run: "", state: "running" });
      // Its session killed: the detached run goes on.
      process.kill(-follower.pid!, "SIGKILL");
      await followerEnded;
      process.kill(pid, 0);
      assert.deepEqual(last(), { step: "all", run: "", state: "running" });
      // Followed again, then killed itself: no status to exit with.
      let stderr = "";
      const again = spawn("bash", [script, "reseed"], { env, stdio: ["ignore", "ignore", "pipe"] });
      again.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const status = new Promise<number | null>((resolve) => again.once("close", resolve));
      for (let i = 0; i < 100 && !/following its log/.test(stderr); i++) await new Promise((r) => setTimeout(r, 100));
      process.kill(-pid, "SIGKILL"); // its session's group: the run and its hung query
      assert.equal(await status, 1, stderr);
      assert.match(stderr, new RegExp(`replica\\.sh reseed \\(pid ${pid}, since \\S+Z\\) is running on this server: following its log to its end`));
      assert.match(stderr, /reseed \(pid \d+\) ended without an exit status \(killed\?\): the log above is where it stopped; run npm run reseed again/);
      assert.equal(statSync(join(dir.path, "bbaegok-prod-replica-both.log")).mode & 0o777, 0o600, "the log beside the lock is not root's alone");
      assert.deepEqual(last(), { step: "all", run: "", state: "killed" });
    } finally {
      dir.remove();
    }
  });

  it("the rendered replica.sh status, while no command runs, says a last reseed that failed or was killed, when, and where its log is; not one that ended ok", () => {
    const dir = tempDir("replica-last-status");
    try {
      const env = { ...process.env, REPLICA_LOCK_DIR: dir.path, REPLICA_DB_EXEC: "false" };
      const reason = (thisServer: "both" | "primary") => {
        const script = join(dir.path, `replica-${thisServer}.sh`);
        writeFileSync(script, replicaScript({ stack: "prod", service: "bbaegok", database: replicatedDatabase("postgres"), replica: { maxLagSeconds: 30 }, primaryContainer: "bbaegok-prod-db", replicaContainer: "bbaegok-prod-db-replica", slot: "replica_1", thisServer }), { mode: 0o755 });
        const status = spawnSync("bash", [script, "status"], { env, encoding: "utf8", timeout: 20_000 });
        assert.equal(status.status, 0, status.stderr);
        return (JSON.parse(status.stdout) as { reason: string }).reason;
      };
      const record = (thisServer: string, args: string, status?: number) => {
        const file = (ext: string) => join(dir.path, `bbaegok-prod-replica-${thisServer}.${ext}`);
        for (const ext of ["lock", "run", "status"]) rmSync(file(ext), { force: true });
        writeFileSync(file("run"), `${args}\n`);
        writeFileSync(file("lock"), `${args} (pid 999999999, since 2026-12-06T03:00:00Z)\n`);
        if (status !== undefined) writeFileSync(file("status"), `${status}\n`);
      };
      const log = join(dir.path, "bbaegok-prod-replica-both.log");
      assert.doesNotMatch(reason("both"), /last reseed/, "no reseed ever ran");
      record("both", "reseed", 1);
      assert.match(reason("both"), new RegExp(`^the replica does not answer: .*; the last reseed here failed at \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ: its log is ${log} on this server$`));
      record("both", "reseed");
      assert.match(reason("both"), /; the last reseed here was killed \(it started at \S+Z\): its log is /);
      record("both", "reseed", 0);
      assert.doesNotMatch(reason("both"), /last reseed/, "one that ended ok");
      // A replica elsewhere's server: the step and the run it belongs to.
      record("primary", "reseed wait a1a1a1a1", 1);
      assert.match(reason("primary"), new RegExp(`; the last reseed here \\(its wait step, run a1a1a1a1\\) failed at \\S+Z: its log is ${join(dir.path, "bbaegok-prod-replica-primary.log")} on this server$`));
    } finally {
      dir.remove();
    }
  });

  it("the rendered replica.sh runs a named run's step only after that run's step before it on this server ended ok: two runs' steps never alternate (split on both servers, both are refused); the refused step leaves the record as it was", () => {
    const dir = tempDir("replica-order");
    try {
      const [a, b] = ["a1a1a1a1", "b2b2b2b2"];
      // Every query fails loudly: a step let through fails on them; a refused one never reaches one.
      const reached = join(dir.path, "reached");
      writeFileSync(reached, '#!/bin/sh\necho "query: reached" >&2\nexit 1\n', { mode: 0o755 });
      const env = { ...process.env, REPLICA_LOCK_DIR: dir.path, REPLICA_DB_EXEC: reached, REPLICA_RESEED_WAIT_SECONDS: "1" };
      const side = (thisServer: "primary" | "replica") => {
        const script = join(dir.path, `replica-${thisServer}.sh`);
        writeFileSync(script, replicaScript({ stack: "prod", service: "bbaegok", database: replicatedDatabase("mariadb"), replica: { maxLagSeconds: 30 }, primaryContainer: "bbaegok-prod-db", replicaContainer: "bbaegok-prod-db-replica", slot: "replica_1", thisServer }), { mode: 0o755 });
        const file = (ext: string) => join(dir.path, `bbaegok-prod-replica-${thisServer}.${ext}`);
        return {
          // This server's last step, as a detached run leaves it (its holder long gone).
          record(args: string | undefined, status?: number) {
            for (const ext of ["lock", "run", "status", "log"]) rmSync(file(ext), { force: true });
            if (!args) return;
            writeFileSync(file("run"), `${args}\n`);
            writeFileSync(file("lock"), `${args} (pid 999999999, since 2026-12-06T03:00:00Z)\n`);
            if (status !== undefined) writeFileSync(file("status"), `${status}\n`);
          },
          step: (...args: string[]) => spawnSync("bash", [script, "reseed", ...args], { env, encoding: "utf8", timeout: 30_000 }),
          run: () => readFileSync(file("run"), "utf8").trim(),
        };
      };
      const refused = (result: ReturnType<typeof spawnSync>, what: string, before: string) => {
        assert.equal(result.status, 1, `${what}: ${result.stderr}`);
        assert.match(String(result.stderr), new RegExp(`reseed ${what}: this server's last reseed step is .*, not ${before} of run ${what.split(" ")[1]} ended ok: another run's step came between`));
        assert.doesNotMatch(String(result.stderr), /reached|No such file/, `${what} touched a database`);
      };
      // Let through: the step ran (and failed, on its stand-in queries), its record is now this server's last.
      const letThrough = (server: { step: (...args: string[]) => ReturnType<typeof spawnSync>; run: () => string }, ...args: string[]) => {
        const result = server.step(...args);
        assert.doesNotMatch(String(result.stderr), /this server's last reseed step|No such file/, args.join(" "));
        assert.equal(result.status, 1, String(result.stderr));
        assert.equal(server.run(), ["reseed", ...args].join(" "), `${args.join(" ")} did not run`);
      };
      const primary = side("primary");
      const replica = side("replica");
      for (const [server, first, second, third] of [[primary, "check", "primary", "wait"], [replica, "stop", "seed", "finish"]] as const) {
        // In order, one run: each step after its run's step before.
        server.record(`reseed ${first} ${a}`, 0);
        letThrough(server, second, a);
        server.record(`reseed ${second} ${a}`, 0);
        letThrough(server, third, a);
        // Another run's first step came between (a second npm run reseed): the first run's next step is refused, the record kept.
        for (const [record, status] of [[`reseed ${first} ${b}`, 0], [`reseed ${first} ${a}`, 1], [`reseed ${first} ${a}`, undefined], [`reseed ${third} ${a}`, 0], [undefined, undefined]] as const) {
          server.record(record, status);
          refused(server.step(second, a), `${second} ${a}`, first);
          if (record) assert.equal(server.run(), record);
        }
        // A run's first step on this server goes after anything; so does a step without a run's name (by hand).
        server.record(`reseed ${second} ${b}`, 0);
        letThrough(server, first, a);
        server.record(`reseed ${first} ${b}`, 0);
        letThrough(server, third);
      }
      // Two runs started at once, their steps split on both servers (each step let through is taken as ended ok):
      // neither goes on past the split, so no seeding follows the other run's stop.
      const ok = (server: typeof primary, ...args: string[]) => {
        letThrough(server, ...args);
        server.record(["reseed", ...args].join(" "), 0);
      };
      primary.record(undefined);
      replica.record(undefined);
      ok(primary, "check", b);
      ok(primary, "check", a);
      ok(replica, "stop", a);
      ok(replica, "stop", b);
      ok(primary, "primary", a);
      refused(primary.step("primary", b), `primary ${b}`, "check");
      refused(replica.step("seed", a), `seed ${a}`, "stop");
      assert.deepEqual([primary.run(), replica.run()], [`reseed primary ${a}`, `reseed stop ${b}`]);
    } finally {
      dir.remove();
    }
  });

  it("the rendered replica.sh reseed refuses a promoted replica, all steps at once on either server of a replica elsewhere, and a step on the wrong server: before it touches a container", () => {
    const run = (database: StackConfig["database"], thisServer: "both" | "primary" | "replica", ...args: string[]) => {
      const script = replicaScript({ stack: "prod", service: "bbaegok", database, replica: { maxLagSeconds: 30 }, primaryContainer: "bbaegok-prod-db", replicaContainer: "bbaegok-prod-db-replica", slot: "replica_1", thisServer });
      // docker fails loudly: the refusal must come first.
      return spawnSync("bash", ["-c", 'docker() { echo "docker $*: reached" >&2; exit 99; }; export -f docker; bash -s reseed "$@"', "reseed", ...args], { input: script, encoding: "utf8" });
    };
    for (const engine of ["mariadb", "postgres"] as const) {
      const promoted = run({ ...replicatedDatabase(engine), primary: "replica" }, "both");
      assert.equal(promoted.status, 1, promoted.stderr);
      assert.match(promoted.stderr, /bbaegok-prod-db-replica is the primary \(promoted\); seeding it again from bbaegok-prod-db, which is out of date, would lose its writes: refused/);
      for (const side of ["primary", "replica"] as const) {
        const all = run(replicatedDatabase(engine), side);
        assert.equal(all.status, 1, all.stderr);
        assert.match(all.stderr, /reseed needs bbaegok-prod-db and bbaegok-prod-db-replica on this server; the replica is on another server: npm run reseed runs its steps on each server/);
      }
      const badName = run(replicatedDatabase(engine), "replica", "seed", "not-a-run");
      assert.equal(badName.status, 2, badName.stderr);
      assert.match(badName.stderr, /reseed seed not-a-run: expected a run's name of 8 to 32 hexadecimal digits/);
      for (const [side, step] of [["primary", "stop"], ["primary", "seed"], ["primary", "finish"], ["replica", "check"], ["replica", "primary"], ["replica", "wait"], ["both", "bogus"]] as const) {
        const wrong = run(replicatedDatabase(engine), side, step);
        assert.equal(wrong.status, 2, `${side} ${step}: ${wrong.stderr}`);
        assert.match(wrong.stderr, new RegExp(`reseed ${step} is not a step this server runs \\(${side}\\): check, primary and wait run on the primary's server; stop, seed and finish on the replica's`));
      }
    }
  });
});

describe("the stack file promote and failback write (writePromotion)", () => {
  it("sets database.primary under the key as the file spells it (prefixed or not), and puts the file back", () => {
    const dir = tempDir("write-promotion");
    try {
      for (const key of ["bbaegok-infra:database", "database"]) {
        const path = join(dir.path, "Pulumi.prod.yaml");
        const before = `config:\n  ${key}:\n    engine: mariadb\n    primary: original\n`;
        writeFileSync(path, before);
        const restore = writePromotion(path, "replica");
        const written = readStackFile(dir.path, "prod");
        assert.equal(JSON.parse(written.config["bbaegok-infra:database"]!).primary, "replica", key);
        assert.equal(readFileSync(path, "utf8").match(/database:/g)?.length, 1, `${key}: a second database key`);
        restore();
        assert.equal(readFileSync(path, "utf8"), before);
      }
    } finally {
      dir.remove();
    }
  });
});
