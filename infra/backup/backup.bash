# --- the backup run (infra/backup/backup.bash) ---
# For each target: dump -> zstd -> s3-put.py to <stack>/<database>/<UTC>.<ext>,
# streamed (no full-size temp file), then the manifest <...>.manifest.json.
# The manifest is the only mark of a good backup and is written last.
# The uploader (infra/backup/s3-put.py, installed beside this script, run by
# python3 with Debian's python3-boto3) writes the data object only when every
# stage before it succeeded, and aborts its multipart upload otherwise; a run
# that fails later (the manifest) leaves a data object without a manifest,
# which restores, drills and the status never pick. Objects cannot be deleted
# from here (the server's identity may only put objects, and Object Lock keeps
# them); the lifecycle rules expire them.
# Every upload is a conditional write (If-None-Match: *): an object already at
# the key is never replaced. And each carries a CRC32 checksum: S3 refuses an
# upload without one (or Content-MD5) into a bucket with Object Lock.

S3_PUT=$(dirname -- "${BASH_SOURCE[0]}")/s3-put.py

# Uploads stdin or a file to S3 with the server's credentials: s3_put
# <source|-> <s3://bucket/key> [s3-put.py options].
s3_put() {
  local args=(--region "$REGION" --credentials-file "$credentials_file")
  [[ -n $endpoint_url ]] && args+=(--endpoint-url "$endpoint_url")
  python3 "$S3_PUT" "${args[@]}" "$@"
}

# The last command of a pipeline stage: keeps the stage's exit status ($2) in
# $work/<stage>.status for the uploader, which writes nothing unless every
# stage says 0, and returns it for PIPESTATUS. A stage whose output ends
# early ends it cleanly (a killed dump still makes a valid zstd frame): only
# these statuses tell the uploader that the stream is cut short.
record_stage() {
  printf '%s\n' "$2" >"$work/$1.status"
  return "$2"
}

# What the manifest says of a stream, measured while the stream passes
# through unchanged (stdin to stdout), so the backup makes no second pass and
# no extra copy: $1 is what to measure, $2 the file that gets the figures once
# the stream ends.
#   sql-rows  bytes on the first line, then "table<TAB>rows" per table, of a
#             MySQL/MariaDB dump: the rows of the dump's own snapshot, not of a
#             second query a moment later.
#   bytes     bytes only (PostgreSQL's custom format).
# The sha256 and size of the compressed stream, as uploaded, come from the
# uploader itself (s3-put.py --digest-file): hashlib hashes the parts it
# already holds, where a stage here cost a process, a copy of the stream and
# perl's Digest::SHA at 3.5 CPU-s per GB hashed (hashlib: under 1).
# SQL rows: MariaDB 10.11+ writes a bare `INSERT INTO `t` VALUES` line and then
# one row per line (a row never spans lines: the dump escapes newlines in
# strings), so a statement's rows are its lines, counted a block at a time;
# MySQL and older MariaDB write a statement's rows on one line, where rows are
# the tuples outside quoted strings. Counting lines where that suffices is
# what keeps the backup fast: stripping strings from every line cost 14 s of
# CPU per GB of dump, more than the dump itself (now under 1 s per GB).
# Pipes are widened to 1 MiB (Linux; ignored elsewhere): fewer wake-ups of the
# stages on either side.
meter_stream() {
  perl -e '
    use strict;
    use warnings;
    my ($mode, $out_file) = @ARGV;
    die "meter_stream: unknown measure \"$mode\"\n" unless $mode =~ /\A(?:sql-rows|bytes)\z/;
    binmode STDIN;
    binmode STDOUT;
    my $F_SETPIPE_SZ = 1031;
    fcntl($_, $F_SETPIPE_SZ, 1 << 20) for \*STDIN, \*STDOUT;
    my (%rows, $table, $row_per_line);
    # One line of a statement whose rows share a line: tuples outside quoted strings.
    sub rows_on_line {
      my ($line) = @_;
      $line =~ s/\x27(?:[^\x27\\]++|\\.)*+\x27//gs;
      $rows{$table} += () = $line =~ /(?:\A|\),)\(/g;
      undef $table if $line =~ /\);\s*\z/;
    }
    # Whole lines of the dump, however many.
    sub count_rows {
      my ($text) = @_;
      my ($pos, $len) = (0, length $text);
      while ($pos < $len) {
        if (!defined $table) {
          my $at = index $text, "INSERT INTO `", $pos;
          $at = index $text, "INSERT INTO `", $at + 1 while $at > 0 && substr($text, $at - 1, 1) ne "\n";
          return if $at < 0;
          my $eol = index $text, "\n", $at;
          my $line = substr $text, $at, $eol + 1 - $at;
          $pos = $eol + 1;
          next unless $line =~ /\AINSERT INTO `((?:[^`]|``)+)` VALUES ?/;
          ($table = $1) =~ s/``/`/g;
          $rows{$table} //= 0;
          my $rest = substr $line, $+[0];
          $row_per_line = $rest eq "\n";
          rows_on_line($rest) unless $row_per_line;
        } elsif ($row_per_line) {
          # A row never spans lines and the statement ends at the first line ending in ";".
          my $end = index $text, ";\n", $pos;
          my $stop = $end < 0 ? $len : $end + 2;
          $rows{$table} += substr($text, $pos, $stop - $pos) =~ tr/\n//;
          undef $table if $end >= 0;
          $pos = $stop;
        } else {
          my $eol = index $text, "\n", $pos;
          rows_on_line(substr $text, $pos, $eol + 1 - $pos);
          $pos = $eol + 1;
        }
      }
    }
    my ($bytes, $carry) = (0, "");
    while (1) {
      my $n = sysread STDIN, my $block, 1 << 20;
      die "meter_stream: cannot read: $!\n" unless defined $n;
      last if $n == 0;
      for (my $offset = 0; $offset < $n;) {
        my $written = syswrite STDOUT, $block, $n - $offset, $offset;
        die "meter_stream: cannot write: $!\n" unless defined $written;
        $offset += $written;
      }
      $bytes += $n;
      if ($mode eq "sql-rows") {
        # Whole lines now; the end of a line cut by the block waits for the next.
        my $last = rindex $block, "\n";
        if ($last < 0) {
          $carry .= $block;
        } else {
          count_rows($carry . substr($block, 0, $last + 1));
          $carry = substr $block, $last + 1;
        }
      }
    }
    count_rows("$carry\n") if length $carry;
    my $report = "$bytes\n";
    $report .= join "", map { "$_\t$rows{$_}\n" } sort keys %rows if $mode eq "sql-rows";
    open my $out, ">", $out_file or die "meter_stream: cannot write $out_file: $!\n";
    print $out $report;
    close $out or die "meter_stream: cannot write $out_file: $!\n";
  ' "$1" "$2"
}

