# shellcheck shell=bash
# Common helpers for the siltfs integration tests (tests/integration/*.sh and
# tests/integration/stress/*.sh).  Source it first thing:
#
#     . "$(dirname "$0")/lib.sh"          (or "$(dirname "$0")/../lib.sh")
#
# It turns on `set -euo pipefail`, makes a private work directory $SILT_TMP
# (mktemp -d under /tmp) and installs an EXIT trap that ALWAYS cleans up, even
# when the script fails or is interrupted: lazy-unmounts every mount made
# through these helpers, swapoff + detaches every loop device made through
# them, kills the siltfs daemons started from $SILT_TMP (by pid), empties
# and removes the memory cgroups made through silt_memcg_make, puts back
# what silt_install_system changed in the system, removes the daemons' log
# files in /var/log/siltfs that name $SILT_TMP, and removes $SILT_TMP.
#
# Environment (meson sets these; defaults make hand runs work):
#   SRCDIR    source tree              (default: two levels above this file)
#   BUILDDIR  build tree               (default: $SRCDIR/build-it)
#   SILTFS    the daemon               (default: $BUILDDIR/siltfs)
#   SILTCTL   the CLI                  (default: $BUILDDIR/siltctl)
#   SILT_RENAMEAT2, SILT_XATTR, SILT_SEEK, SILT_ODIRECT, SILT_MMAPRW,
#   SILT_SYNCIO, SILT_STRIPES, SILT_SWAPHOG: the C helpers of tests/integration/tools/
#                                      (default: $BUILDDIR/tests/integration/silt-*)
#   SILT_KEEP=1  keep $SILT_TMP after the run (for debugging)
#   SILT_SANITIZED=1  the binaries are built with AddressSanitizer (which,
#                among other things, makes mlockall a no-op): checks that
#                cannot hold there are skipped, saying so
#   SILT_DEADLINE  seconds (default 240) after which a watchdog kills -9 the
#                siltfs daemons this script started, so that a hung daemon
#                turns into failed checks and a summary instead of a meson
#                timeout with stale mounts; counted as a failure.  (The
#                watchdog is a background job: use `wait PID`, never a bare
#                `wait`, in tests.)
#
# Results: `check`/`check_eq`/`pass`/`fail` count; `silt_summary` prints
# "NAME: P passed, F failed" and exits non-zero when F > 0.  A script that
# dies early (set -e) still prints the summary line, marked ABORTED, and
# exits non-zero.

set -euo pipefail

SILT_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${SRCDIR:=$(cd "$SILT_LIB_DIR/../.." && pwd)}"
: "${BUILDDIR:=$SRCDIR/build-it}"
: "${SILTFS:=$BUILDDIR/siltfs}"
: "${SILTCTL:=$BUILDDIR/siltctl}"
: "${SILT_RENAMEAT2:=$BUILDDIR/tests/integration/silt-renameat2}"
: "${SILT_XATTR:=$BUILDDIR/tests/integration/silt-xattr}"
: "${SILT_SEEK:=$BUILDDIR/tests/integration/silt-seek}"
: "${SILT_ODIRECT:=$BUILDDIR/tests/integration/silt-odirect}"
: "${SILT_MMAPRW:=$BUILDDIR/tests/integration/silt-mmaprw}"
: "${SILT_SYNCIO:=$BUILDDIR/tests/integration/silt-syncio}"
: "${SILT_STRIPES:=$BUILDDIR/tests/integration/silt-stripes}"
: "${SILT_SWAPHOG:=$BUILDDIR/tests/integration/silt-swaphog}"
: "${SILT_DEADLINE:=240}"
export SRCDIR BUILDDIR SILTFS SILTCTL

# Name used in the summary line: the script's file name without .sh.
SILT_TEST_NAME=${SILT_TEST_NAME:-$(basename "$0" .sh)}
SILT_PASSED=0
SILT_FAILED=0
SILT_SKIPPED=0
SILT_SUMMARY_DONE=0
SILT_MOUNTS=()      # every mount point mounted through these helpers, in order
SILT_LOOPS=()       # every loop device attached through silt_losetup
SILT_SWAPS=()       # every swap file/device enabled through silt_swapon
SILT_PIDS=()        # every daemon pid we know we started
SILT_CGROUPS=()     # memory cgroups made through silt_memcg_make, "DIR:kill" or "DIR:move"
SILT_AT_EXIT=()     # commands silt_at_exit registered
SILT_INSTALLED=()   # files silt_install_system put into the system
SILT_INSTALL_DIRS=() # folders it created for them
SILT_NETNS=()       # every network namespace made through silt_netns_pair (removed with their veths)
SILT_IN_NS=""       # silt_mount_fg runs the daemon in this network namespace when set
SILT_LAST_ERR=""    # stderr file of the last silt_mount / silt_mount_fg
SILT_FG_PID=""      # pid of the last silt_mount_fg daemon

# The FUSE control filesystem, through which a hung connection is aborted
# (silt_fuse_abort). systemd mounts it at boot; a bare machine may not have.
# It is system set-up, shared by every test that runs, so it stays mounted.
if [ ! -d /sys/fs/fuse/connections ] || ! awk '$3 == "fusectl" { f = 1 } END { exit !f }' /proc/self/mounts; then
	modprobe fuse 2>/dev/null || true
	mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null || true
fi

# /var/log/siltfs is the daemons' default log folder: removed at exit only
# if it was not there before (and is empty).
SILT_VARLOG_EXISTED=0
[ -d /var/log/siltfs ] && SILT_VARLOG_EXISTED=1

