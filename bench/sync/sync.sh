#!/usr/bin/env bash
# sync.sh: what replication delivers (issue 10, point 7), between two hosts
# in miniature: network namespaces joined by a veth pair, the primary's side
# shaped by tc tbf to BENCH_RATE (default 1gbit; "none" for the bare veth),
# a one-tier siltfs volume on each side, the replica mounted read-only.
#   1. initial sync: BENCH_SIZE_MIB (default 1024) MiB of random (so
#      incompressible) data written before the replica runs, then the time
#      from the replica's start until the full sync is acknowledged, as MiB/s
#      and as a share of the link rate;
#   1b. bulk resync: the replica unmounted, BENCH_RESYNC_MIB (default half
#      the image) MiB of it rewritten with fresh random data, so that the
#      journal (journal_max = 4096 entries here) falls back to a dirty-chunk
#      set; then the time from the replica's return until the dirty set has
#      drained and the peer is live, as MiB/s and as a share of the link,
#      and the same from the first sight of the resync state (the transfer
#      alone, without the mount, redial and handshake before it);
#   2. RPO: fio writes 64 KiB blocks at random offsets of that image at
#      BENCH_LOAD (default 50m, bytes a second), half-compressible data, for
#      BENCH_RUNTIME (default 60) seconds; the peer's lag is sampled twice a
#      second (siltctl sync status: the age of the oldest change it does not
#      have); its p50, p99 and maximum, and the bytes on the wire and the
#      chunk bytes shipped against the bytes written (compression, coalescing);
#   3. foreground cost: fio 4 KiB random writes, O_DIRECT, iodepth 16, 20 s,
#      with replication on (the replica live) and off (the same volume
#      mounted without its [sync] and [peer] sections), BENCH_FG_ROUNDS
#      (default 4) pairs of on then off, each on a fresh mount: IOPS and
#      p99 latency, and on / off as the median of the pairs.
# BENCH_ONLY_INITIAL=1 runs parts 1 and 1b alone (the bulk transfers);
# BENCH_ONLY_FOREGROUND=1 parts 1 and 3 (the foreground cost).
# Goals (the issue): initial sync at least 90% of the link; lag under 5 s
# at the p99; foreground within 10%. Misses print MISSED; the script exits 0.
# It uses tests/integration/lib.sh (namespaces, mounts and daemons go at
# exit, also on failure).
here=$(cd "$(dirname "$0")" && pwd)
: "${BUILDDIR:=$(cd "$here/../.." && pwd)/build}"
: "${SILT_DEADLINE:=3000}"
export BUILDDIR SILT_DEADLINE
SILT_TEST_NAME=sync-bench
. "$here/../../tests/integration/lib.sh"

size=${BENCH_SIZE_MIB:-1024}
rate=${BENCH_RATE:-1gbit}
load=${BENCH_LOAD:-50m}
secs=${BENCH_RUNTIME:-60}
command -v fio >/dev/null || silt_abort "fio is not installed (scripts/deps.sh installs it)"

say "two hosts"
n=$((RANDOM % 200 + 20))
A=silt-ba-$$ B=silt-bb-$$
silt_netns_pair "$A" "$B" "10.238.$n.1/24" "10.238.$n.2/24"
if [ "$rate" != none ]; then
	ip netns exec "$A" tc qdisc add dev "v-$A" root tbf rate "$rate" burst 4mb latency 200ms ||
		silt_abort "tc tbf on v-$A"
fi
key() { sed -n "s/^$1 = //p" <<<"$2"; }
kp=$("$SILTCTL" sync keygen) kr=$("$SILTCTL" sync keygen)
silt_make_volume "$SILT_TMP/p" 1
# The replica stands for another host: its disk is RAM (tmpfs), so that
# its writes do not compete with the primary's for this machine's one disk
# (its threads run at a lower priority anyway: SYNC_NICE in sync/sync.h);
# BENCH_REPLICA_DISK=same puts it on the primary's disk
if [ "${BENCH_REPLICA_DISK:-tmpfs}" = tmpfs ]; then
	mkdir -p "$SILT_TMP/r"
	mount -t tmpfs -o size=3g silt-bench-replica "$SILT_TMP/r" || silt_abort "a tmpfs for the replica"
	silt_at_exit "umount -l '$SILT_TMP/r' 2>/dev/null"
fi
silt_make_volume "$SILT_TMP/r" 1
pconf=$SILT_TMP/p/vol.conf rconf=$SILT_TMP/r/vol.conf
cp "$pconf" "$SILT_TMP/p/plain.conf" # the same volume, replication off
cat >> "$pconf" <<EOF

