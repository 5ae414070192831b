// Pure predicates shared by the config schema, the guardrails and the tests.
// No Pulumi import here: these run before the engine is touched.

const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const HOSTNAME = new RegExp(`^(?=.{1,253}$)(?:${LABEL}\\.)+[a-z]{2,63}$`);
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

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
