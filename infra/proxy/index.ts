// The server's one nginx proxy as Pulumi resources.
//
// The owner stack (`proxy.mode: owner`) runs the container: the only one on
// the server publishing host ports (80, 443). Its configuration is a host
// directory bind-mounted read-only into it, never part of the container's
// definition, so a configuration change is files + `nginx -t` + a graceful
// reload, never a replaced container.
//
// Every stack, owner or guest, places its own files the same way: each file is
// installed under proposed/<stack>/ (ServerFile: atomic, with its mode), then
// one remote command activates the set (activation.ts, activationScript): live
// files backed up, proposals copied in, `nginx -t`, reload, or every previous
// file put back and the run failed with nginx's message.
//
// A guest stack (`proxy.mode: guest`) finds the proxy through the owner's
// stack output `proxy` (StackReference) and connects the proxy container to
// its own edge network with an idempotent `docker network connect` of its
// own: the guest creates and destroys its network, so it is the one that can
// attach and detach it at the right moments (the owner cannot name a network
// that may not exist yet, and adding it to the container's networksAdvanced
// would replace the proxy). The owner's container therefore ignores changes
// to its networks.
import * as cloudflare from "@pulumi/cloudflare";
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { Slot, StackConfig } from "../../stacks/config/schema.js";
import { platformContainer, runScriptAsRootCommand, ServerFile, type HomeServer } from "../server/index.js";
import type { SiteCertificate } from "../tls/index.js";
import type { OriginPulls } from "../tls/origin-pulls.js";
import {
  activationScript,
  dockerNginxCommands,
  proposalManifest,
} from "./activation.js";
import {
  MAIN_CONF,
  originPullsCertificatePath,
  ownerEndpoint,
  proxyContainerName,
  proxyDirs,
  proxyEndpointSchema,
  stackFilePaths,
  type ProxyEndpoint,
} from "./contract.js";
import { attachNetworkCommand, detachNetworkCommand } from "./network.js";
import { WORKER_SHUTDOWN_SECONDS, containerLayout, renderMainConf, stackProxyFiles } from "./render.js";

export * from "./render.js";

type ProxyConfig = Pick<StackConfig, "service" | "server" | "domains" | "app" | "metabase" | "proxy">;

/**
 * Docker's wait for the proxy to stop (an image bump replaces it, planned): as
 * the container was created, because changing it replaces the server's one
 * entrance (a Container's stopTimeout cannot be updated in place).
 */
const STOP_TIMEOUT_SECONDS = 35;

export interface ProxySiteArgs {
  /** The stack's server footprint: SSH for the files and their activation. */
  server: HomeServer;
  /**
   * The stack's validated config: its host names, slots, Metabase and `proxy` settings.
   * @default proxy.image "nginx:1.28.3", proxy.clientMaxBodySize "20m", proxy.cloudflareProxied true, proxy.authenticatedOriginPulls false
   */
  config: ProxyConfig;
  /** The stack's certificate and key, placed beside its site files. */
  certificate: SiteCertificate;
  /** The proxy the files are for (the owner's own, or read from the owner's stack output). */
  proxy: pulumi.Input<Pick<ProxyEndpoint, "container" | "image" | "dir">>;
  /** Files beyond the stack's own four, by path relative to the live directory: the owner's nginx.conf. */
  extraFiles?: Record<string, pulumi.Input<string>>;
  /** Whether the proxy container is there to check and reload when the files are removed (false for the owner, which removes it first). */
  verifyOnRemove: boolean;
  /** The slot the stack's upstream file names: activating it is the blue/green flip. */
  liveSlot: pulumi.Input<Slot>;
  /** Resources the activation waits for (a guest's network attachment, the rollout's smoke checks). */
  dependsOn?: pulumi.Resource[];
  /** With `proxy.authenticatedOriginPulls`: the certificate Cloudflare presents, which nginx then requires. */
  originPulls?: OriginPulls;
}

/**
 * One stack's files on the proxy: conf.d/<stack>.conf, upstreams/<stack>.conf,
 * certs/<stack>.{crt,key} (key 0600), proposed then activated as one change.
 */
export class ProxySite extends pulumi.ComponentResource {
  /** The activation command: whatever must wait for the stack's routes to be live depends on it. */
  readonly activation: command.remote.Command;

