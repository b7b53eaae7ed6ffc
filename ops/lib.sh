# shellcheck shell=bash
# Shared helpers of the ops scripts (ops/test, ops/demo, ops/bench); sourced, never run.
# Functions that may be called in `if`/`||` context (where bash ignores set -e, also inside the
# function) check each step themselves; fatal setup errors exit through hw_die.
#
# Everything a script starts here is recorded (pid and start time, or PostgreSQL data dir) and
# stopped by hw_cleanup, which hw_trap_cleanup installs for EXIT, INT and TERM. Nothing is ever
# stopped by name: a process is only signalled if it is still the very one we started.

HW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HW_PG_BIN=${HW_PG_BIN:-/usr/lib/postgresql/15/bin}

HW_DEPS=(build-essential cmake pkg-config libuv1-dev libpq-dev libprotobuf-c-dev
  protobuf-c-compiler libhiredis-dev libinih-dev libsodium-dev uthash-dev libcmocka-dev
  libcjson-dev libcsv-dev libxlsxwriter-dev unzip
  node-llhttp prometheus haproxy openssl python3 iproute2
  postgresql-15 postgresql-15-postgis-3 redis-server redis-tools clang libclang-rt-14-dev
  nodejs npm chromium fonts-wqy-microhei)

# Cleanup actions, run last-registered first (strings for eval, built with printf %q).
HW_ON_EXIT=()
HW_CLEANING=0

hw_log() { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "${HW_SCRIPT:-ops}" "$*" >&2; }
hw_die() {
  hw_log "error: $*"
  exit 1
}

# Runs a command as root: directly when we are root, else through sudo.
hw_as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    hw_die "need root or sudo to run: $*"
  fi
}

# PostgreSQL refuses to run as root, so as root its tools run as the postgres user (from / so a
# working directory postgres cannot enter does not matter); otherwise as ourselves.
hw_as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

