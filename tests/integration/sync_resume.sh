#!/usr/bin/env bash
# The full sync's window of batches in flight, and its progress through the
# real CLI (siltctl sync wait). A primary of 64 MiB in 4 KiB chunks (RESYNC
# batches of 256 chunks, 1 MiB: the socket buffers of the 200 Mbit/s link
# of sync_hosts.sh hold more than the window of 4) is killed -9 mid full
# sync, then its replica is killed -9 while batches are on their way
# unacknowledged (what the replica had not read is lost with it); each
# time the full sync resumes from the last acknowledged batch (its progress
# does not start from nothing) and at the end the replica equals the
# primary byte for byte: the position moves only on an acknowledgement, so
# no chunk is lost. siltctl sync wait prints plain lines without a
# terminal and a progress bar on one (script(1) gives it a pty), ends once
# the peer is caught up, and gives up after --timeout.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sync_hosts.sh"

wait_cmd() { timeout 90 "$SILTCTL" -m "$P" sync wait "$@"; }
peer() { json_get "$(silt_ctl -m "$P" sync status --json)" ".peers[0].$1"; }

say "a primary of 64 MiB in 4 KiB chunks, before any replica runs"
sed -i 's/^\[volume\]$/&\nchunk_size = 4K/' "$pconf"
start_primary
mkdir "$P/vms"
silt_random "$P/vms/disk.img" $((64 << 20))
echo small > "$P/vms/note.txt"

say "siltctl sync wait --timeout: the replica is not there yet"
rc=0; out=$(wait_cmd --timeout 1 2>&1) || rc=$?
check_eq "$rc" 1 "sync wait gives up after --timeout (exit status 1)"
check "grep -q 'not caught up after 1 s' <<<\"\$out\"" "and says so"
rc=0; out=$(wait_cmd nobody --timeout 1 2>&1) || rc=$?
check "[ $rc -ne 0 ] && grep -q \"no peer named 'nobody'\" <<<\"\$out\"" "sync wait refuses an unknown peer"

say "the full sync, followed without a terminal; kill -9 of the primary mid-way"
start_replica
wait_cmd replica > "$SILT_TMP/wait1" 2>&1 &
wp=$!
silt_wait_for 60 '[ "$(peer progress_done)" -ge 2048 ]' || true
done0=$(peer progress_done) total=$(peer progress_total)
check "[ $done0 -ge 2048 ] && [ $done0 -le 8192 ]" "killed mid full sync, $done0 of $total chunks acknowledged"
kill -9 "$PPID_"
wait "$PPID_" 2>/dev/null || true
fusermount3 -uz "$P" 2>/dev/null || umount -l "$P"
wait "$wp" 2>/dev/null || true
check "grep -Eq '^replica full-sync [0-9]+/$total chunks \\([0-9.]+%\\), .*/s$' '$SILT_TMP/wait1'" \
	"sync wait printed plain progress lines ($(grep -c full-sync "$SILT_TMP/wait1") of them)"

say "mounted again: the full sync resumes, followed on a terminal; kill -9 of the replica mid-way"
start_primary
script -qec "timeout 90 '$SILTCTL' -m '$P' sync wait --timeout 80" /dev/null > "$SILT_TMP/wait2" 2>&1 &
wp=$!
silt_wait_for 60 '[ "$(peer progress_done)" -ge $((done0 + 2048)) ]' || true
done1=$(peer progress_done)
check "[ $done1 -ge $((done0 + 2048)) ] && [ $done1 -le $((total - 2048)) ]" \
	"replica killed mid full sync, $done1 of $total chunks acknowledged"
kill -9 "$RPID"
wait "$RPID" 2>/dev/null || true
fusermount3 -uz "$R" 2>/dev/null || umount -l "$R"
start_replica
rc=0; wait "$wp" || rc=$?
check_eq "$rc" 0 "sync wait ends once the peer is caught up"
check "grep -q '\\[#*[ ]*\\] [0-9]*/$total chunks replica full-sync' '$SILT_TMP/wait2'" "a progress bar on the terminal"
check "grep -q 'replica caught up: live' '$SILT_TMP/wait2'" "and the end said"
first=$(tr '\r' '\n' < "$SILT_TMP/wait2" | sed -n 's/.*\] \([0-9]*\)\/.*full-sync.*/\1/p' | head -n1)
check "[ -n '$first' ] && [ '$first' -ge '$done0' ]" "resumed from the last acknowledged batch (first shown: $first, acked before: $done0)"
check "grep -q 'full sync done' '$PLOG'" "the primary logged the full sync's end"
check_eq "$(peer full_sync)" 0 "no full sync owed"
silt_drop_caches
check "cmp -s '$P/vms/disk.img' '$R/vms/disk.img'" "the replica's 64 MiB equal the primary's: no chunk lost"
wait_same "the replica's tree equals the primary's" 30

rc=0; out=$(wait_cmd --json) || rc=$?
check_eq "$rc$(json_get "$out" '.peers[0].state')" 0live "sync wait --json, caught up: the peers"

silt_umount "$P"
silt_umount "$R"
silt_summary
