// The policy pack as `pulumi preview --policy-pack policy` starts it, with the
// engine's side played by this test: the Node language host resolves
// @pulumi/pulumi's policy runner from the pack's folder and runs it there with
// node; the runner loads the pack (package.json main) and prints the port of
// its analyzer server. The test then asks it what the engine asks: its plugin
// info, its policies, a resource to analyze, the whole stack to analyze.
// (test/engine/ runs it under the real CLI too.)
import * as grpc from "@grpc/grpc-js";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AnalyzerClient } from "@pulumi/pulumi/proto/analyzer_grpc_pb";
import {
  AnalyzeDiagnostic,
  AnalyzeRequest,
  AnalyzeResponse,
  AnalyzerInfo,
  AnalyzerResource,
  AnalyzerResourceOptions,
  AnalyzeStackRequest,
  EnforcementLevel,
} from "@pulumi/pulumi/proto/analyzer_pb";
import { unknownValue } from "@pulumi/pulumi/runtime/rpc";
import { Empty } from "google-protobuf/google/protobuf/empty_pb";
import { Struct } from "google-protobuf/google/protobuf/struct_pb";
import { POLICIES } from "../../policy/policies.js";
import { REPO } from "../support/project.js";

const PACK_DIR = join(REPO, "policy");

function call<T>(invoke: (callback: (err: grpc.ServiceError | null, response: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => invoke((err, response) => (err ? reject(err) : resolve(response))));
}

function urn(type: string, name: string): string {
  return `urn:pulumi:prod::bbaegok-infra::${type}::${name}`;
}

function request(type: string, name: string, properties: Record<string, unknown>, protect = false, deleteBeforeReplace = false): AnalyzeRequest {
  return new AnalyzeRequest()
    .setType(type)
    .setName(name)
    .setUrn(urn(type, name))
    .setProperties(Struct.fromJavaScript(properties as Parameters<typeof Struct.fromJavaScript>[0]))
    .setOptions(new AnalyzerResourceOptions().setProtect(protect).setDeletebeforereplace(deleteBeforeReplace).setDeletebeforereplacedefined(deleteBeforeReplace));
}

/** `<policy> [<level>] <violation>`: the runner puts the policy's description on the message's first line, the violation last. */
function summary(diagnostics: AnalyzeDiagnostic[]): string[] {
  return diagnostics.map((d) => `${d.getPolicyname()} [${d.getEnforcementlevel() === EnforcementLevel.MANDATORY ? "mandatory" : d.getEnforcementlevel()}] ${d.getMessage().split("\n").pop()}`);
}

describe("the policy pack started as the Pulumi CLI starts it", () => {
  let runner: ChildProcess;
  let client: AnalyzerClient;
  let stderr = "";

  before(async () => {
    // What the shim does: resolve the runner from the pack's folder, run it there.
    const runnerPath = execFileSync(process.execPath, ["-e", "console.log(require.resolve('@pulumi/pulumi/cmd/run-policy-pack'))"], { cwd: PACK_DIR, encoding: "utf8" }).trim();
    runner = spawn(process.execPath, [runnerPath, "127.0.0.1:1", "."], { cwd: PACK_DIR, stdio: ["ignore", "pipe", "pipe"] });
    runner.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const port = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`the pack printed no port within 60 s; stderr: ${stderr}`)), 60_000);
      runner.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
        const line = /^(\d+)\s*$/m.exec(out);
        if (line) {
          clearTimeout(timer);
          resolve(line[1]!);
        }
      });
      runner.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`the pack exited with ${code} before serving; stderr: ${stderr}`));
      });
    });
    client = new AnalyzerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });

  after(() => {
    client?.close();
    runner?.kill();
  });

  it("answers the engine's first question, its plugin info (the pack must share @pulumi/pulumi's protobuf classes with the runner)", async () => {
    const info = await call<{ getVersion(): string }>((cb) => client.getPluginInfo(new Empty(), cb as never));
    // The runner answers with @pulumi/policy's own version.
    assert.match(info.getVersion(), /^\d+\.\d+\.\d+/);
  });

  it("names the pack, its version and every policy, each mandatory", async () => {
    const info = await call<AnalyzerInfo>((cb) => client.getAnalyzerInfo(new Empty(), cb));
    assert.equal(info.getName(), "bbaegok-infra");
    assert.equal(info.getVersion(), "1.0.0");
    const policies = info.getPoliciesList();
    assert.deepEqual(policies.map((p) => p.getName()).sort(), POLICIES.map((p) => p.name).sort());
    for (const p of policies) assert.equal(p.getEnforcementlevel(), EnforcementLevel.MANDATORY, p.getName());
  });

  it("refuses an app container that publishes a port, and judges an unknown image on its RemoteImage", async () => {
    const container = request("docker:index/container:Container", "app-blue", {
      name: "bbaegok-prod-app-blue",
      // The image ID of a RemoteImage not pulled yet: unknown during a preview.
      image: unknownValue,
      restart: "unless-stopped",
      memory: 1536,
      memorySwap: 1536,
      logDriver: "json-file",
      logOpts: { "max-size": "10m", "max-file": "5" },
      labels: [{ label: "bbaegok.role", value: "app" }],
      ports: [{ internal: 8080, external: 8080 }],
    }, false, true);
    const response = await call<AnalyzeResponse>((cb) => client.analyze(container, cb));
    assert.deepEqual(summary(response.getDiagnosticsList()), [
      "only-proxy-publishes-ports [mandatory] container app-blue (role app) publishes host ports or uses the host network; only the proxy may",
    ]);
  });

  it("refuses a floating image tag and an unprotected volume", async () => {
    const image = await call<AnalyzeResponse>((cb) => client.analyze(request("docker:index/remoteImage:RemoteImage", "db-image", { name: "mariadb:latest" }), cb));
    assert.match(summary(image.getDiagnosticsList()).join("\n"), /^images-pinned \[mandatory\] image db-image pulls "mariadb:latest"/);
    const volume = await call<AnalyzeResponse>((cb) => client.analyze(request("docker:index/volume:Volume", "db-volume", { name: "x" }, false), cb));
    assert.deepEqual(summary(volume.getDiagnosticsList()), ["data-volumes-protected [mandatory] volume db-volume is not protected"]);
  });

  it("checks the whole stack: a bucket without its settings breaks each bucket policy, reported on the bucket", async () => {
    const bucketUrn = urn("aws:s3/bucket:Bucket", "backup-bucket");
    const bucket = new AnalyzerResource()
      .setType("aws:s3/bucket:Bucket")
      .setName("backup-bucket")
      .setUrn(bucketUrn)
      .setProperties(Struct.fromJavaScript({ bucket: "bbaegok-prod-db-backups" }))
      .setOptions(new AnalyzerResourceOptions().setProtect(true));
    // Versioned, through a dependency on the bucket (its `bucket` input is the bucket's ID, unknown in a preview).
    const versioning = new AnalyzerResource()
      .setType("aws:s3/bucketVersioning:BucketVersioning")
      .setName("backup-versioning")
      .setUrn(urn("aws:s3/bucketVersioning:BucketVersioning", "backup-versioning"))
      .setProperties(Struct.fromJavaScript({ bucket: unknownValue, versioningConfiguration: { status: "Enabled" } }))
      .setOptions(new AnalyzerResourceOptions())
      .setDependenciesList([bucketUrn]);
    const response = await call<AnalyzeResponse>((cb) => client.analyzeStack(new AnalyzeStackRequest().setResourcesList([bucket, versioning]), cb));
    const diagnostics = response.getDiagnosticsList();
    assert.deepEqual(diagnostics.map((d) => d.getPolicyname()).sort(), ["buckets-encrypted", "buckets-lifecycle", "buckets-private"]);
    for (const d of diagnostics) {
      assert.equal(d.getUrn(), bucketUrn);
      assert.equal(d.getEnforcementlevel(), EnforcementLevel.MANDATORY);
    }
  });
});
