// The edge checks every stack must pass under mocks, written once and run by
// one test file per stack (test/stack/edge-<stack>.test.ts): Cloudflare
// records per public host in the right zone, an Origin CA certificate for
// exactly those hosts with its key kept secret, the proxy container as the
// server's only port publisher with its configuration outside its definition,
// the owner's exported endpoint or the guest's attachment to it, and an
// activation that waits for every proposed file.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MOCK_CLOUDFLARE_RANGES, mockOwnerContainerId, mockZoneId } from "../../ops/offline/edge-mocks.js";
import { MOCK_SECRET_PREFIX } from "../../ops/offline/mocks.js";
import type { PlannedResource, StackPlan } from "../../ops/offline/plan.js";
import { ROLE_LABEL } from "../../infra/server/container.js";
import { stackNames } from "../../infra/server/render.js";
import { loadStack } from "../../stacks/config/load.js";
import type { StackConfig } from "../../stacks/config/schema.js";
import { planInChild, REPO } from "./project.js";

const DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord";
const ORIGIN_CA = "cloudflare:index/originCaCertificate:OriginCaCertificate";
const CSR = "tls:index/certRequest:CertRequest";
const CONTAINER = "docker:index/container:Container";
const COMMAND = "command:remote:Command";
const SERVER_FILE = "bbaegok:server:File";

/** The stack's public host names as the stack file states them: the API, and Metabase where it is enabled. */
function expectedHosts(config: StackConfig): string[] {
  return [config.domains.api, ...(config.metabase.enabled && config.domains.metabase ? [config.domains.metabase] : [])];
}

/** What a mock PEM (ops/offline/edge-mocks.ts) says it is: its base64 body, decoded. */
function pemBody(pem: unknown): string {
  assert.equal(typeof pem, "string", "not a PEM string");
  const body = (pem as string).split("\n").filter((l) => l && !l.startsWith("-----")).join("");
  return Buffer.from(body, "base64").toString("utf8");
}

