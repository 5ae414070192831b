# --- shared by the replica's scripts (infra/replica/common.bash) ---
# Expects from the rendered header: STACK, ENGINE, CLIENT, DATABASE, PRIMARY, REPLICA,
# PRIMARY_HOST, PRIMARY_PORT, REPLICA_HOST, REPLICA_PORT, SEEDING_USER, MONITOR_USER, SLOT,
# MAX_LAG_SECONDS, LOG_TAG, LINK_CONNECT_SECONDS, link_query_stall_seconds, link_dump_stall_seconds,
# LINK_STALL_GUARD (infra/link/stall-guard.bash),
# THIS_SERVER (both | primary | replica: which containers run here), and
# secrets_dir (where the containers see the password files).

replica_log() {
  logger -t "$LOG_TAG" -p "user.$1" -- "${*:2}" 2>/dev/null || true
  printf '%s %s[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$LOG_TAG" "$1" "${*:2}" >&2
}

# Runs a command in database container $1: `docker exec` on the server;
# REPLICA_DB_EXEC names another program that gets the container and the
# command (the tests point the same scripts at local servers this way).
in_container() {
  local container=$1
  shift
  if [[ -n ${REPLICA_DB_EXEC:-} ]]; then
    "$REPLICA_DB_EXEC" "$container" "$@"
  else
    docker exec -i "$container" "$@"
  fi
}

# Whether database container $1 runs (paused or restarting included: either
# takes writes again by itself). A server that does not answer SQL may still
# run, and go on taking the app's writes through the connections it has:
# only one whose container does not run is down. `docker inspect` on the
# server; REPLICA_DB_RUNNING names another program asked the same for the
# tests' local servers.
container_runs() {
  if [[ -n ${REPLICA_DB_RUNNING:-} ]]; then
    "$REPLICA_DB_RUNNING" "$1"
  else
    [[ $(docker inspect --format '{{.State.Running}}' "$1" 2>/dev/null) == true ]]
  fi
}

