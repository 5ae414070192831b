// npm run forget-server: what it takes out of a state (ops/forget-server/state.ts)
// and when it refuses (ops/forget-server.ts), on a state shaped as the engine
// exports it (apitype.DeploymentV3: resources with parent, provider `<urn>::<id>`,
// dependencies, propertyDependencies). The real engine's: test/docker/replica-two-hosts.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chmodSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { productionDeps, runForgetServerCommand, sshAnswers, type ForgetDeps } from "../../ops/forget-server.js";
import { dockerSshHost, forgetServer, urnName, type StateDeployment, type StateResource } from "../../ops/forget-server/state.js";
import { loadStack } from "../../stacks/config/index.js";
import type { StackConfig } from "../../stacks/config/schema.js";
import { tempDir } from "../support/system.js";

const P = "urn:pulumi:prod::bbaegok-infra::";
const HERE = "home.example.kr";
const GONE = "198.51.100.2";
const connection = (host: string) => ({ host, port: 22022, user: "deploy", hostKey: "ssh-ed25519 AAAA" });

/** The shape of a prod state with a replica on another server: the stack's server, the replica's, a link between them. */
function state(): StateDeployment {
  const r = (urn: string, fields: Partial<StateResource>): StateResource => ({ urn: `${P}${urn}`, type: urn.split("::")[0]!.split("$").pop()!, custom: true, ...fields });
  const resources: StateResource[] = [
    r("pulumi:pulumi:Stack::bbaegok-infra-prod", { custom: false }),
    r("bbaegok:server:HomeServer::server", { custom: false, parent: `${P}pulumi:pulumi:Stack::bbaegok-infra-prod` }),
    r("bbaegok:server:HomeServer$pulumi:providers:docker::server-docker", { id: "p1", parent: `${P}bbaegok:server:HomeServer::server`, inputs: { host: `ssh://deploy@${HERE}:22022`, sshOpts: ["-o", "BatchMode=yes"] } }),
    r("bbaegok:server:HomeServer$docker:index/container:Container::db", { id: "c1", parent: `${P}bbaegok:server:HomeServer::server`, provider: `${P}bbaegok:server:HomeServer$pulumi:providers:docker::server-docker::p1` }),
    r("bbaegok:server:OtherServer::database-replica-1-server", { custom: false, parent: `${P}pulumi:pulumi:Stack::bbaegok-infra-prod` }),
    r("bbaegok:server:OtherServer$pulumi:providers:docker::database-replica-1-server-docker", {
      id: "p2",
      parent: `${P}bbaegok:server:OtherServer::database-replica-1-server`,
      // The engine keeps a provider's inputs as strings: a list as its JSON.
      inputs: { host: `ssh://deploy@${GONE}:22022`, sshOpts: JSON.stringify(["-o", "BatchMode=yes", "-o", "KnownHostsCommand=/bin/echo %H ssh-ed25519 AAAA"]) },
    }),
    r("bbaegok:replica:ReadReplica::database-replica-1", { custom: false, parent: `${P}pulumi:pulumi:Stack::bbaegok-infra-prod` }),
    r("bbaegok:replica:ReadReplica$command:remote:Command::database-replica-1-retire", { id: "k1", parent: `${P}bbaegok:replica:ReadReplica::database-replica-1`, inputs: { connection: connection(HERE), delete: "retire" } }),
    r("bbaegok:replica:ReadReplica$bbaegok:server:ServerFile::database-replica-1-elsewhere-script", { custom: false, parent: `${P}bbaegok:replica:ReadReplica::database-replica-1` }),
    r("bbaegok:replica:ReadReplica$bbaegok:server:ServerFile$command:remote:Command::database-replica-1-elsewhere-script-install", {
      id: "k2",
      parent: `${P}bbaegok:replica:ReadReplica$bbaegok:server:ServerFile::database-replica-1-elsewhere-script`,
      inputs: { connection: connection(GONE), create: "install", delete: "rm" },
    }),
    r("bbaegok:replica:ReadReplica$docker:index/volume:Volume::database-replica-1-data", {
      id: "v1",
      parent: `${P}bbaegok:replica:ReadReplica::database-replica-1`,
      provider: `${P}bbaegok:server:OtherServer$pulumi:providers:docker::database-replica-1-server-docker::p2`,
    }),
    r("bbaegok:replica:ReadReplica$docker:index/container:Container::database-replica-1", {
      id: "c2",
      parent: `${P}bbaegok:replica:ReadReplica::database-replica-1`,
      provider: `${P}bbaegok:server:OtherServer$pulumi:providers:docker::database-replica-1-server-docker::p2`,
      dependencies: [`${P}bbaegok:replica:ReadReplica$command:remote:Command::database-replica-1-retire`, `${P}bbaegok:replica:ReadReplica$docker:index/volume:Volume::database-replica-1-data`],
      propertyDependencies: { volumes: [`${P}bbaegok:replica:ReadReplica$docker:index/volume:Volume::database-replica-1-data`] },
    }),
    // The stack's server's: the slot reads the replica (its address), the backup check waits for it.
    r("bbaegok:server:HomeServer$docker:index/container:Container::app-blue", {
      id: "c3",
      parent: `${P}bbaegok:server:HomeServer::server`,
      provider: `${P}bbaegok:server:HomeServer$pulumi:providers:docker::server-docker::p1`,
      dependencies: [`${P}bbaegok:server:HomeServer$docker:index/container:Container::db`, `${P}bbaegok:replica:ReadReplica$docker:index/container:Container::database-replica-1`],
      propertyDependencies: { envs: [`${P}bbaegok:replica:ReadReplica$docker:index/container:Container::database-replica-1`], image: [] },
      deletedWith: `${P}bbaegok:replica:ReadReplica$docker:index/container:Container::database-replica-1`,
    }),
  ];
  return { version: 3, deployment: { manifest: { time: "t" }, resources, pending_operations: [{ resource: resources[11]! }, { resource: resources[3]! }] } };
}

