# --- backups from the read replica (infra/backup/replica-source.bash) ---
# Rendered only into the backup script of a stack with a replica; backup.bash
# calls it from its replica hook lines (see render.ts). Expects from the header:
# REPLICAS ("<database> <replica container> <max lag seconds> container" each,
# or "… link <host> <port>" for a replica on another server), LINK_BACKUP_USER,
# LINK_BACKUP_PASSWORD_FILE and replica_script (replica.sh, whose `status`
# says whether the replica is healthy and within its lag bound, and both
# positions).
# A database is dumped from its replica while the replica is healthy and
# caught up, so the dump does not load the primary; from the primary
# otherwise, and then the run says why, and pings the failure URL even when
# every backup succeeded: a broken replica must not go unnoticed. A replica on
# another server is checked the same way (replica.sh reads it over the link)
# and dumped over the link: the client runs in the primary's container here
# (this server holds the backup's tools and credentials), the reading on the
# replica's server, as the backup login, whose password the client reads
# from its file in the container.

replication_problems=0

# Sets source_container, where database $1 (engine $2, primary container $3)
# is dumped from (for a replica on another server: the container its client
# runs in, with `login` and link_password_file set to reach the replica, and
# source_label saying so), and writes the manifest's source fields to
# $work/replication.json (none for a database without a replica).
pick_source() {
  local name=$1 engine=$2 primary=$3 entry replica='' max_lag='' reached='' link_host='' link_port='' image='' state reason position_type=gtid
  source_container=$primary source_label='' link_password_file='' link_client_image=''
  rm -f "$work/replication.json"
  for entry in "${REPLICAS[@]}"; do
    [[ ${entry%% *} == "$name" ]] && read -r _ replica max_lag reached link_host link_port image <<<"$entry"
  done
  [[ -n $replica ]] || return 0
  if [[ $reached == promoted ]]; then
    # The primary is the promoted replica on another server: no replication to check (none is left), and no
    # container of it here: a one-off client of its image dumps it over the link, as the backup login.
    source_label=", the promoted replica on another server, over the link at $link_host:$link_port"
    link_password_file=$link_secrets_dir/$LINK_BACKUP_PASSWORD_FILE link_client_image=$image
    login=(-h "$link_host" -P "$link_port" -u "$LINK_BACKUP_USER")
    [[ $engine == postgres ]] && login=(-h "$link_host" -p "$link_port" -U "$LINK_BACKUP_USER")
    return 0
  fi
  [[ $engine == postgres ]] && position_type=lsn
  if ! state=$("$replica_script" status 2>"$work/replica.err") || ! jq -e 'type == "object" and has("healthy")' <<<"$state" >/dev/null 2>&1; then
    state=$(jq -cn --arg reason "$replica_script status did not answer: $(tail -n 3 "$work/replica.err" | tr '\n' ' ')" \
      '{healthy: false, lagSeconds: null, primaryPosition: "", replicaPosition: "", reason: $reason}')
  fi
  if [[ $(jq -r .healthy <<<"$state") == true ]]; then
    reason="the replica is healthy and $(jq -r .lagSeconds <<<"$state") s behind (bound $max_lag s)"
    if [[ $reached == link ]]; then
      reason="the replica $replica on another server is healthy and $(jq -r .lagSeconds <<<"$state") s behind (bound $max_lag s); dumped over the link at $link_host:$link_port"
      source_label=", over the link from its replica at $link_host:$link_port"
      link_password_file=$link_secrets_dir/$LINK_BACKUP_PASSWORD_FILE
      login=(-h "$link_host" -P "$link_port" -u "$LINK_BACKUP_USER")
      [[ $engine == postgres ]] && login=(-h "$link_host" -p "$link_port" -U "$LINK_BACKUP_USER")
    else
      source_container=$replica
    fi
    log info "backup of $STACK/$name from its replica $replica: $reason"
    jq -c --arg why "$reason" --arg type "$position_type" \
      '{source: "replica", replication: {why: $why, positionType: $type, position: .replicaPosition, primaryPosition: .primaryPosition, lagSeconds: .lagSeconds}}' <<<"$state" >"$work/replication.json"
  else
    replication_problems=$((replication_problems + 1))
    reason="the replica $replica is not usable: $(jq -r .reason <<<"$state")"
    log err "replication of $STACK/$name is broken or lagging: $reason; backing up from the primary $primary instead"
    primary_source_json "$reason" "$position_type" "$state"
  fi
}

# The manifest's source fields of a dump of the primary: why ($1), the position type ($2) and both positions from state $3.
primary_source_json() {
  jq -c --arg why "$1" --arg type "$2" \
    '{source: "primary", replication: {why: $why, positionType: $type, position: .primaryPosition, replicaPosition: .replicaPosition, lagSeconds: .lagSeconds}}' <<<"$3" >"$work/replication.json"
}

# A promoted replica on another server has no container on this server: its
# client runs in a one-off container of its image (link_client_image) on this
# server's network, which reaches the link, as the database's uid, which can
# read the login's password file, mounted read-only where db_exec reads it.
link_client() {
  docker run --rm -i --network host --user "$LINK_CLIENT_USER" --entrypoint '' -v "$LINK_CLIENT_SECRETS:$link_secrets_dir:ro" "$link_client_image" "$@"
}

# Adds pick_source's fields to manifest $1 (a database without a replica: unchanged).
add_replication_to_manifest() {
  [[ -r $work/replication.json ]] || return 0
  jq --slurpfile source "$work/replication.json" '. + $source[0]' "$1" >"$1.new" && mv "$1.new" "$1"
}

# Every backup succeeded; a replica that was not usable still fails the run.
fail_on_unhealthy_replication() {
  ((replication_problems == 0)) && return 0
  log err "backup of stack $STACK: all ${#TARGETS[@]} databases backed up, but from the primary: $replication_problems replica(s) broken or lagging (see above)"
  ping_health_check /fail
  exit 1
}
