// The nginx text of the server's proxy: the owner's nginx.conf, each stack's
// conf.d and upstreams files. Pure: text in, text out, no Pulumi import. The
// same functions render production (inside the proxy container) and the
// tests' configuration (on loopback, with other ports and paths, the slots'
// fixed addresses mapped to stand-ins), so what the tests run is what the
// server runs. Where the files go is the contract (contract.ts); how they go
// live is the activation (activation.ts).
import { SLOTS } from "../app/render.js";
import { edgeAddressing, publicHostNames } from "../server/render.js";
import type { Slot, StackConfig } from "../../stacks/config/schema.js";
import { INTERNAL_PORT, originPullsCertificatePath, proxyDirs, SLOT_HEADER, stackFilePaths, UPSTREAM_HEADER } from "./contract.js";

/** How long the proxy waits for an app's answer (between two reads): within Cloudflare's own wait for the origin (120 s). */
export const PROXY_READ_TIMEOUT_SECONDS = 100;
/**
 * How long old workers may finish in-flight requests after a reload: past the
 * longest an app may take to answer, since every activation reloads the one
 * proxy of every stack (a staging deploy must not cut prod's slow requests).
 */
export const WORKER_SHUTDOWN_SECONDS = PROXY_READ_TIMEOUT_SECONDS + 20;
/**
 * How long Cloudflare keeps an idle connection to the origin and reuses it
 * (its Proxy Idle Timeout, connection limits page): 900 s.
 */
export const CLOUDFLARE_IDLE_SECONDS = 900;
/**
 * How long the proxy keeps a client's idle connection open: past
 * Cloudflare's reuse of it, so that nginx never closes one just as Cloudflare
 * sends a request on it (that request would fail as a 520); the same rule as
 * the upstream groups' KEEPALIVE_TIMEOUT toward the apps. An idle connection
 * costs nginx little (its buffers are freed while it waits).
 */
export const CLIENT_KEEPALIVE_SECONDS = CLOUDFLARE_IDLE_SECONDS + 10;

/** Where nginx finds its files and which addresses it listens on. */
export interface ProxyLayout {
  /** Directory holding nginx.conf, conf.d/, upstreams/ and certs/. */
  confDir: string;
  /** Directory for nginx's temporary files (request bodies, buffered responses). */
  runtimeDir: string;
  pidFile: string;
  accessLog: string;
  errorLog: string;
  /** User of the worker processes; undefined keeps nginx's built-in default (tests run as whoever they are). */
  user?: string;
  listen: {
    /** `0.0.0.0` in the container; `127.0.0.1` in tests. */
    address: string;
    http: number;
    https: number;
    /** Loopback port inside the proxy (never published): slot-addressed routes for smoke checks. */
    internal: number;
  };
}

/** Set by nginx.conf: 1 when the TCP peer (before real-IP restoration) is one of Cloudflare's ranges. */
export const VIA_CLOUDFLARE_VARIABLE = "$bbaegok_via_cloudflare";

/** Set by nginx.conf: the request's id, in X-Request-ID both ways and in its access log line. */
export const REQUEST_ID_VARIABLE = "$bbaegok_request_id";

/** The layout inside the production container (official nginx image). */
export function containerLayout(dir: string): ProxyLayout {
  return {
    confDir: proxyDirs(dir).live,
    runtimeDir: "/var/cache/nginx",
    pidFile: "/var/run/nginx.pid",
    // The image links these two to the container's stdout and stderr (docker logs).
    accessLog: "/var/log/nginx/access.log",
    errorLog: "/var/log/nginx/error.log",
    user: "nginx",
    listen: { address: "0.0.0.0", http: 80, https: 443, internal: INTERNAL_PORT },
  };
}


export interface MainConfOptions {
  /** Cloudflare's address ranges (cloudflare.getIpRanges): trusted for CF-Connecting-IP and the Cloudflare-only gate. */
  cloudflareRanges: readonly string[];
  /** How long old workers may finish in-flight requests after a reload. */
  workerShutdownTimeout: string;
}

const CIDR = /^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$|^[0-9a-f:]+\/\d{1,3}$/i;

