#!/usr/bin/env bash
# tiering.sh: what tiering buys on a slow tier that really is slow.
#
# The slow tier is ext4 on a loop device whose I/O the cgroup v1 blkio
# controller throttles to HDD-like figures (BENCH_IOPS, BENCH_BPS, read and
# write), and every siltfs daemon of the run lives in that cgroup: siltfs
# opens its tier files O_DIRECT, and the throttle applies to the direct I/O
# that the cgroup's processes (their io_uring workers included) send to the
# loop device. The fast tier is a folder on the local disk of BENCH_DIR with
# a configured capacity (BENCH_FAST), a quarter or less of the image.
#
# One run, round after round (BENCH_ROUNDS), runs the same fio job (4 KiB
# random read/write, BENCH_RWMIX % reads, skewed by BENCH_DIST, O_DIRECT,
# io_uring, queue depth BENCH_QD, BENCH_RUNTIME seconds) over an image of
# BENCH_SIZE on these targets:
#   fast          a one-tier volume on the fast folder (no capacity limit):
#                 everything on the fast tier, the limit
#   slow          a one-tier volume on the throttled loop device: the floor
#   tier-POLICY   the two tiers, [placement] policy = POLICY, epoch
#                 BENCH_EPOCH; for each of BENCH_POLICIES
# Each target's image is laid out first (sequential 1 MiB writes, with
# migration off, so that its first part lands on the fast tier and the
# rest on the slow one), the volume is mounted again (a cold daemon: no heat,
# an empty RAM tier), then the workload runs. Every BENCH_INTERVAL seconds
# fio logs a latency histogram and a mean latency (write_hist_log,
# write_lat_log) and the control socket's status is polled (placement:
# moved bytes, promotions, demotions, backlog, busy; ram: hits, misses;
# the tiers' chunks), together with the cgroup's I/O count on the loop
# device (what really reached the slow tier). The steady state is the last
# BENCH_STEADY seconds of the run.
#
# The quiet-period figure (BENCH_QUIET=1, once per round after the
# targets; BENCH_QUIET=only: nothing else, BENCH_ROUNDS times): a file A
# (BENCH_QUIET_A) and a cold file B (BENCH_QUIET_B) are written on a fast
# tier big enough for both; the volume is mounted again with the fast
# tier's capacity cut to BENCH_FAST, so that it sits above its high
# watermark with migration off. The same foreground job (uniform over A,
# all of it on the fast tier) runs BENCH_QUIET_SECS seconds with migration
# off, then as long again while the engine drains B's chunks to the slow
# tier (siltctl's "migrate policy"), then, once the drain is over, again
# with migration off. The figure is the p99 latency during the drain over
# the mean p99 of the two runs without migration (target: at most 1.5);
# beside it the median of the per-second p99s (less moved by a burst from
# elsewhere on a shared machine), the daemon's CPU time in each run (all of
# it, its migration thread, RocksDB's threads) and the load average.
#
# Output: per target and round a line per interval and a summary table on
# stdout; in BENCH_OUT the same tables, fio's logs and JSON, the status
# polls and a PNG of IOPS over time per round (iops-rN.png, gnuplot).
# A goal that is missed is marked MISSED; the script exits 0 all the same
# (benchmarks report), unless a step failed.
#
# Env: SILTFS, SILTCTL (default build/siltfs, build/siltctl), BENCH_DIR
# (scratch space on a local disk, must not exist; default
# /var/tmp/siltfs-tiering), BENCH_OUT (results, default ./tiering-<time>),
# BENCH_SIZE (2G), BENCH_FAST (512M), BENCH_DIST (zipf:1.6), BENCH_RWMIX
# (70), BENCH_QD (16), BENCH_RUNTIME (150), BENCH_STEADY (60),
# BENCH_INTERVAL (10), BENCH_EPOCH (2s), BENCH_IOPS (150), BENCH_BPS (150M),
# BENCH_ROUNDS (2), BENCH_POLICIES (lru arc s3fifo lirs lfu), BENCH_TARGETS
# (default: fast slow and tier-POLICY for each policy), BENCH_PLACEMENT
# (extra [placement] lines, e.g. "busy_rate = 32M"), BENCH_QUIET (1),
# BENCH_QUIET_A (256M), BENCH_QUIET_B (768M), BENCH_QUIET_SECS (40).
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
SILTFS=${SILTFS:-$src/build/siltfs}
SILTCTL=${SILTCTL:-$src/build/siltctl}
dir=${BENCH_DIR:-/var/tmp/siltfs-tiering}
out=${BENCH_OUT:-$PWD/tiering-$(date -u +%Y%m%d-%H%M%S)}
size=${BENCH_SIZE:-2G}
fastcap=${BENCH_FAST:-512M}
dist=${BENCH_DIST:-zipf:1.6}
rwmix=${BENCH_RWMIX:-70}
qd=${BENCH_QD:-16}
runtime=${BENCH_RUNTIME:-150}
steady=${BENCH_STEADY:-60}
ival=${BENCH_INTERVAL:-10}
epoch=${BENCH_EPOCH:-2s}
iops_limit=${BENCH_IOPS:-150}
bps_limit=${BENCH_BPS:-150M}
rounds=${BENCH_ROUNDS:-2}
read -r -a policies <<< "${BENCH_POLICIES:-lru arc s3fifo lirs lfu}"
default_targets="fast slow$(printf ' tier-%s' "${policies[@]}")"
read -r -a targets <<< "${BENCH_TARGETS:-$default_targets}"
quiet=${BENCH_QUIET:-1}
quiet_a=${BENCH_QUIET_A:-256M}
quiet_b=${BENCH_QUIET_B:-768M}
quiet_secs=${BENCH_QUIET_SECS:-40}

