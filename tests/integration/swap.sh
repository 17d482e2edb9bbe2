#!/usr/bin/env bash
# swap: swap through siltfs under memory pressure.  A swap file on the
# mount (spanning both tiers of the volume) through a loop device
# (losetup --direct-io=on; swapon refuses FUSE files), and silt-swaphog in
# a memory cgroup limited to a quarter of what it touches: it writes a
# pattern into every page, reads them all back and checks them, twice
# (two patterns), so most of its memory goes out to swap and comes back
# in.  SWAP_RUNS runs (default 3; SWAP_LONG=1: 50); then the same while
# the daemon itself sits in a memory cgroup limited to a little above what
# it uses (it must not need to allocate to make progress: its memory is
# locked, and swap I/O is overwrites of allocated chunks).  A run in which
# the swap area is overwritten between the write and the check must fail
# (the check can fail).  Every run under silt_bounded: a hang aborts the
# FUSE connection, prints the daemon's threads and the loop device's queue,
# counts a failure, and the swap is set up again for the next run.  The
# lib.sh cleanup swapoffs, detaches the loop device and removes the
# cgroups on every exit path.
#
# The daemon is started inside its cgroup (so that all its memory is
# charged there) and limited to what it has after mount and swapon plus
# SWAP_DAEMON_SLACK: it allocates and touches its buffer pool and RAM tier
# at mount (vol_prefault), so it needs nothing more to make progress (a
# daemon that grew its locked pool on demand was OOM-killed in the first
# run).  SWAP_WARMUP=1 first serves an unlimited warm-up (an fio burst deep
# enough to fill the pool, and a swap run) and limits it to the most it
# used plus the slack.
#
# Env: SWAP_RUNS, SWAP_LONG=1, SWAP_MIB (memory touched per run, default
# 256; the limit is a quarter of it), SWAP_SQUEEZED_RUNS (default 2; 10
# with SWAP_LONG), SWAP_DAEMON_SLACK (MiB above the daemon's usage,
# default 8).
if [ "${SWAP_LONG:-0}" = 1 ]; then : "${SILT_DEADLINE:=3000}"; else : "${SILT_DEADLINE:=400}"; fi
export SILT_DEADLINE
. "$(dirname "$0")/lib.sh"
set +e
# A daemon that serves swap without locked memory deadlocks (its own pages
# go out to the swap it serves), and AddressSanitizer makes mlockall a
# no-op: nothing here can hold in that build (the gcc build runs it all).
if [ -n "${SILT_SANITIZED:-}" ]; then
	skip "swap through the mount: AddressSanitizer makes mlockall a no-op in this build"
	silt_summary
fi

long=${SWAP_LONG:-0}
runs=${SWAP_RUNS:-$([ "$long" = 1 ] && echo 50 || echo 3)}
sruns=${SWAP_SQUEEZED_RUNS:-$([ "$long" = 1 ] && echo 10 || echo 2)}
mib=${SWAP_MIB:-256}
slack=${SWAP_DAEMON_SLACK:-8}
warmup=${SWAP_WARMUP:-0}
limit=$((mib / 4))
swap_mib=$((mib + 64))
V="$SILT_TMP/v"; M="$SILT_TMP/m"; W="$SILT_TMP/w"
mkdir -p "$W"
[ -x "$SILT_SWAPHOG" ] || silt_abort "SILT_SWAPHOG ($SILT_SWAPHOG) is not built"
silt_memcg_parent >/dev/null || silt_abort "no cgroup v1 memory controller mounted"
swapon --show --noheadings | grep -q . && echo "    note: other swap is active: $(swapon --show --noheadings | tr '\n' ' ')"

# The first tier holds a third of the swap file, so the swap area spans both.
silt_make_volume "$V" 2 64K "$((swap_mib / 3))M"
LOOP=""