hw_install_deps() {
  local missing=() p
  for p in "${HW_DEPS[@]}"; do
    # nodejs packages from elsewhere (NodeSource) bundle npm and conflict with Debian's.
    if [ "$p" = npm ] && command -v npm >/dev/null; then
      continue
    fi
    if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" != "ii " ]; then
      missing+=("$p")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  hw_log "installing: ${missing[*]}"
  hw_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || return
  hw_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# hw_build DIR [cmake args...]: configure (args apply to an existing cache too) and build, 2 jobs.
# Each step checks its own status: callers run this in `if`/`||` context, where set -e is off.
hw_build() {
  local dir=$1
  shift
  cmake -S "$HW_ROOT" -B "$dir" "$@" || return
  cmake --build "$dir" -j2
}

# hw_npm_ci DIR...: installs each DIR's npm packages exactly as its package-lock.json says
# (npm ci), when node_modules/ is missing or older than the lockfile. web/ holds the page's
# MapLibre, tests/browser/ the browser test's playwright-core (it drives Debian's chromium, so
# no browser is downloaded; --ignore-scripts: no package runs code at install).
hw_npm_ci() {
  local d
  for d in "$@"; do
    if [ -f "$HW_ROOT/$d/node_modules/.package-lock.json" ] &&
      [ ! "$HW_ROOT/$d/package-lock.json" -nt "$HW_ROOT/$d/node_modules/.package-lock.json" ]; then
      continue
    fi
    hw_log "npm ci in $d/"
    (cd "$HW_ROOT/$d" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || return
  done
}

# Registers a cleanup action: hw_on_exit CMD [ARGS...].
hw_on_exit() {
  local cmd
  printf -v cmd '%q ' "$@"
  HW_ON_EXIT+=("$cmd")
}

# Runs (and forgets) every registered cleanup action; a failing one does not stop the others.
hw_cleanup() {
  local i errexit=0
  if [ "$HW_CLEANING" -eq 1 ]; then
    return 0
  fi
  HW_CLEANING=1
  case $- in *e*) errexit=1 ;; esac
  set +e
  for ((i = ${#HW_ON_EXIT[@]} - 1; i >= 0; i--)); do
    eval "${HW_ON_EXIT[i]}"
  done
  HW_ON_EXIT=()
  HW_CLEANING=0
  if [ "$errexit" -eq 1 ]; then set -e; fi
  return 0
}

# INT and TERM exit through the EXIT trap, so cleanup runs exactly once whatever happens.
hw_trap_cleanup() {
  trap hw_cleanup EXIT
  trap 'hw_log "interrupted"; exit 130' INT
  trap 'hw_log "terminated"; exit 143' TERM
}

# Field 22 of /proc/PID/stat: start time in clock ticks since boot; with the pid it names one
# process for good (a pid alone may be reused after the process is gone).
hw_pid_start() {
  local stat
  local -a f
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -r -a f <<<"${stat##*) }" # fields from 3 (state) on
  printf '%s\n' "${f[19]}"
}

# True while PID exists and is not a zombie.
hw_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# True while PID is alive and still the process that started at START.
hw_pid_is() {
  hw_alive "$1" && [ "$(hw_pid_start "$1")" = "$2" ]
}

# hw_stop_pid PID START NAME [TIMEOUT_S]: SIGTERM, SIGKILL after TIMEOUT_S (default 10); reaps it
# if it is our child. Does nothing if that process is already gone. Returns the exit status when
# the process was our child (143 = killed by SIGTERM, 137 = SIGKILL), else 0.
hw_stop_pid() {
  local pid=$1 start=$2 name=$3 timeout=${4:-10} i rc=0
  if hw_pid_is "$pid" "$start"; then
    hw_log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < timeout * 10; i++)); do
      hw_pid_is "$pid" "$start" || break
      sleep 0.1
    done
    if hw_pid_is "$pid" "$start"; then
      hw_log "$name (pid $pid) still running after ${timeout}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null
    fi
  fi
  wait "$pid" 2>/dev/null || rc=$?
  if [ "$rc" -eq 127 ]; then rc=0; fi # not our child (or reaped before): nothing to report
  return "$rc"
}

# hw_spawn NAME STDOUT STDERR [STOP_TIMEOUT_S] -- CMD [ARGS...]: starts CMD in the background and
# registers its stop; leaves its pid and start time in HW_SPAWNED_PID and HW_SPAWNED_START.
# CMD runs in a session of its own (as Redis does, and PostgreSQL through pg_ctl), so Ctrl-C
# reaches only this script, which then stops everything in order: the daemon drains into
# PostgreSQL and Redis while they are still up. (setsid execs in place here: a background job of
# a script without job control is never a process group leader, so the pid stays CMD's.)
# With HW_RUN_DIR set, the process is also recorded in HW_RUN_DIR/spawned-PID, so that a later
# run can stop what a run killed with SIGKILL left behind (hw_stop_recorded).
HW_SPAWNED_PID=
HW_SPAWNED_START=
HW_RUN_DIR=
hw_spawn() {
  local name=$1 out=$2 err=$3 timeout=10
  shift 3
  if [ "$1" != "--" ]; then
    timeout=$1
    shift
  fi
  shift
  setsid "$@" >"$out" 2>"$err" &
  HW_SPAWNED_PID=$!
  HW_SPAWNED_START=$(hw_pid_start "$HW_SPAWNED_PID") || HW_SPAWNED_START=gone
  if [ -n "$HW_RUN_DIR" ]; then
    printf '%s %s %s\n' "$HW_SPAWNED_PID" "$HW_SPAWNED_START" "$name" \
      >"$HW_RUN_DIR/spawned-$HW_SPAWNED_PID"
    hw_on_exit rm -f "$HW_RUN_DIR/spawned-$HW_SPAWNED_PID"
  fi
  hw_on_exit hw_stop_pid "$HW_SPAWNED_PID" "$HW_SPAWNED_START" "$name" "$timeout"
}

# hw_stop_recorded DIR: stops what hw_spawn recorded in DIR, if still the same processes.
hw_stop_recorded() {
  local f pid start name
  for f in "$1"/spawned-*; do
    [ -f "$f" ] || continue
    read -r pid start name <"$f"
    hw_stop_pid "$pid" "$start" "$name (left by an earlier run)" 30 || true
    rm -f "$f"
  done
}

# Ports in use on this machine, any state, IPv4 and IPv6, one a line. awk, not a bash read loop:
# after a benchmark's 10,000 connections /proc/net/tcp holds as many TIME_WAIT lines, and bash
# reading a /proc file line by line took close to a minute.
hw_used_ports() {
  local f
  for f in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$f" ] || continue
    awk 'NR > 1 { n = split($2, a, ":"); v = 0; h = toupper(a[n])
      for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789ABCDEF", substr(h, i, 1)) - 1
      print v }' "$f"
  done
}

# A TCP port that nothing uses now, below the ephemeral range, so the 10k client connections of a
# benchmark cannot take it between our choice and the server's bind.
hw_free_port() {
  local lo=20000 hi eph_lo eph_hi port i
  local -A used=()
  read -r eph_lo eph_hi </proc/sys/net/ipv4/ip_local_port_range
  hi=$((eph_lo - 1))
  if [ "$hi" -lt $((lo + 1000)) ]; then
    lo=$((eph_hi + 1))
    hi=65000
  fi
  for port in $(hw_used_ports); do used[$port]=1; done
  for ((i = 0; i < 1000; i++)); do
    port=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
    if [ -z "${used[$port]:-}" ]; then
      printf '%d\n' "$port"
      return 0
    fi
  done
  hw_die "no free TCP port found in $lo..$hi"
}

# True when something listens on 127.0.0.1:PORT (or any address) — read from /proc, so the server
# does not see a probe connection.
hw_port_listening() {
  local hex f
  printf -v hex ':%04X' "$1"
  # awk, not a bash read loop: /proc/net/tcp holds a line per TIME_WAIT, tens of thousands after
  # a benchmark's connections, and bash took minutes to read it on a busy machine.
  for f in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$f" ] || continue
    awk -v h="$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == h { found = 1; exit }
      END { exit !found }' "$f" && return 0
  done
  return 1
}

# hw_wait_port PORT TIMEOUT_S [PID]: waits until PORT listens; fails at once if PID dies.
hw_wait_port() {
  local port=$1 timeout=$2 pid=${3:-} i
  for ((i = 0; i < timeout * 10; i++)); do
    hw_port_listening "$port" && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL. State of a cluster started for DIR: DIR/pg.datadir (absolute data dir) and
# DIR/pg.port; DIR/pgdata is the data dir itself or a symlink to it; server log: DATADIR/server.log.

hw_pg_datadir() {
  cat "$1/pg.datadir" 2>/dev/null
}

# hw_pg_start DIR PORT: a fresh cluster (or the one already in DIR) on 127.0.0.1:PORT.
hw_pg_start() {
  local dir port datadir
  dir=$(mkdir -p "$1" && cd "$1" && pwd)
  port=$2
  datadir=$(hw_pg_datadir "$dir") || datadir=
  if [ -z "$datadir" ] || [ ! -f "$datadir/PG_VERSION" ]; then
    if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$dir"; then
      # The postgres user cannot reach DIR (a checkout under /root, a mode-700 mktemp dir...).
      # Rather than loosen permissions on someone's directories, the cluster lives in /tmp and
      # DIR/pgdata points to it; hw_pg_destroy removes it.
      datadir=$(mktemp -d /tmp/haulwatch-pg.XXXXXX)
      ln -sfn "$datadir" "$dir/pgdata"
    else
      datadir=$dir/pgdata
      rm -rf "$datadir"
      mkdir -p "$datadir"
    fi
    chmod 700 "$datadir"
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres:postgres "$datadir"
    fi
    printf '%s\n' "$datadir" >"$dir/pg.datadir"
    hw_log "initdb $datadir"
    hw_as_pg "$HW_PG_BIN/initdb" -D "$datadir" -U postgres -A trust -E UTF8 --locale=C \
      >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      hw_die "initdb failed"
    }
    # Files initdb made belong to postgres; appending and truncating keep their owner.
    cat >"$datadir/pg_hba.conf" <<'EOF'
# Written by ops/lib.sh: local socket and 127.0.0.1 only, trust (a private development server).
local   all   all                 trust
host    all   all   127.0.0.1/32  trust
EOF
    # Sized for a 2-core / 24 GiB box writing ~100k rows/s. An acknowledged fix must be durable,
    # so fsync and synchronous_commit stay on; a large WAL and long checkpoints keep full-page
    # writes and checkpoint I/O rare under sustained load.
    cat >>"$datadir/postgresql.conf" <<EOF

# --- ops/lib.sh ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$datadir'
max_connections = 200
shared_buffers = 2GB
effective_cache_size = 16GB
work_mem = 16MB
maintenance_work_mem = 512MB
wal_buffers = 64MB
max_wal_size = 8GB
min_wal_size = 1GB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
wal_compression = lz4
fsync = on
synchronous_commit = on
full_page_writes = on
timezone = 'UTC'
log_timezone = 'UTC'
EOF
  fi
  printf '%s\n' "$port" >"$dir/pg.port"
  hw_on_exit hw_pg_stop "$dir"
  hw_log "starting PostgreSQL on 127.0.0.1:$port ($datadir)"
  if ! hw_as_pg "$HW_PG_BIN/pg_ctl" start -w -t 60 -D "$datadir" -l "$datadir/server.log" \
    -o "-p $port" >/dev/null; then
    tail -n 30 "$datadir/server.log" >&2 || true
    hw_die "PostgreSQL did not start on port $port"
  fi
  head -n 1 "$datadir/postmaster.pid" >"$dir/pg.pid"
  hw_log "PostgreSQL up, pid $(cat "$dir/pg.pid")"
}

# hw_pg_stop DIR: stops the cluster of DIR by its data dir (never by name); quiet if not running.
hw_pg_stop() {
  local dir=$1 datadir
  datadir=$(hw_pg_datadir "$dir") || return 0
  [ -f "$datadir/postmaster.pid" ] || return 0
  hw_log "stopping PostgreSQL ($datadir)"
  if ! hw_as_pg "$HW_PG_BIN/pg_ctl" stop -w -t 60 -m fast -D "$datadir" >/dev/null; then
    hw_log "fast shutdown did not finish: immediate"
    hw_as_pg "$HW_PG_BIN/pg_ctl" stop -w -t 30 -m immediate -D "$datadir" >/dev/null || true
  fi
}

# hw_pg_destroy DIR: stops the cluster of DIR and removes its data (the /tmp one too).
hw_pg_destroy() {
  local dir=$1 datadir
  datadir=$(hw_pg_datadir "$dir") || return 0
  hw_pg_stop "$dir"
  case $datadir in
  "$dir/pgdata" | /tmp/haulwatch-pg.*) rm -rf "$datadir" ;;
  *) hw_log "not removing unexpected data dir $datadir" ;;
  esac
  rm -f "$dir/pgdata" "$dir/pg.datadir" "$dir/pg.port" "$dir/pg.pid" "$dir/initdb.log"
}

