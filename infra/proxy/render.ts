// Pure renderers of the server's nginx configuration: text in, text out, no
// Pulumi import. The same functions render production (inside the proxy
// container) and the tests' configuration (on loopback, with other ports and
// paths), so what the tests run is what the server runs.
//
import { slotContainerName } from "../app/render.js";
import type { StackConfig } from "../../stacks/config/schema.js";

// Layout under `confDir`: nginx.conf (the owner's), conf.d/<stack>.conf (one
// stack's server blocks), upstreams/<stack>.conf (one stack's live slot: the
// one file a deploy rewrites), certs/<stack>.{crt,key}.

export interface ProxyPaths {
  /** Directory holding nginx.conf, conf.d/, upstreams/ and certs/. */
  confDir: string;
  /** Where nginx writes its pid, logs and temp files. */
  runtimeDir: string;
}

export interface ListenOptions {
  /** `0.0.0.0` on the server; `127.0.0.1` in tests. */
  address: string;
  httpPort: number;
  httpsPort: number;
}

export interface MainConfOptions extends ProxyPaths, ListenOptions {
  /** DNS server that resolves upstream names at request time (Docker's: 127.0.0.11). */
  resolver: string;
  /** Proxies whose X-Forwarded-For / CF-Connecting-IP is trusted (Cloudflare's ranges). */
  realIpFrom: readonly string[];
  /** How long old workers may finish in-flight requests after a reload. */
  workerShutdownTimeout: string;
}

export function renderMainConf(o: MainConfOptions): string {
  const realIp = o.realIpFrom.map((cidr) => `    set_real_ip_from ${cidr};`).join("\n");
  return `# Rendered by infra/proxy/render.ts. Edits here are overwritten.
worker_processes auto;
pid ${o.runtimeDir}/nginx.pid;
error_log ${o.runtimeDir}/error.log warn;
# After a reload, old workers finish in-flight requests for at most this long.
worker_shutdown_timeout ${o.workerShutdownTimeout};

events {
    worker_connections 4096;
}

http {
    default_type application/octet-stream;
    server_tokens off;
    client_body_temp_path ${o.runtimeDir}/client_body;
    proxy_temp_path ${o.runtimeDir}/proxy;
    fastcgi_temp_path ${o.runtimeDir}/fastcgi;
    uwsgi_temp_path ${o.runtimeDir}/uwsgi;
    scgi_temp_path ${o.runtimeDir}/scgi;

    # Upstream names are resolved per request, so a missing container of one
    # stack never stops nginx from starting or reloading for the others.
    resolver ${o.resolver} valid=10s ipv6=off;
    resolver_timeout 2s;

${realIp}
    real_ip_header CF-Connecting-IP;

    log_format bbaegok '$remote_addr $host "$request" $status $body_bytes_sent '
                       'upstream=$upstream_addr upstream_time=$upstream_response_time '
                       'request_id=$request_id';
    access_log ${o.runtimeDir}/access.log bbaegok;

    gzip on;
    gzip_types text/plain text/css application/json application/javascript text/xml application/xml;
    gzip_min_length 1024;

    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:SSL:10m;

    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      '';
    }

    # Closed by default: an unknown Host, an IP literal or no Host gets nothing.
    server {
        listen ${o.address}:${o.httpPort} default_server;
        server_name _;
        return 444;
    }
    server {
        listen ${o.address}:${o.httpsPort} ssl default_server;
        server_name _;
        ssl_reject_handshake on;
    }

    include ${o.confDir}/conf.d/*.conf;
}
`;
}

export interface SiteHost {
  /** Public host name, e.g. api.bbaegok.kr. */
  name: string;
  /** The variable the upstream file sets, e.g. `$bbaegok_prod_api`. */
  upstreamVariable: string;
  /** Client addresses allowed in; empty allows everyone. */
  allowFrom: readonly string[];
}

export interface StackConfOptions extends ProxyPaths, ListenOptions {
  stack: string;
  hosts: readonly SiteHost[];
  clientMaxBodySize: string;
}

/** The nginx variable that holds one stack host's live upstream address. */
export function upstreamVariable(stack: string, role: string): string {
  return `$bbaegok_${stack.replace(/\W/g, "_")}_${role.replace(/\W/g, "_")}`;
}

