// Each guardrail catches what it guards against (so the stack tests that run
// them over every plan can fail), and passes what is compliant.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RULES, UNKNOWN_PLACEHOLDER, violations, volumesAreProtected, volumesAreRetained, type ResourceView } from "../../policy/rules.js";

const container = (inputs: Record<string, unknown>): ResourceView => ({
  type: "docker:index/container:Container",
  name: "c",
  inputs: {
    restart: "unless-stopped",
    memory: 512,
    memorySwap: 512,
    logDriver: "json-file",
    logOpts: { "max-size": "10m", "max-file": "5" },
    labels: [{ label: "bbaegok.role", value: "app" }],
    image: "sha256:abc",
    ...inputs,
  },
});

describe("guardrails", () => {
  it("a compliant container passes every rule", () => assert.deepEqual(violations([container({})]), []));

  it("only the proxy publishes ports", () => {
    assert.equal(RULES.onlyProxyPublishesPorts(container({ ports: [{ internal: 8080, external: 50443 }] })).length, 1);
    assert.equal(RULES.onlyProxyPublishesPorts(container({ networkMode: "host" })).length, 1);
    assert.equal(RULES.onlyProxyPublishesPorts(container({ publishAllPorts: true })).length, 1);
    const proxy = container({ ports: [{ internal: 443, external: 443 }], labels: [{ label: "bbaegok.role", value: "proxy" }] });
    assert.deepEqual(RULES.onlyProxyPublishesPorts(proxy), []);
  });

  it("images are pinned", () => {
    assert.equal(RULES.imagesArePinned({ type: "docker:index/remoteImage:RemoteImage", name: "i", inputs: { name: "mariadb:latest" } }).length, 1);
    assert.equal(RULES.imagesArePinned(container({ image: "mariadb" })).length, 1);
    assert.deepEqual(RULES.imagesArePinned({ type: "docker:index/remoteImage:RemoteImage", name: "i", inputs: { name: "mariadb:11.4.4" } }), []);
  });

  it("volumes are protected and retained", () => {
    const volume = (options: ResourceView["options"]): ResourceView => ({ type: "docker:index/volume:Volume", name: "v", inputs: {}, options });
    assert.equal(RULES.dataVolumesProtected(volume({ protect: false, retainOnDelete: false })).length, 2);
    assert.equal(RULES.dataVolumesProtected(volume({ protect: true })).length, 1);
    assert.deepEqual(RULES.dataVolumesProtected(volume({ protect: true, retainOnDelete: true })), []);
  });

  it("containers restart, rotate logs, have a memory limit and a role", () => {
    assert.equal(RULES.containersAreBounded(container({ restart: "no" })).length, 1);
    // The original primary after a promotion stays stopped after a reboot; nothing else may.
    const database = [{ label: "bbaegok.role", value: "database" }];
    assert.deepEqual(RULES.containersAreBounded(container({ restart: "no", mustRun: false, start: false, labels: database })), []);
    assert.equal(RULES.containersAreBounded(container({ restart: "no", labels: database })).length, 1);
    assert.equal(RULES.containersAreBounded(container({ restart: "no", mustRun: false, labels: database })).length, 1);
    assert.equal(RULES.containersAreBounded(container({ restart: "no", mustRun: false, start: false })).length, 1);
    assert.equal(RULES.containersAreBounded(container({ restart: "no", mustRun: false, start: false, labels: [{ label: "bbaegok.role", value: "database-replica" }] })).length, 1);
    assert.equal(RULES.containersAreBounded(container({ memory: undefined })).length, 1);
    assert.match(RULES.containersAreBounded(container({ memorySwap: undefined }))[0] ?? "", /memorySwap undefined; set it to its memory \(512\): no swap/);
    assert.equal(RULES.containersAreBounded(container({ memorySwap: 1024 })).length, 1);
    assert.equal(RULES.containersAreBounded(container({ logOpts: {} })).length, 1);
    assert.equal(RULES.containersAreBounded(container({ labels: [] })).length, 1);
  });

  it("a fixed-name container is replaced old-first", () => {
    assert.equal(RULES.fixedNamesReplaceOldFirst(container({ name: "bbaegok-prod-db" })).length, 1);
    assert.deepEqual(RULES.fixedNamesReplaceOldFirst({ ...container({ name: "bbaegok-prod-db" }), options: { deleteBeforeReplace: true } }), []);
    assert.deepEqual(RULES.fixedNamesReplaceOldFirst(container({})), []);
  });

  it("health-check durations are in the provider's form", () => {
    const check = (fields: Record<string, string>) => container({ healthcheck: { tests: ["CMD", "true"], interval: "10s", timeout: "3s", retries: 3, startPeriod: "1m30s", ...fields } });
    assert.deepEqual(RULES.healthChecksInProviderForm(check({})), []);
    assert.match(RULES.healthChecksInProviderForm(check({ startPeriod: "90s" }))[0] ?? "", /startPeriod "90s".*"1m30s"/);
    assert.match(RULES.healthChecksInProviderForm(check({ interval: "60s" }))[0] ?? "", /interval "60s".*"1m0s"/);
    assert.match(RULES.healthChecksInProviderForm(check({ timeout: "soon" }))[0] ?? "", /expected a duration/);
    assert.deepEqual(RULES.healthChecksInProviderForm(check({ startPeriod: "3m0s", interval: "500ms" })), []);
  });

  it("secrets are not passed as environment values", () => {
    assert.equal(RULES.noSecretsInContainerEnv(container({ envs: ["MARIADB_ROOT_PASSWORD=hunter2"] })).length, 1);
    assert.equal(RULES.noSecretsInContainerEnv(container({ envs: "[secret]" })).length, 1);
    assert.equal(RULES.noSecretsInContainerEnv(container({ envs: ["SPRING_DATASOURCE_PASSWORD=[secret]"] })).length, 1);
    assert.deepEqual(RULES.noSecretsInContainerEnv(container({ envs: ["MARIADB_ROOT_PASSWORD_FILE=/run/secrets/x", "TZ=UTC"] })), []);
  });
});

