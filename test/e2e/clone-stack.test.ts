// `npm run stack:clone` as an operator runs it, in a copy of the project:
// from each committed stack to a new server, the new file passes the program's
// schema, differs from its source in every server-specific value, carries none
// of the source's secrets, keeps its comments and plans offline; missing or
// conflicting values and an existing target are refused, writing nothing.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { listStacks, readStackFile } from "../../stacks/config/files.js";
import type { StackConfig } from "../../stacks/config/schema.js";
import { loadStack } from "../../stacks/config/load.js";
import { copyProject, REPO, runPlan } from "../support/project.js";

// PATH without a Pulumi CLI, as on this machine and in CI: the clone must say how to create the stack.
const PATH_WITHOUT_PULUMI = [dirname(process.execPath), "/usr/bin", "/bin"].join(":");

function runClone(projectDir: string, args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ["--import", "tsx", join(projectDir, "ops", "stack-clone.ts"), ...args], {
    cwd: projectDir,
    encoding: "utf8",
    env: { ...process.env, PATH: PATH_WITHOUT_PULUMI },
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

function configOf(projectDir: string, stack: string): StackConfig {
  return loadStack(stack, projectDir).config;
}

/** The values that belong to one server or one environment, which a clone must never share with its source. */
function serverSpecific(config: StackConfig): Record<string, string | undefined> {
  return {
    "server.host": config.server.host,
    "server.publicIp": config.server.publicIp,
    "server.ssh.hostKey": config.server.ssh.hostKey,
    "domains.api": config.domains.api,
    "domains.metabase": config.domains.metabase,
    "app.healthCheck.hostHeader": config.app.healthCheck.hostHeader,
    "backup.bucket": config.backup.bucket,
  };
}

/** The new server's host key (ssh-keygen's output for a throwaway key: well-formed, unlike any committed stack's). */
const NEW_SERVER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPpoHueJZ2sr1vXtaIB4jVrI3WXzQPaRjvMbiNrjxTFG";

/** Arguments for a clone of `from` to `to` on a server of its own. */
function newServerArgs(from: string, to: string, octet: number): string[] {
  const source = configOf(REPO, from);
  return [
    ...["--from", from, "--to", to, "--host", `${to}.bbaegok.kr`, "--public-ip", `198.51.100.${octet}`, "--host-key", NEW_SERVER_KEY],
    ...["--api", `${to}-api.bbaegok.kr`, "--bucket", `bbaegok-${to}-db-backups`],
    ...(source.metabase.enabled ? ["--metabase", `${to}-metabase.bbaegok.kr`] : []),
  ];
}

const SOURCE_SECRETS = "  cloudflare:apiToken:\n    secure: v1:c2VjcmV0LWNsb3VkZmxhcmU=\n  bbaegok-infra:backupPingUrl:\n    secure: v1:c2VjcmV0LXBpbmctdXJs\n";

describe("npm run stack:clone", () => {
  const project = copyProject();
  after(() => project.remove());

  // The copy's source files get encrypted secrets and a comment of their own, to prove
  // the secrets stay behind and the comments come along.
  for (const stack of listStacks(REPO)) {
    const text = readFileSync(join(REPO, `Pulumi.${stack}.yaml`), "utf8").replace(/^( {6}port: \d+)$/m, "$1 # the router forwards this port to the server's sshd");
    assert.match(text, /# the router forwards/);
    project.writeStackFile(stack, text + SOURCE_SECRETS);
  }

  listStacks(REPO).forEach((from, i) => {
    describe(`from ${from} to a new server`, () => {
      const to = `onboard${i + 1}`;
      const result = runClone(project.dir, newServerArgs(from, to, 10 + i));

      it("writes the new stack file and says what is now true", () => {
        assert.equal(result.status, 0, result.stderr);
        assert.match(result.stdout, new RegExp(`Wrote .*Pulumi\\.${to}\\.yaml \\(validated`));
        assert.match(result.stdout, new RegExp(`${to} owns the nginx proxy on ${to}\\.bbaegok\\.kr`));
      });

      it("passes the program's schema and the checks across stacks", () => {
        const config = configOf(project.dir, to);
        assert.equal(config.proxy.mode, "owner", "the only stack on its server owns the proxy");
      });

      it("differs from its source in every server-specific value", () => {
        const source = serverSpecific(configOf(project.dir, from));
        const clone = serverSpecific(configOf(project.dir, to));
        for (const [key, value] of Object.entries(source)) {
          if (value === undefined) continue;
          assert.notEqual(clone[key], value, `${key} is copied from ${from}`);
          assert.ok(clone[key], `${key} is missing in the clone`);
        }
      });

      it("carries none of the source's secrets, and lists the commands to set the new stack's own", () => {
        const text = readFileSync(join(project.dir, `Pulumi.${to}.yaml`), "utf8");
        assert.doesNotMatch(text, /secure:/);
        assert.doesNotMatch(text, /c2VjcmV0/);
        assert.deepEqual(readStackFile(project.dir, to).secretKeys, []);
        assert.match(result.stdout, new RegExp(`pulumi config set --secret cloudflare:apiToken -s ${to}\\n`));
        assert.match(result.stdout, new RegExp(`pulumi config set --secret backupPingUrl -s ${to} +# optional`));
      });

      it("keeps the source's comments and gets a header of its own", () => {
        const text = readFileSync(join(project.dir, `Pulumi.${to}.yaml`), "utf8");
        assert.match(text, /port: 22022 # the router forwards this port/);
        assert.match(text, new RegExp(`^# ${to}: cloned from Pulumi\\.${from}\\.yaml`));
      });

      it("says how to create the stack when the Pulumi CLI is not installed", () => {
        assert.match(result.stdout, new RegExp(`The Pulumi CLI is not on PATH.*pulumi stack init ${to}`));
      });

      it("plans offline with the real program", () => {
        const plan = runPlan(project.dir, ["--stack", to, "--json"]);
        assert.equal(plan.status, 0, plan.stderr);
        const rows = JSON.parse(plan.stdout) as { type: string; inputs: Record<string, unknown> }[];
        const docker = rows.find((r) => r.type === "pulumi:providers:docker");
        assert.equal(docker?.inputs["host"], `ssh://deploy@${to}.bbaegok.kr:22022`);
        assert.ok(rows.some((r) => r.inputs["name"] === `bbaegok-${to}-db-data`));
      });
    });
  });

  it("attaches a new stack on a server that has a proxy owner as a guest of it", () => {
    const result = runClone(project.dir, [
      ...["--from", "prod", "--to", "demo", "--host", "home.bbaegok.kr", "--public-ip", "203.0.113.24"],
      ...["--api", "demo-api.bbaegok.kr", "--no-metabase", "--bucket", "bbaegok-demo-db-backups"],
    ]);
    assert.equal(result.status, 0, result.stderr);
    const config = configOf(project.dir, "demo");
    assert.deepEqual(config.proxy.mode === "guest" && config.proxy.ownerStack, "organization/bbaegok-infra/prod");
    // The same server (host and port): its pinned host key comes along, no --host-key needed.
    assert.equal(config.server.ssh.hostKey, configOf(project.dir, "prod").server.ssh.hostKey);
    assert.equal(config.metabase.enabled, false);
    assert.equal(config.domains.metabase, undefined);
    // prod has 172.30.10.0/24 and staging 172.30.20.0/24 on that server: the next free /24 after prod's.
    assert.equal(config.server.edgeSubnet, "172.30.11.0/24");
    assert.match(result.stdout, /The edge network gets 172\.30\.11\.0\/24, the next \/24 free on home\.bbaegok\.kr \(taken there: Pulumi\.prod\.yaml 172\.30\.10\.0\/24, Pulumi\.staging\.yaml 172\.30\.20\.0\/24\); --edge-subnet chooses another\./);
    assert.equal(runPlan(project.dir, ["--stack", "demo"]).status, 0);
  });

  it("takes the edge subnet from --edge-subnet, and refuses one another stack on the server has", () => {
    const args = (to: string, subnet: string) => [
      ...["--from", "staging", "--to", to, "--host", "home.bbaegok.kr", "--public-ip", "203.0.113.24"],
      ...["--api", `${to}-api.bbaegok.kr`, "--bucket", `bbaegok-${to}-db-backups`, "--edge-subnet", subnet],
    ];
    const clash = runClone(project.dir, args("clash", "172.30.20.0/24"));
    assert.equal(clash.status, 2);
    assert.match(clash.stderr, /Pulumi\.clash\.yaml: bbaegok-infra:server\.edgeSubnet = "172\.30\.20\.0\/24": a subnet no other stack on home\.bbaegok\.kr uses; Pulumi\.staging\.yaml has 172\.30\.20\.0\/24, which overlaps it \(set by --edge-subnet\)/);
    assert.ok(!existsSync(join(project.dir, "Pulumi.clash.yaml")));
    const chosen = runClone(project.dir, args("qa", "192.168.40.0/24"));
    assert.equal(chosen.status, 0, chosen.stderr);
    assert.equal(configOf(project.dir, "qa").server.edgeSubnet, "192.168.40.0/24");
    assert.doesNotMatch(chosen.stdout, /The edge network gets/);
  });

  it("refuses missing values, naming each option, and writes nothing", () => {
    const before = readdirSync(project.dir).sort();
    const result = runClone(project.dir, ["--from", "prod", "--to", "lonely", "--host", "lonely.bbaegok.kr"]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /Cannot clone Pulumi\.prod\.yaml to Pulumi\.lonely\.yaml: 5 problems/);
    for (const option of ["--public-ip", "--api", "--bucket", "--metabase", "--host-key"]) assert.match(result.stderr, new RegExp(`- ${option} is required: `));
    // Another server has another host key: the clone says how to read it, at the port the new stack uses.
    assert.match(result.stderr, /--host-key is required: the new server's SSH host key, "ssh-ed25519 AAAA…" \(every stack pins it\): ssh-keyscan -p 22022 -t ed25519 lonely\.bbaegok\.kr prints it/);
    assert.match(result.stderr, /Nothing was written/);
    assert.deepEqual(readdirSync(project.dir).sort(), before);
  });

  it("refuses host names and buckets another stack uses, and a second proxy owner on one server", () => {
    const reused = runClone(project.dir, [...newServerArgs("prod", "copycat", 50).slice(0, 8), "--api", "api.bbaegok.kr", "--bucket", "bbaegok-staging-db-backups", "--metabase", "m.bbaegok.kr"]);
    assert.equal(reused.status, 2);
    assert.match(reused.stderr, /--api api\.bbaegok\.kr is already used by Pulumi\.prod\.yaml/);
    assert.match(reused.stderr, /--bucket bbaegok-staging-db-backups is already used by Pulumi\.staging\.yaml/);
    const owner = runClone(project.dir, [
      ...["--from", "staging", "--to", "rival", "--host", "home.bbaegok.kr", "--public-ip", "203.0.113.24"],
      ...["--api", "rival-api.bbaegok.kr", "--bucket", "bbaegok-rival-db-backups", "--proxy", "owner"],
    ]);
    assert.equal(owner.status, 2);
    assert.match(owner.stderr, /Pulumi\.rival\.yaml: bbaegok-infra:proxy\.mode = "owner": "guest": Pulumi\.prod\.yaml already owns the proxy on home\.bbaegok\.kr \(set by --proxy\)/);
    assert.ok(!existsSync(join(project.dir, "Pulumi.copycat.yaml")) && !existsSync(join(project.dir, "Pulumi.rival.yaml")));
  });

  it("refuses a value the schema refuses, naming the key and the option that set it", () => {
    const result = runClone(project.dir, [...newServerArgs("staging", "typo", 60).map((a) => (a === "198.51.100.60" ? "198.51.100.600" : a))]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /Pulumi\.typo\.yaml: bbaegok-infra:server\.publicIp = "198\.51\.100\.600": expected a public IPv4 address .* \(set by --public-ip\)/);
    assert.ok(!existsSync(join(project.dir, "Pulumi.typo.yaml")));
    assert.deepEqual(readdirSync(project.dir).filter((f) => f.startsWith(".stack-clone")), [], "a staging folder is left behind");
  });

  it("never overwrites an existing stack file", () => {
    const staging = readFileSync(join(project.dir, "Pulumi.staging.yaml"), "utf8");
    const result = runClone(project.dir, newServerArgs("prod", "staging", 70));
    assert.equal(result.status, 2);
    assert.match(result.stderr, /Pulumi\.staging\.yaml already exists: stack:clone never overwrites a stack file/);
    assert.equal(readFileSync(join(project.dir, "Pulumi.staging.yaml"), "utf8"), staging);
  });

  it("refuses a call without --from and --to with the usage", () => {
    const result = runClone(project.dir, ["--host", "x.bbaegok.kr"]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /--from is required/);
    assert.match(result.stderr, /usage: npm run stack:clone -- --from <stack> --to <name>/);
  });

  describe("what of the source's database is its own servers and history", () => {
    // A copy of its own: the source stack files here are variants of prod.
    const own = copyProject();
    after(() => own.remove());
    const prod = readFileSync(join(REPO, "Pulumi.prod.yaml"), "utf8");
    const withDatabase = (lines: string) => prod.replace(/(  bbaegok-infra:database:\n(?:    .*\n)+)/, `$1${lines}`);
    const cloneOf = (source: string, to: string, octet: number) => {
      own.writeStackFile("prod", source);
      const result = runClone(own.dir, newServerArgs("prod", to, octet));
      assert.equal(result.status, 0, result.stdout + result.stderr);
      return { result, database: configOf(own.dir, to).database, text: readFileSync(join(own.dir, `Pulumi.${to}.yaml`), "utf8") };
    };

    it("a promotion (primary: replica) is left out, saying so: the new stack starts with a primary of its own and a replica seeded from it", () => {
      const { result, database, text } = cloneOf(withDatabase("    primary: replica\n    replicas:\n      - maxLagSeconds: 120\n"), "fresh", 80);
      assert.equal(database.primary, "original");
      assert.doesNotMatch(text, /primary: replica/);
      assert.deepEqual(database.replicas, [{ maxLagSeconds: 120, readTimeoutSeconds: 30 }]);
      assert.match(result.stdout, /database\.primary: replica is left out: prod's promotion is its own history; fresh starts with a primary of its own and a replica seeded from it\./);
    });

    it("a replica on another server is left out with its link, saying so; the rest of the database is kept", () => {
      const elsewhere =
        "    replicas:\n      - maxLagSeconds: 120\n        server:\n          host: replica.bbaegok.kr\n          ssh:\n            user: deploy\n            port: 2222\n" +
        `            hostKey: ${NEW_SERVER_KEY}\n        link: { type: tailnet, primaryAddress: 100.101.102.103, replicaAddress: 100.101.102.104 }\n`;
      const { result, database, text } = cloneOf(withDatabase(elsewhere), "alone", 81);
      assert.deepEqual(database.replicas, []);
      assert.doesNotMatch(text, /replica\.bbaegok\.kr|100\.101\.102/);
      assert.deepEqual([database.engine, database.version, database.memoryMb], ["mariadb", "11.4.12", 2048]);
      assert.match(result.stdout, /database\.replicas\[0\] on replica\.bbaegok\.kr is left out: that server and its link are prod's\./);
    });

    it("a replica on the same server is kept, and nothing is said about it", () => {
      const { result, database } = cloneOf(withDatabase("    replicas:\n      - maxLagSeconds: 120\n"), "paired", 82);
      assert.deepEqual(database.replicas, [{ maxLagSeconds: 120, readTimeoutSeconds: 30 }]);
      assert.doesNotMatch(result.stdout, /left out/);
    });
  });

  it("left the repository's own stack files alone (every clone ran in the copy)", () => {
    assert.deepEqual(listStacks(REPO), ["prod", "staging"]);
  });
});
