// The replica's renderers on their own: the script is shellcheck-clean for
// every engine, and database.replicas is validated with errors naming the key.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { backupPaths, backupScript, stackBackupTargets } from "../../infra/backup/render.js";
import { failbackScript, postgresReplicaEntrypoint, readReplica, replicaReadHost, replicaRoleOptions, replicaScript, replicationPgpass } from "../../infra/replica/render.js";
import { slotEnvs } from "../../infra/app/render.js";
import { databaseRuntime, PG_UNLOGGED_STATEMENTS, replacementNotice } from "../../infra/database/render.js";
import { readStackFile } from "../../stacks/config/files.js";
import { StackConfigError, rawFromPulumiConfig, validateStackConfig } from "../../stacks/config/validate.js";
import { REPO } from "../support/project.js";
import { replicatedDatabase } from "../support/replica-harness.js";
import { requireCommand } from "../support/system.js";
import { loadStack } from "../../stacks/config/load.js";
import { APP_ENV_SET_BY_PROGRAM } from "../../stacks/config/schema.js";

function shellcheck(name: string, script: string): void {
  const r = spawnSync(requireCommand("shellcheck", "shellcheck"), ["--shell=bash", "--severity=style", "-"], { input: script, encoding: "utf8" });
  assert.equal(r.status, 0, `${name} is not shellcheck-clean:\n${r.stdout}${r.stderr}`);
}

