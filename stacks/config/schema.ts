// The one schema of a stack's configuration (Pulumi.<stack>.yaml, namespace
// `bbaegok-infra:`). Types come from here (`z.infer`), never written twice.
// Messages are phrased as what is expected, so an error reads
// `<file>: <key> = <value>: expected …`.
import { z } from "zod";
import { cronProblem, normalCron } from "./cron.js";
import { cidrsOverlap, isHostname, isInZone, isIpv4, isPinnedImage, isPrivateCidr, isPrivateLinkAddress, isSshHostKey, notPublicIpv4, isSubnet24, isTimeZone, isDockerDuration } from "./rules.js";

/** The Pulumi project name; every key of ours is `bbaegok-infra:<key>`. */
export const PROJECT = "bbaegok-infra";

/**
 * Keys that hold secrets. They are never part of the validated plain config:
 * the program reads them with `config.requireSecret` so they stay Outputs
 * marked secret, and the operator sets them with `pulumi config set --secret`.
 */
export const SECRET_KEYS = {
  backupPingUrl: "optional: a health-check URL (e.g. healthchecks.io) pinged on backup success and failure",
  tlsPrivateKey: "only with proxy.tls.source \"provided\": the private key (PEM) of the certificate in proxy.tls.certificate",
  ddnsApiToken: "only with domains.ddns: a Cloudflare API token limited to Zone.DNS Edit on this stack's zone, for the DDNS job",
} as const;
export type SecretKey = keyof typeof SECRET_KEYS;

const slug = (what: string) =>
  z.string({ error: `expected ${what}: lower-case letters, digits and hyphens` }).regex(/^[a-z][a-z0-9-]{1,30}[a-z0-9]$/, {
    error: `expected ${what}: 3-32 lower-case letters, digits and hyphens, starting with a letter`,
  });

const hostname = z.string({ error: "expected a DNS name such as api.bbaegok.kr" }).refine(isHostname, {
  error: "expected a lower-case, fully qualified DNS name such as api.bbaegok.kr",
});

const port = z
  .number({ error: "expected a TCP port number (1-65535)" })
  .int({ error: "expected a whole port number" })
  .min(1, { error: "expected a TCP port number in 1-65535" })
  .max(65535, { error: "expected a TCP port number in 1-65535" });

const pinnedImage = z.string({ error: "expected a container image reference" }).refine(isPinnedImage, {
  error: 'expected an image with a pinned version tag or digest, e.g. "ghcr.io/bbaegok/api:1.8.2" (never "latest" or no tag)',
});

const duration = z.string({ error: 'expected a duration such as "10s"' }).refine(isDockerDuration, {
  error: 'expected a duration such as "500ms", "10s", "2m" or "1h"',
});

const memoryMb = z
  .number({ error: "expected a memory limit in MiB" })
  .int({ error: "expected a whole number of MiB" })
  .min(64, { error: "expected at least 64 MiB" })
  .max(65536, { error: "expected at most 65536 MiB" });

const days = z
  .number({ error: "expected a number of days" })
  .int({ error: "expected a whole number of days" })
  .min(1, { error: "expected at least 1 day" })
  .max(36500, { error: "expected at most 36500 days" });

const absolutePath = z.string({ error: "expected an absolute path" }).regex(/^\/[A-Za-z0-9._/-]*$/, {
  error: "expected an absolute path of letters, digits and ._-/ (no spaces)",
});

const sqlIdentifier = z.string({ error: "expected a database identifier" }).regex(/^[a-z_][a-z0-9_]{0,62}$/, {
  error: "expected a database identifier: lower-case letters, digits and _ (up to 63), starting with a letter or _",
});

// Normalised to one line with single spaces: every cron file and script is rendered from that form.
const cron = z
  .string({ error: 'expected a cron expression such as "0 4 * * *"' })
  .superRefine((value, ctx) => {
    const problem = cronProblem(value);
    if (problem) ctx.addIssue({ code: "custom", message: `expected a 5-field cron expression such as "0 4 * * *" (${problem})` });
  })
  .transform(normalCron);

const cidr = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/(\d|[12]\d|3[0-2])$|^[0-9a-f:]+\/\d{1,3}$/, {
  error: "expected a CIDR block such as 203.0.113.0/24",
});

const RSA_HOST_KEY =
  "expected the server's ed25519 (or ECDSA) host key, not its RSA one: Pulumi's command provider would offer only ssh-rsa (SHA-1) for it, which OpenSSH 8.8 and later refuse; print the ed25519 key with ssh-keyscan -p <port> -t ed25519 <host>";
