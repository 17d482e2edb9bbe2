#!/bin/sh
# tune.sh SIM TRACE_DIR OUT_DIR - the GRU's tuning runs, on the first 80% of
# each trace only (--eval-to 0.8).  Writes one JSON array per setting into
# OUT_DIR; bench/predictor/report.py --tune OUT_DIR picks the best setting
# (lowest mean miss ratio over all traces and sizes) and says which it was.
# The reported figures (run.sh) use the last 20%, which no setting here saw.
set -eu
sim=$1
dir=$2
out=$3
mkdir -p "$out"
run() { # name, extra args...
	name=$1
	shift
	for t in cloudphysics_vm_io msn_fs_30s aux_cloudphysics_w106_keyonly; do
		"$sim" --trace "$dir/$t.csv.gz" --fast 1%,5%,10% --eval-to 0.8 --json "$@" \
			>"$out/$name.$t.json"
	done
}
# Classical baselines on the same 80% (for the comparison only).
run classical --policy lru,arc,s3fifo,lirs,lfu,belady
# Placement: the promotion margin, and training (0 = never) vs a step
# every 1024 or 4096 accesses.
for margin in 1.25 1.5 2.0; do
	for train in 0 1024 4096; do
		run "gru_m${margin}_t${train}" --policy gru --margin "$margin" \
			--train-interval "$train"
	done
done
# Prefetch: confidence threshold and depth, at the chosen placement
# settings (the defaults).
for thr in 0.5 0.7; do
	for depth in 1 2; do
		run "pf_thr${thr}_d${depth}" --policy gru+prefetch \
			--prefetch-threshold "$thr" --prefetch-depth "$depth"
	done
done
