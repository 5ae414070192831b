// The server side of a blue/green rollout (infra/app/rollout.ts plans it):
// three POSIX sh scripts the program runs over SSH around the flip, which is
// the stack's proxy activation (its upstream file now names the new slot).
//
//   precheck  before the target slot's container is touched: the proxy must
//             serve the slot the stack's state says serves, running the
//             release the state records for it. If it serves the
//             target instead (a flip went through on a run that then failed
//             to record it), that is fine only when the target already runs
//             this very release (its container's release label): nothing
//             would change in it. Anything else is refused, naming both.
//             A rewarm (the warm slot re-created, no flip) goes on only when
//             the proxy serves the live slot: the target must not serve.
//   smoke     after the target turned healthy: Docker must say so still (it
//             waits while Docker's checks are starting), then the stack's
//             smoke checks are sent to the target through the proxy's
//             internal route.
//   verify    after the flip (none in a rewarm): requests through the proxy
//             reach the live slot, several in a row; else it says what serves
//             now. Then one line in the stack's deploy history.
//
// Each script takes nothing but its text: the same release gives the same
// text, so a run that changes nothing re-runs nothing.
import type { Slot } from "../../stacks/config/schema.js";
import type { RolloutChecks } from "../app/rollout.js";
import { asRootCommand, shellQuote } from "../server/render.js";
import { SLOT_HEADER, UPSTREAM_HEADER } from "./contract.js";

/** The container label naming the release a slot runs (a hash of its container spec). */
export const RELEASE_LABEL = "bbaegok.release";

export interface RolloutScriptArgs extends RolloutChecks {
  stack: string;
  /** The slot that serves when the run is done: the target but in a rewarm. */
  live: Slot;
  /** The target's release: the hash its container carries in RELEASE_LABEL. */
  release: string;
  /**
   * The release the stack's state records for the other slot (the one serving
   * before a rollout or a flip): a slot the proxy serves but that runs
   * another release went live in a run that did not record it.
   */
  otherRelease: string;
  /** How long Docker may take to report the target healthy: the slot's deployTimeout. */
  waitSeconds: number;
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
live=${q(a.live)}
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
# The release label of a slot's container, empty when it has none or is not there.
release_of() { docker inspect -f '{{index .Config.Labels "${RELEASE_LABEL}"}}' "$1" 2>/dev/null || true; }
status_of() { printf '%s\\n' "$1" | tr -d '\\r' | sed -n 's/^HTTP\\/[^ ]* \\([0-9][0-9][0-9]\\).*/\\1/p' | tail -n 1; }
# True only when the helper says the stack's conf is not there (exit 1, nothing
# said). sudo refusing (also exit 1, with its message) or the helper refusing
# the path (2) is no answer: taken as "first", it would skip the checks.
first_rollout() {
  answer=$(${asRootCommand("exists", a.liveConf)} 2>&1) && return 1
  [ $? -eq 1 ] && [ -z "$answer" ] && return 0
  fail "cannot tell whether the proxy has this stack's files (the install helper's exists: $answer); nothing was changed"
}
`;
}

/** Before the target's container is touched. */
export function precheckScript(a: RolloutScriptArgs): string {
  const q = shellQuote;
  const previous = other(a.target);
  if (a.action === "rewarm") {
    return `${prelude(a, "rewarm")}
now=$(served_by)
[ "$now" = "$live" ] || fail "the proxy serves \${now}, but the stack's state says $live serves; re-creating ${a.target} (the warm slot) could stop the slot that serves. Nothing was changed. See npm run status -- --stack $stack"
echo "rewarm of $stack: $live serves, as the stack's state says; ${a.target} (warm) is re-created with its release as the stack renders it now"
`;
  }
  return `${prelude(a, "rollout")}
if first_rollout; then echo "rollout of $stack: first rollout, nothing serves yet"; exit 0; fi
now=$(served_by)
case "$now" in
  ${previous})
    # The slot that serves must run what the state records for it: one that runs another release went live in a
    # run that did not record it, and a run from the older record (a stack file put back) would replace it.
    running=$(release_of ${q(a.containers[previous])})
    [ "$running" = ${q(a.otherRelease)} ] || fail "the proxy serves ${previous}, which runs release \${running:-(none)}, not ${a.otherRelease}, the one the stack's state records for it: it went live in a run that did not record it. Going on could replace the slot that serves. Nothing was changed. To record it, set the stack file to the release ${previous} runs (npm run status -- --stack $stack shows its image) and run pulumi up again"
    echo "rollout of $stack: ${previous} serves, as the stack's state says; ${a.target} gets the release" ;;
  ${a.target})
    running=$(release_of ${q(a.containers[a.target])})
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
  // A rewarm follows a run that served: there is always a route to smoke through.
  const first = a.action === "rollout" ? `if first_rollout; then echo "rollout of $stack: first rollout, no route to smoke through yet (Docker reported ${a.target} healthy)"; exit 0; fi\n` : "";
  // Docker's own verdict first, at the flip's moment: Pulumi waited for healthy when it created the slot, but a
  // slot's health can turn after that, and the smoke checks alone pass an app that answers while Docker reports it
  // unhealthy (an image without curl or wget). Waits while Docker is still starting the checks.
  const health = `{{if .State.Health}}{{.State.Health.Status}}{{else}}no health check{{end}}`;
  return `${prelude(a, a.action)}
waited=0
while :; do
  health=$(docker inspect -f '${health}' ${q(a.containers[a.target])} 2>&1) || fail "cannot ask Docker about ${a.target}: $health; ${other(a.target)} keeps serving"
  [ "$health" = healthy ] && break
  [ "$health" = starting ] && [ $waited -lt ${a.waitSeconds} ] || fail "Docker reports ${a.target} $health, not healthy; ${other(a.target)} keeps serving"
  sleep 2
  waited=$((waited + 2))
done
${first}${checks
  .map(
    (c) => `head=$(through ${q(c.path)} -H ${q(`${SLOT_HEADER}: ${a.target}`)}) || fail "smoke check GET ${c.path} on ${a.target} did not complete: $head"
