// The proxies bench:proxy puts beside ours, each configured for the same job
// (TLS termination with one ECDSA P-256 certificate, HTTP/1.1 keep-alive to
// clients, one upstream reached over kept-alive connections, one worker or
// thread), and the variants of our own configuration that find what costs it.
// Pure renderers (text out); the bench runs each with the real tool, which
// checks the text before it serves.

/** How to install the peers and callgrind: the bench's alone, so the tests' installer leaves them out (README, bench:proxy). */
export const PEERS_INSTALL = "apt-get install haproxy caddy valgrind";

export interface PeerFiles {
  /** Listening address for TLS, on 127.0.0.1. */
  port: number;
  /** The one upstream, `127.0.0.1:<port>`. */
  upstream: string;
  certificate: string;
  key: string;
  /** Temporary files, pid file, error log. */
  runtimeDir: string;
}

/**
 * TLS versions of the minimal nginx: ours's and nginx's own default since
 * 1.23.4 (prod runs 1.28). Debian's nginx 1.22 leaves TLS 1.3 out by default,
 * so a bare minimal configuration served TLS 1.2 while ours and every other
 * peer served TLS 1.3, whose records cost OpenSSL 3 more per request (about
 * 4k instructions): not the same job.
 */
export const MINIMAL_TLS_PROTOCOLS = "TLSv1.2 TLSv1.3";

/** The floor for nginx: TLS, one upstream with keepalive, nothing else (no access log, no headers). */
export function minimalNginxConf(p: PeerFiles): string {
  return `worker_processes 1;
pid ${p.runtimeDir}/nginx.pid;
error_log ${p.runtimeDir}/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path ${p.runtimeDir}/client_body;
    proxy_temp_path ${p.runtimeDir}/proxy;
    upstream app {
        server ${p.upstream};
        keepalive 64;
    }
    server {
        listen 127.0.0.1:${p.port} ssl;
        ssl_certificate ${p.certificate};
        ssl_certificate_key ${p.key};
        ssl_protocols ${MINIMAL_TLS_PROTOCOLS};
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`;
}

/** HAProxy 2.6: one thread, TLS on the frontend (certificate and key in one PEM), connections to the upstream reused. */
export function haproxyConf(p: PeerFiles & { pem: string }): string {
  return `global
    nbthread 1
    maxconn 4096
    pidfile ${p.runtimeDir}/haproxy.pid

defaults
    mode http
    timeout connect 3s
    timeout client 65s
    timeout server 100s
    timeout http-keep-alive 65s

frontend tls
    bind 127.0.0.1:${p.port} ssl crt ${p.pem} alpn http/1.1
    default_backend app

backend app
    http-reuse always
    server app ${p.upstream}
`;
}

/** Caddy 2.6: no admin endpoint, no automatic HTTPS (the certificate is given), reverse_proxy with its default keep-alive pool. */
export function caddyfile(p: PeerFiles): string {
  return `{
	admin off
	auto_https off
}
https://localhost:${p.port} {
	bind 127.0.0.1
	tls ${p.certificate} ${p.key}
	reverse_proxy ${p.upstream}
}
`;
}

/**
 * One worker, as every peer gets: prod renders `worker_processes auto` (one
 * per core), which the comparison per worker must pin.
 */
export function oneWorker(conf: string): string {
  return replaceOnce(conf, /^worker_processes auto;$/m, "worker_processes 1;", "worker_processes auto");
}

/** A change to our rendered configuration, to measure what one feature costs. */
export interface Variant {
  name: string;
  /** What it takes away or changes, in words. */
  change: string;
  main?: (conf: string) => string;
  site?: (conf: string) => string;
}

function replaceOnce(text: string, pattern: RegExp, by: string, what: string): string {
  const matches = text.match(new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`));
  if (!matches || matches.length === 0) throw new Error(`bench:proxy variant: "${what}" is not in the rendered configuration any more; update bench/proxy/peers.ts`);
  return text.replace(new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`), by);
}