const HOST_KEY_EXPECTED =
  'expected the server\'s SSH host key as "<type> <base64>", e.g. "ssh-ed25519 AAAAC3Nz…": print it with ssh-keyscan -p <port> -t ed25519 <host> (leave out the host name it prints first) and check it on the server (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)';

export const serverSchema = z.strictObject({
  /** SSH address of the home server, as the operator's machine and CI reach it. */
  host: z
    .string({ error: "expected the server's DNS name or IPv4 address" })
    .refine((v) => isHostname(v) || isIpv4(v), { error: "expected the server's DNS name or IPv4 address" }),
  /** Public IPv4 address of the home connection; the DNS records point here. */
  publicIp: z
    .string({ error: "expected the public IPv4 address" })
    .refine(isIpv4, { error: "expected a public IPv4 address such as 203.0.113.10" })
    .superRefine((value, ctx) => {
      const why = isIpv4(value) ? notPublicIpv4(value) : undefined;
      if (why) ctx.addIssue({ code: "custom", input: value, message: `expected the address the internet reaches the home connection at, not a ${why} one: the DNS records point here (Cloudflare refuses to proxy it); the router's WAN address, or \`curl -4 https://icanhazip.com\` on the server` });
    }),
  ssh: z
    .strictObject(
      {
      user: z.string({ error: "expected the SSH user name" }).regex(/^[a-z_][a-z0-9_-]{0,31}$/, { error: "expected a Unix user name" }),
      port: port.default(22),
      /**
       * The server's public host key (`ssh-ed25519 AAAA…`), the only key every
       * SSH client of the program and ops accepts: without it, passwords and
       * keys would go to whatever answers at the address. Not a secret.
       */
      hostKey: z
        .string({ error: HOST_KEY_EXPECTED })
        .refine(isSshHostKey, { error: (issue) => (String(issue.input).startsWith("ssh-rsa ") ? RSA_HOST_KEY : HOST_KEY_EXPECTED) }),
      },
      { error: "expected a map with user, port and hostKey" },
    ),
  /** Set when Pulumi runs on the server itself: the local Docker socket instead of SSH. */
  dockerSocket: absolutePath.optional(),
  /** Where this project keeps files on the server (config, secrets, scripts). */
  dataDir: absolutePath.default("/srv/bbaegok"),
  /**
   * The stack's edge network (proxy ↔ app), e.g. "172.30.10.0/24": the app
   * slots and Metabase get fixed addresses in it, so the proxy reaches them
   * without resolving names. Stacks on one server need different subnets, and
   * none may overlap another network of the server's Docker (its default pools
   * are 172.17.0.0/16-172.31.0.0/16 and 192.168.0.0/16: `docker network inspect`).
   */
  edgeSubnet: z
    .string({ error: 'expected the edge network\'s private IPv4 /24, such as "172.30.10.0/24"' })
    .refine(isSubnet24, { error: 'expected an IPv4 /24 given by its network address, such as "172.30.10.0/24"', abort: true })
    .refine(isPrivateCidr, { error: "expected a private range (inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)" }),
}, { error: "expected a map with host, publicIp, ssh (user, port, hostKey), dataDir, edgeSubnet" });

/** Another server of the stack (a replica's): reached and pinned as `server` is. */
const otherServerSchema = z.strictObject(
  { host: serverSchema.shape.host, ssh: serverSchema.shape.ssh, dataDir: serverSchema.shape.dataDir },
  { error: "expected a map with host, ssh (user, port, hostKey), dataDir" },
);

const WIREGUARD_ADDRESS_EXPECTED = 'expected the host\'s private address on the WireGuard link, e.g. "10.99.0.1" (inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)';
const wireguardAddress = z.string({ error: WIREGUARD_ADDRESS_EXPECTED }).refine((v) => isIpv4(v) && isPrivateCidr(`${v}/32`), { error: WIREGUARD_ADDRESS_EXPECTED });
const TAILNET_ADDRESS_EXPECTED = 'expected the server\'s tailnet address, e.g. "100.101.102.103" (inside 100.64.0.0/10: tailscale ip -4 on that server)';
const tailnetAddress = z.string({ error: TAILNET_ADDRESS_EXPECTED }).refine((v) => isPrivateLinkAddress(v) && !isPrivateCidr(`${v}/32`), { error: TAILNET_ADDRESS_EXPECTED });

/**
 * The private link between the primary's server and a replica's: the
 * primary's database port is published on `primaryAddress` only (the replica
 * replicates from it), the replica's on `replicaAddress` only (the app and
 * Metabase read it), never on a public address.
 */
