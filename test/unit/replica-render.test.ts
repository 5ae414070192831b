// The replica's renderers on their own: the script is shellcheck-clean for
// every engine, and database.replicas is validated with errors naming the key.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { postgresReplicaEntrypoint, replicaScript, replicationPgpass } from "../../infra/replica/render.js";
import { readStackFile } from "../../stacks/config/files.js";
import { StackConfigError, rawFromPulumiConfig, validateStackConfig } from "../../stacks/config/validate.js";
import { REPO } from "../support/project.js";
import { replicatedDatabase } from "../support/replica-harness.js";
import { requireCommand } from "../support/system.js";

function shellcheck(name: string, script: string): void {
  const r = spawnSync(requireCommand("shellcheck", "shellcheck"), ["--shell=bash", "--severity=style", "-"], { input: script, encoding: "utf8" });
  assert.equal(r.status, 0, `${name} is not shellcheck-clean:\n${r.stdout}${r.stderr}`);
}

describe("the replica's scripts", () => {
  for (const engine of ["mariadb", "mysql", "postgres"] as const) {
    it(`${engine}: replica.sh is shellcheck-clean`, () => {
      shellcheck(`replica.sh (${engine})`, replicaScript({ stack: "prod", service: "bbaegok", database: replicatedDatabase(engine), replica: { maxLagSeconds: 300 }, primaryContainer: "bbaegok-prod-db", replicaContainer: "bbaegok-prod-db-replica", slot: "replica_1" }));
    });
  }
  it("the PostgreSQL entrypoint is shellcheck-clean and holds no password", () => {
    const script = postgresReplicaEntrypoint({ engine: "postgres", primaryHost: "db", primaryPort: 5432, secretsDir: "/run/secrets", slot: "replica_1" });
    shellcheck("entrypoint.sh", script);
    assert.match(script, /PGPASSFILE='\/run\/secrets\/replication.pgpass' pg_basebackup/);
  });
  it("libpq's password file escapes : and \\", () => {
    assert.equal(replicationPgpass("a:b\\c"), "*:*:*:replicator:a\\:b\\\\c\n");
  });
});

describe("database.replicas in the stack file", () => {
  const prod = () => rawFromPulumiConfig(readStackFile(REPO, "prod").config) as { database: Record<string, unknown> };
  const problems = (replicas: unknown): string[] => {
    const raw = prod();
    raw.database["replicas"] = replicas;
    try {
      validateStackConfig("prod", raw, []);
    } catch (err) {
      assert.ok(err instanceof StackConfigError);
      return err.message.split("\n").slice(1).map((l) => l.trim());
    }
    return [];
  };

  it("is empty by default, and takes one replica with its lag bound", () => {
    assert.deepEqual(validateStackConfig("prod", prod(), []).database.replicas, []);
    assert.deepEqual(problems([{ maxLagSeconds: 60 }]), []);
  });
  it("refuses a second replica, an unknown key and a bad bound, naming the key", () => {
    assert.deepEqual(problems([{}, {}]), ["- Pulumi.prod.yaml: bbaegok-infra:database.replicas = [{},{}]: expected at most one replica (one is supported so far)"]);
    assert.match(problems([{ lag: 5 }]).join("\n"), /bbaegok-infra:database\.replicas\[0\].*lag/);
    assert.match(problems([{ maxLagSeconds: 0 }]).join("\n"), /bbaegok-infra:database\.replicas\[0\]\.maxLagSeconds = 0: expected 1-86400 seconds/);
  });
});