# SQL from stdin, run as the engine's administrator in container $1 (extra
# client options after it). In the SQL, @REPLICATION_PASSWORD@ stands for the
# replication password (and @BACKUP_PASSWORD@ for the backup's login over
# the link, and, MariaDB/MySQL, @SEEDING_PASSWORD@ and @MONITOR_PASSWORD@ for
# the seeding and monitoring logins', whose files must then be there): each
# is read from its file inside the container, only when the SQL names it, and
# put in by bash's own expansion, so never on a command line; an empty or
# missing file stops it (never a login with an empty password).
# shellcheck disable=SC2016 # expanded inside the container, not here
admin_sql() {
  local container=$1
  shift
  if [[ $ENGINE == postgres ]]; then
    in_container "$container" bash -c 'sql=$(cat)
      for tag in REPLICATION:replication_password BACKUP:replica_backup_password; do
        file="$1/${tag#*:}" tag="@${tag%%:*}_PASSWORD@"
        if [[ $sql == *"$tag"* ]]; then secret=$(cat "$file") && [[ -n $secret ]] || { echo "no password in $file" >&2; exit 1; }; sql=${sql//"$tag"/$secret}; fi
      done
      shift; printf "%s\n" "$sql" | exec "$@"' \
      admin-sql "$secrets_dir" psql -X -q -A -t -v ON_ERROR_STOP=1 -U postgres -d "$DATABASE" "$@"
  else
    in_container "$container" bash -c 'sql=$(cat)
      for tag in REPLICATION:replication_password SEEDING:replica_seed_password MONITOR:replica_monitor_password BACKUP:replica_backup_password; do
        file="$1/${tag#*:}" tag="@${tag%%:*}_PASSWORD@"
        if [[ $sql == *"$tag"* ]]; then secret=$(cat "$file") && [[ -n $secret ]] || { echo "no password in $file" >&2; exit 1; }; sql=${sql//"$tag"/$secret}; fi
      done
      export MYSQL_PWD="$(cat "$1/db_root_password")"; shift; printf "%s\n" "$sql" | exec "$@"' \
      admin-sql "$secrets_dir" "$CLIENT" -uroot --batch --skip-column-names "$@"
  fi
}

# The client over the link (primary_sql, replica_sql below): under the link's
# guard (infra/link/stall-guard.bash), which stops it once nothing has come
# for link_query_stall_seconds, and with a bound on its connection, so that a
# peer whose server lost power makes a query fail in under a minute instead
# of waiting for TCP's two hours (status, and the backup's check with it).
LINK_CLIENT=(perl -e "$LINK_STALL_GUARD" "$link_query_stall_seconds" "$CLIENT" "--connect-timeout=$LINK_CONNECT_SECONDS")

# SQL from stdin on the primary: as its administrator in its container; on a
# replica's own server (THIS_SERVER=replica), from inside the replica's
# container over the link as the seeding login, which can read the primary's
# position but change nothing (its password read from its file in there).
# shellcheck disable=SC2016 # expanded inside the container, not here
primary_sql() {
  if [[ $THIS_SERVER == replica ]]; then
    in_container "$REPLICA" bash -c 'export MYSQL_PWD="$(cat "$1/replica_seed_password")"; shift; exec "$@"' \
      primary-sql "$secrets_dir" "${LINK_CLIENT[@]}" -h "$PRIMARY_HOST" -P "$PRIMARY_PORT" -u "$SEEDING_USER" --batch --skip-column-names
  else
    admin_sql "$PRIMARY"
  fi
}

# SQL from stdin on the replica: as its administrator in its container; from
# the primary's server of a replica elsewhere (THIS_SERVER=primary), from
# inside the primary's container over the link, by a login that can read but
# change nothing: MariaDB/MySQL the monitoring login (the replica's state),
# PostgreSQL the backup's role (a promoted standby's role: status).
# shellcheck disable=SC2016,SC2120 # expanded inside the container, not here; options come through capture
replica_sql() {
  if [[ $THIS_SERVER == primary && $ENGINE == postgres ]]; then
    in_container "$PRIMARY" bash -c 'export PGPASSWORD="$(cat "$1/replica_backup_password")" PGCONNECT_TIMEOUT="$2"; shift 2; exec "$@"' \
      replica-sql "$secrets_dir" "$LINK_CONNECT_SECONDS" perl -e "$LINK_STALL_GUARD" "$link_query_stall_seconds" \
      psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$REPLICA_HOST" -p "$REPLICA_PORT" -U "$BACKUP_USER" -d "$DATABASE" "$@"
  elif [[ $THIS_SERVER == primary ]]; then
    in_container "$PRIMARY" bash -c 'export MYSQL_PWD="$(cat "$1/replica_monitor_password")"; shift; exec "$@"' \
      replica-sql "$secrets_dir" "${LINK_CLIENT[@]}" -h "$REPLICA_HOST" -P "$REPLICA_PORT" -u "$MONITOR_USER" --batch --skip-column-names "$@"
  else
    admin_sql "$REPLICA" "$@"
  fi
}

# How far the replica is behind, as one JSON object on stdout:
#   {healthy, lagSeconds (null when unknown), behind, unit ("transactions" |
#    "bytes"), primaryPosition, replicaPosition, reason (when not healthy)}
# MariaDB/MySQL: GTID positions (primary @@gtid_binlog_pos, replica
# @@gtid_slave_pos) and the replica's threads; PostgreSQL: WAL positions
# (primary pg_current_wal_lsn, replica replay LSN), the WAL receiver and replay;
# from the primary's server of a standby elsewhere, the primary's own view of it.
replication_state() {
  if [[ $ENGINE == postgres && $THIS_SERVER == primary ]]; then
    postgres_state_from_primary
  elif [[ $ENGINE == postgres ]]; then
    postgres_replication_state
  else
    mariadb_replication_state
  fi
}

# capture <variable> <command…>: the command's stdout into the variable; when
# it fails, its stderr instead (the reason to report). Its stderr never joins a
# value it succeeded with: a MariaDB 11.4+ client connecting over TCP with the
# password in MYSQL_PWD (the link's logins) warns on stderr ("option
# --ssl-verify-server-cert is disabled, because of an insecure passwordless
# login") and still answers, as psql does ("WARNING: database … has a
# collation version mismatch" after an image's C library changed); the
# warning goes to this script's stderr, the log.
capture() {
  local capture_into=$1 capture_err capture_out capture_status=0
  shift
  capture_err=$(mktemp) || return
  capture_out=$("$@" 2>"$capture_err") || capture_status=$?
  if ((capture_status != 0)); then capture_out=$(<"$capture_err"); else cat "$capture_err" >&2; fi
  rm -f "$capture_err"
  printf -v "$capture_into" '%s' "$capture_out"
  return "$capture_status"
}

mariadb_replication_state() {
  local primary_pos replica_status io sql seconds replica_pos error behind reason=''
  if ! capture primary_pos primary_sql <<<'SELECT @@gtid_binlog_pos'; then
    state_json null 0 '' '' transactions "the primary does not answer: $primary_pos"
    return
  fi
  if ! capture replica_status replica_sql --column-names --vertical <<<'SHOW SLAVE STATUS'; then
    state_json null 0 "$primary_pos" '' transactions "the replica does not answer: $replica_status"
    return
  fi
  field() { sed -n "s/^ *$1: //p" <<<"$replica_status" | head -n 1; }
  io=$(field Slave_IO_Running) sql=$(field Slave_SQL_Running) seconds=$(field Seconds_Behind_Master)
  if ! capture replica_pos replica_sql <<<'SELECT @@gtid_slave_pos'; then
    state_json null 0 "$primary_pos" '' transactions "the replica does not answer: $replica_pos"
    return
  fi
  # Transactions behind: per replication domain, the primary's sequence number minus the replica's.
  behind=$(awk -v p="$primary_pos" -v r="$replica_pos" 'BEGIN {
    n = split(r, rs, ","); for (i = 1; i <= n; i++) { split(rs[i], g, "-"); seen[g[1]] = g[3] }
    n = split(p, ps, ","); total = 0
    for (i = 1; i <= n; i++) { split(ps[i], g, "-"); d = g[3] - (g[1] in seen ? seen[g[1]] : 0); if (d > 0) total += d }
    print total }')
  [[ $seconds =~ ^[0-9]+$ ]] || seconds=null
  if [[ -z $replica_status ]]; then
    reason='the replica is not set up (no replication configured on it)'
  elif [[ $sql != Yes ]]; then
    error=$(field Last_SQL_Error)
    reason="the replica's SQL thread is stopped${error:+: $error}"
  elif [[ $io != Yes ]]; then
    error=$(field Last_IO_Error)
    reason="the replica's IO thread is not running ($io)${error:+: $error}"
    # 1236: the primary cannot send from the replica's position (its binary logs from there are purged, after
    # BINLOG_KEEP_SECONDS, or it never had them): retrying never helps.
    [[ $(field Last_IO_Errno) == 1236 ]] && reason+="; $CANNOT_CATCH_UP"
  fi
  state_json "$seconds" "$behind" "$primary_pos" "$replica_pos" transactions "$reason"
}

postgres_replication_state() {
  local replica_row primary_row recovery paused receiver receive_lsn replay_lsn since_replay primary_lsn behind replay_lag wal_status seconds reason=''
  if ! capture replica_row admin_sql "$REPLICA" -F ' ' <<<"SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() AND pg_get_wal_replay_pause_state() <> 'not paused' THEN 't' ELSE 'f' END, COALESCE((SELECT status FROM pg_stat_wal_receiver), 'none'), COALESCE(pg_last_wal_receive_lsn()::text, '0/0'), COALESCE(pg_last_wal_replay_lsn()::text, '0/0'), COALESCE(floor(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()))::text, 'null')"; then
    state_json null 0 '' '' bytes "the replica does not answer: $replica_row"
    return
  fi
  read -r recovery paused receiver receive_lsn replay_lsn since_replay <<<"$replica_row"
  if ! capture primary_row admin_sql "$PRIMARY" -F ' ' <<<"SELECT pg_current_wal_lsn(), pg_wal_lsn_diff(pg_current_wal_lsn(), '$replay_lsn')::bigint, COALESCE((SELECT floor(EXTRACT(EPOCH FROM replay_lag))::text FROM pg_stat_replication WHERE application_name = '$SLOT'), 'null'), $SLOT_WAL_STATUS"; then
    state_json null 0 '' "$replay_lsn" bytes "the primary does not answer: $primary_row"
    return
  fi
  read -r primary_lsn behind replay_lag wal_status <<<"$primary_row"
  ((behind < 0)) && behind=0
  # Caught up with what it received and replaying: the primary's own measure
  # of the replay lag (NULL once idle). Otherwise: since the last replayed
  # transaction, an upper bound while it waits.
  if [[ $paused == f && $replay_lsn == "$receive_lsn" ]]; then
    seconds=$([[ $replay_lag == null ]] && echo 0 || echo "$replay_lag")
  elif ((behind == 0)); then
    seconds=0
  else
    seconds=$since_replay
  fi
  if [[ $recovery != t ]]; then
    reason='the replica is not in recovery: it was promoted, or is not a replica'
  elif [[ $paused == t ]]; then
    reason="the replica's WAL replay is paused"
  elif [[ $wal_status == lost ]]; then
    reason="the replica's WAL receiver is not streaming ($receiver); $SLOT_LOST"
  elif [[ $receiver != streaming ]]; then
    reason="the replica's WAL receiver is not streaming ($receiver)"
  fi
  state_json "$seconds" "$behind" "$primary_lsn" "$replay_lsn" bytes "$reason"
}

# A standby on another server, as the primary sees it (pg_stat_replication of
# its slot's connection): the primary's server cannot reach the standby's
# container, and needs no login on it. Streaming, and how far its replay is
# behind the primary's WAL: by the primary's measure of the replay lag (NULL
# once caught up and idle: 0 then); a standby whose replay stopped keeps
# reporting, so the bytes behind and the lag grow.
postgres_state_from_primary() {
  local row primary_lsn state replay_lsn behind seconds wal_status reason=''
  if ! capture row admin_sql "$PRIMARY" -F ' ' <<<"SELECT pg_current_wal_lsn(), COALESCE(r.state, 'none'), COALESCE(r.replay_lsn::text, '-'), COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint, 0), COALESCE(floor(EXTRACT(EPOCH FROM r.replay_lag))::text, 'null'), $SLOT_WAL_STATUS FROM (SELECT 1) AS one LEFT JOIN pg_stat_replication AS r ON r.application_name = '$SLOT'"; then
    state_json null 0 '' '' bytes "the primary does not answer: $row"
    return
  fi
  # Every field is non-empty ('-': no replay position), so read splits them where psql put them.
  read -r primary_lsn state replay_lsn behind seconds wal_status <<<"$row"
  [[ $replay_lsn == - ]] && replay_lsn=''
  ((behind < 0)) && behind=0
  if [[ $state != streaming && $wal_status == lost ]]; then
    reason="the standby $REPLICA is not streaming from the primary (its connection: $state); $SLOT_LOST"
  elif [[ $state != streaming ]]; then
    reason="the standby $REPLICA is not streaming from the primary (its connection: $state)"
  elif [[ $seconds == null ]] && ((behind == 0)); then
    seconds=0
  fi
  state_json "$seconds" "$behind" "$primary_lsn" "$replay_lsn" bytes "$reason"
}

# A replica that can never catch up by itself: what status says, so that the
# backup's failure ping and npm run status tell the operator what to do.
readonly CANNOT_CATCH_UP="it cannot continue from its position and must be seeded again: npm run reseed -- --stack $STACK (README, \"Read replicas\": a replica that cannot catch up)"
# PostgreSQL: the slot's WAL was removed (the replica was away for more than
# max_slot_wal_keep_size of the primary's writes): 'lost' in pg_replication_slots.
readonly SLOT_WAL_STATUS="COALESCE((SELECT wal_status FROM pg_replication_slots WHERE slot_name = '$SLOT'), 'none')"
readonly SLOT_LOST="the primary removed WAL its slot $SLOT held for it (it was away past max_slot_wal_keep_size): $CANNOT_CATCH_UP"

# state_json <lagSeconds|null> <behind> <primaryPosition> <replicaPosition> <unit> [reason]
# Healthy when no reason is given and the lag is known and within MAX_LAG_SECONDS.
state_json() {
  local seconds=$1 reason=${6:-}
  if [[ -z $reason && $seconds == null ]]; then
    reason='the replica does not know its lag'
  elif [[ -z $reason ]] && ((seconds > MAX_LAG_SECONDS)); then
    reason="the replica is $seconds s behind, more than the bound of $MAX_LAG_SECONDS s"
  fi
  jq -cn --argjson lag "$seconds" --argjson behind "${2:-0}" --arg primary "$3" --arg replica "$4" --arg unit "$5" --arg reason "$reason" \
    '{healthy: ($reason == ""), lagSeconds: $lag, behind: $behind, unit: $unit, primaryPosition: $primary, replicaPosition: $replica} + (if $reason == "" then {} else {reason: $reason} end)'
}
