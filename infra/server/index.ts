// The home server as Pulumi sees it: a Docker provider that reaches it, the
// stack's private networks, and files placed on it over SSH.
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { StackConfig } from "../../stacks/config/schema.js";
import { RETIRED_INPUTS, platformSettings, type ContainerRole, type PlatformSettings } from "./container.js";
import { dockerHost, edgeAddressing, SSH_CONTROL_DIR, sshClientOptions, installFileCommand, removeFileCommand, stackNames, type EdgeAddressing, type FileSpec, type ServerReach, type StackNames } from "./render.js";

export * from "./container.js";
export * from "./render.js";

export type SshConnection = command.types.input.remote.ConnectionArgs;

export interface HomeServerArgs {
  /**
   * The stack's validated `server` config: where Docker and SSH are reached, the data directory, the edge subnet.
   * @default ssh.port 22, dataDir "/srv/bbaegok"
   */
  server: StackConfig["server"];
  /**
   * The service's short name, the first part of every name on the server.
   * @default "bbaegok" (the config's `service`)
   */
  service: string;
  /** The stack (environment) name, e.g. "prod". */
  stack: string;
}

/**
 * One stack's footprint on the home server: the Docker provider every
 * container of the stack uses, an edge network (proxy ↔ app) and an internal
 * data network (app ↔ database, no route out). The edge network has the
 * stack's own subnet; Docker gives dynamic addresses only from its upper half,
 * so the slots' and Metabase's fixed addresses are never taken.
 */
export class HomeServer extends pulumi.ComponentResource {
  /** Pass as `provider` to every Docker resource of the stack. */
  readonly docker: docker.Provider;
  /** SSH connection for files and commands on the server (keys from the SSH agent). */
  readonly connection: SshConnection;
  readonly names: StackNames;
  /** The stack (environment) this footprint belongs to. */
  readonly stack: string;
  /** Network the proxy joins to reach the app slots. */
  readonly edgeNetworkName: pulumi.Output<string>;
  /** The edge network's subnet and the fixed addresses of the slots and Metabase on it. */
  readonly edgeAddresses: EdgeAddressing;
  /** Internal network of the app slots, the database and Metabase. */
  readonly dataNetworkName: pulumi.Output<string>;

  constructor(name: string, args: HomeServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("bbaegok:server:HomeServer", name, { host: args.server.host }, opts);
    this.stack = args.stack;
    this.names = stackNames(args.service, args.stack, args.server.dataDir);
    this.edgeAddresses = edgeAddressing(args.server.edgeSubnet);
    this.connection = sshConnection(args.server);
    this.docker = dockerProvider(name, args.server, this);

    const networkOpts = { parent: this, provider: this.docker };
    const { subnet, ipRange, gateway } = this.edgeAddresses;
    // Docker cannot change a network's addressing in place, and the name is fixed: a new subnet replaces the network, old one first.
    const edge = new docker.Network(
      `${name}-edge`,
      { name: this.names.edgeNetwork, driver: "bridge", ipamConfigs: [{ subnet, ipRange, gateway }] },
      { ...networkOpts, deleteBeforeReplace: true },
    );
    const data = new docker.Network(`${name}-data`, { name: this.names.dataNetwork, driver: "bridge", internal: true }, networkOpts);
    this.edgeNetworkName = edge.name;
    this.dataNetworkName = data.name;

    this.registerOutputs({ edgeNetworkName: this.edgeNetworkName, dataNetworkName: this.dataNetworkName });
  }
}

/** The SSH connection of commands and files on a server; its host key is the pinned one. */
export function sshConnection(server: ServerReach): SshConnection {
  // The command provider accepts any host key when none is given: this one is required by the schema.
  return { host: server.host, port: server.ssh.port, user: server.ssh.user, hostKey: server.ssh.hostKey };
}

/** The Docker provider of a server (`<name>-docker`): over SSH with the pinned key and one shared connection (sshClientOptions). */
export function dockerProvider(name: string, server: ServerReach, parent: pulumi.Resource): docker.Provider {
  // Docker's ssh shares one connection through a socket in ~/.ssh; ssh will not start if that folder is missing (a fresh CI runner).
  mkdirSync(join(homedir(), SSH_CONTROL_DIR), { recursive: true, mode: 0o700 });
  return new docker.Provider(`${name}-docker`, { host: dockerHost(server), sshOpts: sshClientOptions(server) }, { parent });
}