# conninfo for database DB (default postgres) of the cluster of DIR.
hw_pg_conninfo() {
  printf 'host=127.0.0.1 port=%s user=postgres dbname=%s\n' "$(cat "$1/pg.port")" "${2:-postgres}"
}

# hw_psql DIR DB [psql args...]: unaligned, tuples only, stop on error.
hw_psql() {
  local dir=$1 db=$2
  shift 2
  PGOPTIONS='-c client_min_messages=warning' \
    "$HW_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$(hw_pg_conninfo "$dir" "$db")" "$@"
}

# hw_pg_fresh_db DIR DB: drops (if there) and creates database DB.
hw_pg_fresh_db() {
  hw_psql "$1" postgres -c "DROP DATABASE IF EXISTS \"$2\" WITH (FORCE)" -c "CREATE DATABASE \"$2\""
}

# ---------------------------------------------------------------------------------------------
# Redis: DIR/redis.pid holds "PID START", DIR/redis.port the port, DIR/redis.log the log.

hw_redis_start() {
  local dir port pid start i
  dir=$(mkdir -p "$1" && cd "$1" && pwd)
  port=$2
  hw_log "starting Redis on 127.0.0.1:$port"
  setsid redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize no \
    --dir "$dir" >"$dir/redis.log" 2>&1 &
  pid=$!
  start=$(hw_pid_start "$pid") || start=gone
  printf '%s %s\n' "$pid" "$start" >"$dir/redis.pid"
  printf '%s\n' "$port" >"$dir/redis.port"
  hw_on_exit hw_redis_stop "$dir"
  for ((i = 0; i < 100; i++)); do
    if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
      hw_log "Redis up, pid $pid"
      return 0
    fi
    hw_pid_is "$pid" "$start" || break
    sleep 0.1
  done
  tail -n 20 "$dir/redis.log" >&2 || true
  hw_die "Redis did not start on port $port"
}

