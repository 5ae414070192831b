# --- shared by backup.sh and restore-drill.sh (infra/backup/common.bash) ---
# Expects from the rendered header: STACK, BUCKET, REGION, TIMEZONE, SCHEDULE (its own),
# LOG_TAG, TARGETS, and the overridable paths credentials_file, ping_url_file,
# lock_file, endpoint_url.

log() {
  # $1: syslog level (info, warning, err); the rest: the message.
  local level=$1
  shift
  # No syslog socket (a container, a test machine) must not fail a backup.
  logger -t "$LOG_TAG" -p "user.$level" -- "$*" 2>/dev/null || true
  printf '%s %s[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$LOG_TAG" "$level" "$*" >&2
}

# Calls the optional health-check URL (healthchecks.io style: <url> on success,
# <url>/fail on failure, <url>/log to record without changing the check's state).
# The URL is read from a 0600 file and handed to curl on stdin, so it never
# appears on a command line (ps) or in a log.
ping_health_check() {
  local suffix=$1 url
  [[ -r $ping_url_file ]] || return 0
  url=$(tr -d '\r\n' <"$ping_url_file")
  [[ -n $url ]] || return 0
  if ! printf 'url = "%s%s"\n' "$url" "$suffix" | curl --silent --show-error --fail --max-time 10 --retry 2 --output /dev/null --config - 2>/dev/null; then
    log warning "could not reach the health-check URL (from $ping_url_file)"
  fi
}

require_tools() {
  local tool missing=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if ((${#missing[@]} > 0)); then
    log err "$(basename "$0") cannot run: ${missing[*]} not installed on $(hostname) (Debian: apt-get install awscli python3-boto3 zstd jq curl perl util-linux)"
    ping_health_check /fail
    exit 3
  fi
}

# The server's own S3 identity, from its 0600 credentials file only: variables
# left in the environment must not silently replace it (the AWS CLI reads the
# file through AWS_SHARED_CREDENTIALS_FILE, s3-put.py is handed its path).
use_server_credentials() {
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE
  if [[ ! -r $credentials_file ]]; then
    log err "$(basename "$0") cannot run: the S3 credentials file $credentials_file is missing or unreadable"
    ping_health_check /fail
    exit 3
  fi
  export AWS_SHARED_CREDENTIALS_FILE=$credentials_file
  export AWS_CONFIG_FILE=/dev/null
  export AWS_DEFAULT_REGION=$REGION
  export AWS_RETRY_MODE=standard AWS_MAX_ATTEMPTS=3
}

# Runs a database client command next to the database. On the server that is
# `docker exec` into the database container (MySQL/MariaDB as root with the
# password from the container's own secret file); BACKUP_DB_EXEC names another
# program that gets the container name and the command (the tests run local
# servers this way, with this same script). With link_password_file set (a
# replica on another server, dumped over the link), the client's password is
# read from that file in the container, into the engine's variable, never
# onto a command line.
db_exec() {
  local container=$1 engine=$2
  shift 2
  if [[ -n ${link_password_file:-} ]]; then
    local variable=MYSQL_PWD
    [[ $engine == postgres ]] && variable=PGPASSWORD
    # A client whose output stops for link_stall_seconds is stopped (replica-source.bash); 0 for a session that waits for its input.
    if ((${link_stall_seconds:-0} > 0)); then
      set -- perl -e "$LINK_STALL_GUARD" "$link_stall_seconds" "$@"
    fi
    # shellcheck disable=SC2016 # expanded inside the container, not here
    set -- sh -c 'password=$(cat "$2") && [ -n "$password" ] || { echo "no password in $2" >&2; exit 1; }; export "$1=$password"; shift 2; exec "$@"' \
      db-link "$variable" "$link_password_file" "$@"
  fi
  if [[ -n ${BACKUP_DB_EXEC:-} ]]; then
    "$BACKUP_DB_EXEC" "$container" "$@"
  elif [[ -n ${link_client_image:-} ]]; then
    # A database on another server with no container here: a one-off client (replica-source.bash).
    link_client "$@"
  elif [[ $engine == postgres || -n ${link_password_file:-} ]]; then
    docker exec -i "$container" "$@"
  else
    # shellcheck disable=SC2016 # expanded inside the container, not here
    docker exec -i "$container" sh -c 'MYSQL_PWD="$(cat /run/secrets/db_root_password)" exec "$@"' db-exec "$@"
  fi
}

# Cron has no time zone of its own on Debian: the cron entry runs every
# minute and this decides whether SCHEDULE (numeric five fields, rendered from
# the stack config) is due now in TIMEZONE. BACKUP_NOW (epoch seconds) is for tests.
cron_field_matches() {
  local value=$((10#$1)) field=$2 min=$3 max=$4 item items range step lo hi
  # Split on commas without pathname expansion: an unquoted `*` would expand
  # to the names of the files in cron's working directory.
  IFS=, read -r -a items <<<"$field"
  for item in "${items[@]}"; do
    range=${item%%/*}
    step=1
    [[ $item == */* ]] && step=${item#*/}
    if [[ $range == '*' ]]; then
      lo=$min hi=$max
    elif [[ $range == *-* ]]; then
      lo=${range%-*} hi=${range#*-}
    else
      lo=$range hi=$range
      [[ $item == */* ]] && hi=$max
    fi
    if ((value >= 10#$lo && value <= 10#$hi && (value - 10#$lo) % step == 0)); then
      return 0
    fi
  done
  return 1
}

schedule_is_due() {
  local schedule=$1 now fields minute hour dom month dow
  now=${BACKUP_NOW:-$(date +%s)}
  read -r minute hour dom month dow <<<"$(TZ=$TIMEZONE date -d "@$now" '+%M %H %d %m %w')"
  read -r -a fields <<<"$schedule"
  cron_field_matches "$minute" "${fields[0]}" 0 59 || return 1
  cron_field_matches "$hour" "${fields[1]}" 0 23 || return 1
  cron_field_matches "$month" "${fields[3]}" 1 12 || return 1
  local dom_ok=1 dow_ok=1
  cron_field_matches "$dom" "${fields[2]}" 1 31 && dom_ok=0
  if cron_field_matches "$dow" "${fields[4]}" 0 7 || { ((10#$dow == 0)) && cron_field_matches 7 "${fields[4]}" 0 7; }; then
    dow_ok=0
  fi
  # cron's rule: when both day fields are restricted, either one matching is enough.
  if [[ ${fields[2]} != '*'* && ${fields[4]} != '*'* ]]; then
    ((dom_ok == 0 || dow_ok == 0))
  else
    ((dom_ok == 0 && dow_ok == 0))
  fi
}

# One run at a time per stack: a second run while one holds the lock is refused.
take_lock() {
  local what=$1
  mkdir -p "$(dirname "$lock_file")"
  exec {lock_fd}>>"$lock_file"
  if ! flock --nonblock "$lock_fd"; then
    log err "$what of stack $STACK refused: another run holds $lock_file"
    exit 75
  fi
}

# The client programs of MySQL and MariaDB images differ in name.
use_engine_tools() {
  if [[ $1 == mysql ]]; then CLIENT=mysql; else CLIENT=mariadb; fi
}