# State for the cleanup: the one daemon that runs at a time, its mount, the
# status poller, the slow tier's loop device, its mount and our cgroup.
daemon="" mnt="$dir/mnt" sock="$dir/ctl.sock" poller="" loopdev="" slowfs="$dir/slowfs" cg="" slow_mm=""
fastdir="$dir/fast"
declare -A ratio_of             # [target,round] steady IOPS / the limit's
declare -A qcpu qload           # [phase] of the quiet-period test

die() { echo "tiering.sh: $*" >&2; exit 1; }
note() { echo "== $*" >&2; }

cleanup() {
	local rc=$?
	set +e
	[ -n "$poller" ] && kill "$poller" 2>/dev/null && wait "$poller" 2>/dev/null
	if grep -qs " $mnt fuse" /proc/self/mounts; then
		umount "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null
	fi
	if [ -n "$daemon" ]; then
		wait_gone "$daemon" 100 || kill -9 "$daemon" 2>/dev/null
	fi
	mountpoint -q "$slowfs" && umount "$slowfs"
	[ -n "$loopdev" ] && losetup -d "$loopdev"
	[ -n "$cg" ] && [ -d "$cg" ] && rmdir "$cg"
	rm -rf --one-file-system "$dir"
	exit $rc
}

# wait_gone PID [TENTHS]: until PID has exited (default 60 s).
wait_gone() {
	local i
	for ((i = 0; i < ${2:-600}; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

# bytes SIZE: SIZE (with K/M/G) in bytes.
bytes() { numfmt --from=iec "$1"; }

# median: the median of the numbers on stdin, one a line.
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# blkio_root: where the cgroup v1 blkio controller is mounted.
blkio_root() {
	awk '$3 == "cgroup" && $4 ~ /(^|,)blkio(,|$)/ { print $2; exit }' /proc/self/mounts
}

# setup_slow: the loop device (ext4, direct I/O on its backing file, so
# that the host's page cache does not double what siltfs reads), its mount
# and our cgroup with the throttle on the loop device.
setup_slow() {
	local root mm f need
	root=$(blkio_root)
	[ -n "$root" ] || die "cgroup v1 blkio is not mounted (see /proc/self/mounts)"
	need=$(( $(bytes "$size") + $(bytes "$quiet_b") + $(bytes "$quiet_a") + (2 << 30) ))
	truncate -s "$need" "$dir/slow.img"
	loopdev=$(losetup -f --show --direct-io=on "$dir/slow.img")
	mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$loopdev"
	mkdir -p "$slowfs"
	mount "$loopdev" "$slowfs"
	mm=$(lsblk -dno MAJ:MIN "$loopdev" | tr -d ' ')
	cg="$root/siltfs-tiering.$$"
	mkdir "$cg"
	for f in read write; do
		echo "$mm $iops_limit" > "$cg/blkio.throttle.${f}_iops_device"
		echo "$mm $(bytes "$bps_limit")" > "$cg/blkio.throttle.${f}_bps_device"
	done
	slow_mm=$mm
	note "slow tier: ext4 on $loopdev ($mm), cgroup $cg: $iops_limit IOPS, $bps_limit/s read and write"
}

# slow_ios: the cgroup's reads and writes to the loop device so far.
slow_ios() {
	awk -v d="$slow_mm" '$1 == d && $2 == "Read" { r = $3 } $1 == d && $2 == "Write" { w = $3 }
		END { print r + 0, w + 0 }' "$cg/blkio.throttle.io_serviced"
}

# write_conf KIND MIGRATION [POLICY [FASTCAP]]: the volume's config for a
# target of KIND (fast, slow or tier) in $dir/vol.conf.
write_conf() {
	local kind=$1 mig=$2 pol=${3:-arc} cap=${4:-$fastcap}
	{
		printf '[volume]\nname = tiering\n\n[placement]\npolicy = %s\nmigration = %s\nepoch = %s\n' \
			"$pol" "$mig" "$epoch"
		if [ -n "${BENCH_PLACEMENT:-}" ]; then printf '%s\n' "$BENCH_PLACEMENT"; fi
		if [ "$kind" != slow ]; then
			printf '\n[tier fast]\npath = %s\nclass = nvme\n' "$fastdir"
			if [ "$kind" = tier ]; then printf 'capacity = %s\n' "$cap"; fi
		fi
		if [ "$kind" != fast ]; then printf '\n[tier slow]\npath = %s\nclass = hdd\n' "$slowfs/vol"; fi
	} > "$dir/vol.conf"
}

# fresh_tiers: empty tier folders for a new volume.
fresh_tiers() {
	rm -rf --one-file-system "$fastdir" "$slowfs/vol"
	mkdir -p "$fastdir" "$slowfs/vol"
}

# mount_vol: mount $dir/vol.conf on $mnt, the daemon (-f) started by a shell
# that moved itself into the cgroup first.
mount_vol() {
	local i
	mkdir -p "$mnt"
	# shellcheck disable=SC2016
	sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" \
		env --default-signal=INT,QUIT "$SILTFS" "$dir/vol.conf" "$mnt" -f -o "ctl=$sock" \
		</dev/null >>"$dir/daemon.log" 2>&1 &
	daemon=$!
	for ((i = 0; i < 200; i++)); do
		grep -qs " $mnt fuse" /proc/self/mounts && break
		kill -0 "$daemon" 2>/dev/null || break
		sleep 0.1
	done
	grep -qs " $mnt fuse" /proc/self/mounts || { tail -n 20 "$dir/daemon.log" >&2; die "the volume did not mount"; }
	grep -qx "$daemon" "$cg/cgroup.procs" || die "daemon $daemon is not in $cg"
}

umount_vol() {
	umount "$mnt" || die "umount $mnt failed"
	wait_gone "$daemon" || die "daemon $daemon did not exit after umount"
	wait "$daemon" 2>/dev/null || true
	daemon=""
}

# ctl REQUEST: the daemon's records for REQUEST ("status", "migrate off"),
# straight from the control socket (protocol: fs/ctl.c).
ctl() {
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
while True:
    d = s.recv(65536)
    if not d:
        break
    sys.stdout.write(d.decode())' "$sock" "$1"
}

# field KIND KEY [NAME]: KEY of the first record KIND (of the tier NAME) on
# stdin, 0 if there is none. It reads all of stdin, so that the writer
# never meets a closed pipe.
field() {
	awk -v kind="$1" -v key="$2" -v name="${3:-}" '$1 == kind && !found {
		delete f
		for (i = 2; i <= NF; i++) { j = index($i, "="); f[substr($i, 1, j - 1)] = substr($i, j + 1) }
		if (name == "" || f["name"] == name) { v = f[key] + 0; found = 1 }
	}
	END { print v + 0 }'
}

# snapshot T: one line of counters, T = seconds since the poll began.
snapshot() {
	local s
	s=$(ctl status) || return 0
	printf '%s' "$1"
	for k in moved_bytes moved promoted demoted pending rate busy raced; do
		printf ' %s' "$(field placement "$k" <<< "$s")"
	done
	printf ' %s %s' "$(field ram hits <<< "$s")" "$(field ram misses <<< "$s")"
	printf ' %s %s' "$(field tier chunks fast <<< "$s")" "$(field tier chunks slow <<< "$s")"
	printf ' %s\n' "$(slow_ios)"
}
poll_header="t moved_bytes moved promoted demoted pending rate busy raced ram_hits ram_misses fast_chunks slow_chunks slow_reads slow_writes"

# poll_start FILE SECONDS: snapshot every SECONDS into FILE, in the background.
poll_start() {
	echo "$poll_header" > "$1"
	(
		t0=$EPOCHREALTIME n=0
		while :; do
			snapshot $((n * $2)) >> "$1"
			n=$((n + 1))
			d=$(awk -v t0="$t0" -v now="$EPOCHREALTIME" -v n="$n" -v p="$2" \
				'BEGIN { d = t0 + n * p - now; print (d > 0 ? d : 0) }')
			sleep "$d"
		done
	) &
	poller=$!
}
poll_stop() { kill "$poller" 2>/dev/null || true; wait "$poller" 2>/dev/null || true; poller=""; }

# layout FILE SIZE: write FILE sequentially (1 MiB, O_DIRECT) and sync it.
layout() {
	fio --name=layout --filename="$1" --size="$2" --rw=write --bs=1M --direct=1 \
		--ioengine=io_uring --iodepth=4 --end_fsync=1 --output=/dev/null
}

# workload PREFIX FILE SECONDS DIST LOG_MS: the foreground job, logging a
# latency histogram and mean latency every LOG_MS into PREFIX_*.log. It
# runs 2 s beyond SECONDS: fio drops a log interval cut short by the end.
workload() {
	fio --name=vm --filename="$2" --rw=randrw --rwmixread="$rwmix" --bs=4k --direct=1 \
		--ioengine=io_uring --iodepth="$qd" --random_distribution="$4" --time_based \
		--runtime=$(($3 + 2)) --write_hist_log="$1" --log_hist_msec="$5" \
		--write_lat_log="$1" --log_avg_msec="$5" --output-format=json --output="$1.json" \
		> /dev/null
	rm -f "$1"_slat.*.log "$1"_clat.*.log
	[ "$(jq '[.jobs[].error] | add' "$1.json")" = 0 ] || die "fio reported an error ($1.json)"
}

# latency PREFIX LOG_MS [FROM TO]: from the histogram log (completions and
# p99 of read and write together) and the mean-latency log (weighted by
# each direction's completions), per interval "t_end ios mean_ns p99_ns";
# with FROM and TO, one line "iops mean_ns p99_ns" over the intervals that
# end after FROM and at most at TO seconds (their histograms summed).
# Entries more than a tenth of an interval off its end (the partial one
# that fio writes as the job stops) are left out.
latency() {
	awk -F', *' -v ms="$2" -v from="${3:-}" -v to="${4:-}" '
	function val(idx,   e) {  # fio plat_idx_to_val: the middle of bin idx, in ns
		if (idx < 128) return idx
		e = int(idx / 64) - 1
		return 2 ^ (e + 6) + (idx % 64 + 0.5) * 2 ^ e
	}
	FNR == 1 { file++ }
	{ i = int(($1 + ms / 2) / ms); g = i }
	$1 - i * ms > ms / 10 || i * ms - $1 > ms / 10 { next }
	from != "" { if (i * ms / 1000 <= from || i * ms / 1000 > to) next; g = 0 }
	file == 1 {
		for (j = 4; j <= NF; j++) if ($j > 0) { h[g, j - 4] += $j; n[g] += $j; nd[i, $2] += $j }
		if (g > last) last = g
		next
	}
	{ s[g] += $2 * nd[i, $3] }
	END {
		if (from != "" && !n[0]) print "0 0 0"
		for (g = (from != "" ? 0 : 1); g <= last; g++) {
			if (!n[g]) continue
			c = 0; p = 0
			for (j = 0; j < 1856; j++) { c += h[g, j]; if (c >= 0.99 * n[g]) { p = val(j); break } }
			if (from != "") printf "%.1f %.0f %.0f\n", n[g] / (to - from), s[g] / n[g], p
			else printf "%d %d %.0f %.0f\n", g * ms / 1000, n[g], s[g] / n[g], p
		}
	}' "$1"_clat_hist.1.log "$1"_lat.1.log
}

# run_target T K: lay out, remount, run the workload on target T in round K;
# leaves $out/rK-T.* (fio logs and JSON, status polls, intervals).
run_target() {
	local t=$1 k=$2 kind pol="" p="$out/r$2-$1" t0
	case $t in
	fast|slow) kind=$t ;;
	tier-*) kind=tier pol=${t#tier-} ;;
	*) die "unknown target $t" ;;
	esac
	fresh_tiers
	write_conf "$kind" off "${pol:-arc}"
	mount_vol
	t0=$EPOCHREALTIME
	layout "$mnt/image" "$size"
	note "round $k, $t: laid out $size in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s"
	umount_vol
	write_conf "$kind" policy "${pol:-arc}"
	mount_vol
	note "round $k, $t: $(ctl status | awk '$1 == "tier" { printf "%s ", $2 } $1 == "tier" { for (i = 2; i <= NF; i++) if ($i ~ /^chunks=/) printf "%s  ", $i }')workload ${runtime} s"
	poll_start "$p.status" "$ival"
	workload "$p" "$mnt/image" "$runtime" "$dist" $((ival * 1000))
	poll_stop
	umount_vol
	latency "$p" $((ival * 1000)) > "$p.ivals"
	# the floor's I/O must have been counted by the cgroup, or the throttle
	# did not apply and every figure of the run is void
	if [ "$kind" = slow ] && ! awk 'NR == 2 { a = $14 + $15 } END { exit !($14 + $15 - a > 0) }' "$p.status"; then
		die "the cgroup counted no I/O of the daemon on $loopdev: the throttle did not apply"
	fi
}