  constructor(name: string, args: ProxySiteArgs, opts?: pulumi.ComponentResourceOptions) {
    const { server, config, certificate } = args;
    const stack = server.stack;
    super("bbaegok:proxy:Site", name, { stack }, opts);

    // Paths come from this stack's own dataDir; the activation checks they are the proxy's (see below).
    const dir = server.names.proxyDir;
    const dirs = proxyDirs(dir);
    const paths = stackFilePaths(stack);
    const rendered = pulumi.output(args.liveSlot).apply((live) => stackProxyFiles(config, stack, containerLayout(dir), live));
    if (config.proxy.authenticatedOriginPulls !== (args.originPulls !== undefined)) {
      throw new Error(`stack ${stack}: proxy.authenticatedOriginPulls is ${config.proxy.authenticatedOriginPulls} but the proxy site was ${args.originPulls ? "given" : "not given"} an origin-pull certificate`);
    }
    const contents: Record<string, pulumi.Input<string>> = {
      ...args.extraFiles,
      [paths.conf]: rendered.conf,
      [paths.upstreams]: rendered.upstreams,
      [paths.certificate]: certificate.certificatePem,
      [paths.key]: certificate.privateKeyPem,
      ...(args.originPulls ? { [originPullsCertificatePath(stack)]: args.originPulls.certificatePem } : {}),
    };

    const proposed = Object.entries(contents).map(([path, content]) => {
      const isKey = path === paths.key;
      return new ServerFile(
        `${name}-${path.replace(/[^A-Za-z0-9]+/g, "-")}`,
        { connection: server.connection, path: `${dirs.proposed(stack)}/${path}`, mode: isKey ? "0600" : "0644", owner: "root:root", content },
        { parent: this },
      );
    });

    // The checksums of what this run proposed; a key's checksum reveals nothing of it, so it stays readable in the plan.
    const manifest = pulumi.unsecret(
      pulumi.all(Object.entries(contents).map(([path, content]) => pulumi.output(content).apply((text) => ({ path, content: text })))).apply(proposalManifest),
    );
    const files = Object.keys(contents);
    const label = `stack ${stack}`;
    // Root's part (the live files, nginx -t, the reload) runs as a script installed and run through the install helper.
    const asRoot = (action: string, script: string) => runScriptAsRootCommand(`${dir}/bin/${action}-${stack}.sh`, script);
    const scripts = pulumi.output(args.proxy).apply((proxy) => {
      if (proxy.dir !== dir) {
        throw new Error(
          `stack ${stack} places its proxy files under ${dir} (server.dataDir ${config.server.dataDir}), but the proxy ${proxy.container} reads ${proxy.dir}: give this stack the owner's server.dataDir`,
        );
      }
      const activation = { label, liveDir: dirs.live, files, lockPath: dirs.lock, commands: dockerNginxCommands(proxy) };
      return {
        create: asRoot("activate", activationScript({ ...activation, change: { kind: "install", proposedDir: dirs.proposed(stack) } })),
        delete: asRoot("deactivate", activationScript({ ...activation, change: { kind: "remove", verify: args.verifyOnRemove } })),
      };
    });

    this.activation = new command.remote.Command(
      `${name}-activate`,
      {
        connection: server.connection,
        create: scripts.create,
        delete: scripts.delete,
        // A changed file changes the manifest, which runs the activation again.
        stdin: manifest,
        logging: "stdoutAndStderr",
        // The previous output is never needed, and sshd (without AcceptEnv) refuses the variables with a warning on every update.
        addPreviousOutputInEnv: false,
      },
      // Cloudflare presents the certificate before nginx requires it (its host names enabled first).
      { parent: this, dependsOn: [...proposed, ...(args.dependsOn ?? []), ...(args.originPulls ? [args.originPulls] : [])] },
    );
    this.registerOutputs({ files });
  }
}

export interface EdgeProxyArgs {
  /** The owner stack's server footprint: Docker provider, its edge network, SSH. */
  server: HomeServer;
  /**
   * The stack's validated config: its host names, slots, Metabase and `proxy` settings.
   * @default proxy.image "nginx:1.28.3", proxy.clientMaxBodySize "20m", proxy.cloudflareProxied true, proxy.authenticatedOriginPulls false
   */
  config: ProxyConfig;
  /** The owner stack's own certificate. */
  certificate: SiteCertificate;
  /** The owner stack's live slot (its upstream file names it). */
  liveSlot: pulumi.Input<Slot>;
  /** What the activation of the owner's own files waits for (the rollout's smoke checks). */
  activationDependsOn?: pulumi.Resource[];
  /** With `proxy.authenticatedOriginPulls`: the certificate Cloudflare presents for the owner's hosts. */
  originPulls?: OriginPulls;
}