SILT_TMP=$(mktemp -d /tmp/siltit.XXXXXX)
# World-traversable, so tests that run commands as user nobody can reach
# mounts under it.
chmod 0755 "$SILT_TMP"
export SILT_TMP

# ---------------------------------------------------------------------------
# Reporting

# pass MSG: count and print a passed check.
pass() { SILT_PASSED=$((SILT_PASSED + 1)); echo "  ok   $*"; }

# fail MSG: count and print a failed check (does not exit).
fail() { SILT_FAILED=$((SILT_FAILED + 1)); echo "  FAIL $*"; }

# silt_abort MSG: count a failure and stop the script now (the cleanup and
# the summary line still run).  For steps everything after depends on, such
# as the first mount.
silt_abort() { fail "$* (aborting)"; exit 1; }

# skip MSG: print a skipped check (counts neither way).
skip() { SILT_SKIPPED=$((SILT_SKIPPED + 1)); echo "  skip $*"; }

# say MSG: print a section heading.
say() { echo "== $*"; }

# check COND MSG: eval the shell condition COND; pass MSG if it is true,
# fail MSG otherwise.  Always returns 0 so that set -e does not stop the run.
#   check '[ -f "$f" ]' "file exists"
check() {
	local cond=$1; shift
	if eval "$cond"; then pass "$*"; else fail "$*   [false: $cond]"; fi
	return 0
}

# check_eq ACTUAL EXPECTED MSG: pass when the two strings are equal, else fail
# printing both.
check_eq() {
	local actual=$1 expected=$2; shift 2
	if [ "$actual" == "$expected" ]; then pass "$*"; else fail "$* (expected '$expected', got '$actual')"; fi
	return 0
}

# check_ge ACTUAL MIN MSG / check_le ACTUAL MAX MSG: integer comparisons.
check_ge() {
	local a=$1 b=$2; shift 2
	if [[ "$a" =~ ^-?[0-9]+$ ]] && [ "$a" -ge "$b" ]; then pass "$* ($a >= $b)"; else fail "$* (expected >= $b, got '$a')"; fi
	return 0
}
check_le() {
	local a=$1 b=$2; shift 2
	if [[ "$a" =~ ^-?[0-9]+$ ]] && [ "$a" -le "$b" ]; then pass "$* ($a <= $b)"; else fail "$* (expected <= $b, got '$a')"; fi
	return 0
}

# check_cmd MSG CMD...: run CMD; pass if it exits 0, else fail showing the
# tail of its output.  External commands get a 120 s timeout; shell
# functions run in the current shell (so their variable changes stick).
check_cmd() {
	local msg=$1; shift
	local out="$SILT_TMP/.check_cmd.out" rc=0
	if declare -F "$1" >/dev/null; then
		"$@" >"$out" 2>&1 || rc=$?
	else
		timeout -k 10 120 "$@" >"$out" 2>&1 || rc=$?
	fi
	if [ $rc -eq 0 ]; then pass "$msg"; else fail "$msg: '$*' exited $rc: $(tail -n 5 "$out")"; fi
	return 0
}

# check_cmd_fails MSG CMD...: pass if CMD exits non-zero.
check_cmd_fails() {
	local msg=$1; shift
	local rc=0
	if declare -F "$1" >/dev/null; then
		"$@" >/dev/null 2>&1 || rc=$?
	else
		timeout -k 10 120 "$@" >/dev/null 2>&1 || rc=$?
	fi
	if [ $rc -ne 0 ]; then pass "$msg"; else fail "$msg: '$*' unexpectedly succeeded"; fi
	return 0
}

# silt_summary: print "NAME: P passed, F failed" and exit 1 if any failed.
silt_summary() {
	SILT_SUMMARY_DONE=1
	local extra=""
	[ -e "$SILT_TMP/.watchdog" ] && fail "watchdog fired after ${SILT_DEADLINE}s: a daemon hung (see above)"
	[ "$SILT_SKIPPED" -gt 0 ] && extra=", $SILT_SKIPPED skipped"
	echo "$SILT_TEST_NAME: $SILT_PASSED passed, $SILT_FAILED failed$extra"
	[ "$SILT_FAILED" -eq 0 ] && exit 0
	exit 1
}

# ---------------------------------------------------------------------------
# Data helpers

# silt_wait_for SECONDS COND: poll (every 0.1 s) until the shell condition
# COND is true; false if it is still false after SECONDS.  For effects the
# daemon may finish asynchronously (freeing chunks after unlink/release).
silt_wait_for() {
	local secs=$1 cond=$2 i
	for ((i = 0; i < secs * 10; i++)); do
		eval "$cond" && return 0
		sleep 0.1
	done
	eval "$cond"
}

# json_get JSON FILTER: print the jq FILTER applied to the JSON text (raw
# strings, one value per line).  Returns non-zero if JSON does not parse.
#   json_get "$(siltctl status --json)" '.tiers[0].chunks'
json_get() { printf '%s' "$1" | jq -r "$2"; }

# silt_pattern BYTE SIZE: write SIZE bytes of value BYTE (0..255) to stdout.
silt_pattern() {
	local oct
	oct=$(printf '\\%03o' "$1")
	head -c "$2" /dev/zero | tr '\000' "$oct"
}

# silt_random FILE SIZE: fill FILE with SIZE random bytes.
silt_random() { head -c "$2" /dev/urandom > "$1"; }