/** The owner's nginx.conf: shared settings, closed default servers, and every stack's conf.d file. */
export function renderMainConf(layout: ProxyLayout, options: MainConfOptions): string {
  for (const cidr of options.cloudflareRanges) {
    if (!CIDR.test(cidr)) throw new Error(`Cloudflare range "${cidr}" is not a CIDR block; refusing to render nginx.conf`);
  }
  const { address, http, https, internal } = layout.listen;
  const trusted = options.cloudflareRanges.map((cidr) => `    set_real_ip_from ${cidr};`).join("\n");
  const gate = options.cloudflareRanges.map((cidr) => `        ${cidr} 1;`).join("\n");
  return `# Rendered by infra/proxy/render.ts from the owner stack's config; edits here are overwritten.
${layout.user ? `user ${layout.user};\n` : ""}worker_processes auto;
pid ${layout.pidFile};
error_log ${layout.errorLog} warn;
# After a reload, old workers finish in-flight requests for at most this long.
worker_shutdown_timeout ${options.workerShutdownTimeout};

events {
    worker_connections 4096;
}

http {
    default_type application/octet-stream;
    server_tokens off;
    client_body_temp_path ${layout.runtimeDir}/client_body;
    proxy_temp_path ${layout.runtimeDir}/proxy;
    fastcgi_temp_path ${layout.runtimeDir}/fastcgi;
    uwsgi_temp_path ${layout.runtimeDir}/uwsgi;
    scgi_temp_path ${layout.runtimeDir}/scgi;
    keepalive_timeout ${CLIENT_KEEPALIVE_SECONDS}s;
    keepalive_requests 1000;

    # The client's address as Cloudflare saw it, trusted only from Cloudflare.
${trusted}
    real_ip_header CF-Connecting-IP;
    # Whether the TCP peer itself (not the restored address) is Cloudflare:
    # proxied stacks close the connection on anything else.
    geo $realip_remote_addr ${VIA_CLOUDFLARE_VARIABLE} {
        default 0;
${gate}
    }

    # The request id the app (X-Request-ID), the client (X-Request-ID) and the
    # access log share: <msec>-<connection>-<request on it>, e.g. 1764680000.123-7-2.
    # nginx's $request_id drew 16 bytes from OpenSSL's RAND_bytes per request, an
    # eighth of this proxy's instructions (bench:proxy). Unique: the connection
    # counter is shared by the workers and kept by the master across reloads
    # (every blue/green switch reloads), and the request count is per connection;
    # a restart starts the counter at 1 again, but in a later millisecond, unless
    # the clock is set back across it. A map's value is computed once per request
    # and kept, so $msec is read once and every use sees the same id.
    map "" ${REQUEST_ID_VARIABLE} {
        default $msec-$connection-$connection_requests;
    }

    # No $upstream_status: each group has one server, tried once, and nginx passes
    # the app's errors on, so it only repeated $status (or was "-" where
    # upstream= already says "-"); formatting it cost 0.5k instructions per
    # request, 1 % of this proxy's (bench:proxy).
    log_format bbaegok '$remote_addr $host [$time_iso8601] "$request" $status $body_bytes_sent '
                       'rt=$request_time upstream=$upstream_addr '
                       'upstream_time=$upstream_response_time request_id=${REQUEST_ID_VARIABLE}';
    # Lines are written 4 KiB at a time, at the latest a second after the first
    # one waits: a write(2) per request cost about 7 % of the proxy's CPU at
    # 2,000 requests/s (bench:proxy). Never more than PIPE_BUF, so every write to
    # docker's stdout pipe stays atomic and several workers' lines never interleave.
    access_log ${layout.accessLog} bbaegok buffer=4k flush=1s;

    gzip on;
    # Cloudflare's requests carry Via; compress for them too.
    gzip_proxied any;
    gzip_vary on;
    gzip_comp_level 5;
    gzip_min_length 1024;
    gzip_types text/plain text/css text/xml text/javascript application/json application/javascript application/xml application/problem+json image/svg+xml;

    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:bbaegok_tls:10m;
    ssl_session_timeout 1d;
    ssl_session_tickets off;

    # Upstream connections are kept alive (each stack's upstream groups), so a
    # plain request sends no Connection header. Only a WebSocket may upgrade:
    # h2c (Upgrade: h2c) would turn the connection into one nginx no longer
    # reads, where the client's requests skip every rule of this proxy.
    map $http_upgrade $bbaegok_upgrade {
        default        '';
        ~*^websocket$  websocket;
    }
    map $bbaegok_upgrade $bbaegok_connection {
        default    '';
        websocket  upgrade;
    }

    # Closed by default: an unknown Host, an IP literal or no Host gets nothing.
    server {
        listen ${address}:${http} default_server;
        server_name _;
        return 444;
    }
    server {
        listen ${address}:${https} ssl default_server;
        server_name _;
        ssl_reject_handshake on;
        # The TLS name was one of ours, but Host names none of them (an IP literal, another site).
        return 444;
    }
    server {
        listen 127.0.0.1:${internal} default_server;
        server_name _;
        return 444;
    }

    include ${layout.confDir}/conf.d/*.conf;
}
`;
}