# show_target T K: the target's line per interval, with the limit's ratio.
show_target() {
	local t=$1 k=$2 p="$out/r$2-$1" base
	base=$(steady_of fast "$k" | cut -d' ' -f1)
	echo
	echo "round $k, $t: per ${ival} s (moved: migration MiB in the interval; slow: I/Os per second that reached the slow tier)"
	printf '%5s %9s %6s %9s %9s %8s %7s %7s %7s %4s %7s %6s\n' t IOPS ratio mean_us p99_us moved_MiB promo demo pending busy slow/s ram_hit
	awk -v base="${base:-0}" -v ival="$ival" '
	FNR == 1 { file++ }
	file == 1 { io[$1] = $2; mean[$1] = $3; p99[$1] = $4; next }
	FNR == 1 { next }
	{ for (j = 1; j <= NF; j++) s[$1, j] = $j; ts[++nt] = $1 }
	END {
		for (x = 2; x <= nt; x++) {
			t = ts[x]; u = ts[x - 1]
			if (!(t in io)) continue
			iops = io[t] / ival
			hits = s[t, 10] - s[u, 10]; miss = s[t, 11] - s[u, 11]
			printf "%5d %9.0f %6s %9.0f %9.0f %8.1f %7d %7d %7d %4d %7.0f %6s\n", t, iops,
				(base > 0 ? sprintf("%.2f", iops / base) : "-"), mean[t] / 1000, p99[t] / 1000,
				(s[t, 2] - s[u, 2]) / 1048576, s[t, 4] - s[u, 4], s[t, 5] - s[u, 5], s[t, 6], s[t, 8],
				(s[t, 14] + s[t, 15] - s[u, 14] - s[u, 15]) / ival,
				(hits + miss > 0 ? sprintf("%.0f%%", 100 * hits / (hits + miss)) : "-")
		}
	}' "$p.ivals" "$p.status"
}