hw_redis_stop() {
  local dir=$1 pid start
  [ -f "$dir/redis.pid" ] || return 0
  read -r pid start <"$dir/redis.pid"
  hw_stop_pid "$pid" "$start" redis 10 || true
  rm -f "$dir/redis.pid"
}

# hw_redis_cli DIR [args...]
hw_redis_cli() {
  local dir=$1
  shift
  redis-cli -h 127.0.0.1 -p "$(cat "$dir/redis.port")" "$@"
}

# Number of hw:veh:{xx}:* keys (SCAN, not KEYS, so a large Redis is not blocked).
hw_redis_count_veh() {
  hw_redis_cli "$1" --scan --pattern 'hw:veh:*' | wc -l
}

# Members of every bucket's geo set hw:geo:{xx} together (README, "Redis keys").
hw_redis_count_geo() {
  hw_redis_cli "$1" --scan --pattern 'hw:geo:*' | sed 's/^/ZCARD /' | hw_redis_cli "$1" |
    awk '{ n += $1 } END { print n + 0 }'
}

# One latest-state hash key, hw:veh:{xx}:<terminal_id> (empty when none).
hw_redis_sample_veh_key() {
  # awk reads the whole scan: `head -n 1` would exit first and redis-cli's next write would die
  # of SIGPIPE, failing the pipeline (pipefail) and with it a script under set -e (ops/demo did,
  # now and then, right after its simulators).
  hw_redis_cli "$1" --scan --pattern 'hw:veh:*' | awk 'NR == 1 { print }'
}