/** An upstream group: one app slot or Metabase at its fixed address, with idle connections kept open. */
export interface UpstreamGroup {
  /** e.g. `bbaegok_prod_blue`, or `bbaegok_prod_api`: the live slot's, declared by the upstream file. */
  name: string;
  /** `ip:port` where nginx reaches it. */
  address: string;
}

export interface SiteHost {
  /** Public host name, e.g. api.bbaegok.kr. */
  name: string;
  /** The upstream group the host proxies to, e.g. `bbaegok_prod_api` (the live slot's, from the upstream file). */
  upstream: string;
  /** Client addresses (after real-IP restoration) allowed in; empty allows everyone. */
  allowFrom: readonly string[];
}

export interface SlotRoutes {
  /** Host names the internal port answers for (the API's, and the health-check Host when different). */
  names: readonly string[];
  /** The live slot's upstream group (declared by the upstream file). */
  liveGroup: string;
  /** Each slot's upstream group, for requests that name a slot in the slot header. */
  slots: Record<Slot, string>;
}

export interface StackSite {
  stack: string;
  /** The fixed upstream groups (each slot's, Metabase's); the live one is the upstream file's. */
  upstreams: readonly UpstreamGroup[];
  hosts: readonly SiteHost[];
  clientMaxBodySize: string;
  /** Records proxied by Cloudflare: only Cloudflare's addresses may connect. */
  cloudflareOnly: boolean;
  /** Authenticated Origin Pulls: the file of the certificate (or CA) a client must present on every host of the stack. */
  clientCertificateAuthority?: string;
  /** Slot-addressed routes on the internal port (the API only). */
  slotRoutes?: SlotRoutes;
}

/** The name of one stack's upstream group for a role (`blue`, `green`, `metabase`, `api`: the live slot's). */
export function upstreamGroup(stack: string, role: string): string {
  return `bbaegok_${stack.replace(/\W/g, "_")}_${role.replace(/\W/g, "_")}`;
}

const ADDRESS = /^(\d{1,3}\.){3}\d{1,3}:\d{1,5}$/;
const GROUP = /^[A-Za-z0-9_]+$/;

/**
 * Idle upstream connections each worker keeps per group. Above the requests a
 * worker has in flight to one slot at a busy moment, so a burst does not end
 * in connections closed and reopened (16 measured clearly slower than 64 in
 * bench:proxy with 32 clients); Tomcat and Jetty take far more connections.
 */
export const KEEPALIVE_CONNECTIONS = 64;
// Shorter than the apps' own idle timeouts (Tomcat 60 s, Jetty 30 s), so the
// app never closes a connection just as nginx reuses it.
const KEEPALIVE_TIMEOUT = "15s";

function upstreamBlock(stack: string, group: UpstreamGroup): string {
  if (!GROUP.test(group.name)) throw new Error(`upstream group "${group.name}" of stack ${stack} must be letters, digits and _`);
  if (!ADDRESS.test(group.address)) throw new Error(`upstream address "${group.address}" of stack ${stack} must be an IPv4 address:port`);
  return `upstream ${group.name} {
    server ${group.address};
    keepalive ${KEEPALIVE_CONNECTIONS};
    keepalive_timeout ${KEEPALIVE_TIMEOUT};
}
`;
}

