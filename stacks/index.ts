// The bbaegok-infra program: one environment on one home server.
// Reads and validates this stack's config, composes the building blocks in
// infra/, and exports what operators, ops commands and other stacks read.
import { AppSlots } from "../infra/app/index.js";
import { DatabaseBackups } from "../infra/backup/index.js";
import { ServiceDatabase } from "../infra/database/index.js";
import { StackDns } from "../infra/dns/index.js";
import { ReadReplica, replicaIsPrimary, type ReplicaConfig } from "../infra/replica/index.js";
import { WireguardLink, tailnetBind, type ReplicaLink } from "../infra/link/index.js";
import { Metabase } from "../infra/metabase/index.js";
import { EdgeProxy, GuestProxy, ownerProxyEndpoint, publicHosts } from "../infra/proxy/index.js";
import { INTERNAL_PORT, proxyContainerName } from "../infra/proxy/contract.js";
import { HomeServer, OtherServer } from "../infra/server/index.js";
import { SiteCertificate } from "../infra/tls/index.js";
import { OriginPulls } from "../infra/tls/origin-pulls.js";
import * as pulumi from "@pulumi/pulumi";
import { loadStackConfig } from "./config/index.js";
import { lastRunOutputs } from "./last-run.js";

const { stack, config, secrets } = loadStackConfig();

// This stack's own outputs from its last run (see last-run.ts).
const lastRun = lastRunOutputs(stack);
// The server's proxy: this stack's own, or the owner's, read from its outputs.
const ownerProxy = config.proxy.mode === "guest" ? ownerProxyEndpoint("proxy-owner", config.proxy.ownerStack, stack) : undefined;

const server = new HomeServer("server", { server: config.server, service: config.service, stack });
// A replica on another server (database.replicas[].server): that server, and the private link to it (infra/link) up before the primary listens on it.
const replicasElsewhere = config.database.replicas.map((replica, i) => (replica.server && replica.link ? replicaElsewhere(`database-replica-${i + 1}`, replica.server, replica.link) : undefined));
const primaryLink = replicasElsewhere.find((r) => r !== undefined)?.primaryLink;
const database = new ServiceDatabase("database", { server, database: config.database, lastRuntime: lastRun.apply((o) => o.databaseRuntime), ...(primaryLink ? { link: primaryLink } : {}) });
// Read replicas (infra/replica): none unless database.replicas lists one.
const replicas = config.database.replicas.map((replica, i) => {
  const elsewhere = replicasElsewhere[i];
  return new ReadReplica(`database-replica-${i + 1}`, {
    server,
    database: config.database,
    replica,
    primary: database,
    service: config.service,
    lastRuntime: lastRun.apply((o) => o.databaseRuntime),
    ...(elsewhere ? { elsewhere: elsewhere.replicaSide } : {}),
  });
});
// The app and Metabase read the replica, on this server's data network or at its link address on another
// server (backups check it and dump it either way, over the link from another server: infra/backup).
const readReplica = replicas[0];
// Once `npm run promote` made it the primary: the container the app writes to.
const promotedReplica = replicaIsPrimary(config.database) ? replicas[0] : undefined;
const app = new AppSlots("app", {
  server,
  config,
  database,
  ...(promotedReplica?.primaryReady ? { promotedPrimary: promotedReplica.primaryReady } : {}),
  deployed: lastRun.apply((o) => o.appSlots),
  proxyContainer: ownerProxy ? ownerProxy.container : proxyContainerName(config.service),
  internalPort: INTERNAL_PORT,
});
const metabase = config.metabase.enabled ? new Metabase("metabase", { server, config, database, ...(readReplica ? { replica: readReplica } : {}) }) : undefined;

