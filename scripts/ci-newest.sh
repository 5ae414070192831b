#!/usr/bin/env bash
# usage: bash scripts/ci-newest.sh <remote> <branch> <commit>
#
# Whether <commit>, the one a deploy job was started for, is still the newest
# on <branch> of <remote>: `newest=true` or `newest=false`, appended to
# $GITHUB_OUTPUT for the job's later steps.
#
# Why: a deploy job waits for its concurrency group, and prod for its
# reviewer, as long as that takes. A run started before a later push would
# then put a stack back to its older commit: staging first, and prod once
# someone approves the older run. A later run deploys everything before it
# too (a stack file is the whole release), so an older one stands down, saying
# which commit deploys instead.
#
# With GITHUB_TOKEN set, git authenticates with it as actions/checkout does
# (an http.extraheader), handed over in GIT_CONFIG_* variables: never on a
# command line, never in .git/config (checkouts keep no credentials).
# A remote that cannot be read stops the job (exit 1): a deploy that cannot
# tell whether it is stale does not run.
set -euo pipefail

if (( $# != 3 )) || [[ -z ${GITHUB_OUTPUT:-} ]]; then
  echo "usage: GITHUB_OUTPUT=<file> bash scripts/ci-newest.sh <remote> <branch> <commit>" >&2
  exit 2
fi
remote=$1 branch=$2 commit=$3
if [[ ! $commit =~ ^[0-9a-f]{40}$ ]]; then
  echo "ci-newest: '$commit' is not a full commit id" >&2
  exit 2
fi

if [[ -n ${GITHUB_TOKEN:-} ]]; then
  # printf is bash's own: the token is in no process's arguments.
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraheader
  GIT_CONFIG_VALUE_0="AUTHORIZATION: basic $(printf 'x-access-token:%s' "$GITHUB_TOKEN" | base64 -w0)"
  export GIT_CONFIG_VALUE_0
fi

# No prompt for a password: a remote that wants one is unreadable here.
if ! answer=$(GIT_TERMINAL_PROMPT=0 git ls-remote --exit-code "$remote" "refs/heads/$branch" 2>&1); then
  echo "::error title=Cannot read ${branch}::git ls-remote of ${branch} at ${remote} failed, so whether ${commit} is still its newest commit is unknown; not deploying: $(tr '\n' ' ' <<<"$answer")"
  exit 1
fi
head=${answer%%[[:space:]]*}

if [[ $head == "$commit" ]]; then
  echo "newest=true" >>"$GITHUB_OUTPUT"
else
  echo "::notice title=Not deployed: ${branch} has moved on::${branch} is at ${head} now; this run's ${commit} is not deployed here, the run of ${head} deploys it with everything before it"
  echo "newest=false" >>"$GITHUB_OUTPUT"
fi
