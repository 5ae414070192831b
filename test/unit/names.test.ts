// Names and paths on the server are built in one place (infra/server/render.ts:
// containerPrefix, serverProxyDir, stackNames). The first test pins what they
// are (literals: the server already has these names); the second keeps every
// other source file from building them again.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { stackBackupTargets } from "../../infra/backup/render.js";
import { ownerEndpoint } from "../../infra/proxy/contract.js";
import { containerPrefix, serverProxyDir, stackNames } from "../../infra/server/render.js";
import { loadStack } from "../../stacks/config/load.js";
import { REPO } from "../support/project.js";

describe("the names module", () => {
  it("gives a stack's containers, volume, networks and paths on the server", () => {
    assert.deepEqual(stackNames("bbaegok", "prod", "/srv/bbaegok"), {
      prefix: "bbaegok-prod",
      databaseContainer: "bbaegok-prod-db",
      databaseVolume: "bbaegok-prod-db-data",
      metabaseDatabaseContainer: "bbaegok-prod-metabase-db",
      proxyDir: "/srv/bbaegok/proxy",
      edgeNetwork: "bbaegok-prod-edge",
      dataNetwork: "bbaegok-prod-data",
      stackDir: "/srv/bbaegok/prod",
      secretsDir: "/srv/bbaegok/prod/secrets",
      deployHistory: "/srv/bbaegok/prod/deploy-history.jsonl",
    });
    assert.equal(containerPrefix("bbaegok", "staging"), "bbaegok-staging");
    assert.equal(serverProxyDir("/srv/bbaegok"), "/srv/bbaegok/proxy");
  });

  it("is what backups and the proxy's contract use", () => {
    const { config } = loadStack("prod");
    const names = stackNames(config.service, "prod", config.server.dataDir);
    assert.equal(stackBackupTargets(config, "prod")[0]!.container, names.databaseContainer);
    assert.equal(ownerEndpoint(config, { containerId: "c", network: "n" }).dir, names.proxyDir);
  });

  it("no other tracked source file of infra/, ops/, stacks/ builds these strings itself", () => {
    const patterns: [RegExp, string][] = [
      [/prefix\}-(metabase-)?db`/, "a database container name (stackNames())"],
      [/dataDir\}\/proxy/, "the proxy's directory (serverProxyDir)"],
      [/\$\{[\w.]*service\}-\$\{[\w.]*stack\}/, "the <service>-<stack> prefix (containerPrefix or stackNames().prefix)"],
      [/hostHeader \?\? [\w.]*domains\.api/, "the health check's Host (healthCheckHost)"],
      [/metabase\.enabled && [\w.]*domains\.metabase/, "the public host list (publicHostNames)"],
    ];
    const files = execFileSync("git", ["ls-files", "infra", "ops", "stacks"], { cwd: REPO, encoding: "utf8" })
      .split("\n")
      .filter((f) => f.endsWith(".ts") && f !== "infra/server/render.ts");
    assert.ok(files.length > 20, `expected the program's source files, got ${files.length}`);
    const offenders: string[] = [];
    for (const file of files) {
      for (const [i, line] of readFileSync(join(REPO, file), "utf8").split("\n").entries()) {
        if (/^\s*(\/?\*|\/\/)/.test(line)) continue;
        for (const [pattern, what] of patterns) if (pattern.test(line)) offenders.push(`${file}:${i + 1}: builds ${what}: ${line.trim()}`);
      }
    }
    assert.deepEqual(offenders, []);
  });
});
