// Metabase on the prod stack, planned with the real program: on the stack's
// networks, no published port, its database on a protected volume, every
// secret a file and never in clear.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MOCK_SECRET_PREFIX } from "../../ops/offline/mocks.js";
import { violations } from "../../policy/rules.js";
import { planInChild } from "../support/project.js";

describe("Metabase on prod", () => {
  const plan = planInChild("prod");
  const container = (name: string) => plan.resources.find((r) => r.type === "docker:index/container:Container" && r.inputs["name"] === name);
  const metabase = container("bbaegok-prod-metabase");
  const appDb = container("bbaegok-prod-metabase-db");

  it("runs Metabase and its PostgreSQL application database, pinned", () => {
    assert.ok(metabase && appDb);
    const images = plan.resources.filter((r) => r.type === "docker:index/remoteImage:RemoteImage").map((r) => r.inputs["name"]);
    assert.ok(images.includes("metabase/metabase:v0.56.9") && images.includes("postgres:16.13"), String(images));
    assert.ok((metabase!.inputs["envs"] as string[]).includes("MB_DB_TYPE=postgres"), "Metabase would use the embedded H2");
  });

  it("sits on the stack's networks and publishes no port", () => {
    const networks = (r: typeof metabase) => (r!.inputs["networksAdvanced"] as { name: string }[]).map((n) => n.name).sort();
    assert.deepEqual(networks(metabase), ["bbaegok-prod-data", "bbaegok-prod-edge"]);
    assert.deepEqual(networks(appDb), ["bbaegok-prod-data"]);
    const edge = (metabase!.inputs["networksAdvanced"] as { name: string; ipv4Address?: string }[]).find((n) => n.name === "bbaegok-prod-edge");
    assert.equal(edge?.ipv4Address, "172.30.10.20", "Metabase is not at the fixed address the proxy sends it requests");
    assert.equal(metabase!.inputs["ports"], undefined);
    assert.equal(appDb!.inputs["ports"], undefined);
    assert.deepEqual(violations(plan.resources), []);
  });

  it("is served only through the proxy, at its own host name with its own record and certificate", () => {
    const host = "metabase.bbaegok.kr";
    const file = (suffix: string) => plan.resources.find((r) => r.type === "bbaegok:server:File" && String(r.inputs["path"]).endsWith(suffix));
    const conf = String(file("/proposed/prod/conf.d/prod.conf")?.inputs["content"]);
    assert.match(conf, new RegExp(`server_name ${host.replace(/\./g, "\\.")};`));
    assert.match(conf.slice(conf.indexOf(`server_name ${host};`)), /proxy_pass http:\/\/bbaegok_prod_metabase;/);
    // Its upstream group is its fixed address on the edge network.
    assert.match(conf, /upstream bbaegok_prod_metabase \{\s+server 172\.30\.10\.20:3000;/);
    const record = plan.resources.find((r) => r.type === "cloudflare:index/dnsRecord:DnsRecord" && r.inputs["name"] === host);
    assert.ok(record, "no DNS record for Metabase");
    assert.equal(record.inputs["proxied"], true);
    const certificate = plan.resources.find((r) => r.type === "cloudflare:index/originCaCertificate:OriginCaCertificate");
    assert.ok((certificate?.inputs["hostnames"] as string[]).includes(host), "the certificate does not cover Metabase");
  });

  it("is in the stack's backups, as its own database", () => {
    const script = plan.resources.find((r) => r.type === "bbaegok:server:File" && String(r.inputs["path"]).endsWith("/prod/backup/backup.sh"));
    assert.match(String(script?.inputs["content"]), /'metabase postgres bbaegok-prod-metabase-db metabase /);
  });

  it("keeps its application data on a protected, retained volume", () => {
    const volume = plan.resources.find((r) => r.type === "docker:index/volume:Volume" && r.inputs["name"] === "bbaegok-prod-metabase-db-data");
    assert.ok(volume);
    assert.equal(volume.options.protect, true);
    assert.equal(volume.options.retainOnDelete, true);
  });

  it("gets the encryption key and passwords as 0400 files, secret in the plan", () => {
    const files = plan.resources.filter((r) => r.type === "bbaegok:server:File" && String(r.inputs["path"]).includes("/secrets/metabase"));
    const paths = files.map((f) => String(f.inputs["path"])).sort();
    assert.deepEqual(paths, [
      "/srv/bbaegok/prod/secrets/metabase-db/db_password",
      "/srv/bbaegok/prod/secrets/metabase/admin_password",
      "/srv/bbaegok/prod/secrets/metabase/app_db_password",
      "/srv/bbaegok/prod/secrets/metabase/encryption_key",
      "/srv/bbaegok/prod/secrets/metabase/readonly_password",
    ]);
    for (const f of files) {
      assert.equal(f.inputs["content"], "[secret]");
      assert.equal(f.inputs["mode"], "0400");
    }
    const envs = (metabase!.inputs["envs"] as string[]).join(" ");
    assert.doesNotMatch(envs, /MB_DB_PASS=|MB_ENCRYPTION_SECRET_KEY=/);
    assert.ok(!JSON.stringify(plan).includes(MOCK_SECRET_PREFIX), "a generated secret appears in clear");
    assert.equal(plan.outputs["metabaseAdminPassword"], "[secret]");
  });

  it("applies the read-only login with its SQL as a secret", () => {
    const command = plan.resources.find((r) => r.type === "command:remote:Command" && r.name === "metabase-readonly-user");
    assert.ok(command);
    assert.equal(command.inputs["stdin"], "[secret]");
    assert.match(String(command.inputs["create"]), /^docker exec -i bbaegok-prod-db sh -c 'MYSQL_PWD="\$\(cat \/run\/secrets\/db_root_password\)" exec mariadb -uroot --batch'$/);
  });
});

describe("Metabase is off where the stack says so", () => {
  it("staging declares no Metabase resource", () => {
    const plan = planInChild("staging");
    assert.ok(!plan.resources.some((r) => r.type.startsWith("bbaegok:metabase:") || r.name.startsWith("metabase")));
  });
});
