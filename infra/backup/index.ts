// The stack's database backups: a private, versioned, encrypted, locked S3
// bucket with lifecycle rules; two IAM identities for the server (one that can
// only put backups under the stack's prefix, one that can only read them for
// the restore drill); and the scripts, credentials and cron entry placed on
// the server. The bucket outlives the stack; the server's pieces do not.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { StackConfig } from "../../stacks/config/schema.js";
import { ServerFile, type HomeServer } from "../server/index.js";
import {
  awsCredentialsFile,
  backupIamUserName,
  backupPaths,
  backupScript,
  backupBucketPolicy,
  backupWriterPolicy,
  cronFile,
  encryptionRules,
  lifecycleRules,
  objectLockRule,
  restoreDrillReaderPolicy,
  restoreDrillScript,
  stackBackupTargets,
  uploaderScript,
  type BackupScriptSpec,
} from "./render.js";

export * from "./render.js";

export interface DatabaseBackupsArgs {
  /** The stack's server footprint (SSH connection, names, stack). */
  server: HomeServer;
  /**
   * The stack's validated config: `backup` (bucket, schedules, retention, lock, encryption), and which databases exist.
   * @default backup.schedule "0 4 * * *", backup.drillSchedule "30 5 * * 0", backup.timezone "Asia/Seoul", backup.region "ap-northeast-2", backup.objectLock governance for 30 days, backup.encryption "sse-s3"
   */
  config: Pick<StackConfig, "service" | "server" | "backup" | "database" | "metabase">;
  /**
   * Optional health-check URL (secret), pinged on success (`<url>`), failure
   * (`<url>/fail`) and drill results (`<url>/log`). Placed on the server as a 0600 file.
   * @example config.getSecret("backupPingUrl")
   */
  pingUrl?: pulumi.Output<string> | undefined;
  /** Resources the cron entry waits for (the database containers), so the first run finds them. */
  databases?: pulumi.Resource[];
}

export class DatabaseBackups extends pulumi.ComponentResource {
  /** The bucket's name, e.g. `bbaegok-prod-db-backups`. */
  readonly bucketName: pulumi.Output<string>;
  /** The bucket's region. */
  readonly region: string;
  /** The key prefix of this stack's backups: `<stack>/`. */
  readonly prefix: string;
  /** The databases backed up, as folders under the prefix. */
  readonly databases: string[];

