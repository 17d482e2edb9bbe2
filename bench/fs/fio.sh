#!/usr/bin/env bash
# fio.sh: measures what siltfs costs over the raw disk, against what any FUSE
# filesystem costs. In one run, on the same disk, fio (io_uring, O_DIRECT)
# runs the same jobs against three targets:
#   direct       a file in a plain directory on the disk (the limit)
#   passthrough  libfuse's passthrough_ll example over such a directory
#                (built from /usr/share/doc/libfuse3-dev/examples into a
#                temporary directory, never committed)
#   siltfs       a one-tier siltfs volume on such a directory
# and prints MiB/s, IOPS and each FUSE target as a ratio to direct:
#   seq-read    1 MiB sequential read,   iodepth 16
#   seq-write   1 MiB sequential write,  iodepth 16
#   rand-read   4 KiB random read,       iodepth 32
#   rand-write  4 KiB random write,      iodepth 32
#   rand-read4  4 KiB random read, 4 jobs x iodepth 32 (same file)
# Each target's file (BENCH_SIZE) is written once before the jobs; then each
# job runs on the three targets back to back (so that load from elsewhere on
# the machine hits all three alike), BENCH_RUNTIME seconds after a 2 s ramp,
# and the whole sequence is repeated BENCH_ROUNDS times, each round starting
# with the next target. The disk of these
# machines is a host-cached virtual disk whose speed drifts by 2x within
# minutes (random writes most), so one pass proves little: each figure
# printed is the median over the rounds, a ratio is the median of the
# per-round ratios (each taken between runs seconds apart), and the verdict
# lines show every round's ratio.
# Targets (from the issue): siltfs >= 1.0x passthrough on every line where
# passthrough runs; seq-read >= 0.85 and random reads >= 0.65 of direct;
# writes >= 0.5 of direct. A missed target prints a line marked "MISSED";
# the script still exits 0 (benchmarks report), unless a run errored. A
# passthrough run that fails (its O_DIRECT writes get EINVAL from unaligned
# buffers) is reported as "error (EINVAL)" and is not an error of the script.
#
# Env: SILTFS (default build/siltfs), BENCH_DIR (scratch space on the disk
# under test; default /var/tmp/siltfs-bench), BENCH_SIZE (file size, default
# 2G), BENCH_RUNTIME (seconds per job, default 10), BENCH_ROUNDS (default
# 3), BENCH_SETTLE (seconds of quiet between laying the files out and the
# first job, default 30), BENCH_TARGETS (default
# "direct passthrough siltfs"), BENCH_JOBS (default: all five, in the order
# above).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
SILTFS=${SILTFS:-$src/build/siltfs}
dir=${BENCH_DIR:-/var/tmp/siltfs-bench}
size=${BENCH_SIZE:-2G}
runtime=${BENCH_RUNTIME:-10}
rounds=${BENCH_ROUNDS:-3}
settle=${BENCH_SETTLE:-30}
read -r -a targets <<< "${BENCH_TARGETS:-direct passthrough siltfs}"
read -r -a jobs <<< "${BENCH_JOBS:-seq-read seq-write rand-read rand-write rand-read4}"
examples=/usr/share/doc/libfuse3-dev/examples

declare -A mib iops        # [job,target,round]
declare -A status          # [job,target]: ok, or the first error
declare -A where_of pid_of laid_out
mounts=()

die() { echo "fio.sh: $*" >&2; exit 1; }

