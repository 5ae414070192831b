// Each policy of the pack, called directly as the policy runner calls it: a
// compliant stack passes every policy, and each policy reports the violation
// it exists for (naming the resource), so the pack can fail a preview.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { POLICIES } from "../../policy/policies.js";
import type { ResourceView } from "../../policy/rules.js";
import { runPolicy } from "../support/policy-args.js";

const CONTAINER = "docker:index/container:Container";

function container(name: string, role: string, inputs: Record<string, unknown> = {}): ResourceView {
  return {
    type: CONTAINER,
    name,
    inputs: {
      image: "sha256:0f3c",
      restart: "unless-stopped",
      memory: 512,
      memorySwap: 512,
      logDriver: "json-file",
      logOpts: { "max-size": "10m", "max-file": "5" },
      labels: [{ label: "bbaegok.role", value: role }],
      envs: ["TZ=Asia/Seoul", "MARIADB_PASSWORD_FILE=/run/secrets/db/app_password"],
      ...inputs,
    },
  };
}

/** A bucket and its four settings resources, each depending on it as `bucket: bucket.id` makes it. */
function bucketWithSettings(overrides: Partial<Record<"bucket" | "block" | "versioning" | "encryption" | "lifecycle", Partial<ResourceView>>> = {}): ResourceView[] {
  const setting = (name: string, type: string, inputs: Record<string, unknown>, override: Partial<ResourceView> | undefined): ResourceView => ({
    type,
    name,
    inputs: { bucket: "backup-bucket-id", ...inputs },
    options: { dependsOn: ["backup-bucket"] },
    ...override,
  });
  return [
    { type: "aws:s3/bucket:Bucket", name: "backup-bucket", inputs: { bucket: "bbaegok-prod-db-backups" }, options: { protect: true, retainOnDelete: true }, ...overrides.bucket },
    setting(
      "backup-public-access",
      "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
      { blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true },
      overrides.block,
    ),
    setting("backup-versioning", "aws:s3/bucketVersioning:BucketVersioning", { versioningConfiguration: { status: "Enabled" } }, overrides.versioning),
    setting(
      "backup-encryption",
      "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
      { rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }] },
      overrides.encryption,
    ),
    setting(
      "backup-lifecycle",
      "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
      { rules: [{ id: "expire", status: "Enabled", expiration: { days: 400 }, noncurrentVersionExpiration: { noncurrentDays: 30 } }] },
      overrides.lifecycle,
    ),
  ];
}

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAUGtUDFFegLi3RvEDELHBKX8kKndae79ULgfvbMmjYC";

/** Docker's provider over ssh:// with the program's options; its config reaches the pack as JSON text. */
function serverDocker(sshOpts: string[] = [...["-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null"], "-o", `KnownHostsCommand=/bin/echo %H ${HOST_KEY}`]): ResourceView {
  return { type: "pulumi:providers:docker", name: "server-docker", inputs: { host: "ssh://deploy@home.bbaegok.kr:22022", sshOpts: JSON.stringify(sshOpts) } };
}

const compliantStack: ResourceView[] = [
  container("proxy", "proxy", { ports: [{ internal: 443, external: 443 }] }),
  container("app-blue", "app"),
  { type: "docker:index/remoteImage:RemoteImage", name: "database-image", inputs: { name: "mariadb:11.4.4" } },
  { type: "docker:index/volume:Volume", name: "database-volume", inputs: { name: "bbaegok-prod-db-data" }, options: { protect: true, retainOnDelete: true } },
  ...bucketWithSettings(),
  serverDocker(),
  { type: "command:remote:Command", name: "proxy-activate", inputs: { connection: { host: "home.bbaegok.kr", port: 22022, user: "deploy", hostKey: HOST_KEY } } },
];

