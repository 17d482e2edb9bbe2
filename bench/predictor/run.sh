#!/bin/sh
# run.sh SIM TRACE_DIR OUT_DIR - the evaluation behind docs/predictor.md.
#
# Every trace in TRACE_DIR at fast tiers of 1%, 5% and 10% of its footprint
# (4 KiB blocks), every policy with every prefetcher (--policy all),
# statistics over the last 20% of each trace's time span (--eval-from 0.8;
# the settings were chosen on the first 80% with tune.sh, and every policy
# runs online through the first 80% before the measured part starts).
# cloudphysics_vm_io's last 20% holds only 1.2% of its block accesses, so
# it is also reported on a 50/50 split (chosen before looking at it).
# Then the mixture with sampled shadows (sampled.*, chunk64*.*), and the
# tables (report.py).  Deterministic: fixed seeds, inline
# training.  Runs under nice -n 19, one process at a time.
set -eu
sim=$1
dir=$2
out=$3
here=$(dirname "$0")
mkdir -p "$out"
rm -f "$out"/*.json
for t in cloudphysics_vm_io msn_fs_30s aux_cloudphysics_w106_keyonly; do
	f="$dir/$t.csv.gz"
	[ -r "$f" ] || { echo "missing $f" >&2; exit 1; }
	nice -n 19 "$sim" --trace "$f" --fast 1%,5%,10% --eval-from 0.8 --json \
		--policy all >"$out/all.$t.json"
done
nice -n 19 "$sim" --trace "$dir/cloudphysics_vm_io.csv.gz" --fast 1%,5%,10% \
	--eval-from 0.5 --json --policy all >"$out/split50.cloudphysics_vm_io.json"
# The mixture with sampled expert shadows (the setting chosen with tune.sh:
# a budget of 100 bytes per MiB of tracked data for its own state), at
# 4 KiB blocks and at the daemon's 64 KiB chunks, beside the unsampled
# mixture and the classical policies at 64 KiB.
sampled="--mix-budget 100 --mix-ring 256"
for t in cloudphysics_vm_io msn_fs_30s aux_cloudphysics_w106_keyonly; do
	f="$dir/$t.csv.gz"
	# shellcheck disable=SC2086
	nice -n 19 "$sim" --trace "$f" --fast 1%,5%,10% --eval-from 0.8 --json \
		--policy mix,mix+gru $sampled >"$out/sampled.$t.json"
	nice -n 19 "$sim" --trace "$f" --fast 1%,5%,10% --eval-from 0.8 --json \
		--block 64K --policy lru,arc,s3fifo,lirs,sieve,tinylfu,mix,belady \
		>"$out/chunk64.$t.json"
	# shellcheck disable=SC2086
	nice -n 19 "$sim" --trace "$f" --fast 1%,5%,10% --eval-from 0.8 --json \
		--block 64K --policy mix $sampled >"$out/chunk64s.$t.json"
done
python3 "$here/report.py" "$out"