got=$(status_of "$head")
[ "$got" = ${c.status} ] || fail "smoke check GET ${c.path} on ${a.target} answered \${got:-nothing}, expected ${c.status}; ${other(a.target)} keeps serving"`,
  )
  .join("\n")}
echo "${a.action} of $stack: smoke checks of ${a.target} passed"
`;
}

/** After the flip (none in a rewarm): the live slot serves, then one history line naming the target. */
export function verifyScript(a: RolloutScriptArgs): string {
  const q = shellQuote;
  const after = a.action === "rewarm" ? "the rewarm" : "the flip";
  return `${prelude(a, a.action)}
record() {
  by="\${USER:-?}\${SSH_CLIENT:+ from \${SSH_CLIENT%% *}}"
  line=$(printf '{"at":"%s","action":"%s","stack":"%s","slot":"%s","image":"%s","release":"%s","result":"%s","by":"%s"}' \\
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" ${q(a.action)} "$stack" "$target" ${q(a.image)} ${q(a.release)} "$1" "$by")
  printf '%s\\n' "$line" | ${asRootCommand("append", a.historyFile)} || true
}
streak=0
now=none
i=0
while [ $i -lt 40 ]; do
  now=$(served_by)
  if [ "$now" = "$live" ]; then streak=$((streak + 1)); [ $streak -ge 3 ] && break; else streak=0; fi
  i=$((i + 1))
  sleep 0.25
done
if [ $streak -lt 3 ]; then
  record failed
  fail "after ${after} the proxy serves $now, not $live: check npm run status -- --stack $stack"
fi
record succeeded
${a.action === "rewarm" ? `echo "rewarm of $stack: $live serves; $target (warm) runs ${a.image}"` : `echo "rollout of $stack: $target serves ${a.image}"`}
`;
}