describe("the server's host key guardrail", () => {
  const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAUGtUDFFegLi3RvEDELHBKX8kKndae79ULgfvbMmjYC";
  const docker = (sshOpts: unknown, host = "ssh://deploy@home.bbaegok.kr:22022"): ResourceView => ({ type: "pulumi:providers:docker", name: "server-docker", inputs: { host, sshOpts } });
  const pinned = ["-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null", "-o", `KnownHostsCommand=/bin/echo %H ${key}`];
  const command = (connection: unknown): ResourceView => ({ type: "command:remote:Command", name: "site-activate", inputs: { connection } });

  it("passes Docker's provider with the pinned key, as an array or as the provider config's JSON text", () => {
    assert.deepEqual(RULES.serverHostKeyPinned(docker(pinned)), []);
    assert.deepEqual(RULES.serverHostKeyPinned(docker(JSON.stringify(pinned))), []);
  });

  it("refuses Docker's provider over ssh:// without the key, with a known_hosts file, or with a malformed key", () => {
    assert.match(RULES.serverHostKeyPinned(docker(undefined))[0] ?? "", /server-docker reaches ssh:\/\/deploy@home\.bbaegok\.kr:22022 without a pinned host key: its sshOpts lack StrictHostKeyChecking=yes, UserKnownHostsFile=\/dev\/null, GlobalKnownHostsFile=\/dev\/null, KnownHostsCommand/);
    assert.match(RULES.serverHostKeyPinned(docker(pinned.filter((o) => o !== "UserKnownHostsFile=/dev/null")))[0] ?? "", /lack UserKnownHostsFile=\/dev\/null$/);
    assert.equal(RULES.serverHostKeyPinned(docker([...pinned.slice(0, -1), "KnownHostsCommand=/bin/echo %H ssh-ed25519"])).length, 1);
  });

  it("leaves a Docker provider on the local socket alone", () => {
    assert.deepEqual(RULES.serverHostKeyPinned(docker(undefined, "unix:///var/run/docker.sock")), []);
  });

  it("refuses a remote command without connection.hostKey, and passes one with it", () => {
    assert.match(RULES.serverHostKeyPinned(command({ host: "home.bbaegok.kr", user: "deploy" }))[0] ?? "", /remote command site-activate connects without a pinned host key/);
    assert.equal(RULES.serverHostKeyPinned(command({ host: "home.bbaegok.kr", user: "deploy", hostKey: UNKNOWN_PLACEHOLDER })).length, 1);
    assert.deepEqual(RULES.serverHostKeyPinned(command({ host: "home.bbaegok.kr", user: "deploy", hostKey: key })), []);
  });
});

