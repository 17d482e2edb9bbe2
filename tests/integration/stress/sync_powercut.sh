#!/usr/bin/env bash
# sync_powercut: the replication journal survives a power cut of the
# primary, and after it the replica ends equal to the primary.
#
# The primary volume (4 KiB chunks) lives on the ext4 of pcdisk.sh, a disk
# that loses its volatile cache at a power cut; its replica, on another
# "host" (network namespaces of sync_hosts.sh), keeps its power. Each
# iteration brings the primary up after the last cut (e2fsck, mount),
# checks that what the last iteration's writer acknowledged survived on it
# (crashwriter verify), starts the replica if it is down, waits until the
# peer is caught up (siltctl sync wait) and wants the replica's tree equal
# to the primary's byte for byte. Then a crashwriter writes and fsyncs on
# the primary for a seeded random 300..1500 ms and the power is cut (kill
# -9 of the daemon and the writer, then pcdisk's "cut" or "cut 50 SEED").
# On even iterations the replica is down while the writer runs, so that
# everything it wrote waits in the journal (or its pending notes) when the
# power goes; on odd ones it runs and batches are in flight at the cut.
# Both ways the changes must reach the replica after the power is back:
# an entry lost from the journal is a chunk the replica never gets, and a
# chunk shipped that the primary then lost (written, never synced) is one
# the replica has and the primary does not.
#
# Env: SILTFS, SILTCTL, CRASHWRITER, PCDISK; SYNC_POWERCUT_ITERATIONS
# (default 4: both replica states with both kinds of cut),
# SYNC_POWERCUT_SEED (default 1).
: "${SILT_DEADLINE:=270}"
export SILT_DEADLINE
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pcdisk.sh"

: "${CRASHWRITER:=$BUILDDIR/tests/integration/stress/crashwriter}"
[ -x "$CRASHWRITER" ] || { echo "sync_powercut: $CRASHWRITER is not built"; exit 1; }
iterations=${SYNC_POWERCUT_ITERATIONS:-4}
seed=${SYNC_POWERCUT_SEED:-1}
RANDOM=$seed

say "the primary's disk: ext4 on a loop device over pcdisk"
disk_create 1G
SYNC_PRIMARY_DIR=$EXT/p
. "$(dirname "$0")/../sync_hosts.sh"
sed -i 's/^\[volume\]$/&\nchunk_size = 4K/' "$pconf"
PPID_="" RPID=""

# primary_up [DIO]: the primary; with DIO, the power is back first: the
# disk, e2fsck, ext4.
primary_up() {
	[ -z "${1:-}" ] || { disk_up "$1" && ext4_up; } || return 1
	SILT_IN_NS=$A silt_mount_fg "$pconf" "$P" || return 1
	PPID_=$SILT_FG_PID PLOG=$SILT_LAST_ERR
}

replica_down() {
	silt_umount "$R" || silt_abort "the replica does not unmount"
	silt_forget_pid "$RPID"
	RPID=""
}

# caught_up WHAT: the peer catches up and the replica equals the primary.
caught_up() {
	[ -n "$RPID" ] || start_replica
	rc=0; out=$(timeout 120 "$SILTCTL" -m "$P" sync wait --timeout 100 2>&1) || rc=$?
	check_eq "$rc" 0 "$1: the peer caught up (siltctl sync wait)"
	[ $rc -eq 0 ] || tail -n 3 <<<"$out"
	wait_same "$1: the replica equals the primary, byte for byte" 30
}

# verify I: what iteration I's writer acknowledged is on the primary.
verify() {
	rc=0
	silt_bounded 120 "$P" "verify iteration $1" "$CRASHWRITER" verify "$P/it$1" \
		"$SILT_TMP/log.$1" "$SILT_TMP/digest.$1" > "$SILT_TMP/verify.out" 2>&1 || rc=$?
	check_eq "$rc" 0 "iteration $1: on the primary, everything acknowledged survived the cut"
	[ $rc -eq 0 ] || head -n 10 "$SILT_TMP/verify.out"
}

# power_cut I CMD: the writer ran; kill it and the primary, cut the power.
power_cut() {
	if ! silt_pid_alive "$wpid"; then
		fail "iteration $1: the writer stopped before the cut"
		sed 's/^/    /' "$SILT_TMP/writer.$1.err"
	fi
	{
		kill -9 "$PPID_" "$wpid" || true
		disk_cut "$2" || fail "iteration $1: the power cut"
		wait "$PPID_" "$wpid" || true
	} 2>/dev/null
	silt_forget_pid "$PPID_"
	while silt_is_mounted "$P"; do fusermount3 -uz "$P" 2>/dev/null || umount -l "$P" || break; done
	read_stats || fail "iteration $1: the disk's counters"
	disk_teardown || fail "iteration $1: teardown after the cut"
}

say "the primary's first contents, fully synced to the replica"
primary_up || silt_abort "the primary does not come up"
silt_random "$P/base.img" $((8 << 20))
caught_up "before any cut"

acks=0 dropped=0
for ((i = 0; i < iterations; i++)); do
	cmd=cut dio=off
	[ $((i % 4)) -ge 2 ] && cmd="cut 50 $((seed * 7919 + i))"
	[ $(( (i / 2) % 2 )) = 1 ] && dio=on
	delay_ms=$((300 + RANDOM % 1201))
	if [ $((i % 2)) = 0 ]; then
		say "iteration $i: the replica is down, the primary writes, '$cmd' after $delay_ms ms"
		replica_down
	else
		say "iteration $i: the replica runs, the primary writes, '$cmd' after $delay_ms ms"
	fi
	"$CRASHWRITER" write "$P/it$i" "$((seed * 1000003 + i))" 4096 \
		> "$SILT_TMP/log.$i" 2> "$SILT_TMP/writer.$i.err" &
	wpid=$!
	sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
	power_cut "$i" "$cmd"
	nack=$(grep -c '^A\|^NA\|^PA' "$SILT_TMP/log.$i" || true)
	acks=$((acks + nack)) dropped=$((dropped + $(disk_stat cut_dropped)))
	echo "  $nack acknowledgements; the disk dropped $(disk_stat cut_dropped) cached blocks at the cut"
	primary_up "$dio" || silt_abort "iteration $i: the primary does not come up after the cut"
	verify "$i"
	caught_up "iteration $i"
done

say "a clean end: the replica equals the primary, ext4 clean"
bad=0
for ((i = 0; i < iterations; i++)); do
	rc=0
	silt_bounded 120 "$R" "verify iteration $i on the replica" "$CRASHWRITER" verify "$R/it$i" \
		"$SILT_TMP/log.$i" "$SILT_TMP/digest.$i" > "$SILT_TMP/verify.out" 2>&1 || rc=$?
	if [ $rc -ne 0 ]; then
		echo "  iteration $i on the replica:"; head -n 5 "$SILT_TMP/verify.out"; bad=$((bad + 1))
	fi
done
check_eq "$bad" 0 "the replica's copies hold what the writers acknowledged, with the primary's digests"
silt_umount "$P" || fail "clean unmount of the primary"
silt_forget_pid "$PPID_"
silt_umount "$R" || fail "clean unmount of the replica"
disk_run "umount ext4" umount "$EXT" || fail "clean umount of the ext4"
check_cmd "ext4 clean after the clean unmount (e2fsck -fn)" e2fsck -fn "$dev"
disk_teardown || fail "clean teardown"
check_ge "$acks" 1 "writes were acknowledged"
check_ge "$dropped" 1 "the power cuts threw away unflushed blocks"
silt_summary
