// Pure predicates shared by the config schema, the guardrails and the tests.
// No Pulumi import here: these run before the engine is touched.

const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const HOSTNAME = new RegExp(`^(?=.{1,253}$)(?:${LABEL}\\.)+[a-z]{2,63}$`);
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * An SSH public host key as the server.ssh.hostKey pin and known_hosts write
 * it: `<type> <base64>`, nothing else. Ed25519 or ECDSA: the command provider
 * (pulumi-command's connection.go) offers a pinned key's own type as the only
 * host key algorithm, and for an RSA key that is `ssh-rsa`, SHA-1 signatures,
 * which OpenSSH 8.8 and later refuse: every remote command would fail.
 */
export function isSshHostKey(value: string): boolean {
  return /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}$/.test(value);
}

/** A fully qualified, lower-case DNS name such as `api.bbaegok.kr`. */
export function isHostname(value: string): boolean {
  return HOSTNAME.test(value);
}

export function isIpv4(value: string): boolean {
  return IPV4.test(value);
}

/** `name` equals `zone` or sits below it (`api.bbaegok.kr` in `bbaegok.kr`). */
export function isInZone(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}

// Tags that move under your feet: an image with one of these is not pinned.
const FLOATING_TAGS = new Set(["latest", "stable", "lts", "edge", "main", "master", "nightly", "mainline", "alpine", "slim"]);

/**
 * An image reference is pinned when it names a digest, or a tag that carries a
 * version number and is not one of the well-known floating tags.
 * `mariadb:11.4.4` and `ghcr.io/x/api@sha256:…` are pinned; `nginx`, `nginx:latest`
 * and `postgres:alpine` are not.
 */
export function isPinnedImage(ref: string): boolean {
  if (/@sha256:[a-f0-9]{64}$/.test(ref)) return true;
  const lastSlash = ref.lastIndexOf("/");
  const colon = ref.indexOf(":", lastSlash + 1);
  if (colon < 0) return false;
  const tag = ref.slice(colon + 1);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) return false;
  return !FLOATING_TAGS.has(tag.toLowerCase()) && /\d/.test(tag);
}

/** An IANA time zone name the runtime knows, such as `Asia/Seoul` or `UTC`. */
export function isTimeZone(value: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: value });
    return /^[A-Za-z_]+(\/[A-Za-z0-9_+-]+)*$/.test(value);
  } catch {
    return false;
  }
}

/** A Docker duration as its health checks take it: `500ms`, `10s`, `2m`, `1h`. */
export function isDockerDuration(value: string): boolean {
  return /^[1-9]\d*(ms|s|m|h)$/.test(value);
}

/** Seconds in a Docker duration string (`90s` → 90, `2m` → 120). */
export function durationSeconds(value: string): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(value);
  if (!match) throw new Error(`not a duration: ${value}`);
  const amount = Number(match[1]);
  const unit = match[2] as "ms" | "s" | "m" | "h";
  return { ms: amount / 1000, s: amount, m: amount * 60, h: amount * 3600 }[unit];
}

/**
 * A Docker duration in Go's canonical form (`time.Duration.String()`: `90s` →
 * `1m30s`, `60s` → `1m0s`, `1h` → `1h0m0s`): the form Docker's provider reads
 * back, so a value written any other way is a diff on every run.
 */
export function goDuration(value: string): string {
  const ms = Math.round(durationSeconds(value) * 1000);
  if (ms < 1000) return `${ms}ms`;
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor((ms % 3_600_000) / 60_000);
  const seconds = `${(ms % 60_000) / 1000}s`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}`;
  if (minutes > 0) return `${minutes}m${seconds}`;
  return seconds;
}

/** The IPv4 address as a 32-bit number; undefined when it is not one. */
function ipv4Number(value: string): number | undefined {
  if (!isIpv4(value)) return undefined;
  return value.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
}

/** `a.b.c.0/24`: a /24 given by its network address. */
export function isSubnet24(value: string): boolean {
  const match = /^(.+)\/24$/.exec(value);
  return match !== null && isIpv4(match[1]!) && match[1]!.endsWith(".0");
}

// RFC 1918: the only ranges a private Docker network may take without hiding part of the internet.
const PRIVATE_RANGES = [
  ["10.0.0.0", 8],
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
] as const;

/** A CIDR block inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16. */
export function isPrivateCidr(value: string): boolean {
  const block = cidrRange(value);
  return block !== undefined && PRIVATE_RANGES.some(([base, bits]) => {
    const range = cidrRange(`${base}/${bits}`)!;
    return block.first >= range.first && block.last <= range.last;
  });
}

/**
 * An address of a private link between servers: RFC 1918 (a WireGuard link's
 * own addresses) or a tailnet's 100.64.0.0/10 (RFC 6598, what Tailscale
 * gives). Never a wildcard, loopback or public address.
 */
export function isPrivateLinkAddress(value: string): boolean {
  return isIpv4(value) && (isPrivateCidr(`${value}/32`) || cidrsOverlap(`${value}/32`, "100.64.0.0/10"));
}

/**
 * Addresses no one on the internet reaches, each named: what the DNS records
 * must never point at (Cloudflare refuses to proxy them, error 9003). The
 * documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) are let
 * through: the committed stack files use them as placeholders.
 */
const NOT_PUBLIC: readonly (readonly [string, string])[] = [
  ["0.0.0.0/8", "this network (unspecified)"],
  ...PRIVATE_RANGES.map(([base, bits]) => [`${base}/${bits}`, "private (RFC 1918)"] as const),
  ["100.64.0.0/10", "shared address space (carrier-grade NAT or a tailnet, RFC 6598)"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved"],
];

/** Why an IPv4 address cannot be the server's public address, or undefined when it can. */
export function notPublicIpv4(value: string): string | undefined {
  return NOT_PUBLIC.find(([block]) => cidrsOverlap(`${value}/32`, block))?.[1];
}

/** First and last address of an IPv4 CIDR block, as numbers. */
function cidrRange(value: string): { first: number; last: number } | undefined {
  const match = /^(.+)\/(\d{1,2})$/.exec(value);
  const base = match ? ipv4Number(match[1]!) : undefined;
  const bits = match ? Number(match[2]) : NaN;
  if (base === undefined || !(bits >= 0 && bits <= 32)) return undefined;
  const size = 2 ** (32 - bits);
  const first = base - (base % size);
  return { first, last: first + size - 1 };
}

/** Whether two IPv4 CIDR blocks share an address; false when either is not a block. */
export function cidrsOverlap(a: string, b: string): boolean {
  const x = cidrRange(a);
  const y = cidrRange(b);
  return x !== undefined && y !== undefined && x.first <= y.last && y.first <= x.last;
}

/**
 * The first /24 after `from` (same first two octets) that overlaps none of
 * `taken`; undefined when none is left below x.y.255.0.
 */
export function nextFreeSubnet24(from: string, taken: readonly string[]): string | undefined {
  if (!isSubnet24(from)) return undefined;
  const [a, b, c] = from.split(".").map(Number) as [number, number, number];
  for (let third = c; third <= 255; third++) {
    const candidate = `${a}.${b}.${third}.0/24`;
    if (!taken.some((t) => cidrsOverlap(candidate, t))) return candidate;
  }
  return undefined;
}