cleanup() {
	local m p
	for m in "${mounts[@]}"; do
		mountpoint -q "$m" && { umount "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null; }
	done
	for p in "${pid_of[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -n "${BENCH_KEEP:-}" ] || rm -rf --one-file-system "$dir"
}

# wait_mounted MNT PID: until MNT is a FUSE mount (20 s), or PID dies.
wait_mounted() {
	local i
	for ((i = 0; i < 200; i++)); do
		grep -qs " $1 fuse" /proc/self/mounts && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# wait_gone PID: until the process has exited (60 s).
wait_gone() {
	local i
	for ((i = 0; i < 600; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

build_passthrough() {
	[ -f "$examples/passthrough_ll.c" ] || die "$examples/passthrough_ll.c missing (apt install libfuse3-dev)"
	mkdir -p "$dir/ptbuild"
	cp "$examples/passthrough_ll.c" "$examples"/passthrough_helpers.h "$dir/ptbuild/" 2>/dev/null ||
		cp "$examples/passthrough_ll.c" "$dir/ptbuild/"
	# shellcheck disable=SC2046
	gcc -O2 -o "$dir/ptbuild/passthrough_ll" "$dir/ptbuild/passthrough_ll.c" $(pkg-config fuse3 --cflags --libs) ||
		die "cannot build passthrough_ll"
}

# mount_target T: prepare target T; where_of[T] is the directory fio uses.
mount_target() {
	local t=$1 mnt="$dir/mnt-$1"
	mkdir -p "$dir/$t-disk" "$mnt"
	case $t in
	direct)
		where_of[$t]="$dir/$t-disk"; return 0 ;;
	passthrough)
		"$dir/ptbuild/passthrough_ll" -f -o source="$dir/$t-disk" "$mnt" >"$dir/$t.log" 2>&1 & ;;
	siltfs)
		printf '[volume]\nname = bench\n\n[tier disk]\npath = %s\nclass = ssd\n' \
			"$dir/$t-disk" > "$dir/bench.conf"
		"$SILTFS" "$dir/bench.conf" "$mnt" -f >"$dir/$t.log" 2>&1 & ;;
	*)
		die "unknown target $t" ;;
	esac
	pid_of[$t]=$!
	mounts+=("$mnt")
	wait_mounted "$mnt" "$!" || { cat "$dir/$t.log" >&2; die "$t did not mount"; }
	where_of[$t]=$mnt
}

umount_target() {
	local t=$1
	[ "$t" = direct ] && return 0
	umount "$dir/mnt-$t" || die "umount $dir/mnt-$t failed"
	wait_gone "${pid_of[$t]}" || die "$t daemon did not exit after umount"
}

# fio_job JOB: the fio options of JOB.
fio_job() {
	case $1 in
	seq-read)   echo "--rw=read --bs=1M --iodepth=16" ;;
	seq-write)  echo "--rw=write --bs=1M --iodepth=16" ;;
	rand-read)  echo "--rw=randread --bs=4k --iodepth=32" ;;
	rand-write) echo "--rw=randwrite --bs=4k --iodepth=32" ;;
	rand-read4) echo "--rw=randread --bs=4k --iodepth=32 --numjobs=4 --group_reporting" ;;
	esac
}

# layout FILE: write the whole test file once (buffered, so that it works on
# every target); the jobs then read and overwrite allocated data, the case
# of a VM image.
layout() {
	fio --name=layout --filename="$1" --size="$size" --rw=write --bs=1M --direct=0 \
		--ioengine=psync --end_fsync=1 --output=/dev/null
}

# run_job T JOB FILE ROUND: one fio run; fills mib/iops, and status on error.
run_job() {
	local t=$1 job=$2 file=$3 k=$4 out="$dir/$1.$2.json" err="$dir/$1.$2.err" rc=0
	# shellcheck disable=SC2046
	fio --name="$job" --filename="$file" --size="$size" --ioengine=io_uring --direct=1 \
		--time_based --runtime="$runtime" --ramp_time=2 --randrepeat=0 \
		$(fio_job "$job") --output-format=json --output="$out" 2>"$err" || rc=$?
	if [ $rc -ne 0 ] || jq -e '[.jobs[].error] | add > 0' "$out" >/dev/null 2>&1; then
		local e
		e=$( (grep -ho 'error=[A-Za-z ]*' "$err" "$out" 2>/dev/null || true) | head -n1 | sed 's/.*error=//' || true)
		grep -qi 'invalid argument' "$err" "$out" 2>/dev/null && e=EINVAL
		[ "${status[$job,$t]:-ok}" = ok ] && status[$job,$t]="error (${e:-fio exit $rc})"
		return 0
	fi
	mib[$job,$t,$k]=$(jq '[.jobs[] | .read.bw + .write.bw] | add / 1024' "$out")
	iops[$job,$t,$k]=$(jq '[.jobs[] | .read.iops + .write.iops] | add' "$out")
	: "${status[$job,$t]:=ok}"
}

# Every target is mounted and laid out first; then, round after round, each
# job runs on the three targets back to back, so that a change of load on
# the machine during the run hits all of them alike.
run_all() {
	local t job k
	for t in "${targets[@]}"; do
		mount_target "$t"
		echo "== $t: laying out $size in ${where_of[$t]}" >&2
		layout "${where_of[$t]}/fio.dat" || laid_out[$t]=no
	done
	sync
	echo 3 > /proc/sys/vm/drop_caches
	# The host behind a virtual disk may still be writing back what was
	# just laid out, and it caches what was read before: the last file
	# laid out (siltfs's) measured 0.54-0.82 of direct in round 1 and
	# 0.95-1.44 in the later rounds, for the same sequential read. So
	# let the host settle, then read every file once, unmeasured, so
	# that all targets start from the same state.
	echo "== settling for ${settle} s, then reading each file once" >&2
	sleep "$settle"
	for t in "${targets[@]}"; do
		[ "${laid_out[$t]:-yes}" = no ] && continue
		fio --name=warm --filename="${where_of[$t]}/fio.dat" --size="$size" --rw=read \
			--bs=1M --iodepth=16 --ioengine=io_uring --direct=1 --output=/dev/null ||
			laid_out[$t]=no
	done
	local n=${#targets[@]} j
	for ((k = 1; k <= rounds; k++)); do
		for job in "${jobs[@]}"; do
			# each round starts with the next target, so that going
			# first (or last) after a change of job is no one's habit
			for ((j = 0; j < n; j++)); do
				t=${targets[$(((j + k - 1) % n))]}
				if [ "${laid_out[$t]:-yes}" = no ]; then
					status[$job,$t]="error (layout)"
					continue
				fi
				[ "${status[$job,$t]:-ok}" = ok ] || continue
				echo "== round $k/$rounds, $job: $t (${runtime} s)" >&2
				run_job "$t" "$job" "${where_of[$t]}/fio.dat" "$k"
			done
		done
	done
	for t in "${targets[@]}"; do
		rm -f "${where_of[$t]}/fio.dat"
		umount_target "$t"
	done
}

# target_for JOB: the minimum ratio to direct the issue asks of siltfs.
target_for() {
	case $1 in
	seq-read) echo 0.85 ;;
	rand-read|rand-read4) echo 0.65 ;;
	*) echo 0.5 ;;
	esac
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
fmt2() { LC_ALL=C printf '%.2f' "$1"; }