  constructor(name: string, args: DatabaseBackupsArgs, opts?: pulumi.ComponentResourceOptions) {
    const { server, config } = args;
    const backup = config.backup;
    super("bbaegok:backup:DatabaseBackups", name, { bucket: backup.bucket, region: backup.region }, opts);
    const stack = server.stack;
    const paths = backupPaths(config.service, stack, config.server.dataDir);
    const targets = stackBackupTargets(config, stack);
    const spec: BackupScriptSpec = { service: config.service, stack, backup, targets, paths };
    const region = backup.region;
    this.region = region;
    this.prefix = `${stack}/`;
    this.databases = targets.map((t) => t.name);

    // Named first: a name AWS would refuse stops the preview before anything is made.
    const userNames = { writer: backupIamUserName(server.names.prefix, "backup"), drill: backupIamUserName(server.names.prefix, "restore-drill") };
    const bucket = createBucket(this);
    const writer = createIdentity(this, "writer", userNames.writer, "backup", backupWriterPolicy(backup.bucket, stack));
    const reader = createIdentity(this, "drill", userNames.drill, "restore-drill", restoreDrillReaderPolicy(backup.bucket, stack));
    const files = placeFilesOnServer(this, writer.key, reader.key);
    createCronEntry(this, [...files, bucket]);

    this.bucketName = bucket.bucket;
    this.registerOutputs({ bucketName: this.bucketName, region: this.region, prefix: this.prefix });

    function createBucket(parent: DatabaseBackups): aws.s3.Bucket {
      // Data is never collateral damage: protected, and kept if removed from the program.
      const bucket = new aws.s3.Bucket(
        `${name}-bucket`,
        { bucket: backup.bucket, region, tags: { "bbaegok:stack": stack, "bbaegok:role": "database-backups" } },
        { parent, protect: true, retainOnDelete: true },
      );
      // The bucket's configuration is held like the bucket: Pulumi deletes
      // dependents first and refuses a protected resource only at its own
      // delete, so an unprotected setting would be gone (versioning suspended,
      // policy and lifecycle removed) before a destroy stopped at the bucket.
      const kept = { parent, protect: true, retainOnDelete: true };
      const settings = { ...kept, dependsOn: [bucket] };
      new aws.s3.BucketOwnershipControls(`${name}-ownership`, { bucket: bucket.id, region, rule: { objectOwnership: "BucketOwnerEnforced" } }, settings);
      const publicAccess = new aws.s3.BucketPublicAccessBlock(
        `${name}-public-access`,
        { bucket: bucket.id, region, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true },
        settings,
      );
      const versioning = new aws.s3.BucketVersioning(`${name}-versioning`, { bucket: bucket.id, region, versioningConfiguration: { status: "Enabled" } }, settings);
      new aws.s3.BucketServerSideEncryptionConfiguration(`${name}-encryption`, { bucket: bucket.id, region, rules: encryptionRules(backup.encryption) }, settings);
      // After the public access block, so a policy never lands on a bucket without it.
      // Still named for its first statement: a new name would replace it (and it is protected).
      new aws.s3.BucketPolicy(`${name}-tls-only`, { bucket: bucket.id, region, policy: backupBucketPolicy(backup.bucket) }, { ...kept, dependsOn: [bucket, publicAccess] });
      new aws.s3.BucketLifecycleConfiguration(`${name}-lifecycle`, { bucket: bucket.id, region, rules: lifecycleRules(backup.retention) }, { ...kept, dependsOn: [bucket, versioning] });
      const lock = objectLockRule(backup.objectLock);
      if (lock) {
        // Enabled through this resource rather than the bucket's objectLockEnabled,
        // which would replace an existing bucket when turned on. S3 needs versioning first.
        new aws.s3.BucketObjectLockConfiguration(`${name}-object-lock`, { bucket: bucket.id, region, objectLockEnabled: "Enabled", rule: lock }, { ...kept, dependsOn: [bucket, versioning] });
      }
      return bucket;
    }

    function createIdentity(parent: DatabaseBackups, suffix: string, userName: string, role: string, policy: string) {
      const user = new aws.iam.User(`${name}-${suffix}`, { name: userName, path: "/bbaegok/", tags: { "bbaegok:stack": stack } }, { parent });
      new aws.iam.UserPolicy(`${name}-${suffix}-policy`, { user: user.name, name: `${role}-${stack}`, policy }, { parent });
      // The provider marks `secret` as a secret output; it stays encrypted in state.
      const key = new aws.iam.AccessKey(`${name}-${suffix}-key`, { user: user.name }, { parent });
      return { user, key };
    }

    function placeFilesOnServer(parent: DatabaseBackups, writerKey: aws.iam.AccessKey, readerKey: aws.iam.AccessKey): ServerFile[] {
      const file = (suffix: string, path: string, mode: string, content: pulumi.Input<string>) =>
        new ServerFile(`${name}-${suffix}`, { connection: server.connection, path, mode, owner: "root:root", content }, { parent });
      const credentials = (key: aws.iam.AccessKey) => pulumi.secret(pulumi.all([key.id, key.secret]).apply(([id, secret]) => awsCredentialsFile(id, secret)));
      const placed = [
        file("credentials", paths.credentialsFile, "0600", credentials(writerKey)),
        file("drill-credentials", paths.drillCredentialsFile, "0600", credentials(readerKey)),
        file("script", paths.backupScript, "0755", backupScript(spec)),
        file("drill-script", paths.drillScript, "0755", restoreDrillScript(spec)),
        // Beside backup.sh, which runs it from its own folder.
        file("uploader", paths.uploader, "0755", uploaderScript()),
      ];
      if (args.pingUrl) placed.push(file("ping-url", paths.pingUrlFile, "0600", pulumi.secret(args.pingUrl.apply((url) => `${url}\n`))));
      return placed;
    }

    function createCronEntry(parent: DatabaseBackups, after: pulumi.Resource[]): ServerFile {
      // Installed last and removed first: cron never runs a script that is not (or no longer) there.
      return new ServerFile(
        `${name}-cron`,
        { connection: server.connection, path: paths.cronFile, mode: "0644", owner: "root:root", content: cronFile(spec) },
        { parent, dependsOn: [...after, ...(args.databases ?? [])] },
      );
    }
  }
}
