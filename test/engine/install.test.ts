// npm run engine:install as the README's test command runs it: a second run
// rebuilds and reinstalls nothing, and a component that does not build stops
// the install with the component's name and Go's own error.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { GO_COMPONENTS } from "../../engine/components.js";
import { REPO } from "../support/project.js";
import { requireEngine } from "../support/engine.js";
import { tempDir } from "../support/system.js";

describe("npm run engine:install", () => {
  it("run again with everything built: every component up to date, every plugin present", () => {
    requireEngine();
    const result = spawnSync(process.execPath, ["--import", "tsx", join(REPO, "engine", "install.ts")], { cwd: REPO, encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
    for (const component of GO_COMPONENTS) {
      assert.match(result.stdout, new RegExp(`\\] ${component.name} ${component.version.replace(/\./g, "\\.")}: up to date`), `${component.name} was rebuilt:\n${result.stdout}`);
    }
    assert.doesNotMatch(result.stdout, /building|built in|\binstalled\b/);
    assert.match(result.stdout, /plugins for runs with a server: .*aws \S+ \(stand-in\) present/);
  });

  it("a component that does not build fails the install, naming it and Go's error", () => {
    const scratch = tempDir("engine-install");
    try {
      const module = join(scratch.path, "broken");
      mkdirSync(module);
      writeFileSync(join(module, "go.mod"), "module example.com/broken\n\ngo 1.21\n");
      writeFileSync(join(module, "main.go"), "package main\n\nfunc main() { undefinedThing() }\n");
      const script = [
        `const { build, goVersion } = require(${JSON.stringify(join(REPO, "engine", "install.ts"))});`,
        `try { build({ name: "broken", kind: "resource", plugin: "broken", version: "0.0.1", what: "a module that does not compile", pkg: ".", binary: "pulumi-resource-broken", ldflags: [] }, goVersion(), "[1/1]", ${JSON.stringify(module)}); }`,
        `catch (err) { console.error(err.message); process.exit(1); }`,
      ].join("\n");
      const result = spawnSync(process.execPath, ["--import", "tsx", "-e", script], {
        cwd: REPO,
        encoding: "utf8",
        env: { ...process.env, BBAEGOK_ENGINE_DIR: join(scratch.path, "engine") },
      });
      assert.equal(result.status, 1, result.stdout + result.stderr);
      assert.match(result.stderr, /engine:install: broken: `go build .*` failed in engine\/go\/broken:/);
      assert.match(result.stderr, /undefined: undefinedThing/);
    } finally {
      scratch.remove();
    }
  });
});

describe("the command provider built here (engine/go/command), against the real one's behaviour", () => {
  it("its own Go tests pass: a logged line longer than 64 KiB, on which pulumi-command 1.2.1 hangs, fails the run saying so", () => {
    const run = spawnSync("go", ["test", "-count=1", "./remote/"], { cwd: join(REPO, "engine", "go", "command"), encoding: "utf8" });
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    assert.match(run.stdout, /^ok\s+\S+\/remote\b/m);
  });
});