# $1 name, $2 engine, $3 container; the login in `login`. Prints the server version.
database_version() {
  case $2 in
    postgres) db_exec "$3" "$2" psql -X -A -t -v ON_ERROR_STOP=1 "${login[@]}" -d "$1" -c 'SHOW server_version' ;;
    *) db_exec "$3" "$2" "$CLIENT" --batch --skip-column-names "${login[@]}" "$1" -e 'SELECT VERSION()' ;;
  esac
}

# The PostgreSQL session (a coproc) can end at any moment (too many clients,
# a restart, a dropped link). Bash then closes and unsets PG_SESSION, and a
# write into its pipe would kill this script with SIGPIPE: no FAILED line, no
# /fail ping, the databases after this one skipped. Every exchange with it
# goes through these three, which fail instead.

# Sends lines ($@) to the session.
session_send() {
  local fd=${PG_SESSION[1]:-} status=0
  [[ -n $fd ]] || return 1
  trap '' PIPE
  { printf '%s\n' "$@" >&"$fd"; } 2>/dev/null || status=1
  trap - PIPE
  return "$status"
}

# Prints one line of the session's output, waiting at most $1 seconds.
session_read_line() {
  local fd=${PG_SESSION[0]:-} line
  [[ -n $fd ]] || return 1
  IFS= read -r -t "$1" line <&"$fd" || return 1
  printf '%s\n' "$line"
}

# Reads lines from the PostgreSQL session until the end marker.
read_session_until_end() {
  local line fd=${PG_SESSION[0]:-}
  [[ -n $fd ]] || return 1
  while IFS= read -r -t 600 line <&"$fd"; do
    [[ $line == '--end--' ]] && return 0
    printf '%s\n' "$line"
  done
  return 1
}

