// The bbaegok-infra program: one environment on one home server.
// Reads and validates this stack's config, composes the building blocks in
// infra/, and exports what operators, ops commands and other stacks read.
import { AppSlots } from "../infra/app/index.js";
import { DatabaseBackups } from "../infra/backup/index.js";
import { ServiceDatabase } from "../infra/database/index.js";
import { StackDns } from "../infra/dns/index.js";
import { Metabase } from "../infra/metabase/index.js";
import { EdgeProxy, GuestProxy, publicHosts } from "../infra/proxy/index.js";
import { HomeServer } from "../infra/server/index.js";
import { SiteCertificate } from "../infra/tls/index.js";
import * as pulumi from "@pulumi/pulumi";
import { loadStackConfig } from "./config/index.js";

const { stack, config, backupPingUrl } = loadStackConfig();

// This stack's own outputs from its last run: what changed since is said before it happens (the database's planned downtime).
const lastRun = new pulumi.StackReference("last-run", { name: `${pulumi.getOrganization()}/${pulumi.getProject()}/${stack}` });

const server = new HomeServer("server", { server: config.server, service: config.service, stack });
const database = new ServiceDatabase("database", { server, database: config.database, lastRuntime: lastRun.getOutput("databaseRuntime") });
const app = new AppSlots("app", { server, config, database });
const metabase = config.metabase.enabled ? new Metabase("metabase", { server, config, database }) : undefined;

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
/** What recreates the database container when it changes: the next run compares (planned downtime). */
export const databaseRuntime = database.runtime;
/** The app's blue/green slots: what deploy, rollback and status read. */
export const liveSlot = app.liveSlot;
export const idleSlot = app.idleSlot;
export const slotContainers = app.containerNames;
export const slotImages = app.images;
export const appPort = app.port;
/** Metabase, when this stack runs it. */
export const metabaseUrl = metabase?.url;
export const metabaseAdminPassword = metabase?.adminPassword;

// The edge (infra/tls, infra/proxy, infra/dns): this stack's certificate, its
// routes on the server's one proxy (run by the owner stack, joined by guests
// through the owner's `proxy` output), and its Cloudflare records.
const certificate = new SiteCertificate("tls", { tls: config.proxy.tls, hostnames: publicHosts(config) });
const edge =
  config.proxy.mode === "owner"
    ? new EdgeProxy("proxy", { server, config, certificate })
    : new GuestProxy("proxy", { server, config, certificate, ownerStack: config.proxy.ownerStack });
const dns = new StackDns("dns", { server, config });
/** The proxy this stack's routes are on: what guests attach to and deploys switch through. */
export const proxy = edge.endpoint;
/** This stack's public host names, by what they serve. */
export const publicHostnames = dns.hostnames;

// Backups (infra/backup): the stack's bucket and IAM identities, the scripts and cron entry on the server.
const backups = new DatabaseBackups("backup", { server, config, pingUrl: backupPingUrl, databases: [database, ...(metabase ? [metabase] : [])] });
/** Where this stack's backups are: what restore, drill and backup:status read. */
export const backupBucket = backups.bucketName;
export const backupRegion = backups.region;
export const backupDatabases = backups.databases;
