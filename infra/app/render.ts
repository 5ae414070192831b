// Pure description of the app's blue/green slots: names, images, environment,
// health check. Secrets never appear here: the database password reaches
// Spring Boot as a file through `configtree`.
import { durationSeconds } from "../../stacks/config/rules.js";
import { JDBC_DRIVERS, type AppEnvSetByProgram, type JdbcDriver, type Slot, type StackConfig } from "../../stacks/config/schema.js";
import { DATABASE_ALIAS, DATABASE_COLLATION } from "../database/render.js";
import { primaryHost, primaryReadTimeoutSeconds, readReplica, replicaReadHost, slotDatabase } from "../replica/render.js";
import { dockerHealthCheck, shellQuote } from "../server/render.js";

export const SLOTS: readonly Slot[] = ["blue", "green"];

export function otherSlot(slot: Slot): Slot {
  return slot === "blue" ? "green" : "blue";
}

/** `bbaegok-prod-app-blue`: the container, and its name on the stack's networks. */
export function slotContainerName(prefix: string, slot: Slot): string {
  return `${prefix}-app-${slot}`;
}

/** Where the app's secret files are mounted; each file name is a Spring property. */
export const APP_SECRETS_MOUNT = "/run/secrets/app";
export const DATASOURCE_PASSWORD_FILE = "spring.datasource.password";

/** The JDBC driver the app bundles: `app.jdbcDriver`, else the engine's own. */
export function appJdbcDriver(config: Pick<StackConfig, "app" | "database">): JdbcDriver {
  return config.app.jdbcDriver ?? JDBC_DRIVERS[config.database.engine][0];
}

/**
 * The JDBC URL of the service database for the app's driver, on the primary
 * (`db`) or on the read replica's host; `readTimeoutSeconds`: the driver's
 * socketTimeout (in its own unit: milliseconds for MariaDB's and MySQL's
 * drivers, seconds for PostgreSQL's), none when absent.
 */
export function jdbcUrl(config: Pick<StackConfig, "app" | "database">, host: string = DATABASE_ALIAS, readTimeoutSeconds?: number): string {
  const db = config.database;
  const params: string[] = [];
  switch (appJdbcDriver(config)) {
    case "mariadb-java-client":
      if (readTimeoutSeconds) params.push(`socketTimeout=${readTimeoutSeconds * 1000}`);
      return withParams(`jdbc:mariadb://${host}:3306/${db.name}`, params);
    case "mysql-connector-j":
      params.push(
        // With characterEncoding alone Connector/J gives the connection its own default utf8mb4 collation
        // (utf8mb4_general_ci on MariaDB 10.11, utf8mb4_0900_ai_ci on servers it takes for MySQL 8), not the database's.
        "characterEncoding=UTF-8",
        `connectionCollation=${DATABASE_COLLATION}`,
        // The servers' zone (TZ=UTC), which Connector/J would otherwise take to be the JVM's.
        "connectionTimeZone=UTC",
      );
      if (readTimeoutSeconds) params.push(`socketTimeout=${readTimeoutSeconds * 1000}`);
      return withParams(`jdbc:mysql://${host}:3306/${db.name}`, params);
    case "postgresql":
      if (readTimeoutSeconds) params.push(`socketTimeout=${readTimeoutSeconds}`);
      return withParams(`jdbc:postgresql://${host}:5432/${db.name}`, params);
  }
}

function withParams(url: string, params: string[]): string {
  return params.length ? `${url}?${params.join("&")}` : url;
}

function readReplicaEnv(config: Pick<StackConfig, "app" | "database">): Partial<Record<AppEnvSetByProgram, string>> {
  // A slot staged for a switch of the primary is rendered as it will be once switched, when the flip makes it live as it is.
  const replica = readReplica(slotDatabase(config.database));
  if (!replica) return {};
  return {
    // A bounded wait for the replica's answers: one whose server loses power leaves reads in flight hanging otherwise.
    SPRING_DATASOURCE_REPLICA_URL: jdbcUrl(config, replicaReadHost(replica), replica.readTimeoutSeconds),
    SPRING_DATASOURCE_REPLICA_USERNAME: config.database.user,
    // Spring Boot's db health checks a routing DataSource's every target, the replica too: a replica that is
    // down (or a link that is) would turn every slot unhealthy and stop every deploy. The app reaches the
    // replica only through its routing DataSource (README, "Read replicas"), so the health follows the primary.
    // management.health.db.ignore-routing-data-sources, in the variable form Spring documents (dashes removed).
    MANAGEMENT_HEALTH_DB_IGNOREROUTINGDATASOURCES: "true",
  };
}

/** The slot's environment: the stack's plain `app.env` over what the platform sets. */
export function slotEnvs(config: Pick<StackConfig, "app" | "database">, slot: Slot): string[] {
  // Only names the schema keeps out of app.env (APP_ENV_SET_BY_PROGRAM): a new one must be added there first.
  const managed: Partial<Record<AppEnvSetByProgram, string>> = {
    SERVER_PORT: String(config.app.port),
    // Spring Boot finishes in-flight requests on SIGTERM instead of cutting them.
    SERVER_SHUTDOWN: "graceful",
    // The writes: on the original, or on the replica once promoted (npm run promote); a slot staged for a switch as once switched.
    SPRING_DATASOURCE_URL: jdbcUrl(config, primaryHost(config.database), primaryReadTimeoutSeconds(config.database)),
    SPRING_DATASOURCE_USERNAME: config.database.user,
    // With a read replica: the read-only datasource (same user and password file; README, "Read replicas"),
    // on this server's data network or at the other server's link address. A promoted replica is the primary:
    // no replica is left to read from.
    ...readReplicaEnv(config),
    SPRING_CONFIG_IMPORT: `optional:configtree:${APP_SECRETS_MOUNT}/`,
    // The JVM sizes its heap from the container's limit, not the host's memory.
    JAVA_TOOL_OPTIONS: "-XX:MaxRAMPercentage=75",
    BBAEGOK_SLOT: slot,
  };
  return Object.entries({ ...managed, ...config.app.env })
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`);
}

/**
 * The health check Docker runs inside the slot. Sends the Host header the app
 * expects (apps that validate Host fail checks otherwise); curl, else wget,
 * whichever the image has. A shell command (for the `||`), so every value in
 * it is quoted: a `'`, `;` or `$(` in the path stays part of the URL.
 */
export function slotHealthCheck(app: StackConfig["app"], hostHeader: string) {
  const url = shellQuote(`http://127.0.0.1:${app.port}${app.healthCheck.path}`);
  const host = shellQuote(`Host: ${hostHeader}`);
  const check = `curl -fsS -o /dev/null -H ${host} ${url} || wget -q -O /dev/null --header ${host} ${url}`;
  return dockerHealthCheck({
    tests: ["CMD-SHELL", check],
    interval: app.healthCheck.interval,
    timeout: app.healthCheck.timeout,
    retries: app.healthCheck.retries,
    startPeriod: app.healthCheck.startPeriod,
  });
}

/** Seconds Pulumi waits for a new slot to turn healthy before failing the run. */
export function slotWaitSeconds(app: StackConfig["app"]): number {
  return Math.ceil(durationSeconds(app.deployTimeout));
}
