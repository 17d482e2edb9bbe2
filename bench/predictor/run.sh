#!/bin/sh
# run.sh SIM TRACE_DIR OUT_DIR [siltfs-sim options for the GRU]
#
# The evaluation behind docs/predictor.md: every trace in TRACE_DIR at fast
# tiers of 1%, 5% and 10% of its footprint (4 KiB blocks), every policy,
# statistics over the last 20% of each trace (--eval-from 0.8; the GRU was
# tuned on the first 80% with tune.sh, and it runs through the first 80%
# online before the measured part starts, as every policy does).  Then a
# cost run of the GRU alone (no shadow policies), and the table.
# Deterministic: fixed seeds, inline training.
set -eu
sim=$1
dir=$2
out=$3
shift 3
here=$(dirname "$0")
mkdir -p "$out"
rm -f "$out"/*.json
for t in cloudphysics_vm_io msn_fs_30s aux_cloudphysics_w106_keyonly; do
	f="$dir/$t.csv.gz"
	[ -r "$f" ] || { echo "missing $f" >&2; exit 1; }
	"$sim" --trace "$f" --fast 1%,5%,10% --eval-from 0.8 --json \
		--policy lru,arc,s3fifo,lirs,lfu,belady >"$out/classical.$t.json"
	"$sim" --trace "$f" --fast 1%,5%,10% --eval-from 0.8 --json \
		--policy gru,gru+prefetch "$@" >"$out/gru.$t.json"
	"$sim" --trace "$f" --fast 1%,5%,10% --eval-from 0.8 --json \
		--policy gru --shadows none "$@" >"$out/cost.$t.json.txt"
done
python3 "$here/report.py" "$out"
echo
echo "GRU alone, without the shadow policies (CPU ns per access, training part):"
for t in cloudphysics_vm_io msn_fs_30s aux_cloudphysics_w106_keyonly; do
	sed -n 's/.*"fast_fraction": \([0-9.]*\).*"ns_per_access": \([0-9.]*\), "train_ns_per_access": \([0-9.]*\).*/\1 \2 \3/p' \
		"$out/cost.$t.json.txt" | while read -r fr ns tr; do
		echo "  $t fast=$fr: $ns ns ($tr training)"
	done
done