describe("guardrails over buckets", () => {
  const bucket: ResourceView = { type: "aws:s3/bucket:Bucket", name: "backup-bucket", inputs: { bucket: "bbaegok-prod-db-backups" }, options: { protect: true, retainOnDelete: true } };
  const setting = (type: string, inputs: Record<string, unknown>): ResourceView => ({ type, name: `s-${type}`, inputs: { bucket: "[unknown]", ...inputs }, options: { dependsOn: ["backup-bucket"] } });
  const settings = [
    setting("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", { blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true }),
    setting("aws:s3/bucketVersioning:BucketVersioning", { versioningConfiguration: { status: "Enabled" } }),
    setting("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", { rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms" } }] }),
    setting("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", { rules: [{ status: "Enabled", noncurrentVersionExpiration: { noncurrentDays: 30 } }] }),
  ];

  it("a protected, retained bucket with its four settings passes", () => assert.deepEqual(violations([bucket, ...settings]), []));

  it("a bare bucket breaks every bucket rule, each message naming the bucket and what to add", () => {
    const problems = violations([{ ...bucket, options: {} }]);
    assert.equal(problems.length, 6, problems.join("\n"));
    for (const p of problems) assert.match(p, /^bucket backup-bucket \(bbaegok-prod-db-backups\) /);
    assert.ok(problems.some((p) => p.includes("aws.s3.BucketPublicAccessBlock")));
    assert.ok(problems.some((p) => p.includes("not retained on delete")));
  });

  it("only the settings that depend on a bucket (or name it) count for it", () => {
    const unrelated = settings.map((s) => ({ ...s, options: { dependsOn: ["other-bucket"] } }));
    assert.equal(violations([bucket, ...unrelated]).length, 4);
  });
});

describe("volume guardrails, split for the policy pack", () => {
  const volume = (options: ResourceView["options"]): ResourceView => ({ type: "docker:index/volume:Volume", name: "v", inputs: {}, options });
  it("protection is checked on its own (the pack sees it) and retention on its own (only the plan sees it)", () => {
    assert.equal(RULES.dataVolumesProtected(volume({ protect: true })).length, 1);
    assert.deepEqual(volumesAreProtected(volume({ protect: true })), []);
    assert.equal(volumesAreRetained(volume({ protect: true })).length, 1);
  });
  it("a read replica's volume (a copy, by its name) may go unprotected and unretained; no other volume may", () => {
    const named = (name: string): ResourceView => ({ type: "docker:index/volume:Volume", name: "v", inputs: { name }, options: {} });
    assert.deepEqual(RULES.dataVolumesProtected(named("bbaegok-prod-db-replica-data")), []);
    for (const name of ["bbaegok-prod-db-data", "bbaegok-prod-metabase-db-data", "bbaegok-prod-db-replica-data-old"]) {
      assert.deepEqual(RULES.dataVolumesProtected(named(name)), [`volume v is not protected`, `volume v is not retained on delete`], name);
    }
  });
  it("a container whose image is another resource's unknown output is judged on that resource", () => {
    assert.deepEqual(RULES.imagesArePinned(container({ image: UNKNOWN_PLACEHOLDER })), []);
  });
});

describe("the one exception to 'only the proxy publishes ports': a database's or a replica's own port on a private link address", () => {
  const database = (ports: unknown[], role = "database") => container({ ports, labels: [{ label: "bbaegok.role", value: role }] });
  const port = (ip: string | undefined, internal = 5432) => ({ internal, external: internal, protocol: "tcp", ...(ip === undefined ? {} : { ip }) });

  it("allows the database's and the replica's port bound to a WireGuard or tailnet address", () => {
    assert.deepEqual(RULES.onlyProxyPublishesPorts(database([port("10.99.0.1")])), []);
    assert.deepEqual(RULES.onlyProxyPublishesPorts(database([port("100.101.102.103", 3306)])), []);
    assert.deepEqual(RULES.onlyProxyPublishesPorts(database([port("10.99.0.2", 3306)], "database-replica")), []);
  });

  it("refuses it on every address, on a public or loopback address, another port, another role", () => {
    for (const refused of [database([port(undefined)]), database([port("0.0.0.0")]), database([port("203.0.113.10")]), database([port("127.0.0.1")]), database([port("10.99.0.1", 8080)]), database([port("10.99.0.1"), port(undefined)]), database([port("10.99.0.1")], "app"), database([port("0.0.0.0")], "database-replica"), database([port("10.99.0.2", 8080)], "database-replica")]) {
      const found = RULES.onlyProxyPublishesPorts(refused);
      assert.equal(found.length, 1, JSON.stringify(refused.inputs["ports"]));
      assert.match(found[0]!, /publishes host ports or uses the host network; only the proxy may/);
    }
    for (const role of ["database", "database-replica"]) {
      assert.match(RULES.onlyProxyPublishesPorts(database([port("0.0.0.0")], role))[0]!, /a database may publish only its own port \(3306 or 5432\/tcp\) bound to a private link address/);
    }
    assert.equal(RULES.onlyProxyPublishesPorts({ ...database([port("10.99.0.1")]), inputs: { ...database([port("10.99.0.1")]).inputs, networkMode: "host" } }).length, 1);
  });
});