# silt_range FILE OFF LEN: print LEN bytes of FILE starting at byte OFF.
silt_range() { dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" bs=1M status=none; }

# silt_is_zero FILE OFF LEN: true if FILE has LEN zero bytes at OFF (and is
# at least OFF+LEN long).
silt_is_zero() {
	local n
	n=$(silt_range "$1" "$2" "$3" | tr -d '\000' | wc -c)
	[ "$n" -eq 0 ] && [ "$(silt_range "$1" "$2" "$3" | wc -c)" -eq "$3" ]
}

# silt_is_byte FILE OFF LEN BYTE: true if FILE has LEN bytes of value BYTE at OFF.
silt_is_byte() {
	cmp -s <(silt_range "$1" "$2" "$3") <(silt_pattern "$4" "$3")
}

# silt_drop_caches: drop the kernel page cache so that the next reads of
# FUSE files really go to the daemon.
silt_drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

# silt_sum FILE: sha256 of FILE (just the hash).
silt_sum() { sha256sum "$1" | cut -d' ' -f1; }

# silt_tree_state DIR...: listing (path, type, size) plus sha256 of every
# regular file under the DIRs, sorted; compare two calls to prove nothing was
# written.
silt_tree_state() {
	find "$@" -printf '%p %y %s\n' 2>&1 | LC_ALL=C sort
	find "$@" -type f -exec sha256sum {} + 2>/dev/null | LC_ALL=C sort
}

# ---------------------------------------------------------------------------
# Volumes

# silt_make_volume DIR NTIERS [CHUNK_SIZE] [CAPACITY...]
# Create DIR/t0 .. DIR/t<N-1> (empty) and write DIR/vol.conf: volume name
# "v-<basename DIR>", tiers named t0, t1, ... with classes nvme, ssd, hdd (hdd
# for any further tier), path DIR/tK.  CHUNK_SIZE (e.g. 64K; empty or "-" =
# leave the default) and one CAPACITY per tier (e.g. 64M; empty, "-" or
# "auto" = auto) are optional.  Extra lines can be injected through:
#   SILT_VOLUME_OPTS  text appended to the [volume] section
#   SILT_TIER_OPTS    text appended to every [tier] section
#                     (e.g. $'high_watermark = 100%\nlow_watermark = 100%')
#   SILT_LOG_FILE     the log_file (default: silt_volume_log DIR, outside
#                     DIR, so that a refused mount leaves DIR as it was;
#                     empty: no log_file line, the daemon's default); not
#                     written when SILT_VOLUME_OPTS sets log_file itself
# Prints nothing; the config is DIR/vol.conf.
silt_make_volume() {
	local dir=$1 n=$2 cs=${3:-}
	shift 2; [ $# -gt 0 ] && shift
	local caps=("$@") classes=(nvme ssd hdd) i name conf
	mkdir -p "$dir"
	name="v-$(basename "$dir" | tr -c 'A-Za-z0-9._\n-' '_')"
	name=${name:0:63}
	conf="$dir/vol.conf"
	{
		echo "[volume]"
		echo "name = $name"
		[ -n "$cs" ] && [ "$cs" != "-" ] && echo "chunk_size = $cs"
		local log=${SILT_LOG_FILE-$(silt_volume_log "$dir")}
		# (before the options, which may open sections of their own)
		[[ -n "$log" && "${SILT_VOLUME_OPTS:-}" != *log_file* ]] && echo "log_file = $log"
		[ -n "${SILT_VOLUME_OPTS:-}" ] && echo "$SILT_VOLUME_OPTS"
		for ((i = 0; i < n; i++)); do
			mkdir -p "$dir/t$i"
			echo
			echo "[tier t$i]"
			echo "path = $dir/t$i"
			echo "class = ${classes[$i]:-hdd}"
			local cap=${caps[$i]:-}
			[ -n "$cap" ] && [ "$cap" != "-" ] && echo "capacity = $cap"
			[ -n "${SILT_TIER_OPTS:-}" ] && echo "$SILT_TIER_OPTS"
		done
	} > "$conf"
	return 0
}

# silt_volume_log DIR: the log file silt_make_volume DIR gives the daemon:
# $SILT_TMP/logs/<DIR below $SILT_TMP, '/' -> '_'>.log
silt_volume_log() {
	local rel=${1#"$SILT_TMP"/}
	echo "$SILT_TMP/logs/${rel//\//_}.log"
}

# silt_volume_name CONF: the name = value of CONF's [volume] section.
silt_volume_name() { sed -n 's/^name[[:space:]]*=[[:space:]]*//p' "$1" | head -n1; }

# silt_daemon_pids MNT: pids of running siltfs daemons whose command line has
# MNT as an argument (works for daemonised, -f and fstab-started daemons).
silt_daemon_pids() {
	local mnt p arg
	mnt=$(realpath -ms "$1")
	for p in $(pgrep -x siltfs 2>/dev/null || true); do
		while IFS= read -r -d '' arg; do
			if [ "$arg" == "$1" ] || [ "$arg" == "$mnt" ]; then echo "$p"; break; fi
		done 2>/dev/null < "/proc/$p/cmdline" || true
	done
}

# silt_is_mounted MNT: true if MNT is a mount point right now.
# (Reads /proc/self/mounts, so a dead daemon's mount still counts.)
silt_is_mounted() {
	local m
	m=$(realpath -ms "$1")
	awk -v m="$m" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts
}

# silt_is_fuse_mount MNT: true if MNT is mounted with a fuse* file system type.
silt_is_fuse_mount() {
	local m
	m=$(realpath -ms "$1")
	awk -v m="$m" '$2 == m && $3 ~ /^fuse/ { found = 1 } END { exit !found }' /proc/self/mounts
}

# silt_wait_mounted MNT [SECONDS] [PID]: wait (default 20 s) until MNT is a
# siltfs mount; give up early if PID (a daemon) dies.
silt_wait_mounted() {
	local mnt=$1 secs=${2:-20} pid=${3:-} i
	for ((i = 0; i < secs * 10; i++)); do
		if silt_is_fuse_mount "$mnt"; then return 0; fi
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
		sleep 0.1
	done
	return 1
}

# silt_track_mount MNT: register MNT (any file system) for lazy unmount at exit.
silt_track_mount() { SILT_MOUNTS+=("$1"); }

# silt_mount CONF MNT [OPTS]: mount the volume of CONF on MNT (created if
# needed) with "$SILTFS" CONF MNT [-o OPTS]; the daemon detaches once mounted.
# Waits until MNT is mounted.  The daemon's stderr goes to the file named in
# $SILT_LAST_ERR (and is echoed).  Returns non-zero (after echoing stderr) if
# siltfs fails or MNT does not get mounted.
silt_mount() {
	local conf=$1 mnt=$2 opts rc=0 p
	opts=$(silt_cache_opts "${3:-}")
	mkdir -p "$mnt"
	SILT_LAST_ERR=$(mktemp "$SILT_TMP/mount-err.XXXXXX")
	silt_track_mount "$mnt"
	if [ -n "$opts" ]; then
		timeout 60 "$SILTFS" "$conf" "$mnt" -o "$opts" </dev/null >/dev/null 2>"$SILT_LAST_ERR" || rc=$?
	else
		timeout 60 "$SILTFS" "$conf" "$mnt" </dev/null >/dev/null 2>"$SILT_LAST_ERR" || rc=$?
	fi
	sed 's/^/    [siltfs] /' "$SILT_LAST_ERR" | head -n 20
	if [ $rc -ne 0 ]; then
		echo "    silt_mount: '$SILTFS $conf $mnt${opts:+ -o $opts}' exited $rc" >&2
		return 1
	fi
	if ! silt_wait_mounted "$mnt" 20; then
		echo "    silt_mount: $mnt is not mounted after siltfs returned" >&2
		return 1
	fi
	for p in $(silt_daemon_pids "$mnt"); do SILT_PIDS+=("$p"); done
	return 0
}

# silt_cache_opts OPTS: OPTS, with cache=$SILT_CACHE added when that is set
# and OPTS name no cache mode (SILT_CACHE=writeback runs a whole suite with
# the kernel's writeback cache; tests that check the default mode then fail).
silt_cache_opts() {
	if [ -n "${SILT_CACHE:-}" ] && [[ ",$1," != *,cache=* ]]; then
		echo "${1:+$1,}cache=$SILT_CACHE"
	else
		echo "$1"
	fi
}

# silt_mount_fg CONF MNT [OPTS]: like silt_mount but runs "$SILTFS" ... -f in
# the background and records its pid in SILT_FG_PID (for kill -9 tests).
# Returns non-zero if the daemon dies or MNT is not mounted within 20 s.
silt_mount_fg() {
	local conf=$1 mnt=$2 opts
	opts=$(silt_cache_opts "${3:-}")
	mkdir -p "$mnt"
	SILT_LAST_ERR=$(mktemp "$SILT_TMP/mount-err.XXXXXX")
	silt_track_mount "$mnt"
	# A script's background jobs start with SIGINT/SIGQUIT ignored, and
	# libfuse then keeps them ignored: env restores the default dispositions.
	if [ -n "$opts" ]; then
		${SILT_IN_NS:+nsenter --net=/run/netns/$SILT_IN_NS} env --default-signal=INT,QUIT "$SILTFS" "$conf" "$mnt" -f -o "$opts" </dev/null >/dev/null 2>"$SILT_LAST_ERR" &
	else
		${SILT_IN_NS:+nsenter --net=/run/netns/$SILT_IN_NS} env --default-signal=INT,QUIT "$SILTFS" "$conf" "$mnt" -f </dev/null >/dev/null 2>"$SILT_LAST_ERR" &
	fi
	SILT_FG_PID=$!
	SILT_PIDS+=("$SILT_FG_PID")
	if ! silt_wait_mounted "$mnt" 20 "$SILT_FG_PID"; then
		sed 's/^/    [siltfs] /' "$SILT_LAST_ERR" | head -n 20
		echo "    silt_mount_fg: $mnt not mounted (daemon pid $SILT_FG_PID)" >&2
		return 1
	fi
	return 0
}

# silt_pid_alive PID: true if PID runs (a zombie has exited: not alive).
silt_pid_alive() { kill -0 "$1" 2>/dev/null && ! grep -qs '^State:.*Z' "/proc/$1/status"; }

# silt_forget_pid PID...: drop the PIDs (exited and reaped: their numbers may
# be reused) from SILT_PIDS, so that the exit cleanup signals no stranger.
silt_forget_pid() {
	local p q keep=()
	for p in "${SILT_PIDS[@]}"; do
		for q in "$@"; do [ "$p" = "$q" ] && continue 2; done
		keep+=("$p")
	done
	SILT_PIDS=("${keep[@]}")
}

# silt_netns_pair NS1 NS2 ADDR1 ADDR2: two network namespaces (hosts in
# miniature) joined by a veth pair named v-NS1/v-NS2, with ADDR1/ADDR2
# (CIDR) on them; removed at exit, also on failure. Daemons started with
# SILT_IN_NS=NS run in NS's network only (nsenter --net: mounts stay
# visible, unlike ip netns exec).
silt_netns_pair() {
	local a=$1 b=$2
	ip netns add "$a" && SILT_NETNS+=("$a")
	ip netns add "$b" && SILT_NETNS+=("$b")
	ip link add "v-$a" netns "$a" type veth peer name "v-$b" netns "$b"
	ip -n "$a" addr add "$3" dev "v-$a"
	ip -n "$b" addr add "$4" dev "v-$b"
	ip -n "$a" link set lo up
	ip -n "$b" link set lo up
	ip -n "$a" link set "v-$a" up
	ip -n "$b" link set "v-$b" up
}

# silt_wait_pids_gone SECONDS PID...: wait until none of the PIDs runs.
silt_wait_pids_gone() {
	local secs=$1 i p alive; shift
	for ((i = 0; i < secs * 10; i++)); do
		alive=0
		for p in "$@"; do
			if silt_pid_alive "$p"; then alive=1; fi
		done
		[ $alive -eq 0 ] && return 0
		sleep 0.1
	done
	return 1
}

# silt_umount MNT: umount MNT and wait (30 s) until its daemon has exited, so
# that the volume can be mounted again at once.  Returns non-zero if the
# umount fails or the daemon does not exit.
silt_umount() {
	local mnt=$1 pids i rc=1
	pids=$(silt_daemon_pids "$mnt")
	for ((i = 0; i < 10; i++)); do
		if umount "$mnt" 2>/dev/null; then rc=0; break; fi
		silt_is_mounted "$mnt" || { rc=0; break; }
		sleep 0.5
	done
	if [ $rc -ne 0 ]; then
		echo "    silt_umount: umount $mnt failed: $(umount "$mnt" 2>&1)" >&2
		return 1
	fi
	# shellcheck disable=SC2086
	if [ -n "$pids" ] && ! silt_wait_pids_gone 30 $pids; then
		echo "    silt_umount: daemon(s) $pids still running 30 s after umount $mnt" >&2
		return 1
	fi
	# reap a -f daemon we started, if it was ours
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	return 0
}

# silt_ctl ARGS...: run "$SILTCTL" ARGS with a 30 s timeout.
silt_ctl() { timeout 30 "$SILTCTL" "$@"; }

# silt_mount_refused CONF MNT REGEX MSG: siltfs must refuse to mount CONF at
# MNT, saying something grep -E REGEX matches; check MSG (with its words).
# A mount that happened anyway is counted a failure and undone.
silt_mount_refused() {
	local rc=0 refused_err refused_want=$3
	refused_err=$(timeout 30 "$SILTFS" "$1" "$2" 2>&1 </dev/null) || rc=$?
	check "[ $rc -ne 0 ] && grep -qE -- \"\$refused_want\" <<<\"\$refused_err\"" "$4 ($refused_err)"
	if silt_is_mounted "$2"; then fail "$4: it mounted"; silt_umount "$2"; fi
}

# silt_where_tier_chunks FILE TIER: number of FILE's chunks on tier TIER
# (from siltctl where --json); empty output if siltctl fails.
silt_where_tier_chunks() {
	local j
	j=$(silt_ctl where --json "$1") || return 1
	json_get "$j" ".tiers[] | select(.name == \"$2\") | .chunks"
}

# silt_qio FMT IMAGE CMD...: qemu-io -t none (O_DIRECT) on IMAGE with one -c
# per CMD; fails (printing the output) if qemu-io fails or reports a failed
# command or a pattern mismatch. Bounded (120 s).
silt_qio() {
	local fmt=$1 img=$2 out rc=0 args=() c
	shift 2
	for c in "$@"; do args+=(-c "$c"); done
	out=$(timeout 120 qemu-io -f "$fmt" -t none "${args[@]}" "$img" 2>&1) || rc=$?
	if [ $rc -ne 0 ] || grep -qiE 'fail|error|mismatch' <<<"$out"; then
		echo "$out" | head -n 10 | sed 's/^/    | /'
		return 1
	fi
	return 0
}

# silt_where_total_chunks FILE: number of chunks of FILE mapped on any tier
# (sum over tiers of siltctl where --json).
silt_where_total_chunks() {
	local j
	j=$(silt_ctl where --json "$1") || return 1
	json_get "$j" '[.tiers[].chunks] | add // 0'
}

# silt_check_accounting MNT [STRAYS_OK]: with MNT quiescent, check (two checks) that
# 1. the chunks siltctl status counts on all tiers are exactly the chunks
#    siltctl where reports for the files (each inode once), i.e. truncate,
#    punch, unlink, rename-over leaked nothing, and
# 2. every tier file <tier>/<uuid>/chunks/<ino>[.<seg>] belongs to a live
#    inode of MNT (no orphaned tier files).
# With STRAYS_OK (after a power cut, which can leave the tier files of
# inodes whose creation or deletion only half reached the disk: leftovers
# for fsck, which nothing reclaims yet), orphaned tier files are reported
# as a skip, not a failure.
silt_check_accounting() {
	local mnt=$1 strays_ok=${2:-} s uuid total=0 n ino path p f stray=""
	local -A seen=()
	sync -f "$mnt" 2>/dev/null
	s=$(silt_ctl -m "$mnt" status --json) || { fail "accounting: siltctl -m $mnt status failed"; return 0; }
	uuid=$(json_get "$s" .volume.uuid)
	while read -r ino path; do
		[ -n "${seen[$ino]:-}" ] && continue
		seen[$ino]=1
		n=$(silt_where_total_chunks "$path") || n=0
		total=$((total + ${n:-0}))
	done < <(find "$mnt" -type f -printf '%i %p\n')
	check_eq "$total" "$(json_get "$s" '[.tiers[].chunks] | add')" \
		"accounting: status chunk count = sum of the files' chunks (${#seen[@]} files)"
	for p in $(json_get "$s" '.tiers[].path'); do
		for f in "$p/$uuid/chunks"/*; do
			[ -e "$f" ] || continue
			ino=$(basename "$f"); ino=${ino%%.*}
			[ -n "${seen[$ino]:-}" ] || stray+=" $f"
		done
	done
	if [ -n "$stray" ] && [ -n "$strays_ok" ]; then
		skip "accounting: $(wc -w <<< "$stray") tier files without a live inode, left for fsck:$stray"
	else
		check '[ -z "$stray" ]' "accounting: no tier file without a live inode${stray:+ (stray:$stray)}"
	fi
	return 0
}

# silt_chunk_files VOLDIR INO: the tier files holding inode INO's chunks
# (<tier>/<uuid>/chunks/INO and INO.<segment>) under VOLDIR/t*.
silt_chunk_files() {
	find "$1"/t* -path "*/chunks/$2" -o -path "*/chunks/$2.*" 2>/dev/null | LC_ALL=C sort
}

# silt_losetup FILE [LOSETUP OPTIONS...]: attach FILE to a free loop device,
# register it for detaching at exit and set SILT_LOOP to its name.  (Call it
# directly, not in $(...), or the registration is lost.)
silt_losetup() {
	local f=$1; shift
	SILT_LOOP=$(losetup -f --show "$@" "$f") || return 1
	SILT_LOOPS+=("$SILT_LOOP")
}

# silt_lodetach DEV: detach loop device DEV now (losetup -d) and forget it, so
# that the exit cleanup does not detach a device someone else got since.
silt_lodetach() {
	local d keep=()
	for d in "${SILT_LOOPS[@]}"; do [ "$d" != "$1" ] && keep+=("$d"); done
	SILT_LOOPS=("${keep[@]}")
	losetup -d "$1"
}

# silt_swapon DEV: swapon DEV and register it for swapoff at exit.
silt_swapon() { swapon "$1" && SILT_SWAPS+=("$1"); }

# ---------------------------------------------------------------------------
# Memory cgroups (cgroup v1 memory controller)

# silt_memcg_parent: the memory cgroup folder this script runs in (under the
# memory controller's mount, found in /proc/self/mounts); fails if there
# is no v1 memory controller.
silt_memcg_parent() {
	local root path
	root=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ { print $2; exit }' /proc/self/mounts)
	[ -n "$root" ] || return 1
	path=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' /proc/self/cgroup)
	echo "$root${path%/}"
}

# silt_memcg_make NAME LIMIT kill|move: make the memory cgroup NAME-<our
# pid> under ours with memory.limit_in_bytes LIMIT (memory+swap stays
# unlimited, so its pages may be swapped), set SILT_MEMCG to its folder and
# register it for the exit cleanup, which kills the processes left in it
# (kill: a workload) or moves them back to the parent (move: a daemon the
# test squeezed) and removes it.  (Call it directly, not in $(...).)
silt_memcg_make() {
	local parent
	parent=$(silt_memcg_parent) || { echo "silt_memcg_make: no cgroup v1 memory controller" >&2; return 1; }
	SILT_MEMCG="$parent/$1-$$"
	mkdir "$SILT_MEMCG" || return 1
	SILT_CGROUPS+=("$SILT_MEMCG:$3")
	echo "$2" > "$SILT_MEMCG/memory.limit_in_bytes"
}

# silt_memcg_run DIR CMD...: run CMD inside memory cgroup DIR.
silt_memcg_run() {
	local d=$1; shift
	( echo "$BASHPID" > "$d/cgroup.procs" && exec "$@" )
}

# silt_memcg_empty DIR kill|move: kill the processes in DIR, or move them
# to its parent.
silt_memcg_empty() {
	local p
	for p in $(cat "$1/cgroup.procs" 2>/dev/null); do
		if [ "$2" = kill ]; then kill -9 "$p" 2>/dev/null
		else echo "$p" > "$(dirname "$1")/cgroup.procs" 2>/dev/null; fi
	done
}

# silt_memcg_remove DIR: empty DIR as registered (kill or move) and remove
# it, waiting up to 5 s for killed processes to go; false if it stays.
silt_memcg_remove() {
	local e d=$1 mode=kill keep=() i
	for e in "${SILT_CGROUPS[@]}"; do
		if [ "${e%:*}" = "$d" ]; then mode=${e##*:}; else keep+=("$e"); fi
	done
	SILT_CGROUPS=("${keep[@]}")
	for ((i = 0; i < 50; i++)); do
		silt_memcg_empty "$d" "$mode"
		rmdir "$d" 2>/dev/null && return 0
		[ -d "$d" ] || return 0
		sleep 0.1
	done
	echo "silt_memcg_remove: cannot remove $d (tasks: $(tr '\n' ' ' < "$d/cgroup.procs"))" >&2
	return 1
}

# ---------------------------------------------------------------------------
# Installing into the system

# silt_install_system: install the build into the real system for the rest
# of the script (meson install, prefix as configured: /usr/local/bin/siltfs,
# where mount(8) finds it, /sbin/umount.fuse.siltfs, where umount(8) finds
# it, man pages, unit, completion). Files it replaces are saved and put
# back at exit, files and folders it creates are removed at exit. One test
# on the machine at a time holds the installation (a lock folder naming our
# pid; a dead holder's lock is taken over).
SILT_INSTALL_LOCK=/run/lock/siltfs-test-install
silt_install_system() {
	local stage="$SILT_TMP/.stage" f rel d i holder
	mkdir -p "$(dirname "$SILT_INSTALL_LOCK")"
	for ((i = 0; ; i++)); do
		mkdir "$SILT_INSTALL_LOCK" 2>/dev/null && break
		holder=$(cat "$SILT_INSTALL_LOCK/pid" 2>/dev/null)
		if [ -n "$holder" ] && ! kill -0 "$holder" 2>/dev/null; then
			rm -rf "$SILT_INSTALL_LOCK"
			continue
		fi
		[ $i -ge 600 ] && { echo "    silt_install_system: $SILT_INSTALL_LOCK held by pid $holder" >&2; return 1; }
		sleep 1
	done
	echo $$ > "$SILT_INSTALL_LOCK/pid"
	SILT_INSTALL_LOCKED=1
	meson install -C "$BUILDDIR" --no-rebuild --quiet --destdir "$stage" >/dev/null || return 1
	while IFS= read -r -d '' f; do
		rel=${f#"$stage"}
		d=$(dirname "$rel")
		while [ ! -d "$d" ]; do SILT_INSTALL_DIRS=("$d" "${SILT_INSTALL_DIRS[@]}"); d=$(dirname "$d"); done
		mkdir -p "$(dirname "$rel")"
		if [ -e "$rel" ] || [ -L "$rel" ]; then
			mkdir -p "$SILT_TMP/.backup$(dirname "$rel")"
			cp -a "$rel" "$SILT_TMP/.backup$rel"
		fi
		SILT_INSTALLED+=("$rel")
		# beside, then renamed: a running siltfs keeps its old binary
		cp -a "$f" "$rel.silt-new" && mv -f "$rel.silt-new" "$rel" || return 1
	done < <(find "$stage" \( -type f -o -type l \) -print0)
}

# silt_at_exit CMD: eval CMD at exit, after the unmounts (for files a test
# puts outside $SILT_TMP, such as /etc/siltfs/NAME.conf). Newest first.
silt_at_exit() { SILT_AT_EXIT+=("$1"); }

# Undo silt_install_system (EXIT trap).
silt_uninstall_system() {
	local i rel
	for ((i = ${#SILT_INSTALLED[@]} - 1; i >= 0; i--)); do
		rel=${SILT_INSTALLED[$i]}
		if [ -e "$SILT_TMP/.backup$rel" ] || [ -L "$SILT_TMP/.backup$rel" ]; then
			mv -f "$SILT_TMP/.backup$rel" "$rel"
		else
			rm -f "$rel"
		fi
	done
	for ((i = ${#SILT_INSTALL_DIRS[@]} - 1; i >= 0; i--)); do rmdir "${SILT_INSTALL_DIRS[$i]}" 2>/dev/null; done
	[ "${SILT_INSTALL_LOCKED:-0}" = 1 ] && rm -rf "$SILT_INSTALL_LOCK"
	SILT_INSTALLED=(); SILT_INSTALL_DIRS=(); SILT_INSTALL_LOCKED=0
}

# ---------------------------------------------------------------------------
# Watchdog

# silt_kill_our_daemons SIGNAL: send SIGNAL to every siltfs daemon whose
# command line mentions $SILT_TMP, and to the pids in SILT_PIDS; prints the
# pids signalled.
silt_kill_our_daemons() {
	local sig=$1 p
	for p in $(pgrep -x siltfs 2>/dev/null); do
		if tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF "$SILT_TMP"; then
			kill "-$sig" "$p" 2>/dev/null && echo "$p"
		fi
	done
	for p in "${SILT_PIDS[@]}"; do kill "-$sig" "$p" 2>/dev/null && echo "$p"; done
	return 0
}

# silt_fuse_conn MNT: the number of MNT's FUSE connection, i.e. its directory
# under /sys/fs/fuse/connections (the minor of the mount's device).
silt_fuse_conn() {
	awk -v m="$(realpath -ms "$1")" '$5 == m { split($3, d, ":"); print d[2]; exit }' /proc/self/mountinfo
}

# silt_fuse_abort MNT: abort MNT's FUSE connection: every request waiting on
# the daemon fails with ENOTCONN at once and the mount is dead from then on.
silt_fuse_abort() {
	local n
	n=$(silt_fuse_conn "$1")
	[ -n "$n" ] && [ -e "/sys/fs/fuse/connections/$n/abort" ] && echo 1 > "/sys/fs/fuse/connections/$n/abort"
	return 0
}

# silt_daemon_stacks MNT: what the daemon of MNT and its threads are doing
# (name, state, kernel stack): printed when something hangs.
silt_daemon_stacks() {
	local p t n
	n=$(silt_fuse_conn "$1")
	[ -n "$n" ] && echo "    fuse connection $n: waiting=$(cat "/sys/fs/fuse/connections/$n/waiting" 2>/dev/null)"
	for p in $(silt_daemon_pids "$1"); do
		for t in /proc/"$p"/task/*; do
			echo "    $(cat "$t/comm" 2>/dev/null) $(awk '/^State:/ {print $2}' "$t/status" 2>/dev/null)" \
				"$(tr '\n' ' ' < "$t/stack" 2>/dev/null | cut -c1-200)"
		done
	done
}

# silt_to_file FILE CMD...: run CMD with its output (stdout and stderr)
# into FILE; for silt_bounded, which does not capture.
silt_to_file() { local f=$1; shift; "$@" >"$f" 2>&1; }

# silt_bounded SECS MNT MSG CMD...: run CMD, but for SECS seconds at most. If it
# is still running then, print what the daemon of MNT is doing, abort MNT's
# FUSE connection (so that CMD and anything else stuck in the kernel gets
# ENOTCONN), kill CMD, count a failure "MSG: hung" and return 124; the mount
# is dead afterwards. Otherwise return CMD's status. CMD's output is not
# captured.
silt_bounded() {
	local secs=$1 mnt=$2 msg=$3 rc=0 pid i
	shift 3
	"$@" &
	pid=$!
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "  HANG: $msg: still running after ${secs}s; aborting the FUSE connection of $mnt" >&2
		silt_daemon_stacks "$mnt" >&2
		# a test's own view of the hang (a function name), e.g. a loop device's queue
		[ -n "${SILT_HANG_INFO:-}" ] && "$SILT_HANG_INFO" >&2
		silt_fuse_abort "$mnt"
		sleep 1
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		fail "$msg: hung for ${secs}s (FUSE connection aborted)"
		return 124
	fi
	wait "$pid" || rc=$?
	return $rc
}

# Started below; kills our daemons once SILT_DEADLINE seconds have passed.
# NOTE: it is a background job of the test script, so never use a bare
# `wait` in a test (it would wait for the watchdog): wait for given pids.
silt_watchdog_start() {
	(
		trap 'kill $sp 2>/dev/null; exit 0' TERM
		# (not on the test's output: a TERM that comes before the trap is
		# set leaves the sleep behind, and meson waits for whatever holds
		# the test's stdout: it stalled the suite for SILT_DEADLINE once)
		sleep "$SILT_DEADLINE" </dev/null >/dev/null 2>&1 & sp=$!
		wait $sp
		touch "$SILT_TMP/.watchdog"
		echo "  WATCHDOG: ${SILT_DEADLINE}s passed; aborting our FUSE connections" >&2
		# (this subshell's copy of SILT_MOUNTS is from before any mount)
		for m in $(awk -v t="$SILT_TMP/" '$3 ~ /^fuse/ && index($2, t) == 1 { print $2 }' /proc/self/mounts); do
			silt_daemon_stacks "$m" >&2
			silt_fuse_abort "$m"
		done
		echo "  WATCHDOG: killing daemons: $(silt_kill_our_daemons KILL | tr '\n' ' ')" >&2
	) &
	SILT_WATCHDOG_PID=$!
}

# ---------------------------------------------------------------------------
# Cleanup (EXIT trap)

silt_cleanup() {
	local rc=$? i m d p f pids=()
	trap - EXIT INT TERM
	set +e
	[ -n "${SILT_WATCHDOG_PID:-}" ] && kill "$SILT_WATCHDOG_PID" 2>/dev/null
	# workloads in our cgroups die first (their swapped pages go with them),
	# squeezed daemons get their memory back
	for d in "${SILT_CGROUPS[@]}"; do silt_memcg_empty "${d%:*}" "${d##*:}"; done
	# inner (non-FUSE) mounts first, newest first
	for ((i = ${#SILT_MOUNTS[@]} - 1; i >= 0; i--)); do
		m=${SILT_MOUNTS[$i]}
		if silt_is_mounted "$m" && ! silt_is_fuse_mount "$m"; then
			umount -l "$m" 2>/dev/null
		fi
	done
	for d in "${SILT_SWAPS[@]}"; do swapoff "$d" 2>/dev/null; done
	for d in "${SILT_LOOPS[@]}"; do
		swapoff "$d" 2>/dev/null
		losetup -d "$d" 2>/dev/null
	done
	# FUSE mounts, newest first
	for ((i = ${#SILT_MOUNTS[@]} - 1; i >= 0; i--)); do
		m=${SILT_MOUNTS[$i]}
		while silt_is_mounted "$m"; do
			fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || break
		done
	done
	# daemons we started: recorded pids plus any siltfs whose command line
	# mentions our private directory
	pids=($(silt_kill_our_daemons TERM))
	if [ ${#pids[@]} -gt 0 ]; then
		silt_wait_pids_gone 5 "${pids[@]}" || silt_kill_our_daemons KILL >/dev/null
	fi
	for ((i = ${#SILT_CGROUPS[@]} - 1; i >= 0; i--)); do silt_memcg_remove "${SILT_CGROUPS[$i]%:*}"; done
	# sanitizer reports our daemons printed (in an ASan build UBSan's go to
	# stderr whatever log_path says): the test fails, and shows them
	for f in $(grep -lE "runtime error:|ERROR: (Address|Leak|UndefinedBehavior)Sanitizer" \
		"$SILT_TMP"/mount-err.* 2>/dev/null); do
		echo "  FAIL a daemon's sanitizer report ($f):"
		grep -E -A30 "runtime error:|ERROR: (Address|Leak|UndefinedBehavior)Sanitizer" "$f" | head -n 40
		rc=1
	done
	# network namespaces (their veths go with them)
	for d in "${SILT_NETNS[@]}"; do ip netns del "$d" 2>/dev/null; done
	# control sockets left behind by daemons killed with SIGKILL
	rm -f /run/siltfs/*"$(basename "$SILT_TMP")"*.sock 2>/dev/null
	for ((i = ${#SILT_AT_EXIT[@]} - 1; i >= 0; i--)); do eval "${SILT_AT_EXIT[$i]}"; done
	silt_uninstall_system
	# default log files (/var/log/siltfs/<volume>.log) of our daemons
	for p in /var/log/siltfs/*; do
		[ -f "$p" ] && grep -qsF "$SILT_TMP/" "$p" && rm -f "$p"
	done
	[ "$SILT_VARLOG_EXISTED" = 1 ] || rmdir /var/log/siltfs 2>/dev/null
	if [ "${SILT_KEEP:-0}" = 1 ]; then
		echo "(kept $SILT_TMP)"
	else
		rm -rf --one-file-system "$SILT_TMP" 2>/dev/null
	fi
	if [ "$SILT_SUMMARY_DONE" = 0 ]; then
		echo "$SILT_TEST_NAME: $SILT_PASSED passed, $SILT_FAILED failed, ABORTED (exit status $rc)"
		[ $rc -eq 0 ] && rc=1
	fi
	exit $rc
}
trap silt_cleanup EXIT
silt_watchdog_start
trap 'echo "interrupted"; exit 130' INT TERM
# Say where an unexpected error stopped the script.
trap 'echo "  error: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR
