// The proxy's activation: the one way any stack's files on the proxy change,
// whether a `pulumi up` places its files, flips its live slot (the upstream
// file) or leaves the proxy. Lock, back up the live files, apply the change,
// `nginx -t`, then a graceful reload, or every previous file put back. Pure:
// renders the shell scripts, no Pulumi import.
import { createHash } from "node:crypto";
import { shellQuote } from "../server/render.js";
import { MAIN_CONF, proxyDirs, type ProxyEndpoint } from "./contract.js";

export interface ActivationCommands {
  /** Checks the whole configuration, e.g. `docker exec bbaegok-proxy nginx -t -c …`. */
  test: string;
  /** Graceful reload, e.g. `docker exec bbaegok-proxy nginx -s reload -c …`. */
  reload: string;
}

/**
 * nginx -t and reload in the proxy container. While the container does not
 * run (the owner's first `pulumi up` writes the files before it creates the
 * container), the configuration is checked by a throwaway container of the
 * same image and there is nothing to reload.
 */
export function dockerNginxCommands(endpoint: Pick<ProxyEndpoint, "container" | "image" | "dir">): ActivationCommands {
  const live = proxyDirs(endpoint.dir).live;
  const conf = shellQuote(`${live}/${MAIN_CONF}`);
  const container = shellQuote(endpoint.container);
  const mount = shellQuote(`${live}:${live}:ro`);
  const running = `[ "$(docker inspect -f '{{.State.Running}}' ${container} 2>/dev/null)" = true ]`;
  return {
    test: `if ${running}; then docker exec ${container} nginx -t -c ${conf}; else docker run --rm --network none -v ${mount} ${shellQuote(endpoint.image)} nginx -t -c ${conf}; fi`,
    reload: `if ${running}; then docker exec ${container} nginx -s reload -c ${conf}; fi`,
  };
}

const RELATIVE_FILE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*(\/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$/;

/** What an activation does to its files. */
export type ProxyChange =
  /** The proposals a run installed under `proposedDir` replace the live files; stdin carries their manifest (proposalManifest). */
  | { kind: "install"; proposedDir: string }
  /**
   * The live files go (a stack leaving the proxy). Without `verify` nothing
   * is checked or reloaded: the owner's proxy container is deleted before
   * its configuration.
   */
  | { kind: "remove"; verify: boolean };

export interface FileSetActivation {
  /** What the activation is for, in messages: e.g. "stack prod". */
  label: string;
  /** The directory nginx reads. */
  liveDir: string;
  /** The files (relative paths, the same under the live and proposed directories) this activation owns. */
  files: readonly string[];
  lockPath: string;
  commands: ActivationCommands;
  change: ProxyChange;
}

function checkFiles(files: readonly string[]): void {
  if (files.length === 0) throw new Error("an activation needs at least one file");
  for (const f of files) if (!RELATIVE_FILE.test(f) || f.split("/").includes("..")) throw new Error(`proxy file "${f}" must be a relative path of letters, digits and _.-`);
}

/** `sha256sum` lines for the files a run proposes: the activation checks the proposals are exactly these. */
export function proposalManifest(files: readonly { path: string; content: string }[]): string {
  checkFiles(files.map((f) => f.path));
  return files.map((f) => `${createHash("sha256").update(f.content).digest("hex")}  ${f.path}\n`).join("");
}

/**
 * The one script that changes a stack's files on the proxy, as one change in
 * one remote command, serialised with every other activation on the proxy:
 * the live files are backed up, the change applied (proposals copied over
 * them, each by an atomic rename, after stdin's manifest showed they are the
 * ones this run installed; or the files removed), `nginx -t` judges the whole
 * configuration, and nginx reloads gracefully. If nginx refuses, every
 * previous file is put back, nothing reloads, and the script fails with
 * nginx's own message. Every `pulumi up` places its files with it, and the
 * blue/green flip is its activation of a changed upstream file.
 */
export function activationScript(a: FileSetActivation): string {
  checkFiles(a.files);
  const list = a.files.map(shellQuote).join(" ");
  const { change } = a;
  const verb = change.kind === "install" ? "activation" : "deactivation";
  const proposed = change.kind === "install" ? `proposed=${shellQuote(change.proposedDir)}\n` : "";
  const enter =
    change.kind === "install"
      ? `manifest=$(cat)
if ! (cd "$proposed" && printf '%s\\n' "$manifest" | sha256sum --check --quiet --strict -) >/dev/null 2>&1; then
  fail "the files under $proposed are not the ones this run installed (sha256 differs); nothing was changed"
fi
# A fresh server has no live folder before its first activation.
mkdir -p "$live" || fail "cannot create $live"`
      : `# Never activated (a first up that failed): nothing to remove.
[ -d "$live" ] || exit 0`;
  const apply =
    change.kind === "install"
      ? `install_one() {
  dir=$(dirname "$live/$1")
  mkdir -p "$dir" || return 1
  tmp=$(mktemp "$dir/.$(basename "$1").XXXXXX") || return 1
  if ! { cp -p "$proposed/$1" "$tmp" && mv -f "$tmp" "$live/$1"; }; then rm -f "$tmp"; return 1; fi
}
for f in ${list}; do
  install_one "$f" || { restore; fail "cannot install $live/$f; the previous files are back"; }
done`
      : `for f in ${list}; do
  rm -f "$live/$f" || { restore; fail "cannot remove $live/$f; the previous files are back"; }
done`;
  const check =
    change.kind === "remove" && !change.verify
      ? `# The proxy container is gone by now (it is deleted before its configuration): nothing to check or reload.
echo "proxy ${verb} of $label: files removed"`
      : `if ! output=$(${a.commands.test} 2>&1); then
  restore
  fail "nginx -t refused the new configuration; the previous files are back and keep serving.
$output"
fi
if ! output=$(${a.commands.reload} 2>&1); then
  restore
  fail "nginx did not reload; the previous files are back.
$output"
fi
echo "proxy ${verb} of $label: nginx -t passed, reloaded gracefully"`;
  return `set -u
label=${shellQuote(a.label)}
live=${shellQuote(a.liveDir)}
${proposed}fail() { printf '%s\\n' "proxy ${verb} of $label: $*" >&2; exit 1; }
exec 9>${shellQuote(a.lockPath)} || fail "cannot open the lock file"
flock -w 60 9 || fail "another activation still holds the lock after 60 s; nothing was changed"
${enter}
backup=$(mktemp -d "$live/.previous.XXXXXX") || fail "cannot create a backup directory under $live"
trap 'rm -rf "$backup"' EXIT
for f in ${list}; do
  if [ -e "$live/$f" ]; then
    if ! { mkdir -p "$backup/$(dirname "$f")" && cp -p "$live/$f" "$backup/$f"; }; then fail "cannot back up $live/$f; nothing was changed"; fi
  fi
done
restore() {
  for f in ${list}; do
    if [ -e "$backup/$f" ]; then mv -f "$backup/$f" "$live/$f"; else rm -f "$live/$f"; fi
  done
}
${apply}
${check}
`;
}
