// The read replica of the service database, kept by the engine's own
// replication: a second container of the same image on the stack's data
// network (no published port), its own protected volume, the replication
// password as a file beside the database's others, and the setup run by the
// rendered replica script over SSH. Or, on another server (`elsewhere`), the
// container there on a routed bridge of its own, reaching the primary over
// the private link and reached for reads on its own link address, each
// server running its own copy of the script.
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { StackConfig } from "../../stacks/config/schema.js";
import { announceReplacement, type ServiceDatabase } from "../database/index.js";
import { APP_PASSWORD_FILE, DATABASE_ALIAS, DATABASE_UID, ROOT_PASSWORD_FILE, SECRETS_MOUNT, databaseRuntime, databaseSpec } from "../database/render.js";
import { asRootCommand, dockerHealthCheck, platformContainer, ServerFile, type HomeServer, type OtherServer, type SshConnection } from "../server/index.js";
import {
  REPLICA_ALIAS,
  REPLICATION_PASSWORD_FILE,
  failbackScript,
  MONITOR_PASSWORD_FILE,
  BACKUP_PASSWORD_FILE,
  REPLICATION_PGPASS_FILE,
  SEEDING_PASSWORD_FILE,
  linkAddressOfPrimary,
  linkAddressOfReplica,
  replicaReadHost,
  postgresReplicaEntrypoint,
  standbyStreamingWaitCommand,
  replicaIsPrimary,
  replicaNames,
  replicaScript,
  replicaServerFlags,
  replicaRoleOptions,
  REPLICA_ROLE_MOUNT,
  replicationPgpass,
  type ReplicaConfig,
  type ThisServer,
} from "./render.js";

export * from "./render.js";

export interface ReadReplicaArgs {
  /** The stack's server footprint (Docker provider, data network, SSH). */
  server: HomeServer;
  /** The stack's validated `database` config (engine, version, name, user). */
  database: StackConfig["database"];
  /**
   * This replica's entry of `database.replicas`: how far behind it may fall
   * (`maxLagSeconds`) and its container's memory.
   * @default maxLagSeconds 300, memoryMb the database's
   */
  replica: ReplicaConfig;
  /** The primary it replicates from. */
  primary: ServiceDatabase;
  /**
   * The service's short name, e.g. "bbaegok" (the replica script's log tag).
   * @default "bbaegok" (the config's `service`)
   */
  service: string;
  /**
   * The replica's own server when its config names one (`server`): the
   * container runs there, reaching the primary at `link.primaryAddress`.
   * @default the stack's server, on the data network
   */
  elsewhere?: { host: OtherServer; linkReady: pulumi.Resource[] };
  /** The `databaseRuntime` this stack exported on its last run: once promoted, a change is announced as planned downtime. */
  lastRuntime?: pulumi.Output<unknown>;
}

/** Seconds a replica has to flush on stop, and to turn healthy (seeding it may take long). */
const STOP_SECONDS = 60;
const HEALTHY_SECONDS = 600;

/** Where the PostgreSQL replica's entrypoint is mounted. */
const ENTRYPOINT_MOUNT = "/replica";

export class ReadReplica extends pulumi.ComponentResource {
  /** Container name, e.g. `bbaegok-prod-db-replica`. */
  readonly containerName: string;
  /** Where the app's read-only datasource and Metabase reach it: its alias on the data network, or its address on the link. */
  readonly host: string;
  /** The SSH connection of the server it runs on (commands in its container run there). */
  readonly connection: SshConnection;
  /** The replica's script on the server: `replica.sh setup|wait|status|promote|writable|retire`. */
  readonly scriptPath: string;
  /** The replica's container. */
  readonly container: docker.Container;
  /**
   * Once promoted: `replica.sh writable` run on its server after the container
   * (it was promoted there, and takes writes): what the app's slots, and so
   * the flip, wait for.
   */
  readonly primaryReady?: command.remote.Command;
  /** What recreates its container when it changes (databaseRuntime): the stack exports it once the replica is promoted. */
  readonly runtime: string;