describe("the replica's scripts", () => {
  for (const engine of ["mariadb", "postgres"] as const) {
    it(`${engine}: replica.sh is shellcheck-clean`, () => {
      shellcheck(`replica.sh (${engine})`, replicaScript({ stack: "prod", service: "bbaegok", database: replicatedDatabase(engine), replica: { maxLagSeconds: 300 }, primaryContainer: "bbaegok-prod-db", replicaContainer: "bbaegok-prod-db-replica", slot: "replica_1" }));
    });
    it(`${engine}: failback.sh is shellcheck-clean, and the replica's script with the roles swapped: the promoted replica is the primary the original follows`, () => {
      const spec = { stack: "prod", service: "bbaegok", database: { ...replicatedDatabase(engine), primary: "replica" as const }, replica: { maxLagSeconds: 300 }, primaryContainer: "bbaegok-prod-db", replicaContainer: "bbaegok-prod-db-replica", slot: "replica_1" };
      const script = failbackScript({ ...spec, failbackDir: "/srv/bbaegok/prod/replica/failback" });
      shellcheck(`failback.sh (${engine})`, script);
      assert.match(script, /^readonly PRIMARY='bbaegok-prod-db-replica' REPLICA='bbaegok-prod-db'$/m);
      assert.match(script, new RegExp(`^readonly PRIMARY_HOST='db-replica' PRIMARY_PORT=${engine === "postgres" ? 5432 : 3306}$`, "m"));
      assert.match(script, /^readonly REPLICA_HOST='db' /m);
      assert.match(script, /^failback_main "\$@"$/m);
      // The replica's lock: the same log tag and server as replica.sh's, so the two never run at once.
      const replica = replicaScript(spec);
      for (const line of [/^readonly LOG_TAG=.*$/m, /^readonly THIS_SERVER=.*$/m, /^lock_dir=.*$/m]) assert.equal(script.match(line)?.[0], replica.match(line)?.[0]);
      assert.doesNotMatch(script, /^main "\$@"$/m);
    });
  }
  it("PostgreSQL: every SQL the script sends with a password first keeps failing statements out of the server's log (PG_UNLOGGED_STATEMENTS)", () => {
    const script = replicaScript({ stack: "prod", service: "bbaegok", database: replicatedDatabase("postgres"), replica: { maxLagSeconds: 300 }, primaryContainer: "bbaegok-prod-db", replicaContainer: "bbaegok-prod-db-replica", slot: "replica_1" });
    const heredocs = [...script.matchAll(/<<SQL\n([\s\S]*?)\nSQL\n/g)].map((m) => m[1]!);
    const withPassword = heredocs.filter((sql) => /PASSWORD '/.test(sql));
    assert.ok(withPassword.length >= 2, `expected the replication and backup roles' SQL, found ${withPassword.length}`);
    for (const sql of withPassword) assert.equal(sql.split("\n")[0], PG_UNLOGGED_STATEMENTS, sql);
  });
  it("the PostgreSQL entrypoint is shellcheck-clean and holds no password", () => {
    const script = postgresReplicaEntrypoint({ engine: "postgres", memoryMb: 1024, primaryHost: "db", primaryPort: 5432, secretsDir: "/run/secrets", slot: "replica_1" });
    shellcheck("entrypoint.sh", script);
    assert.match(script, /PGPASSFILE='\/run\/secrets\/replication.pgpass' pg_basebackup/);
  });
  it("the role option file: read-only until promoted, in the group both MariaDB's and MySQL's servers read (super_read_only on MySQL); none for PostgreSQL", () => {
    assert.match(replicaRoleOptions("mariadb", false)!, /^\[mysqld\]\nread_only = ON\n$/m);
    assert.match(replicaRoleOptions("mariadb", true)!, /^\[mysqld\]\nread_only = OFF\n$/m);
    assert.match(replicaRoleOptions("mysql", false)!, /^\[mysqld\]\nsuper_read_only = ON\n$/m);
    assert.equal(replicaRoleOptions("postgres", false), undefined);
  });
  it("libpq's password file escapes : and \\", () => {
    assert.equal(replicationPgpass("a:b\\c"), "*:*:*:replicator:a\\:b\\\\c\n");
  });
});

describe("the backup script of a stack with a replica", () => {
  /** prod's backup targets with these replicas (and `database.primary`, `engine`: prod's own by default). */
  const targets = (replicas: unknown[], primary?: "replica" | "promoting", engine?: "postgres") => {
    const config = loadStack("prod").config;
    const database = { ...config.database, ...(engine ? { engine, version: "16.10" } : {}), ...(primary ? { primary } : {}), replicas: replicas as typeof config.database.replicas };
    return stackBackupTargets({ ...config, database }, "prod");
  };
  const render = (replicas: unknown[], primary?: "replica" | "promoting") => {
    const config = loadStack("prod").config;
    return backupScript({ service: config.service, stack: "prod", backup: config.backup, targets: targets(replicas, primary), paths: backupPaths(config.service, "prod", config.server.dataDir) });
  };
  const elsewhere = { maxLagSeconds: 60, server: { host: "replica.bbaegok.kr", ssh: { user: "deploy", port: 22, hostKey: "ssh-ed25519 AAAA" }, dataDir: "/srv/bbaegok" }, link: { type: "wireguard", primaryAddress: "10.99.0.1", replicaAddress: "10.99.0.2", port: 51820 } };
  it("is shellcheck-clean, names the replica, its bound and replica.sh, and runs every replica hook", () => {
    const script = render([{ maxLagSeconds: 120 }]);
    shellcheck("backup.sh with a replica", script);
    assert.match(script, /^readonly REPLICAS=\(\n  'bbaegok bbaegok-prod-db-replica 120 container'\n\)$/m);
    assert.match(script, /^replica_script=\$\{BACKUP_REPLICA_SCRIPT:-\/srv\/bbaegok\/prod\/replica\/replica\.sh\}$/m);
    assert.doesNotMatch(script, /#\+replica/);
    for (const call of ["pick_source \"$name\"", "add_replication_to_manifest \"$work/manifest.json\"", "fail_on_unhealthy_replication"]) assert.ok(script.includes(`  ${call}`), `${call} is not called`);
  });
  it("with a replica on another server: checked the same way, dumped over the link at its link address and port as the backup login", () => {
    const script = render([elsewhere]);
    shellcheck("backup.sh with a replica elsewhere", script);
    assert.match(script, /^readonly REPLICAS=\(\n  'bbaegok bbaegok-prod-db-replica 60 link 10\.99\.0\.2 3306'\n\)$/m);
    assert.match(script, /^readonly LINK_BACKUP_USER=replica_backup LINK_BACKUP_PASSWORD_FILE=replica_backup_password$/m);
    assert.match(script, /^link_secrets_dir=\$\{BACKUP_SECRETS_DIR:-\/run\/secrets\}$/m);
    for (const call of ["pick_source \"$name\"", "fail_on_unhealthy_replication"]) assert.ok(script.includes(`  ${call}`), `${call} is not called`);
  });
  it("with a replica on another server promoted: the primary there, reached over the link at its link address and the engine's port; no replica left to check", () => {
    const [target] = targets([elsewhere], "replica");
    assert.deepEqual(target!.remote, { host: "10.99.0.2", port: 3306 });
    assert.equal(target!.replica, undefined);
    assert.equal(target!.container, "bbaegok-prod-db-replica");
    assert.deepEqual(targets([elsewhere], "replica", "postgres")[0]!.remote, { host: "10.99.0.2", port: 5432 });
    // Staged (promoting), the original is still the primary: its replica there is checked and dumped as before.
    const [staged] = targets([elsewhere], "promoting");
    assert.equal(staged!.remote, undefined);
    assert.deepEqual(staged!.replica, { container: "bbaegok-prod-db-replica", maxLagSeconds: 60, link: { host: "10.99.0.2", port: 3306 } });
    // Promoted on the stack's own server, it is dumped in its container here.
    assert.equal(targets([{ maxLagSeconds: 60 }], "replica")[0]!.remote, undefined);
  });
  it("with a replica on another server promoted: always dumped over the link by a one-off client of its image, which mounts this server's password files as the database's uid", () => {
    const script = render([elsewhere], "replica");
    shellcheck("backup.sh with a promoted replica elsewhere", script);
    const { version } = loadStack("prod").config.database;
    assert.match(script, new RegExp(`^readonly REPLICAS=\\(\\n  'bbaegok bbaegok-prod-db-replica 0 promoted 10\\.99\\.0\\.2 3306 mariadb:${version.replace(/\./g, "\\.")}'\\n\\)$`, "m"));
    assert.match(script, /^readonly LINK_CLIENT_SECRETS='\/srv\/bbaegok\/prod\/secrets\/db' LINK_CLIENT_USER=999:999$/m);
    assert.match(script, /^readonly LINK_BACKUP_USER=replica_backup LINK_BACKUP_PASSWORD_FILE=replica_backup_password$/m);
    assert.ok(script.includes('  pick_source "$name"'), "pick_source is not called");
    // Not promoted, a replica there is checked and dumped by the primary's container, as before.
    assert.doesNotMatch(render([elsewhere]), /^  '.* promoted /m);
  });
  it("without a replica, has none of the replica's code (the script of a stack before replicas existed)", () => {
    const script = render([]);
    assert.doesNotMatch(script, /REPLICAS|replica_script|pick_source|add_replication_to_manifest|fail_on_unhealthy_replication|#\+replica|LINK_BACKUP|link_secrets_dir/);
  });
});

describe("database.replicas in the stack file", () => {
  const prod = () => rawFromPulumiConfig(readStackFile(REPO, "prod").config) as { database: Record<string, unknown> };
  const problems = (replicas: unknown): string[] => {
    const raw = prod();
    raw.database["replicas"] = replicas;
    try {
      validateStackConfig("prod", raw, []);
    } catch (err) {
      assert.ok(err instanceof StackConfigError);
      return err.message.split("\n").slice(1).map((l) => l.trim());
    }
    return [];
  };

  it("is empty by default, and takes one replica with its lag bound", () => {
    assert.deepEqual(loadStack("prod", REPO).config.database.replicas, []);
    assert.deepEqual(problems([{ maxLagSeconds: 60 }]), []);
  });
  it("refuses a second replica, an unknown key and a bad bound, naming the key", () => {
    assert.deepEqual(problems([{}, {}]), ["- Pulumi.prod.yaml: bbaegok-infra:database.replicas = [{},{}]: expected at most one replica (one is supported so far)"]);
    assert.match(problems([{ lag: 5 }]).join("\n"), /bbaegok-infra:database\.replicas\[0\].*lag/);
    assert.match(problems([{ maxLagSeconds: 0 }]).join("\n"), /bbaegok-infra:database\.replicas\[0\]\.maxLagSeconds = 0: expected 1-86400 seconds/);
    assert.match(problems([{ readTimeoutSeconds: 0 }]).join("\n"), /bbaegok-infra:database\.replicas\[0\]\.readTimeoutSeconds = 0: expected 1-3600 seconds/);
    assert.match(problems([{ readTimeoutSeconds: 2.5 }]).join("\n"), /bbaegok-infra:database\.replicas\[0\]\.readTimeoutSeconds = 2\.5: expected whole seconds/);
  });
  it("refuses database.primary: replica without a replica, and an unknown primary, naming the key", () => {
    const primary = (value: unknown, replicas: unknown[]) => {
      const raw = prod();
      raw.database["primary"] = value;
      raw.database["replicas"] = replicas;
      try {
        validateStackConfig("prod", raw, []);
        return [];
      } catch (err) {
        return (err as Error).message.split("\n").slice(1).map((l) => l.trim());
      }
    };
    assert.deepEqual(primary("replica", []), ['- Pulumi.prod.yaml: bbaegok-infra:database.primary = "replica": expected "original": there is no replica to be the primary (database.replicas is empty)']);
    assert.deepEqual(primary("replica", [{}]), []);
    assert.deepEqual(primary("db", [{}]), ['- Pulumi.prod.yaml: bbaegok-infra:database.primary = "db": expected "original" or "replica" (written by npm run promote and npm run failback; "promoting" and "returning" during their first step only)']);
    assert.deepEqual(primary("promoting", [{}]), []);
    assert.deepEqual(primary("promoting", []), ['- Pulumi.prod.yaml: bbaegok-infra:database.primary = "promoting": expected "original": there is no replica to be the primary (database.replicas is empty)']);
    assert.deepEqual(primary("returning", [{}]), []);
    assert.deepEqual(primary("returning", []), ['- Pulumi.prod.yaml: bbaegok-infra:database.primary = "returning": expected "original": there is no replica to be the primary (database.replicas is empty)']);
  });
});

describe("database.replicas[].server and link (a replica on another server)", () => {
  const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIReplicaServerKey";
  const server = { host: "replica.bbaegok.kr", ssh: { user: "deploy", hostKey } };
  const wireguard = { type: "wireguard", primaryAddress: "10.99.0.1", replicaAddress: "10.99.0.2" };
  /** prod's file as PostgreSQL (or `engine`) with this one replica; the problems listed, or the validated config. */
  const validate = (replica: unknown, engine = "postgres", primary?: string, version = engine === "postgres" ? "16.10" : "11.4.4") => {
    const raw = rawFromPulumiConfig(readStackFile(REPO, "prod").config) as { database: Record<string, unknown> };
    Object.assign(raw.database, { engine, version, replicas: replica === undefined ? [] : [replica] }, primary ? { primary } : {});
    try {
      return { config: validateStackConfig("prod", raw, []), problems: [] as string[] };
    } catch (err) {
      assert.ok(err instanceof StackConfigError, String(err));
      return { config: undefined, problems: err.message.split("\n").slice(1).map((l) => l.trim()) };
    }
  };
  const problems = (replica: unknown, engine?: string, primary?: string) => validate(replica, engine, primary).problems.join("\n");

  it("takes another server, its host key pinned as server's, over WireGuard (port 51820 by default) or a tailnet", () => {
    const { config, problems: found } = validate({ server, link: wireguard });
    assert.deepEqual(found, []);
    assert.deepEqual(config!.database.replicas[0]!.server, { host: "replica.bbaegok.kr", ssh: { user: "deploy", port: 22, hostKey }, dataDir: "/srv/bbaegok" });
    assert.deepEqual(config!.database.replicas[0]!.link, { ...wireguard, port: 51820 });
    assert.equal(problems({ server, link: { type: "tailnet", primaryAddress: "100.101.102.103", replicaAddress: "100.101.102.104" } }), "");
  });

  it("the app reads a replica where it is: on this server by its alias, on another at its link address; a promoted one is read by nobody; its health ignores the replica", () => {
    const reads = (replica: unknown, engine = "postgres", primary?: string) => {
      const { config, problems: found } = validate(replica, engine, primary);
      assert.deepEqual(found, []);
      return slotEnvs(config!, "blue").filter((e) => /^(SPRING_DATASOURCE_|MANAGEMENT_HEALTH_DB_)/.test(e));
    };
    assert.ok(reads({}).includes("SPRING_DATASOURCE_REPLICA_URL=jdbc:postgresql://db-replica:5432/bbaegok?socketTimeout=30"));
    assert.ok(reads({ server, link: wireguard }).includes("SPRING_DATASOURCE_REPLICA_URL=jdbc:postgresql://10.99.0.2:5432/bbaegok?socketTimeout=30"));
    assert.ok(reads({ server, link: { type: "tailnet", primaryAddress: "100.101.102.103", replicaAddress: "100.101.102.104" } }, "mariadb").includes("SPRING_DATASOURCE_REPLICA_URL=jdbc:mariadb://100.101.102.104:3306/bbaegok?socketTimeout=30000"));
    assert.ok(reads({ server, link: wireguard }).includes("SPRING_DATASOURCE_REPLICA_USERNAME=bbaegok"));
    // readTimeoutSeconds in each driver's own unit for socketTimeout: PostgreSQL's seconds, MariaDB's milliseconds.
    assert.ok(reads({ readTimeoutSeconds: 120 }).includes("SPRING_DATASOURCE_REPLICA_URL=jdbc:postgresql://db-replica:5432/bbaegok?socketTimeout=120"));
    assert.ok(reads({ readTimeoutSeconds: 120 }, "mariadb").includes("SPRING_DATASOURCE_REPLICA_URL=jdbc:mariadb://db-replica:3306/bbaegok?socketTimeout=120000"));
    // The primary's URL gets none while its server is the app's own.
    assert.ok(reads({ server, link: wireguard }).includes("SPRING_DATASOURCE_URL=jdbc:postgresql://db:5432/bbaegok"));
    assert.ok(!reads({}, "postgres", "replica").some((e) => e.startsWith("SPRING_DATASOURCE_REPLICA_")));
    // Promoted, or staged for it, the app writes to it: on another server at its link address, with the
    // replica's read timeout (a server that loses power across the link answers nothing, not even a reset).
    for (const primary of ["replica", "promoting"]) {
      assert.ok(reads({ server, link: wireguard }, "postgres", primary).includes("SPRING_DATASOURCE_URL=jdbc:postgresql://10.99.0.2:5432/bbaegok?socketTimeout=30"), primary);
      assert.ok(reads({ server, link: wireguard }, "mariadb", primary).includes("SPRING_DATASOURCE_URL=jdbc:mariadb://10.99.0.2:3306/bbaegok?socketTimeout=30000"), primary);
      assert.ok(reads({ server, link: wireguard, readTimeoutSeconds: 90 }, "mariadb", primary).includes("SPRING_DATASOURCE_URL=jdbc:mariadb://10.99.0.2:3306/bbaegok?socketTimeout=90000"), primary);
      assert.ok(!reads({ server, link: wireguard }, "postgres", primary).some((e) => e.startsWith("SPRING_DATASOURCE_REPLICA_")), primary);
    }
    assert.ok(reads({}, "postgres", "replica").includes("SPRING_DATASOURCE_URL=jdbc:postgresql://db-replica:5432/bbaegok"));
    // Staged for the way back (npm run failback), as once returned: writes to the original, reads the replica again.
    assert.deepEqual(reads({}, "mariadb", "returning"), reads({}, "mariadb"));
    assert.ok(reads({}, "mariadb", "returning").includes("SPRING_DATASOURCE_REPLICA_URL=jdbc:mariadb://db-replica:3306/bbaegok?socketTimeout=30000"));
    // The health follows the primary only while there is a replica to read; a stack without one keeps its environment.
    assert.ok(reads({}).includes("MANAGEMENT_HEALTH_DB_IGNOREROUTINGDATASOURCES=true"));
    assert.ok(reads({ server, link: wireguard }).includes("MANAGEMENT_HEALTH_DB_IGNOREROUTINGDATASOURCES=true"));
    assert.ok(!reads({}, "postgres", "replica").some((e) => e.startsWith("MANAGEMENT_HEALTH_DB_")));
    assert.equal(replicaReadHost({}), "db-replica");
    assert.equal(readReplica({ primary: "replica", replicas: [{ maxLagSeconds: 300, readTimeoutSeconds: 30 }] }), undefined);
  });

  it("every name the slots get from the program, with a replica or without, is one app.env may not set; the listed ones are set or are the password files", () => {
    const names = new Set<string>();
    for (const [replica, primary] of [[undefined], [{}], [{ server, link: wireguard }], [{}, "replica"]] as const) {
      const { config, problems: found } = validate(replica, "postgres", primary);
      assert.deepEqual(found, []);
      for (const e of slotEnvs(config!, "green")) names.add(e.split("=")[0]!);
    }
    const program = [...names].filter((n) => !["SPRING_PROFILES_ACTIVE", "TZ"].includes(n)); // prod's own app.env
    assert.deepEqual(program.sort(), Object.keys(APP_ENV_SET_BY_PROGRAM).filter((n) => !n.endsWith("_PASSWORD")).sort());
    assert.deepEqual(Object.keys(APP_ENV_SET_BY_PROGRAM).filter((n) => n.endsWith("_PASSWORD")), ["SPRING_DATASOURCE_PASSWORD", "SPRING_DATASOURCE_REPLICA_PASSWORD"]);
  });

  it("refuses a server without a link, a link without a server, and the stack's own server, naming the key", () => {
    assert.match(problems({ server }), /bbaegok-infra:database\.replicas\[0\]\.link is missing: expected the private link to the replica's server: \{ type: wireguard/);
    assert.match(problems({ link: wireguard }), /bbaegok-infra:database\.replicas\[0\]\.link = .*: expected no link: the replica is on the stack's own server/);
    assert.match(problems({ server: { ...server, host: "home.bbaegok.kr" }, link: wireguard }), /bbaegok-infra:database\.replicas\[0\]\.server\.host = "home\.bbaegok\.kr": expected another server than server\.host/);
  });

  it("refuses a host key that is missing or not pinned as one, naming the key", () => {
    assert.match(problems({ server: { host: "replica.bbaegok.kr", ssh: { user: "deploy" } }, link: wireguard }), /database\.replicas\[0\]\.server\.ssh\.hostKey.*expected the server's SSH host key/);
    assert.match(problems({ server: { ...server, ssh: { user: "deploy", hostKey: "replica.bbaegok.kr ssh-ed25519 AAAA" } }, link: wireguard }), /database\.replicas\[0\]\.server\.ssh\.hostKey = .*expected the server's SSH host key/);
  });

  it("refuses link addresses that are public, equal, inside the edge subnet, a tailnet address outside 100.64.0.0/10 and an unknown link type, naming the key", () => {
    assert.match(problems({ server, link: { ...wireguard, primaryAddress: "0.0.0.0" } }), /database\.replicas\[0\]\.link\.primaryAddress = "0\.0\.0\.0": expected the host's private address on the WireGuard link/);
    assert.match(problems({ server, link: { ...wireguard, replicaAddress: "8.8.8.8" } }), /database\.replicas\[0\]\.link\.replicaAddress = "8\.8\.8\.8": expected the host's private address/);
    assert.match(problems({ server, link: { ...wireguard, replicaAddress: "10.99.0.1" } }), /database\.replicas\[0\]\.link\.replicaAddress = "10\.99\.0\.1": expected an address other than link\.primaryAddress/);
    assert.match(problems({ server, link: { ...wireguard, primaryAddress: "172.30.10.5" } }), /database\.replicas\[0\]\.link\.primaryAddress = "172\.30\.10\.5": expected an address outside server\.edgeSubnet \(172\.30\.10\.0\/24\)/);
    assert.match(problems({ server, link: { type: "tailnet", primaryAddress: "10.99.0.1", replicaAddress: "100.101.102.104" } }), /database\.replicas\[0\]\.link\.primaryAddress = "10\.99\.0\.1": expected the server's tailnet address/);
    assert.match(problems({ server, link: { type: "tailnet", primaryAddress: "100.101.102.103" } }), /database\.replicas\[0\]\.link\.replicaAddress is missing: expected the server's tailnet address/);
    assert.match(problems({ server, link: { type: "tailnet", primaryAddress: "100.101.102.103", replicaAddress: "100.101.102.103" } }), /database\.replicas\[0\]\.link\.replicaAddress = "100\.101\.102\.103": expected an address other than link\.primaryAddress/);
    assert.match(problems({ server, link: { type: "vpn", primaryAddress: "10.99.0.1" } }), /database\.replicas\[0\]\.link.*expected link\.type "wireguard"/);
  });

  it("takes it on MariaDB too, over WireGuard or a tailnet; its bad input is refused naming the key, as PostgreSQL's", () => {
    const { config, problems: found } = validate({ server, link: wireguard }, "mariadb");
    assert.deepEqual(found, []);
    assert.deepEqual(config!.database.replicas[0]!.link, { ...wireguard, port: 51820 });
    assert.equal(problems({ server, link: { type: "tailnet", primaryAddress: "100.101.102.103", replicaAddress: "100.101.102.104" } }, "mariadb"), "");
    assert.match(problems({ server }, "mariadb"), /bbaegok-infra:database\.replicas\[0\]\.link is missing: expected the private link/);
    assert.match(problems({ server, link: { ...wireguard, primaryAddress: "203.0.113.7" } }, "mariadb"), /database\.replicas\[0\]\.link\.primaryAddress = "203\.0\.113\.7": expected the host's private address on the WireGuard link/);
  });

  it("refuses a PostgreSQL too old for its replica's flags (13) or, elsewhere, its backup role's pg_read_all_data (14), naming the version", () => {
    assert.match(validate({ server, link: wireguard }, "postgres", undefined, "13.18").problems.join("\n"), /bbaegok-infra:database\.version = "13\.18": expected PostgreSQL 14 or newer with a replica on another server \(its backup role needs pg_read_all_data\)/);
    assert.deepEqual(validate({}, "postgres", undefined, "13.18").problems, []);
    assert.match(validate({}, "postgres", undefined, "12.22").problems.join("\n"), /bbaegok-infra:database\.version = "12\.22": expected PostgreSQL 13 or newer with a replica \(its slot's max_slot_wal_keep_size\)/);
    assert.deepEqual(validate({ server, link: wireguard }, "postgres", undefined, "14.0").problems, []);
    assert.deepEqual(validate(undefined, "postgres", undefined, "12.22").problems, []);
  });

  it("refuses any replica on MySQL (its replication SQL is not built), naming the key", () => {
    for (const replica of [{ server, link: wireguard }, {}]) {
      assert.match(problems(replica, "mysql"), /bbaegok-infra:database\.replicas = .*expected no replicas with engine mysql: read replicas are built for mariadb and postgres/);
    }
  });

  it("refuses the way back (returning) for one elsewhere, which npm run failback does not bring back, naming the key", () => {
    assert.match(problems({ server, link: wireguard }, "mariadb", "returning"), /bbaegok-infra:database\.primary = "returning": expected "replica": npm run failback brings back the original of a replica on the stack's own server only/);
  });

  it("takes promoting one elsewhere on either engine: staged (promoting) and promoted (replica)", () => {
    for (const engine of ["postgres", "mariadb"]) {
      for (const primary of ["promoting", "replica"]) {
        const { config, problems: found } = validate({ server, link: wireguard }, engine, primary);
        assert.deepEqual(found, [], `${engine}, database.primary ${primary}`);
        assert.equal(config!.database.primary, primary);
        assert.equal(config!.database.replicas[0]!.server?.host, "replica.bbaegok.kr");
      }
    }
  });
});

describe("the planned-downtime notice follows the container the app writes to", () => {
  const timeouts = { stopSeconds: 60, healthySeconds: 300 };
  const original = databaseRuntime({ image: "mariadb:11.4.4", command: ["--log-bin=mysql-bin"], envs: ["TZ=UTC"] });
  const promoted = databaseRuntime({ image: "mariadb:11.4.4", command: ["--log-bin=mysql-bin", "--read-only=OFF"], envs: ["TZ=UTC"] }, "bbaegok-prod-db-replica");

  it("the original's change names the original", () => {
    const bumped = original.replace("11.4.4", "11.4.5");
    assert.match(replacementNotice("bbaegok-prod-db", original, bumped, timeouts) ?? "", /^PLANNED DOWNTIME: the database container bbaegok-prod-db will be replaced \(image mariadb:11\.4\.4 → mariadb:11\.4\.5\)/);
    assert.equal(replacementNotice("bbaegok-prod-db", original, original, timeouts), undefined);
  });

  it("the promotion's run (the original's last runtime, the promoted container's now) is no replacement of one container", () => {
    assert.equal(replacementNotice("bbaegok-prod-db-replica", original, promoted, timeouts), undefined);
  });

  it("once promoted, a change of the promoted container names it", () => {
    const flagged = promoted.replace("--read-only=OFF", "--read-only=OFF\",\"--innodb-buffer-pool-size=512M");
    assert.match(replacementNotice("bbaegok-prod-db-replica", promoted, flagged, timeouts) ?? "", /^PLANNED DOWNTIME: the database container bbaegok-prod-db-replica will be replaced \(server flags\)/);
  });
});