/**
 * Request headers through which a client could tell the app something about
 * the connection (its address, the host, scheme, port or path prefix, the
 * original URL) that nginx does not set itself: each is sent to the app empty,
 * which nginx does by not sending it. Spring's ForwardedHeaderFilter reads
 * Forwarded and X-Forwarded-{Host,Port,Proto,Prefix,Ssl,For}, Tomcat's
 * RemoteIpValve X-Forwarded-By; the others are read by other frameworks,
 * logging and rate-limit libraries (Proxy: httpoxy).
 */
export const CLEARED_CLIENT_HEADERS = [
  "Forwarded",
  // Host carries the served name ($host), and Spring and Tomcat read Host when
  // this is absent: nginx setting it too repeated Host at 0.4k instructions per
  // request (bench:proxy).
  "X-Forwarded-Host",
  "X-Forwarded-Prefix",
  "X-Forwarded-Ssl",
  "X-Forwarded-Server",
  "X-Forwarded-By",
  "X-Forwarded-Scheme",
  "X-Scheme",
  "X-Url-Scheme",
  "Front-End-Https",
  "X-Original-URL",
  "X-Rewrite-URL",
  "X-Original-Host",
  "X-Host",
  "X-Original-Forwarded-For",
  "X-Client-IP",
  "X-Cluster-Client-IP",
  "Client-IP",
  // Cloudflare passes a client's own unless its Enterprise setting overwrites it; the app has X-Real-IP.
  "True-Client-IP",
  "Proxy",
] as const;

/**
 * Headers Cloudflare sets on what it forwards. A proxied stack's peer is
 * always Cloudflare (the gate), so they are Cloudflare's; on a stack not
 * behind Cloudflare only a client can have sent them, so they are cleared.
 */
export const CLOUDFLARE_HEADERS = [
  "CF-Connecting-IP",
  "CF-Connecting-IPv6",
  "CF-Pseudo-IPv4",
  "CF-IPCountry",
  "CF-Ray",
  "CF-Visitor",
  "CF-Worker",
  "CF-EW-Via",
  "CDN-Loop",
  "CF-Access-Jwt-Assertion",
  "CF-Access-Authenticated-User-Email",
] as const;

function proxyDirectives(target: string, indent: string, cloudflareProxied: boolean): string {
  const cleared = [...CLEARED_CLIENT_HEADERS, ...(cloudflareProxied ? [] : CLOUDFLARE_HEADERS)];
  return [
    `proxy_pass http://${target};`,
    "proxy_http_version 1.1;",
    "proxy_set_header Host $host;",
    "proxy_set_header X-Real-IP $remote_addr;",
    // One trustworthy value: the restored client address, never what the client claimed.
    "proxy_set_header X-Forwarded-For $remote_addr;",
    "proxy_set_header X-Forwarded-Proto https;",
    "proxy_set_header X-Forwarded-Port 443;",
    `proxy_set_header X-Request-ID ${REQUEST_ID_VARIABLE};`,
    ...cleared.map((header) => `proxy_set_header ${header} "";`),
    // Both empty (kept-alive connection) unless the client asks for a WebSocket.
    "proxy_set_header Upgrade $bbaegok_upgrade;",
    "proxy_set_header Connection $bbaegok_connection;",
    // A stopped slot's fixed address answers nothing (or refuses): 504 or 502 within this.
    "proxy_connect_timeout 3s;",
    "proxy_send_timeout 60s;",
    // Cloudflare gives up on the origin after 120 s (its Proxy Read Timeout, a 524): nginx answers 504 a little before.
    `proxy_read_timeout ${PROXY_READ_TIMEOUT_SECONDS}s;`,
    // Uploads stream to the app instead of waiting on the proxy's disk.
    "proxy_request_buffering off;",
  ]
    .map((line) => `${indent}${line}`)
    .join("\n");
}

