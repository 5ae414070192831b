// The proxy's pure renderers on their own: what the production files say,
// what they refuse to render, and the scripts that run on the server checked
// by shellcheck with the production values in them. (Real nginx runs the same
// output in test/real/proxy-*.test.ts.)
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import {
  activationScript,
  dockerNginxCommands,
  proposalManifest,
} from "../../infra/proxy/activation.js";
import {
  ownerEndpoint,
  proxyDirs,
  stackFilePaths,
  UPSTREAM_HEADER,
} from "../../infra/proxy/contract.js";
import { attachNetworkCommand, detachNetworkCommand } from "../../infra/proxy/network.js";
import {
  containerLayout,
  renderMainConf,
  renderUpstreams,
  stackProxyFiles,
  stackUpstreams,
} from "../../infra/proxy/render.js";
import { loadStack } from "../../stacks/config/load.js";
import { REPO } from "../support/project.js";
import { requireCommand } from "../support/system.js";

const configOf = (stack: string) => loadStack(stack, REPO).config;
const prod = configOf("prod");
const staging = configOf("staging");
const endpoint = ownerEndpoint(prod, { containerId: "0123abcd", network: "bbaegok-prod-edge" });
const layout = containerLayout(endpoint.dir);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
}

function shellcheck(script: string): void {
  const bin = requireCommand("shellcheck", "shellcheck");
  execFileSync(bin, ["-s", "sh", "-"], { input: script, encoding: "utf8" });
}