# steady_of T K: "iops mean_ns p99_ns" of target T in round K over the
# steady state, the last BENCH_STEADY seconds.
steady_of() {
	[ -f "$out/r$2-$1_clat_hist.1.log" ] || return 0
	latency "$out/r$2-$1" $((ival * 1000)) $((runtime - steady)) "$runtime"
}

# warmup_of T K: the first interval end at which the target reached 0.8 of
# the limit's steady IOPS, or "never".
warmup_of() {
	local base
	base=$(steady_of fast "$2" | cut -d' ' -f1)
	awk -v base="${base:-0}" -v ival="$ival" '$2 / ival >= 0.8 * base { print $1 " s"; f = 1; exit }
		END { if (!f) print "never" }' "$out/r$2-$1.ivals"
}

# summary K: the round's table of steady-state figures.
summary() {
	local k=$1 t b s r moved
	b=$(steady_of fast "$k")
	echo
	echo "round $k: steady state = the last $steady s of $runtime s; ratios to 'fast' (the limit)"
	printf '%-12s %9s %6s %9s %6s %9s %6s %10s %10s\n' target IOPS ratio mean_us ratio p99_us ratio moved_MiB "0.8 at"
	for t in "${targets[@]}"; do
		s=$(steady_of "$t" "$k")
		[ -n "$s" ] || continue
		moved=$(awk 'NR > 1 { m = $2 } END { printf "%.0f", m / 1048576 }' "$out/r$k-$t.status")
		read -r -a sv <<< "$s"
		read -r -a bv <<< "${b:-0 0 0}"
		r=$(awk -v a="${sv[0]}" -v b="${bv[0]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
		ratio_of[$t,$k]=$r
		awk -v t="$t" -v s="$s" -v b="${b:-0 0 0}" -v moved="$moved" -v w="$(warmup_of "$t" "$k")" 'BEGIN {
			split(s, x, " "); split(b, y, " ")
			printf "%-12s %9.0f %6s %9.0f %6s %9.0f %6s %10s %10s\n", t,
				x[1], (y[1] > 0 ? sprintf("%.2f", x[1] / y[1]) : "-"),
				x[2] / 1000, (y[2] > 0 ? sprintf("%.2f", x[2] / y[2]) : "-"),
				x[3] / 1000, (y[3] > 0 ? sprintf("%.2f", x[3] / y[3]) : "-"), moved, w
		}'
	done
}