const names = (s: StateDeployment) => (s.deployment.resources ?? []).map((r) => urnName(r.urn));

describe("forgetServer: what a gone server's forgetting takes out of the state", () => {
  it("takes its Docker provider, what that provider manages, the commands whose connection is to it and the components left empty; nothing of the stack's server", () => {
    const result = forgetServer(state(), GONE);
    assert.deepEqual(
      result.forgotten.map((f) => f.name),
      [
        "database-replica-1-server",
        "database-replica-1-server-docker",
        "database-replica-1-elsewhere-script",
        "database-replica-1-elsewhere-script-install",
        "database-replica-1-data",
        "database-replica-1",
      ],
    );
    assert.deepEqual(result.forgotten.find((f) => f.name === "database-replica-1-server-docker")?.type, "pulumi:providers:docker");
    assert.deepEqual(names(result.deployment), ["bbaegok-infra-prod", "server", "server-docker", "db", "database-replica-1", "database-replica-1-retire", "app-blue"]);
    // The ReadReplica component stays: its retirement runs on the stack's server, and the next up deletes it there.
    assert.equal(result.deployment.deployment.resources?.find((r) => r.urn.endsWith("::database-replica-1") && !r.custom)?.type, "bbaegok:replica:ReadReplica");
  });

  it("what stays loses its references to what went (the engine refuses a state naming resources it does not hold)", () => {
    const blue = forgetServer(state(), GONE).deployment.deployment.resources!.find((r) => r.urn.endsWith("::app-blue"))!;
    assert.deepEqual(blue.dependencies, [`${P}bbaegok:server:HomeServer$docker:index/container:Container::db`]);
    assert.deepEqual(blue.propertyDependencies, { envs: [], image: [] });
    assert.equal(blue.deletedWith, undefined);
    const pending = forgetServer(state(), GONE).deployment.deployment.pending_operations!;
    assert.deepEqual(pending.map((op) => urnName(op.resource.urn)), ["db"]);
  });

  it("leaves the exported state as it was, and what stays keeps every other field", () => {
    const before = state();
    const copy = JSON.parse(JSON.stringify(before));
    const result = forgetServer(before, GONE);
    assert.deepEqual(before, copy);
    assert.deepEqual(result.deployment.deployment["manifest"], { time: "t" });
    assert.deepEqual(result.deployment.deployment.resources![2], copy.deployment.resources[2]);
  });

  it("says how the program reached the server (its provider's host and ssh options), for the check that it is gone", () => {
    assert.deepEqual(forgetServer(state(), GONE).reach, [
      { host: `ssh://deploy@${GONE}:22022`, sshOpts: ["-o", "BatchMode=yes", "-o", "KnownHostsCommand=/bin/echo %H ssh-ed25519 AAAA"] },
    ]);
  });

  it("a server the state holds nothing of: nothing to forget, the state unchanged", () => {
    const result = forgetServer(state(), "203.0.113.9");
    assert.deepEqual(result.forgotten, []);
    assert.deepEqual(names(result.deployment), names(state()));
  });

  it("reads where a command runs from the export with secrets shown (the command provider keeps its connection secret), and returns the encrypted one's resources", () => {
    const SIG = { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270" };
    const encrypted = state();
    const shown = state();
    for (const [i, host] of [[7, HERE], [9, GONE]] as const) {
      encrypted.deployment.resources![i]!.inputs = { ...encrypted.deployment.resources![i]!.inputs, connection: { ...SIG, ciphertext: `v1:${i}` } };
      shown.deployment.resources![i]!.inputs = { ...shown.deployment.resources![i]!.inputs, connection: { ...SIG, plaintext: JSON.stringify(connection(host)) } };
    }
    const result = forgetServer(encrypted, GONE, shown);
    assert.ok(result.forgotten.some((f) => f.name === "database-replica-1-elsewhere-script-install"));
    assert.deepEqual(result.deployment.deployment.resources!.find((r) => r.urn.endsWith("::database-replica-1-retire"))?.inputs?.["connection"], { ...SIG, ciphertext: "v1:7" });
    assert.ok(!JSON.stringify(result.deployment).includes("plaintext"), "a shown secret went into the state to import");
    // Without the shown export, an encrypted connection cannot be placed: refused, nothing changed.
    assert.throws(() => forgetServer(encrypted, GONE), /database-replica-1-retire: its connection is not readable in the state \(encrypted\)/);
  });

  it("a URN there twice (a replaced resource's old one, marked for deletion): both go, read by position", () => {
    const s = state();
    const old = { ...s.deployment.resources![11]!, id: "c-old", delete: true };
    s.deployment.resources!.splice(12, 0, old);
    const result = forgetServer(s, GONE, JSON.parse(JSON.stringify(s)));
    assert.equal(result.forgotten.filter((f) => f.name === "database-replica-1" && f.type.endsWith("Container")).length, 2);
    assert.ok(!result.deployment.deployment.resources!.some((r) => r.id === "c-old"));
  });

  it("refuses when the two exports are not of the same state", () => {
    const later = state();
    later.deployment.resources!.pop();
    assert.throws(() => forgetServer(state(), GONE, later), /the state changed between its two exports/);
  });

  it("a component with a child that stays, stays: nothing is left without its parent", () => {
    const s = state();
    // Something that is not on the gone server under its component (as a RandomPassword would be).
    s.deployment.resources!.push({ urn: `${P}bbaegok:server:OtherServer$random:index/randomPassword:RandomPassword::x`, type: "random:index/randomPassword:RandomPassword", custom: true, parent: `${P}bbaegok:server:OtherServer::database-replica-1-server` });
    const result = forgetServer(s, GONE);
    // Its parent has a child that stays, so the component stays too: nothing is orphaned.
    assert.ok(names(result.deployment).includes("database-replica-1-server"));
    assert.ok(!result.forgotten.some((f) => f.name === "database-replica-1-server"));
  });

  it("reads a Docker provider's ssh:// host (IPv6 too) and nothing else", () => {
    assert.equal(dockerSshHost("ssh://deploy@198.51.100.2:22022"), "198.51.100.2");
    assert.equal(dockerSshHost("ssh://deploy@[2001:db8::2]:22"), "2001:db8::2");
    assert.equal(dockerSshHost("unix:///var/run/docker.sock"), undefined);
    assert.equal(dockerSshHost({ ciphertext: "x" }), undefined);
  });
});

describe("sshAnswers: only nothing at the address makes a server gone", () => {
  it("a port nothing listens on: no answer, and ssh's reason", () => {
    const reply = sshAnswers("ssh://nobody@127.0.0.1:1", ["-o", "BatchMode=yes"]);
    assert.equal(reply.answers, false);
    assert.match(reply.why, /Connection refused/);
  });
});

describe("npm run forget-server: when it refuses, what it writes", () => {
  const prod = loadStack("prod").config;
  const withReplicaOn = (host: string): StackConfig => ({
    ...prod,
    database: { ...prod.database, replicas: [{ server: { host, ssh: prod.server.ssh, dataDir: "/srv/bbaegok" }, link: { type: "wireguard", primaryAddress: "10.99.0.1", replicaAddress: "10.99.0.2", port: 51820 } } as StackConfig["database"]["replicas"][number]] },
  });
  const run = async (argv: string[], deps: Partial<ForgetDeps> & { config?: StackConfig } = {}) => {
    const written: StateDeployment[] = [];
    const out: string[] = [];
    const errors: string[] = [];
    const status = await runForgetServerCommand(
      argv,
      {
        readConfig: () => deps.config ?? prod,
        openState: deps.openState ?? (async () => ({ read: async () => ({ state: state(), readable: state() }), write: async (s) => void written.push(s) })),
        answers: deps.answers ?? (() => ({ answers: false, why: "ssh: connect to host 198.51.100.2 port 22022: No route to host" })),
      },
      { line: (t) => out.push(t) },
      { line: (t) => errors.push(t) },
    );
    return { status, written, out: out.join("\n"), errors: errors.join("\n") };
  };

  it("forgets the server's resources and writes the state once, naming each and the next step", async () => {
    const result = await run(["--stack", "prod", "--server", GONE]);
    assert.equal(result.status, 0, result.errors);
    assert.equal(result.written.length, 1);
    assert.deepEqual(names(result.written[0]!), ["bbaegok-infra-prod", "server", "server-docker", "db", "database-replica-1", "database-replica-1-retire", "app-blue"]);
    assert.match(result.out, /6 resources on 198\.51\.100\.2, which does not answer, are taken out of the state/);
    assert.match(result.out, /docker:index\/container:Container {2}database-replica-1$/m);
    assert.match(result.out, /Now pulumi up -s prod/);
    assert.match(result.out, /ssh:\/\/deploy@198\.51\.100\.2:22022 does not answer: ssh: connect to host .* No route to host/);
  });

  it("--dry-run lists them and writes nothing", async () => {
    const result = await run(["--stack", "prod", "--server", GONE, "--dry-run"]);
    assert.equal(result.status, 0);
    assert.deepEqual(result.written, []);
    assert.match(result.out, /would be taken out of the state/);
  });

  it("refuses a server that still answers SSH with its pinned key: it is not gone (exit 2, nothing written)", async () => {
    const asked: string[] = [];
    const result = await run(["--stack", "prod", "--server", GONE], { answers: (host) => (asked.push(host), { answers: true, why: "it ran a command" }) });
    assert.equal(result.status, 2);
    assert.deepEqual(result.written, []);
    assert.deepEqual(asked, [`ssh://deploy@${GONE}:22022`]);
    assert.match(result.errors, /198\.51\.100\.2 answers SSH at ssh:\/\/deploy@198\.51\.100\.2:22022 \(it ran a command\): it is not gone\. pulumi up -s prod removes what the stack has there .*nothing was forgotten/);
  });

  it("refuses while the stack file still names the server (the up would create the replica there again)", async () => {
    const result = await run(["--stack", "prod", "--server", GONE], { config: withReplicaOn(GONE), openState: async () => assert.fail("the state was opened") });
    assert.equal(result.status, 2);
    assert.match(result.errors, /Pulumi\.prod\.yaml still names 198\.51\.100\.2 \(database\.replicas\[0\]\.server\): take that replica out of the stack file first/);
  });

  it("refuses the stack's own server", async () => {
    const result = await run(["--stack", "prod", "--server", prod.server.host], { openState: async () => assert.fail("the state was opened") });
    assert.equal(result.status, 2);
    assert.match(result.errors, /is Pulumi\.prod\.yaml's own server \(server\.host\)/);
  });

  it("a server the state holds nothing of: exit 0, nothing written, nothing asked of SSH", async () => {
    const result = await run(["--stack", "prod", "--server", "203.0.113.9"], { answers: () => assert.fail("ssh was tried") });
    assert.equal(result.status, 0);
    assert.deepEqual(result.written, []);
    assert.match(result.out, /nothing in its state is on 203\.0\.113\.9; nothing to forget/);
  });

  it("a missing --server or --stack: usage, exit 2", async () => {
    assert.equal((await run(["--stack", "prod"])).status, 2);
    assert.match((await run(["--server", GONE])).errors, /--stack is required\nusage: npm run forget-server/);
  });

  it("a state it cannot edit safely: exit 1, nothing written", async () => {
    const result = await run(["--stack", "prod", "--server", GONE], {
      openState: async () => ({
        read: async () => {
          const s = state();
          s.deployment.resources![7]!.inputs = { connection: { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", ciphertext: "…" } };
          return { state: s, readable: s };
        },
        write: async () => assert.fail("written"),
      }),
    });
    assert.equal(result.status, 1);
    assert.match(result.errors, /forget-server of prod failed: .*its connection is not readable/);
  });
});

describe("the state through the Pulumi CLI: pipes only, no secret on disk", () => {
  it("exports twice (the second with secrets shown, only read), imports the edited state on stdin, writes no file in the temp folder", async () => {
    const dir = tempDir("forget-cli");
    const tmp = tempDir("forget-tmp");
    const saved = { PATH: process.env["PATH"], TMPDIR: process.env["TMPDIR"] };
    try {
      // A stand-in `pulumi` that logs its arguments and what it was given on stdin.
      const bin = join(dir.path, "pulumi");
      writeFileSync(
        bin,
        [
          "#!/bin/bash",
          `echo "$*" >> '${dir.path}/args'`,
          'case "$*" in',
          `  "stack export --stack prod --non-interactive") echo '{"version":3,"deployment":{"resources":[{"urn":"u","type":"t","inputs":{"s":{"ciphertext":"x"}}}]}}' ;;`,
          `  "stack export --show-secrets --stack prod --non-interactive") echo '{"version":3,"deployment":{"resources":[{"urn":"u","type":"t","inputs":{"s":{"plaintext":"\\"shown\\""}}}]}}' ;;`,
          `  "stack import --stack prod --non-interactive") cat > '${dir.path}/imported' ;;`,
          "  *) echo unexpected >&2; exit 9 ;;",
          "esac",
        ].join("\n"),
      );
      chmodSync(bin, 0o755);
      process.env["PATH"] = `${dir.path}:${saved.PATH}`;
      process.env["TMPDIR"] = tmp.path;
      const store = await productionDeps.openState("prod");
      const { state, readable } = await store.read();
      assert.deepEqual(state.deployment.resources![0]!.inputs, { s: { ciphertext: "x" } });
      assert.deepEqual(readable.deployment.resources![0]!.inputs, { s: { plaintext: '"shown"' } });
      await store.write(state);
      assert.deepEqual(JSON.parse(readFileSync(join(dir.path, "imported"), "utf8")), state);
      assert.deepEqual(readFileSync(join(dir.path, "args"), "utf8").trim().split("\n"), [
        "stack export --stack prod --non-interactive",
        "stack export --show-secrets --stack prod --non-interactive",
        "stack import --stack prod --non-interactive",
      ]);
      assert.deepEqual(readdirSync(tmp.path), [], "a file was written in the temp folder");
    } finally {
      process.env["PATH"] = saved.PATH;
      if (saved.TMPDIR === undefined) delete process.env["TMPDIR"];
      else process.env["TMPDIR"] = saved.TMPDIR;
      dir.remove();
      tmp.remove();
    }
  });
});
