// The slot's health check is a shell command (Docker's CMD-SHELL runs it with
// /bin/sh -c): run as Docker would, with real curl against a local HTTP
// server, a path or Host header holding `'`, `;`, `$(` or a backquote stays
// part of the request and runs nothing. The schema refuses such a path anyway.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { slotHealthCheck } from "../../infra/app/render.js";
import { readStackFile } from "../../stacks/config/files.js";
import { StackConfigError, rawFromPulumiConfig, validateStackConfig } from "../../stacks/config/validate.js";
import { REPO } from "../support/project.js";
import { requireCommand, tempDir } from "../support/system.js";
import { loadStack } from "../../stacks/config/load.js";

describe("the slot health check quotes every value (real sh and curl)", () => {
  const dir = tempDir("healthcheck");
  const marker = join(dir.path, "escaped");
  const requests: { url: string; headers: IncomingHttpHeaders }[] = [];
  const server = createServer((req, res) => {
    requests.push({ url: req.url ?? "", headers: req.headers });
    res.end("UP");
  });
  let port = 0;

  before(async () => {
    requireCommand("curl", "curl");
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    dir.remove();
  });

  /** The check's command as Docker runs it: `/bin/sh -c <command>` inside the container. */
  const runCheck = (path: string, hostHeader: string) => {
    const prod = loadStack("prod").config;
    const [kind, command] = slotHealthCheck({ ...prod.app, port, healthCheck: { ...prod.app.healthCheck, path } }, hostHeader).tests;
    assert.equal(kind, "CMD-SHELL");
    rmSync(marker, { force: true });
    return new Promise<number>((resolve) => spawn("/bin/sh", ["-c", command!], { stdio: "ignore" }).once("close", (code) => resolve(code ?? -1)));
  };

  for (const path of [`/health';touch ${marker};'`, `/health$(touch ${marker})`, `/health;touch$IFS${marker}`, `/health\`touch ${marker}\``]) {
    it(`path ${JSON.stringify(path)}: requested as written, nothing runs`, async () => {
      requests.length = 0;
      const status = await runCheck(path, "api.bbaegok.kr");
      assert.equal(existsSync(marker), false, "the path escaped the health check's quoting");
      assert.equal(status, 0);
      assert.equal(decodeURIComponent(requests[0]!.url), path);
      assert.equal(requests[0]!.headers.host, "api.bbaegok.kr");
    });
  }

  it("a Host header with a quote stays one header, nothing runs", async () => {
    requests.length = 0;
    await runCheck("/actuator/health", `api.bbaegok.kr';touch ${marker};'`);
    assert.equal(existsSync(marker), false);
    assert.equal(requests[0]!.headers.host, `api.bbaegok.kr';touch ${marker};'`);
  });

  it("the schema refuses such a path, naming the key and the value", () => {
    for (const path of ["/health';touch /tmp/x;'", "/health$(id)", "/a b", "/h`id`"]) {
      const raw = rawFromPulumiConfig(readStackFile(REPO, "prod").config) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
      raw.app.healthCheck.path = path;
      assert.throws(
        () => validateStackConfig("prod", raw),
        (err: Error) =>
          err instanceof StackConfigError &&
          err.message.includes(`Pulumi.prod.yaml: bbaegok-infra:app.healthCheck.path = ${JSON.stringify(path)}`) &&
          err.message.includes('expected a URL path starting with "/", of letters, digits and -._~/%?=&+,:@'),
      );
    }
    const raw = rawFromPulumiConfig(readStackFile(REPO, "prod").config) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    raw.app.healthCheck.path = "/actuator/health?probe=liveness&x=%2F";
    assert.equal(validateStackConfig("prod", raw).app.healthCheck.path, "/actuator/health?probe=liveness&x=%2F");
  });
});
