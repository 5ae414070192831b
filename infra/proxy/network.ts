// The proxy container's networks: a guest stack connects the owner's proxy
// to its own edge network (and disconnects it when it leaves), so nginx
// reaches the guest's slots at their fixed addresses. Pure: renders the
// docker commands.
import { shellQuote } from "../server/render.js";

/**
 * Connects the proxy container to a guest stack's edge network, so the
 * guest's fixed slot addresses route from the proxy. Idempotent.
 */
export function attachNetworkCommand(containerId: string, network: string): string {
  const id = shellQuote(containerId);
  const net = shellQuote(network);
  return `if docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{println $name}}{{end}}' ${id} | grep -qxF ${net}; then echo "proxy already on network ${network}"; else docker network connect ${net} ${id}; fi`;
}

/** Disconnects the proxy from the network; succeeds when it is already off it or gone. */
export function detachNetworkCommand(containerId: string, network: string): string {
  const id = shellQuote(containerId);
  const net = shellQuote(network);
  return `if docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{println $name}}{{end}}' ${id} 2>/dev/null | grep -qxF ${net}; then docker network disconnect ${net} ${id}; fi`;
}
