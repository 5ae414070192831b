// The deploy command's pure parts: argument checks, how docker's and curl's
// answers are read, the history file's lines, the status text, and the ssh
// command line a script travels on (run through a recording `ssh` that hands
// the remote command to sh, as sshd does).
import assert from "node:assert/strict";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { productionDeps, runDeployCommand, type DeployDeps } from "../../ops/deploy.js";
import { interruptedRunHint, type DeployRecord } from "../../ops/deploy/orchestrator.js";
import type { DeployedSlots } from "../../infra/app/rollout.js";
import { spawn } from "node:child_process";
import { deployProxy, parseHealth, parseHistory, parseLastHealthCheck, parseResponseHead, runScript, sshShell, SshServerControl } from "../../ops/deploy/server.js";
import { loadStack } from "../../stacks/config/load.js";
import { REPO } from "../support/project.js";
import { describeHealthCheck, formatStatus } from "../../ops/deploy/status.js";
import { tempDir } from "../support/system.js";

const record = (over: Partial<DeployRecord>): DeployRecord => ({
  at: "2025-05-01T02:03:04Z",
  action: "rollout",
  stack: "prod",
  image: "ghcr.io/bbaegok/bbaegok-api:1.9.0",
  slot: "green",
  release: "0123456789abcdef",
  result: "succeeded",
  by: "deploy from 198.51.100.7",
  ...over,
});

