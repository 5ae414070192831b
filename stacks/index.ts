// The bbaegok-infra program: one environment on one home server.
// Reads and validates this stack's config, composes the building blocks in
// infra/, and exports what operators, ops commands and other stacks read.
import { AppSlots } from "../infra/app/index.js";
import { ServiceDatabase } from "../infra/database/index.js";
import { Metabase } from "../infra/metabase/index.js";
import { HomeServer } from "../infra/server/index.js";
import { loadStackConfig } from "./config/index.js";

const { stack, config } = loadStackConfig();

const server = new HomeServer("server", { server: config.server, service: config.service, stack });
const database = new ServiceDatabase("database", { server, database: config.database });
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
/** The app's blue/green slots: what deploy, rollback and status read. */
export const liveSlot = app.liveSlot;
export const idleSlot = app.idleSlot;
export const slotContainers = app.containerNames;
export const slotImages = app.images;
export const appPort = app.port;
/** Metabase, when this stack runs it. */
export const metabaseUrl = metabase?.url;
export const metabaseAdminPassword = metabase?.adminPassword;
