// The app's two slots, blue and green, and the rollout between them. Which
// slot serves and what each runs is the stack's state (its last run's `app`
// output); what should serve is the stack file. infra/app/rollout.ts plans
// the run from the two; this component creates what the plan says, checks the
// proxy before a slot is touched and the new slot before the flip, and
// verifies after the flip (the flip itself is the proxy's activation of the
// stack's upstream file, which names `liveSlot`).
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import type { Slot, StackConfig } from "../../stacks/config/schema.js";
import type { ServiceDatabase } from "../database/index.js";
import { stackFilePaths, proxyDirs } from "../proxy/contract.js";
import { slotUpstreamAddress } from "../proxy/render.js";
import { precheckScript, RELEASE_LABEL, smokeScript, verifyScript, type RolloutScriptArgs } from "../proxy/rollout.js";
import { platformContainer, ServerFile, type HomeServer, type SshConnection } from "../server/index.js";
import { healthCheckHost } from "../server/render.js";
import { DATASOURCE_PASSWORD_FILE, SLOTS, otherSlot, slotContainerName } from "./render.js";
import { promotionStaged } from "../replica/render.js";
import { canonical, desiredSpec, parseDeployed, planRollout, recordOf, slotRenderer, type DeployedSlots, type RolloutPlan, type SlotSpec } from "./rollout.js";

export interface AppSlotsArgs {
  /** The stack's server footprint: Docker provider, edge and data networks, fixed slot addresses, SSH. */
  server: HomeServer;
  /**
   * The stack's validated config: `app` (the release and how a slot runs),
   * `database` (the datasource), `domains` (the health check's Host) and `server` are read.
   * @default app.port 8080, app.memoryMb 1024, app.runAs "1000:1000", app.healthCheck.path "/actuator/health", app.deployTimeout "5m"
   */
  config: Pick<StackConfig, "app" | "database" | "domains" | "server">;
  /** The service database: its password becomes the slots' datasource password file; the slots start after it. */
  database: ServiceDatabase;
  /**
   * When `database.primary` is "replica": the promoted replica's check that it
   * takes writes (ReadReplica.primaryReady), after its container. The slots
   * start after it, so neither a new slot nor the flip (after the slots) goes
   * to a database that was not promoted on the server or refuses writes.
   * @default none (the original is the primary)
   */
  promotedPrimary?: pulumi.Resource;
  /** The stack's `app` output of its last run (undefined before the first): which slot serves, what each runs. */
  deployed: pulumi.Output<unknown>;
  /** The proxy container the checks go through (the owner's), on the stack's server. */
  proxyContainer: pulumi.Input<string>;
  /** The proxy's internal port (slot routes; never published). */
  internalPort: number;
}

/** A short, stable name of a slot's release: the hash of its container spec. */
export function releaseId(spec: SlotSpec): string {
  return createHash("sha256").update(canonical(spec.container)).digest("hex").slice(0, 16);
}

export class AppSlots extends pulumi.ComponentResource {
  /** This run's plan: what serves at its end and what each slot runs. */
  readonly plan: pulumi.Output<RolloutPlan>;
  /** The slot serving when the run is done. */
  readonly liveSlot: pulumi.Output<Slot>;
  /** The other slot: the previous release, warm for a rollback. */
  readonly idleSlot: pulumi.Output<Slot>;
  /** Container name of each slot (also its host name on the stack's networks). */
  readonly containerNames: Record<Slot, string>;
  /** The image each slot runs. */
  readonly images: pulumi.Output<Record<Slot, string>>;
  readonly port: number;
  /** The smoke checks: the stack's proxy activation (the flip) depends on it. */
  readonly smoke: command.remote.Command;
  private readonly containers: docker.Container[];
  private readonly checks: pulumi.Output<RolloutScriptArgs>;
  private readonly key: pulumi.Output<string>;
  private readonly connection: SshConnection;

