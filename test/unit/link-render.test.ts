// The private link's renderers (infra/link/render.ts) on their own: keys as
// WireGuard computes them (RFC 7748's vector and the real `wg pubkey`), each
// host's wg-quick file as the real `wg` reads it, the scripts shellcheck-clean.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { LINK_BOOT_TRY_SECONDS, NONLOCAL_BIND_SYSCTL, linkBootUnit, linkDownScript, linkPaths, linkUpScript, tailnetBindScript, tailnetUnbindScript, wireguardConfig, wireguardInterface, wireguardPublicKey } from "../../infra/link/render.js";
import { requireCommand, tempDir } from "../support/system.js";

const hex64 = (hex: string) => Buffer.from(hex, "hex").toString("base64");

describe("WireGuard keys", () => {
  it("the public key of RFC 7748's test private key is the RFC's", () => {
    // RFC 7748 section 6.1, Alice's key pair.
    assert.equal(wireguardPublicKey(hex64("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")), hex64("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"));
  });

  it("equals `wg pubkey` for random private keys (unclamped bytes, as Pulumi's random bytes are)", () => {
    const wg = requireCommand("wg", "wireguard-tools");
    for (let i = 0; i < 20; i++) {
      const key = randomBytes(32).toString("base64");
      const r = spawnSync(wg, ["pubkey"], { input: key, encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(wireguardPublicKey(key), r.stdout.trim(), key);
    }
  });

  it("refuses a private key that is not 32 bytes", () => {
    assert.throws(() => wireguardPublicKey(randomBytes(31).toString("base64")), /a WireGuard private key is 32 bytes in base64; this one is 31 bytes/);
  });
});

describe("the wg-quick file and the scripts", () => {
  const primaryKey = randomBytes(32).toString("base64");
  const replicaKey = randomBytes(32).toString("base64");
  const config = wireguardConfig({
    purpose: "test link",
    privateKey: primaryKey,
    self: { address: "10.99.0.1", endpoint: "home.bbaegok.kr" },
    peer: { address: "10.99.0.2", endpoint: "replica.bbaegok.kr", publicKey: wireguardPublicKey(replicaKey) },
    port: 51820,
  });

  it("routes only the peer's link address through the tunnel, with the peer's public key, as the real wg reads it", () => {
    assert.match(config, /\nAddress = 10\.99\.0\.1\/32\n/);
    assert.match(config, /\nAllowedIPs = 10\.99\.0\.2\/32\n/);
    assert.match(config, /\nEndpoint = replica\.bbaegok\.kr:51820\n/);
    const dir = tempDir("wg-conf");
    try {
      const file = join(dir.path, "bbwg0000test.conf");
      writeFileSync(file, config, { mode: 0o600 });
      // wg-quick strip leaves what `wg setconf` reads; its parser refuses a bad key or section.
      const stripped = spawnSync(requireCommand("wg-quick", "wireguard-tools"), ["strip", file], { encoding: "utf8" });
      assert.equal(stripped.status, 0, stripped.stderr);
      assert.doesNotMatch(stripped.stdout, /^Address/m);
      assert.match(stripped.stdout, new RegExp(`PublicKey = ${wireguardPublicKey(replicaKey).replace(/[+/]/g, "\\$&")}`));
    } finally {
      dir.remove();
    }
  });

  it("refuses a key that is not one", () => {
    assert.throws(() => wireguardConfig({ purpose: "x", privateKey: "not-a-key", self: { address: "10.0.0.1", endpoint: "a.b.kr" }, peer: { address: "10.0.0.2", endpoint: "c.d.kr", publicKey: wireguardPublicKey(replicaKey) }, port: 51820 }), /this host's key is not 32 bytes of base64/);
  });

  it("names one interface per stack, within Linux's 15 characters, its file after it", () => {
    const names = ["bbaegok-prod", "bbaegok-staging", "a-very-long-service-name-and-stack"].map(wireguardInterface);
    assert.equal(new Set(names).size, 3);
    for (const name of names) assert.match(name, /^bbwg[0-9a-f]{8}$/);
    assert.equal(linkPaths("/srv/bbaegok/prod", "bbaegok-prod").config, `/srv/bbaegok/prod/link/${wireguardInterface("bbaegok-prod")}.conf`);
  });

  it("the up and down scripts are shellcheck-clean", () => {
    const paths = linkPaths("/srv/bbaegok/prod", "bbaegok-prod");
    for (const script of [linkUpScript(paths), linkDownScript(paths), tailnetBindScript(paths), tailnetUnbindScript(paths)]) {
      const r = spawnSync(requireCommand("shellcheck", "shellcheck"), ["--shell=bash", "--severity=style", "-"], { input: script, encoding: "utf8" });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    }
  });

  it("after a reboot: the link comes up by a unit ordered before Docker, and on both servers the link address can be bound while it is down", () => {
    const paths = linkPaths("/srv/bbaegok/prod", "bbaegok-prod");
    assert.equal(paths.unit, `/etc/systemd/system/bbaegok-link-${paths.iface}.service`);
    const unit = linkBootUnit(paths);
    assert.match(unit, /^Before=docker\.service$/m);
    assert.match(unit, /^After=network-online\.target$/m);
    assert.match(unit, new RegExp(`^ExecStart=/usr/bin/wg-quick up ${paths.config}$`, "m"));
    assert.match(unit, /^WantedBy=multi-user\.target docker\.service$/m);
    // A try is cut, so Docker never waits on it for long (test/real/link-boot.test.ts boots it under systemd).
    assert.match(unit, new RegExp(`^TimeoutStartSec=${LINK_BOOT_TRY_SECONDS}$`, "m"));
    // systemd's own parser: nothing to say about the unit (a misspelt key or value would be named on stderr).
    const dir = tempDir("link-unit");
    try {
      const file = join(dir.path, paths.unitName);
      writeFileSync(file, unit);
      const verify = spawnSync(requireCommand("systemd-analyze", "systemd"), ["verify", file], { encoding: "utf8" });
      assert.equal(verify.status, 0, verify.stderr);
      assert.equal(verify.stderr, "");
      writeFileSync(file, unit.replace("Type=oneshot", "Type=oneshoot"));
      assert.match(spawnSync("systemd-analyze", ["verify", file], { encoding: "utf8" }).stderr, /Failed to parse service type/);
    } finally {
      dir.remove();
    }
    // One script for both ends: the primary's server publishes the database's port on its link address, the replica's server the replica's.
    const up = linkUpScript(paths);
    assert.ok(up.includes(`mv -f '${paths.unit}.new'.$$ '${paths.unit}'`), "the unit is installed");
    assert.ok(up.includes(`systemctl enable --quiet '${paths.unitName}'`));
    assert.equal(NONLOCAL_BIND_SYSCTL, "net.ipv4.ip_nonlocal_bind = 1\n");
    assert.ok(up.includes(`sysctl -q -p '${paths.sysctl}'`));
    assert.ok(up.indexOf("sysctl -q -p") < up.indexOf("wg-quick up"), "the sysctl is applied before the link comes up");
    // Under systemd the unit brings the link up (active while it runs, stopped after Docker at shutdown), once installed and enabled.
    const start = up.indexOf(`systemctl start '${paths.unitName}'`);
    assert.ok(start > up.indexOf(`systemctl enable --quiet '${paths.unitName}'`) && start > up.indexOf(`mv -f '${paths.unit}.new'.$$`), "the unit is started once installed and enabled");
    const down = linkDownScript(paths);
    assert.ok(down.includes(`systemctl disable --quiet '${paths.unitName}'`));
    assert.ok(down.includes(`rm -f '${paths.unit}' '${paths.sysctl}'`));
  });
});