/** The owner stack's proxy: nginx.conf, the container publishing 80/443, and the owner's own site. */
export class EdgeProxy extends pulumi.ComponentResource {
  /** What guest stacks attach to (the owner's stack output `proxy`). */
  readonly endpoint: pulumi.Output<ProxyEndpoint>;
  readonly containerName: string;
  /** The owner's own files' activation, and the container: a rollout's verification waits for both. */
  readonly activation: command.remote.Command;
  readonly container: docker.Container;

  constructor(name: string, args: EdgeProxyArgs, opts?: pulumi.ComponentResourceOptions) {
    const { server, config } = args;
    if (config.proxy.mode !== "owner") throw new Error(`EdgeProxy is for the stack that owns the proxy; ${server.stack} is a guest of ${config.proxy.ownerStack}`);
    super("bbaegok:proxy:EdgeProxy", name, { image: config.proxy.image }, opts);
    const image = config.proxy.image;
    const dir = server.names.proxyDir;
    const layout = containerLayout(dir);
    this.containerName = proxyContainerName(config.service);

    const site = this.createSite(name, args, dir, image, layout);
    const container = this.createContainer(name, args, dir, image, layout.confDir, site);
    this.activation = site.activation;
    this.container = container;
    this.endpoint = pulumi.all([container.id, server.edgeNetworkName]).apply(([containerId, network]) => ownerEndpoint(config, { containerId, network }));
    this.registerOutputs({ endpoint: this.endpoint });
  }

  private createSite(name: string, args: EdgeProxyArgs, dir: string, image: string, layout: ReturnType<typeof containerLayout>): ProxySite {
    // Cloudflare's published ranges, read at every run: trusted for the client's address and the only peers of proxied stacks.
    const ranges = cloudflare.getIpRangesOutput({}, { parent: this });
    const mainConf = pulumi
      .all([ranges.ipv4Cidrs, ranges.ipv6Cidrs])
      .apply(([v4, v6]) => renderMainConf(layout, { cloudflareRanges: [...v4, ...v6], workerShutdownTimeout: `${WORKER_SHUTDOWN_SECONDS}s` }));
    return new ProxySite(
      `${name}-site`,
      {
        server: args.server,
        config: args.config,
        certificate: args.certificate,
        proxy: { container: this.containerName, image, dir },
        extraFiles: { [MAIN_CONF]: mainConf },
        // The container is deleted before its configuration (it depends on it): nothing to check then.
        verifyOnRemove: false,
        liveSlot: args.liveSlot,
        ...(args.activationDependsOn ? { dependsOn: args.activationDependsOn } : {}),
        ...(args.originPulls ? { originPulls: args.originPulls } : {}),
      },
      { parent: this },
    );
  }

  private createContainer(name: string, args: EdgeProxyArgs, dir: string, image: string, confDir: string, site: ProxySite): docker.Container {
    const dockerOpts = { parent: this, provider: args.server.docker };
    const pulled = new docker.RemoteImage(`${name}-image`, { name: image, keepLocally: true }, dockerOpts);
    const live = proxyDirs(dir).live;
    return platformContainer(
      name,
      { role: "proxy", stack: args.server.stack },
      {
        name: this.containerName,
        image: pulled.imageId,
        memory: 256,
        memorySwap: 256,
        command: ["nginx", "-c", `${confDir}/${MAIN_CONF}`, "-g", "daemon off;"],
        envs: ["NGINX_ENTRYPOINT_QUIET_LOGS=1"],
        // The only published ports on the server.
        ports: [
          { internal: 80, external: 80 },
          { internal: 443, external: 443 },
        ],
        // The configuration lives on the host; the same path inside, so the rendered paths hold on both sides.
        mounts: [{ type: "bind", source: live, target: live, readOnly: true }],
        networksAdvanced: [{ name: args.server.edgeNetworkName }],
        // SIGQUIT is nginx's graceful stop: in-flight requests finish first.
        stopSignal: "SIGQUIT",
        stopTimeout: STOP_TIMEOUT_SECONDS,
      },
      // Guests connect the proxy to their own networks (see the top of this file): a refresh that
      // sees those networks must not plan a replacement of the server's one entrance.
      // A fixed name: the old container goes before the new one starts (Docker refuses two of one name).
      { ...dockerOpts, deleteBeforeReplace: true, dependsOn: [site], ignoreChanges: ["networksAdvanced"] },
    );
  }
}