# per_round JOB T BASE: the ratio of T to BASE in each round, one per line.
per_round() {
	local k
	for ((k = 1; k <= rounds; k++)); do
		jq -n "${mib[$1,$2,$k]} / ${mib[$1,$3,$k]}"
	done
}

# verdict JOB T BASE NAME TARGET: one line "ok"/"MISSED" with every round.
verdict() {
	local r all line
	mapfile -t all < <(per_round "$1" "$2" "$3")
	r=$(fmt2 "$(median "${all[@]}")")
	line="$1: siltfs ${r}x $4 (target >= $5; rounds:$(for x in "${all[@]}"; do printf ' %s' "$(fmt2 "$x")"; done))"
	if jq -e -n "$r >= $5" >/dev/null; then echo "ok      $line"; else echo "MISSED  $line"; return 1; fi
}

report() {
	local job t r missed=0 k m i
	printf '\nmedians of %d rounds of %d s\n' "$rounds" "$runtime"
	printf '%-11s %-12s %9s %9s %10s\n' job target MiB/s IOPS "vs direct"
	for job in "${jobs[@]}"; do
		for t in "${targets[@]}"; do
			if [ "${status[$job,$t]:-}" != ok ]; then
				printf '%-11s %-12s %s\n' "$job" "$t" "${status[$job,$t]:-not run}"
				continue
			fi
			m=(); i=()
			for ((k = 1; k <= rounds; k++)); do m+=("${mib[$job,$t,$k]}"); i+=("${iops[$job,$t,$k]}"); done
			r=-
			[ "${status[$job,direct]:-}" = ok ] && r=$(fmt2 "$(median $(per_round "$job" "$t" direct))")
			printf '%-11s %-12s %9.1f %9.0f %10s\n' "$job" "$t" "$(median "${m[@]}")" "$(median "${i[@]}")" "$r"
		done
	done
	printf '\n'
	for job in "${jobs[@]}"; do
		if [ "${status[$job,siltfs]:-}" != ok ] || [ "${status[$job,direct]:-}" != ok ]; then
			continue
		fi
		verdict "$job" siltfs direct direct "$(target_for "$job")" || missed=1
		if [ "${status[$job,passthrough]:-}" = ok ]; then
			verdict "$job" siltfs passthrough passthrough_ll 1.0 || missed=1
		fi
	done
	if [ "${status[${jobs[0]},siltfs]:-}" = "" ]; then
		echo "siltfs was not run"
	elif [ $missed = 0 ]; then
		echo "all targets met"
	else
		echo "some targets MISSED"
	fi
}

main() {
	[ "$(id -u)" = 0 ] || die "needs root (mounts, drop_caches)"
	if ! command -v fio >/dev/null || ! command -v jq >/dev/null; then
		die "needs fio and jq"
	fi
	[[ " ${targets[*]} " != *" siltfs "* ]] || [ -x "$SILTFS" ] || die "SILTFS ($SILTFS) is not built"
	[ -e "$dir" ] && die "$dir exists; remove it or set BENCH_DIR"
	mkdir -p "$dir"
	trap cleanup EXIT
	build_passthrough
	echo "fio.sh: $(fio --version), size $size, ${runtime} s per job, $rounds rounds, disk of $dir:" \
		"$(df -h --output=source,fstype "$dir" | tail -n1)" >&2
	local t job errored=0
	echo "fio.sh: load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	run_all
	echo "fio.sh: load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	report
	for t in direct siltfs; do
		for job in "${jobs[@]}"; do
			[ "${status[$job,$t]:-ok}" = ok ] || errored=1
		done
	done
	return $errored
}

main "$@"
