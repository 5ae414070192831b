// Stack config validation: every kind of bad input is named with the stack
// file, the key path, the value and what is expected — all problems at once.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { slotEnvs } from "../../infra/app/render.js";
import { databaseSpec } from "../../infra/database/render.js";
import { readStackFile } from "../../stacks/config/files.js";
import { StackConfigError, rawFromPulumiConfig, validateStackConfig, type SiblingStack } from "../../stacks/config/validate.js";
import { REPO } from "../support/project.js";

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test fixtures are mutated freely

function committed(stack: string): Raw {
  return rawFromPulumiConfig(readStackFile(REPO, stack).config) as Raw;
}

function problemsOf(stack: string, raw: Raw, siblings: SiblingStack[] = []): string[] {
  try {
    validateStackConfig(stack, raw, siblings);
  } catch (err) {
    assert.ok(err instanceof StackConfigError, `expected a StackConfigError, got ${String(err)}`);
    return err.message.split("\n").slice(1).map((l) => l.replace(/^\s+- /, ""));
  }
  assert.fail("expected the config to be rejected");
}

/** Mutates a copy of prod's committed config and expects exactly one problem matching all `parts`. */
function expectOne(mutate: (raw: Raw) => void, ...parts: string[]): void {
  const raw = structuredClone(committed("prod"));
  mutate(raw);
  const problems = problemsOf("prod", raw);
  assert.equal(problems.length, 1, `expected one problem, got:\n${problems.join("\n")}`);
  for (const part of parts) assert.ok(problems[0]!.includes(part), `"${problems[0]}" should include "${part}"`);
  assert.ok(problems[0]!.startsWith("Pulumi.prod.yaml: bbaegok-infra:"), `"${problems[0]}" should name the file and key`);
}

describe("committed stack files", () => {
  for (const stack of ["prod", "staging"]) {
    it(`${stack} is valid, with its siblings`, () => {
      const other = stack === "prod" ? "staging" : "prod";
      const config = validateStackConfig(stack, committed(stack), [{ stack: other, raw: committed(other) }]);
      assert.equal(config.server.host, "home.bbaegok.kr");
    });
  }
});