  constructor(name: string, args: AppSlotsArgs, opts?: pulumi.ComponentResourceOptions) {
    const { server, config, database } = args;
    super("bbaegok:app:AppSlots", name, {}, opts);
    this.connection = server.connection;
    this.port = config.app.port;
    const names = server.names;
    this.containerNames = { blue: slotContainerName(names.prefix, "blue"), green: slotContainerName(names.prefix, "green") };

    const hostHeader = healthCheckHost(config);
    const place = {
      prefix: names.prefix,
      stack: server.stack,
      edgeNetwork: names.edgeNetwork,
      dataNetwork: names.dataNetwork,
      secretsDir: names.secretsDir,
      addresses: { blue: server.edgeAddresses.blue, green: server.edgeAddresses.green },
      hostHeader,
    };
    const desired = { blue: desiredSpec(config, place, "blue"), green: desiredSpec(config, place, "green") };
    const render = slotRenderer(config, place);
    // npm run promote's first step (database.primary: promoting): the warm slot only, nothing flips.
    const staged = promotionStaged(config.database);
    this.plan = args.deployed.apply((value) => planRollout(parseDeployed(value), desired, render, { staged }));
    this.liveSlot = this.plan.live;
    this.idleSlot = this.plan.live.apply(otherSlot);
    this.images = this.plan.slots.apply((slots) => ({ blue: slots.blue.container.image, green: slots.green.container.image }));
    // Changes exactly when a rollout, a flip or a rewarm happens: the checks run (again) only then.
    this.key = this.plan.apply((p) => `${p.live}:${releaseId(p.slots[p.live])}:${releaseId(p.slots[otherSlot(p.live)])}`);

    const passwordFile = new ServerFile(
      `${name}-datasource-password`,
      // The folder is listable (0755): Spring Boot's configtree lists it and will not start otherwise; the file itself is the app's alone.
      { connection: server.connection, path: `${names.secretsDir}/app/${DATASOURCE_PASSWORD_FILE}`, mode: "0400", owner: config.app.runAs, dirMode: "0755", content: database.password },
      { parent: this },
    );

    const proxyDir = names.proxyDir;
    this.checks = pulumi.all([this.plan, args.proxyContainer]).apply(([plan, proxyContainer]): RolloutScriptArgs => ({
      stack: server.stack,
      ...plan.checks,
      live: plan.live,
      release: releaseId(plan.slots[plan.checks.target]),
      otherRelease: releaseId(plan.slots[otherSlot(plan.checks.target)]),
      waitSeconds: plan.slots[plan.checks.target].container.waitTimeout,
      image: plan.slots[plan.checks.target].container.image,
      containers: this.containerNames,
      addresses: { blue: slotUpstreamAddress(config, "blue"), green: slotUpstreamAddress(config, "green") },
      proxyContainer,
      internalPort: args.internalPort,
      hostHeader,
      healthPath: config.app.healthCheck.path,
      smokeChecks: config.app.smokeChecks,
      liveConf: `${proxyDirs(proxyDir).live}/${stackFilePaths(server.stack).conf}`,
      historyFile: names.deployHistory,
    }));

    // Before any slot is touched: the proxy serves what the state says (else nothing changes).
    const precheck = this.check(`${name}-precheck`, precheckScript, []);
    this.containers = SLOTS.map((slot) => this.slot(name, args, slot, [passwordFile, database, ...(args.promotedPrimary ? [args.promotedPrimary] : []), precheck]));
    // After the new slot is healthy, before the flip (the proxy's activation waits for this).
    this.smoke = this.check(`${name}-smoke`, smokeScript, this.containers);

    this.registerOutputs({ liveSlot: this.liveSlot, containerNames: this.containerNames, images: this.images });
  }

  private slot(name: string, args: AppSlotsArgs, slot: Slot, dependsOn: pulumi.Resource[]): docker.Container {
    const dockerOpts = { parent: this, provider: args.server.docker };
    const spec = this.plan.slots[slot];
    const container = spec.container;
    const image = new docker.RemoteImage(`${name}-${slot}-image`, { name: container.image, keepLocally: true }, dockerOpts);
    return platformContainer(
      `${name}-${slot}`,
      {
        recorded: {
          restart: container.restart,
          logDriver: container.logDriver,
          logOpts: container.logOpts,
          // The release label lets a later rollout tell what a slot runs (the precheck reads it).
          labels: pulumi.all([container.labels, spec]).apply(([labels, s]) => [...labels, { label: RELEASE_LABEL, value: releaseId(s) }]),
        },
      },
      {
        name: container.name,
        image: image.imageId,
        memory: container.memory,
        memorySwap: container.memorySwap,
        user: container.user,
        envs: container.envs,
        networksAdvanced: container.networksAdvanced,
        mounts: container.mounts,
        healthcheck: container.healthcheck,
        stopTimeout: container.stopTimeout,
        // Pulumi waits until Docker reports the new slot healthy.
        wait: true,
        waitTimeout: container.waitTimeout,
      },
      // Slot containers have fixed names, so the old one must go before the new one starts.
      { ...dockerOpts, deleteBeforeReplace: true, dependsOn: [image, ...dependsOn, args.server] },
    );
  }

  /** A rollout check on the server, run when `key` changes (a rollout or flip), never otherwise. */
  private check(name: string, script: (a: RolloutScriptArgs) => string, dependsOn: pulumi.Resource[]): command.remote.Command {
    return new command.remote.Command(
      name,
      {
        connection: this.connection,
        create: this.checks.apply(script),
        // Nothing to do when only the script's text changed without a rollout.
        update: "true",
        triggers: [this.key],
        logging: "stdoutAndStderr",
        addPreviousOutputInEnv: false,
      },
      { parent: this, dependsOn },
    );
  }

  /**
   * After the flip (`after`: the proxy's activation, and the proxy container
   * when this stack runs it): the new slot serves, recorded in the history.
   * Returns what the stack exports as `app` for the next run, which resolves
   * only when this succeeded: a failed rollout leaves the last record.
   */
  verifyAfter(name: string, after: pulumi.Resource[]): pulumi.Output<DeployedSlots> {
    const verify = this.check(`${name}-verify`, verifyScript, after);
    return pulumi.all([verify.stdout, this.plan]).apply(([, plan]) => recordOf(plan));
  }
}