describe("the proxy's production files", () => {
  it("listen on 80/443 in the container, resolve no names, keep upstream connections open, log to the container's output", () => {
    const main = renderMainConf(layout, { cloudflareRanges: ["173.245.48.0/20", "2400:cb00::/32"], workerShutdownTimeout: "30s" });
    assert.match(main, /listen 0\.0\.0\.0:80 default_server;\s+server_name _;\s+return 444;/);
    // No name of ours in SNI: no handshake; a name of ours but another Host: the connection closed.
    assert.match(main, /listen 0\.0\.0\.0:443 ssl default_server;\s+server_name _;\s+ssl_reject_handshake on;\s+#[^\n]*\n\s+return 444;/);
    assert.doesNotMatch(main, /resolver/);
    // A plain request reaches a kept-alive upstream connection with no Connection header; only a WebSocket asks to upgrade.
    assert.match(main, /map \$http_upgrade \$bbaegok_upgrade \{\s+default\s+'';\s+~\*\^websocket\$\s+websocket;\s+\}/);
    assert.match(main, /map \$bbaegok_upgrade \$bbaegok_connection \{\s+default\s+'';\s+websocket\s+upgrade;\s+\}/);
    assert.match(main, /set_real_ip_from 173\.245\.48\.0\/20;\n {4}set_real_ip_from 2400:cb00::\/32;/);
    assert.match(main, /include \/srv\/bbaegok\/proxy\/live\/conf\.d\/\*\.conf;/);
    assert.match(main, /access_log \/var\/log\/nginx\/access\.log bbaegok buffer=4k flush=1s;/);
    assert.match(main, /^user nginx;$/m);
    // Clients' idle connections outlive Cloudflare's reuse of them (its 900 s), so nginx never closes one Cloudflare is about to use.
    const idle = Number(/^ {4}keepalive_timeout (\d+)s;$/m.exec(main)?.[1]);
    assert.ok(idle > 900, `keepalive_timeout ${idle}s`);
  });

  it("route each stack's hosts to its live slot's upstream group, Metabase only where it runs", () => {
    const p = stackProxyFiles(prod, "prod", layout, "blue");
    // The upstream file declares the live slot's group; the API host proxies to it by name (no variable to look up per request).
    assert.match(p.upstreams, /^upstream bbaegok_prod_api \{\n {4}server 172\.30\.10\.11:8080;\n {4}keepalive 64;\n {4}keepalive_timeout 15s;\n\}$/m);
    assert.match(p.upstreams, /^# Slot blue serves\.$/m);
    assert.match(p.conf, /^include \/srv\/bbaegok\/proxy\/live\/upstreams\/prod\.conf;$/m);
    const publicServers = p.conf.slice(0, p.conf.indexOf("listen 127.0.0.1:8081;"));
    assert.deepEqual([...publicServers.matchAll(/proxy_pass (\S+);/g)].map((m) => m[1]), ["http://bbaegok_prod_api", "http://bbaegok_prod_metabase"]);
    assert.match(p.conf, /server_name metabase\.bbaegok\.kr;/);
    const s = stackProxyFiles(staging, "staging", layout, "blue");
    assert.doesNotMatch(s.conf, /metabase/);
    assert.match(s.conf, /ssl_certificate \/srv\/bbaegok\/proxy\/live\/certs\/staging\.crt;/);
    assert.match(stackUpstreams(staging, "staging", "green"), /upstream bbaegok_staging_api \{\s+server 172\.30\.20\.12:8080;/);
  });

  it("declare each slot and Metabase as an upstream group at its fixed address, with kept-alive connections", () => {
    const upstreams = (conf: string) => [...conf.matchAll(/upstream (\w+) \{\s+server ([\d.:]+);\s+keepalive 64;\s+keepalive_timeout 15s;\s+\}/g)].map((m) => `${m[1]} ${m[2]}`);
    assert.deepEqual(upstreams(stackProxyFiles(prod, "prod", layout, "blue").conf), ["bbaegok_prod_blue 172.30.10.11:8080", "bbaegok_prod_green 172.30.10.12:8080", "bbaegok_prod_metabase 172.30.10.20:3000"]);
    assert.deepEqual(upstreams(stackProxyFiles(staging, "staging", layout, "blue").conf), ["bbaegok_staging_blue 172.30.20.11:8080", "bbaegok_staging_green 172.30.20.12:8080"]);
    const conf = stackProxyFiles(prod, "prod", layout, "blue").conf;
    assert.match(conf, /proxy_http_version 1\.1;/);
    assert.match(conf, /proxy_set_header Upgrade \$bbaegok_upgrade;/);
    assert.match(conf, /proxy_set_header Connection \$bbaegok_connection;/);
    assert.doesNotMatch(conf, /\$http_upgrade/, "the client's Upgrade (h2c) would reach the app");
    assert.match(conf, /proxy_connect_timeout 3s;/);
    // An address map (the tests' stand-ins) changes where a group points, nothing else.
    const mapped = stackProxyFiles(prod, "prod", layout, "blue", (a) => (a === "172.30.10.12:8080" ? "127.0.0.1:9012" : a)).conf;
    assert.deepEqual(upstreams(mapped)[1], "bbaegok_prod_green 127.0.0.1:9012");
  });

  it("name the slot address that answered on the internal port only, so a deploy can tell which slot is live", () => {
    const conf = stackProxyFiles(prod, "prod", layout, "blue").conf;
    const internal = conf.slice(conf.indexOf("listen 127.0.0.1:8081;"));
    assert.match(internal, new RegExp(`add_header ${UPSTREAM_HEADER} \\$upstream_addr always;`));
    assert.match(internal, /set \$bbaegok_prod_route bbaegok_prod_api;/, "without the slot header, the live group");
    assert.match(internal, /if \(\$http_x_bbaegok_slot = green\) \{\s+set \$bbaegok_prod_route bbaegok_prod_green;/);
    assert.equal(conf.split(UPSTREAM_HEADER).length - 1, 2, "the header is added in the internal server only (plus its comment)");
  });

  it("close a proxied stack to everything but Cloudflare, and only a proxied one", () => {
    assert.match(stackProxyFiles(prod, "prod", layout, "blue").conf, /if \(\$bbaegok_via_cloudflare = 0\)/);
    const direct = stackProxyFiles({ ...staging, proxy: { ...staging.proxy, cloudflareProxied: false } }, "staging", layout, "blue").conf;
    assert.doesNotMatch(direct, /bbaegok_via_cloudflare/);
  });

  it("clear every client-settable forwarding header in every location, and Cloudflare's own only where Cloudflare is not in front", () => {
    const cleared = (conf: string) => [...conf.matchAll(/proxy_set_header ([\w-]+) "";/g)].map((m) => m[1]!);
    const locations = (conf: string) => conf.split("location / {").length - 1;
    const proxied = stackProxyFiles(prod, "prod", layout, "blue").conf;
    for (const header of ["Forwarded", "X-Forwarded-Host", "X-Forwarded-Prefix", "X-Forwarded-Ssl", "X-Original-URL", "X-Rewrite-URL", "True-Client-IP"]) {
      assert.equal(cleared(proxied).filter((h) => h === header).length, locations(proxied), `${header} is not cleared in every location`);
    }
    assert.ok(!cleared(proxied).includes("CF-Connecting-IP"), "behind Cloudflare, its own headers pass");
    const direct = stackProxyFiles({ ...staging, proxy: { ...staging.proxy, cloudflareProxied: false } }, "staging", layout, "blue").conf;
    for (const header of ["CF-Connecting-IP", "CF-IPCountry", "CF-Visitor", "CDN-Loop"]) assert.ok(cleared(direct).includes(header), header);
    // What nginx sets itself is set, never cleared.
    for (const header of ["Host", "X-Real-IP", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port"]) {
      assert.ok(!cleared(direct).includes(header), header);
      assert.match(direct, new RegExp(`proxy_set_header ${header} [$\\w]+;`));
    }
  });

  it("apply Metabase's allow-list to the client's own address", () => {
    const conf = stackProxyFiles({ ...prod, metabase: { ...prod.metabase, allowFrom: ["198.51.100.0/24"] } }, "prod", layout, "blue").conf;
    const metabaseServer = conf.slice(conf.indexOf("server_name metabase.bbaegok.kr;"));
    assert.match(metabaseServer, /allow 198\.51\.100\.0\/24;\s+deny all;/);
    assert.doesNotMatch(conf.slice(0, conf.indexOf("server_name metabase.bbaegok.kr;")), /deny all/);
  });

  it("refuse to render what nginx would misread", () => {
    assert.throws(() => renderMainConf(layout, { cloudflareRanges: ["173.245.48.0/20; include /etc/passwd"], workerShutdownTimeout: "30s" }), /is not a CIDR block/);
    assert.throws(() => renderUpstreams("prod", "blue", { name: "app; return 200", address: "127.0.0.1:1" }), /must be letters, digits and _/);
    assert.throws(() => renderUpstreams("prod", "blue", { name: "bbaegok_prod_api", address: "x; return 200" }), /must be an IPv4 address:port/);
    assert.throws(() => stackProxyFiles(prod, "prod", layout, "blue", () => "app; return 200"), /must be an IPv4 address:port/);
    assert.throws(() => stackFilePaths("../etc"), /cannot name proxy files/);
    assert.throws(() => ownerEndpoint(staging, { containerId: "x", network: "y" }), /guest of organization\/bbaegok-infra\/prod/);
  });
});

describe("the scripts that change the proxy on the server", () => {
  const commands = dockerNginxCommands(endpoint);
  const dirs = proxyDirs(endpoint.dir);
  const files = Object.values(stackFilePaths("staging"));

  it("check with the proxy container, or a throwaway one of the same image while it is not running", () => {
    assert.equal(
      commands.test,
      "if [ \"$(docker inspect -f '{{.State.Running}}' 'bbaegok-proxy' 2>/dev/null)\" = true ]; then docker exec 'bbaegok-proxy' nginx -t -c '/srv/bbaegok/proxy/live/nginx.conf'; else docker run --rm --network none -v '/srv/bbaegok/proxy/live:/srv/bbaegok/proxy/live:ro' 'nginx:1.28.3' nginx -t -c '/srv/bbaegok/proxy/live/nginx.conf'; fi",
    );
    assert.match(commands.reload, /then docker exec 'bbaegok-proxy' nginx -s reload -c '\/srv\/bbaegok\/proxy\/live\/nginx\.conf'; fi$/);
  });

  it("are shellcheck-clean", () => {
    const activation = { label: "stack staging", liveDir: dirs.live, files, lockPath: dirs.lock, commands };
    shellcheck(activationScript({ ...activation, change: { kind: "install", proposedDir: dirs.proposed("staging") } }));
    shellcheck(activationScript({ ...activation, change: { kind: "remove", verify: true } }));
    shellcheck(activationScript({ ...activation, label: "stack prod", change: { kind: "remove", verify: false } }));
    shellcheck(`${attachNetworkCommand("0123abcd", "bbaegok-staging-edge")}\n${detachNetworkCommand("0123abcd", "bbaegok-staging-edge")}\n`);
  });

  it("are one activation: the proxy's lock, nginx -t and the reload are in one script (activationScript), which every change of the program's proxy files runs", () => {
    const code = ["infra", "ops", "stacks", "bench"].flatMap((d) => sources(join(REPO, d))).map((path) => ({ file: relative(REPO, path), text: readFileSync(path, "utf8") }));
    const locking = code.map((f) => ({ file: f.file, locks: f.text.split("flock -w").length - 1 })).filter((f) => f.locks > 0);
    assert.deepEqual(locking, [{ file: "infra/proxy/activation.ts", locks: 1 }]);
    const callers = code.filter((f) => /\bactivationScript\(/.test(f.text) && f.file !== "infra/proxy/activation.ts").map((f) => f.file);
    assert.deepEqual(callers, ["infra/proxy/index.ts"]);
  });

  it("name the files they activate by checksum, one line each, as sha256sum reads them", () => {
    assert.equal(proposalManifest([{ path: "upstreams/prod.conf", content: "abc" }]), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  upstreams/prod.conf\n");
    assert.throws(() => proposalManifest([{ path: "../nginx.conf", content: "" }]), /must be a relative path/);
  });
});