[sync]
private_key = $(key private_key "$kp")
interval = 200ms
max_lag = 5s
journal_max = 4096

[peer replica]
address = 10.238.$n.2:7411
public_key = $(key public_key "$kr")
EOF
cat >> "$rconf" <<EOF

[sync]
private_key = $(key private_key "$kr")
listen = 10.238.$n.2:7411
state = $SILT_TMP/r/state

[peer primary]
public_key = $(key public_key "$kp")
EOF
P=$SILT_TMP/pm R=$SILT_TMP/rm
primary() { SILT_IN_NS=$A silt_mount_fg "$1" "$P" || silt_abort "the primary does not mount"; }
peer() { json_get "$(silt_ctl -m "$P" sync status --json)" ".peers[0].$1"; }
now() { date +%s.%N; }

say "1. initial sync of $size MiB over ${rate}"
primary "$pconf"
dd if=/dev/urandom of="$P/img" bs=1M count="$size" oflag=direct status=none
t0=$(now)
SILT_IN_NS=$B silt_mount_fg "$rconf" "$R" ro || silt_abort "the replica does not mount"
synced() { local j; j=$(silt_ctl -m "$P" sync status --json)
	[ "$(json_get "$j" .peers[0].full_sync)" = 0 ] && [ "$(json_get "$j" .peers[0].state)" = live ] &&
	[ "$(json_get "$j" .peers[0].progress_done)" = "$(json_get "$j" .peers[0].progress_total)" ] &&
	[ "$(json_get "$j" .peers[0].lag_ms)" -lt 500 ]; }
silt_wait_for 1200 synced || silt_abort "the full sync did not end in 20 minutes"
t1=$(now)
case $rate in # the link in MiB/s
*gbit) link=$(awk -v r="${rate%gbit}" 'BEGIN { print r * 1e9 / 8 / 1048576 }') ;;
*mbit) link=$(awk -v r="${rate%mbit}" 'BEGIN { print r * 1e6 / 8 / 1048576 }') ;;
*) link=0 ;;
esac
report() { # report WHAT MIB T0 T1: MiB/s and the share of the link
	local mibs share
	mibs=$(awk -v s="$2" -v a="$3" -v b="$4" 'BEGIN { printf "%.1f", s / (b - a) }')
	printf '  %s: %s MiB in %.1f s = %s MiB/s' "$1" "$2" "$(awk -v a="$3" -v b="$4" 'BEGIN { print b - a }')" "$mibs"
	if [ "$rate" != none ]; then
		share=$(awk -v m="$mibs" -v l="$link" 'BEGIN { printf "%.2f", m / l }')
		printf ' = %s of the %s link (%.1f MiB/s)\n' "$share" "$rate" "$link"
		awk -v s="$share" 'BEGIN { exit !(s < 0.9) }' && echo "  MISSED: $1 at $share of the link (goal 0.90)"
	else
		echo
	fi
	return 0
}
report "initial sync" "$size" "$t0" "$t1"
silt_drop_caches
check "cmp -s '$P/img' '$R/img'" "the replica's image equals the primary's"

if [ "${BENCH_ONLY_FOREGROUND:-0}" != 1 ]; then
	rs=${BENCH_RESYNC_MIB:-$((size / 2))}
	say "1b. bulk resync of $rs MiB rewritten while the replica was away"
	silt_umount "$R" || silt_abort "the replica does not unmount"
	silt_wait_for 30 '[ "$(peer state)" != live ]' || true
	dd if=/dev/urandom of="$P/img" bs=64k count=$((rs * 16)) oflag=direct conv=notrunc status=none # a journal entry a chunk
	silt_wait_for 30 '[ "$(peer dirty)" -gt 0 ]' || silt_abort "the journal did not fall back to a dirty set"
	echo "  the journal fell back to a dirty set of $(peer dirty) chunk ranges"
	t0=$(now)
	SILT_IN_NS=$B silt_mount_fg "$rconf" "$R" ro || silt_abort "the replica does not mount again"
	# the transfer alone, from the first sight of the resync (polled every
	# 0.1 s) to the end: the mount, the redial and the handshake before it
	# are a fixed cost, reported apart
	silt_wait_for 60 '[ "$(peer state)" = resync ]' || silt_abort "no resync seen within 60 s"
	tc=$(now)
	resynced() { [ "$(peer dirty)" = 0 ] && synced; }
	silt_wait_for 1200 resynced || silt_abort "the resync did not end in 20 minutes"
	t1=$(now)
	report "bulk resync, from the replica's mount" "$rs" "$t0" "$t1"
	report "bulk resync, the transfer alone" "$rs" "$tc" "$t1"
	awk -v a="$t0" -v b="$tc" 'BEGIN { printf "  before the transfer (mount, redial, handshake): %.2f s\n", b - a }'
	silt_drop_caches
	check "cmp -s '$P/img' '$R/img'" "after the resync, the replica's image equals the primary's"

