// The DNS renderers on their own: which records a stack has, where the DDNS
// job's files go, and the ids the script refuses to embed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ddnsPaths, ddnsScript, stackRecords } from "../../infra/dns/render.js";
import { backupPaths } from "../../infra/backup/render.js";

describe("DNS renderers", () => {
  it("plans the API's record, and Metabase's only when it runs and has a name", () => {
    const domains = { api: "api.bbaegok.kr", metabase: "metabase.bbaegok.kr" };
    assert.deepEqual(stackRecords(domains, true), [
      { role: "api", name: "api.bbaegok.kr" },
      { role: "metabase", name: "metabase.bbaegok.kr" },
    ]);
    assert.deepEqual(stackRecords(domains, false), [{ role: "api", name: "api.bbaegok.kr" }]);
    assert.deepEqual(stackRecords({ api: "staging-api.bbaegok.kr" }, true), [{ role: "api", name: "staging-api.bbaegok.kr" }]);
  });

  it("names the cron files without dots, the stack's name's too (Debian's cron skips those) and keeps the token under the secrets directory", () => {
    const paths = ddnsPaths("bbaegok", "prod", "/srv/bbaegok/prod", "/srv/bbaegok/prod/secrets");
    assert.equal(paths.cronFile, "/etc/cron.d/bbaegok-prod-ddns");
    assert.doesNotMatch(paths.cronFile.split("/").pop()!, /\./);
    // A stack name with a dot, which Pulumi allows: cron would skip the file without a word.
    for (const cronFile of [ddnsPaths("bbaegok", "prod.kr", "/srv/x", "/srv/x/secrets").cronFile, backupPaths("bbaegok", "prod.kr", "/srv").cronFile]) {
      assert.match(cronFile.split("/").pop()!, /^[A-Za-z0-9_-]+$/, cronFile);
      assert.match(cronFile, /^\/etc\/cron\.d\/bbaegok-prod_kr-(ddns|backup)$/);
    }
    assert.ok(paths.tokenFile.startsWith("/srv/bbaegok/prod/secrets/"));
    assert.ok(paths.stateFile.startsWith("/srv/bbaegok/prod/"));
  });

  it("refuses ids that are not Cloudflare ids, and a job with no record", () => {
    const spec = { stack: "prod", zoneId: "abc123", recordIds: ["def456"], written: { content: "192.0.2.10", proxied: true }, scriptPath: "/x/ddns.sh", tokenFile: "/x/token", stateFile: "/x/state" };
    assert.match(ddnsScript(spec), /for record in 'def456'; do/);
    assert.throws(() => ddnsScript({ ...spec, zoneId: "abc; rm -rf /" }), /zone id .* is not a Cloudflare id/);
    assert.throws(() => ddnsScript({ ...spec, recordIds: ["$(reboot)"] }), /record id .* is not a Cloudflare id/);
    assert.throws(() => ddnsScript({ ...spec, recordIds: [] }), /no record to keep current/);
  });
});
