// replica.sh over a link that goes silent. A MariaDB replica on another
// server is set up and watched by two copies of the rendered replica.sh,
// each server's own: the replica's seeds it by a dump of the primary over the
// link, the primary's reads its state over the link (npm run status, and the
// backup's check before every run). A server that loses power sends nothing,
// not even a reset; without a bound a client would wait for TCP's keepalive
// (two hours): an up seeding the replica would hang, and so would status and
// with it the backup, its lock held. Every client over the link runs under
// the link's guard (infra/link/stall-guard.bash) with a bound on its
// connection. Here both servers are real MariaDB servers on loopback and the
// "link" is a relay in front of each (test/support/relay.ts) that goes silent
// on command or after the first bytes of the seeding dump. Only `docker
// exec` is stood in for: each copy's hook knows its own server's "container".
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LINK_QUERY_STALL_SECONDS, type ThisServer } from "../../infra/replica/render.js";
import { LINK_STALL_SECONDS } from "../../infra/link/render.js";
import { PRIMARY_CONTAINER, REPLICA_CONTAINER, elsewherePasswords, generatedPassword, type ContainerEnvs, renderReplicaScript, replicaEnv, replicaStatus, replicatedDatabase, runReplica, startMariaDbPair } from "../support/replica-harness.js";
import { cuttableRelay, type Relay } from "../support/relay.js";
import type { MariaDb } from "../support/mariadb.js";
import { tempDir } from "../support/system.js";

const DB = "bbaegok";
/** The guards' bounds here: short, so a stall shows in seconds. */
const STALL_SECONDS = "2";