fi

if [ "${BENCH_ONLY_INITIAL:-0}" = 1 ]; then
	check_cmd "umount the primary" silt_umount "$P"
	check_cmd "umount the replica" silt_umount "$R"
	silt_summary
	exit 0
fi

if [ "${BENCH_ONLY_FOREGROUND:-0}" != 1 ]; then
	say "2. RPO under $load/s of 64 KiB random writes for $secs s"
	sent0=$(peer sent_bytes) data0=$(peer data_bytes)
	fio --name=load --filename="$P/img" --rw=randwrite --bs=64k --direct=1 --ioengine=libaio --iodepth=4 \
		--rate="$load" --buffer_compress_percentage=50 --refill_buffers --time_based --runtime="$secs" \
		--size="${size}M" --output-format=json > "$SILT_TMP/load.json" &
	fp=$!
	: > "$SILT_TMP/lag"
	while kill -0 "$fp" 2>/dev/null; do
		peer lag_ms >> "$SILT_TMP/lag"
		sleep 0.5
	done
	wait "$fp" || silt_abort "fio failed"
	silt_wait_for 60 '[ "$(peer lag_ms)" -lt 500 ]' || true
	written=$(jq '.jobs[0].write.io_bytes' "$SILT_TMP/load.json")
	sent=$(( $(peer sent_bytes) - sent0 )) data=$(( $(peer data_bytes) - data0 ))
	read -r p50 p99 max < <(sort -n "$SILT_TMP/lag" | awk '{ v[NR] = $1 } END {
		printf "%d %d %d\n", v[int(NR * 0.5) + 1], v[int(NR * 0.99) + (NR * 0.99 > int(NR * 0.99))], v[NR] }')
	echo "  lag over $(wc -l < "$SILT_TMP/lag") samples: p50 ${p50} ms, p99 ${p99} ms, max ${max} ms"
	awk -v x="$p99" 'BEGIN { exit !(x >= 5000) }' && echo "  MISSED: lag p99 ${p99} ms (goal under 5000 ms)"
	awk -v w="$written" -v s="$sent" -v d="$data" 'BEGIN {
		printf "  written %.1f MiB; chunk bytes shipped %.1f MiB (%.2f of written: coalescing); on the wire %.1f MiB (%.2f of written, %.2f of shipped: compression)\n",
			w / 1048576, d / 1048576, d / w, s / 1048576, s / w, s / d }'
	silt_drop_caches
	check "cmp -s '$P/img' '$R/img'" "after the load, the replica's image equals the primary's"
fi

say "3. foreground 4 KiB random writes, replication on and off"
fg() { # fg LABEL: one fio run, "IOPS p99_us"
	fio --name="$1" --filename="$P/img" --rw=randwrite --bs=4k --direct=1 --ioengine=libaio --iodepth=16 \
		--time_based --runtime=20 --size="${size}M" --output-format=json |
		jq -r '"\(.jobs[0].write.iops | floor) \(.jobs[0].write.clat_ns.percentile["99.000000"] / 1000 | floor)"'
}
declare -a on off
remount() { silt_umount "$P" || silt_abort "the primary does not unmount"; primary "$1"; }
rounds=${BENCH_FG_ROUNDS:-4}
for ((round = 1; round <= rounds; round++)); do
	# every round on a fresh mount, the peer live and caught up (the first
	# one would otherwise run beside what the earlier parts left behind)
	remount "$pconf" && silt_wait_for 120 '[ "$(peer state)" = live ] && [ "$(peer lag_ms)" -lt 100 ]'
	on+=("$(fg on)")
	remount "$SILT_TMP/p/plain.conf"
	off+=("$(fg off)")
	echo "  round $round: on ${on[-1]} (IOPS p99_us), off ${off[-1]}"
done
ratio=$(for ((i = 0; i < rounds; i++)); do awk -v a="${on[i]%% *}" -v b="${off[i]%% *}" 'BEGIN { print a / b }'; done |
	sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2 }')
echo "  foreground IOPS with replication on / off: $ratio (median of the rounds)"
awk -v r="$ratio" 'BEGIN { exit !(r < 0.9) }' && echo "  MISSED: foreground at $ratio with replication (goal within 10%)"
check_cmd "umount the primary" silt_umount "$P"
check_cmd "umount the replica" silt_umount "$R"
silt_summary
