// The server side of a blue/green rollout (infra/app/rollout.ts plans it):
// three POSIX sh scripts the program runs over SSH around the flip, which is
// the stack's proxy activation (its upstream file now names the new slot).
//
//   precheck  before the target slot's container is touched: the proxy must
//             serve the slot the stack's state says serves. If it serves the
//             target instead (a flip went through on a run that then failed
//             to record it), that is fine only when the target already runs
//             this very release (its container's release label): nothing
//             would change in it. Anything else is refused, naming both.
//   smoke     after the target turned healthy: the stack's smoke checks sent
//             to the target through the proxy's internal route.
//   verify    after the flip: requests through the proxy reach the target,
//             several in a row; else it says what serves now. Then one line
//             in the stack's deploy history.
//
// Each script takes nothing but its text: the same release gives the same
// text, so a run that changes nothing re-runs nothing.
import type { Slot } from "../../stacks/config/schema.js";
import { asRootCommand, shellQuote } from "../server/render.js";
import { SLOT_HEADER, UPSTREAM_HEADER } from "./contract.js";

/** The container label naming the release a slot runs (a hash of its container spec). */
export const RELEASE_LABEL = "bbaegok.release";

export interface RolloutScriptArgs {
  stack: string;
  /** The slot that serves when the rollout is done. */
  target: Slot;
  /** Its release: the hash its container carries in RELEASE_LABEL. */
  release: string;
  image: string;
  /** Containers of the two slots. */
  containers: Record<Slot, string>;
  /** `ip:port` of each slot, as nginx's $upstream_addr names it. */
  addresses: Record<Slot, string>;
  proxyContainer: string;
  internalPort: number;
  /** Host header of the checks. */
  hostHeader: string;
  healthPath: string;
  smokeChecks: { path: string; status: number }[];
  /** The stack's conf on the proxy: absent before the stack's first activation. */
  liveConf: string;
  historyFile: string;
}

const other = (slot: Slot): Slot => (slot === "blue" ? "green" : "blue");

/** Shell functions the three scripts share: failing with the stack's name, asking the proxy which slot serves. */
function prelude(a: RolloutScriptArgs, what: string): string {
  const q = shellQuote;
  return `set -u
stack=${q(a.stack)}
target=${q(a.target)}
fail() { printf '%s of %s: %s\\n' ${q(what)} "$stack" "$*" >&2; exit 1; }
# GET through the proxy's internal route (inside the proxy container; never published); prints the response head.
through() {
  path=$1; shift
  docker exec ${q(a.proxyContainer)} curl -sS --max-time 15 -o /dev/null -D - -H ${q(`Host: ${a.hostHeader}`)} "$@" "http://127.0.0.1:${a.internalPort}$path" 2>&1
}
# The slot the public route sends requests to now: blue, green, or none.
served_by() {
  head=$(through ${q(a.healthPath)}) || { echo none; return; }
  addr=$(printf '%s\\n' "$head" | tr -d '\\r' | grep -i '^${UPSTREAM_HEADER}:' | tail -n 1 | sed 's/^[^:]*:[[:space:]]*//; s/.* : //; s/.*, //')
  case "$addr" in
    ${q(a.addresses.blue)}) echo blue ;;
    ${q(a.addresses.green)}) echo green ;;
    *) echo none ;;
  esac
}
status_of() { printf '%s\\n' "$1" | tr -d '\\r' | sed -n 's/^HTTP\\/[^ ]* \\([0-9][0-9][0-9]\\).*/\\1/p' | tail -n 1; }
first_rollout() { ! ${asRootCommand("exists", a.liveConf)}; }
`;
}

/** Before the target's container is touched. */
export function precheckScript(a: RolloutScriptArgs): string {
  const q = shellQuote;
  const previous = other(a.target);
  return `${prelude(a, "rollout")}
if first_rollout; then echo "rollout of $stack: first rollout, nothing serves yet"; exit 0; fi
now=$(served_by)
case "$now" in
  ${previous}) echo "rollout of $stack: ${previous} serves, as the stack's state says; ${a.target} gets the release" ;;
  ${a.target})
    running=$(docker inspect -f '{{index .Config.Labels "${RELEASE_LABEL}"}}' ${q(a.containers[a.target])} 2>/dev/null || true)
    if [ "$running" = ${q(a.release)} ]; then
      echo "rollout of $stack: ${a.target} already serves this release (a flip a previous run did not record); finishing it"
    else
      fail "the proxy serves ${a.target}, but the stack's state says ${previous} serves; this rollout would replace ${a.target} while it serves. Nothing was changed. See npm run status -- --stack $stack"
    fi ;;
  *) fail "the proxy serves no slot of this stack now (the state says ${previous}); nothing was changed. See npm run status -- --stack $stack" ;;
esac
`;
}

/** After the target turned healthy, before the flip. */
export function smokeScript(a: RolloutScriptArgs): string {
  const q = shellQuote;
  const checks = a.smokeChecks.length > 0 ? a.smokeChecks : [{ path: a.healthPath, status: 200 }];
  return `${prelude(a, "rollout")}
if first_rollout; then echo "rollout of $stack: first rollout, no route to smoke through yet (Docker reported ${a.target} healthy)"; exit 0; fi
${checks
  .map(
    (c) => `head=$(through ${q(c.path)} -H ${q(`${SLOT_HEADER}: ${a.target}`)}) || fail "smoke check GET ${c.path} on ${a.target} did not complete: $head"
got=$(status_of "$head")
[ "$got" = ${c.status} ] || fail "smoke check GET ${c.path} on ${a.target} answered \${got:-nothing}, expected ${c.status}; ${other(a.target)} keeps serving"`,
  )
  .join("\n")}
echo "rollout of $stack: smoke checks of ${a.target} passed"
`;
}

/** After the flip: the target serves, then one history line. */
export function verifyScript(a: RolloutScriptArgs): string {
  const q = shellQuote;
  return `${prelude(a, "rollout")}
record() {
  by="\${USER:-?}\${SSH_CLIENT:+ from \${SSH_CLIENT%% *}}"
  line=$(printf '{"at":"%s","action":"rollout","stack":"%s","slot":"%s","image":"%s","release":"%s","result":"%s","by":"%s"}' \\
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$stack" "$target" ${q(a.image)} ${q(a.release)} "$1" "$by")
  printf '%s\\n' "$line" | ${asRootCommand("append", a.historyFile)} || true
}
streak=0
now=none
i=0
while [ $i -lt 40 ]; do
  now=$(served_by)
  if [ "$now" = "$target" ]; then streak=$((streak + 1)); [ $streak -ge 3 ] && break; else streak=0; fi
  i=$((i + 1))
  sleep 0.25
done
if [ $streak -lt 3 ]; then
  record failed
  fail "after the flip the proxy serves $now, not $target: check npm run status -- --stack $stack"
fi
record succeeded
echo "rollout of $stack: $target serves ${a.image}"
`;
}
