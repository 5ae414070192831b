// Metabase for teammates who must not touch the database: its own PostgreSQL
// application database on a protected volume, secrets as files, a read-only
// login on the service database, and first-run setup done by the program.
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { ReadReplica } from "../replica/index.js";
import type { StackConfig } from "../../stacks/config/schema.js";
import type { ServiceDatabase } from "../database/index.js";
import { DATABASE_UID, SECRETS_MOUNT } from "../database/render.js";
import { dockerHealthCheck, platformContainer, ServerFile, shellQuote, type HomeServer } from "../server/index.js";
import { METABASE_SECRETS_MOUNT, READONLY_USER, adminSqlCommand, metabaseEntrypoint, readOnlyUserSql, replicaReadOnlyUserSql, setupScript } from "./render.js";

export interface MetabaseArgs {
  /** The stack's server footprint: Docker provider, networks, Metabase's fixed edge address, SSH. */
  server: HomeServer;
  /**
   * The stack's validated config: `metabase` (images, memory, tables the
   * read-only login sees, admin), `domains.metabase` (its public host, required),
   * `database` (what the read-only login is made on).
   * @default metabase.image "metabase/metabase:v0.56.9", metabase.databaseImage "postgres:16.13", metabase.memoryMb 2048, metabase.tables [] (every table)
   */
  config: Pick<StackConfig, "metabase" | "database" | "domains" | "service">;
  /** The service database: the read-only login is applied through its container, after it runs. */
  database: ServiceDatabase;
  /**
   * The service database's read replica, when the stack has one: Metabase's
   * data source reads from it. MariaDB/MySQL replicas keep their own accounts
   * (the `mysql` schema is not replicated), so the read-only login is made
   * there too; PostgreSQL's standby gets it from the primary.
   */
  replica?: ReadReplica;
}

/** Metabase's own database: its name, user and host alias on the data network. */
export const METABASE_APP_DB = { name: "metabase", user: "metabase", alias: "metabase-db" } as const;

export class Metabase extends pulumi.ComponentResource {
  /** Public URL of the dashboard. */
  readonly url: string;
  /** Container name, the proxy's upstream (port 3000). */
  readonly containerName: string;
  readonly port = 3000;
  /** Container of Metabase's PostgreSQL application database (backed up like the service database). */
  readonly appDatabaseContainer: string;
  /** The first administrator's password (secret). */
  readonly adminPassword: pulumi.Output<string>;