describe("the deploy command's arguments", () => {
  const run = async (argv: string[]) => {
    const errors: string[] = [];
    const untouched = () => {
      throw new Error("reached past the argument checks");
    };
    const deps: DeployDeps = { ...productionDeps, openEngine: untouched, openServer: untouched, releaseFile: untouched };
    const code = await runDeployCommand(argv, deps, { line: untouched }, { line: (t) => errors.push(t) });
    return { code, errors: errors.join("\n") };
  };

  it("refuse what is not a deploy, rollback or status of a known stack with exit 2 and the usage", async () => {
    const cases: [string[], RegExp][] = [
      [[], /no command given/],
      [["ship", "--stack", "prod"], /unknown command "ship"/],
      [["deploy", "--stack", "prod", "--image", "ghcr.io/bbaegok/bbaegok-api:latest"], /--image "ghcr\.io\/bbaegok\/bbaegok-api:latest": /],
      [["deploy", "--stack", "prod", "--image", "ghcr.io/bbaegok/bbaegok-api"], /--image "ghcr\.io\/bbaegok\/bbaegok-api": /],
      [["rollback", "--stack", "prod", "--image", "ghcr.io/bbaegok/bbaegok-api:1.9.0"], /--image is for deploy only/],
      [["status"], /--stack is required/],
      [["status", "--stack", "prod", "--force"], /Unknown option '--force'/],
    ];
    for (const [args, message] of cases) {
      const result = await run(args);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.errors}`);
      assert.match(result.errors, message, args.join(" "));
      assert.match(result.errors, /usage: npm run deploy -- --stack <name> \[--image <ref>\]/);
    }
  });

  it("refuse a deploy or rollback of a file a stopped npm run promote or failback left at database.primary: promoting or returning (exit 2, the engine untouched): a run of it never makes a release live", async () => {
    const errors: string[] = [];
    const untouched = () => {
      throw new Error("reached past the stack file's check");
    };
    const prod = productionDeps.readConfig("prod");
    for (const [primary, by, before] of [["promoting", "promote", "original"], ["returning", "failback", "replica"]] as const) {
      const staged = { ...prod, database: { ...prod.database, primary, replicas: [{ maxLagSeconds: 300 }] } };
      const deps: DeployDeps = { ...productionDeps, readConfig: () => staged as typeof prod, openEngine: untouched, openServer: untouched, releaseFile: untouched };
      for (const argv of [["deploy", "--stack", "prod"], ["rollback", "--stack", "prod"]]) {
        const code = await runDeployCommand(argv, deps, { line: untouched }, { line: (t) => errors.push(t) });
        assert.equal(code, 2, errors.join("\n"));
        assert.match(errors.at(-1)!, new RegExp(`^${argv[0]}: Pulumi\\.prod\\.yaml says database\\.primary: ${primary}, which only npm run ${by} writes .*stopped in its first step, before switching anything: set it back to "${before}"`));
      }
    }
  });

  it("name the known stacks when the stack has no file", async () => {
    const result = await run(["status", "--stack", "nope"]);
    assert.equal(result.code, 2);
    assert.match(result.errors, /status: No stack "nope": .*Pulumi\.nope\.yaml does not exist\. Known stacks: .*prod/);
  });
});

describe("the proxy a stack's deploy reaches", () => {
  it("is the stack's own when it owns the proxy, else its owner's, from the owner's stack file", () => {
    const prod = productionDeps.readConfig("prod");
    const staging = productionDeps.readConfig("staging");
    const expected = { container: "bbaegok-proxy", image: prod.proxy.mode === "owner" ? prod.proxy.image : "", dir: "/srv/bbaegok/proxy", internalPort: 8081 };
    assert.deepEqual(deployProxy(prod, productionDeps.readConfig), expected);
    assert.equal(staging.proxy.mode, "guest");
    assert.deepEqual(deployProxy(staging, productionDeps.readConfig), expected);
  });
});

describe("reading the server's answers", () => {
  it("docker inspect: running and healthy, unhealthy, starting, stopped, missing", () => {
    const ok = (stdout: string) => parseHealth({ status: 0, stdout, stderr: "" });
    assert.equal(ok("running/healthy\n"), "healthy");
    assert.equal(ok("running/unhealthy\n"), "unhealthy");
    assert.equal(ok("running/starting\n"), "starting");
    assert.equal(ok("exited/unhealthy\n"), "stopped");
    assert.equal(ok("restarting/starting\n"), "stopped");
    assert.equal(parseHealth({ status: 1, stdout: "", stderr: "Error: No such object: bbaegok-prod-app-green\n" }), "missing");
    assert.throws(() => parseHealth({ status: 1, stdout: "", stderr: "permission denied while trying to connect to the Docker daemon socket" }), /docker inspect failed \(1\): permission denied/);
  });

  it("docker inspect of the health: its last run (exit status, output on one line), nothing without a check, a run or a container", () => {
    const inspect = (stdout: string) => parseLastHealthCheck({ status: 0, stdout, stderr: "" });
    const log = (...runs: { ExitCode: number; Output: string }[]) => `${JSON.stringify({ Status: "unhealthy", FailingStreak: runs.length, Log: runs.map((r) => ({ Start: "2026-12-07T11:00:00Z", End: "2026-12-07T11:00:01Z", ...r })) })}\n`;
    assert.deepEqual(inspect(log({ ExitCode: 0, Output: "" }, { ExitCode: 1, Output: "curl: (22) The requested URL returned error: 503\nwget: server returned error: HTTP/1.1 503 Service Unavailable\n" })), {
      exitCode: 1,
      output: "curl: (22) The requested URL returned error: 503 / wget: server returned error: HTTP/1.1 503 Service Unavailable",
    });
    assert.equal(inspect(log({ ExitCode: 1, Output: "x".repeat(4096) }))!.output.length, 501);
    assert.equal(inspect("null\n"), undefined);
    assert.equal(inspect(JSON.stringify({ Status: "starting", FailingStreak: 0, Log: [] })), undefined);
    assert.equal(parseLastHealthCheck({ status: 1, stdout: "", stderr: "Error: No such object: bbaegok-prod-app-green\n" }), undefined);
    assert.throws(() => parseLastHealthCheck({ status: 1, stdout: "", stderr: "permission denied" }), /docker inspect failed \(1\): permission denied/);
  });

  it("curl's header dump: the final response's status and headers", () => {
    const head = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nServer: nginx\r\nX-Bbaegok-Upstream: 172.30.10.12:8080\r\n\r\n";
    const parsed = parseResponseHead(head);
    assert.equal(parsed.status, 200);
    assert.equal(parsed.headers.get("x-bbaegok-upstream"), "172.30.10.12:8080");
    assert.equal(parseResponseHead("").status, 0);
  });

  it("the slot that answered, from the fixed address nginx names (the last one it tried)", async () => {
    const config = loadStack("prod", REPO).config;
    const answering = (upstream: string) =>
      new SshServerControl({
        stack: "prod",
        config,
        proxy: { container: "bbaegok-proxy", image: "nginx:1.28.3", dir: "/srv/bbaegok/proxy", internalPort: 8081 },
        // Whatever the script, the proxy's internal route answers with this upstream.
        shell: { where: "test", start: () => spawn("printf", [`HTTP/1.1 200 OK\r\nX-Bbaegok-Upstream: ${upstream}\r\n\r\n`], { stdio: "pipe" }) },
        privilege: "none",
      });
    assert.equal(await answering("172.30.10.12:8080").servedBy("api.bbaegok.kr"), "green");
    assert.equal(await answering("172.30.10.11:8080").servedBy("api.bbaegok.kr"), "blue");
    // A kept-alive connection the app had closed: nginx tried again, and says so.
    assert.equal(await answering("172.30.10.11:8080, 172.30.10.11:8080").servedBy("api.bbaegok.kr"), "blue");
    assert.equal(await answering("172.30.20.11:8080").servedBy("api.bbaegok.kr"), undefined, "staging's address is not a prod slot");
  });

  it("history lines: records in order, a torn or foreign line skipped", () => {
    const lines = [JSON.stringify(record({ slot: "blue" })), '{"at":"2025-05-01T0', "not json", JSON.stringify(record({ result: "failed" })), ""].join("\n");
    assert.deepEqual(
      parseHistory(lines).map((r) => [r.slot, r.result]),
      [
        ["blue", "succeeded"],
        ["green", "failed"],
      ],
    );
  });
});

describe("a deploy after an interrupted one", () => {
  // Only what the hint reads of the stack's record: which slot serves, and each slot's container name.
  const deployed = { liveSlot: "green", slots: { blue: { container: { name: "bbaegok-prod-app-blue" } }, green: { container: { name: "bbaegok-prod-app-green" } } } } as unknown as DeployedSlots;
  // The engine's own words, as test/docker/stacks.test.ts met them on the real Docker host.
  const conflict = (name: string) =>
    `error: Unable to create container: Error response from daemon: Conflict. The container name "/${name}" is already in use by container "774dae7abb0f". You have to remove (or rename) that container to be able to reuse that name.`;

  it("names the lock an interrupted up left, and pulumi cancel once none runs", () => {
    const hint = interruptedRunHint("prod", "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.", deployed);
    assert.match(hint ?? "", /^Another pulumi up of prod holds its lock, or one was interrupted and left it: once sure none runs .*pulumi cancel --stack prod --yes and deploy again$/);
  });

  it("names the idle slot's container an interrupted up was creating, and its removal; never the live slot's or another container", () => {
    assert.equal(
      interruptedRunHint("prod", conflict("bbaegok-prod-app-blue"), deployed),
      "bbaegok-prod-app-blue is a container an interrupted pulumi up of prod was creating: Pulumi's state does not know it, and it serves nothing (green serves). Remove it on the server (docker rm -f bbaegok-prod-app-blue) and deploy again",
    );
    assert.equal(interruptedRunHint("prod", conflict("bbaegok-prod-app-green"), deployed), undefined, "the live slot");
    assert.equal(interruptedRunHint("prod", conflict("bbaegok-prod-db"), deployed), undefined, "not a slot");
    assert.equal(interruptedRunHint("prod", conflict("bbaegok-prod-app-blue"), undefined), undefined, "a stack never deployed");
    assert.equal(interruptedRunHint("prod", "error: container failed to be in healthy state", deployed), undefined);
  });
});

describe("the status text", () => {
  const slots = [
    { slot: "blue" as const, container: "bbaegok-prod-app-blue", image: "ghcr.io/bbaegok/bbaegok-api:1.8.2", health: "healthy" as const },
    { slot: "green" as const, container: "bbaegok-prod-app-green", image: "ghcr.io/bbaegok/bbaegok-api:1.9.0", health: "healthy" as const, lastDeploy: record({}) },
  ];

  it("lists each slot with its image, health and last deploy, and ends with what serves", () => {
    const text = formatStatus({ stack: "prod", recordedLive: "green", served: "green", slots, recent: [record({}), record({ slot: "blue", result: "failed" })] }).join("\n");
    assert.match(text, /^ {2}blue {3}idle {2}ghcr\.io\/bbaegok\/bbaegok-api:1\.8\.2 {2}healthy {2}no deploy recorded$/m);
    assert.match(text, /^ {2}green {2}live {2}ghcr\.io\/bbaegok\/bbaegok-api:1\.9\.0 {2}healthy {2}deployed 2025-05-01T02:03:04Z by deploy from 198\.51\.100\.7$/m);
    assert.match(text, /deploy from 198\.51\.100\.7 {2}rollout of ghcr\.io\/bbaegok\/bbaegok-api:1\.9\.0 to blue: failed/);
    assert.match(text, /green is live and serving\.$/);
  });

  it("under a slot that is not healthy, Docker's last check of it; a check that could not run names what the image lacks", () => {
    const failing = (output: string, exitCode = 1) => [slots[0]!, { ...slots[1]!, health: "unhealthy" as const, lastCheck: { exitCode, output } }];
    const lines = formatStatus({ stack: "prod", recordedLive: "blue", served: "blue", slots: failing("curl: (22) The requested URL returned error: 503"), recent: [] });
    assert.equal(lines[3], "    bbaegok-prod-app-green is unhealthy; Docker's last health check of it (exit 1): curl: (22) The requested URL returned error: 503");
    assert.equal(lines.filter((l) => l.includes("last health check")).length, 1, "only the unhealthy slot");
    const hint = /the health check runs \/bin\/sh with curl or wget inside the slot: the image has to have them/;
    assert.doesNotMatch(lines.join("\n"), hint);
    const noShell = 'OCI runtime exec failed: exec failed: unable to start container process: exec: "/bin/sh": stat /bin/sh: no such file or directory: unknown';
    const noTools = "/bin/sh: 1: curl: not found / /bin/sh: 1: wget: not found";
    for (const [output, code] of [[noShell, -1], [noTools, 127]] as const) assert.match(describeHealthCheck(failing(output, code)[1]!)!, hint, output);
  });

  it("warns when the proxy and the stack's state disagree, and says when the proxy could not be asked", () => {
    assert.match(formatStatus({ stack: "prod", recordedLive: "green", served: "blue", slots, recent: [] }).pop()!, /^WARNING: the stack's state says green is live, but the proxy routes to blue\. The next rollout refuses until they agree\.$/);
    assert.match(formatStatus({ stack: "prod", recordedLive: "green", served: undefined, slots, recent: [] }).pop()!, /proxy routes to no slot that answers/);
    assert.match(formatStatus({ stack: "prod", recordedLive: "green", served: { error: "ssh: connect to host home.bbaegok.kr port 22022: Connection refused" }, slots, recent: [] }).pop()!, /could not be asked which slot serves: ssh: connect/);
  });
});

describe("scripts over ssh", () => {
  const dir = tempDir("deploy-ssh");
  after(() => dir.remove());

  it("go as one quoted remote command with BatchMode, strict host keys, the stack's user, host and port; the pinned key is the only one known", async () => {
    const log = join(dir.path, "argv");
    // Records its arguments, then does what sshd does with the remote command: hands it to a shell.
    writeFileSync(join(dir.path, "ssh"), `#!/bin/sh\nprintf '%s\\n' "$@" > ${log}\nfor last; do :; done\nexec sh -c "$last"\n`);
    chmodSync(join(dir.path, "ssh"), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${dir.path}:${path}`;
    try {
      const shell = sshShell({ host: "home.bbaegok.kr", ssh: { user: "deploy", port: 22022, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbaegok" } });
      const result = await runScript(shell, `printf '%s|' "it's" "$((6 * 7))"; cat`, "from stdin");
      assert.equal(result.stdout, "it's|42|from stdin");
      const argv = readFileSync(log, "utf8").split("\n");
      assert.deepEqual(argv.slice(0, 18), [
        ...["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ServerAliveInterval=30"],
        ...["-o", "ControlMaster=auto", "-o", "ControlPath=~/.ssh/bbaegok-%C", "-o", "ControlPersist=60"],
        // The pinned key is the only one known: no known_hosts file (the user's or the machine's), the key itself.
        ...["-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null", "-o", "KnownHostsCommand=/bin/echo %H ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbaegok"],
      ]);
      assert.deepEqual(argv.slice(18, 20), ["-p", "22022"]);
      assert.ok(argv.includes("deploy@home.bbaegok.kr"));
      assert.equal(shell.where, "deploy@home.bbaegok.kr:22022");
    } finally {
      process.env.PATH = path;
    }
  });
});