export interface OtherServerArgs {
  /** The other server: its SSH address, pinned host key and data directory (e.g. a replica's `server`). */
  server: ServerReach & { dataDir: string };
  /** The service's name (`service`), the first part of every name on that server. */
  service: string;
  /** The stack's name: names there are the stack's own, as on its main server. */
  stack: string;
}

/**
 * Another server of the stack (a read replica's): its own Docker provider and
 * SSH connection, made as HomeServer makes the stack's, and the stack's names
 * under its data directory. No networks: what runs there declares its own.
 */
export class OtherServer extends pulumi.ComponentResource {
  readonly docker: docker.Provider;
  readonly connection: SshConnection;
  readonly names: StackNames;
  readonly host: string;

  constructor(name: string, args: OtherServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("bbaegok:server:OtherServer", name, { host: args.server.host }, opts);
    this.host = args.server.host;
    this.names = stackNames(args.service, args.stack, args.server.dataDir);
    this.connection = sshConnection(args.server);
    this.docker = dockerProvider(name, args.server, this);
    this.registerOutputs({ host: this.host });
  }
}

export interface ServerFileArgs extends FileSpec {
  /** The SSH connection to the server (HomeServer.connection). */
  connection: SshConnection;
  /** The file's text; pass a secret Output for secrets, it stays secret in state and logs. */
  content: pulumi.Input<string>;
}

/**
 * A file placed on the server over SSH, installed atomically with its mode and
 * owner, updated in place when its content changes, removed on delete.
 * Because it is not part of any container's definition, changing it never
 * replaces a container.
 */
export class ServerFile extends pulumi.ComponentResource {
  readonly path: string;

  constructor(name: string, args: ServerFileArgs, opts?: pulumi.ComponentResourceOptions) {
    const { connection, ...shown } = args;
    super("bbaegok:server:File", name, shown, opts);
    this.path = args.path;
    new command.remote.Command(
      `${name}-install`,
      {
        connection,
        create: installFileCommand(args),
        delete: removeFileCommand(args),
        stdin: args.content,
        // A new path is a new file: replace, so the old path is removed.
        triggers: [args.path],
        logging: "stderr",
        // The previous output is never needed, and sshd (without AcceptEnv) refuses the variables with a warning on every update.
        addPreviousOutputInEnv: false,
      },
      { parent: this },
    );
    this.registerOutputs({ path: this.path });
  }
}

/** The only inputs of a retired container (RETIRED_INPUTS) a run may still change. */
const RETIRED_CHANGES: ReadonlySet<string> = new Set(Object.keys(RETIRED_INPUTS));

/** A container's inputs but the platform's (platformSettings): a component cannot set those itself. */
export type PlatformContainerArgs = Omit<docker.ContainerArgs, keyof PlatformSettings>;

/**
 * Which platform settings a container gets: its role in its stack (`retired`: the original primary after a promotion,
 * see RETIRED_INPUTS), or (an app slot) the ones its recorded spec holds.
 */
export type ContainerPlatform = { role: ContainerRole; stack: string; retired?: boolean } | { recorded: { [K in keyof PlatformSettings]: pulumi.Input<PlatformSettings[K]> } };

/**
 * Every container of the platform is made here: `args` with the platform's
 * restart policy, log rotation and role and stack labels. An app slot passes
 * the settings its recorded spec holds instead (`recorded`): they were
 * platformSettings when the slot was planned, and the container that serves
 * is never changed by a new version of this code (infra/app/rollout.ts).
 */
export function platformContainer(name: string, platform: ContainerPlatform, args: PlatformContainerArgs, opts?: pulumi.CustomResourceOptions): docker.Container {
  if ("recorded" in platform) return new docker.Container(name, { ...args, ...platform.recorded }, opts);
  const inputs = { ...args, ...platformSettings(platform.role, platform.stack) };
  if (!platform.retired) return new docker.Container(name, inputs, opts);
  // Retired (RETIRED_INPUTS): it does not start again. Frozen but for that: a later change of the config (a version,
  // a flag) must not recreate, and so start, the out-of-date container.
  const frozen = Object.keys(inputs).filter((key) => !RETIRED_CHANGES.has(key));
  return new docker.Container(name, { ...inputs, ...RETIRED_INPUTS }, { ...opts, ignoreChanges: [...(opts?.ignoreChanges ?? []), ...frozen] });
}
