// The offline plan's answers for the edge (proxy, TLS, DNS): Cloudflare's
// zone and address ranges, generated keys and certificates, and the outputs a
// guest reads from the stack that owns the proxy, derived from that stack's
// file with the same function the owner's program exports them with.
// Generated private keys are recognisable (`mock-secret-…`) so tests can prove
// they never reach output in clear.
import { createHash } from "node:crypto";
import type * as pulumi from "@pulumi/pulumi";
import { ownerEndpoint } from "../../infra/proxy/contract.js";
import { stackNames } from "../../infra/server/render.js";
import { loadStack } from "../../stacks/config/load.js";

const MOCK_SECRET_PREFIX = "mock-secret-";

/** The zone id the plan gives a zone name: deterministic, so tests can check records land in the right zone. */
export function mockZoneId(zoneName: string): string {
  return createHash("sha256").update(zoneName).digest("hex").slice(0, 32);
}

/** A sample of Cloudflare's published ranges, standing in for cloudflare.getIpRanges. */
export const MOCK_CLOUDFLARE_RANGES = { ipv4Cidrs: ["173.245.48.0/20", "103.21.244.0/22", "141.101.64.0/18", "104.16.0.0/13"], ipv6Cidrs: ["2400:cb00::/32", "2606:4700::/32"] };

function pem(kind: string, body: string): string {
  return `-----BEGIN ${kind}-----\n${Buffer.from(body).toString("base64")}\n-----END ${kind}-----\n`;
}

/** State for the edge's resource types; undefined for the others. */
export function edgeResourceState(args: pulumi.runtime.MockResourceArgs): Record<string, unknown> | undefined {
  switch (args.type) {
    case "tls:index/privateKey:PrivateKey":
      return { privateKeyPem: `${MOCK_SECRET_PREFIX}${args.name}`, publicKeyPem: pem("PUBLIC KEY", `public half of ${args.name}`) };
    case "tls:index/certRequest:CertRequest":
      return { certRequestPem: pem("CERTIFICATE REQUEST", `request for ${JSON.stringify(args.inputs["dnsNames"])}`) };
    case "tls:index/selfSignedCert:SelfSignedCert":
      return { certPem: pem("CERTIFICATE", `self-signed ${JSON.stringify(args.inputs["allowedUses"])} certificate of ${args.name}`) };
    case "cloudflare:index/originCaCertificate:OriginCaCertificate":
      return { certificate: pem("CERTIFICATE", `origin CA certificate for ${JSON.stringify(args.inputs["hostnames"])}`), expiresOn: "2040-01-01T00:00:00Z" };
    default:
      return undefined;
  }
}

/** Answers for the edge's invokes; undefined for the others. */
export function edgeInvoke(args: pulumi.runtime.MockCallArgs): Record<string, unknown> | undefined {
  switch (args.token) {
    case "cloudflare:index/getZone:getZone": {
      const name = String((args.inputs["filter"] as Record<string, unknown> | undefined)?.["name"] ?? "");
      return { id: mockZoneId(name), zoneId: mockZoneId(name), name, status: "active" };
    }
    case "cloudflare:index/getIpRanges:getIpRanges":
      return { ...MOCK_CLOUDFLARE_RANGES, etag: "mock", jdcloudCidrs: [] };
    default:
      return undefined;
  }
}

/** The proxy container id a referenced owner stack exports in the plan: named after the stack, so tests can tell which stack a guest read. */
export function mockOwnerContainerId(qualifiedName: string): string {
  return `mock-proxy-container-of-${qualifiedName.replace(/[^A-Za-z0-9_.-]+/g, ".")}`;
}

/**
 * What `<org>/bbaegok-infra/<stack>` exports, from its stack file: the proxy
 * endpoint when that stack owns the proxy, else nothing.
 */
export function outputsFromStackFile(qualifiedName: string): Record<string, unknown> {
  const stack = qualifiedName.split("/").pop() ?? qualifiedName;
  const { config } = loadStack(stack);
  if (config.proxy.mode !== "owner") return {};
  return { proxy: ownerEndpoint(config, { containerId: mockOwnerContainerId(qualifiedName), network: stackNames(config.service, stack, config.server.dataDir).edgeNetwork }) };
}