/** Variants of ours, each one feature away from prod's configuration. */
export const VARIANTS: readonly Variant[] = [
  // A second copy of ours: how far two identical configurations differ in one run (the noise).
  { name: "unchanged", change: "nothing (a second copy of ours: the noise of this comparison)" },
  { name: "no-access-log", change: "access_log off", main: (c) => replaceOnce(c, /^ {4}access_log .*;$/m, "    access_log off;", "access_log") },
  {
    name: "log-unbuffered",
    change: "each access log line written at once (prod before the 4k buffer)",
    main: (c) => replaceOnce(c, /^( {4}access_log \S+ bbaegok) buffer=\S+ flush=\S+;$/m, "$1;", "access_log … bbaegok buffer=… flush=…"),
  },
  {
    name: "no-real-ip",
    change: "no CF-Connecting-IP restoration, no Cloudflare gate",
    main: (c) => replaceOnce(replaceOnce(c, /^ {4}set_real_ip_from .*;\n/m, "", "set_real_ip_from"), /^ {4}real_ip_header .*;\n/m, "", "real_ip_header"),
    site: (c) => replaceOnce(c, / {4}if \(\$bbaegok_via_cloudflare = 0\) \{\n {8}return 444;\n {4}\}\n/, "", "the Cloudflare gate"),
  },
  {
    name: "no-headers",
    change: "no added response headers; upstream, only Host, Connection and the cleared client headers",
    site: (c) =>
      replaceOnce(
        replaceOnce(c, /^ {4}add_header .*;\n/m, "", "add_header"),
        /^ {8}proxy_set_header (?!Host |Connection )\S+ (?!"";)\S.*;\n/m,
        "",
        "proxy_set_header X-…",
      ),
  },
  {
    name: "no-header-clearing",
    change: 'client-settable forwarding headers passed on (no proxy_set_header … "")',
    site: (c) => replaceOnce(c, /^ {8}proxy_set_header \S+ "";\n/m, "", 'proxy_set_header … ""'),
  },
  // One item each, to find what a feature's cost is made of (README, bench:proxy).
  {
    name: "request-id-no-msec",
    change: "the request id without its time part ($msec)",
    main: (c) => replaceOnce(c, /default \$msec-\$connection-\$connection_requests;/, "default $connection-$connection_requests;", "the request id's $msec"),
  },
  {
    name: "no-cloudflare-gate",
    change: "no Cloudflare gate (the real IP kept)",
    site: (c) => replaceOnce(c, / {4}if \(\$bbaegok_via_cloudflare = 0\) \{\n {8}return 444;\n {4}\}\n/, "", "the Cloudflare gate"),
  },
  { name: "no-x-real-ip", change: "no X-Real-IP to the app", site: (c) => replaceOnce(c, /^ +proxy_set_header X-Real-IP \$remote_addr;\n/m, "", "proxy_set_header X-Real-IP") },
  { name: "no-hsts", change: "no HSTS header", site: (c) => replaceOnce(c, /^ +add_header Strict-Transport-Security .*;\n/m, "", "add_header Strict-Transport-Security") },
  {
    name: "no-tls-name-check",
    change: "no check of the TLS name against Host (421)",
    site: (c) => replaceOnce(c, / {4}if \(\$ssl_server_name !~\* \S+\) \{\n {8}return 421;\n {4}\}\n/, "", "the TLS name check"),
  },
  {
    name: "log-no-times",
    change: "the access log without rt= and upstream_time=",
    main: (c) => replaceOnce(replaceOnce(c, /rt=\$request_time /, "", "rt= in the log format"), /upstream_time=\$upstream_response_time /, "", "upstream_time= in the log format"),
  },
  { name: "log-no-upstream-addr", change: "the access log without upstream=", main: (c) => replaceOnce(c, /upstream=\$upstream_addr /, "", "upstream= in the log format") },
  {
    name: "no-request-id",
    change: "no request id (log, X-Request-ID both ways)",
    main: (c) => replaceOnce(c, / request_id=\$bbaegok_request_id/, "", "request_id= in the log format"),
    site: (c) => replaceOnce(c, /^ +(add_header|proxy_set_header) X-Request-ID \$bbaegok_request_id( always)?;\n/m, "", "X-Request-ID $bbaegok_request_id"),
  },
];
