#!/usr/bin/env bash
# swap.sh: swap-out and swap-in throughput through siltfs, against swap on
# a loop device over a plain file on the same disk, in the same run.
#
# Two swap areas of the same size, each a loop device (losetup
# --direct-io=on) over a file:
#   plain   a file in a plain directory of the disk
#   siltfs  a file on a one-tier siltfs volume in a directory of that disk
# Only one is active at a time.  silt-swaphog (tests/integration/tools/)
# runs in a memory cgroup limited to a quarter of the BENCH_SWAP_MIB it
# touches: its write sweep pushes three quarters of its pages out to swap
# (swap-out MiB/s = pages written to swap / sweep time) and its check
# sweep reads them back (swap-in MiB/s = pages read from swap / sweep
# time).  The two targets alternate, each round starting with the other
# one; printed are the medians over BENCH_ROUNDS rounds and siltfs / plain
# as the median of the per-round ratios, with every round's ratio.
# The sweeps' page filling and checking cost CPU alike for both targets, so
# the ratios are what siltfs costs the swapping process, not the device.
#
# Uses tests/integration/lib.sh for the mount, the loop devices, swap and
# the cgroup, and so its exit trap: swap off, loops detached, cgroup
# removed, mount gone whatever happens.  Each run under silt_bounded.
#
# Env: SILTFS, SILT_SWAPHOG (default build/...), BENCH_SWAP_MIB (default
# 1024), BENCH_ROUNDS (default 3).
here=$(cd "$(dirname "$0")" && pwd)
: "${BUILDDIR:=$(cd "$here/../.." && pwd)/build}"
: "${SILT_DEADLINE:=3000}"
export BUILDDIR SILT_DEADLINE
SILT_TEST_NAME=swap-bench
. "$here/../../tests/integration/lib.sh"

mib=${BENCH_SWAP_MIB:-1024}
rounds=${BENCH_ROUNDS:-3}
swap_mib=$((mib + 256))
limit=$((mib / 4))
targets=(plain siltfs)
declare -A dev out_r in_r   # [target] / [target,round]

[ -x "$SILT_SWAPHOG" ] || silt_abort "SILT_SWAPHOG ($SILT_SWAPHOG) is not built"
if swapon --show --noheadings | grep -q .; then
	silt_abort "other swap is active ($(swapon --show --noheadings | tr '\n' ' ')): the figures would mix devices"
fi

echo "swap.sh: $mib MiB touched in a $limit MiB memory cgroup, $swap_mib MiB swap areas under $SILT_TMP ($(df --output=source "$SILT_TMP" | tail -n1))"
V="$SILT_TMP/v"; M="$SILT_TMP/m"
silt_make_volume "$V" 1 64K
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
for t in "${targets[@]}"; do
	if [ "$t" = plain ]; then f="$SILT_TMP/plain.swap"; else f="$M/siltfs.swap"; fi
	dd if=/dev/zero of="$f" bs=1M count="$swap_mib" oflag=direct status=none || silt_abort "writing $f failed"
	chmod 600 "$f"
	silt_losetup "$f" --direct-io=on || silt_abort "losetup $f failed"
	dev[$t]=$SILT_LOOP
	mkswap -f "$SILT_LOOP" >/dev/null 2>&1 || silt_abort "mkswap $SILT_LOOP failed"
done
silt_memcg_make swapbench $((limit << 20)) kill || silt_abort "cannot make a memory cgroup"
CG=$SILT_MEMCG

# field OUT KEY: a value of silt-swaphog's output
field() { grep -oE "$2=[0-9.]+" "$1" | head -n1 | cut -d= -f2; }
# mibs PAGES SECONDS
mibs() { awk -v p="$1" -v s="$2" 'BEGIN { printf "%.1f", p * 4096 / 1048576 / s }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# measure TARGET ROUND: one swaphog pass with TARGET's swap area active.
measure() {
	local t=$1 r=$2 out="$SILT_TMP/$1.$2.out" rc=0
	silt_swapon "${dev[$t]}" || silt_abort "swapon ${dev[$t]} failed"
	silt_bounded 600 "$M" "$t round $r" silt_to_file "$out" silt_memcg_run "$CG" "$SILT_SWAPHOG" "$mib" 1 || rc=$?
	swapoff "${dev[$t]}" && SILT_SWAPS=()
	[ $rc -eq 0 ] || silt_abort "$t round $r: silt-swaphog exited $rc: $(tail -n 3 "$out")"
	out_r[$t,$r]=$(mibs "$(field "$out" out_pages)" "$(field "$out" write_s)")
	in_r[$t,$r]=$(mibs "$(field "$out" in_pages)" "$(field "$out" verify_s)")
	echo "  round $r $t: swap-out ${out_r[$t,$r]} MiB/s, swap-in ${in_r[$t,$r]} MiB/s ($(tr '\n' ' ' < "$out"))"
}

for ((r = 1; r <= rounds; r++)); do
	if ((r % 2)); then order=(plain siltfs); else order=(siltfs plain); fi
	for t in "${order[@]}"; do measure "$t" "$r"; done
done

printf '\n%-9s %14s %14s %22s\n' direction "plain MiB/s" "siltfs MiB/s" "siltfs / plain (rounds)"
for d in out in; do
	declare -n fig="${d}_r"
	p=(); s=(); q=()
	for ((r = 1; r <= rounds; r++)); do
		p+=("${fig[plain,$r]}"); s+=("${fig[siltfs,$r]}")
		q+=("$(awk -v a="${fig[siltfs,$r]}" -v b="${fig[plain,$r]}" 'BEGIN { printf "%.2f", a / b }')")
	done
	printf '%-9s %14s %14s %10s (%s)\n' "swap-$d" "$(median "${p[@]}")" "$(median "${s[@]}")" \
		"$(median "${q[@]}")" "${q[*]}"
	unset -n fig
done
echo
silt_memcg_remove "$CG"
for t in "${targets[@]}"; do silt_lodetach "${dev[$t]}"; done
silt_umount "$M" || silt_abort "umount failed"
silt_summary
