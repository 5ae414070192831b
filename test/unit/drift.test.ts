// Drift detection's orchestration against a stand-in for Pulumi's engine (the
// one place a stand-in replaces it): a refresh preview that emits the events
// and summary the engine emits. And the command as a user runs it on a machine
// without the Pulumi CLI.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import type * as automation from "@pulumi/pulumi/automation";
import { detectDrift, driftedResources, runDriftCommand, type RefreshPreviewer, type Reporter } from "../../ops/drift.js";
import { REPO } from "../support/project.js";

const URN = (type: string, name: string) => `urn:pulumi:prod::bbaegok-infra::${type}::${name}`;

function step(op: automation.OpType, type: string, name: string, extra: Partial<automation.StepEventMetadata> = {}): automation.EngineEvent {
  return { sequence: 0, timestamp: 0, resourcePreEvent: { metadata: { op, urn: URN(type, name), type, provider: "", ...extra } } };
}

/** A refresh preview that replays `events` and answers `changeSummary`, recording how it was asked. */
function engine(events: automation.EngineEvent[], changeSummary: automation.OpMap): RefreshPreviewer & { asked: automation.RefreshOptions[] } {
  const asked: automation.RefreshOptions[] = [];
  return {
    asked,
    async previewRefresh(opts?: automation.RefreshOptions): Promise<automation.PreviewResult> {
      asked.push(opts ?? {});
      for (const event of events) opts?.onEvent?.(event);
      return { stdout: "", stderr: "", changeSummary };
    },
  };
}

function collect(): Reporter & { lines: string[] } {
  const lines: string[] = [];
  return { lines, line: (text) => lines.push(text) };
}

const CONTAINER = "docker:index/container:Container";
const VOLUME = "docker:index/volume:Volume";

describe("drift", () => {
  it("reports no drift when every resource matches, and exits 0", async () => {
    const out = collect();
    const quiet = engine([step("same", CONTAINER, "app-blue"), step("same", VOLUME, "database-volume")], { same: 42 });
    assert.equal(await runDriftCommand(["--stack", "prod"], async () => quiet, out, collect()), 0);
    assert.match(out.lines.at(-1)!, /^No drift in prod: all 42 resources match the state Pulumi recorded/);
    assert.equal(quiet.asked.length, 1);
    assert.equal(typeof quiet.asked[0]!.onEvent, "function", "the preview's events are not read");
  });

  it("lists each drifted resource with the properties that differ, and exits 1", async () => {
    const out = collect();
    const drifted = engine(
      [
        step("update", CONTAINER, "app-blue", { diffs: ["memory", "envs"] }),
        { sequence: 1, timestamp: 0, resOutputsEvent: { metadata: { op: "update", urn: URN(CONTAINER, "app-blue"), type: CONTAINER, provider: "", diffs: ["memory"] } } },
        step("delete", VOLUME, "metabase-volume"),
        step("refresh", "aws:s3/bucket:Bucket", "backup-bucket", { detailedDiff: { tags: { diffKind: "update" as automation.DiffKind, inputDiff: false } } }),
        step("refresh", CONTAINER, "database"),
        step("same", "pulumi:pulumi:Stack", "bbaegok-infra-prod"),
      ],
      { same: 40, update: 2, delete: 1 },
    );
    assert.equal(await runDriftCommand(["--stack", "prod"], async () => drifted, out, collect()), 1);
    assert.deepEqual(out.lines.slice(1, 4), [
      `  ~ ${CONTAINER}  app-blue  changed outside the code: memory, envs`,
      `  - ${VOLUME}  metabase-volume  deleted outside the code`,
      "  ~ aws:s3/bucket:Bucket  backup-bucket  changed outside the code: tags",
    ]);
    assert.match(out.lines.at(-1)!, /^Drift in prod: 3 resources differ from the state Pulumi recorded \(engine summary: 2 update, 1 delete\)\. Put back what the code says with `pulumi up -s prod`/);
  });

  it("trusts the engine's summary even when no event names the resource", async () => {
    const report = await detectDrift("staging", engine([], { same: 10, update: 1 }), collect());
    assert.deepEqual(report.drifted, []);
    assert.deepEqual(report.changeSummary, { same: 10, update: 1 });
    assert.equal(await runDriftCommand(["--stack", "staging"], async () => engine([], { same: 10, update: 1 }), collect(), collect()), 1);
  });

  it("never counts unchanged refresh steps, reads or the stack itself as drift", () => {
    assert.deepEqual(driftedResources([step("refresh", CONTAINER, "x"), step("read", "aws:index/getCallerIdentity:getCallerIdentity", "me"), step("update", "pulumi:pulumi:Stack", "s")]), []);
  });

  it("never counts a StackReference (the stack's own last run, the proxy owner's outputs) as drift, in the events or the summary", async () => {
    const ref = "pulumi:pulumi:StackReference";
    const events = [
      step("update", ref, "last-run", { diffs: ["outputs"] }),
      { sequence: 1, timestamp: 0, resOutputsEvent: { metadata: { op: "update" as automation.OpType, urn: URN(ref, "last-run"), type: ref, provider: "", diffs: ["outputs"] } } },
      step("same", CONTAINER, "app-blue"),
    ];
    const out = collect();
    assert.equal(await runDriftCommand(["--stack", "prod"], async () => engine(events, { same: 40, update: 1 }), out, collect()), 0);
    assert.match(out.lines.at(-1)!, /^No drift in prod/);
    // A real change beside it is still drift.
    const both = [...events, step("update", CONTAINER, "app-green", { diffs: ["memory"] })];
    assert.equal(await runDriftCommand(["--stack", "prod"], async () => engine(both, { same: 39, update: 2 }), collect(), collect()), 1);
  });

  it("says the check could not run (exit 3), not that there is no drift, when the engine fails", async () => {
    const errors = collect();
    const broken: RefreshPreviewer = {
      previewRefresh: async () => {
        throw new Error("error: failed to decrypt configuration: incorrect passphrase");
      },
    };
    assert.equal(await runDriftCommand(["--stack", "prod"], async () => broken, collect(), errors), 3);
    assert.match(errors.lines.join("\n"), /drift: the refresh preview of prod failed, so drift is unknown:\nerror: failed to decrypt configuration/);
  });

  it("asks for --stack with the usage (exit 2)", async () => {
    const errors = collect();
    assert.equal(await runDriftCommand([], async () => engine([], {}), collect(), errors), 2);
    assert.match(errors.lines.join("\n"), /--stack is required\nusage: npm run drift -- --stack <name>/);
  });

  it("without the Pulumi CLI, says how to install it, with no stack trace (exit 3: not checked)", () => {
    const result = spawnSync(process.execPath, ["--import", "tsx", join(REPO, "ops", "drift.ts"), "--stack", "prod"], {
      cwd: REPO,
      encoding: "utf8",
      env: { ...process.env, PATH: [dirname(process.execPath), "/usr/bin", "/bin"].join(":") },
    });
    assert.equal(result.status, 3);
    assert.match(result.stderr, /^drift: cannot check prod for drift\.\nThe Pulumi CLI is not installed/);
    assert.match(result.stderr, /curl -fsSL https:\/\/get\.pulumi\.com \| sh/);
    assert.doesNotMatch(result.stderr, /^\s+at /m);
    assert.equal(result.stdout, "");
  });
});