# hw_progress PID INTERVAL_S LABEL CMD...: while PID runs, shows "LABEL  t=..s  <CMD output>"
# every INTERVAL_S: one line rewritten in place on a terminal, a line per 10 s otherwise.
hw_progress() {
  local pid=$1 interval=$2 label=$3 t0=$SECONDS line out last=-10 tty=0
  shift 3
  [ -t 2 ] && tty=1
  while hw_alive "$pid"; do
    sleep "$interval"
    out=$("$@" 2>/dev/null | tr '\n' ' ') || true # a failed probe must not end the script
    line="$label  t=$((SECONDS - t0))s  $out"
    if [ "$tty" -eq 1 ]; then
      printf '\r\033[K%s' "$line" >&2
    elif [ $((SECONDS - last)) -ge 10 ]; then
      printf '%s\n' "$line" >&2
      last=$SECONDS
    fi
  done
  if [ "$tty" -eq 1 ]; then printf '\n' >&2; fi
}

# Prints the elapsed time since SECONDS was START as "Mm SSs".
# hw_cpu_seconds PID: CPU seconds (user + system) PID has used so far: fields 14 and 15 of
# /proc/PID/stat, in ticks.
hw_cpu_seconds() {
  local stat
  local -a f
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -r -a f <<<"${stat##*) }" # fields from 3 (state) on
  awk -v u="${f[11]}" -v s="${f[12]}" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (u + s) / hz }'
}

# hw_pg_cpu_seconds DIR: CPU seconds the PostgreSQL cluster of DIR has used so far: the
# postmaster, its children, and the children it has reaped (backends of closed connections).
hw_pg_cpu_seconds() {
  local pm stat pid
  local -a f
  local ticks=0
  pm=$(cat "$1/pg.pid") || return 1
  pm=${pm%% *}
  for stat in /proc/[0-9]*/stat; do
    pid=${stat#/proc/}
    pid=${pid%/stat}
    stat=$(cat "$stat" 2>/dev/null) || continue
    read -r -a f <<<"${stat##*) }"
    if [ "$pid" = "$pm" ]; then
      ticks=$((ticks + f[11] + f[12] + f[13] + f[14]))
    elif [ "${f[1]}" = "$pm" ]; then
      ticks=$((ticks + f[11] + f[12]))
    fi
  done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }'
}

