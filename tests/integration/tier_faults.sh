#!/usr/bin/env bash
# tier_faults: a tier whose chunk folder disappears while mounted (issue 7
# point 5). New writes land on another tier; I/O to chunks that lived on the
# broken tier fails with EIO (never ENOENT, which would say the user's own
# file is missing); `siltctl status` shows the tier failed and why; the
# daemon stays up and unmounts cleanly.
. "$(dirname "$0")/lib.sh"
set +e

V="$SILT_TMP/v"; M="$SILT_TMP/m"
silt_make_volume "$V" 2 64K
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
uuid=$(json_get "$(silt_ctl -m "$M" status --json)" .volume.uuid)

silt_random "$SILT_TMP/a" $((1 << 20))
cp "$SILT_TMP/a" "$M/a" && sync
check_eq "$(silt_where_tier_chunks "$M/a" t0)" 16 "a is on t0"

say "t0's chunk folder is removed under the running daemon"
rm -rf "$V/t0/$uuid/chunks"
silt_drop_caches # the kernel forgets a: its tier files get opened again
err=$(cat "$M/a" 2>&1 >/dev/null)
check '[[ "$err" == *"Input/output error"* ]]' "reading a chunk that was on t0 fails with EIO ($err)"
err=$(dd if=/dev/zero of="$M/a" bs=4k count=1 seek=3 conv=notrunc oflag=direct status=none 2>&1)
check '[[ "$err" == *"Input/output error"* ]]' "overwriting it fails with EIO ($err)"
j=$(silt_ctl -m "$M" status --json)
check_eq "$(json_get "$j" '.tiers[0].state')" failed "siltctl status shows t0 failed"
check '[[ "$(json_get "$j" ".tiers[0].reason")" == *"No such file"* ]]' "and why: $(json_get "$j" '.tiers[0].reason')"
check_eq "$(json_get "$j" '.tiers[1].state')" active "t1 is active"
check 'silt_ctl -m "$M" status | grep -q "t0 .* failed"' "the table says so too"

say "new data goes to the tier that works"
silt_random "$SILT_TMP/b" $((2 << 20))
check 'cp "$SILT_TMP/b" "$M/b" && sync' "a new file is written"
check_eq "$(silt_where_tier_chunks "$M/b" t1)" 32 "all of it on t1"
silt_drop_caches
check 'cmp -s "$SILT_TMP/b" "$M/b"' "and reads back"
check 'dd if="$SILT_TMP/b" of="$M/a" bs=64k count=2 seek=32 conv=notrunc oflag=direct status=none' \
	"new chunks of the old file are written too"
check_eq "$(silt_where_tier_chunks "$M/a" t1)" 2 "on t1"
check 'dd if="$M/a" of=/dev/null bs=64k skip=32 count=2 iflag=direct status=none' "and read back"

pid=$(silt_daemon_pids "$M" | head -n 1)
check '[ -n "$pid" ] && kill -0 "$pid"' "the daemon is still up"
check_cmd "umount" silt_umount "$M"
silt_summary