  constructor(name: string, args: MetabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    const { server, config, database } = args;
    const host = config.domains.metabase;
    if (!host) throw new Error("Metabase needs domains.metabase (the stack config validation should have said so)");
    super("bbaegok:metabase:Metabase", name, { host, image: config.metabase.image }, opts);
    const names = server.names;
    const mb = config.metabase;
    this.url = `https://${host}`;
    this.containerName = `${names.prefix}-metabase`;
    this.appDatabaseContainer = names.metabaseDatabaseContainer;
    const dockerOpts = { parent: this, provider: server.docker };

    const generated = (suffix: string, length = 32, minNumeric = 0) =>
      pulumi.secret(new random.RandomPassword(`${name}-${suffix}`, { length, special: false, ...(minNumeric ? { minNumeric } : {}) }, { parent: this }).result);
    const appDbPassword = generated("app-db-password");
    // MB_ENCRYPTION_SECRET_KEY encrypts the connection details Metabase stores; it must never change.
    const encryptionKey = generated("encryption-key", 64);
    // At least one digit: Metabase's default password rule refuses a password without one (its setup would fail about 1 run in 280).
    this.adminPassword = generated("admin-password", 32, 1);
    const readonlyPassword = generated("readonly-password");

    const secretsDir = `${names.secretsDir}/metabase`;
    const file = (suffix: string, path: string, owner: string, content: pulumi.Output<string>) =>
      new ServerFile(`${name}-${suffix}`, { connection: server.connection, path, mode: "0400", owner, content }, { parent: this });
    const metabaseFiles = [
      file("app-db-password-file", `${secretsDir}/app_db_password`, "root:root", appDbPassword),
      file("encryption-key-file", `${secretsDir}/encryption_key`, "root:root", encryptionKey),
      file("admin-password-file", `${secretsDir}/admin_password`, "root:root", this.adminPassword),
      file("readonly-password-file", `${secretsDir}/readonly_password`, "root:root", readonlyPassword),
    ];
    const appDbSecretsDir = `${names.secretsDir}/metabase-db`;
    const appDbFile = file("app-db-secret-file", `${appDbSecretsDir}/db_password`, DATABASE_UID, appDbPassword);

    // Metabase's application database: PostgreSQL, not the embedded H2 that corrupts on a hard stop.
    const appDbImage = new docker.RemoteImage(`${name}-db-image`, { name: mb.databaseImage, keepLocally: true }, dockerOpts);
    const appDbVolume = new docker.Volume(`${name}-db-volume`, { name: `${names.prefix}-metabase-db-data` }, { ...dockerOpts, protect: true, retainOnDelete: true });
    const appDb = platformContainer(
      `${name}-db`,
      { role: "metabase-db", stack: server.stack },
      {
        name: this.appDatabaseContainer,
        image: appDbImage.imageId,
        memory: 512,
        memorySwap: 512,
        envs: [`POSTGRES_PASSWORD_FILE=${SECRETS_MOUNT}/db_password`, `POSTGRES_USER=${METABASE_APP_DB.user}`, `POSTGRES_DB=${METABASE_APP_DB.name}`],
        networksAdvanced: [{ name: server.dataNetworkName, aliases: [METABASE_APP_DB.alias] }],
        volumes: [{ volumeName: appDbVolume.name, containerPath: "/var/lib/postgresql/data" }],
        mounts: [{ type: "bind", source: appDbSecretsDir, target: SECRETS_MOUNT, readOnly: true }],
        healthcheck: dockerHealthCheck({ tests: ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", METABASE_APP_DB.user, "-d", METABASE_APP_DB.name], interval: "10s", timeout: "5s", retries: 5, startPeriod: "30s" }),
        stopTimeout: 60,
        wait: true,
        waitTimeout: 180,
      },
      // Fixed names: the old container goes before the new one starts (Docker refuses two of one name).
      { ...dockerOpts, deleteBeforeReplace: true, dependsOn: [appDbFile] },
    );

    // The read-only login on the service database, applied (and re-applied) as its administrator.
    const readonlyUser = new command.remote.Command(
      `${name}-readonly-user`,
      {
        connection: server.connection,
        create: pulumi.interpolate`${database.containerName.apply((c) => adminSqlCommand(config.database.engine, c, config.database.name))}`,
        stdin: pulumi.secret(readonlyPassword.apply((pw) => readOnlyUserSql(config.database, mb.tables, pw))),
        delete: pulumi.interpolate`${database.containerName.apply((c) => `echo ${shellQuote(dropUserSql(config.database.engine))} | ${adminSqlCommand(config.database.engine, c, config.database.name)}`)}`,
        logging: "stderr",
        // The previous output is never needed, and sshd (without AcceptEnv) refuses the variables with a warning on every update.
        addPreviousOutputInEnv: false,
      },
      { parent: this, dependsOn: [database] },
    );
    const replicaLogin = args.replica && config.database.engine !== "postgres" ? readOnlyLoginOnReplica(this, args.replica) : undefined;

    const image = new docker.RemoteImage(`${name}-image`, { name: mb.image, keepLocally: true }, dockerOpts);
    const heapMb = Math.floor(mb.memoryMb * 0.75);
    const container = platformContainer(
      `${name}-container`,
      { role: "metabase", stack: server.stack },
      {
        name: this.containerName,
        image: image.imageId,
        memory: mb.memoryMb,
        memorySwap: mb.memoryMb,
        entrypoints: metabaseEntrypoint(),
        envs: [
          "MB_DB_TYPE=postgres",
          `MB_DB_HOST=${METABASE_APP_DB.alias}`,
          "MB_DB_PORT=5432",
          `MB_DB_DBNAME=${METABASE_APP_DB.name}`,
          `MB_DB_USER=${METABASE_APP_DB.user}`,
          `MB_SITE_URL=${this.url}`,
          "MB_ANON_TRACKING_ENABLED=false",
          `JAVA_OPTS=-Xmx${heapMb}m`,
        ],
        // A fixed address on the edge network: the proxy's upstream for Metabase.
        networksAdvanced: [{ name: server.edgeNetworkName, ipv4Address: server.edgeAddresses.metabase }, { name: server.dataNetworkName }],
        mounts: [{ type: "bind", source: secretsDir, target: METABASE_SECRETS_MOUNT, readOnly: true }],
        healthcheck: dockerHealthCheck({ tests: ["CMD-SHELL", "curl -fsS http://127.0.0.1:3000/api/health || exit 1"], interval: "15s", timeout: "5s", retries: 5, startPeriod: "180s" }),
        stopTimeout: 30,
        wait: true,
        waitTimeout: 600,
      },
      { ...dockerOpts, deleteBeforeReplace: true, dependsOn: [appDb, ...metabaseFiles] },
    );

    new command.remote.Command(
      `${name}-setup`,
      {
        connection: server.connection,
        create: `docker exec -i ${this.containerName} sh -s`,
        stdin: setupScript({
          engine: config.database.engine,
          databaseName: config.database.name,
          databasePort: database.port,
          ...(args.replica ? { databaseHost: args.replica.host } : {}),
          adminEmail: mb.adminEmail,
          siteName: config.service,
        }),
        logging: "stdoutAndStderr",
        // The previous output is never needed, and sshd (without AcceptEnv) refuses the variables with a warning on every update.
        addPreviousOutputInEnv: false,
      },
      { parent: this, dependsOn: [container, readonlyUser, ...(replicaLogin ? [replicaLogin] : [])] },
    );

    function readOnlyLoginOnReplica(parent: Metabase, replica: ReadReplica): command.remote.Command {
      const sql = (pw: string) => replicaReadOnlyUserSql(config.database, mb.tables, pw);
      return new command.remote.Command(
        `${name}-readonly-user-replica`,
        {
          // On the replica's own server when it runs on another one.
          connection: replica.connection,
          create: adminSqlCommand(config.database.engine, replica.containerName, config.database.name),
          stdin: pulumi.secret(readonlyPassword.apply(sql)),
          logging: "stderr",
          addPreviousOutputInEnv: false,
        },
        { parent, dependsOn: [replica] },
      );
    }

    this.registerOutputs({ url: this.url, containerName: this.containerName, appDatabaseContainer: this.appDatabaseContainer });
  }
}

function dropUserSql(engine: StackConfig["database"]["engine"]): string {
  return engine === "postgres"
    ? `DROP OWNED BY ${READONLY_USER}; DROP ROLE IF EXISTS ${READONLY_USER};`
    : `DROP USER IF EXISTS '${READONLY_USER}'@'%';`;
}
