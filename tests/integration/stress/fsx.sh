#!/usr/bin/env bash
# fsx: proves by randomized operation sequences (fixed seeds, so every
# failure replays) that siltfs returns exactly the bytes and sizes an
# in-memory model predicts, through writes, reads, truncates, fallocate,
# punch hole, renames, O_DIRECT, mmap and remounts.
#
# Each run gets a fresh volume: chunk_size 4K or 64K, and either one tier or
# three tiers with tiny capacities so that a file's chunks spread over all
# of them. fsx remounts the volume (umount, wait until the daemon has
# exited, mount again) every FSX_REMOUNT_EVERY ops and compares every file.
#
# Env: SILTFS, FSX; FSX_OPS (ops per run; default 10000, so 80,000 over
# the 8 runs), FSX_LONG=1 (default 250,000 ops per run), FSX_REMOUNT_EVERY
# (default 2500), FSX_SEED (seed of run 0, default 1; run n uses seed+n),
# FSX_ONLY=n (only run n), FSX_WITHOUT=punch,... (fsx --without, for
# narrowing a failure down), SILT_KEEP=1.
#
#   fsx.sh --remount CONF MNT   is the remount command fsx runs.

# The remount command runs in a child of fsx: it must not source lib.sh
# (whose exit trap would kill the daemon it starts).
if [ "${1:-}" = --remount ]; then
	set -euo pipefail
	conf=$2 mnt=$3 opts=${4:-}
	pids=$(for p in $(pgrep -x siltfs); do
		tr '\0' '\n' < "/proc/$p/cmdline" 2>/dev/null | grep -qxF "$mnt" && echo "$p"
	done || true)
	umount "$mnt" || { echo "fsx remount: umount $mnt failed" >&2; exit 1; }
	for ((i = 0; i < 300; i++)); do
		alive=0
		for p in $pids; do
			grep -qs '^State:[[:space:]]*[^Z]' "/proc/$p/status" && alive=1
		done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	[ "$alive" = 0 ] || { echo "fsx remount: daemon $pids still running 30 s after umount" >&2; exit 1; }
	"$SILTFS" "$conf" "$mnt" ${opts:+-o "$opts"} </dev/null >/dev/null || { echo "fsx remount: mount failed" >&2; exit 1; }
	exit 0
fi

# lib.sh's watchdog (kill -9 of our daemons) must not fire before meson's timeout
if [ "${FSX_LONG:-0}" = 1 ]; then : "${SILT_DEADLINE:=86400}"; else : "${SILT_DEADLINE:=570}"; fi
export SILT_DEADLINE
. "$(dirname "$0")/../lib.sh"

: "${FSX:=$BUILDDIR/tests/integration/stress/fsx}"
[ -x "$FSX" ] || { echo "fsx: FSX ($FSX) is not built"; exit 1; }
ops=${FSX_OPS:-10000}
[ "${FSX_LONG:-0}" = 1 ] && ops=${FSX_OPS:-250000}
every=${FSX_REMOUNT_EVERY:-2500}
seed0=${FSX_SEED:-1}
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

# chunk_size and tier capacities of each run, in order
# "churn": the migration engine moves every chunk to another tier every
# 200 ms while fsx runs, at full speed: the model must never see it.
# "wb": mounted with -o cache=writeback (the kernel's writeback cache:
# buffered and mmap writes reach siltfs late and coalesced).
runs=(
	"4K auto"
	"wb 64K auto"
	"churn 4K 1M 2M auto"
	"64K 1M 2M auto"
	"wb 4K auto"
	"churn 64K 1M 2M auto"
	"wb 4K 1M 2M auto"
	"wb churn 64K 2M auto"
)
CHURN_OPTS=$'[placement]\nmigration = churn\nepoch = 200ms\nrate = 4G\nbusy_rate = 4G'

# run_one N SEED CHUNK CAP...: one fsx run on a fresh volume.
run_one() {
	local n=$1 seed=$2 churn="" opts="" mopts="" vol="$SILT_TMP/v$1" rc=0 t0=$SECONDS
	shift 2
	[ "$1" = wb ] && { mopts=cache=writeback; shift; }
	[ "$1" = churn ] && { churn=", under churn"; opts=$CHURN_OPTS; shift; }
	local chunk=$1
	shift
	local mnt="$vol/mnt" desc="seed $seed, chunk $chunk, $# tier(s) $*$churn${mopts:+, $mopts}"
	SILT_VOLUME_OPTS=$opts silt_make_volume "$vol" $# "$chunk" "$@"
	if ! silt_mount "$vol/vol.conf" "$mnt" "$mopts"; then
		fail "$desc: mount"
		return 0
	fi
	local want=${mopts#cache=}
	check_eq "$(json_get "$(silt_ctl -m "$mnt" status --json)" .volume.cache)" "${want:-writethrough}" \
		"$desc: siltctl status says the cache mode"
	mkdir "$mnt/fsx"
	"$FSX" --dir "$mnt/fsx" --seed "$seed" --ops "$ops" --chunk $(( ${chunk%K} * 1024 )) \
		--remount-every "$every" ${FSX_WITHOUT:+--without "$FSX_WITHOUT"} --remount-cmd "'$self' --remount '$vol/vol.conf' '$mnt' '$mopts'" || rc=$?
	# where the chunks ended up (the 3-tier runs should use every tier)
	echo "    chunks per tier: $(silt_ctl -m "$mnt" status --json 2>/dev/null |
		jq -r '[.tiers[] | "\(.name)=\(.chunks)"] | join(" ")' 2>/dev/null || echo "?")"
	if [ -n "$churn" ]; then
		# fsx's last op is a remount: the count starts again there, so give
		# the churn (one epoch every 200 ms) a few seconds to show it runs
		local moved=0
		silt_wait_for 10 'moved=$(json_get "$(silt_ctl -m "$mnt" status --json)" .placement.moved 2>/dev/null); [ "${moved:-0}" -gt 0 ]'
		echo "    chunks moved since the last mount: $moved"
		check '[ "${moved:-0}" -gt 0 ]' "$desc: the migration engine moves chunks on the remounted volume"
	fi
	if silt_is_fuse_mount "$mnt" && ! silt_umount "$mnt"; then
		rc=1
	fi
	if [ "$rc" = 0 ]; then
		pass "$desc: $ops ops ($((SECONDS - t0)) s)"
	else
		fail "$desc (replay: FSX_ONLY=$n FSX_SEED=$((seed - n)) FSX_OPS=$ops)"
	fi
}

say "fsx: ${#runs[@]} runs of $ops ops, remount every $every"
for ((n = 0; n < ${#runs[@]}; n++)); do
	[ -n "${FSX_ONLY:-}" ] && [ "$FSX_ONLY" != "$n" ] && continue
	# shellcheck disable=SC2086
	run_one "$n" "$((seed0 + n))" ${runs[n]}
done
silt_summary