const replicaLinkSchema = z.discriminatedUnion(
  "type",
  [
    z.strictObject({
      /** A WireGuard tunnel between the two servers, configured by the program (wg-quick, Debian's wireguard-tools). */
      type: z.literal("wireguard"),
      primaryAddress: wireguardAddress,
      replicaAddress: wireguardAddress,
      /** The UDP port each server listens on for the tunnel (open it in the firewall / router). */
      port: port.default(51820),
    }),
    z.strictObject({
      /** A tailnet both servers already belong to (Tailscale): nothing to configure but the addresses. */
      type: z.literal("tailnet"),
      primaryAddress: tailnetAddress,
      replicaAddress: tailnetAddress,
    }),
  ],
  { error: 'expected link.type "wireguard" or "tailnet", each with primaryAddress and replicaAddress' },
);

export const domainsSchema = z.strictObject({
  /** The Cloudflare zone that holds every host name below. */
  zone: hostname,
  /** The API's public host name for this environment. */
  api: hostname,
  /** Metabase's host name; required when Metabase is enabled. */
  metabase: hostname.optional(),
  /**
   * For a dynamic home IP: a job on the server that points this stack's
   * records at the connection's current address (secret ddnsApiToken).
   * `server.publicIp` is then only the first address.
   */
  ddns: z.strictObject({ schedule: cron.default("*/5 * * * *") }, { error: "expected a map with schedule" }).optional(),
}, { error: "expected a map with zone, api, metabase, ddns" });

/**
 * The app's environment the program owns: infra/app/render.ts sets each of these (its type allows no other),
 * and the two passwords are files it mounts. `app.env` may not set one: it would silently undo a promotion
 * (the writes back on the stale original), the replica, the port the proxy and checks use, or the secrets' files.
 */
export const APP_ENV_SET_BY_PROGRAM = {
  SERVER_PORT: "set app.port",
  SERVER_SHUTDOWN: "graceful shutdown keeps in-flight requests across a switch",
  SPRING_DATASOURCE_URL: "set database.*; the program points it at the primary (the promoted replica after npm run promote)",
  SPRING_DATASOURCE_USERNAME: "set database.user",
  SPRING_DATASOURCE_PASSWORD: "the password is a file the program mounts (never in the environment)",
  SPRING_DATASOURCE_REPLICA_URL: "set database.replicas",
  SPRING_DATASOURCE_REPLICA_USERNAME: "set database.user",
  SPRING_DATASOURCE_REPLICA_PASSWORD: "the password is a file the program mounts (never in the environment)",
  MANAGEMENT_HEALTH_DB_IGNOREROUTINGDATASOURCES: "set with a replica, so the slots' health follows the primary",
  SPRING_CONFIG_IMPORT: "it imports the secret files; add other imports with spring.config.import in the app",
  JAVA_TOOL_OPTIONS: "it sizes the heap from the container's limit; put JVM options in JDK_JAVA_OPTIONS",
  BBAEGOK_SLOT: "it names the slot",
} as const;
export type AppEnvSetByProgram = keyof typeof APP_ENV_SET_BY_PROGRAM;

/** The JDBC drivers an app may bundle (Maven artifacts). */
const JDBC_DRIVER_NAMES = ["mariadb-java-client", "mysql-connector-j", "postgresql"] as const;
export type JdbcDriver = (typeof JDBC_DRIVER_NAMES)[number];
/**
 * The drivers an app may bundle for each engine, its own first (the
 * default). The driver decides the datasource URL's scheme, and Spring Boot
 * loads the driver the URL names: an app without it does not start (Hikari's
 * "Failed to load driver class"). MySQL's Connector/J also speaks to MariaDB;
 * MariaDB's Connector/J 3 does not support MySQL servers.
 */
export const JDBC_DRIVERS = {
  mariadb: ["mariadb-java-client", "mysql-connector-j"],
  mysql: ["mysql-connector-j"],
  postgres: ["postgresql"],
} as const satisfies Record<string, readonly [JdbcDriver, ...JdbcDriver[]]>;
/** `"a", "b" or "c"`: the choices, as the error messages name them. */
const quotedChoices = (names: readonly string[]) => names.map((n) => `"${n}"`).join(", ").replace(/, ([^,]*)$/, " or $1");

