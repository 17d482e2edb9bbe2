#!/bin/sh
# tune.sh SIM TRACE_DIR OUT_DIR - the tuning runs, on the first 80% of each
# trace only (--eval-to 0.8).  The reported figures (run.sh) use the last
# 20%, which no setting here saw.
#
#   all.TRACE.json          every policy with every prefetcher, at the
#                           chosen settings (report.py OUT_DIR prints the
#                           same tables as for the evaluation)
#   mix_*.TRACE.json        the mixture's settings that were compared
#                           (mix_b*, mix_s*: sampled expert shadows)
#   pf_*.TRACE.json         the GRU prefetch engine's thresholds
#
# Everything runs under nice -n 19, one process at a time, fixed seeds.
set -eu
sim=$1
dir=$2
out=$3
mkdir -p "$out"
run() { # name, extra args...
	name=$1
	shift
	for t in cloudphysics_vm_io msn_fs_30s aux_cloudphysics_w106_keyonly; do
		nice -n 19 "$sim" --trace "$dir/$t.csv.gz" --fast 1%,5%,10% --eval-to 0.8 \
			--json "$@" >"$out/$name.$t.json"
	done
}
run all --policy all
# The mixture: window length (the chosen 256 is in all.*), background
# promotion of the leader's keys (none; a quarter of a window per window
# without the full promotion at a switch; the chosen: a window's worth and
# everything at a switch) and the six-expert set.
for w in 512 1024 2048; do
	run "mix_w$w" --policy mix --mix-window "$w"
done
run mix_sync0 --policy mix --mix-sync 0
run mix_sync025 --policy mix --mix-sync 0.25 --mix-sync-on-switch 0
run mix_six --policy mix --mix-experts lru,arc,s3fifo,lirs,sieve,tinylfu
run mix_nogru --policy mix --mix-train-interval 0
# Sampled expert shadows (mix.h): a budget for the mixture's own state
# (shadows, GRU, training ring) in bytes per MiB of tracked data, with the
# ring cut to 256 windows so that 100 bytes leave room for shadows; and
# fixed sampling rates.  Chosen for the evaluation (run.sh, sampled.*):
# --mix-budget 100 --mix-ring 256, promotion as in the unsampled mode.
for b in 100 200 400; do
	run "mix_b$b" --policy mix --mix-budget "$b" --mix-ring 256
done
run mix_b100_sync0 --policy mix --mix-budget 100 --mix-ring 256 --mix-sync 0
run mix_s010 --policy mix --mix-sample 0.1 --mix-sync 0
run mix_s030 --policy mix --mix-sample 0.3 --mix-sync 0
# The GRU prefetch engine: confidence to prefetch / to look deeper than
# one request (chosen: 0.9 / 0.9, in all.*).
for v in 0.5:0.8 0.7:0.8 0.8:0.8; do
	thr=${v%:*}
	deep=${v#*:}
	run "pf_t${thr}_d${deep}" --policy s3fifo+gru,mix+gru --prefetch-threshold "$thr" \
		--prefetch-deep-threshold "$deep"
done