  constructor(name: string, args: ReadReplicaArgs, opts?: pulumi.ComponentResourceOptions) {
    super("bbaegok:replica:ReadReplica", name, { engine: args.database.engine }, opts);
    const { server, database, primary, elsewhere } = args;
    const names = server.names;
    const replicaName = replicaNames(names.prefix);
    const spec = databaseSpec(database);
    // Where the container runs: the stack's server, or the replica's own (its Docker provider, connection and paths).
    const host = elsewhere?.host ?? server;
    const dockerOpts = { parent: this, provider: host.docker };
    const memoryMb = args.replica.memoryMb ?? database.memoryMb;
    const promoted = replicaIsPrimary(database);
    const primaryAddress = linkAddressOfPrimary(args.replica);
    const serverSpec = { engine: database.engine, memoryMb, primaryHost: elsewhere && primaryAddress ? primaryAddress : DATABASE_ALIAS, primaryPort: spec.port, secretsDir: SECRETS_MOUNT, slot: replicaName.slot };
    this.containerName = replicaName.container;
    // PostgreSQL: its entrypoint seeds an empty volume by pg_basebackup, as the database's uid, then runs the image's own.
    const serverCommand = [...(database.engine === "postgres" ? ["docker-entrypoint.sh"] : []), ...spec.command, ...replicaServerFlags(serverSpec)];
    this.runtime = databaseRuntime({ image: spec.image, command: serverCommand, envs: spec.envs }, replicaName.container);
    this.scriptPath = replicaName.script(names.stackDir);
    this.host = replicaReadHost(args.replica);
    this.connection = host.connection;

    const replicationPassword = pulumi.secret(new random.RandomPassword(`${name}-replication-password`, { length: 32, special: false }, { parent: this }).result);
    // MariaDB elsewhere: the login the replica's server dumps the primary as, over the link (replica.bash says why a login of its own).
    const seedingPassword =
      elsewhere && database.engine !== "postgres" ? pulumi.secret(new random.RandomPassword(`${name}-seeding-password`, { length: 32, special: false }, { parent: this }).result) : undefined;
    // And the login on the replica the primary's server reads its state as, over the link (backups' check, status).
    const monitorPassword =
      elsewhere && database.engine !== "postgres" ? pulumi.secret(new random.RandomPassword(`${name}-monitor-password`, { length: 32, special: false }, { parent: this }).result) : undefined;
    // And the login the primary's server's backup dumps the replica as, over the link (both engines).
    const backupPassword = elsewhere ? pulumi.secret(new random.RandomPassword(`${name}-backup-password`, { length: 32, special: false }, { parent: this }).result) : undefined;
    // Each server runs its own copy of replica.sh, which does that server's side; one on the stack's server only has both containers.
    const script = (thisServer: ThisServer) =>
      replicaScript({
        stack: server.stack,
        service: args.service,
        database,
        replica: args.replica,
        primaryContainer: names.databaseContainer,
        replicaContainer: replicaName.container,
        slot: replicaName.slot,
        thisServer,
        ...(elsewhere ? { primaryHost: serverSpec.primaryHost, replicaHost: linkAddressOfReplica(args.replica) } : {}),
      });
    const files = placeFiles(this);
    // Taken out of the stack, the replica's container goes first (it depends on this), then this
    // command's delete drops what setup made for it on the primary (replica.sh retire says why);
    // the script it runs goes after it. Declared in every state, promoted too, so only the
    // replica's removal deletes it.
    const retire = new command.remote.Command(
      `${name}-retire`,
      { connection: server.connection, delete: asRootCommand("run", replicaName.script(names.stackDir), "retire"), logging: "stderr", addPreviousOutputInEnv: false },
      { parent: this, dependsOn: files },
    );
    if (elsewhere && promoted) {
      // The primary now, on its own server (npm run promote): no setup or seeding runs again, they would copy the
      // out-of-date original over it; its server's copy of the script checks it takes writes, as on one server.
      this.container = createContainer(this, [primary, retire, ...files, ...placeFilesElsewhere(this, elsewhere.host), ...elsewhere.linkReady]);
      this.primaryReady = runScript(this, "writable", ["writable"], [this.container], elsewhere.host, [this.container.id]);
    } else if (elsewhere && database.engine !== "postgres") {
      // MariaDB (the schema refuses MySQL): the logins on the primary's server; once the replica runs, its server seeds it over the link.
      const setup = runScript(this, "setup", ["setup"], [primary, ...files]);
      this.container = createContainer(this, [retire, ...placeFilesElsewhere(this, elsewhere.host), ...elsewhere.linkReady]);
      runScript(this, "seed", ["setup", "wait"], [this.container, setup], elsewhere.host);
    } else if (elsewhere) {
      // PostgreSQL: the primary's side here, then the standby's first start there takes its base backup over the link.
      const setup = runScript(this, "setup", ["setup"], [primary, ...files]);
      this.container = createContainer(this, [setup, retire, ...placeFilesElsewhere(this, elsewhere.host), ...elsewhere.linkReady]);
      new command.remote.Command(
        `${name}-wait`,
        { connection: host.connection, create: standbyStreamingWaitCommand(replicaName.container), logging: "stderr", addPreviousOutputInEnv: false },
        { parent: this, dependsOn: [this.container] },
      );
    } else {
      // On the stack's server the setup commands are declared in every state, promoted too, with the same
      // inputs: no promotion, and no way back (npm run failback), creates them again or runs them again, which
      // would set up the promoted replica, fenced or not, from the original (and PostgreSQL's wait would fail
      // the up). A stack promoted before they were declared there gets them at its next up: promoted,
      // replica.sh setup and wait have nothing to do.
      const postgres = database.engine === "postgres";
      // PostgreSQL: the primary's side first; the replica's entrypoint takes its base backup through the slot on its first start.
      const setup = postgres ? [runScript(this, "setup", ["setup"], [primary, ...files])] : [];
      // The primary now (npm run promote): beside it, the failback's copy of the script (the roles swapped), which brings the original back.
      const failback = promoted
        ? [
            new ServerFile(
              `${name}-failback-script`,
              {
                connection: server.connection,
                path: replicaName.failbackScript(names.stackDir),
                mode: "0755",
                owner: "root:root",
                content: failbackScript({ stack: server.stack, service: args.service, database, replica: args.replica, primaryContainer: names.databaseContainer, replicaContainer: replicaName.container, slot: replicaName.slot, failbackDir: replicaName.failbackDir(names.stackDir) }),
              },
              { parent: this },
            ),
          ]
        : [];
      this.container = createContainer(this, [primary, retire, ...setup, ...failback, ...files]);
      // MariaDB/MySQL: the replica is seeded from a dump once its own server runs.
      if (postgres) runScript(this, "wait", ["wait"], [this.container]);
      else runScript(this, "seed", ["setup", "wait"], [this.container]);
      // Promoted: checked again for each container it runs as (a new one after a version change).
      if (promoted) this.primaryReady = runScript(this, "writable", ["writable"], [this.container], server, [this.container.id]);
    }
    // Promoted, it is the database the app writes to: its replacement is announced as the original's was.
    if (promoted) announceReplacement(this.container, replicaName.container, args.lastRuntime, this.runtime, { stopSeconds: STOP_SECONDS, healthySeconds: HEALTHY_SECONDS });
    this.registerOutputs({ containerName: this.containerName, host: this.host });

    function placeFiles(parent: ReadReplica): ServerFile[] {
      const password = replicationPassword;
      // Beside the database's own secrets: the primary and the replica both mount that folder.
      const secret = (suffix: string, file: string, content: pulumi.Output<string>) =>
        new ServerFile(`${name}-${suffix}`, { connection: server.connection, path: `${names.secretsDir}/db/${file}`, mode: "0400", owner: DATABASE_UID, content }, { parent });
      const placed = [
        secret("replication-password-file", REPLICATION_PASSWORD_FILE, password),
        new ServerFile(`${name}-script`, { connection: server.connection, path: replicaName.script(names.stackDir), mode: "0755", owner: "root:root", content: script(elsewhere ? "primary" : "both") }, { parent }),
      ];
      if (seedingPassword) placed.push(secret("seeding-password-file", SEEDING_PASSWORD_FILE, seedingPassword));
      if (monitorPassword) placed.push(secret("monitor-password-file", MONITOR_PASSWORD_FILE, monitorPassword));
      // The backup's client runs in the primary's container; PostgreSQL's setup makes the role here too.
      if (backupPassword) placed.push(secret("backup-password-file", BACKUP_PASSWORD_FILE, backupPassword));
      if (database.engine === "postgres" && !elsewhere) {
        placed.push(
          secret("pgpass-file", REPLICATION_PGPASS_FILE, pulumi.secret(password.apply(replicationPgpass))),
          new ServerFile(`${name}-entrypoint`, { connection: server.connection, path: `${names.stackDir}/replica-init/entrypoint.sh`, mode: "0755", owner: "root:root", dirMode: "0755", content: postgresReplicaEntrypoint(serverSpec) }, { parent }),
        );
      }
      return placed;
    }

    // The replica's image still reads the database's password files at start. A PostgreSQL standby's connection
    // needs libpq's password file and its entrypoint; a MariaDB replica's server its copy of replica.sh, which seeds
    // and connects it with the seeding and replication passwords. On either engine, that copy runs the replica's
    // steps of npm run reseed there.
    function placeFilesElsewhere(parent: ReadReplica, other: OtherServer): ServerFile[] {
      const secret = (suffix: string, file: string, content: pulumi.Output<string>) =>
        new ServerFile(`${name}-elsewhere-${suffix}`, { connection: other.connection, path: `${other.names.secretsDir}/db/${file}`, mode: "0400", owner: DATABASE_UID, content }, { parent });
      const placed = [
        secret("root-password-file", ROOT_PASSWORD_FILE, primary.rootPassword),
        secret("app-password-file", APP_PASSWORD_FILE, primary.password),
        new ServerFile(`${name}-elsewhere-script`, { connection: other.connection, path: replicaName.script(other.names.stackDir), mode: "0755", owner: "root:root", content: script("replica") }, { parent }),
      ];
      if (seedingPassword) {
        return [
          ...placed,
          secret("replication-password-file", REPLICATION_PASSWORD_FILE, replicationPassword),
          secret("seeding-password-file", SEEDING_PASSWORD_FILE, seedingPassword),
          secret("monitor-password-file", MONITOR_PASSWORD_FILE, monitorPassword!),
          secret("backup-password-file", BACKUP_PASSWORD_FILE, backupPassword!),
        ];
      }
      return [
        ...placed,
        secret("pgpass-file", REPLICATION_PGPASS_FILE, pulumi.secret(replicationPassword.apply(replicationPgpass))),
        new ServerFile(`${name}-elsewhere-entrypoint`, { connection: other.connection, path: `${other.names.stackDir}/replica-init/entrypoint.sh`, mode: "0755", owner: "root:root", dirMode: "0755", content: postgresReplicaEntrypoint(serverSpec) }, { parent }),
      ];
    }

    // As root through the install helper, as promote and status run it: the script's folder is root's, not the deploy user's.
    // On the stack's server, or (`on`) the replica's own, with that server's copy of the script.
    function runScript(parent: ReadReplica, suffix: string, steps: string[], dependsOn: pulumi.Resource[], on: HomeServer | OtherServer = server, triggers?: pulumi.Input<string>[]): command.remote.Command {
      return new command.remote.Command(
        `${name}-${suffix}`,
        {
          connection: on.connection,
          create: steps.map((step) => asRootCommand("run", replicaName.script(on.names.stackDir), step)).join(" && "),
          ...(triggers ? { triggers } : {}),
          logging: "stderr",
          // The previous output is never needed, and sshd (without AcceptEnv) refuses the variables with a warning on every update.
          addPreviousOutputInEnv: false,
        },
        { parent, dependsOn },
      );
    }

    function createContainer(parent: ReadReplica, dependsOn: pulumi.Resource[]): docker.Container {
      // MariaDB/MySQL: read-only or, once promoted, writable, by an option file on the replica's server: the flip's
      // up rewrites it and leaves the container as it is (replicaRoleOptions says why).
      const roleOptions = replicaRoleOptions(database.engine, promoted);
      const roleFile = roleOptions
        ? new ServerFile(`${name}-${elsewhere ? "elsewhere-" : ""}role-file`, { connection: host.connection, path: replicaName.roleFile(host.names.stackDir), mode: "0644", owner: "root:root", content: roleOptions }, { parent })
        : undefined;
      const image = new docker.RemoteImage(`${name}-image`, { name: spec.image, keepLocally: true }, dockerOpts);
      // A replica's data is a copy: taken out of the stack, its volume goes with it (protected, the up would
      // fail half-way, after its container and link were gone; retained, a replica added again would start on
      // stale data). Once promoted it is the service's data: protected and retained like the primary's (and
      // the schema refuses removing a promoted replica).
      const volume = new docker.Volume(`${name}-volume`, { name: replicaName.volume }, { ...dockerOpts, protect: promoted, retainOnDelete: promoted });
      const postgres = database.engine === "postgres";
      // Elsewhere: a routed bridge of its own (an internal network has no route to the link, and Docker publishes
      // no port of a container on internal networks only), its port published on its link address only (the
      // app's and Metabase's reads); on the stack's server, the data network and no published port.
      const network = elsewhere
        ? { name: new docker.Network(`${name}-network`, { name: replicaName.remoteNetwork, driver: "bridge" }, dockerOpts).name }
        : { name: server.dataNetworkName, aliases: [REPLICA_ALIAS] };
      const linkAddress = elsewhere ? linkAddressOfReplica(args.replica) : undefined;
      return platformContainer(
        `${name}-container`,
        { role: "database-replica", stack: server.stack },
        {
          name: replicaName.container,
          image: image.imageId,
          memory: memoryMb,
          memorySwap: memoryMb,
          envs: spec.envs,
          command: serverCommand,
          ...(postgres ? { user: DATABASE_UID, entrypoints: [`${ENTRYPOINT_MOUNT}/entrypoint.sh`] } : {}),
          networksAdvanced: [network],
          ...(linkAddress ? { ports: [{ internal: spec.port, external: spec.port, ip: linkAddress, protocol: "tcp" }] } : {}),
          volumes: [{ volumeName: volume.name, containerPath: spec.dataPath }],
          mounts: [
            { type: "bind", source: `${host.names.secretsDir}/db`, target: SECRETS_MOUNT, readOnly: true },
            ...(postgres ? [{ type: "bind", source: `${host.names.stackDir}/replica-init`, target: ENTRYPOINT_MOUNT, readOnly: true }] : []),
            ...(roleFile ? [{ type: "bind", source: roleFile.path, target: REPLICA_ROLE_MOUNT, readOnly: true }] : []),
          ],
          healthcheck: dockerHealthCheck({ tests: spec.healthcheck, interval: "10s", timeout: "5s", retries: 5, startPeriod: "300s" }),
          stopTimeout: STOP_SECONDS,
          wait: true,
          waitTimeout: HEALTHY_SECONDS,
        },
        // A fixed name: the old container goes before the new one starts (Docker refuses two of one name).
        // The role file is mounted by its path, no output: waited for by hand (Docker refuses a missing bind source).
        { ...dockerOpts, deleteBeforeReplace: true, dependsOn: roleFile ? [...dependsOn, roleFile] : dependsOn },
      );
    }
  }
}
