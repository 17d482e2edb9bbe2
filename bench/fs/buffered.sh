#!/usr/bin/env bash
# buffered.sh: buffered writes (through the page cache, no O_DIRECT), the
# way cp, tar, package installs and qemu's default cache mode write. In one
# run, on the same disk, fio writes BENCH_SIZE in 4 KiB writes with one
# fsync at the end (end_fsync: the data is on the disk when the job ends)
# against three targets:
#   direct        a plain directory on the disk (the filesystem below: the limit)
#   writethrough  a one-tier siltfs volume on such a directory, -o cache=writethrough
#   writeback     the same, -o cache=writeback (the kernel's writeback cache)
# jobs:
#   seq-write     4 KiB sequential writes
#   rand-write    4 KiB random writes (a file laid out first)
# Each job runs on the three targets back to back, BENCH_ROUNDS times, each
# round starting with the next target; a ratio is the median of the
# per-round ratios to direct (each taken between runs seconds apart), and
# every round's ratio is printed. Target (issue 12): writeback >= 0.5 of
# direct on both jobs; a miss prints "MISSED" (the script still exits 0).
#
# Env: SILTFS (default build/siltfs), BENCH_DIR (default
# /var/tmp/siltfs-bench-buffered), BENCH_SIZE (default 256M), BENCH_ROUNDS
# (default 3).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
SILTFS=${SILTFS:-$src/build/siltfs}
dir=${BENCH_DIR:-/var/tmp/siltfs-bench-buffered}
size=${BENCH_SIZE:-256M}
rounds=${BENCH_ROUNDS:-3}
targets=(direct writethrough writeback)
jobs=(seq-write rand-write)
declare -A mibs
mounts=()

die() { echo "buffered.sh: $*" >&2; exit 1; }
cleanup() {
	for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT
command -v fio >/dev/null || die "fio is not installed (scripts/deps.sh installs it)"
[ -x "$SILTFS" ] || die "no siltfs at $SILTFS (build first)"
rm -rf "$dir" && mkdir -p "$dir"

# a one-tier volume for each siltfs target
for t in writethrough writeback; do
	mkdir -p "$dir/$t/tier" "$dir/$t/mnt"
	printf '[volume]\nname = bench-%s\nlog_file = %s/%s.log\n\n[tier t0]\npath = %s/%s/tier\nclass = nvme\n' \
		"$t" "$dir" "$t" "$dir" "$t" > "$dir/$t/vol.conf"
	"$SILTFS" "$dir/$t/vol.conf" "$dir/$t/mnt" -o cache=$t </dev/null >/dev/null || die "cannot mount $t"
	mounts+=("$dir/$t/mnt")
done
mkdir -p "$dir/direct/mnt"
where() { echo "$dir/$1/mnt"; }

# run JOB TARGET: MiB/s of one fio run
run() {
	local rw=write extra=()
	[ "$1" = rand-write ] && rw=randwrite
	local f="$(where "$2")/$1"
	if [ "$1" = rand-write ] && [ ! -e "$f" ]; then
		fio --name=layout --filename="$f" --rw=write --bs=1M --size="$size" --end_fsync=1 \
			--output-format=terse >/dev/null
	fi
	[ "$1" = seq-write ] && rm -f "$f"
	sync; echo 3 > /proc/sys/vm/drop_caches
	fio --name="$1" --filename="$f" --rw=$rw --bs=4k --size="$size" --ioengine=psync --end_fsync=1 \
		--output-format=json "${extra[@]}" | jq '.jobs[0].write.bw_bytes / 1048576'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for ((r = 0; r < rounds; r++)); do
	for job in "${jobs[@]}"; do
		for ((i = 0; i < ${#targets[@]}; i++)); do
			t=${targets[(i + r) % ${#targets[@]}]}
			mibs[$job,$t,$r]=$(run "$job" "$t")
			printf 'round %d %-10s %-12s %8.1f MiB/s\n' "$r" "$job" "$t" "${mibs[$job,$t,$r]}"
		done
	done
done

echo
printf '%-10s %10s %14s %12s   %s\n' job direct writethrough writeback "writeback/direct per round"
for job in "${jobs[@]}"; do
	per=() wt=() wb=() dr=()
	for ((r = 0; r < rounds; r++)); do
		d=${mibs[$job,direct,$r]}
		dr+=("$d"); wt+=("${mibs[$job,writethrough,$r]}"); wb+=("${mibs[$job,writeback,$r]}")
		per+=("$(awk -v a="${mibs[$job,writeback,$r]}" -v b="$d" 'BEGIN { printf "%.2f", a / b }')")
	done
	ratio=$(printf '%s\n' "${per[@]}" | median)
	wtr=$(for ((r = 0; r < rounds; r++)); do awk -v a="${wt[r]}" -v b="${dr[r]}" 'BEGIN { print a / b }'; done | median)
	printf '%-10s %10.1f %14.1f %12.1f   %s (median %.2f; writethrough %.2f)\n' "$job" \
		"$(printf '%s\n' "${dr[@]}" | median)" "$(printf '%s\n' "${wt[@]}" | median)" \
		"$(printf '%s\n' "${wb[@]}" | median)" "${per[*]}" "$ratio" "$wtr"
	awk -v x="$ratio" 'BEGIN { exit !(x < 0.5) }' && echo "  MISSED: $job writeback at $ratio of direct (target 0.5)"
done
exit 0
