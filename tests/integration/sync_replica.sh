#!/usr/bin/env bash
# Replication between two hosts in miniature: network namespaces joined by a
# veth pair, each with its own siltfs volume; the replica mounted read-only.
# Proves through the mounts and the real daemons: the initial full sync of
# an existing volume, live changes (data, truncate, rename, unlink, links,
# xattrs), a wrong key refused with nothing applied, a link cut (ip link
# down), kill -9 of the primary and of the replica, and a remount: after
# each, the replica's tree equals the primary's, byte for byte.
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/sync_hosts.sh"

say "an existing volume, written before any replica runs"
start_primary
mkdir -p "$P/vms/old"
silt_random "$P/vms/disk.img" $((6 << 20))
echo hello > "$P/vms/note.txt"
ln -s disk.img "$P/vms/link"
ln "$P/vms/note.txt" "$P/vms/old/hard.txt"
"$SILT_XATTR" set "$P/vms/note.txt" user.tag blue
truncate -s 3M "$P/vms/sparse.img"
printf 'tail' | dd of="$P/vms/sparse.img" bs=1 seek=$((2 << 20)) conv=notrunc status=none

say "initial full sync"
start_replica
wait_same "full sync: the replica equals the primary" 60
check_cmd_fails "the replica is read-only" touch "$R/vms/x"
st=$(silt_ctl -m "$P" sync status --json)
check_eq "$(json_get "$st" '.peers[0].state')" live "primary: peer live"
check_eq "$(json_get "$st" '.peers[0].full_sync')" 0 "primary: no full sync owed"
check_eq "$(json_get "$st" '.peers[0].progress_done')" "$(json_get "$st" '.peers[0].progress_total')" \
	"primary: full sync progress complete"
check "[ $(json_get "$st" '.peers[0].sent_bytes') -lt $(json_get "$st" '.peers[0].data_bytes') ]" \
	"chunks travel compressed (wire bytes < data bytes)"
