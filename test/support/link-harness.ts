// Two servers joined by the program's WireGuard link, for the replica-link
// tests: two network namespaces (a veth pair is their network, standing for
// the internet), each with the rendered wg-quick file (random keys, public
// halves by wireguardPublicKey) brought up by the rendered up script
// (infra/link/render.ts; userspace wireguard-go when the kernel has no
// WireGuard module, as here).
import { execFileSync, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { linkDownScript, linkPaths, linkUpScript, wireguardConfig, wireguardPublicKey } from "../../infra/link/render.js";
import { requireCommand } from "./system.js";

export type Side = "primary" | "replica";
/** Each server's address on the link, and the tunnel's UDP port. */
export const LINK = { primary: "10.99.0.1", replica: "10.99.0.2", port: 51820 } as const;
/** The servers' own network (TEST-NET-1): what the internet would be. */
export const UNDERLAY = { primary: "192.0.2.1", replica: "192.0.2.2" } as const;

export interface LinkedServers {
  /** Each server's network namespace. */
  ns: Record<Side, string>;
  /** Each server's wg-quick file and interface name. */
  paths: Record<Side, ReturnType<typeof linkPaths>>;
  /** `ip`'s arguments that run argv on that server. */
  inNs(side: Side, ...argv: string[]): string[];
  /** Runs the rendered up script on that server. */
  up(side: Side): SpawnSyncReturns<string>;
  /** Unplugs that server's cable under the link (its end of the underlay down: the link carries nothing), or plugs it back. */
  plug(side: Side, plugged: boolean): void;
  /** Brings the link down (a side with its own /etc folder, by its down script) and removes both namespaces. */
  remove(): void;
}

/**
 * Two namespaces and their link files under `dir`, named after `tag` (unique per test process); the link is not up yet.
 * `etc`: a server's /etc for the boot unit and the sysctl file (by default a folder of its own under `dir`; "/etc" for
 * a server booted under systemd, whose /etc is its own: test/support/systemd-boot.ts).
 */
export function linkedServers(dir: string, tag: string, etc: Partial<Record<Side, string>> = {}): LinkedServers {
  requireCommand("wg-quick", "wireguard-tools");
  requireCommand("wireguard-go", "wireguard-go");
  const ns = { primary: `bblink-p-${tag}`, replica: `bblink-r-${tag}` };
  // Two servers would both name the interface after "bbaegok-prod"; two namespaces share one filesystem, where
  // wireguard-go's control socket is named after the interface (/var/run/wireguard/<name>.sock): two names here.
  // Each server's /etc is a folder of its own: the boot unit and the sysctl file land there, not in this machine's /etc.
  const paths = {
    primary: linkPaths(join(dir, "primary"), `bbaegok-prod-${tag}p`, etc.primary ?? join(dir, "primary", "etc")),
    replica: linkPaths(join(dir, "replica"), `bbaegok-prod-${tag}r`, etc.replica ?? join(dir, "replica", "etc")),
  };
  const inNs = (side: Side, ...argv: string[]) => ["netns", "exec", ns[side], ...argv];
  const underlay = (side: Side) => `bbv${tag}${side[0]}`;
  const sh = (...argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  for (const name of Object.values(ns)) sh("ip", "netns", "add", name);
  sh("ip", "link", "add", underlay("primary"), "netns", ns.primary, "type", "veth", "peer", "name", underlay("replica"), "netns", ns.replica);
  const keys = { primary: randomBytes(32).toString("base64"), replica: randomBytes(32).toString("base64") };
  for (const [self, peer] of [["primary", "replica"], ["replica", "primary"]] as const) {
    const dev = underlay(self);
    sh("ip", ...inNs(self, "ip", "addr", "add", `${UNDERLAY[self]}/24`, "dev", dev));
    sh("ip", ...inNs(self, "ip", "link", "set", dev, "up"));
    sh("ip", ...inNs(self, "ip", "link", "set", "lo", "up"));
    // Each end's key and file as the program renders them.
    mkdirSync(join(dir, self, "link"), { recursive: true, mode: 0o700 });
    const text = wireguardConfig({
      purpose: "test",
      privateKey: keys[self],
      self: { address: LINK[self], endpoint: UNDERLAY[self] },
      peer: { address: LINK[peer], endpoint: UNDERLAY[peer], publicKey: wireguardPublicKey(keys[peer]) },
      port: LINK.port,
    });
    writeFileSync(paths[self].config, text, { mode: 0o600 });
  }
  return {
    ns,
    paths,
    inNs,
    up: (side) => spawnSync("ip", inNs(side, "bash", "-c", linkUpScript(paths[side])), { encoding: "utf8" }),
    plug: (side, plugged) => void sh("ip", ...inNs(side, "ip", "link", "set", underlay(side), plugged ? "up" : "down")),
    remove() {
      // A side given "/etc" is a booted server's: its link went with its boot, and its down script would act on this machine's systemd.
      for (const side of ["primary", "replica"] as const) if (etc[side] !== "/etc") spawnSync("ip", inNs(side, "bash", "-c", linkDownScript(paths[side])));
      for (const name of Object.values(ns)) spawnSync("ip", ["netns", "del", name]);
    },
  };
}

/** Two servers' own network for two Docker hosts (TEST-NET-2, standing for the internet), and this machine's address on it (the operator's). */
export const SERVERS = { primary: "198.51.100.1", replica: "198.51.100.2", operator: "198.51.100.254" } as const;

export interface ServerNamespaces {
  /** Each server's network namespace. */
  ns: Record<Side, string>;
  /** Unplugs a server from the network (its bridge port down: nothing reaches it, nothing leaves it), or plugs it back. */
  plug(side: Side, plugged: boolean): void;
  /** Removes both namespaces (and whatever runs in them has lost its network) and the bridge. */
  remove(): void;
}

/**
 * Two network namespaces on one bridge of this machine's: each server reaches
 * the other (a WireGuard endpoint is the other's SSH address) and this
 * machine reaches both (Pulumi and ops over SSH), by the bridge alone (no
 * routing, nothing of this machine's firewall or forwarding involved).
 */
export function serverNamespaces(tag: string): ServerNamespaces {
  const ns = { primary: `bbsrv-p-${tag}`, replica: `bbsrv-r-${tag}` };
  const bridge = `bbbr${tag}`;
  const sh = (...argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  const portOf = (side: Side) => `bbs${tag}${side[0]}`;
  const remove = () => {
    for (const name of Object.values(ns)) spawnSync("ip", ["netns", "del", name]);
    spawnSync("ip", ["link", "del", bridge]);
  };
  try {
    sh("ip", "link", "add", bridge, "type", "bridge");
    sh("ip", "addr", "add", `${SERVERS.operator}/24`, "dev", bridge);
    sh("ip", "link", "set", bridge, "up");
    for (const side of ["primary", "replica"] as const) {
      const port = portOf(side);
      sh("ip", "netns", "add", ns[side]);
      sh("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns[side]);
      sh("ip", "link", "set", port, "master", bridge, "up");
      sh("ip", "netns", "exec", ns[side], "ip", "addr", "add", `${SERVERS[side]}/24`, "dev", "eth0");
      sh("ip", "netns", "exec", ns[side], "ip", "link", "set", "eth0", "up");
      sh("ip", "netns", "exec", ns[side], "ip", "link", "set", "lo", "up");
    }
  } catch (err) {
    remove();
    throw err;
  }
  return { ns, plug: (side, plugged) => void sh("ip", "link", "set", portOf(side), plugged ? "up" : "down"), remove };
}
