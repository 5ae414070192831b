#!/bin/bash
# docker-entrypoint.sh of the MariaDB test image: the part of the official
# mariadb image's contract (https://hub.docker.com/_/mariadb) this project
# relies on, over Debian's MariaDB server. See test/docker/images/CONTRACTS.md.
#
# On an empty data directory: mariadb-install-db, a temporary server without
# networking, time zones, root (MARIADB_ROOT_PASSWORD[_FILE], or
# MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, or MARIADB_RANDOM_ROOT_PASSWORD) for
# localhost and MARIADB_ROOT_HOST (%), the healthcheck users and
# $DATADIR/.my-healthcheck.cnf, MARIADB_DATABASE, MARIADB_USER with
# MARIADB_PASSWORD[_FILE] (all on the database), then
# /docker-entrypoint-initdb.d/ (*.sh run or sourced, *.sql, *.sql.gz,
# *.sql.xz) as the mysql user, and the temporary server stops. Every MYSQL_*
# name works as its MARIADB_* twin. Started as root, it prepares the
# directories and runs itself again as mysql (uid 999); the server runs as
# PID 1.
set -eo pipefail
shopt -s nullglob

mysql_log() {
  local type=$1
  shift
  printf '%s [%s] [Entrypoint]: %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S+00:00')" "$type" "$*"
}
mysql_note() { mysql_log Note "$@"; }
mysql_warn() { mysql_log Warn "$@" >&2; }
mysql_error() {
  mysql_log ERROR "$@" >&2
  exit 1
}

# file_env VAR [DEFAULT]: VAR's value from VAR or from the file VAR_FILE names (not both).
file_env() {
  local var=$1 file_var="${1}_FILE" def=${2:-} val
  if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
    mysql_error "Both $var and $file_var are set (but are exclusive)"
  fi
  val=$def
  if [ -n "${!var:-}" ]; then
    val=${!var}
  elif [ -n "${!file_var:-}" ]; then
    [ -r "${!file_var}" ] || mysql_error "$file_var names ${!file_var}, which $(id -un) cannot read"
    val=$(<"${!file_var}")
  fi
  export "$var"="$val"
  unset "$file_var"
}

# MARIADB_<name> from itself, its _FILE, or MYSQL_<name>[_FILE]; both names end up equal.
mariadb_file_env() {
  local mysql="MYSQL_$1" maria="MARIADB_$1"
  file_env "$mysql" "${2:-}"
  file_env "$maria" "${!mysql}"
  export "$mysql"="${!maria}"
}

want_help() {
  local arg
  for arg; do
    case "$arg" in
      -'?' | --help | --print-defaults | -V | --version) return 0 ;;
    esac
  done
  return 1
}

# A value of the server's effective configuration (config files, then arguments).
get_config() {
  awk -v conf="$1" '$1 == conf && /^[^ \t]/ { sub(/^[^ \t]+[ \t]+/, ""); print; exit }' <<<"$SERVER_HELP"
}

setup_env() {
  local errors
  if ! SERVER_HELP=$("$@" --verbose --help 2>/tmp/.mariadbd-help.err); then
    errors=$(cat /tmp/.mariadbd-help.err)
    mysql_error "mariadbd failed while attempting to check config: $* --verbose --help: $errors"
  fi
  rm -f /tmp/.mariadbd-help.err
  DATADIR=$(get_config datadir)
  DATADIR=${DATADIR%/}
  SOCKET=$(get_config socket)
  PORT=$(get_config port)

  mariadb_file_env ROOT_HOST '%'
  mariadb_file_env DATABASE
  mariadb_file_env USER
  mariadb_file_env PASSWORD
  mariadb_file_env ROOT_PASSWORD
  : "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:=${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
  : "${MARIADB_RANDOM_ROOT_PASSWORD:=${MYSQL_RANDOM_ROOT_PASSWORD:-}}"
  : "${MARIADB_INITDB_SKIP_TZINFO:=${MYSQL_INITDB_SKIP_TZINFO:-}}"
  export MARIADB_ALLOW_EMPTY_ROOT_PASSWORD MARIADB_RANDOM_ROOT_PASSWORD MARIADB_INITDB_SKIP_TZINFO
  export MYSQL_ALLOW_EMPTY_PASSWORD=$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD MYSQL_RANDOM_ROOT_PASSWORD=$MARIADB_RANDOM_ROOT_PASSWORD

  DATABASE_ALREADY_EXISTS=
  if [ -d "$DATADIR/mysql" ]; then
    DATABASE_ALREADY_EXISTS=true
  fi
}