function serverBlocks(o: StackConfOptions, host: SiteHost): string {
  const allow = host.allowFrom.length > 0 ? [...host.allowFrom.map((c) => `        allow ${c};`), "        deny all;"].join("\n") + "\n" : "";
  return `server {
    listen ${o.address}:${o.httpPort};
    server_name ${host.name};
    return 301 https://$host$request_uri;
}

server {
    listen ${o.address}:${o.httpsPort} ssl http2;
    server_name ${host.name};
    ssl_certificate ${o.confDir}/certs/${o.stack}.crt;
    ssl_certificate_key ${o.confDir}/certs/${o.stack}.key;
    add_header Strict-Transport-Security "max-age=31536000" always;
    client_max_body_size ${o.clientMaxBodySize};

    include ${o.confDir}/upstreams/${o.stack}.conf;

    location / {
${allow}        proxy_pass http://${host.upstreamVariable};
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto https;
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header X-Request-ID $request_id;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_connect_timeout 3s;
        proxy_send_timeout 60s;
        proxy_read_timeout 60s;
        # Uploads stream to the app instead of waiting on disk.
        proxy_request_buffering off;
    }
}
`;
}

/** One stack's server blocks: redirect on HTTP, its hosts on HTTPS. */
export function renderStackConf(o: StackConfOptions): string {
  return `# Stack ${o.stack}. Rendered by infra/proxy/render.ts; this stack adds and removes only its own files.\n\n${o.hosts.map((h) => serverBlocks(o, h)).join("\n")}`;
}

/** The stack's live upstreams: the one file a blue/green switch rewrites. */
export function renderUpstreams(stack: string, upstreams: readonly { variable: string; address: string }[]): string {
  const lines = upstreams.map((u) => {
    if (!/^[A-Za-z0-9.-]+:\d{1,5}$/.test(u.address)) throw new Error(`upstream address "${u.address}" of stack ${stack} must be host:port`);
    return `set ${u.variable} "${u.address}";`;
  });
  return `# Live upstreams of stack ${stack}, rewritten by deploy and rollback.\n${lines.join("\n")}\n`;
}

/**
 * A stack's two proxy files from its config: the API (and Metabase, when on)
 * in conf.d/<stack>.conf, and their live addresses in upstreams/<stack>.conf.
 * `address` maps a container:port to where it is reached (identity on the server).
 */
export function stackProxyFiles(
  config: Pick<StackConfig, "service" | "domains" | "app" | "metabase" | "proxy">,
  stack: string,
  where: ProxyPaths & ListenOptions,
  address: (containerAndPort: string) => string = (a) => a,
): { conf: string; upstreams: string } {
  const prefix = `${config.service}-${stack}`;
  const sites: { host: SiteHost; address: string }[] = [
    { host: { name: config.domains.api, upstreamVariable: upstreamVariable(stack, "api"), allowFrom: [] }, address: address(`${slotContainerName(prefix, config.app.liveSlot)}:${config.app.port}`) },
  ];
  if (config.metabase.enabled && config.domains.metabase) {
    sites.push({ host: { name: config.domains.metabase, upstreamVariable: upstreamVariable(stack, "metabase"), allowFrom: config.metabase.allowFrom }, address: address(`${prefix}-metabase:3000`) });
  }
  return {
    conf: renderStackConf({ ...where, stack, hosts: sites.map((s) => s.host), clientMaxBodySize: config.proxy.clientMaxBodySize }),
    upstreams: renderUpstreams(stack, sites.map((s) => ({ variable: s.host.upstreamVariable, address: s.address }))),
  };
}

export interface ActivationCommands {
  /** Checks the whole configuration, e.g. `docker exec bbaegok-proxy nginx -t`. */
  test: string;
  /** Graceful reload, e.g. `docker exec bbaegok-proxy nginx -s reload`. */
  reload: string;
}

/**
 * A shell script that activates one proxy file read from stdin: the new file
 * replaces the old, `nginx -t` judges the whole configuration, and only then
 * nginx reloads gracefully. If nginx refuses it, the previous file is put back
 * (nothing is reloaded, the running configuration keeps serving) and the
 * script fails with nginx's message. One activation at a time per proxy.
 */
export function activationScript(targetPath: string, lockPath: string, commands: ActivationCommands): string {
  const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  return `set -eu
target=${q(targetPath)}
exec 9>${q(lockPath)}
flock -w 60 9
tmp=$(mktemp "$target.new.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod 0644 "$tmp"
had_previous=0
if [ -f "$target" ]; then cp -p "$target" "$target.previous"; had_previous=1; fi
mv -f "$tmp" "$target"
if ! output=$(${commands.test} 2>&1); then
  if [ "$had_previous" = 1 ]; then mv -f "$target.previous" "$target"; else rm -f "$target"; fi
  printf 'nginx refused the new %s; the previous configuration stays live.\\n%s\\n' "$target" "$output" >&2
  exit 1
fi
${commands.reload}
rm -f "$target.previous"
`;
}
