// The proxy's cross-stack contract: what the owner stack exports and guest
// stacks read (through a StackReference) to attach to the server's one proxy,
// and the names every stack and tool agrees on: the proxy's container, its
// directory layout on the server, the files a stack owns there, and the
// headers of its internal route. Pure: no Pulumi import.
//
// Layout under the proxy's directory on the server (mounted read-only into the
// container at the same path, so a path means the same on both sides):
//   live/nginx.conf               the owner stack's main file
//   live/conf.d/<stack>.conf      one stack's upstream groups (fixed addresses) and server blocks
//   live/upstreams/<stack>.conf   one stack's live slot (which group): the one file a deploy rewrites
//   live/certs/<stack>.{crt,key}  one stack's certificate (key 0600)
//   proposed/<stack>/…            what the stack's last `pulumi up` wants live (same layout)
//   .activate.lock                one activation at a time, whichever stack runs it
import { z } from "zod";
import type { StackConfig } from "../../stacks/config/schema.js";
import { serverProxyDir } from "../server/render.js";

/** The loopback port inside the proxy container that serves slot-addressed routes. */
export const INTERNAL_PORT = 8081;
/** Header on the internal port that picks a slot (`blue`/`green`); without it the live slot answers. */
export const SLOT_HEADER = "X-Bbaegok-Slot";
/** Response header of the internal port: the slot address nginx sent the request to (`$upstream_addr`), so a deploy can verify which slot is live. */
export const UPSTREAM_HEADER = "X-Bbaegok-Upstream";

/** What the owner stack exports and guest stacks read (through a StackReference) to attach to the proxy. */
export const proxyEndpointSchema = z.strictObject({
  /** Container name of the proxy, for `docker exec … nginx -t` and `nginx -s reload`. */
  container: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/),
  /** Docker's id of the proxy container: a new id means a new container that guests must join again. */
  containerId: z.string().min(1),
  /** The pinned nginx image, to check a configuration while the container is not running. */
  image: z.string().min(1),
  /** The proxy's directory on the server (host path; the container sees the same path). */
  dir: z.string().regex(/^\/[A-Za-z0-9._/-]+$/),
  internalPort: z.number().int().min(1).max(65535),
  /** The owner's edge network, which the proxy container is created on. */
  network: z.string().min(1),
});
export type ProxyEndpoint = z.infer<typeof proxyEndpointSchema>;

/** Name of the server's one proxy container: shared by the stacks on the server, so not named after one. */
export function proxyContainerName(service: string): string {
  return `${service}-proxy`;
}

/** The owner stack's proxy as guests see it; `containerId` and `network` come from resources. */
export function ownerEndpoint(
  config: Pick<StackConfig, "service" | "server" | "proxy">,
  resources: { containerId: string; network: string },
): ProxyEndpoint {
  if (config.proxy.mode !== "owner") throw new Error(`the proxy endpoint comes from the owner stack; this stack is a guest of ${config.proxy.ownerStack}`);
  return {
    container: proxyContainerName(config.service),
    containerId: resources.containerId,
    image: config.proxy.image,
    dir: serverProxyDir(config.server.dataDir),
    internalPort: INTERNAL_PORT,
    network: resources.network,
  };
}

/** The live directory nginx reads, the per-stack proposals and the lock, under the proxy's directory. */
export function proxyDirs(dir: string) {
  return { live: `${dir}/live`, proposed: (stack: string) => `${dir}/proposed/${stack}`, lock: `${dir}/.activate.lock` };
}

/** The files one stack owns under the live directory, relative to it. */
export function stackFilePaths(stack: string) {
  if (!/^[A-Za-z0-9_.-]+$/.test(stack)) throw new Error(`stack name "${stack}" cannot name proxy files: letters, digits, _ . - only`);
  return { conf: `conf.d/${stack}.conf`, upstreams: `upstreams/${stack}.conf`, certificate: `certs/${stack}.crt`, key: `certs/${stack}.key` };
}

/** With Authenticated Origin Pulls on: the certificate Cloudflare presents for the stack's hosts, which nginx trusts (public). */
export function originPullsCertificatePath(stack: string): string {
  stackFilePaths(stack);
  return `certs/${stack}.origin-pulls.crt`;
}
export const MAIN_CONF = "nginx.conf";
