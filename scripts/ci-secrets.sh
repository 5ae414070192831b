#!/usr/bin/env bash
# usage: bash scripts/ci-secrets.sh <environment> <NAME>...
#
# The first step of every CI job that takes secrets: each NAME must be set and
# not empty in this step's environment (the job maps each one from
# `secrets.NAME`). GitHub expands a secret the environment lacks to an empty
# string, and nothing downstream says so: pulumi/actions turns the failed login
# of an empty PULUMI_BACKEND_URL into a warning and the command then fails on
# something else; an empty DEPLOY_SSH_KEY loads no key and the up fails at its
# first SSH connection. Here every missing one is named, with the environment
# to add it to, before anything runs. Values are never printed.
set -euo pipefail

if (( $# < 2 )); then
  echo "usage: bash scripts/ci-secrets.sh <environment> <NAME>..." >&2
  exit 2
fi
environment=$1
shift

missing=()
for name in "$@"; do
  if [[ ! $name =~ ^[A-Z][A-Z0-9_]*$ ]]; then
    echo "ci-secrets: '$name' is not a secret's name (A-Z, 0-9, _)" >&2
    exit 2
  fi
  if [[ -z ${!name:-} ]]; then
    missing+=("$name")
    echo "::error title=Missing secret ${name}::${name} is empty or not set: add it to the GitHub environment \"${environment}\" (Settings → Environments → ${environment}; README, \"CI: GitHub Actions\")"
  fi
done

# A backend URL without a scheme would make `pulumi login` try it as a Pulumi
# Cloud address; only the URL's scheme is printed, never the value.
if [[ " $* " == *" PULUMI_BACKEND_URL "* && -n ${PULUMI_BACKEND_URL:-} && ! ${PULUMI_BACKEND_URL} =~ ^[a-z0-9]+:// ]]; then
  missing+=(PULUMI_BACKEND_URL)
  echo "::error title=Bad secret PULUMI_BACKEND_URL::PULUMI_BACKEND_URL in the GitHub environment \"${environment}\" is not a URL (expected e.g. s3://<bucket>?region=<region>)"
fi

if (( ${#missing[@]} > 0 )); then
  echo "ci-secrets: ${#missing[@]} secret(s) of the \"${environment}\" environment missing or wrong: ${missing[*]}; nothing was run" >&2
  exit 1
fi
echo "ci-secrets: the \"${environment}\" environment has all $# secrets this job takes"
