#!/bin/sh
# check_sim.sh SIM TRACE_DIR - siltfs-sim must agree with libCacheSim on
# cloudphysics_vm_io (4 KiB blocks, fast tier = 10% of distinct blocks):
# LRU 0.8741 and Belady 0.6761 (within 0.002), and on msn_fs_30s: LRU 0.9901,
# Belady 0.8789.  Skips (77) when the traces are not there.
set -eu
sim=$1
dir=$2
for t in cloudphysics_vm_io msn_fs_30s; do
	[ -r "$dir/$t.csv.gz" ] || { echo "skip: $dir/$t.csv.gz missing"; exit 77; }
done
check() { # trace policy expected
	got=$("$sim" --trace "$dir/$1.csv.gz" --policy "$2" --fast 10% --json |
		sed -n 's/.*"miss_ratio": \([0-9.]*\).*/\1/p')
	[ -n "$got" ] || { echo "FAIL: no miss_ratio for $1 $2"; exit 1; }
	awk -v g="$got" -v e="$3" -v n="$1 $2" 'BEGIN {
		d = g - e; if (d < 0) d = -d
		printf "%s: %s (libCacheSim %s)\n", n, g, e
		exit (d <= 0.002) ? 0 : 1 }' || { echo "FAIL: $1 $2"; exit 1; }
}
check cloudphysics_vm_io lru 0.8741
check cloudphysics_vm_io belady 0.6761
check msn_fs_30s lru 0.9901
check msn_fs_30s belady 0.8789
