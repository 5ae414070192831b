// The app's two slots, blue and green, both always declared. Which one serves
// is `app.liveSlot` (stack config, so `pulumi up` never undoes a switch); the
// proxy's upstream for this stack points at the live one only.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { ROLE_LABEL } from "../../policy/rules.js";
import type { Slot, StackConfig } from "../../stacks/config/schema.js";
import type { ServiceDatabase } from "../database/index.js";
import { LOG_OPTS } from "../database/index.js";
import { ServerFile, type HomeServer } from "../server/index.js";
import { APP_SECRETS_MOUNT, DATASOURCE_PASSWORD_FILE, SLOTS, otherSlot, slotContainerName, slotEnvs, slotHealthCheck, slotImage, slotWaitSeconds } from "./render.js";

export interface AppSlotsArgs {
  server: HomeServer;
  /** The stack's validated config: `app`, `database` and `domains` are read. */
  config: Pick<StackConfig, "app" | "database" | "domains">;
  database: ServiceDatabase;
}

export class AppSlots extends pulumi.ComponentResource {
  /** The slot serving traffic. */
  readonly liveSlot: Slot;
  /** The slot a deploy writes to next. */
  readonly idleSlot: Slot;
  /** Container name of each slot (also its host name on the stack's networks). */
  readonly containerNames: Record<Slot, string>;
  /** The image each slot runs. */
  readonly images: Record<Slot, string>;
  readonly port: number;

  constructor(name: string, args: AppSlotsArgs, opts?: pulumi.ComponentResourceOptions) {
    const { server, config, database } = args;
    super("bbaegok:app:AppSlots", name, { liveSlot: config.app.liveSlot }, opts);
    this.liveSlot = config.app.liveSlot;
    this.idleSlot = otherSlot(this.liveSlot);
    this.port = config.app.port;
    const names = server.names;
    this.containerNames = { blue: slotContainerName(names.prefix, "blue"), green: slotContainerName(names.prefix, "green") };
    this.images = { blue: slotImage(config.app, "blue"), green: slotImage(config.app, "green") };

    const secretsDir = `${names.secretsDir}/app`;
    const passwordFile = new ServerFile(
      `${name}-datasource-password`,
      // The folder is listable (0755): Spring Boot's configtree lists it and will not start otherwise; the file itself is the app's alone.
      { connection: server.connection, path: `${secretsDir}/${DATASOURCE_PASSWORD_FILE}`, mode: "0400", owner: config.app.runAs, dirMode: "0755", content: database.password },
      { parent: this },
    );

    const hostHeader = config.app.healthCheck.hostHeader ?? config.domains.api;
    for (const slot of SLOTS) {
      const dockerOpts = { parent: this, provider: server.docker };
      const image = new docker.RemoteImage(`${name}-${slot}-image`, { name: this.images[slot], keepLocally: true }, dockerOpts);
      new docker.Container(
        `${name}-${slot}`,
        {
          name: this.containerNames[slot],
          image: image.imageId,
          restart: "unless-stopped",
          memory: config.app.memoryMb,
          memorySwap: config.app.memoryMb,
          logDriver: "json-file",
          logOpts: LOG_OPTS,
          envs: slotEnvs(config, slot),
          // A fixed address on the edge network: the proxy's upstream for this slot.
          networksAdvanced: [{ name: server.edgeNetworkName, ipv4Address: server.edgeAddresses[slot] }, { name: server.dataNetworkName }],
          mounts: [{ type: "bind", source: secretsDir, target: APP_SECRETS_MOUNT, readOnly: true }],
          healthcheck: slotHealthCheck(config.app, hostHeader),
          labels: [
            { label: ROLE_LABEL, value: "app" },
            { label: "bbaegok.stack", value: server.stack },
            { label: "bbaegok.slot", value: slot },
          ],
          // Graceful shutdown: Spring finishes in-flight requests before exiting.
          stopTimeout: 30,
          // Pulumi waits until Docker reports the new slot healthy.
          wait: true,
          waitTimeout: slotWaitSeconds(config.app),
        },
        // Slot containers have fixed names, so the old one must go before the new one starts.
        { ...dockerOpts, deleteBeforeReplace: true, dependsOn: [passwordFile, database] },
      );
    }

    this.registerOutputs({ liveSlot: this.liveSlot, containerNames: this.containerNames, images: this.images });
  }
}