export const appSchema = z.strictObject({
  image: pinnedImage,
  /** The JDBC driver the app's image bundles (a runtime dependency of its build); default: the engine's own (JDBC_DRIVERS). */
  jdbcDriver: z.enum(JDBC_DRIVER_NAMES, { error: `expected the JDBC driver the app bundles: ${quotedChoices(JDBC_DRIVER_NAMES)}` }).optional(),
  port: port.default(8080),
  /** No longer in the stack file: which slot serves, and what each runs, is the stack's state (npm run status). */
  slots: z.never({ error: "no longer set in the stack file: what each slot runs is the stack's state (npm run status shows it); remove the key, and set app.image to the release that should serve" }).optional(),
  liveSlot: z.never({ error: "no longer set in the stack file: which slot serves is the stack's state (npm run status shows it); remove the key" }).optional(),
  memoryMb: memoryMb.default(1024),
  /** The `uid:gid` the app's containers run as, whatever user the image names; its secret files on the server belong to it. */
  runAs: z.string().regex(/^\d+:\d+$/, { error: 'expected a numeric "uid:gid" such as "1000:1000"' }).default("1000:1000"),
  healthCheck: z
    .strictObject({
      // A URL path's own characters only: it goes into the health check's shell command and the rollout's smoke checks.
      path: z
        .string({ error: 'expected a URL path starting with "/"' })
        .regex(/^\/[A-Za-z0-9._~\/%?=&+,:@-]*$/, { error: 'expected a URL path starting with "/", of letters, digits and -._~/%?=&+,:@ (no spaces, quotes, ;, $, `, (, ) or \\)' })
        .default("/actuator/health"),
      interval: duration.default("10s"),
      timeout: duration.default("3s"),
      retries: z.number().int().min(1, { error: "expected 1-20 retries" }).max(20, { error: "expected 1-20 retries" }).default(3),
      /** Spring Boot can take a minute to boot; failures inside this window do not count. */
      startPeriod: duration.default("90s"),
      /** Host header sent by health and smoke checks, for apps that validate Host. */
      hostHeader: hostname.optional(),
    })
    .prefault({}),
  /**
   * Requests a deploy sends to the new slot through the proxy before making it
   * live; each must answer `status`. Empty: the health-check path, expecting 200.
   */
  smokeChecks: z
    .array(
      z.strictObject({
        path: z.string().regex(/^\/[^\s]*$/, { error: 'expected a URL path starting with "/"' }),
        status: z.number().int().min(100).max(599).default(200),
      }),
    )
    .default([]),
  /** How long a deploy waits for the idle slot to become healthy. */
  deployTimeout: duration.default("5m"),
  /** Plain (non-secret) environment variables for the app. */
  env: z
    .record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/, { error: "expected an environment variable name in UPPER_SNAKE_CASE" }), z.string())
    .superRefine((env, ctx) => {
      for (const key of Object.keys(env)) {
        if (Object.hasOwn(APP_ENV_SET_BY_PROGRAM, key)) {
          const why = APP_ENV_SET_BY_PROGRAM[key as AppEnvSetByProgram];
          ctx.addIssue({ code: "custom", path: [key], input: env[key], message: `expected no ${key}: the program sets it (${why})` });
        }
      }
    })
    .default({}),
}, { error: "expected a map with image, port, healthCheck, …" });