function httpsServer(layout: ProxyLayout, site: StackSite, host: SiteHost): string {
  const paths = stackFilePaths(site.stack);
  const allow = host.allowFrom.length > 0 ? [...host.allowFrom.map((c) => `        allow ${c};`), "        deny all;", ""].join("\n") : "";
  const gate = site.cloudflareOnly ? `    if (${VIA_CLOUDFLARE_VARIABLE} = 0) {\n        return 444;\n    }\n` : "";
  // Cloudflare's ranges admit every Cloudflare customer's requests; only Cloudflare holds this stack's client certificate.
  const clientAuth = site.clientCertificateAuthority
    ? `    # Authenticated Origin Pulls: no request without the client certificate this stack gave Cloudflare (400 otherwise).
    ssl_client_certificate ${site.clientCertificateAuthority};
    ssl_verify_client on;
`
    : "";
  return `server {
    listen ${layout.listen.address}:${layout.listen.https} ssl;
    server_name ${host.name};
    ssl_certificate ${layout.confDir}/${paths.certificate};
    ssl_certificate_key ${layout.confDir}/${paths.key};
${clientAuth}${gate}    # The TLS name chose this server's certificate; a different Host would reach another site under it.
    # Compared as nginx matched it (case-insensitively): $ssl_server_name is the name as the client sent it.
    if ($ssl_server_name !~* ^${host.name.replace(/\./g, "\\.")}$) {
        return 421;
    }
    add_header Strict-Transport-Security "max-age=31536000" always;
    add_header X-Request-ID ${REQUEST_ID_VARIABLE} always;
    client_max_body_size ${site.clientMaxBodySize};

    location / {
${allow}${proxyDirectives(host.upstream, "        ", site.cloudflareOnly)}
    }
}
`;
}

function redirectServer(layout: ProxyLayout, site: StackSite): string {
  const gate = site.cloudflareOnly ? `    if (${VIA_CLOUDFLARE_VARIABLE} = 0) {\n        return 444;\n    }\n` : "";
  return `server {
    listen ${layout.listen.address}:${layout.listen.http};
    server_name ${site.hosts.map((h) => h.name).join(" ")};
${gate}    return 301 https://$host$request_uri;
}
`;
}

function slotServer(layout: ProxyLayout, site: StackSite, routes: SlotRoutes): string {
  const route = `$${upstreamGroup(site.stack, "route")}`;
  const header = `$http_${SLOT_HEADER.toLowerCase().replace(/-/g, "_")}`;
  const picks = SLOTS.map((slot) => `    if (${header} = ${slot}) {\n        set ${route} ${routes.slots[slot]};\n    }`).join("\n");
  return `# Reached only from inside the proxy (docker exec … curl 127.0.0.1:${layout.listen.internal}): a deploy's
# smoke checks of a slot before it goes live. ${SLOT_HEADER}: blue|green picks the slot; without it, the live one.
# ${UPSTREAM_HEADER} names the address nginx sent the request to, so a deploy can check which slot is live.
server {
    listen 127.0.0.1:${layout.listen.internal};
    server_name ${[...new Set(routes.names)].join(" ")};
    client_max_body_size ${site.clientMaxBodySize};

    # A variable's value that names an upstream group is looked up among the groups first.
    set ${route} ${routes.liveGroup};
${picks}
    add_header ${UPSTREAM_HEADER} $upstream_addr always;

    location / {
${proxyDirectives(route, "        ", site.cloudflareOnly)}
    }
}
`;
}

/** One stack's server blocks: redirect on HTTP, its hosts on HTTPS, its slot routes on the internal port. */
export function renderStackConf(layout: ProxyLayout, site: StackSite): string {
  if (site.hosts.length === 0) throw new Error(`stack ${site.stack} has no host name to serve`);
  if (!/^\d+[kmg]?$/.test(site.clientMaxBodySize)) throw new Error(`stack ${site.stack}: client_max_body_size "${site.clientMaxBodySize}" is not an nginx size`);
  const groups = new Set(site.upstreams.map((g) => g.name));
  for (const group of Object.values(site.slotRoutes?.slots ?? {})) {
    if (!groups.has(group)) throw new Error(`slot route of stack ${site.stack} names "${group}", which is not one of its upstream groups`);
  }
  for (const group of [...site.hosts.map((h) => h.upstream), ...(site.slotRoutes ? [site.slotRoutes.liveGroup] : [])]) {
    if (!GROUP.test(group)) throw new Error(`upstream group "${group}" of stack ${site.stack} must be letters, digits and _`);
  }
  const paths = stackFilePaths(site.stack);
  const blocks = [
    ...site.upstreams.map((g) => upstreamBlock(site.stack, g)),
    redirectServer(layout, site),
    ...site.hosts.map((h) => httpsServer(layout, site, h)),
  ];
  if (site.slotRoutes) blocks.push(slotServer(layout, site, site.slotRoutes));
  return `# Stack ${site.stack}. Rendered by infra/proxy/render.ts; this stack adds and removes only its own files.

# The live slot's upstream group: the one file a blue/green switch rewrites.
include ${layout.confDir}/${paths.upstreams};

${blocks.join("\n")}`;
}

