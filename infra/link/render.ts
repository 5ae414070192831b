// Pure renderers for the private link between two servers of a stack (a read
// replica on another server reaches the primary over it): the WireGuard
// interface's name, its wg-quick configuration per host, the public key of a
// private key, and the scripts that bring the interface up and down.
// No Pulumi import: tested on its own and by the real `wg` tool.
import { createHash, createPrivateKey, createPublicKey } from "node:crypto";
import { shellQuote } from "../server/render.js";

/**
 * The interface's name on both hosts: `bbwg` and 8 hex digits of the stack's
 * prefix, so two stacks never share one and it fits Linux's 15 characters
 * (wg-quick names the interface after its file).
 */
export function wireguardInterface(prefix: string): string {
  return `bbwg${createHash("sha256").update(prefix).digest("hex").slice(0, 8)}`;
}

/** Where the link's files are on a host: the wg-quick file (0600, it holds the private key) and the scripts run as root. */
export function linkPaths(stackDir: string, prefix: string) {
  const iface = wireguardInterface(prefix);
  return { iface, config: `${stackDir}/link/${iface}.conf`, up: `${stackDir}/link/up.sh`, down: `${stackDir}/link/down.sh` };
}

// An X25519 private key in PKCS#8 is this DER prefix and the key's 32 bytes (RFC 8410).
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

/**
 * The WireGuard public key of a private key (both base64 of 32 bytes, as `wg
 * genkey` and `wg pubkey` write them). X25519 clamps the scalar itself, so any
 * 32 random bytes are a private key and this equals `wg pubkey`.
 */
export function wireguardPublicKey(privateKeyBase64: string): string {
  const raw = Buffer.from(privateKeyBase64, "base64");
  if (raw.length !== 32) throw new Error(`a WireGuard private key is 32 bytes in base64; this one is ${raw.length} bytes`);
  const key = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: "der", type: "pkcs8" });
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  return spki.subarray(spki.length - 32).toString("base64");
}

export interface WireguardHost {
  /** The host's address on the link, e.g. "10.99.0.1". */
  address: string;
  /** Where the other host reaches this one: its SSH address (DNS name or IP). */
  endpoint: string;
}

export interface WireguardConfigSpec {
  /** This host's private key (base64). */
  privateKey: string;
  self: WireguardHost;
  /** The other host, and its public key. */
  peer: WireguardHost & { publicKey: string };
  /** The UDP port both hosts listen on. */
  port: number;
  /** What the link is for, in the file's first line. */
  purpose: string;
}

/**
 * One host's wg-quick file: its address on the link (a /32: the only route
 * is the peer's /32, so nothing but the two hosts' link addresses goes through
 * the tunnel), and the other host as the one peer. Both sides name an
 * endpoint and keep the tunnel alive, so either can start it (a home server
 * behind NAT included).
 */
export function wireguardConfig(spec: WireguardConfigSpec): string {
  for (const [what, value] of [["this host's", spec.privateKey], ["the peer's public", spec.peer.publicKey]] as const) {
    if (!/^[A-Za-z0-9+/]{43}=$/.test(value)) throw new Error(`WireGuard config: ${what} key is not 32 bytes of base64`);
  }
  return [
    `# ${spec.purpose} (rendered by infra/link/render.ts, installed by Pulumi)`,
    "[Interface]",
    `Address = ${spec.self.address}/32`,
    `ListenPort = ${spec.port}`,
    `PrivateKey = ${spec.privateKey}`,
    "",
    "[Peer]",
    `PublicKey = ${spec.peer.publicKey}`,
    `AllowedIPs = ${spec.peer.address}/32`,
    `Endpoint = ${spec.peer.endpoint}:${spec.port}`,
    "PersistentKeepalive = 25",
    "",
  ].join("\n");
}

/**
 * Brings the link up from its file, or applies a changed file to the running
 * interface without dropping it (`wg syncconf`: keys and peers; a changed
 * address needs the interface down and up).
 */
export function linkUpScript(configPath: string, iface: string): string {
  return [
    "#!/bin/bash",
    "set -euo pipefail",
    `if ip link show dev ${shellQuote(iface)} >/dev/null 2>&1; then`,
    `  wg syncconf ${shellQuote(iface)} <(wg-quick strip ${shellQuote(configPath)})`,
    "else",
    `  wg-quick up ${shellQuote(configPath)}`,
    "fi",
    "",
  ].join("\n");
}

/** Takes the link down; nothing to do when it is not up. */
export function linkDownScript(configPath: string, iface: string): string {
  return ["#!/bin/bash", "set -euo pipefail", `if ip link show dev ${shellQuote(iface)} >/dev/null 2>&1; then wg-quick down ${shellQuote(configPath)}; fi`, ""].join("\n");
}