# Dumps one database; returns non-zero after logging what failed.
backup_target() {
  local name=$1 engine=$2 container=$3 admin=$4
  local started=${EPOCHREALTIME/[.,]/} stamp ext key manifest_key version snapshot=''
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  ext=$([[ $engine == postgres ]] && echo pgdump.zst || echo sql.zst)
  key="$STACK/$name/$stamp.$ext"
  manifest_key="$STACK/$name/$stamp.manifest.json"
  # How the clients log in: as the administrator in the database's container
  # (a replica on another server: over the link, see replica-source.bash).
  login=(-u"$admin")
  [[ $engine == postgres ]] && login=(-U "$admin")
  #+replica pick_source "$name" "$engine" "$container"; container=$source_container
  local where="$STACK/$name ($engine in container $container${source_label:-})"
  log info "backup of $where to s3://$BUCKET/$key started"

  if ! version=$(database_version "$name" "$engine" "$container" 2>"$work/db.err"); then
    log err "backup of $where failed: the database did not answer: $(tail -n 3 "$work/db.err" | tr '\n' ' ')"
    return 1
  fi

  # What the manifest lists, and (PostgreSQL) the snapshot the dump shares.
  if [[ $engine == postgres ]]; then
    coproc PG_SESSION { link_stall_seconds=0 db_exec "$container" "$engine" psql -X -q -A -t -v ON_ERROR_STOP=1 "${login[@]}" -d "$name" 2>"$work/session.err"; }
    if ! session_send 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;' 'SELECT pg_export_snapshot();' ||
      ! snapshot=$(session_read_line 60) || [[ -z $snapshot ]] ||
      ! session_send "$PG_COUNTS_SQL" "SELECT '--end--';" "$PG_OBJECTS_SQL" "SELECT '--end--';" ||
      ! read_session_until_end >"$work/counts.tsv" || ! read_session_until_end >"$work/objects.tsv"; then
      log err "backup of $where failed: could not read the table list in a snapshot: $(tail -n 3 "$work/session.err" | tr '\n' ' ')"
      end_postgres_session
      return 1
    fi
  else
    if ! db_exec "$container" "$engine" "$CLIENT" --batch --skip-column-names "${login[@]}" "$name" -e "$MYSQL_TABLES_SQL" >"$work/tables.txt" 2>"$work/db.err" ||
      ! db_exec "$container" "$engine" "$CLIENT" --batch --skip-column-names "${login[@]}" "$name" -e "$MYSQL_OBJECTS_SQL" >"$work/objects.tsv" 2>>"$work/db.err"; then
      log err "backup of $where failed: could not list its tables: $(tail -n 3 "$work/db.err" | tr '\n' ' ')"
      return 1
    fi
  fi

  local statuses measure=sql-rows stage upstream=()
  [[ $engine == postgres ]] && measure=bytes
  # Each stage writes its status file before its output closes, so the
  # uploader finds them all once its input ends; none may be left from the
  # previous database.
  rm -f "$work/upload.meter"
  for stage in dump measure zstd; do
    rm -f "$work/$stage.status"
    upstream+=(--upstream-status "$work/$stage.status")
  done
  set +e
  { dump_database "$name" "$engine" "$container" "$snapshot" 2>"$work/dump.err"; record_stage dump $?; } |
    { meter_stream "$measure" "$work/dump.meter" 2>"$work/meter.err"; record_stage measure $?; } |
    { zstd --quiet --stdout -T1 "-$ZSTD_LEVEL"; record_stage zstd $?; } |
    s3_put - "s3://$BUCKET/$key" --content-type application/zstd --digest-file "$work/upload.meter" "${upstream[@]}" 2>"$work/upload.err"
  statuses=("${PIPESTATUS[@]}")
  set -e
  [[ $engine == postgres ]] && end_postgres_session

  local stages=(dump measure zstd upload) i failed=()
  for i in "${!statuses[@]}"; do
    ((statuses[i] == 0)) || failed+=("${stages[i]} (exit ${statuses[i]})")
  done
  if ((${#failed[@]} > 0)); then
    local detail
    detail=$(tail -n 3 "$work/dump.err" "$work/meter.err" "$work/upload.err" 2>/dev/null | grep -v '^==>' | grep -v '^$' | tr '\n' ' ')
    log err "backup of $where failed at: ${failed[*]}; no manifest written, s3://$BUCKET/$key is not a backup. $detail"
    return 1
  fi

  local sha size dump_bytes duration_us
  read -r sha size <"$work/upload.meter"
  dump_bytes=$(head -n 1 "$work/dump.meter")
  duration_us=$((${EPOCHREALTIME/[.,]/} - started))
  if [[ $engine != postgres ]]; then
    # Tables with no INSERT line have no rows.
    tail -n +2 "$work/dump.meter" >"$work/counts.tsv"
    awk -F'\t' 'FILENAME == ARGV[1] { rows[$1] = $2; next } { print $1 "\t" ($1 in rows ? rows[$1] : 0) }' "$work/counts.tsv" "$work/tables.txt" >"$work/tables.tsv"
  else
    cp "$work/counts.tsv" "$work/tables.tsv"
  fi

  if ! jq -n \
    --arg stack "$STACK" --arg database "$name" --arg engine "$engine" --arg version "$version" \
    --arg key "$key" --arg createdAt "$(date -u -d "@${started:0:-6}" +%Y-%m-%dT%H:%M:%SZ)" --arg sha256 "$sha" \
    --argjson size "$size" --argjson dumpBytes "$dump_bytes" --argjson durationUs "$duration_us" \
    --rawfile tables "$work/tables.tsv" --rawfile objects "$work/objects.tsv" \
    '{format: 1, stack: $stack, database: $database, engine: $engine, serverVersion: $version,
      key: $key, createdAt: $createdAt, compression: "zstd", size: $size, sha256: $sha256,
      dumpBytes: $dumpBytes, durationSeconds: ($durationUs / 1000000),
      tables: [$tables | split("\n")[] | select(length > 0) | split("\t") | {name: .[0], rows: (.[1] | tonumber)}],
      objects: [$objects | split("\n")[] | select(length > 0) | split("\t") | {type: .[0], name: .[1]}]}' >"$work/manifest.json"; then
    log err "backup of $where failed: could not write its manifest; s3://$BUCKET/$key is not a backup"
    return 1
  fi
  #+replica add_replication_to_manifest "$work/manifest.json" || { log err "backup of $where failed: could not add its source to its manifest; s3://$BUCKET/$key is not a backup"; return 1; }
  if ! s3_put "$work/manifest.json" "s3://$BUCKET/$manifest_key" --content-type application/json 2>"$work/upload.err"; then
    log err "backup of $where failed: the manifest upload failed, so s3://$BUCKET/$key is not a backup: $(tail -n 3 "$work/upload.err" | tr '\n' ' ')"
    return 1
  fi
  log info "backup of $where done: s3://$BUCKET/$key, $size bytes compressed from $dump_bytes, sha256 $sha, $((duration_us / 1000000)) s"
}

end_postgres_session() {
  if [[ -n ${PG_SESSION_PID:-} && -n ${PG_SESSION[1]:-} ]]; then
    # Bash unsets PG_SESSION_PID once the session exits: its own copy.
    local pid=$PG_SESSION_PID tenths=0
    session_send 'COMMIT;' '\q' || true
    # A session over a link gone silent never answers its COMMIT: given 10 s, then left behind.
    while kill -0 "$pid" 2>/dev/null && ((tenths < 100)); do
      sleep 0.1
      tenths=$((tenths + 1))
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}

# Runs the dump program with a 1 MiB output buffer (stdbuf) where the
# container has stdbuf, as it is otherwise: the dump tools write 4 KiB at a
# time into the pipe, 250 000 writes per GB, each waking the next stage.
# shellcheck disable=SC2016 # expanded inside the container, not here
readonly LARGE_OUTPUT_BUFFER=(sh -c 'if command -v stdbuf >/dev/null 2>&1; then exec stdbuf -o1M "$@"; fi; exec "$@"' dump)

# The consistent dump, on stdout.
dump_database() {
  local name=$1 engine=$2 container=$3 snapshot=$4
  if [[ $engine == postgres ]]; then
    # Uncompressed custom format: zstd compresses better and faster than pg_dump's zlib.
    db_exec "$container" "$engine" "${LARGE_OUTPUT_BUFFER[@]}" pg_dump --format=custom --compress=0 --snapshot="$snapshot" "${login[@]}" -d "$name"
  else
    local dump=mariadb-dump
    [[ $engine == mysql ]] && dump=mysqldump
    db_exec "$container" "$engine" "${LARGE_OUTPUT_BUFFER[@]}" "$dump" "${MYSQL_DUMP_OPTIONS[@]}" "${login[@]}" "$name"
  fi
}

main() {
  if [[ ${1:-} == --scheduled ]] && ! schedule_is_due "$SCHEDULE"; then
    exit 0
  fi
  require_tools python3 zstd jq perl flock curl
  if ! python3 -c 'import boto3' 2>/dev/null; then
    log err "$(basename "$0") cannot run: python3's boto3 module is missing on $(hostname) (Debian: apt-get install python3-boto3)"
    ping_health_check /fail
    exit 3
  fi
  if [[ ! -r $S3_PUT ]]; then
    log err "$(basename "$0") cannot run: its uploader $S3_PUT is missing (Pulumi installs it beside the script)"
    ping_health_check /fail
    exit 3
  fi
  use_server_credentials
  take_lock backup
  work=$(mktemp -d "${TMPDIR:-/tmp}/$LOG_TAG.XXXXXX")
  trap 'rm -rf "$work"' EXIT

  local target name engine container admin failures=0
  for target in "${TARGETS[@]}"; do
    read -r name engine container admin _ <<<"$target"
    use_engine_tools "$engine"
    if ! backup_target "$name" "$engine" "$container" "$admin"; then
      failures=$((failures + 1))
    fi
  done
  # Keys carry the second a run started: holding the lock one more second
  # means the next run can never reuse this run's keys.
  sleep 1
  if ((failures > 0)); then
    log err "backup of stack $STACK: $failures of ${#TARGETS[@]} databases FAILED"
    ping_health_check /fail
    exit 1
  fi
  #+replica fail_on_unhealthy_replication
  log info "backup of stack $STACK: all ${#TARGETS[@]} databases backed up"
  ping_health_check ''
}

main "$@"