export interface GuestProxyArgs {
  /** The guest stack's server footprint: its edge network, which the proxy is connected to, and SSH. */
  server: HomeServer;
  /**
   * The stack's validated config: its host names, slots, Metabase and `proxy` settings.
   * @default proxy.image "nginx:1.28.3", proxy.clientMaxBodySize "20m", proxy.cloudflareProxied true, proxy.authenticatedOriginPulls false
   */
  config: ProxyConfig;
  /** The guest stack's own certificate. */
  certificate: SiteCertificate;
  /** The owner stack, fully qualified (`<organization>/bbaegok-infra/<stack>`), and its proxy read with ownerProxyEndpoint. */
  ownerStack: string;
  /** The owner's proxy (container, image, directory), read from its `proxy` stack output. */
  endpoint: pulumi.Output<ProxyEndpoint>;
  /** The guest stack's live slot (its upstream file names it). */
  liveSlot: pulumi.Input<Slot>;
  /** What the activation of the guest's files waits for (the rollout's smoke checks). */
  activationDependsOn?: pulumi.Resource[];
  /** With `proxy.authenticatedOriginPulls`: the certificate Cloudflare presents for the guest's hosts. */
  originPulls?: OriginPulls;
}

/** The proxy a guest stack attaches to: the owner stack's `proxy` output, checked. */
export function ownerProxyEndpoint(name: string, ownerStack: string, stack: string, opts?: pulumi.CustomResourceOptions): pulumi.Output<ProxyEndpoint> {
  const owner = new pulumi.StackReference(name, { name: ownerStack }, opts);
  return owner.requireOutput("proxy").apply((value: unknown) => {
    const parsed = proxyEndpointSchema.safeParse(value);
    if (!parsed.success) {
      throw new Error(
        `stack ${stack} cannot attach to the proxy: the output "proxy" of ${ownerStack} is not what an owner exports (${parsed.error.issues.map((i) => `${i.path.join(".") || "value"}: ${i.message}`).join("; ")}); run pulumi up on ${ownerStack} first`,
      );
    }
    return parsed.data;
  });
}

/** A guest stack on the owner's proxy: the proxy joins the guest's edge network, then the guest's files go live. */
export class GuestProxy extends pulumi.ComponentResource {
  /** The proxy this stack attached to, as the owner exports it. */
  readonly endpoint: pulumi.Output<ProxyEndpoint>;
  /** The guest's files' activation: a rollout's verification waits for it. */
  readonly activation: command.remote.Command;

  constructor(name: string, args: GuestProxyArgs, opts?: pulumi.ComponentResourceOptions) {
    const { server } = args;
    super("bbaegok:proxy:GuestProxy", name, { ownerStack: args.ownerStack }, opts);
    this.endpoint = args.endpoint;

    const attachment = new command.remote.Command(
      `${name}-network`,
      {
        connection: server.connection,
        create: pulumi.all([this.endpoint, server.edgeNetworkName]).apply(([proxy, network]) => attachNetworkCommand(proxy.containerId, network)),
        delete: pulumi.all([this.endpoint, server.edgeNetworkName]).apply(([proxy, network]) => detachNetworkCommand(proxy.containerId, network)),
        // A new proxy container (the owner replaced it) must join the network again.
        triggers: [this.endpoint.containerId],
        logging: "stdoutAndStderr",
        // The previous output is never needed, and sshd (without AcceptEnv) refuses the variables with a warning on every update.
        addPreviousOutputInEnv: false,
      },
      { parent: this },
    );

    const site = new ProxySite(
      `${name}-site`,
      {
        server,
        config: args.config,
        certificate: args.certificate,
        proxy: this.endpoint,
        verifyOnRemove: true,
        liveSlot: args.liveSlot,
        dependsOn: [attachment, ...(args.activationDependsOn ?? [])],
        ...(args.originPulls ? { originPulls: args.originPulls } : {}),
      },
      { parent: this },
    );
    this.activation = site.activation;
    this.registerOutputs({ endpoint: this.endpoint });
  }
}