# plot K: IOPS over time of every target of round K, in $out/iops-rK.png.
plot() {
	local k=$1 t cmd="" sep=""
	command -v gnuplot >/dev/null || { note "no gnuplot: no plot (scripts/deps.sh installs gnuplot-nox)"; return 0; }
	for t in "${targets[@]}"; do
		[ -s "$out/r$k-$t.ivals" ] || continue
		cmd+="$sep'$out/r$k-$t.ivals' using 1:(\$2/$ival) with linespoints title '$t'"
		sep=", "
	done
	gnuplot -e "set terminal png size 1000,600; set output '$out/iops-r$k.png';
		set title 'siltfs tiering, round $k: 4 KiB random ${rwmix}% read, $dist, QD $qd, $size image, fast tier $fastcap, slow tier $iops_limit IOPS';
		set xlabel 'seconds'; set ylabel 'IOPS (per ${ival} s)'; set logscale y; set grid; set key outside right;
		plot $cmd"
	note "plot: $out/iops-r$k.png"
}

# verdicts: every policy's steady-state ratio in every round, against the
# issue's goal (0.8 of the limit) and the least that resolves it (0.7).
verdicts() {
	local t k all worst
	echo
	echo "goal: steady-state IOPS >= 0.8 of the limit (0.7 the least that resolves the issue)"
	for t in "${targets[@]}"; do
		[[ $t == tier-* ]] || continue
		all="" worst=""
		for ((k = 1; k <= rounds; k++)); do
			all+=" ${ratio_of[$t,$k]:--}"
			worst=$(awk -v a="${ratio_of[$t,$k]:-0}" -v w="$worst" 'BEGIN { print ((w == "" || a + 0 < w + 0) ? a : w) }')
		done
		awk -v t="$t" -v w="$worst" -v all="$all" 'BEGIN {
			v = w >= 0.8 ? "met     " : w >= 0.7 ? "0.7 met " : "MISSED  "
			printf "%s%s: %s of the limit (rounds:%s)\n", v, t, w, all }'
	done
}

