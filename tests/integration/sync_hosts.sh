# shellcheck shell=bash
# Two hosts in miniature for the replication tests (sync_*.sh), sourced
# after lib.sh: network namespaces $A and $B joined by a veth pair shaped
# to 200 Mbit/s each way (tc tbf), a key
# pair for each host, a primary volume (config $pconf, mounted on $P, in
# $A; in $SYNC_PRIMARY_DIR, default $SILT_TMP/p) that ships to a replica
# volume ($rconf on $R, in $B, read-only).
# Namespaces, mounts and daemons go at exit through lib.sh's trap.
#   replica_conf KEY   (re)write the replica's [sync]: accept KEY
#   start_replica / start_primary   mount in their namespaces (RPID/RLOG, PPID_/PLOG)
#   same / wait_same WHAT [SECONDS]  the replica's tree equals the primary's
#   under_load IMAGE IOPS   6 s of fio 4K random writes to IMAGE; after 1 s a
#                           new file: sets ARRIVED (1 or 0) and ARRIVAL_MS, the
#                           time the replica took to have it, and FIO_PID
say "two hosts"
n=$((RANDOM % 200 + 20))
A=silt-pa-$$ B=silt-pb-$$
silt_netns_pair "$A" "$B" "10.239.$n.1/24" "10.239.$n.2/24"
# a shaped link, as between hosts (tc tbf; this kernel has no netem)
for h in "$A" "$B"; do
	ip netns exec "$h" tc qdisc add dev "v-$h" root tbf rate 200mbit burst 1mb latency 100ms ||
		silt_abort "tc tbf on v-$h"
done

keys=$("$SILTCTL" sync keygen)
psec=$(sed -n 's/^private_key = //p' <<<"$keys"); ppub=$(sed -n 's/^public_key = //p' <<<"$keys")
keys=$("$SILTCTL" sync keygen)
rsec=$(sed -n 's/^private_key = //p' <<<"$keys"); rpub=$(sed -n 's/^public_key = //p' <<<"$keys")
wrong=$(sed -n 's/^public_key = //p' <<<"$("$SILTCTL" sync keygen)") # nobody's

silt_make_volume "${SYNC_PRIMARY_DIR:=$SILT_TMP/p}" 2
silt_make_volume "$SILT_TMP/r" 1
pconf=$SYNC_PRIMARY_DIR/vol.conf rconf=$SILT_TMP/r/vol.conf
cat >> "$pconf" <<EOF

[sync]
private_key = $psec
interval = 200ms
max_lag = 2s
journal_max = 64

[peer replica]
address = 10.239.$n.2:7411
public_key = $rpub
EOF
replica_conf() { # replica_conf PRIMARY_PUBLIC_KEY
	sed -i '/^\[sync\]/,$d' "$rconf"
	cat >> "$rconf" <<EOF
[sync]
private_key = $rsec
listen = 10.239.$n.2:7411
state = $SILT_TMP/r/state

[peer primary]
public_key = $1
EOF
}
replica_conf "$ppub"
P=$SILT_TMP/pm R=$SILT_TMP/rm

xattrs() { # every xattr under the current directory
	local f
	find . -type f | LC_ALL=C sort | while read -r f; do echo "$f: $("$SILT_XATTR" list "$f" 2>&1)"; done
}
same() { # the replica's tree, contents and xattrs equal the primary's
	silt_drop_caches
	[ "$(cd "$P" && silt_tree_state . && xattrs)" == "$(cd "$R" && silt_tree_state . && xattrs)" ]
}
wait_same() { # wait_same WHAT [SECONDS]
	local i
	for ((i = 0; i < ${2:-30} * 2; i++)); do
		if same; then pass "$1"; return 0; fi
		sleep 0.5
	done
	fail "$1"
	{ diff <(cd "$P" && silt_tree_state .) <(cd "$R" && silt_tree_state .) | head -n 10; } || true
	echo "--- primary log"; tail -n 8 "$PLOG"; echo "--- replica log"; tail -n 8 "$RLOG"
	silt_ctl -m "$P" sync status || true
	return 0 # counted; go on to show what else holds
}
start_primary() {
	SILT_IN_NS=$A silt_mount_fg "$pconf" "$P" || silt_abort "primary does not mount"
	PPID_=$SILT_FG_PID PLOG=$SILT_LAST_ERR
}
start_replica() {
	SILT_IN_NS=$B silt_mount_fg "$rconf" "$R" ro || silt_abort "replica does not mount"
	RPID=$SILT_FG_PID RLOG=$SILT_LAST_ERR
}
under_load() { # under_load IMAGE IOPS
	fio --name=steady --filename="$1" --rw=randwrite --bs=4k --direct=1 --rate_iops="$2" \
		--runtime=6 --time_based --randrepeat=0 --size="$(stat -c %s "$1")" --output=/dev/null &
	FIO_PID=$!
	sleep 1
	echo marker > "$P/marker.txt"
	arrived() { echo 2 > /proc/sys/vm/drop_caches; [ "$(cat "$R/marker.txt" 2>/dev/null)" == marker ]; }
	local t0
	t0=$(date +%s%N)
	ARRIVED=0
	silt_wait_for 8 arrived && ARRIVED=1
	ARRIVAL_MS=$((($(date +%s%N) - t0) / 1000000))
}
