// Pure renderers for the private link between two servers of a stack (a read
// replica on another server reaches the primary over it): the WireGuard
// interface's name, its wg-quick configuration per host, the public key of a
// private key, and the scripts that bring the interface up and down.
// No Pulumi import: tested on its own and by the real `wg` tool.
import { createHash, createPrivateKey, createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { shellQuote } from "../server/render.js";

/**
 * The interface's name on both hosts: `bbwg` and 8 hex digits of the stack's
 * prefix, so two stacks never share one and it fits Linux's 15 characters
 * (wg-quick names the interface after its file).
 */
export function wireguardInterface(prefix: string): string {
  return `bbwg${createHash("sha256").update(prefix).digest("hex").slice(0, 8)}`;
}

/**
 * Where the link's files are on a host: the wg-quick file (0600, it holds the
 * private key), the scripts run as root, and under `etc` (the host's /etc;
 * another directory in tests) the boot unit and the sysctl file.
 */
export function linkPaths(stackDir: string, prefix: string, etc = "/etc") {
  const iface = wireguardInterface(prefix);
  const unitName = `bbaegok-link-${iface}.service`;
  return {
    iface,
    config: `${stackDir}/link/${iface}.conf`,
    up: `${stackDir}/link/up.sh`,
    down: `${stackDir}/link/down.sh`,
    unitName,
    unit: `${etc}/systemd/system/${unitName}`,
    sysctl: `${etc}/sysctl.d/60-bbaegok-link-${iface}.conf`,
  };
}
export type LinkPaths = ReturnType<typeof linkPaths>;

/**
 * How long a dump over the link (a backup's, a replica's seeding) may send
 * nothing before the guard stops it: longer than any pause of a healthy dump
 * (pg_dump reading the catalog, mariadb-dump between tables), short beside
 * TCP's two hours.
 */
export const LINK_STALL_SECONDS = 600;

/**
 * The guard every client over the link runs under (LINK_STALL_GUARD, perl, in
 * the database container): rendered into the backup script of a stack with a
 * replica and into replica.sh. stall-guard.bash says why.
 */
export function linkStallGuardBash(): string {
  return readFileSync(join(__dirname, "stall-guard.bash"), "utf8");
}

const SYSTEMD_UNIT_DIR = "/etc/systemd/system/";

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

/** How long one try of the boot unit may hold Docker's start (a normal `wg-quick up` takes under a second). */
export const LINK_BOOT_TRY_SECONDS = 15;

/**
 * The unit that brings the link up at boot. Without it a reboot leaves the
 * link down until the next `pulumi up`: the replica stops, and Docker cannot
 * even start the primary's database or the replica, whose ports are
 * published on their link addresses only (docker-proxy's bind fails: "cannot
 * assign requested address"). Ordered before Docker, so its containers find
 * the address; retried while the peer's name does not resolve yet. Each try is
 * cut at LINK_BOOT_TRY_SECONDS: Docker waits for the try to end, and `wg`
 * alone retries a name that does not resolve for over a minute (DNS not back
 * yet after a power cut), so without the cut the whole service (proxy, app,
 * database) started that much later. The sysctl below lets Docker start
 * without the link.
 */
export function linkBootUnit(paths: LinkPaths): string {
  return [
    `# The private link ${paths.iface} (rendered by infra/link/render.ts, installed by Pulumi): up at boot, before Docker.`,
    "[Unit]",
    `Description=bbaegok private link ${paths.iface} (WireGuard)`,
    "Wants=network-online.target",
    "After=network-online.target",
    "Before=docker.service",
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=/usr/bin/wg-quick up ${paths.config}`,
    `ExecStop=/usr/bin/wg-quick down ${paths.config}`,
    `TimeoutStartSec=${LINK_BOOT_TRY_SECONDS}`,
    "Restart=on-failure",
    "RestartSec=30",
    "",
    "[Install]",
    // Docker (re)started by hand pulls the link in too.
    "WantedBy=multi-user.target docker.service",
    "",
  ].join("\n");
}

/**
 * On both servers: the kernel lets a process bind the link address while the
 * link is not up (net.ipv4.ip_nonlocal_bind), so Docker starts the database
 * and the replica even when the link does not come up at boot (the peer
 * unreachable, its name not resolving): the app keeps its database, only the
 * replication and the replica's reads wait.
 */
export const NONLOCAL_BIND_SYSCTL = "net.ipv4.ip_nonlocal_bind = 1\n";

/** The lines that install and apply NONLOCAL_BIND_SYSCTL (both servers, either kind of link). */
function nonlocalBindLines(paths: LinkPaths): string[] {
  return [...installFileLines(paths.sysctl, NONLOCAL_BIND_SYSCTL), `sysctl -q -p ${shellQuote(paths.sysctl)}`];
}

/**
 * Writes a root-owned file by a rename, so a reader never sees half of it; the
 * temporary file is this shell's own (`$$`), so that two writers of one path at
 * once (both ends of a link on one machine) never move each other's.
 */
function installFileLines(path: string, text: string): string[] {
  const q = shellQuote;
  return [`mkdir -p ${q(path.replace(/\/[^/]+$/, ""))}`, `printf '%s' ${q(text)} >${q(`${path}.new`)}.$$`, `mv -f ${q(`${path}.new`)}.$$ ${q(path)}`];
}

/**
 * On each server of a tailnet link: tailscaled may give the server its
 * tailnet address after Docker has started the containers, so the same
 * sysctl lets Docker publish the database's or the replica's port on it
 * (nothing else of a tailnet is the program's to configure).
 */
export function tailnetBindScript(paths: LinkPaths): string {
  return ["#!/bin/bash", "set -euo pipefail", ...nonlocalBindLines(paths), ""].join("\n");
}

/** Removes a tailnet end's sysctl file (the running kernel keeps the setting until the next boot). */
export function tailnetUnbindScript(paths: LinkPaths): string {
  return ["#!/bin/bash", "set -euo pipefail", `rm -f ${shellQuote(paths.sysctl)}`, ""].join("\n");
}

/**
 * Installs what brings the link back after a reboot (linkBootUnit,
 * NONLOCAL_BIND_SYSCTL), then brings the link up from its file, or applies a
 * changed file to the running interface without dropping it (`wg syncconf`:
 * keys and peers; a changed address needs the interface down and up).
 *
 * Under systemd the link comes up by its unit (`systemctl start`), so the
 * unit is active while the link runs: `systemctl status` tells the truth, and
 * a shutdown stops the unit (wg-quick down) only after Docker has stopped the
 * containers (Before=docker.service, reversed at shutdown). A link already
 * up when this runs is left running, its unit active from the next boot.
 */
export function linkUpScript(paths: LinkPaths): string {
  const q = shellQuote;
  // Enabled and started only where systemd reads the unit (tests install it elsewhere, and run its ExecStart themselves).
  const bySystemd = paths.unit.startsWith(SYSTEMD_UNIT_DIR);
  return [
    "#!/bin/bash",
    "set -euo pipefail",
    ...nonlocalBindLines(paths),
    ...installFileLines(paths.unit, linkBootUnit(paths)),
    "systemd=",
    ...(bySystemd
      ? [
          "if [ -d /run/systemd/system ]; then",
          "  systemctl daemon-reload",
          `  systemctl enable --quiet ${q(paths.unitName)}`,
          "  systemd=yes",
          "else",
          `  echo "link ${paths.iface}: no systemd here, so ${paths.unitName} is installed but not enabled: after a reboot, run ${paths.up} or pulumi up" >&2`,
          "fi",
        ]
      : []),
    `if ip link show dev ${q(paths.iface)} >/dev/null 2>&1; then`,
    `  wg syncconf ${q(paths.iface)} <(wg-quick strip ${q(paths.config)})`,
    'elif [ -n "$systemd" ]; then',
    `  systemctl start ${q(paths.unitName)}`,
    "else",
    `  wg-quick up ${q(paths.config)}`,
    "fi",
    "",
  ].join("\n");
}

/** Takes the link down (nothing to do when it is not up) and removes what brought it up at boot. */
export function linkDownScript(paths: LinkPaths): string {
  const q = shellQuote;
  return [
    "#!/bin/bash",
    "set -euo pipefail",
    ...(paths.unit.startsWith(SYSTEMD_UNIT_DIR) ? [`if [ -d /run/systemd/system ] && [ -e ${q(paths.unit)} ]; then systemctl disable --quiet ${q(paths.unitName)} || true; fi`] : []),
    `rm -f ${q(paths.unit)} ${q(paths.sysctl)}`,
    ...(paths.unit.startsWith(SYSTEMD_UNIT_DIR) ? ["if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi"] : []),
    // The running kernel keeps ip_nonlocal_bind until the next boot: something else on the server may rely on it by now.
    `if ip link show dev ${q(paths.iface)} >/dev/null 2>&1; then wg-quick down ${q(paths.config)}; fi`,
    "",
  ].join("\n");
}