# Runs the client as root over the socket, with the root password unless told not to.
docker_process_sql() {
  local password=${MARIADB_ROOT_PASSWORD:-}
  if [ "${1:-}" = --dont-use-mysql-root-password ]; then
    shift
    password=
  fi
  local database=()
  if [ -n "${MARIADB_DATABASE:-}" ]; then
    database=(--database="$MARIADB_DATABASE")
  fi
  MYSQL_PWD=$password mariadb --protocol=socket -uroot -hlocalhost --socket="$SOCKET" "${database[@]}" "$@"
}

# SQL string literal contents: backslash, newline and quote escaped.
sql_escape() {
  local s=${1//\\/\\\\}
  s=${s//$'\n'/\\n}
  printf '%s' "${s//\'/\\\'}"
}

random_password() {
  tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32
}

temp_server_start() {
  "$@" --skip-networking --default-time-zone=SYSTEM --socket="$SOCKET" --loose-wsrep_on=OFF \
    --expire-logs-days=0 --loose-innodb_buffer_pool_load_at_startup=0 &
  MARIADB_PID=$!
  mysql_note "Waiting for server startup"
  local i
  for i in {30..0}; do
    if docker_process_sql --dont-use-mysql-root-password --database=mysql <<<'SELECT 1' &>/dev/null; then
      break
    fi
    sleep 1
  done
  if [ "$i" = 0 ]; then
    mysql_error "Unable to start server."
  fi
}

temp_server_stop() {
  kill "$MARIADB_PID"
  wait "$MARIADB_PID"
}

healthcheck_users_sql() {
  local password escaped host
  password=$(random_password)
  escaped=$(sql_escape "$password")
  for host in 127.0.0.1 ::1 localhost; do
    echo "CREATE USER IF NOT EXISTS healthcheck@'$host' IDENTIFIED BY '$escaped';"
    echo "SET PASSWORD FOR healthcheck@'$host' = PASSWORD('$escaped');"
    echo "GRANT ${MARIADB_HEALTHCHECK_GRANTS:-USAGE} ON *.* TO healthcheck@'$host';"
  done
  (
    umask 0077
    printf '[mariadb-client]\nport=%s\nsocket=%s\nuser=healthcheck\npassword=%s\nprotocol=tcp\n' "$PORT" "$SOCKET" "$password" >"$DATADIR/.my-healthcheck.cnf"
  )
}

setup_db() {
  if [ -z "$MARIADB_INITDB_SKIP_TZINFO" ]; then
    mariadb-tzinfo-to-sql --skip-write-binlog /usr/share/zoneinfo | docker_process_sql --dont-use-mysql-root-password --database=mysql
  fi
  if [ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
    MARIADB_ROOT_PASSWORD=$(random_password)
    export MARIADB_ROOT_PASSWORD MYSQL_ROOT_PASSWORD=$MARIADB_ROOT_PASSWORD
    mysql_note "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
  fi
  local root_escaped root_create='' create_database='' create_user='' grants=''
  root_escaped=$(sql_escape "${MARIADB_ROOT_PASSWORD:-}")
  if [ -n "$MARIADB_ROOT_HOST" ] && [ "$MARIADB_ROOT_HOST" != localhost ]; then
    root_create="CREATE USER 'root'@'${MARIADB_ROOT_HOST}' IDENTIFIED BY '${root_escaped}';
GRANT ALL ON *.* TO 'root'@'${MARIADB_ROOT_HOST}' WITH GRANT OPTION;
GRANT PROXY ON ''@'%' TO 'root'@'${MARIADB_ROOT_HOST}' WITH GRANT OPTION;"
  fi
  if [ -n "$MARIADB_DATABASE" ]; then
    mysql_note "Creating database ${MARIADB_DATABASE}"
    create_database="CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
  fi
  if [ -n "$MARIADB_USER" ] && [ -n "$MARIADB_PASSWORD" ]; then
    mysql_note "Creating user ${MARIADB_USER}"
    create_user="CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY '$(sql_escape "$MARIADB_PASSWORD")';"
    if [ -n "$MARIADB_DATABASE" ]; then
      mysql_note "Giving user ${MARIADB_USER} access to schema ${MARIADB_DATABASE}"
      grants="GRANT ALL ON \`${MARIADB_DATABASE//_/\\_}\`.* TO '$MARIADB_USER'@'%';"
    fi
  fi
  local healthcheck
  healthcheck=$(healthcheck_users_sql)
  mysql_note "Securing system users (equivalent to running mysql_secure_installation)"
  docker_process_sql --dont-use-mysql-root-password --database=mysql --binary-mode <<-EOSQL
	SET @orig_sql_log_bin= @@SESSION.SQL_LOG_BIN;
	SET @@SESSION.SQL_LOG_BIN=0;
	SET @@SESSION.SQL_MODE=REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');
	DROP USER IF EXISTS root@'127.0.0.1', root@'::1';
	EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\'', @@hostname,'\'');
	SET PASSWORD FOR 'root'@'localhost'= PASSWORD('${root_escaped}');
	${root_create}
	${healthcheck}
	SET @@SESSION.SQL_LOG_BIN=@orig_sql_log_bin;
	${create_database}
	${create_user}
	${grants}
	EOSQL
}

process_init_files() {
  local f
  for f; do
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then
          mysql_note "$0: running $f"
          "$f"
        else
          mysql_note "$0: sourcing $f"
          # shellcheck disable=SC1090
          . "$f"
        fi
        ;;
      *.sql)
        mysql_note "$0: running $f"
        docker_process_sql <"$f"
        ;;
      *.sql.gz)
        mysql_note "$0: running $f"
        gunzip -c "$f" | docker_process_sql
        ;;
      *.sql.xz)
        mysql_note "$0: running $f"
        xzcat "$f" | docker_process_sql
        ;;
      *.sql.zst | *.tar.gz | *.tar.xz | *.tar.zst)
        mysql_error "$0: $f: not supported by this test image (test/docker/images/CONTRACTS.md)"
        ;;
      *) mysql_warn "$0: ignoring $f" ;;
    esac
  done
}