export function checkStackEdge(stack: string): void {
  describe(`the edge of stack ${stack} (proxy, TLS, DNS), planned with the real program`, () => {
    const config = loadStack(stack, REPO).config;
    const plan: StackPlan = planInChild(stack);
    const hosts = expectedHosts(config);
    const proxyDir = stackNames(config.service, stack, config.server.dataDir).proxyDir;
    const proposedDir = `${proxyDir}/proposed/${stack}`;
    const liveDir = `${proxyDir}/live`;
    const proxyName = `${config.service}-proxy`;
    const isOwner = config.proxy.mode === "owner";
    /** The pinned nginx image (the owner's stack file names it). */
    const proxyImage = config.proxy.mode === "owner" ? config.proxy.image : undefined;

    const ofType = (type: string) => plan.resources.filter((r) => r.type === type);
    const named = (type: string, name: string): PlannedResource => {
      const found = plan.resources.filter((r) => r.type === type && r.name === name);
      assert.equal(found.length, 1, `expected one ${type} named ${name}, found ${found.length}`);
      return found[0]!;
    };
    const childrenOf = (parent: PlannedResource) => plan.resources.filter((r) => r.parentUrn === parent.urn);
    const proposedFiles = () => ofType(SERVER_FILE).filter((f) => String(f.inputs["path"]).startsWith(`${proposedDir}/`));
    const proposedFile = (relative: string) => {
      const found = proposedFiles().filter((f) => f.inputs["path"] === `${proposedDir}/${relative}`);
      assert.equal(found.length, 1, `expected one proposed ${relative}, found ${found.length}`);
      return found[0]!;
    };

    it("has one proxied A record per public host, in the zone looked up by name, with automatic TTL", () => {
      const records = ofType(DNS_RECORD);
      assert.deepEqual(records.map((r) => r.inputs["name"]).sort(), [...hosts].sort());
      for (const r of records) {
        const name = String(r.inputs["name"]);
        assert.equal(r.inputs["zoneId"], mockZoneId(config.domains.zone), `${name} is not in zone ${config.domains.zone}`);
        assert.equal(r.inputs["type"], "A", name);
        assert.equal(r.inputs["content"], config.server.publicIp, name);
        assert.equal(r.inputs["proxied"], config.proxy.cloudflareProxied, `${name}: proxied should be ${config.proxy.cloudflareProxied}`);
        assert.equal(r.inputs["ttl"], 1, `${name}: a proxied record's TTL is automatic (1)`);
        // Removed with the stack: nothing keeps a record alive after `pulumi destroy`.
        assert.equal(r.options.protect, false, name);
        assert.equal(r.options.retainOnDelete, false, name);
        assert.equal(r.options.ignoreChanges.includes("content"), config.domains.ddns !== undefined, `${name}: only a DDNS job may own the address`);
      }
      assert.deepEqual(plan.outputs["publicHostnames"], Object.fromEntries(records.map((r) => [String(r.inputs["comment"]).split(": ").pop(), r.inputs["name"]])));
    });

    it("certifies exactly the stack's public hosts with an Origin CA ECC certificate from its own CSR", () => {
      if (config.proxy.tls.source !== "origin-ca") {
        assert.deepEqual(ofType(ORIGIN_CA), [], "a provided certificate needs no Origin CA certificate");
        return;
      }
      const [certificate, ...others] = ofType(ORIGIN_CA);
      assert.ok(certificate, "no Origin CA certificate");
      assert.deepEqual(others, []);
      assert.deepEqual([...(certificate.inputs["hostnames"] as string[])].sort(), [...hosts].sort());
      assert.equal(certificate.inputs["requestType"], "origin-ecc");
      assert.equal(certificate.inputs["requestedValidity"], config.proxy.tls.validityDays);

      const [csr, ...moreCsrs] = ofType(CSR);
      assert.ok(csr, "no certificate request");
      assert.deepEqual(moreCsrs, []);
      assert.deepEqual([...(csr.inputs["dnsNames"] as string[])].sort(), [...hosts].sort());
      assert.deepEqual(csr.inputs["subject"], { commonName: config.domains.api });
      assert.equal(csr.inputs["privateKeyPem"], "[secret]");
      // The certificate is signed over this CSR (the mock's CSR names its dnsNames).
      assert.equal(pemBody(certificate.inputs["csr"]), `request for ${JSON.stringify(csr.inputs["dnsNames"])}`);
      assert.ok(certificate.options.dependsOn.includes(csr.name), "the certificate does not wait for the CSR");

      // What the proxy serves is that certificate.
      const served = proposedFile(`certs/${stack}.crt`);
      assert.equal(pemBody(served.inputs["content"]), `origin CA certificate for ${JSON.stringify(certificate.inputs["hostnames"])}`);
    });

    it("installs the private key as a 0600 root file, secret in the plan; no generated secret appears in clear", () => {
      const key = proposedFile(`certs/${stack}.key`);
      assert.equal(key.inputs["mode"], "0600");
      assert.equal(key.inputs["owner"], "root:root");
      assert.equal(key.inputs["content"], "[secret]");
      const install = childrenOf(key).filter((c) => c.type === COMMAND);
      assert.equal(install.length, 1);
      assert.equal(install[0]!.inputs["stdin"], "[secret]", "the key reaches the server's install command in clear");
      for (const other of proposedFiles().filter((f) => f !== key)) assert.equal(other.inputs["mode"], "0644", String(other.inputs["path"]));
      assert.ok(!JSON.stringify(plan).includes(MOCK_SECRET_PREFIX), "a generated secret appears in clear in the plan");
    });

    it("asks clients for a certificate only with proxy.authenticatedOriginPulls, and then on every host", () => {
      const conf = String(proposedFile(`conf.d/${stack}.conf`).inputs["content"]);
      const pulls = ofType("cloudflare:index/authenticatedOriginPulls:AuthenticatedOriginPulls");
      assert.equal(conf.split("ssl_verify_client on;").length - 1, config.proxy.authenticatedOriginPulls ? hosts.length : 0);
      assert.equal(pulls.length, config.proxy.authenticatedOriginPulls ? hosts.length : 0);
    });

    it("lets only the proxy container publish host ports, and only 80 and 443", () => {
      const containers = ofType(CONTAINER);
      assert.ok(containers.length > 0);
      const publishing = containers.filter((c) => Array.isArray(c.inputs["ports"]) && (c.inputs["ports"] as unknown[]).length > 0);
      assert.deepEqual(publishing.map((c) => c.inputs["name"]), isOwner ? [proxyName] : []);
      for (const c of containers) {
        const roles = ((c.inputs["labels"] as { label: string; value: string }[] | undefined) ?? []).filter((l) => l.label === ROLE_LABEL).map((l) => l.value);
        assert.equal(roles.length, 1, `${String(c.inputs["name"])} has ${roles.length} role labels`);
        assert.equal(roles[0] === "proxy", c.inputs["name"] === proxyName, `${String(c.inputs["name"])} has role ${roles[0]}`);
        assert.notEqual(c.inputs["networkMode"], "host", `${String(c.inputs["name"])} uses the host network`);
      }
      if (!isOwner) return;
      const proxy = publishing[0]!;
      const ports = (proxy.inputs["ports"] as { internal: number; external: number; ip?: string; protocol?: string }[]).map((p) => `${p.external}->${p.internal}`);
      assert.deepEqual(ports.sort(), ["443->443", "80->80"]);
    });

    it("keeps the proxy's configuration out of the container: a read-only bind mount of the live directory, no uploads", () => {
      const proxies = ofType(CONTAINER).filter((c) => c.inputs["name"] === proxyName);
      if (!isOwner) {
        assert.deepEqual(proxies, [], "a guest stack must not run the proxy");
        return;
      }
      assert.equal(proxies.length, 1);
      const proxy = proxies[0]!;
      assert.deepEqual(proxy.inputs["uploads"] ?? [], [], "uploads are part of the container: a config change would replace the proxy");
      assert.deepEqual(proxy.inputs["volumes"] ?? [], [], "the proxy needs no volume");
      assert.deepEqual(proxy.inputs["mounts"], [{ type: "bind", source: liveDir, target: liveDir, readOnly: true }]);
      assert.deepEqual(proxy.inputs["command"], ["nginx", "-c", `${liveDir}/nginx.conf`, "-g", "daemon off;"]);
      assert.equal(named("docker:index/remoteImage:RemoteImage", "proxy-image").inputs["name"], proxyImage);
      assert.equal(proxy.inputs["stopSignal"], "SIGQUIT", "nginx stops gracefully on SIGQUIT");
      // Guests connect the proxy to their networks; that must never plan a replacement.
      assert.ok(proxy.options.ignoreChanges.includes("networksAdvanced"));
      assert.ok(proxy.options.dependsOn.includes("proxy-site-activate"), "the container could start before its configuration is live");
    });

    it("activates the stack's files only after every one of them is proposed", () => {
      const files = proposedFiles();
      const relative = files.map((f) => String(f.inputs["path"]).slice(proposedDir.length + 1)).sort();
      const own = [`certs/${stack}.crt`, `certs/${stack}.key`, `conf.d/${stack}.conf`, `upstreams/${stack}.conf`];
      assert.deepEqual(relative, isOwner ? [...own, "nginx.conf"].sort() : own);
      const activation = named(COMMAND, "proxy-site-activate");
      for (const file of files) {
        const installs = childrenOf(file).filter((c) => c.type === COMMAND);
        assert.equal(installs.length, 1, `${String(file.inputs["path"])} has no install command`);
        assert.ok(activation.options.dependsOn.includes(installs[0]!.name), `the activation does not wait for ${String(file.inputs["path"])}`);
      }
      // The activation checks the proposals against this run's manifest: one line per file, nothing else.
      const manifest = String(activation.inputs["stdin"]).trim().split("\n");
      assert.deepEqual(manifest.map((l) => l.replace(/^[0-9a-f]{64} {2}/, "")).sort(), relative);
      const create = String(activation.inputs["create"]);
      assert.match(create, /nginx -t/);
      assert.match(create, /nginx -s reload/);
      assert.ok(create.includes(proposedDir) && create.includes(liveDir));
      // The rendered files are the stack's own: its hosts, and the nginx.conf with Cloudflare's looked-up ranges.
      const conf = String(proposedFile(`conf.d/${stack}.conf`).inputs["content"]);
      for (const host of hosts) assert.match(conf, new RegExp(`server_name ${host.replace(/\./g, "\\.")};`));
      if (isOwner) {
        const main = String(proposedFile("nginx.conf").inputs["content"]);
        for (const cidr of [...MOCK_CLOUDFLARE_RANGES.ipv4Cidrs, ...MOCK_CLOUDFLARE_RANGES.ipv6Cidrs]) assert.ok(main.includes(`set_real_ip_from ${cidr};`), cidr);
      }
    });

    if (config.proxy.mode === "owner") {
      it("exports the proxy guests attach to", () => {
        assert.deepEqual(plan.outputs["proxy"], {
          container: proxyName,
          containerId: "proxy-id",
          image: proxyImage,
          dir: proxyDir,
          internalPort: 8081,
          network: `${config.service}-${stack}-edge`,
        });
        assert.deepEqual(ofType("bbaegok:proxy:GuestProxy"), []);
      });
    } else {
      const ownerStack = config.proxy.ownerStack;
      it("attaches to the owner's proxy through a StackReference and connects it to its own edge network", () => {
        assert.deepEqual(ofType("bbaegok:proxy:EdgeProxy"), []);
        const guest = named("bbaegok:proxy:GuestProxy", "proxy");
        assert.equal(guest.inputs["ownerStack"], ownerStack);
        const attach = named(COMMAND, "proxy-network");
        // Depending on the reference is how the engine sees it: the plan records registered resources only.
        assert.ok(attach.options.dependsOn.includes("proxy-owner"), `the attachment does not depend on the StackReference: ${attach.options.dependsOn.join(", ")}`);
        // The container id is the one the referenced stack (by its qualified name) exports.
        const containerId = mockOwnerContainerId(ownerStack);
        const network = `${config.service}-${stack}-edge`;
        assert.match(String(attach.inputs["create"]), new RegExp(`docker network connect '${network}' '${containerId}'`));
        assert.match(String(attach.inputs["delete"]), new RegExp(`docker network disconnect '${network}' '${containerId}'`));
        assert.deepEqual(attach.inputs["triggers"], [containerId], "a new proxy container must join the network again");
        assert.ok(attach.options.dependsOn.includes("server-edge"), "the proxy could be connected before the network exists");
        assert.ok(named(COMMAND, "proxy-site-activate").options.dependsOn.includes("proxy-network"), "the routes could go live before the proxy reaches the upstreams");
        assert.equal((plan.outputs["proxy"] as Record<string, unknown> | undefined)?.["containerId"], containerId);
      });
    }
  });
}
