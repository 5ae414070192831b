// The bodies the Metabase setup script sends (infra/metabase/render.ts), per
// engine: valid JSON once the shell has put the secrets in, the data source's
// engine and details as Metabase's POST /api/database takes them. The script
// itself runs against the Metabase stand-in on the test Docker host
// (test/docker/images.test.ts); MySQL, whose login needs an option there, does
// not run here.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setupScript } from "../../infra/metabase/render.js";
import type { DatabaseEngine } from "../../stacks/config/schema.js";

/** The JSON bodies of the script's requests (its heredocs), each `$(cat <file>)` replaced as the shell would with a value. */
function bodies(engine: DatabaseEngine): Record<string, unknown>[] {
  const script = setupScript({ engine, databaseName: "bbaegok", databasePort: engine === "postgres" ? 5432 : 3306, adminEmail: "admin@bbaegok.kr", siteName: "bbaegok" });
  return [...script.matchAll(/<<JSON[^\n]*\n([\s\S]*?)\nJSON\n/g)].map((m) => JSON.parse(m[1]!.replace(/\$\(cat [^)]+\)/g, "secret").replace(/\$token/g, "token")) as Record<string, unknown>);
}

describe("the Metabase setup script's requests", () => {
  it("are JSON for every engine: the login, the setup, the data source", () => {
    for (const engine of ["mariadb", "mysql", "postgres"] as const) assert.equal(bodies(engine).length, 3, engine);
  });

  it("add the data source with Metabase's engine name and the read-only login; MySQL's login may fetch the server's RSA key (caching_sha2_password without TLS)", () => {
    const source = (engine: DatabaseEngine) => bodies(engine).find((b) => "details" in b) as { engine: string; details: Record<string, unknown> };
    assert.deepEqual(source("mariadb"), { name: "bbaegok", engine: "mysql", details: { host: "db", port: 3306, dbname: "bbaegok", user: "metabase_ro", password: "secret" } });
    assert.deepEqual(source("postgres").details, { host: "db", port: 5432, dbname: "bbaegok", user: "metabase_ro", password: "secret" });
    assert.equal(source("postgres").engine, "postgres");
    assert.deepEqual(source("mysql"), {
      name: "bbaegok",
      engine: "mysql",
      details: { host: "db", port: 3306, dbname: "bbaegok", user: "metabase_ro", password: "secret", "additional-options": "allowPublicKeyRetrieval=true" },
    });
  });
});