thread_nice() { # thread_nice PID COMM-PREFIX: the nice value of the daemon's thread of that name
	local t
	for t in /proc/"$1"/task/*; do
		[[ "$(cat "$t/comm" 2>/dev/null)" == "$2"* ]] && { awk '{ print $19 }' "$t/stat"; return; }
	done
}
check_eq "$(thread_nice "$PPID_" silt-tx-)/$(thread_nice "$RPID" silt-rx)" 10/10 \
	"the sender and the receiver run at nice 10: guests' I/O first"

metric() { # metric MOUNT NAME: the value of the first sample of NAME in siltctl metrics --json
	json_get "$(silt_ctl -m "$1" metrics --json)" "[.metrics[] | select(.name == \"$2\") | .samples[0].value] | .[0]"
}
check_eq "$(metric "$P" siltfs_sync_connected)" 1 "metrics: the primary's peer is connected"
check "[ $(metric "$P" siltfs_sync_batches_total) -ge 1 ] && [ $(metric "$P" siltfs_sync_wire_bytes_total) -gt 0 ]" \
	"metrics: batches and bytes shipped"
check "[ $(metric "$R" siltfs_replica_applied_batch) -ge 0 ] && [ $(metric "$R" siltfs_replica_chunks_total) -gt 0 ]" \
	"metrics: the replica's applied batch and chunks"
check_eq "$(metric "$R" siltfs_replica_connected)" 1 "metrics: the replica's primary is connected"

say "live changes"
dd if=/dev/urandom of="$P/vms/disk.img" bs=64K seek=7 count=3 conv=notrunc status=none
for i in $(seq 1 50); do printf 'x%d' "$i" | dd of="$P/vms/disk.img" bs=1 seek=100 conv=notrunc status=none; done
truncate -s 1M "$P/vms/sparse.img"
mv "$P/vms/old" "$P/vms/older"
rm "$P/vms/link"
echo new > "$P/vms/new.txt"
"$SILT_XATTR" remove "$P/vms/note.txt" user.tag
"$SILT_XATTR" set "$P/vms/new.txt" user.colour red
wait_same "live changes reach the replica" 30
st=$(silt_ctl -m "$P" sync status --json)
check "[ $(json_get "$st" '.peers[0].chunks') -lt $((96 + 48 + 20)) ]" \
	"coalesced: 50 writes to one chunk did not ship it 50 times"

say "a file that grows in a later batch"
# its new chunks and its new size travel in one batch; the size must be
# applied first, or the replica drops the chunks past its old end
silt_random "$SILT_TMP/tail" $((700 << 10))
cat "$SILT_TMP/tail" >> "$P/vms/sparse.img"
wait_same "an append to an existing file arrives whole" 30

say "a wrong key: refused, logged, nothing applied"
silt_umount "$R" || silt_abort "replica does not unmount"
replica_conf "$wrong"
start_replica
echo secret > "$P/vms/while-refused.txt"
sleep 3
silt_drop_caches
check "[ ! -e $R/vms/while-refused.txt ]" "nothing applied while refused"
check "grep -q 'refused a connection' $RLOG" "the replica logged the refusal"
check_eq "$(json_get "$(silt_ctl -m "$P" sync status --json)" '.peers[0].state')" refused "the primary says refused"
silt_umount "$R" || silt_abort "replica does not unmount"
replica_conf "$ppub"
start_replica
wait_same "remount with the right key: caught up" 30

say "a link cut"
ip -n "$A" link set "v-$A" down
echo during-cut > "$P/vms/cut.txt"
dd if=/dev/urandom of="$P/vms/disk.img" bs=64K seek=20 count=2 conv=notrunc status=none
sleep 2
silt_drop_caches
check "[ ! -e $R/vms/cut.txt ]" "nothing arrives while the link is down"
ip -n "$A" link set "v-$A" up
wait_same "link back: resumed from the last acknowledged batch" 60

say "the journal over its bound: a dirty set, and a resync that drains"
silt_random "$P/vms/big.img" $((10 << 20))
wait_same "a new 10 MiB file arrives" 30
silt_umount "$R" || silt_abort "replica does not unmount"
folds0=$(json_get "$(silt_ctl -m "$P" sync status --json)" '.peers[0].folds')
for k in $(seq 0 2 159); do dd if=/dev/urandom of="$P/vms/big.img" bs=64K seek="$k" count=1 conv=notrunc status=none; done
folded() { # the fold is done by the sender's loop while disconnected
	st=$(silt_ctl -m "$P" sync status --json)
	[ "$(json_get "$st" '.peers[0].folds')" -gt "$folds0" ] && [ "$(json_get "$st" '.peers[0].journal_entries')" -le 64 ]
}
silt_wait_for 10 folded || true
check_ge "$(json_get "$st" '.peers[0].folds')" $((folds0 + 1)) "the lagging peer fell back to its dirty set"
# (a fold takes the batches up to the last cut: what came after stays in
# the journal; between them, every one of the 80 chunks is owed)
check_ge "$(( $(json_get "$st" '.peers[0].dirty') + $(json_get "$st" '.peers[0].journal_entries') ))" 80 \
	"the dirty set and the journal hold the 80 chunks ($(json_get "$st" '.peers[0].dirty') + $(json_get "$st" '.peers[0].journal_entries'))"
check "[ $(json_get "$st" '.peers[0].dirty') -gt 0 ]" "the dirty set holds chunks"
check_le "$(json_get "$st" '.peers[0].journal_entries')" 64 "the journal stays within journal_max"
start_replica
wait_same "the resync brought the replica up to date" 60
check_eq "$(json_get "$(silt_ctl -m "$P" sync status --json)" '.peers[0].dirty')" 0 "the dirty set drained"

say "kill -9 of the primary in the middle of writes"
( for i in $(seq 1 200); do dd if=/dev/urandom of="$P/vms/disk.img" bs=4K seek=$((RANDOM % 1500)) count=1 conv=notrunc status=none 2>/dev/null || break; done ) &
wp=$!
sleep 0.5
kill -9 "$PPID_"
wait "$wp" 2>/dev/null || true
wait "$PPID_" 2>/dev/null || true
fusermount3 -uz "$P" 2>/dev/null || umount -l "$P"
start_primary
wait_same "primary killed and back: the replica equals it" 60

say "kill -9 of the replica"
dd if=/dev/urandom of="$P/vms/disk.img" bs=64K seek=40 count=8 conv=notrunc status=none &
dp=$!
kill -9 "$RPID"
wait "$RPID" 2>/dev/null || true
wait "$dp" || true
fusermount3 -uz "$R" 2>/dev/null || umount -l "$R"
start_replica
wait_same "replica killed and back: equal again" 60

say "drift: flipped bytes, a missing chunk and a stale chunk on the replica's tier, found and repaired"
ino=$(stat -c %i "$R/vms/disk.img")
tf=$(silt_chunk_files "$SILT_TMP/r" "$ino" | head -n1)
check "[ -f '$tf' ]" "the replica's tier file of disk.img"
old50=$SILT_TMP/old50
dd if="$tf" of="$old50" bs=64K skip=50 count=1 status=none
dd if=/dev/urandom of="$P/vms/disk.img" bs=64K seek=50 count=1 conv=notrunc status=none
wait_same "chunk 50 changed and shipped" 30
silt_umount "$R" || silt_abort "replica does not unmount"
printf '\x55\xaa\x55' | dd of="$tf" bs=1 seek=$((5 * 65536 + 1000)) conv=notrunc status=none
fallocate -p -o $((9 * 65536)) -l 65536 "$tf"
dd if="$old50" of="$tf" bs=64K seek=50 count=1 conv=notrunc status=none
start_replica
silt_drop_caches
check "! same" "the injected divergence shows through the replica's mount"
runs0=$(json_get "$(silt_ctl -m "$P" sync status --json)" '.peers[0].verify_runs')
check_cmd "siltctl sync verify" silt_ctl -m "$P" sync verify
silt_wait_for 30 '[ "$(json_get "$(silt_ctl -m "$P" sync status --json)" ".peers[0].verify_runs")" -gt "$runs0" ]' || true
st=$(silt_ctl -m "$P" sync status --json)
check_eq "$(json_get "$st" '.peers[0].verify_differ')" 3 "verify found the three damaged chunks"
check "[ $(json_get "$st" '.peers[0].verify_chunks') -ge 96 ]" "verify looked at every chunk"
wait_same "verify repaired them: equal again" 30
check_cmd "siltctl sync verify (again)" silt_ctl -m "$P" sync verify
silt_wait_for 30 '[ "$(json_get "$(silt_ctl -m "$P" sync status --json)" ".peers[0].verify_runs")" -gt $((runs0 + 1)) ]' || true
check_eq "$(json_get "$(silt_ctl -m "$P" sync status --json)" '.peers[0].verify_differ')" 0 "a second verify finds nothing"

silt_umount "$P"
silt_umount "$R"
silt_summary