/** This stack's environment name. */
export const environment = stack;
/** Networks of this stack on the server. */
export const edgeNetwork = server.edgeNetworkName;
export const dataNetwork = server.dataNetworkName;
/** The database as backups, restores and Metabase reach it. */
export const databaseContainer = database.containerName;
export const databaseVolume = database.volumeName;
export const databaseEngine = config.database.engine;
export const databaseName = database.databaseName;
export const databaseUser = database.user;
export const databasePassword = database.password;
/** The read replicas' containers (status, backups and promote read them); empty without database.replicas. */
export const replicaContainers = replicas.map((r) => r.containerName);
/** What recreates the container the app writes to when it changes: the next run compares (planned downtime). */
export const databaseRuntime = promotedReplica ? promotedReplica.runtime : database.runtime;
/** The app's blue/green slots: what deploy, rollback and status read. */
export const liveSlot = app.liveSlot;
export const idleSlot = app.idleSlot;
export const slotContainers = app.containerNames;
export const slotImages = app.images;
export const appPort = app.port;
/** Metabase, when this stack runs it; null when it does not (Pulumi warns on every run of a stack whose output is undefined). */
export const metabaseUrl = metabase ? metabase.url : null;
export const metabaseAdminPassword = metabase ? metabase.adminPassword : null;

// The edge (infra/tls, infra/proxy, infra/dns): this stack's certificate, its
// routes on the server's one proxy (run by the owner stack, joined by guests
// through the owner's `proxy` output), and its Cloudflare records.
const certificate = new SiteCertificate("tls", { tls: config.proxy.tls, hostnames: publicHosts(config), privateKeyPem: secrets.tlsPrivateKey });
const dns = new StackDns("dns", { server, config, ddnsApiToken: secrets.ddnsApiToken });
// With proxy.authenticatedOriginPulls, Cloudflare presents this stack's own client certificate and nginx requires it.
const originPulls = config.proxy.authenticatedOriginPulls ? { originPulls: new OriginPulls("origin-pulls", { zoneId: dns.zoneId, hostnames: publicHosts(config) }) } : {};
// The flip is the activation of the stack's upstream file: after the new slot's smoke checks.
const edge =
  config.proxy.mode === "owner"
    ? new EdgeProxy("proxy", { server, config, certificate, liveSlot: app.liveSlot, activationDependsOn: [app.smoke], ...originPulls })
    : new GuestProxy("proxy", { server, config, certificate, ownerStack: config.proxy.ownerStack, endpoint: ownerProxy!, liveSlot: app.liveSlot, activationDependsOn: [app.smoke], ...originPulls });
/** Which slot serves and what each slot's container is: the next run's starting point (written only when the rollout verified). */
export const appSlots = app.verifyAfter("app", edge instanceof EdgeProxy ? [edge.activation, edge.container] : [edge.activation]);
/** The proxy this stack's routes are on: what guests attach to and deploys switch through. */
export const proxy = edge.endpoint;
/** This stack's public host names, by what they serve. */
export const publicHostnames = dns.hostnames;

// Backups (infra/backup): the stack's bucket and IAM identities, the scripts and cron entry on the server.
const backups = new DatabaseBackups("backup", { server, config, pingUrl: secrets.backupPingUrl, databases: [database, ...(metabase ? [metabase] : [])] });
/** Where this stack's backups are: what restore, drill and backup:status read. */
export const backupBucket = backups.bucketName;
export const backupRegion = backups.region;
export const backupDatabases = backups.databases;

/** The other server of a replica there, and the link: WireGuard made here, or a tailnet both are already on. */
function replicaElsewhere(name: string, other: NonNullable<ReplicaConfig["server"]>, link: ReplicaLink) {
  const host = new OtherServer(`${name}-server`, { server: other, service: config.service, stack });
  const ready =
    link.type === "wireguard"
      ? new WireguardLink(`${name}-link`, { primary: { connection: server.connection, names: server.names, endpoint: config.server.host }, replica: { connection: host.connection, names: host.names, endpoint: other.host }, link }).ready
      : [tailnetBind(`${name}-link-primary-bind`, server), tailnetBind(`${name}-link-replica-bind`, host)];
  return { primaryLink: { address: link.primaryAddress, ready }, replicaSide: { host, linkReady: ready } };
}
