// The service's database: a pinned image, a protected volume that outlives the
// stack, generated passwords kept as Pulumi secrets and handed to the container
// as files (never as environment values).
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { StackConfig } from "../../stacks/config/schema.js";
import { dockerHealthCheck, platformContainer, ServerFile, type HomeServer } from "../server/index.js";
import { APP_PASSWORD_FILE, DATABASE_ALIAS, DATABASE_UID, ROOT_PASSWORD_FILE, SECRETS_MOUNT, databaseRuntime, databaseSpec, replacementNotice, type DatabaseSpec } from "./render.js";
import { primaryReplicationFlags, replicaIsPrimary, replicaNames } from "../replica/render.js";

export interface ServiceDatabaseArgs {
  /** The stack's server footprint (Docker provider, networks, SSH). */
  server: HomeServer;
  /**
   * The stack's validated `database` config: engine, version, name, user and
   * memory of the container, and the replicas (their replication flags are set here).
   * @default memoryMb 1024, replicas [] (stacks/config/schema.ts)
   */
  database: StackConfig["database"];
  /** The `databaseRuntime` this stack exported on its last run (undefined on the first): a change is announced as planned downtime. */
  lastRuntime?: pulumi.Output<unknown>;
  /**
   * A replica on another server reaches the database over a private link
   * (database.replicas[].link): its port is published on the link's address of
   * this server only, once `ready` (the link up: Docker cannot bind an address
   * the host does not have).
   * @default none: no published port
   */
  link?: { address: string; ready: pulumi.Resource[] };
}

const STOP_SECONDS = 60;
const HEALTHY_SECONDS = 300;


export class ServiceDatabase extends pulumi.ComponentResource {
  /** Container name, e.g. `bbaegok-prod-db` (for `docker exec` by backups). */
  readonly containerName: pulumi.Output<string>;
  /** Host name of the database on the stack's data network. */
  readonly host: string = DATABASE_ALIAS;
  readonly port: number;
  readonly databaseName: string;
  readonly user: string;
  /** The application user's password (secret). */
  readonly password: pulumi.Output<string>;
  /** The administrator's (root / postgres) password (secret). */
  readonly rootPassword: pulumi.Output<string>;
  /** The named Docker volume that holds the data. */
  readonly volumeName: pulumi.Output<string>;
  /** What recreates the container when it changes (see databaseRuntime); the stack exports it for the next run. */
  readonly runtime: string;

  constructor(name: string, args: ServiceDatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("bbaegok:database:ServiceDatabase", name, { engine: args.database.engine, version: args.database.version }, opts);
    const { server, database } = args;
    const spec = withReplication(databaseSpec(database), database);
    const names = server.names;
    const dockerOpts = { parent: this, provider: server.docker };
    this.port = spec.port;
    this.runtime = databaseRuntime(spec);
    this.databaseName = database.name;
    this.user = database.user;

    const password = (suffix: string) =>
      pulumi.secret(new random.RandomPassword(`${name}-${suffix}`, { length: 32, special: false }, { parent: this }).result);
    this.rootPassword = password("root-password");
    this.password = password("app-password");

    const secretFile = (suffix: string, file: string, content: pulumi.Output<string>) =>
      new ServerFile(
        `${name}-${suffix}`,
        { connection: server.connection, path: `${names.secretsDir}/db/${file}`, mode: "0400", owner: DATABASE_UID, content },
        { parent: this },
      );
    const files = [secretFile("root-password-file", ROOT_PASSWORD_FILE, this.rootPassword), secretFile("app-password-file", APP_PASSWORD_FILE, this.password)];
    const initDir = `${names.stackDir}/db-init`;
    for (const init of spec.initFiles) {
      files.push(
        new ServerFile(`${name}-init-${init.name.replace(/\W+/g, "-")}`, { connection: server.connection, path: `${initDir}/${init.name}`, mode: "0755", owner: "root:root", dirMode: "0755", content: init.content }, { parent: this }),
      );
    }

    const image = new docker.RemoteImage(`${name}-image`, { name: spec.image, keepLocally: true }, dockerOpts);

    // The data outlives everything else: protected, and kept on the server even
    // if the stack is destroyed or the resource is removed from the program.
    const volume = new docker.Volume(`${name}-volume`, { name: names.databaseVolume }, { ...dockerOpts, protect: true, retainOnDelete: true });
    this.volumeName = volume.name;

    // Docker publishes no port of a container on internal networks only: the link's port goes through a routed bridge of its own.
    const linkNetwork = args.link ? new docker.Network(`${name}-link-network`, { name: replicaNames(names.prefix).linkNetwork, driver: "bridge" }, dockerOpts) : undefined;
    // Once its replica is promoted, the original is out of date: it must not come back by itself (RETIRED_INPUTS).
    const retired = replicaIsPrimary(database);
    const container = platformContainer(
      `${name}-container`,
      { role: "database", stack: server.stack, retired },
      {
        name: names.databaseContainer,
        image: image.imageId,
        memory: database.memoryMb,
        memorySwap: database.memoryMb,
        envs: spec.envs,
        command: spec.command,
        networksAdvanced: [{ name: server.dataNetworkName, aliases: [DATABASE_ALIAS] }, ...(linkNetwork ? [{ name: linkNetwork.name }] : [])],
        ...(args.link ? { ports: [{ internal: spec.port, external: spec.port, ip: args.link.address, protocol: "tcp" }] } : {}),
        volumes: [{ volumeName: volume.name, containerPath: spec.dataPath }],
        mounts: [
          { type: "bind", source: `${names.secretsDir}/db`, target: SECRETS_MOUNT, readOnly: true },
          ...(spec.initFiles.length > 0 ? [{ type: "bind", source: initDir, target: "/docker-entrypoint-initdb.d", readOnly: true }] : []),
        ],
        healthcheck: dockerHealthCheck({ tests: spec.healthcheck, interval: "10s", timeout: "5s", retries: 5, startPeriod: "60s" }),
        // A database flushes on shutdown: give it time before SIGKILL.
        stopTimeout: STOP_SECONDS,
        wait: true,
        waitTimeout: HEALTHY_SECONDS,
      },
      // A fixed name: the old container goes before the new one starts (Docker refuses two of one name).
      { ...dockerOpts, deleteBeforeReplace: true, dependsOn: [...files, ...(args.link?.ready ?? [])] },
    );
    this.containerName = container.name;
    // Retired once its replica is promoted: the promoted container announces its own replacement.
    if (!retired) announceReplacement(container, names.databaseContainer, args.lastRuntime, this.runtime, { stopSeconds: STOP_SECONDS, healthySeconds: HEALTHY_SECONDS });

    this.registerOutputs({ containerName: this.containerName, volumeName: this.volumeName });
  }
}

/** With a replica (database.replicas), the primary writes what replicas read: its replication flags (a change that recreates it, announced as planned downtime). */
function withReplication(spec: DatabaseSpec, database: StackConfig["database"]): DatabaseSpec {
  return database.replicas.length === 0 ? spec : { ...spec, command: [...spec.command, ...primaryReplicationFlags(database.engine)] };
}

/**
 * Says in the preview, before anything happens, that the database the app writes to is about to be replaced
 * (the engine's own "replace" line does not say the service goes down): `runtime` against the stack's last.
 */
export function announceReplacement(on: pulumi.Resource, container: string, lastRuntime: pulumi.Output<unknown> | undefined, runtime: string, timeouts: { stopSeconds: number; healthySeconds: number }): void {
  lastRuntime?.apply((last) => {
    const notice = replacementNotice(container, last, runtime, timeouts);
    if (notice) void pulumi.log.warn(notice, on);
  });
}