describe("bad input is named precisely", () => {
  it("missing server host", () => expectOne((r) => delete r.server.host, "bbaegok-infra:server.host is missing", "DNS name or IPv4"));
  it("bad domain", () => expectOne((r) => (r.domains.api = "API_bbaegok.kr"), "domains.api", '"API_bbaegok.kr"', "DNS name"));
  it("domain outside the zone", () => expectOne((r) => (r.domains.api = "api.example.com"), "domains.api", "inside the zone bbaegok.kr"));
  it("unknown engine", () => expectOne((r) => (r.database.engine = "oracle"), "database.engine", '"oracle"', '"mysql", "mariadb", "postgres"'));
  it("bad cron expression: hour out of range", () => expectOne((r) => (r.backup.schedule = "0 25 * * *"), "backup.schedule", "hour 25 is out of range"));
  it("bad cron expression: four fields", () => expectOne((r) => (r.backup.schedule = "0 4 * *"), "backup.schedule", "has 4 fields"));
  it("image without a tag", () => expectOne((r) => (r.app.image = "ghcr.io/bbaegok/bbaegok-api"), "app.image", "pinned version"));
  it("image on latest", () => expectOne((r) => (r.metabase.image = "metabase/metabase:latest"), "metabase.image", '"metabase/metabase:latest"'));
  it("database version not pinned", () => expectOne((r) => (r.database.version = "11"), "database.version", "major.minor"));
  it("PostgreSQL 18, whose image refuses the data volume where the program mounts it", () => {
    expectOne((r) => Object.assign(r.database, { engine: "postgres", version: "18.1", replicas: [] }), "database.version", '"18.1"', "PostgreSQL 17 or older for the database", "/var/lib/postgresql/18/docker");
    expectOne((r) => (r.metabase.databaseImage = "postgres:18.1-alpine"), "metabase.databaseImage", "PostgreSQL 17 or older for Metabase's own database");
  });
  it("PostgreSQL 17 and a digest-pinned Metabase database image pass", () => {
    for (const mutate of [(r: Raw) => Object.assign(r.database, { engine: "postgres", version: "17.7", replicas: [] }), (r: Raw) => (r.metabase.databaseImage = `postgres@sha256:${"a".repeat(64)}`)]) {
      const raw = structuredClone(committed("prod"));
      mutate(raw);
      assert.doesNotThrow(() => validateStackConfig("prod", raw, []));
    }
  });
  it("port out of range", () => expectOne((r) => (r.app.port = 70000), "app.port", "70000", "1-65535"));
  it("ssh port not a number", () => expectOne((r) => (r.server.ssh.port = "twenty-two"), "server.ssh.port", "TCP port"));
  it("ssh host key missing", () =>
    expectOne((r) => delete r.server.ssh.hostKey, "bbaegok-infra:server.ssh.hostKey is missing", "ssh-keyscan -p <port> -t ed25519 <host>", '"ssh-ed25519 AAAAC3Nz…"'));
  it("ssh host key with the host name ssh-keyscan prints first", () =>
    expectOne((r) => (r.server.ssh.hostKey = `[home.bbaegok.kr]:22022 ${r.server.ssh.hostKey}`), "server.ssh.hostKey", "leave out the host name"));
  it("an RSA host key (the command provider would offer only SHA-1 ssh-rsa for it, which OpenSSH 8.8+ refuses)", () =>
    expectOne((r) => (r.server.ssh.hostKey = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7"), "server.ssh.hostKey", "not its RSA one", "ssh-keyscan -p <port> -t ed25519 <host>"));
  it("misspelled key", () => expectOne((r) => (r.server.dataDri = "/srv"), "server.dataDri", "no such key under bbaegok-infra:server"));
  it("unknown top-level key", () => expectOne((r) => (r.databse = {}), "bbaegok-infra:databse", "no such key"));
  it("unknown time zone", () => expectOne((r) => (r.backup.timezone = "Mars/Olympus"), "backup.timezone", "IANA time zone"));
  it("bad health-check duration", () => expectOne((r) => (r.app.healthCheck.interval = "10 seconds"), "app.healthCheck.interval", "duration"));
  it("bad proxy mode", () => expectOne((r) => (r.proxy.mode = "ownr"), "proxy.mode", '"ownr"', '"owner" or "guest"'));
  it("origin pulls on a stack not behind Cloudflare", () =>
    expectOne(
      (r) => Object.assign(r.proxy, { cloudflareProxied: false, authenticatedOriginPulls: true, tls: { source: "provided", certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" } }),
      "proxy.authenticatedOriginPulls",
      "cloudflareProxied is false",
    ));
  it("origin pulls not a boolean", () => expectOne((r) => (r.proxy.authenticatedOriginPulls = "yes"), "proxy.authenticatedOriginPulls", '"yes"'));
  it("bad public IP", () => expectOne((r) => (r.server.publicIp = "203.0.113"), "server.publicIp", "IPv4"));
  it("public IP on the home network (Cloudflare refuses to proxy it)", () => expectOne((r) => (r.server.publicIp = "192.168.1.10"), "server.publicIp", '"192.168.1.10"', "not a private (RFC 1918) one"));
  it("public IP behind carrier-grade NAT", () => expectOne((r) => (r.server.publicIp = "100.64.1.1"), "server.publicIp", "shared address space"));
  it("public IP on loopback", () => expectOne((r) => (r.server.publicIp = "127.0.0.1"), "server.publicIp", "loopback"));
  it("public IP just outside the private ranges is accepted", () => {
    for (const ip of ["172.32.0.1", "100.128.0.1", "11.0.0.1", "223.255.255.254"]) {
      const raw = structuredClone(committed("prod"));
      raw.server.publicIp = ip;
      assert.equal(validateStackConfig("prod", raw).server.publicIp, ip);
    }
  });
  it("relative data dir", () => expectOne((r) => (r.server.dataDir = "srv/bbaegok"), "server.dataDir", "absolute path"));
  it("metabase enabled without a host name", () => expectOne((r) => delete r.domains.metabase, "domains.metabase is missing", "metabase.enabled is true"));
  it("lifecycle days out of order", () => expectOne((r) => (r.backup.retention.archiveAfterDays = 10), "backup.retention", "infrequentAfterDays < archiveAfterDays"));
  it("archive sooner than 30 days after STANDARD_IA (S3 refuses the lifecycle rule)", () =>
    expectOne((r) => Object.assign(r.backup.retention, { infrequentAfterDays: 30, archiveAfterDays: 45 }), "backup.retention.archiveAfterDays", "at least infrequentAfterDays + 30 (60)"));
  it("archive exactly 30 days after STANDARD_IA is accepted", () => {
    const raw = structuredClone(committed("prod"));
    Object.assign(raw.backup.retention, { infrequentAfterDays: 40, archiveAfterDays: 70 });
    assert.equal(validateStackConfig("prod", raw).backup.retention.archiveAfterDays, 70);
  });
  it("object lock longer than retention", () => expectOne((r) => (r.backup.objectLock.days = 1000), "backup.objectLock.days", "a locked backup cannot expire"));
  it("edge subnet missing", () => expectOne((r) => delete r.server.edgeSubnet, "bbaegok-infra:server.edgeSubnet is missing", "private IPv4 /24"));
  it("edge subnet not a CIDR block", () => expectOne((r) => (r.server.edgeSubnet = "172.30.10.0"), "server.edgeSubnet", '"172.30.10.0"', "IPv4 /24"));
  it("edge subnet not a /24", () => expectOne((r) => (r.server.edgeSubnet = "172.30.0.0/16"), "server.edgeSubnet", '"172.30.0.0/16"', "IPv4 /24"));
  it("edge subnet not at its network address", () => expectOne((r) => (r.server.edgeSubnet = "172.30.10.5/24"), "server.edgeSubnet", "network address"));
  it("edge subnet with a bad octet", () => expectOne((r) => (r.server.edgeSubnet = "172.30.300.0/24"), "server.edgeSubnet", "IPv4 /24"));
  it("edge subnet in a public range", () => expectOne((r) => (r.server.edgeSubnet = "203.0.113.0/24"), "server.edgeSubnet", '"203.0.113.0/24"', "private range"));
  it("edge subnet just outside 172.16.0.0/12", () => expectOne((r) => (r.server.edgeSubnet = "172.32.0.0/24"), "server.edgeSubnet", "private range"));
  it("app.env setting what the program sets: the writes' datasource (a promotion would be undone)", () =>
    expectOne((r) => (r.app.env.SPRING_DATASOURCE_URL = "jdbc:mariadb://db:3306/bbaegok"), "app.env.SPRING_DATASOURCE_URL", "expected no SPRING_DATASOURCE_URL: the program sets it", "npm run promote"));
  it("app.env with the database password (a file, never the environment)", () =>
    expectOne((r) => (r.app.env.SPRING_DATASOURCE_PASSWORD = "hunter2"), "app.env.SPRING_DATASOURCE_PASSWORD", "a file the program mounts"));
  it("app.env with JVM options where the program sizes the heap: JDK_JAVA_OPTIONS named instead", () =>
    expectOne((r) => (r.app.env.JAVA_TOOL_OPTIONS = "-Xmx2g"), "app.env.JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS"));
  it("a JDBC driver that cannot reach the engine (MariaDB's engine, PostgreSQL's driver)", () =>
    expectOne((r) => (r.app.jdbcDriver = "postgresql"), "app.jdbcDriver", 'expected a driver for database.engine mariadb: "mariadb-java-client" or "mysql-connector-j"'));
  it("a JDBC driver the schema does not know", () => expectOne((r) => (r.app.jdbcDriver = "mysql-connector-java"), "app.jdbcDriver", '"mariadb-java-client", "mysql-connector-j" or "postgresql"'));
  it("the app's JDBC driver decides the datasource URLs' scheme: the engine's own by default, MySQL's Connector/J on MariaDB when the app bundles that", () => {
    const urls = (mutate: (r: Raw) => void) => {
      const raw = structuredClone(committed("prod"));
      raw.database.replicas = [{}];
      mutate(raw);
      return slotEnvs(validateStackConfig("prod", raw), "blue").filter((e) => /^SPRING_DATASOURCE_(REPLICA_)?URL=/.test(e));
    };
    assert.deepEqual(urls(() => {}), ["SPRING_DATASOURCE_REPLICA_URL=jdbc:mariadb://db-replica:3306/bbaegok?socketTimeout=30000", "SPRING_DATASOURCE_URL=jdbc:mariadb://db:3306/bbaegok"]);
    assert.deepEqual(urls((r) => (r.app.jdbcDriver = "mysql-connector-j")), [
      "SPRING_DATASOURCE_REPLICA_URL=jdbc:mysql://db-replica:3306/bbaegok?characterEncoding=UTF-8&connectionCollation=utf8mb4_unicode_ci&connectionTimeZone=UTC&socketTimeout=30000",
      "SPRING_DATASOURCE_URL=jdbc:mysql://db:3306/bbaegok?characterEncoding=UTF-8&connectionCollation=utf8mb4_unicode_ci&connectionTimeZone=UTC",
    ]);
    assert.deepEqual(urls((r) => Object.assign(r.database, { engine: "postgres", version: "16.10" })), ["SPRING_DATASOURCE_REPLICA_URL=jdbc:postgresql://db-replica:5432/bbaegok?socketTimeout=30", "SPRING_DATASOURCE_URL=jdbc:postgresql://db:5432/bbaegok"]);
  });
  it("MariaDB 11.2 and later get utf8mb4's collation mapped to the database's (the official image maps it to uca1400_ai_ci); older servers and other engines, which have no such variable, do not", () => {
    const flags = (engine: string, version: string) => databaseSpec({ ...validateStackConfig("prod", committed("prod")).database, engine: engine as "mariadb", version }).command.filter((f) => f.startsWith("--character-set-collations"));
    for (const version of ["11.4.4", "11.2", "11.8.3", "12.0.1"]) assert.deepEqual(flags("mariadb", version), ["--character-set-collations=utf8mb4=utf8mb4_unicode_ci"], version);
    for (const version of ["10.11.9", "11.1.6", "10.6"]) assert.deepEqual(flags("mariadb", version), [], version);
    assert.deepEqual(flags("mysql", "8.4.3"), []);
    assert.deepEqual(flags("postgres", "16.10"), []);
  });
  it("bad bucket name", () => expectOne((r) => (r.backup.bucket = "Bbaegok_Backups"), "backup.bucket", "S3 bucket name"));
  it("bucket name shaped as an IP address", () => expectOne((r) => (r.backup.bucket = "10.0.0.1"), "backup.bucket", "not an IP address"));
  it("bucket name with a prefix S3 reserves", () => expectOne((r) => (r.backup.bucket = "sthree-bbaegok"), "backup.bucket", "not starting with xn--, sthree-, amzn-s3-demo-"));
  it("bucket name with a suffix S3 reserves", () => expectOne((r) => (r.backup.bucket = "bbaegok--x-s3"), "backup.bucket", "not ending with", "--x-s3"));
});

describe("stacks that share a server", () => {
  const prod = () => ({ stack: "prod", raw: committed("prod") });

  it("duplicate host names across stacks on one server are refused", () => {
    const staging = structuredClone(committed("staging"));
    staging.domains.api = "api.bbaegok.kr";
    const problems = problemsOf("staging", staging, [prod()]);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^Pulumi\.staging\.yaml: bbaegok-infra:domains\.api = "api\.bbaegok\.kr": .*Pulumi\.prod\.yaml uses it too/);
  });

  it("the same host name on another server is fine", () => {
    const staging = structuredClone(committed("staging"));
    staging.domains.api = "api.bbaegok.kr";
    staging.server.host = "other.bbaegok.kr";
    staging.proxy = { mode: "owner" };
    assert.doesNotThrow(() => validateStackConfig("staging", staging, [prod()]));
  });

  it("the same edge subnet as another stack on one server is refused", () => {
    const staging = structuredClone(committed("staging"));
    staging.server.edgeSubnet = "172.30.10.0/24";
    const problems = problemsOf("staging", staging, [prod()]);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^Pulumi\.staging\.yaml: bbaegok-infra:server\.edgeSubnet = "172\.30\.10\.0\/24": a subnet no other stack on home\.bbaegok\.kr uses; Pulumi\.prod\.yaml has 172\.30\.10\.0\/24, which overlaps it/);
  });

  it("the same edge subnet on another server is fine", () => {
    const staging = structuredClone(committed("staging"));
    staging.server.edgeSubnet = "172.30.10.0/24";
    staging.server.host = "other.bbaegok.kr";
    staging.proxy = { mode: "owner" };
    assert.doesNotThrow(() => validateStackConfig("staging", staging, [prod()]));
  });

  it("a second proxy owner on one server is refused", () => {
    const staging = structuredClone(committed("staging"));
    staging.proxy = { mode: "owner" };
    const problems = problemsOf("staging", staging, [prod()]);
    assert.match(problems[0]!, /proxy\.mode = "owner": "guest": Pulumi\.prod\.yaml already owns the proxy/);
  });

  it("a guest on a server where nobody owns the proxy is refused", () => {
    const p = prod();
    p.raw.proxy = { mode: "guest", ownerStack: "organization/bbaegok-infra/staging" };
    const problems = problemsOf("staging", committed("staging"), [p]);
    assert.match(problems[0]!, /proxy\.mode = "guest": .*none of Pulumi\.prod\.yaml owns it/);
  });
});

describe("all problems at once", () => {
  it("lists every problem of a broken file in one error", () => {
    const raw = structuredClone(committed("prod"));
    delete raw.server.host;
    raw.database.engine = "oracle";
    raw.app.port = 0;
    raw.backup.schedule = "every day";
    raw.app.image = "bbaegok-api:latest";
    raw.typo = true;
    const problems = problemsOf("prod", raw);
    assert.equal(problems.length, 6, problems.join("\n"));
    for (const key of ["server.host", "database.engine", "app.port", "backup.schedule", "app.image", "bbaegok-infra:typo"]) {
      assert.ok(problems.some((p) => p.includes(key)), `no problem names ${key}:\n${problems.join("\n")}`);
    }
  });
});

describe("config as the engine hands it over", () => {
  it("parses structured values from JSON text and leaves secrets out", () => {
    const raw = rawFromPulumiConfig({
      "bbaegok-infra:service": "bbaegok",
      "bbaegok-infra:server": '{"host":"h.bbaegok.kr","ssh":{"user":"deploy"}}',
      "bbaegok-infra:backupPingUrl": "https://hc-ping.com/secret",
      "aws:region": "ap-northeast-2",
    });
    assert.deepEqual(raw, { service: "bbaegok", server: { host: "h.bbaegok.kr", ssh: { user: "deploy" } } });
  });
});