/**
 * The stack's live upstream: the one file a blue/green switch rewrites. It
 * declares the live slot's group at that slot's address, and the API's host
 * proxies to the group by name: a proxy_pass through a variable (the file
 * once set one) cost a lookup among the groups on every request, 1.6k of the
 * proxy's ~58k instructions per request (bench:proxy).
 */
export function renderUpstreams(stack: string, live: Slot, group: UpstreamGroup): string {
  return `# Live upstream of stack ${stack}, rewritten by deploy and rollback (new file, nginx -t, graceful reload).
# Slot ${live} serves.
${upstreamBlock(stack, group)}`;
}

type SiteConfig = Pick<StackConfig, "service" | "server" | "domains" | "app" | "metabase" | "proxy">;

/** Maps a container's fixed `ip:port` on the edge network to where nginx reaches it: identity on the server, stand-ins in tests. */
export type AddressMap = (ipAndPort: string) => string;
const onServer: AddressMap = (a) => a;

export { publicHosts } from "../server/render.js";

/** Metabase's port in its container. */
export const METABASE_PORT = 3000;

/** Where nginx sends a slot's requests: its fixed address on the stack's edge network, through `address`. */
export function slotUpstreamAddress(config: Pick<StackConfig, "server" | "app">, slot: Slot, address: AddressMap = onServer): string {
  return address(`${edgeAddressing(config.server.edgeSubnet)[slot]}:${config.app.port}`);
}

function sites(config: SiteConfig, stack: string, address: AddressMap) {
  const edge = edgeAddressing(config.server.edgeSubnet);
  const slotGroup = (slot: Slot) => upstreamGroup(stack, slot);
  const upstreams: UpstreamGroup[] = SLOTS.map((slot) => ({ name: slotGroup(slot), address: slotUpstreamAddress(config, slot, address) }));
  const names = publicHostNames(config);
  const hosts: SiteHost[] = [{ name: names.api, upstream: upstreamGroup(stack, "api"), allowFrom: [] }];
  if (names.metabase) {
    const metabase = upstreamGroup(stack, "metabase");
    upstreams.push({ name: metabase, address: address(`${edge.metabase}:${METABASE_PORT}`) });
    hosts.push({ name: names.metabase, upstream: metabase, allowFrom: config.metabase.allowFrom });
  }
  return { hosts, upstreams, slotGroup };
}

/** The upstream file of a stack with `live` as its live slot (what a switch writes). */
export function stackUpstreams(config: SiteConfig, stack: string, live: Slot, address: AddressMap = onServer): string {
  return renderUpstreams(stack, live, { name: upstreamGroup(stack, "api"), address: slotUpstreamAddress(config, live, address) });
}

/**
 * A stack's two proxy files from its config: the API (and Metabase, when on)
 * in conf.d/<stack>.conf, and the live slot's group in upstreams/<stack>.conf,
 * with `live` as the slot that serves.
 */
export function stackProxyFiles(config: SiteConfig, stack: string, layout: ProxyLayout, live: Slot, address: AddressMap = onServer): { conf: string; upstreams: string } {
  const { hosts, upstreams, slotGroup } = sites(config, stack, address);
  const slotNames = [config.domains.api, ...(config.app.healthCheck.hostHeader ? [config.app.healthCheck.hostHeader] : [])];
  return {
    conf: renderStackConf(layout, {
      stack,
      upstreams,
      hosts,
      clientMaxBodySize: config.proxy.clientMaxBodySize,
      cloudflareOnly: config.proxy.cloudflareProxied,
      ...(config.proxy.authenticatedOriginPulls ? { clientCertificateAuthority: `${layout.confDir}/${originPullsCertificatePath(stack)}` } : {}),
      slotRoutes: { names: slotNames, liveGroup: hosts[0]!.upstream, slots: { blue: slotGroup("blue"), green: slotGroup("green") } },
    }),
    upstreams: stackUpstreams(config, stack, live, address),
  };
}