# daemon_cpu: CPU seconds the daemon used so far, "all migrate store": the
# whole process (threads that exited too), its migration thread and
# RocksDB's threads.
daemon_cpu() {
	local t
	{
		echo "all $(cut -d')' -f2 "/proc/$daemon/stat" | awk '{ print $12 + $13 }')"
		for t in /proc/"$daemon"/task/*; do
			echo "$(cat "$t/comm") $(cut -d')' -f2 "$t/stat" | awk '{ print $12 + $13 }')"
		done 2>/dev/null
	} | awk -v hz="$(getconf CLK_TCK)" '$1 == "all" { a = $2 } $1 == "silt-migrate" { m += $2 } $1 ~ /^rocksdb/ { r += $2 }
		END { printf "%.2f %.2f %.2f\n", a / hz, m / hz, r / hz }'
}

# quiet_phase PREFIX NAME: one run of the quiet-period job on $mnt/A, with
# the daemon's CPU seconds in it (qcpu[NAME]: all, migrate, store) and the
# load average at its end (qload[NAME]).
quiet_phase() {
	local c0 c1
	c0=$(daemon_cpu)
	workload "$1-$2" "$mnt/A" "$quiet_secs" random 1000
	c1=$(daemon_cpu)
	qcpu[$2]=$(awk -v a="$c0" -v b="$c1" 'BEGIN { split(a, x, " "); split(b, y, " ")
		printf "%.1f/%.1f/%.1f", y[1] - x[1], y[2] - x[2], y[3] - x[3] }')
	qload[$2]=$(cut -d' ' -f1 /proc/loadavg)
}

# drain_done: the engine has nothing left to do (pending 0, no move for 3 s).
drain_done() {
	local a b i
	for ((i = 0; i < 240; i++)); do
		a=$(ctl status | field placement moved)
		sleep 3
		b=$(ctl status | field placement moved)
		[ "$a" = "$b" ] && [ "$(ctl status | field placement pending)" = 0 ] && return 0
	done
	return 1
}

# quiet_test K: the foreground job on data that sits on the fast tier,
# without migration, while the engine drains another file, and without
# again; prints the phases and the ratio of p99s.
quiet_test() {
	local k=$1 p="$out/r$1-quiet" big ph s0 s1 w
	local -A fig
	big=$(( ($(bytes "$quiet_a") + $(bytes "$quiet_b")) / 1048576 + 1024 ))M
	fresh_tiers
	write_conf tier off arc "$big"
	mount_vol
	layout "$mnt/B" "$quiet_b"
	layout "$mnt/A" "$quiet_a"
	umount_vol
	write_conf tier off arc "$fastcap"
	mount_vol
	note "round $k, quiet period: A ($quiet_a) and B ($quiet_b) on the fast tier, its capacity now $fastcap"
	workload "$p-warm" "$mnt/A" 10 random 1000
	quiet_phase "$p" off1
	ctl "migrate policy" > /dev/null
	poll_start "$p.status" 1
	quiet_phase "$p" on
	poll_stop
	note "round $k, quiet period: waiting for the drain to end"
	drain_done || die "the engine did not finish draining B"
	ctl "migrate off" > /dev/null
	s0=$(ctl status | field placement moved)
	quiet_phase "$p" off2
	s1=$(ctl status | field placement moved)
	w=$("$SILTCTL" where --json "$mnt/A")
	umount_vol
	echo
	echo "round $k, quiet period: 4 KiB random ${rwmix}% read, uniform over A ($quiet_a, all on the fast tier), QD $qd, ${quiet_secs} s each"
	printf '%-6s %9s %9s %9s %15s %27s %5s\n' phase IOPS mean_us p99_us "median 1-s p99" \
		"daemon CPU s all/mig/store" load
	for ph in off1 on off2; do
		fig[$ph]="$(latency "$p-$ph" 1000 0 "$quiet_secs") $(latency "$p-$ph" 1000 | cut -d' ' -f4 | median)"
		awk -v ph="$ph" -v f="${fig[$ph]}" -v c="${qcpu[$ph]}" -v l="${qload[$ph]}" 'BEGIN { split(f, x, " ")
			printf "%-6s %9.0f %9.0f %9.0f %15.0f %27s %5s\n", ph, x[1], x[2] / 1000, x[3] / 1000, x[4] / 1000, c, l }'
	done
	awk -v a="${fig[off1]}" -v b="${fig[on]}" -v c="${fig[off2]}" 'BEGIN {
		split(a, x, " "); split(b, y, " "); split(c, z, " ")
		r = y[3] / ((x[3] + z[3]) / 2)
		printf "%s quiet period: p99 during migration / without = %.2f (target <= 1.5; against each run without: %.2f %.2f)\n",
			(r <= 1.5 ? "met   " : "MISSED"), r, y[3] / x[3], y[3] / z[3]
		printf "  median of the 1-s p99s %.2f, mean latency %.2f, IOPS %.2f (during / the mean of the two without)\n",
			y[4] / ((x[4] + z[4]) / 2), y[2] / ((x[2] + z[2]) / 2), y[1] / ((x[1] + z[1]) / 2)
	}'
	awk -v n="$quiet_secs" 'NR > 1 && $1 <= n { if (!f) { m0 = $2; f = 1 } m1 = $2; b += $8; c++; r += $7 }
		END { printf "  during migration: %.1f MiB moved (%.1f MiB/s), busy in %d of %d one-second polls, engine rate %.1f MiB/s on average\n",
			(m1 - m0) / 1048576, (m1 - m0) / 1048576 / n, b, c, r / (c ? c : 1) / 1048576 }' "$p.status"
	echo "  moves during the second run without migration: $((s1 - s0)); A's chunks on the fast tier afterwards: $(jq '.tiers[] | select(.name == "fast") | .chunks' <<< "$w") of $(jq '.chunks' <<< "$w")"
}

main() {
	local k t
	[ "$(id -u)" = 0 ] || die "needs root (loop device, mounts, cgroup)"
	for t in fio jq python3 mkfs.ext4 losetup numfmt; do
		command -v "$t" >/dev/null || die "needs $t (scripts/deps.sh)"
	done
	{ [ -x "$SILTFS" ] && [ -x "$SILTCTL" ]; } || die "SILTFS ($SILTFS) or SILTCTL ($SILTCTL) is not built"
	[ -e "$dir" ] && die "$dir exists; remove it or set BENCH_DIR"
	[ "$runtime" -gt "$steady" ] || die "BENCH_RUNTIME ($runtime) must be longer than BENCH_STEADY ($steady)"
	{ [ $((runtime % ival)) = 0 ] && [ $((steady % ival)) = 0 ]; } || die "BENCH_RUNTIME and BENCH_STEADY must be multiples of BENCH_INTERVAL"
	[[ " ${targets[*]} " == *" fast "* ]] || die "BENCH_TARGETS must include fast (the limit every ratio is taken to)"
	mkdir -p "$dir" "$out"
	trap cleanup EXIT
	trap 'echo "tiering.sh: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR
	exec > >(tee -a "$out/report.txt")
	if [ "$(bytes "$size")" -lt $((4 * $(bytes "$fastcap"))) ]; then
		echo "note: the image ($size) is less than 4x the fast tier ($fastcap)"
	fi
	echo "tiering.sh: $(fio --version), commit $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '?')," \
		"$(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "workload: 4 KiB random, ${rwmix}% read, $dist, QD $qd, io_uring, O_DIRECT, ${runtime} s (steady state: the last ${steady} s)"
	echo "volume: image $size; fast tier $fastcap in $dir ($(df --output=source,fstype "$dir" | tail -n1 | tr -s ' '));" \
		"slow tier ext4 on a loop device, $iops_limit IOPS and $bps_limit/s; [placement] epoch $epoch${BENCH_PLACEMENT:+, $BENCH_PLACEMENT}"
	echo "results in $out"
	setup_slow
	for ((k = 1; k <= rounds; k++)); do
		if [ "$quiet" != only ]; then
			for t in "${targets[@]}"; do
				run_target "$t" "$k"
			done
			for t in "${targets[@]}"; do
				show_target "$t" "$k"
			done
			summary "$k"
			plot "$k"
		fi
		if [ "$quiet" != 0 ]; then quiet_test "$k"; fi
		echo "load average after round $k: $(cut -d' ' -f1-3 /proc/loadavg)"
	done
	if [ "$quiet" != only ]; then verdicts; fi
}

main "$@"