hw_elapsed() {
  local s=$((SECONDS - $1))
  printf '%dm%02ds' $((s / 60)) $((s % 60))
}

# ---- fuzzing (ops/test, ops/fuzz) ----

# hw_fuzz_build DIR: builds the libFuzzer targets (only they, through tests/fuzz's hw_fuzzers:
# fuzzing needs nothing else) with clang into DIR.
hw_fuzz_build() {
  local dir=$1
  CC=clang cmake -S "$HW_ROOT" -B "$dir" -DCMAKE_C_COMPILER=clang -DHW_FUZZ=ON || return
  cmake --build "$dir" -j2 --target hw_fuzzers
}

# hw_fuzz_one DIR SECONDS WORK TARGET: runs one fuzz_* executable TARGET for SECONDS on a copy
# of its seed corpus tests/fuzz/corpus/<name>/ made under WORK (libFuzzer adds the inputs it finds
# to its corpus directory; the repository's must not change), with tests/fuzz/<name>.dict when
# there is one. A crash, leak, timeout or out-of-memory fails it (returns 1); the input and the
# log are kept in DIR/findings/<name>/.
hw_fuzz_one() {
  local dir=$1 secs=$2 work=$3 t=$4 name short corpus art log rc=0 dict=()
  name=${t##*/}
  short=${name#fuzz_}
  corpus=$work/fuzz/corpus/$short
  art=$work/fuzz/artifacts/$short
  log=$work/fuzz/$name.log
  rm -rf "$corpus" "$art"
  mkdir -p "$corpus" "$art" || return
  if [ -d "$HW_ROOT/tests/fuzz/corpus/$short" ]; then
    cp -R "$HW_ROOT/tests/fuzz/corpus/$short/." "$corpus/" || return
  else
    hw_log "fuzz: $name has no seed corpus (tests/fuzz/corpus/$short/)"
  fi
  if [ -f "$HW_ROOT/tests/fuzz/$short.dict" ]; then
    dict=("-dict=$HW_ROOT/tests/fuzz/$short.dict")
  fi
  hw_log "fuzz: $name for ${secs}s on $(find "$corpus" -type f | wc -l) seeds"
  "$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$art/" "${dict[@]}" "$corpus" >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$art")" ]; then
    tail -n 60 "$log" >&2
    mkdir -p "$dir/findings/$short"
    cp -R "$art/." "$log" "$dir/findings/$short/"
    hw_log "fuzz: $name FAILED (exit $rc); inputs and log kept in $dir/findings/$short/"
    return 1
  fi
  hw_log "fuzz: $name ok: $(grep -E '^stat::number_of_executed_units' "$log" || echo '?')"
}

# hw_fuzz_run_all DIR SECONDS WORK: runs every fuzz_* executable of DIR/tests/fuzz for SECONDS
# each (hw_fuzz_one), HW_FUZZ_JOBS of them at a time (default: one per core; a fuzzer is
# single-threaded, so each still has a core to itself). Returns 1 if any target failed.
hw_fuzz_run_all() {
  local dir=$1 secs=$2 work=$3 targets=() t jobs pids=() failed=0
  jobs=${HW_FUZZ_JOBS:-$(nproc)}
  if [ -d "$dir/tests/fuzz" ]; then
    mapfile -t targets < <(find "$dir/tests/fuzz" -maxdepth 1 -type f -name 'fuzz_*' \
      -perm -u+x | sort)
  fi
  if [ "${#targets[@]}" -eq 0 ]; then
    hw_log "fuzz: no fuzz_* executable in $dir/tests/fuzz"
    return 1
  fi
  # Each fuzzer is waited for by its pid, oldest first (they all run SECONDS): `wait -n` would
  # also return for any other job of the calling shell (ops/test's Redis is one).
  for t in "${targets[@]}"; do
    if [ "${#pids[@]}" -ge "$jobs" ]; then
      wait "${pids[0]}" || failed=1
      pids=("${pids[@]:1}")
    fi
    hw_fuzz_one "$dir" "$secs" "$work" "$t" &
    pids+=($!)
  done
  for t in "${pids[@]}"; do
    wait "$t" || failed=1
  done
  return "$failed"
}
