// The production proxy files reach each container at its fixed address on its
// stack's edge network (172.30.x.y:port); on loopback a stand-in server plays
// the container. This maps the one to the other, so the files under test are
// the production files with only those addresses changed.
import { slotContainerName } from "../../infra/app/render.js";
import { METABASE_PORT, type AddressMap } from "../../infra/proxy/render.js";
import { edgeAddressing } from "../../infra/server/render.js";
import type { StackConfig } from "../../stacks/config/schema.js";

type EdgeConfig = Pick<StackConfig, "service" | "server" | "app">;

/** Each container's fixed `ip:port` on its stack's edge network → its name (`bbaegok-prod-app-blue`). */
export function containersByAddress(stacks: Record<string, EdgeConfig>): Map<string, string> {
  const byAddress = new Map<string, string>();
  for (const [stack, config] of Object.entries(stacks)) {
    const edge = edgeAddressing(config.server.edgeSubnet);
    const prefix = `${config.service}-${stack}`;
    byAddress.set(`${edge.blue}:${config.app.port}`, slotContainerName(prefix, "blue"));
    byAddress.set(`${edge.green}:${config.app.port}`, slotContainerName(prefix, "green"));
    byAddress.set(`${edge.metabase}:${METABASE_PORT}`, `${prefix}-metabase`);
  }
  return byAddress;
}

/**
 * Sends a container's fixed address to `127.0.0.1:<port of its stand-in>`;
 * a container without a stand-in (`portOf` undefined) gets port 9, where
 * nothing listens, as nothing answers at a stopped container's address.
 */
export function loopbackAddresses(stacks: Record<string, EdgeConfig>, portOf: (container: string) => number | undefined): AddressMap {
  const byAddress = containersByAddress(stacks);
  return (ipAndPort) => {
    const container = byAddress.get(ipAndPort);
    if (container === undefined) throw new Error(`no container of ${Object.keys(stacks).join(", ")} is at ${ipAndPort}`);
    return `127.0.0.1:${portOf(container) ?? 9}`;
  };
}
