// Stacks with `proxy.authenticatedOriginPulls` under mocks (no committed stack
// has it on): the owner and a guest each make their own client certificate,
// upload it to Cloudflare for exactly their host names, and put only its
// public half on the proxy, where every host requires it; the proxy's files go
// live only after Cloudflare presents the certificate; the key stays secret.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { mockZoneId } from "../../ops/offline/edge-mocks.js";
import { MOCK_SECRET_PREFIX } from "../../ops/offline/mocks.js";
import type { StackPlan } from "../../ops/offline/plan.js";
import { copyProject, planInChild, REPO } from "../support/project.js";

const SELF_SIGNED = "tls:index/selfSignedCert:SelfSignedCert";
const UPLOAD = "cloudflare:index/authenticatedOriginPullsHostnameCertificate:AuthenticatedOriginPullsHostnameCertificate";
const PULLS = "cloudflare:index/authenticatedOriginPulls:AuthenticatedOriginPulls";

describe("stacks with Authenticated Origin Pulls, planned with the real program", () => {
  const project = copyProject();
  after(() => project.remove());
  for (const stack of ["prod", "staging"]) {
    const yaml = readFileSync(join(REPO, `Pulumi.${stack}.yaml`), "utf8").replace("  bbaegok-infra:proxy:\n", "  bbaegok-infra:proxy:\n    authenticatedOriginPulls: true\n");
    assert.match(yaml, /authenticatedOriginPulls: true/);
    project.writeStackFile(stack, yaml);
  }
  const cases: [string, string[]][] = [
    ["prod", ["api.bbaegok.kr", "metabase.bbaegok.kr"]],
    ["staging", ["staging-api.bbaegok.kr"]],
  ];

  for (const [stack, hosts] of cases) {
    describe(`stack ${stack}`, () => {
      const plan: StackPlan = planInChild(stack, project.dir);
      const ofType = (type: string) => plan.resources.filter((r) => r.type === type);
      const proposed = (relative: string) => {
        const found = plan.resources.filter((r) => r.type === "bbaegok:server:File" && r.inputs["path"] === `/srv/bbaegok/proxy/proposed/${stack}/${relative}`);
        assert.equal(found.length, 1, `expected one proposed ${relative}, found ${found.length}`);
        return found[0]!;
      };

      it("makes its own client certificate and uploads it, key secret, for exactly its host names", () => {
        const [certificate, ...more] = ofType(SELF_SIGNED);
        assert.ok(certificate, "no client certificate");
        assert.deepEqual(more, []);
        assert.deepEqual(certificate.inputs["allowedUses"], ["digital_signature", "client_auth"]);
        assert.notEqual(certificate.inputs["isCaCertificate"], true, "nginx would trust what the certificate's key signs");
        const [upload, ...moreUploads] = ofType(UPLOAD);
        assert.ok(upload, "no upload to Cloudflare");
        assert.deepEqual(moreUploads, []);
        assert.equal(upload.inputs["zoneId"], mockZoneId("bbaegok.kr"));
        assert.match(String(upload.inputs["certificate"]), /^-----BEGIN CERTIFICATE-----/);
        assert.equal(upload.inputs["privateKey"], "[secret]");
        // Per host name, never the zone's setting: a stack sharing the zone keeps its own certificate.
        assert.deepEqual(ofType("cloudflare:index/authenticatedOriginPullsSettings:AuthenticatedOriginPullsSettings"), []);
        const enabled = ofType(PULLS).flatMap((r) => r.inputs["configs"] as { hostname: string; certId: string; enabled: boolean }[]);
        assert.deepEqual(enabled.map((c) => c.hostname).sort(), [...hosts].sort());
        for (const c of enabled) assert.deepEqual(c, { hostname: c.hostname, certId: "origin-pulls-upload-id", enabled: true });
        for (const r of ofType(PULLS)) assert.equal(r.inputs["zoneId"], mockZoneId("bbaegok.kr"));
        assert.ok(!JSON.stringify(plan).includes(MOCK_SECRET_PREFIX), "a generated key appears in clear in the plan");
      });

      it("puts the certificate (public) on the proxy and requires it on every host, only after Cloudflare presents it", () => {
        const certificate = ofType(SELF_SIGNED)[0]!;
        const trusted = proposed(`certs/${stack}.origin-pulls.crt`);
        assert.equal(trusted.inputs["mode"], "0644");
        assert.equal(Buffer.from(String(trusted.inputs["content"]).split("\n")[1]!, "base64").toString("utf8"), `self-signed ["digital_signature","client_auth"] certificate of ${certificate.name}`);
        const conf = String(proposed(`conf.d/${stack}.conf`).inputs["content"]);
        const required = `ssl_client_certificate /srv/bbaegok/proxy/live/certs/${stack}.origin-pulls.crt;\n    ssl_verify_client on;`;
        assert.equal(conf.split(required).length - 1, hosts.length, "not every host requires the certificate");
        const activation = plan.resources.find((r) => r.type === "command:remote:Command" && r.name === "proxy-site-activate")!;
        for (const pulls of ofType(PULLS)) assert.ok(activation.options.dependsOn.includes(pulls.name), `nginx could require the certificate before ${pulls.name} is enabled`);
      });
    });
  }
});
