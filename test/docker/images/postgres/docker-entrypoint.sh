#!/bin/bash
# docker-entrypoint.sh of the PostgreSQL test image: the part of the official
# postgres image's contract (https://hub.docker.com/_/postgres) this project
# relies on, over Debian's PostgreSQL. See test/docker/images/CONTRACTS.md.
#
# On an empty $PGDATA: initdb with POSTGRES_USER (postgres) as superuser and
# POSTGRES_PASSWORD[_FILE] as its password, `host all all all <method>` in
# pg_hba.conf (POSTGRES_HOST_AUTH_METHOD, else the server's
# password_encryption), a temporary server on the socket only,
# POSTGRES_DB (default: the user's name), then /docker-entrypoint-initdb.d/
# (*.sh run or sourced, *.sql, *.sql.gz, *.sql.xz) as the postgres user, and
# the temporary server stops. Started as root, it prepares the directories
# and runs itself again as postgres (uid 999); the server runs as PID 1.
set -Eeo pipefail
shopt -s nullglob

# file_env VAR [DEFAULT]: VAR's value from VAR or from the file VAR_FILE names (not both).
file_env() {
  local var=$1 file_var="${1}_FILE" def=${2:-} val
  if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
    printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$file_var"
    exit 1
  fi
  val=$def
  if [ -n "${!var:-}" ]; then
    val=${!var}
  elif [ -n "${!file_var:-}" ]; then
    if [ ! -r "${!file_var}" ]; then
      printf >&2 'error: %s names %s, which %s cannot read\n' "$file_var" "${!file_var}" "$(id -un)"
      exit 1
    fi
    val=$(<"${!file_var}")
  fi
  export "$var"="$val"
  unset "$file_var"
}

want_help() {
  local arg
  for arg; do
    case "$arg" in
      -'?' | --help | --describe-config | -V | --version) return 0 ;;
    esac
  done
  return 1
}

setup_env() {
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  : "${POSTGRES_HOST_AUTH_METHOD:=}"
  DATABASE_ALREADY_EXISTS=
  if [ -s "$PGDATA/PG_VERSION" ]; then
    DATABASE_ALREADY_EXISTS=true
  fi
}

create_db_directories() {
  mkdir -p "$PGDATA"
  chmod 00700 "$PGDATA" || :
  mkdir -p /var/run/postgresql || :
  chmod 03775 /var/run/postgresql || :
  if [ "$(id -u)" = 0 ]; then
    find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
    find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
  fi
}

verify_minimum_env() {
  if [ -z "$POSTGRES_PASSWORD" ] && [ trust != "$POSTGRES_HOST_AUTH_METHOD" ]; then
    cat >&2 <<-'EOE'
		Error: Database is uninitialized and superuser password is not specified.
		       You must specify POSTGRES_PASSWORD to a non-empty value for the
		       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

		       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
		       connections without a password. This is *not* recommended.
	EOE
    exit 1
  fi
}

# psql as the superuser on the socket, ON_ERROR_STOP, in POSTGRES_DB.
docker_process_sql() {
  local runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
  if [ -n "$POSTGRES_DB" ]; then
    runner+=(--dbname "$POSTGRES_DB")
  fi
  PGHOST='' PGHOSTADDR='' "${runner[@]}" "$@"
}

# POSTGRES_INITDB_ARGS is a string of options, split as a shell would; the
# password reaches initdb through a pipe (a process substitution, which lives
# only as long as the one command it is written in).
init_database_dir() {
  if [ -n "$POSTGRES_PASSWORD" ]; then
    eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"
  else
    eval 'initdb --username="$POSTGRES_USER" '"$POSTGRES_INITDB_ARGS"
  fi
}

setup_hba_conf() {
  if [ "$1" = postgres ]; then
    shift
  fi
  local auth
  auth=$(postgres -C password_encryption "$@")
  : "${POSTGRES_HOST_AUTH_METHOD:=$auth}"
  {
    printf '\n'
    if [ trust = "$POSTGRES_HOST_AUTH_METHOD" ]; then
      printf '# warning trust is enabled for all connections\n'
    fi
    printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
  } >>"$PGDATA/pg_hba.conf"
}

temp_server_start() {
  if [ "$1" = postgres ]; then
    shift
  fi
  set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
  PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

temp_server_stop() {
  PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
}

setup_db() {
  local db=$POSTGRES_DB exists
  exists=$(POSTGRES_DB='' docker_process_sql --dbname postgres --set db="$db" --tuples-only <<<"SELECT 1 FROM pg_database WHERE datname = :'db' ;")
  if [ -z "${exists//[[:space:]]/}" ]; then
    POSTGRES_DB='' docker_process_sql --dbname postgres --set db="$db" <<<'CREATE DATABASE :"db" ;'
    echo
  fi
}

process_init_files() {
  local f
  echo
  for f; do
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then
          printf '%s: running %s\n' "$0" "$f"
          "$f"
        else
          printf '%s: sourcing %s\n' "$0" "$f"
          # shellcheck disable=SC1090
          . "$f"
        fi
        ;;
      *.sql)
        printf '%s: running %s\n' "$0" "$f"
        docker_process_sql -f "$f"
        echo
        ;;
      *.sql.gz)
        printf '%s: running %s\n' "$0" "$f"
        gunzip -c "$f" | docker_process_sql
        echo
        ;;
      *.sql.xz)
        printf '%s: running %s\n' "$0" "$f"
        xzcat "$f" | docker_process_sql
        echo
        ;;
      *.sql.zst)
        printf >&2 '%s: %s: not supported by this test image (test/docker/images/CONTRACTS.md)\n' "$0" "$f"
        exit 1
        ;;
      *) printf '%s: ignoring %s\n' "$0" "$f" ;;
    esac
    echo
  done
}

if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi

if [ "$1" = postgres ] && ! want_help "$@"; then
  setup_env
  create_db_directories
  if [ "$(id -u)" = 0 ]; then
    exec gosu postgres "${BASH_SOURCE[0]}" "$@"
  fi
  if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
    verify_minimum_env
    # An unreadable init folder fails here, before anything is half-initialised.
    ls /docker-entrypoint-initdb.d/ >/dev/null
    init_database_dir
    setup_hba_conf "$@"
    export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
    temp_server_start "$@"
    setup_db
    process_init_files /docker-entrypoint-initdb.d/*
    temp_server_stop
    unset PGPASSWORD
    echo
    echo 'PostgreSQL init process complete; ready for start up.'
    echo
  else
    echo
    echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
    echo
  fi
fi

exec "$@"