/** For each policy: a stack that breaks it, and the words its message must contain. */
const VIOLATIONS: Record<string, { stack: ResourceView[]; says: RegExp }> = {
  "only-proxy-publishes-ports": { stack: [container("app-blue", "app", { ports: [{ internal: 8080, external: 8080 }] })], says: /app-blue \(role app\) publishes host ports/ },
  "images-pinned": { stack: [{ type: "docker:index/remoteImage:RemoteImage", name: "database-image", inputs: { name: "mariadb:latest" } }], says: /"mariadb:latest", which is not pinned/ },
  "data-volumes-protected": { stack: [{ type: "docker:index/volume:Volume", name: "database-volume", inputs: {}, options: { protect: false } }], says: /volume database-volume is not protected/ },
  "containers-bounded": { stack: [container("app-blue", "app", { memory: undefined, restart: "no" })], says: /app-blue has restart "no"/ },
  "fixed-names-replace-old-first": { stack: [container("app-blue", "app", { name: "bbaegok-prod-app-blue" })], says: /app-blue has the fixed name "bbaegok-prod-app-blue" but is not replaced old-first/ },
  "healthchecks-provider-form": { stack: [container("app-blue", "app", { healthcheck: { tests: ["CMD", "true"], interval: "10s", timeout: "3s", retries: 3, startPeriod: "90s" } })], says: /healthcheck\.startPeriod "90s"; write it as Docker's provider reads it back: "1m30s"/ },
  "no-secrets-in-container-env": { stack: [container("app-blue", "app", { envs: ["SPRING_DATASOURCE_PASSWORD=hunter2"] })], says: /sets SPRING_DATASOURCE_PASSWORD in its environment/ },
  "server-host-key-pinned": { stack: [serverDocker(["-o", "StrictHostKeyChecking=yes"])], says: /server-docker reaches ssh:\/\/deploy@home\.bbaegok\.kr:22022 without a pinned host key: its sshOpts lack UserKnownHostsFile/ },
  "buckets-protected": { stack: bucketWithSettings({ bucket: { options: { protect: false } } }), says: /bucket backup-bucket \(bbaegok-prod-db-backups\) is not protected/ },
  "buckets-private": {
    stack: bucketWithSettings({ block: { inputs: { bucket: "backup-bucket-id", blockPublicAcls: true, blockPublicPolicy: false, ignorePublicAcls: true, restrictPublicBuckets: true } } }),
    says: /public access block without blockPublicPolicy/,
  },
  "buckets-versioned": { stack: bucketWithSettings({ versioning: { inputs: { bucket: "backup-bucket-id", versioningConfiguration: { status: "Suspended" } } } }), says: /is not versioned/ },
  "buckets-encrypted": { stack: bucketWithSettings({ encryption: { type: "aws:s3/bucketPolicy:BucketPolicy" } }), says: /has no default encryption/ },
  "buckets-lifecycle": {
    stack: bucketWithSettings({ lifecycle: { inputs: { bucket: "backup-bucket-id", rules: [{ id: "expire", status: "Disabled", expiration: { days: 400 } }] } } }),
    says: /no enabled lifecycle rule that expires objects/,
  },
};

describe("the policy pack", () => {
  it("has a violating case here for every policy (a new policy needs one)", () => {
    assert.deepEqual(POLICIES.map((p) => p.name).sort(), Object.keys(VIOLATIONS).sort());
  });

  it("makes every policy mandatory: a violation stops the preview", () => {
    for (const policy of POLICIES) assert.equal(policy.enforcementLevel, "mandatory", policy.name);
  });

  for (const policy of POLICIES) {
    describe(policy.name, () => {
      it("passes a compliant stack", async () => {
        assert.deepEqual(await runPolicy(policy, compliantStack), []);
      });

      it("reports the violation it guards against, on the offending resource", async () => {
        const { stack, says } = VIOLATIONS[policy.name]!;
        const reported = await runPolicy(policy, stack);
        assert.ok(reported.length > 0, `${policy.name} reported nothing`);
        assert.ok(
          reported.some((v) => says.test(v.message)),
          `${policy.name} said ${JSON.stringify(reported.map((v) => v.message))}`,
        );
        for (const v of reported) assert.match(v.urn ?? "", /::(app-blue|database-image|database-volume|backup-bucket|server-docker)$/);
      });
    });
  }

  it("ties bucket settings to their bucket: another bucket's settings do not count", async () => {
    const second: ResourceView = { type: "aws:s3/bucket:Bucket", name: "archive-bucket", inputs: { bucket: "bbaegok-archive" }, options: { protect: true, retainOnDelete: true } };
    for (const name of ["buckets-private", "buckets-versioned", "buckets-encrypted", "buckets-lifecycle"]) {
      const policy = POLICIES.find((p) => p.name === name)!;
      const reported = await runPolicy(policy, [...bucketWithSettings(), second]);
      assert.equal(reported.length, 1, `${name}: ${JSON.stringify(reported)}`);
      assert.match(reported[0]!.urn ?? "", /::archive-bucket$/);
      assert.match(reported[0]!.message, /bucket archive-bucket \(bbaegok-archive\)/);
    }
  });

  it("ties a setting named by the bucket's literal name (no dependency) to that bucket", async () => {
    const literal = bucketWithSettings().map((r) => (r.type.startsWith("aws:s3/bucket:") ? r : { ...r, inputs: { ...r.inputs, bucket: "bbaegok-prod-db-backups" }, options: {} }));
    for (const policy of POLICIES) assert.deepEqual(await runPolicy(policy, literal), [], policy.name);
  });
});
