// npm run reseed (ops/reseed.ts): when it refuses, touching nothing, and how
// it runs the server's replica.sh reseed: its log shown line by line as it
// comes, its exit status passed on. The server's script here is a stand-in
// that logs and exits as told; the real one runs against real MariaDB in
// test/real/replica-cannot-catch-up.test.ts and, both engines in real
// containers, in test/docker/replica.test.ts. And the rendered script's own
// refusals, which come before it touches any container.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { replicaNames, replicaScript } from "../../infra/replica/render.js";
import { stackNames } from "../../infra/server/render.js";
import { localShell } from "../../ops/deploy/server.js";
import { EXIT } from "../../ops/exit.js";
import { runReseedCommand, type ReseedDeps } from "../../ops/reseed.js";
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

const noServer = (config: StackConfig): ReseedDeps => ({ readConfig: () => config, shell: () => assert.fail("the server was reached"), privilege: "none" });

describe("npm run reseed", () => {
  it("refuses bad usage, a stack without a replica, one promoted or promoting, and one on another server (exit 2), reaching no server", async () => {
    const replica = { maxLagSeconds: 30, readTimeoutSeconds: 30 };
    const cases: [string[], ReseedDeps, RegExp][] = [
      [[], noServer(prod({ replicas: [replica] })), /--stack is required\nusage: npm run reseed -- --stack <name>/],
      [["--stack", "prod", "--force"], noServer(prod({ replicas: [replica] })), /Unknown option '--force'/],
      [["--stack", "prod"], noServer(prod({ replicas: [] })), /Pulumi\.prod\.yaml lists no database\.replicas: there is no replica to seed/],
      [["--stack", "prod"], noServer(prod({ replicas: [replica], primary: "replica" })), /says database\.primary: replica: the replica is \(or is becoming\) the primary; seeding it again from the original would lose its writes\. Nothing was done/],
      [["--stack", "prod"], noServer(prod({ replicas: [replica], primary: "promoting" })), /says database\.primary: promoting/],
      [["--stack", "prod"], noServer(prod({ replicas: [ELSEWHERE] })), /replica is on another server \(database\.replicas\[0\]\.server\): seeding it again in place is not supported yet; take it out of database\.replicas, pulumi up, put it back, pulumi up/],
    ];
    for (const [argv, deps, message] of cases) {
      const { lines, reporter: r } = reporter();
      assert.equal(await runReseedCommand(argv, deps, r, r), EXIT.usage, argv.join(" "));
      assert.match(lines.join("\n"), message);
    }
  });

  describe("on the server (a stand-in replica.sh at the stack's path)", () => {
    const dir = tempDir("reseed-command");
    const config = prod({ replicas: [{ maxLagSeconds: 30, readTimeoutSeconds: 30 }] }, dir.path);
    const script = replicaNames(stackNames(config.service, "prod", config.server.dataDir).prefix).script(stackNames(config.service, "prod", config.server.dataDir).stackDir);
    /** The stand-in: logs two lines a moment apart (on stderr, as replica.sh logs), records its argument, exits `status`. */
    const standIn = (status: number) => {
      mkdirSync(dirname(script), { recursive: true });
      writeFileSync(script, `echo "$1" > "${dir.path}/ran"\necho "first line" >&2\nsleep 0.3\necho "last line, no newline" | tr -d '\\n' >&2\nexit ${status}\n`, { mode: 0o755 });
    };
    const deps: ReseedDeps = { readConfig: () => config, shell: () => localShell(), privilege: "none" };

    it("runs replica.sh reseed, shows each line of its log as it comes, and says the replica is seeded (exit 0)", async () => {
      standIn(0);
      const shown: { text: string; at: number }[] = [];
      const out = { line: (text: string) => void shown.push({ text, at: Date.now() }) };
      assert.equal(await runReseedCommand(["--stack", "prod"], deps, out, out), EXIT.ok);
      assert.equal(spawnSync("cat", [join(dir.path, "ran")], { encoding: "utf8" }).stdout, "reseed\n");
      assert.deepEqual(
        shown.map((l) => l.text),
        [
          "reseed of prod: bbaegok-prod-db-replica is seeded again from the primary (replica.sh reseed on this machine); the app reads from the primary meanwhile",
          "      first line",
          "      last line, no newline",
          "prod: bbaegok-prod-db-replica is seeded again and caught up; the app reads from it again.",
        ],
      );
      // Shown as it came, not all at the end: the first line before the script's pause.
      assert.ok(shown[2]!.at - shown[1]!.at >= 200, `the log was shown at the end: ${JSON.stringify(shown)}`);
    });

    it("a failure on the server: its log, then what is left and what to do (exit 1)", async () => {
      standIn(1);
      const { lines, reporter: r } = reporter();
      assert.equal(await runReseedCommand(["--stack", "prod"], deps, r, r), EXIT.failed);
      assert.match(lines.join("\n"), /      first line\n[^]*reseed of prod FAILED on the server \(exit 1\): the primary is untouched and the app reads from it; .*run npm run reseed -- --stack prod again \(it starts over\)\./);
      dir.remove();
    });
  });

  it("the rendered replica.sh reseed refuses a promoted replica and, on either server of a replica elsewhere, any: before it touches a container (exit 1)", () => {
    const run = (database: StackConfig["database"], thisServer: "both" | "primary" | "replica") => {
      const script = replicaScript({ stack: "prod", service: "bbaegok", database, replica: { maxLagSeconds: 30 }, primaryContainer: "bbaegok-prod-db", replicaContainer: "bbaegok-prod-db-replica", slot: "replica_1", thisServer });
      // docker on PATH fails loudly: the refusal must come first.
      return spawnSync("bash", ["-c", 'docker() { echo "docker $*: reached" >&2; exit 99; }; export -f docker; bash -s reseed', "reseed"], { input: script, encoding: "utf8" });
    };
    for (const engine of ["mariadb", "postgres"] as const) {
      const promoted = run({ ...replicatedDatabase(engine), primary: "replica" }, "both");
      assert.equal(promoted.status, 1, promoted.stderr);
      assert.match(promoted.stderr, /bbaegok-prod-db-replica is the primary \(promoted\); seeding it again from bbaegok-prod-db, which is out of date, would lose its writes: refused/);
      for (const side of ["primary", "replica"] as const) {
        const elsewhere = run(replicatedDatabase(engine), side);
        assert.equal(elsewhere.status, 1, elsewhere.stderr);
        assert.match(elsewhere.stderr, /reseed needs bbaegok-prod-db and bbaegok-prod-db-replica on this server; the replica is on another server: refused/);
      }
    }
  });
});