export const databaseSchema = z.strictObject({
  engine: z.enum(["mysql", "mariadb", "postgres"], { error: 'expected one of "mysql", "mariadb", "postgres"' }),
  /** The image tag, pinned to at least major.minor (e.g. "11.4.4", "16.6"). */
  version: z.string({ error: "expected the engine version" }).regex(/^\d+\.\d+(\.\d+)?$/, {
    error: 'expected a pinned version with at least major.minor, e.g. "11.4.4" or "16.6"',
  }),
  name: sqlIdentifier,
  user: sqlIdentifier,
  memoryMb: memoryMb.default(1024),
  /**
   * Read replicas kept by the engine's own replication (MariaDB: GTID;
   * PostgreSQL: streaming from pg_basebackup; not built for MySQL). None by default. The app gets a
   * read-only datasource on it, Metabase reads from it, backups are taken from
   * it while it is healthy and caught up (a replica on the primary's server;
   * one on another server, `server` and `link`, MariaDB or PostgreSQL, is
   * read by the app and Metabase over the link, and backups keep the primary).
   * @example [{ maxLagSeconds: 120 }]
   */
  replicas: z
    .array(
      z.strictObject(
        {
          /** The replica container's memory limit; the primary's by default. */
          memoryMb: memoryMb.optional(),
          /** Backups are taken from the replica only while it is at most this far behind (seconds); from the primary otherwise. */
          maxLagSeconds: z.number({ error: "expected a number of seconds" }).int({ error: "expected whole seconds" }).min(1, { error: "expected 1-86400 seconds" }).max(86400, { error: "expected 1-86400 seconds" }).default(300),
          /**
           * How long the app waits for the replica's answer before it gives the read up (its JDBC socketTimeout):
           * a replica whose server loses power sends nothing, not even a reset, and a read in flight would wait
           * for TCP's keepalive, two hours. Longer than the app's slowest read-only transaction; once a replica on
           * another server is promoted, the bound of the writes too (infra/replica/render.ts primaryReadTimeoutSeconds).
           */
          readTimeoutSeconds: z.number({ error: "expected a number of seconds" }).int({ error: "expected whole seconds" }).min(1, { error: "expected 1-3600 seconds" }).max(3600, { error: "expected 1-3600 seconds" }).default(30),
          /**
           * Another server of this stack for the replica, reached over SSH with its host key pinned like `server`'s.
           * @default the primary's server
           * @example { host: "replica.bbaegok.kr", ssh: { user: deploy, hostKey: "ssh-ed25519 AAAA…" } }
           */
          server: otherServerSchema.optional(),
          /**
           * With `server`: the private link the replica reaches the primary over.
           * @example { type: wireguard, primaryAddress: "10.99.0.1", replicaAddress: "10.99.0.2" }
           */
          link: replicaLinkSchema.optional(),
        },
        { error: "expected a map with memoryMb, maxLagSeconds, readTimeoutSeconds, server, link" },
      ),
      { error: "expected a list of replicas, e.g. [{ maxLagSeconds: 300 }]" },
    )
    .max(1, { error: "expected at most one replica (one is supported so far)" })
    .default([]),
  /**
   * Which container takes the writes: "original" (`db`), or "replica" once
   * `npm run promote` has promoted the replica (the app, Metabase and
   * backups then use `db-replica`). Written by that command; never set back
   * by hand (README, "Read replicas": the original is out of date).
   * "promoting" is that command's first step only, before it promotes: the
   * warm slot is started naming `db-replica` and nothing goes live, so the
   * promotion's flip starts no container (a run of it makes nothing live,
   * and npm run deploy and rollback refuse it; never commit it).
   * "returning" is the same step of `npm run failback`, which makes the
   * original the primary again: the warm slot is started naming `db`.
   * @default "original"
   */
  primary: z
    .enum(["original", "promoting", "replica", "returning"], {
      error: 'expected "original" or "replica" (written by npm run promote and npm run failback; "promoting" and "returning" during their first step only)',
    })
    .default("original"),
}, { error: "expected a map with engine, version, name, user" });

// S3's general purpose bucket naming rules: names it keeps for its own
// features (access point aliases, directory and table buckets, examples).
const RESERVED_BUCKET_PREFIXES = ["xn--", "sthree-", "amzn-s3-demo-"];
const RESERVED_BUCKET_SUFFIXES = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

export const backupSchema = z.strictObject({
  schedule: cron.default("0 4 * * *"),
  timezone: z.string().refine(isTimeZone, { error: 'expected an IANA time zone such as "Asia/Seoul"' }).default("Asia/Seoul"),
  /** Weekly by default: restore the newest backup into a throwaway database and compare. */
  drillSchedule: cron.default("30 5 * * 0"),
  bucket: z
    .string({ error: "expected an S3 bucket name" })
    .regex(/^(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: "expected an S3 bucket name: 3-63 lower-case letters, digits, dots and hyphens" })
    .refine((name) => !/^\d+\.\d+\.\d+\.\d+$/.test(name), { error: "expected an S3 bucket name, not an IP address (S3 refuses it)" })
    .refine((name) => !RESERVED_BUCKET_PREFIXES.some((p) => name.startsWith(p)), { error: `expected an S3 bucket name not starting with ${RESERVED_BUCKET_PREFIXES.join(", ")} (reserved by S3)` })
    .refine((name) => !RESERVED_BUCKET_SUFFIXES.some((p) => name.endsWith(p)), { error: `expected an S3 bucket name not ending with ${RESERVED_BUCKET_SUFFIXES.join(", ")} (reserved by S3)` }),
  region: z.string().regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, { error: 'expected an AWS region such as "ap-northeast-2"' }).default("ap-northeast-2"),
  /** Days after which objects move to colder storage classes, and when they expire. */
  retention: z
    .strictObject({
      infrequentAfterDays: days.default(30),
      archiveAfterDays: days.default(90),
      expireAfterDays: days.default(365),
      noncurrentExpireDays: days.default(30),
      abortMultipartAfterDays: days.default(3),
    })
    .prefault({}),
  /** S3 Object Lock: no credential can delete or overwrite a backup inside the window. */
  objectLock: z
    .strictObject({
      mode: z.enum(["off", "governance", "compliance"], { error: 'expected "off", "governance" or "compliance"' }).default("governance"),
      days: days.default(30),
    })
    .prefault({}),
  encryption: z.enum(["sse-s3", "kms"], { error: 'expected "sse-s3" or "kms"' }).default("sse-s3"),
}, { error: "expected a map with bucket, schedule, timezone, retention, objectLock" });

