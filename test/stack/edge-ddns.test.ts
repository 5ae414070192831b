// A stack with `domains.ddns` under mocks (test/support/ddns-stack.ts): the
// records leave their address to the job, and the job's token, script and
// cron file reach the server with the right modes, the records' ids and the
// zone's, the token secret throughout.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { mockZoneId } from "../../ops/offline/edge-mocks.js";
import { MOCK_SECRET_PREFIX } from "../../ops/offline/mocks.js";
import { cronProblem } from "../../stacks/config/cron.js";
import { ddnsStackYaml } from "../support/ddns-stack.js";
import { copyProject, planInChild } from "../support/project.js";

describe("a stack with a DDNS job, planned with the real program", () => {
  const project = copyProject();
  after(() => project.remove());
  project.writeStackFile("dyn", ddnsStackYaml({ token: true }));
  const plan = planInChild("dyn", project.dir);
  const file = (path: string) => {
    const found = plan.resources.filter((r) => r.type === "bbaegok:server:File" && r.inputs["path"] === path);
    assert.equal(found.length, 1, `expected one file ${path}, found ${found.length}`);
    return found[0]!;
  };
  const records = plan.resources.filter((r) => r.type === "cloudflare:index/dnsRecord:DnsRecord");

  it("leaves the records' address to the job", () => {
    assert.deepEqual(records.map((r) => r.inputs["name"]).sort(), ["dyn-api.bbaegok.kr", "dyn-metabase.bbaegok.kr"]);
    for (const r of records) assert.deepEqual(r.options.ignoreChanges, ["content"], String(r.inputs["name"]));
  });

  it("installs the token as a 0400 root file, secret in the plan", () => {
    const token = file("/srv/bbaegok/dyn/secrets/ddns/api_token");
    assert.equal(token.inputs["mode"], "0400");
    assert.equal(token.inputs["owner"], "root:root");
    assert.equal(token.inputs["content"], "[secret]");
    assert.ok(!JSON.stringify(plan).includes("not-a-real-token") && !JSON.stringify(plan).includes(MOCK_SECRET_PREFIX));
  });

  it("installs the script with the zone's and every record's id", () => {
    const script = file("/srv/bbaegok/dyn/bin/ddns.sh");
    assert.equal(script.inputs["mode"], "0755");
    const content = String(script.inputs["content"]);
    assert.match(content, new RegExp(`^zone='${mockZoneId("bbaegok.kr")}'$`, "m"));
    // The mocks give each record the id `<name>-id`.
    assert.match(content, /^for record in 'dns-api-id' 'dns-metabase-id'; do$/m);
    assert.match(content, /^token_file='\/srv\/bbaegok\/dyn\/secrets\/ddns\/api_token'$/m);
  });

  it("installs a valid cron file last, after the token and the script", () => {
    const cron = file("/etc/cron.d/bbaegok-dyn-ddns");
    assert.equal(cron.inputs["mode"], "0644");
    const entry = String(cron.inputs["content"]).split("\n").find((l) => /^\S+ \S+ \S+ \S+ \S+ root /.test(l));
    assert.ok(entry, "no cron entry");
    assert.equal(cronProblem(entry.split(" ").slice(0, 5).join(" ")), undefined);
    assert.ok(entry.startsWith("*/10 * * * * root /srv/bbaegok/dyn/bin/ddns.sh "), entry);
    for (const needed of ["dns-ddns-token-install", "dns-ddns-script-install"]) assert.ok(cron.options.dependsOn.includes(needed), `cron could run before ${needed}: ${cron.options.dependsOn.join(", ")}`);
  });
});
