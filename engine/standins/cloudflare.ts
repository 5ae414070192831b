// Stand-in for the cloudflare plugin: DNS records are recorded, never created;
// the zone is found by name with a deterministic id; the address ranges are the
// offline plan's sample of Cloudflare's; an Origin CA certificate is signed
// from the stack's own CSR by a throwaway local CA (so nginx can load the pair
// in tests), not by Cloudflare. Cloudflare's API cannot be reached from here
// and the real provider cannot be built (a patched Terraform upstream).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MOCK_CLOUDFLARE_RANGES, mockZoneId } from "../../ops/offline/edge-mocks.js";
import { digest, replaceRule, reveal, type Props, type StandInSpec } from "./recorder.js";
import { pluginVersion } from "./versions.js";

const COMPUTED: Record<string, readonly string[]> = {
  "cloudflare:index/originCaCertificate:OriginCaCertificate": ["certificate", "expiresOn"],
  "cloudflare:index/dnsRecord:DnsRecord": ["createdOn", "modifiedOn", "proxiable"],
};

// What the cloudflare provider cannot change in place (its schema's ForceNew / RequiresReplace).
const REPLACE: Record<string, (changed: readonly string[]) => string[]> = {
  // An Origin CA certificate is never edited: any change is a new certificate.
  "cloudflare:index/originCaCertificate:OriginCaCertificate": replaceRule({ updatable: [] }),
  "cloudflare:index/dnsRecord:DnsRecord": replaceRule({ forceNew: ["zoneId"] }),
};

/** A certificate for the CSR's key and names, signed by a CA made for this call. */
export function signWithThrowawayCa(csrPem: string, validityDays: number): string {
  const dir = mkdtempSync(join(tmpdir(), "cf-standin-ca-"));
  try {
    const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    writeFileSync(join(dir, "request.pem"), csrPem);
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key");
    openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/O=bbaegok-infra engine stand-in/CN=Stand-in Origin CA", "-days", "3650", "-out", "ca.pem");
    openssl("x509", "-req", "-in", "request.pem", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", `0x${digest(16, csrPem)}`, "-days", String(validityDays), "-copy_extensions", "copyall", "-out", "cert.pem");
    return execFileSync("cat", ["cert.pem"], { cwd: dir, encoding: "utf8" });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function create(type: string, urn: string, inputs: Props) {
  switch (type) {
    case "cloudflare:index/originCaCertificate:OriginCaCertificate": {
      const days = Number(inputs["requestedValidity"] ?? 5475);
      const certificate = signWithThrowawayCa(String(reveal(inputs["csr"])), days);
      return { id: String(BigInt(`0x${digest(15, urn, JSON.stringify(inputs))}`)), outs: { certificate, expiresOn: new Date(Date.UTC(2026, 0, 1) + days * 86_400_000).toISOString() } };
    }
    case "cloudflare:index/dnsRecord:DnsRecord":
      return { id: digest(32, urn), outs: { createdOn: "2026-01-01T00:00:00Z", modifiedOn: "2026-01-01T00:00:00Z", proxiable: true } };
    default:
      return { id: digest(32, urn) };
  }
}

function invoke(token: string, inputs: Props): Props {
  switch (token) {
    case "cloudflare:index/getZone:getZone": {
      const name = String((inputs["filter"] as Props | undefined)?.["name"] ?? "");
      return { id: mockZoneId(name), zoneId: mockZoneId(name), name, status: "active" };
    }
    case "cloudflare:index/getIpRanges:getIpRanges":
      return { ...MOCK_CLOUDFLARE_RANGES, etag: "stand-in", jdcloudCidrs: [] };
    default:
      throw new Error(`cloudflare stand-in: ${token} is not stood in (the program does not call it)`);
  }
}

export const cloudflare: StandInSpec = {
  name: "cloudflare",
  version: pluginVersion("cloudflare"),
  description: "STAND-IN for the cloudflare provider (bbaegok-infra engine build): records every input as the output with a deterministic id; origin certificates come from a throwaway local CA; nothing is created in Cloudflare and nothing is validated as Cloudflare would.",
  create,
  computedKeys: (type) => COMPUTED[type] ?? [],
  replaces: (type, changed) => REPLACE[type]?.(changed) ?? [],
  invoke,
};