/** The postgres image's first major version that keeps its data under /var/lib/postgresql/<major>/docker. */
const POSTGRES_NEW_DATA_LAYOUT = 18;

/** The major version a postgres image's tag names ("postgres:16.13", "postgres:17-alpine"); undefined for a digest alone or another image. */
export function postgresImageMajor(image: string): number | undefined {
  const tag = /^(?:[^/]+\/)*postgres:(\d+)(?:[.-][^@]*)?(?:@sha256:[0-9a-f]{64})?$/.exec(image);
  return tag ? Number(tag[1]) : undefined;
}

export const metabaseSchema = z.strictObject({
  enabled: z.boolean({ error: "expected true or false" }).default(false),
  image: pinnedImage.default("metabase/metabase:v0.56.9"),
  /** The PostgreSQL image of Metabase's own application database. */
  databaseImage: pinnedImage.default("postgres:16.13"),
  memoryMb: memoryMb.default(2048),
  /** When non-empty, only these client addresses reach the dashboard. */
  allowFrom: z.array(cidr).default([]),
  /** Tables/views the read-only user may read; empty means every table of the service schema. */
  tables: z.array(sqlIdentifier).default([]),
  adminEmail: z.email({ error: "expected the admin's e-mail address" }).default("admin@example.com"),
});

/** The validity periods Cloudflare's Origin CA offers, in days. */
export const ORIGIN_CA_VALIDITY_DAYS = [7, 30, 90, 365, 730, 1095, 5475] as const;

const pemCertificate = z
  .string({ error: "expected a PEM certificate chain" })
  .regex(/^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----(\s*-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----)*\s*$/, {
    error: "expected a PEM certificate chain (-----BEGIN CERTIFICATE----- …), leaf first",
  });

const tlsSchema = z.discriminatedUnion(
  "source",
  [
    z.strictObject({
      /** Issued by the program from Cloudflare's Origin CA: trusted by Cloudflare only, so the records must be proxied. */
      source: z.literal("origin-ca"),
      validityDays: z
        .number()
        .refine((v) => (ORIGIN_CA_VALIDITY_DAYS as readonly number[]).includes(v), { error: `expected one of ${ORIGIN_CA_VALIDITY_DAYS.join(", ")} days` })
        .default(5475),
    }),
    z.strictObject({
      /** A certificate you bring, e.g. for records not proxied by Cloudflare; its key is the secret tlsPrivateKey. */
      source: z.literal("provided"),
      certificate: pemCertificate,
    }),
  ],
  { error: 'expected tls.source "origin-ca" or "provided"' },
);

const proxyCommon = {
  /** Largest request body the proxy accepts for this environment (nginx syntax). */
  clientMaxBodySize: z.string().regex(/^\d+[kmg]?$/, { error: 'expected an nginx size such as "20m"' }).default("20m"),
  /** Route DNS through Cloudflare's proxy (orange cloud) and accept only Cloudflare's ranges. */
  cloudflareProxied: z.boolean().default(true),
  /**
   * Authenticated Origin Pulls: Cloudflare presents a client certificate the
   * program makes for this stack's host names (uploaded per host name), and
   * nginx serves no request without it, so other Cloudflare customers cannot
   * reach the origin through Cloudflare. Needs cloudflareProxied. Default off
   * (README, "The edge"): turn it on per stack. @example true
   */
  authenticatedOriginPulls: z.boolean().default(false),
  /** The certificate of this stack's host names: Cloudflare Origin CA by default. */
  tls: tlsSchema.prefault({ source: "origin-ca" }),
};

export const proxySchema = z.discriminatedUnion(
  "mode",
  [
    z.strictObject({
      /** This stack runs the server's one nginx proxy; other stacks attach to it. */
      mode: z.literal("owner"),
      image: pinnedImage.default("nginx:1.28.3"),
      ...proxyCommon,
    }),
    z.strictObject({
      /** This stack attaches to the proxy another stack owns, through its outputs. */
      mode: z.literal("guest"),
      /** The owner stack, fully qualified: `<organization>/bbaegok-infra/<stack>`. */
      ownerStack: z.string().regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, {
        error: 'expected a stack reference "<organization>/bbaegok-infra/<stack>"',
      }),
      ...proxyCommon,
    }),
  ],
  { error: 'expected mode "owner" or "guest"' },
);

