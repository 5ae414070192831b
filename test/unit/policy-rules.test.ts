// Each guardrail catches what it guards against (so the stack tests that run
// them over every plan can fail), and passes what is compliant.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RULES, violations, type ResourceView } from "../../policy/rules.js";

const container = (inputs: Record<string, unknown>): ResourceView => ({
  type: "docker:index/container:Container",
  name: "c",
  inputs: {
    restart: "unless-stopped",
    memory: 512,
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
    assert.equal(RULES.containersAreBounded(container({ memory: undefined })).length, 1);
    assert.equal(RULES.containersAreBounded(container({ logOpts: {} })).length, 1);
    assert.equal(RULES.containersAreBounded(container({ labels: [] })).length, 1);
  });

  it("secrets are not passed as environment values", () => {
    assert.equal(RULES.noSecretsInContainerEnv(container({ envs: ["MARIADB_ROOT_PASSWORD=hunter2"] })).length, 1);
    assert.equal(RULES.noSecretsInContainerEnv(container({ envs: "[secret]" })).length, 1);
    assert.equal(RULES.noSecretsInContainerEnv(container({ envs: ["SPRING_DATASOURCE_PASSWORD=[secret]"] })).length, 1);
    assert.deepEqual(RULES.noSecretsInContainerEnv(container({ envs: ["MARIADB_ROOT_PASSWORD_FILE=/run/secrets/x", "TZ=UTC"] })), []);
  });
});