init_database() {
  if [ -z "${MARIADB_ROOT_PASSWORD:-}" ] && [ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ] && [ -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
    mysql_error $'Database is uninitialized and password option is not specified\n\tYou need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD'
  fi
  # An unreadable init folder fails here, before anything is half-initialised.
  ls /docker-entrypoint-initdb.d/ >/dev/null

  mysql_note "Initializing database files"
  local server_args=() arg
  for arg in "${@:2}"; do
    if [[ $arg =~ [[:space:]] ]]; then
      mysql_warn "Not passing argument '$arg' to mariadb-install-db because mariadb-install-db does not support arguments with whitespace."
    else
      server_args+=("$arg")
    fi
  done
  mariadb-install-db --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal "${server_args[@]}" \
    --skip-test-db --old-mode='UTF8_IS_UTF8MB3' --default-time-zone=SYSTEM --enforce-storage-engine= \
    --skip-log-bin --expire-logs-days=0 \
    --loose-innodb_buffer_pool_load_at_startup=0 --loose-innodb_buffer_pool_dump_at_shutdown=0
  mysql_note "Database files initialized"

  mysql_note "Starting temporary server"
  temp_server_start "$@"
  mysql_note "Temporary server started."
  setup_db
  process_init_files /docker-entrypoint-initdb.d/*
  mysql_note "Stopping temporary server"
  temp_server_stop
  mysql_note "Temporary server stopped"
  echo
  mysql_note "MariaDB init process done. Ready for start up."
  echo
}

if [ "${1:0:1}" = '-' ]; then
  set -- mariadbd "$@"
fi

# MariaDB 11.2+'s --character-set-collations (the program passes it to 11.2 and
# later): Debian's 10.11 has no such variable and would refuse to start, so the
# test image drops it, saying so (CONTRACTS.md: not implemented).
if [ "$1" = mariadbd ] || [ "$1" = mysqld ]; then
  kept=()
  for arg in "$@"; do
    case $arg in
      --character-set-collations=*) mysql_warn "test image: $arg dropped: MariaDB $(mariadbd --version | grep -o '[0-9]*\.[0-9]*\.[0-9]*' | head -n 1) inside has no character_set_collations (11.2+)" ;;
      *) kept+=("$arg") ;;
    esac
  done
  set -- "${kept[@]}"
fi

if { [ "$1" = mariadbd ] || [ "$1" = mysqld ]; } && ! want_help "$@"; then
  mysql_note "Entrypoint script for the MariaDB test image ($(mariadbd --version)) started."
  setup_env "$@"
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$DATADIR"
    find "$DATADIR" \! -user mysql -exec chown mysql:mysql '{}' +
    find "${SOCKET%/*}" -maxdepth 0 \! -user mysql -exec chown mysql:mysql '{}' \;
    mysql_note "Switching to dedicated user 'mysql'"
    exec gosu mysql "${BASH_SOURCE[0]}" "$@"
  fi
  if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
    init_database "$@"
  fi
  # As the official image does from 11.4.12 on: the passwords it read never reach the server's environment.
  for password_var in ROOT_ REPLICATION_ ''; do
    unset "MARIADB_${password_var}PASSWORD" "MARIADB_${password_var}PASSWORD_HASH" "MYSQL_${password_var}PASSWORD"
  done
  unset MYSQL_ROOT_HOST MARIADB_ROOT_HOST
fi

exec "$@"