export const stackConfigSchema = z
  .strictObject({
    /** The service's short name; prefixes container, network and volume names. */
    service: slug("the service name").default("bbaegok"),
    server: serverSchema,
    domains: domainsSchema,
    app: appSchema,
    database: databaseSchema,
    backup: backupSchema,
    metabase: metabaseSchema.prefault({}),
    proxy: proxySchema,
  })
  .superRefine((config, ctx) => {
    const { domains, metabase, backup, proxy, database } = config;
    const drivers: readonly string[] = JDBC_DRIVERS[database.engine];
    if (config.app.jdbcDriver && !drivers.includes(config.app.jdbcDriver)) {
      ctx.addIssue({ code: "custom", path: ["app", "jdbcDriver"], input: config.app.jdbcDriver, message: `expected a driver for database.engine ${database.engine}: ${quotedChoices(drivers)}` });
    }
    // The official postgres image keeps its data under /var/lib/postgresql/<major>/docker from 18
    // on, and refuses to start with a volume at /var/lib/postgresql/data (DATA_PATHS), where this
    // program mounts it for the database, its replica and Metabase's own database.
    const postgres18 = (major: number | undefined, path: (string | number)[], input: string, what: string) => {
      if (major !== undefined && major >= POSTGRES_NEW_DATA_LAYOUT) {
        ctx.addIssue({ code: "custom", path, input, message: `expected PostgreSQL ${POSTGRES_NEW_DATA_LAYOUT - 1} or older for ${what}: from ${POSTGRES_NEW_DATA_LAYOUT} on, the postgres image keeps its data under /var/lib/postgresql/${POSTGRES_NEW_DATA_LAYOUT}/docker and refuses to start with the volume this program mounts at /var/lib/postgresql/data` });
      }
    };
    if (database.engine === "postgres") postgres18(Number(database.version.split(".")[0]), ["database", "version"], database.version, "the database");
    if (metabase.enabled) postgres18(postgresImageMajor(metabase.databaseImage), ["metabase", "databaseImage"], metabase.databaseImage, "Metabase's own database");
    database.replicas.forEach((replica, i) => {
      const at = (...path: (string | number)[]) => ["database", "replicas", i, ...path];
      if (replica.server && !replica.link) {
        ctx.addIssue({ code: "custom", path: at("link"), input: undefined, message: 'expected the private link to the replica\'s server: { type: wireguard, primaryAddress, replicaAddress } or { type: tailnet, primaryAddress, replicaAddress } (never a published port)' });
      }
      if (replica.link && !replica.server) {
        ctx.addIssue({ code: "custom", path: at("link"), input: replica.link, message: "expected no link: the replica is on the stack's own server (set server: to put it on another)" });
      }
      // The replica's scripts speak MariaDB's replication SQL (MASTER_USE_GTID,
      // @@gtid_binlog_pos, mariadb-dump --gtid); MySQL 8's differ (SOURCE_AUTO_POSITION,
      // @@gtid_executed, --set-gtid-purged) and there is no MySQL server here to build them against.
      if (i === 0 && database.engine === "mysql") {
        ctx.addIssue({ code: "custom", path: ["database", "replicas"], input: database.replicas, message: "expected no replicas with engine mysql: read replicas are built for mariadb and postgres (MySQL's GTID replication statements differ and are not built)" });
      }
      // The replication flags (max_slot_wal_keep_size) need PostgreSQL 13; the backup's role on a standby
      // elsewhere, pg_read_all_data, needs 14 (replica.bash).
      const postgresMajor = database.engine === "postgres" ? Number(database.version.split(".")[0]) : undefined;
      const postgresNeeded = replica.server ? 14 : 13;
      if (i === 0 && postgresMajor !== undefined && postgresMajor < postgresNeeded) {
        ctx.addIssue({
          code: "custom",
          path: ["database", "version"],
          input: database.version,
          message: `expected PostgreSQL ${postgresNeeded} or newer with ${replica.server ? "a replica on another server (its backup role needs pg_read_all_data)" : "a replica (its slot's max_slot_wal_keep_size)"}`,
        });
      }
      if (replica.server && replica.server.host === config.server.host) {
        ctx.addIssue({ code: "custom", path: at("server", "host"), input: replica.server.host, message: "expected another server than server.host (leave server: out for a replica on the same server)" });
      }
      const link = replica.link;
      if (link && link.primaryAddress === link.replicaAddress) ctx.addIssue({ code: "custom", path: at("link", "replicaAddress"), input: link.replicaAddress, message: "expected an address other than link.primaryAddress" });
      if (link?.type === "wireguard") {
        for (const key of ["primaryAddress", "replicaAddress"] as const) {
          if (cidrsOverlap(`${link[key]}/32`, config.server.edgeSubnet)) ctx.addIssue({ code: "custom", path: at("link", key), input: link[key], message: `expected an address outside server.edgeSubnet (${config.server.edgeSubnet})` });
        }
      }
    });
    if (database.primary !== "original" && database.replicas.length === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["database", "primary"],
        input: database.primary,
        message: 'expected "original": there is no replica to be the primary (database.replicas is empty)',
      });
    } else if (database.primary === "returning" && database.replicas[0]?.server) {
      // failback.sh seeds and switches both containers on one server only.
      ctx.addIssue({
        code: "custom",
        path: ["database", "primary"],
        input: database.primary,
        message: 'expected "replica": npm run failback brings back the original of a replica on the stack\'s own server only (this one is on database.replicas[0].server)',
      });
    }
    if (proxy.authenticatedOriginPulls && !proxy.cloudflareProxied) {
      ctx.addIssue({
        code: "custom",
        path: ["proxy", "authenticatedOriginPulls"],
        input: proxy.authenticatedOriginPulls,
        message: "expected false: only Cloudflare presents the origin-pull certificate, and cloudflareProxied is false, so every visitor would be refused",
      });
    }
    if (proxy.tls.source === "origin-ca" && !proxy.cloudflareProxied) {
      ctx.addIssue({
        code: "custom",
        path: ["proxy", "tls", "source"],
        input: proxy.tls.source,
        message: 'expected "provided" with a certificate browsers trust: an Origin CA certificate is trusted by Cloudflare only, and cloudflareProxied is false',
      });
    }
    for (const key of ["api", "metabase"] as const) {
      const name = domains[key];
      if (name && isHostname(name) && !isInZone(name, domains.zone)) {
        ctx.addIssue({ code: "custom", path: ["domains", key], input: name, message: `expected a name inside the zone ${domains.zone}` });
      }
    }
    if (domains.metabase && domains.metabase === domains.api) {
      ctx.addIssue({ code: "custom", path: ["domains", "metabase"], input: domains.metabase, message: "expected a host name other than domains.api" });
    }
    if (metabase.enabled && !domains.metabase) {
      ctx.addIssue({ code: "custom", path: ["domains", "metabase"], input: undefined, message: "expected a host name: metabase.enabled is true" });
    }
    const r = backup.retention;
    if (!(r.infrequentAfterDays < r.archiveAfterDays && r.archiveAfterDays < r.expireAfterDays)) {
      ctx.addIssue({
        code: "custom",
        path: ["backup", "retention"],
        input: r,
        message: "expected infrequentAfterDays < archiveAfterDays < expireAfterDays",
      });
    }
    // S3 charges a 30-day minimum in STANDARD_IA: moving earlier is refused by S3.
    if (r.infrequentAfterDays < 30) {
      ctx.addIssue({ code: "custom", path: ["backup", "retention", "infrequentAfterDays"], input: r.infrequentAfterDays, message: "expected at least 30 days (S3's minimum before STANDARD_IA)" });
    }
    // S3 keeps an object in STANDARD_IA 30 days before it moves on to the
    // archive class and refuses a lifecycle rule that moves it sooner: caught here, at preview, rather than
    // by the bucket's lifecycle configuration halfway through an up.
    else if (r.infrequentAfterDays < r.archiveAfterDays && r.archiveAfterDays < r.infrequentAfterDays + 30) {
      ctx.addIssue({
        code: "custom",
        path: ["backup", "retention", "archiveAfterDays"],
        input: r.archiveAfterDays,
        message: `expected at least infrequentAfterDays + 30 (${r.infrequentAfterDays + 30}): S3 keeps an object 30 days in STANDARD_IA before it moves on`,
      });
    }
    if (backup.objectLock.mode !== "off" && backup.objectLock.days > r.expireAfterDays) {
      ctx.addIssue({
        code: "custom",
        path: ["backup", "objectLock", "days"],
        input: backup.objectLock.days,
        message: `expected at most retention.expireAfterDays (${r.expireAfterDays}): a locked backup cannot expire`,
      });
    }
  });

/** A stack's validated configuration, defaults applied. */
export type StackConfig = z.infer<typeof stackConfigSchema>;
export type DatabaseEngine = StackConfig["database"]["engine"];
/** The two app slots of a stack: one serves, the other keeps the previous release warm. */
export type Slot = "blue" | "green";