# hang_info: what the loop device was doing when a run hung (for silt_bounded).
hang_info() {
	[ -n "$LOOP" ] || return 0
	local b=/sys/block/${LOOP#/dev/}
	echo "    $LOOP inflight (read write): $(cat "$b/inflight" 2>/dev/null); swap: $(grep -E '^SwapTotal|^SwapFree' /proc/meminfo | tr -s ' \n' ' ')"
}
SILT_HANG_INFO=hang_info

# swap_up [CG]: mount (the daemon started inside memory cgroup CG, if
# given), write the swap file, loop device, mkswap, swapon.
swap_up() {
	if [ -n "${1:-}" ]; then
		# (a subshell moves itself, and so the daemon it starts, into CG)
		( echo "$BASHPID" > "$1/cgroup.procs" && silt_mount "$V/vol.conf" "$M" ) ||
			silt_abort "cannot mount in $1: $(cat "$SILT_TMP"/mount-err.* 2>/dev/null | tail -n 3)"
	else
		silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
	fi
	if [ ! -e "$M/swapfile" ]; then
		check_cmd "a ${swap_mib} MiB swap file on the mount" \
			dd if=/dev/zero of="$M/swapfile" bs=1M count="$swap_mib" oflag=direct status=none
		chmod 600 "$M/swapfile"
	fi
	silt_losetup "$M/swapfile" --direct-io=on || silt_abort "losetup --direct-io=on failed"
	LOOP=$SILT_LOOP
	mkswap -f "$LOOP" >/dev/null 2>&1 || silt_abort "mkswap $LOOP failed"
	silt_swapon "$LOOP" || silt_abort "swapon $LOOP failed"
}

# swap_down: swapoff, detach, umount (after a hang: kill the daemon and
# lazily unmount the dead mount instead).
swap_down() {
	local p
	swapoff "$LOOP" && SILT_SWAPS=() || fail "swapoff $LOOP"
	silt_lodetach "$LOOP" || fail "losetup -d $LOOP"
	LOOP=""
	if [ "${1:-}" = dead ]; then
		for p in $(silt_daemon_pids "$M"); do kill -9 "$p"; done
		fusermount3 -uz "$M" 2>/dev/null || umount -l "$M"
	else
		check_cmd "umount" silt_umount "$M"
	fi
}

# memstat CG: the parts of a cgroup's memory (memory.stat), in KiB, and
# its kernel memory.
memstat() {
	awk '$1 ~ /^(rss|cache|mapped_file|unevictable|shmem)$/ { printf "%s %d KiB, ", $1, $2 / 1024 }' "$1/memory.stat"
	echo "kmem $(($(cat "$1/memory.kmem.usage_in_bytes" 2>/dev/null || echo 0) >> 10)) KiB"
}

# field OUT PASS KEY: the value of KEY= on the swaphog line of pass PASS.
field() { grep -E "^pass=$2 " "$1" | grep -oE "$3=[0-9.]+" | head -n1 | cut -d= -f2; }

# hog_run NAME CG [DAEMON_CG]: one silt-swaphog run in cgroup CG (10 s
# here); 0 if every page came back right, 124 if it hung (the swap is then
# set up again, the daemon in DAEMON_CG if given).
hog_run() {
	local name=$1 cg=$2 out="$W/$1.out" rc=0
	silt_bounded 60 "$M" "$name" silt_to_file "$out" silt_memcg_run "$cg" timeout -k 5 120 \
		"$SILT_SWAPHOG" "$mib" 2 || rc=$?
	HOG_OUT=$out
	if [ $rc -eq 124 ]; then
		swap_down dead
		swap_up "${3:-}"
	fi
	return $rc
}

# check_run NAME RC: the checks of one run.
check_run() {
	local name=$1 rc=$2 out=$HOG_OUT want
	check '[ $rc -eq 0 ]' "$name: every page came back right, twice ($(grep -c '^pass=' "$out") sweeps; exit $rc)"
	[ $rc -ne 0 ] && sed 's/^/    | /' "$out" | head -n 8
	# it really swapped: at least half of what did not fit went out and came in
	want=$(((mib - limit) * 256 / 2))
	check_ge "$(field "$out" 1 out_pages)" "$want" "$name: pages swapped out in the first write sweep"
	check_ge "$(field "$out" 1 in_pages)" "$want" "$name: pages swapped in in the first check sweep"
	echo "    $(tr '\n' ' ' < "$out")"
}

say "swap on a loop device over a file on the mount"
swap_up
check 'grep -q "^$LOOP " /proc/swaps' "$LOOP is active swap ($(awk -v d="$LOOP" '$1 == d { print $3 " KiB" }' /proc/swaps))"
silt_memcg_make swaphog $((limit << 20)) kill || silt_abort "cannot make a memory cgroup"
HOG_CG=$SILT_MEMCG
echo "    workload cgroup $HOG_CG: limit $limit MiB, touching $mib MiB"
t0c=$(silt_where_tier_chunks "$M/swapfile" t0); t1c=$(silt_where_tier_chunks "$M/swapfile" t1)
check '[ "${t0c:-0}" -gt 0 ] && [ "${t1c:-0}" -gt 0 ]' "the swap file spans both tiers (t0 $t0c chunks, t1 $t1c)"

say "$runs runs: $mib MiB touched in a $limit MiB cgroup"
for ((r = 1; r <= runs; r++)); do
	hog_run "run $r" "$HOG_CG"
	check_run "run $r" $?
done
echo "    workload cgroup: max usage $(($(cat "$HOG_CG/memory.max_usage_in_bytes") >> 20)) MiB, limit hit $(cat "$HOG_CG/memory.failcnt") times"

say "the check fails when the swap area is overwritten under it"
rm -f "$W/gate" "$W/gate.ready"
silt_bounded 60 "$M" "corrupted run" silt_to_file "$W/corrupt.out" silt_memcg_run "$HOG_CG" timeout -k 5 120 \
	"$SILT_SWAPHOG" "$mib" 1 "$W/gate" &
cpid=$!
if silt_wait_for 60 '[ -e "$W/gate.ready" ]'; then
	# past the swap header, over the slots the first write sweep used
	dd if=/dev/urandom of="$M/swapfile" bs=1M seek=1 count=$((mib / 2)) conv=notrunc oflag=direct status=none
	touch "$W/gate"
fi
wait $cpid; rc=$?
check '[ $rc -ne 0 ] && grep -q "^bad page" "$W/corrupt.out"' \
	"a run whose swap slots were overwritten reports wrong pages: $(grep -m1 '^pass=1 verify' "$W/corrupt.out")"
[ $rc -eq 124 ] && { swap_down dead; swap_up; }

say "the daemon squeezed into its own memory cgroup"
# A daemon started inside the cgroup has all its memory charged there.
swap_down
silt_memcg_make siltd $((1 << 40)) move || silt_abort "cannot make the daemon's cgroup"
DCG=$SILT_MEMCG
swap_up "$DCG"
dpid=$(silt_daemon_pids "$M" | head -n1)
check 'grep -qxF "$dpid" "$DCG/cgroup.procs"' "daemon $dpid runs in $DCG"
at_mount=$(cat "$DCG/memory.usage_in_bytes")
# What it uses is what it uses at its busiest: the asynchronous path's
# buffer pool grows on demand up to its bound (fs/async.c, 32 MiB) and
# the daemon's memory is locked with MCL_ONFAULT, charged as first touched.
# A swap run alone left it short of that (28 MiB after one run, 36.5 after
# two, up to 41 later under load), so the warm-up is an fio burst deep
# enough to fill the pool, then a swap run.
if [ "$warmup" = 1 ]; then
	dd if=/dev/zero of="$M/warm" bs=1M count=64 oflag=direct status=none
	silt_bounded 60 "$M" "fio warm-up" silt_to_file "$W/fio.out" timeout -k 5 50 \
		fio --name=warm --filename="$M/warm" --size=64M --rw=randrw --bs=1M --direct=1 \
		--ioengine=io_uring --iodepth=64 --numjobs=2 --time_based --runtime=3 --group_reporting
	check '[ $? -eq 0 ]' "warm-up: fio, 1 MiB random reads and writes at depth 2 x 64 ($(grep -oE 'WRITE: bw=[^ ]+' "$W/fio.out"))"
	rm -f "$M/warm"
	hog_run "warm-up run" "$HOG_CG" "$DCG"
	check_run "warm-up run (daemon not limited yet)" $?
fi
used=$(cat "$DCG/memory.max_usage_in_bytes")
dlimit=$((used + (slack << 20)))
echo "$dlimit" > "$DCG/memory.limit_in_bytes" || fail "cannot limit $DCG to $dlimit"
echo 0 > "$DCG/memory.max_usage_in_bytes"
echo "    daemon $dpid: charged $((at_mount >> 10)) KiB after mount and swapon, at most $((used >> 10)) KiB in the warm-up; limit now $((dlimit >> 10)) KiB"
echo "    daemon cgroup after the warm-up: $(memstat "$DCG")"
for ((r = 1; r <= sruns; r++)); do
	hog_run "squeezed run $r" "$HOG_CG" "$DCG"
	check_run "squeezed run $r" $?
	echo "    daemon cgroup: $(memstat "$DCG")"
done
dpid=$(silt_daemon_pids "$M" | head -n1)
echo "    daemon cgroup: max usage $(($(cat "$DCG/memory.max_usage_in_bytes") >> 10)) KiB of $((dlimit >> 10)) KiB, limit hit $(cat "$DCG/memory.failcnt") times"
check '[ -n "$dpid" ] && grep -qxF "$dpid" "$DCG/cgroup.procs"' "the squeezed daemon is alive, in its cgroup"
check_eq "$(awk '$1 == "under_oom" || $1 == "oom_kill" { printf "%s=%s ", $1, $2 }' "$DCG/memory.oom_control")" \
	"under_oom=0 oom_kill=0 " "the daemon's cgroup never ran out of memory"

say "swapoff and clean up"
check_cmd "swapoff $LOOP" swapoff "$LOOP"
SILT_SWAPS=()
check_cmd "the workload's cgroup removed" silt_memcg_remove "$HOG_CG"
check_cmd "loop device detached" silt_lodetach "$LOOP"
LOOP=""
check_cmd "umount" silt_umount "$M"
check_cmd "the daemon's cgroup removed" silt_memcg_remove "$DCG"

silt_summary