describe("replica.sh over a link that goes silent (real MariaDB on both ends, a relay for the link)", () => {
  const dir = tempDir("replica-link-stall");
  let pair: { primary: MariaDb; replica: MariaDb };
  const relays: Relay[] = [];
  const passwords = elsewherePasswords();

  /** A relay to `server`'s port: the link as seen from the other server. */
  const link = async (server: MariaDb, cutAfterBytes?: number): Promise<Relay> => {
    const relay = await cuttableRelay(server.port, cutAfterBytes === undefined ? {} : { cutAfterBytes });
    relays.push(relay);
    return relay;
  };

  /** Server `side`'s copy of replica.sh, reaching the other server through `relay`; its hook knows its own container only. */
  const copyOf = (side: Exclude<ThisServer, "both">, relay: Relay, name: string) => {
    const own = join(dir.path, name);
    mkdirSync(own, { mode: 0o700 });
    for (const [file, password] of Object.entries(passwords)) writeFileSync(join(own, file), `${password}\n`, { mode: 0o400 });
    const ends = side === "primary" ? { primaryPort: pair.primary.port, replicaPort: relay.port } : { primaryPort: relay.port, replicaPort: pair.replica.port };
    const script = renderReplicaScript(own, { database: replicatedDatabase("mariadb", 30), replica: { maxLagSeconds: 30 }, primaryHost: "127.0.0.1", replicaHost: "127.0.0.1", ...ends, thisServer: side });
    const container: ContainerEnvs = side === "primary" ? { [PRIMARY_CONTAINER]: { MYSQL_UNIX_PORT: pair.primary.socket } } : { [REPLICA_CONTAINER]: { MYSQL_UNIX_PORT: pair.replica.socket } };
    return { script, env: { ...replicaEnv(own, container), REPLICA_LINK_STALL_SECONDS: STALL_SECONDS, REPLICA_LINK_DUMP_STALL_SECONDS: STALL_SECONDS } };
  };

  before(async () => {
    pair = await startMariaDbPair(dir.path, { database: DB, appPassword: generatedPassword(), memoryMb: 1024 });
    // About 4 MB to seed: the dump is well under way when the relay goes silent after its first 256 KiB.
    pair.primary.sql(
      `CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, memo VARCHAR(200) NOT NULL) ENGINE=InnoDB;
       INSERT INTO orders (memo) SELECT REPEAT(SHA2(seq, 256), 2) FROM seq_1_to_30000;`,
      DB,
    );
    const primarySide = copyOf("primary", await link(pair.replica), "primary-logins");
    const logins = await runReplica(primarySide.script, primarySide.env, "setup");
    assert.equal(logins.status, 0, logins.stderr);
  });
  after(async () => {
    await Promise.all(relays.map((r) => r.close()));
    await Promise.all([pair?.primary.stop(), pair?.replica.stop()]);
    dir.remove();
  });

  it("the bounds are the program's: queries over the link get 30 s, the seeding dump 600 s (the tests shorten both), a connection 10 s", () => {
    assert.equal(LINK_QUERY_STALL_SECONDS, 30);
    assert.equal(LINK_STALL_SECONDS, 600);
    // What the rendered script runs with when nothing shortens them.
    const { script } = copyOf("primary", relays[0]!, "rendered-bounds");
    const header = readFileSync(script, "utf8");
    assert.ok(header.includes("link_query_stall_seconds=${REPLICA_LINK_STALL_SECONDS:-30} link_dump_stall_seconds=${REPLICA_LINK_DUMP_STALL_SECONDS:-600}"), "the header sets the stall bounds");
    assert.ok(header.includes("readonly LINK_CONNECT_SECONDS=10"), "the header sets the connection bound");
  });

  it("seeding: the primary goes silent mid-dump; setup stops with the guard's reason, the replica is left not replicating, and a setup over a sound link seeds it", async () => {
    const silent = copyOf("replica", await link(pair.primary, 256 * 1024), "replica-silent");
    const stalled = await runReplica(silent.script, silent.env, "setup");
    assert.notEqual(stalled.status, 0, "setup succeeded through a link that went silent");
    assert.match(stalled.stderr, /nothing came over the link for 2 s \(the server at its other end, or the link, is gone\): the client was stopped/);
    assert.equal(pair.replica.sql("SHOW SLAVE STATUS").trim(), "", "the replica was set replicating after a seeding that failed");

    const sound = copyOf("replica", await link(pair.primary), "replica-sound");
    for (const step of ["setup", "wait"]) {
      const run = await runReplica(sound.script, sound.env, step);
      assert.equal(run.status, 0, `${step}: ${run.stderr}`);
    }
    assert.equal(pair.replica.sql("SELECT COUNT(*) FROM orders", DB).trim(), "30000");
  });

  it("status from the primary's server: healthy over a sound link; when the replica goes silent in the middle of an answer it answers unhealthy, with the guard's reason, instead of hanging", async () => {
    const soundSide = copyOf("primary", await link(pair.replica), "primary-sound");
    const sound = await replicaStatus(soundSide.script, soundSide.env);
    assert.equal(sound.healthy, true, JSON.stringify(sound));
    assert.equal(sound.replicaPosition, sound.primaryPosition);

    // Silent after 600 bytes from the replica: past the handshake (about 150), inside SHOW SLAVE STATUS's answer
    // (its column definitions alone are a few KiB). Connected, the client has no bound of its own but the guard.
    const midAnswer = copyOf("primary", await link(pair.replica, 600), "primary-mid-answer");
    const silent = await replicaStatus(midAnswer.script, midAnswer.env);
    assert.equal(silent.healthy, false, JSON.stringify(silent));
    assert.match(silent.reason ?? "", /^the replica does not answer: .*nothing came over the link for 2 s/);
    assert.equal(silent.primaryPosition, sound.primaryPosition, "the primary's own position is still read");
  });

  it("status from the primary's server: a replica silent from the start is bounded by the connection's own bound, even with the guard's far longer", async () => {
    const relay = await link(pair.replica);
    relay.cut();
    const gone = copyOf("primary", relay, "primary-gone");
    const silent = await replicaStatus(gone.script, { ...gone.env, REPLICA_LINK_STALL_SECONDS: "600" });
    assert.equal(silent.healthy, false, JSON.stringify(silent));
    assert.match(silent.reason ?? "", /^the replica does not answer: .*Lost connection to server at 'handshake: reading initial communication packet'/);
  });

  it("status on the replica's server: once the primary goes silent it answers unhealthy, with the guard's reason", async () => {
    const relay = await link(pair.primary);
    const replicaSide = copyOf("replica", relay, "replica-status");
    assert.equal((await replicaStatus(replicaSide.script, replicaSide.env)).healthy, true);
    relay.cut();
    const silent = await replicaStatus(replicaSide.script, replicaSide.env);
    assert.equal(silent.healthy, false, JSON.stringify(silent));
    assert.match(silent.reason ?? "", /^the primary does not answer: .*nothing came over the link for 2 s/);
  });
});
