// The bbaegok-infra program: one environment on one home server.
// Reads and validates this stack's config, composes the building blocks in
// infra/, and exports what operators, ops commands and other stacks read.
import { ServiceDatabase } from "../infra/database/index.js";
import { HomeServer } from "../infra/server/index.js";
import { loadStackConfig } from "./config/index.js";

const { stack, config } = loadStackConfig();

const server = new HomeServer("server", { server: config.server, service: config.service, stack });
const database = new ServiceDatabase("database", { server, database: config.database });

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
