#!/bin/sh
# Entrypoint of the nginx test image (test/docker/images/CONTRACTS.md): as the
# official image's, it runs the executable *.sh files of /docker-entrypoint.d/
# in name order when the command is nginx, quietly with
# NGINX_ENTRYPOINT_QUIET_LOGS set, then execs the command.
set -e

entrypoint_log() {
  if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
    echo "$@"
  fi
}

if [ "${1:-}" = nginx ] || [ "${1:-}" = nginx-debug ]; then
  scripts=$(find /docker-entrypoint.d/ -mindepth 1 -maxdepth 1 -type f -name '*.sh' 2>/dev/null | sort)
  if [ -n "$scripts" ]; then
    entrypoint_log "$0: /docker-entrypoint.d/ is not empty, will attempt to perform configuration"
    for f in $scripts; do
      if [ -x "$f" ]; then
        entrypoint_log "$0: Launching $f"
        "$f"
      else
        entrypoint_log "$0: Ignoring $f, not executable"
      fi
    done
    entrypoint_log "$0: Configuration complete; ready for start up"
  else
    entrypoint_log "$0: No files found in /docker-entrypoint.d/, skipping configuration"
  fi
fi

exec "$@"
