#!/usr/bin/env bash
# tier_recover: tiers that fail come back (issue 11 point 4). Both tiers are
# small ext4 filesystems on loop devices (each tier folder a subdirectory of
# its disk's mount point, as a removable or network disk would be), the
# metadata on the host disk, capacities configured larger than the disks.
#  1. t0's disk is unmounted under the running daemon (lazily: the daemon
#     holds files there): t0 fails, reads of its chunks fail with EIO, new
#     data goes to t1, the daemon lets go of every file on it; mounted
#     again, t0 is active within seconds and a file still open reads back
#     byte for byte.
#  2. t0's filesystem is remounted read-only: t0 fails (read-only), its
#     chunks still read, new data goes to t1, an overwrite of a chunk there
#     fails with EIO; remounted rw, t0 is active and takes the overwrite.
#  3. t0's filesystem returns I/O errors (ext4 shutdown ioctl): t0 fails,
#     reads of its chunks fail with EIO, the daemon stays up; unmounted,
#     checked (e2fsck) and mounted again, t0 is back with the data.
#  4. t0 missing at mount: the volume mounts, `siltctl tiers`/status say
#     missing and why, reads of its chunks fail with EIO, new data goes to
#     t1; a folder of another volume mounted there is not taken; the right
#     disk mounted there is, and the data reads back. With no tier folder
#     there at all the mount is refused.
#  5. Both disks fill up (ENOSPC from below): a write spills from t0 to t1
#     and reads back; one too big for both fails with ENOSPC and loses
#     nothing written before; the daemon does not spin (CPU time over 5 s).
. "$(dirname "$0")/lib.sh"
set +e

V="$SILT_TMP/v"; M="$SILT_TMP/m"; W="$SILT_TMP/w"
mkdir -p "$V/meta" "$V/d0" "$V/d1" "$SILT_TMP/logs"
LOG="$SILT_TMP/logs/v.log"
cat > "$V/vol.conf" <<EOF
[volume]
name = v-recover
chunk_size = 64K
log_file = $LOG
metadata = $V/meta

# (a chunk the RAM tier holds reads from there whatever its tier does)
[ram]
size = 0

[tier t0]
path = $V/d0/silt
class = nvme
capacity = 1G

[tier t1]
path = $V/d1/silt
class = hdd
capacity = 1G
EOF

# disk N SIZE: a loop ext4 of SIZE mounted at $V/dN with an empty tier folder
for n in 0 1; do
	truncate -s $((n == 0 ? 48 : 96))M "$SILT_TMP/disk$n.img"
	silt_losetup "$SILT_TMP/disk$n.img" || silt_abort "losetup"
	DEV[$n]=$SILT_LOOP
	mkfs.ext4 -q -F -E nodiscard "${DEV[$n]}" || silt_abort "mkfs.ext4"
	silt_track_mount "$V/d$n"
	mount "${DEV[$n]}" "$V/d$n" && mkdir "$V/d$n/silt" || silt_abort "mount disk $n"
done

silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
PID=$(silt_daemon_pids "$M" | head -n 1)
uuid=$(json_get "$(silt_ctl -m "$M" status --json)" .volume.uuid)

tstate() { json_get "$(silt_ctl -m "$M" status --json)" ".tiers[] | select(.name == \"$1\") | .$2"; }
# wait_state TIER STATE: within 10 s (the checker looks once a second)
wait_state() { local tier=$1 want=$2; silt_wait_for 10 '[ "$(tstate "$tier" state)" == "$want" ]'; }
rdirect() { dd if="$1" bs=64k iflag=direct status=none; }
same() { rdirect "$1" | cmp -s - "$2"; }
read_err() { dd if="$1" of=/dev/null bs=64k iflag=direct status=none 2>&1; }
alive() { kill -0 "$PID" 2>/dev/null; }
# new_file NAME KIB TIER: write a new random file of KIB KiB, all on TIER
new_file() {
	local name=$1
	silt_random "$SILT_TMP/$name" $(($2 << 10))
	check 'cp "$SILT_TMP/$name" "$M/$name" && sync' "a new file $name is written"
	check_eq "$(silt_where_tier_chunks "$M/$name" "$3")" $(($2 / 64)) "all of it on $3"
}
# held_files: files the daemon holds open on t0's disk (not released)
D0=$(stat -c %D "$V/d0/silt")
held_files() { stat -L -c %D "/proc/$PID/fd"/* 2>/dev/null | grep -cx "$D0"; }

silt_random "$SILT_TMP/a" $((1 << 20))
cp "$SILT_TMP/a" "$M/a" && sync
check_eq "$(silt_where_tier_chunks "$M/a" t0)" 16 "a is on t0"

say "1. t0's disk is unmounted under the running daemon"
exec 7<"$M/a"                      # a stays open: its inode and tier files stay in memory
check 'same "$M/a" "$SILT_TMP/a"' "a reads back before"
check '[ "$(held_files)" -ge 1 ]' "the daemon holds a's tier file on t0 ($(held_files))"
umount -l "$V/d0"
check 'wait_state t0 failed' "t0 shows failed"
check '[[ "$(tstate t0 reason)" == *"No such file"* ]]' "and why: $(tstate t0 reason)"
check 'silt_wait_for 10 "[ \$(held_files) -eq 0 ]"' "the daemon let go of every file on t0's disk"
err=$(read_err "$M/a")
check '[[ "$err" == *"Input/output error"* ]]' "reading a fails with EIO ($err)"
new_file b 512 t1
check_cmd "e2fsck -fn the unmounted disk (nothing holds it)" e2fsck -fn "${DEV[0]}"
mount "${DEV[0]}" "$V/d0"
check 'wait_state t0 active' "mounted again: t0 is active"
check 'same "$M/a" "$SILT_TMP/a"' "a (still open) reads back byte for byte"
check 'silt_ctl -m "$M" events | grep -q "tier t0 is back"' "the event log says t0 is back"
exec 7<&-
new_file c 256 t0

say "2. t0's filesystem turns read-only"
ok=0
for i in $(seq 1 20); do # the daemon's tier files must be closed: inodes forgotten
	silt_drop_caches
	mount -o remount,ro "$V/d0" 2>/dev/null && { ok=1; break; }
	sleep 0.5
done
check_eq "$ok" 1 "mount -o remount,ro"
check 'wait_state t0 failed' "t0 shows failed"
check '[[ "$(tstate t0 reason)" == *"Read-only"* ]]' "and why: $(tstate t0 reason)"
check 'same "$M/a" "$SILT_TMP/a"' "a's chunks on t0 still read"
new_file d 256 t1
err=$(dd if="$SILT_TMP/b" of="$M/a" bs=64k count=1 conv=notrunc oflag=direct status=none 2>&1)
check '[[ "$err" == *"Input/output error"* ]]' "overwriting a chunk of a on t0 fails with EIO ($err)"
check 'alive' "the daemon is up"
mount -o remount,rw "$V/d0"
check 'wait_state t0 active' "remounted rw: t0 is active"
check 'dd if="$SILT_TMP/b" of="$M/a" bs=64k count=1 conv=notrunc oflag=direct status=none' \
	"the overwrite goes through now"
dd if="$SILT_TMP/b" of="$SILT_TMP/a" bs=64k count=1 conv=notrunc status=none
check 'same "$M/a" "$SILT_TMP/a"' "a reads back with it"
check_eq "$(silt_where_tier_chunks "$M/a" t0)" 16 "a is still all on t0"

say "3. t0's filesystem returns I/O errors"
exec 7<"$M/a"
check 'same "$M/a" "$SILT_TMP/a"' "a reads back (its file opened)"
python3 -c 'import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.ioctl(fd, 0x8004587d, struct.pack("I", 2))  # EXT4_IOC_SHUTDOWN, NOLOGFLUSH' "$V/d0"
check '[ $? -eq 0 ]' "ext4 shut down: every I/O fails"
err=$(read_err "$M/a")
check '[[ "$err" == *"Input/output error"* ]]' "reading a fails with EIO ($err)"
check 'wait_state t0 failed' "t0 shows failed ($(tstate t0 reason))"
new_file e 256 t1
check 'alive' "the daemon is up"
umount -l "$V/d0"
check 'silt_wait_for 10 "[ \$(held_files) -eq 0 ]"' "unmounted: the daemon let go of its files"
e2fsck -fy "${DEV[0]}" >/dev/null 2>&1
check '[ $? -le 1 ]' "e2fsck -fy"
mount "${DEV[0]}" "$V/d0"
check 'wait_state t0 active' "mounted again: t0 is active"
check 'same "$M/a" "$SILT_TMP/a"' "a (still open) reads back byte for byte"
exec 7<&-

say "4. t0 missing at mount"
check_cmd "umount siltfs" silt_umount "$M"
umount "$V/d0"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount without t0: $(cat "$SILT_LAST_ERR")"
PID=$(silt_daemon_pids "$M" | head -n 1)
check_eq "$(tstate t0 state)" missing "siltctl status: t0 missing"
check '[[ "$(tstate t0 reason)" == *"$V/d0/silt"*"not there"* ]]' "and why: $(tstate t0 reason)"
check 'silt_ctl -m "$M" tiers | grep -q "^t0 .* missing"' "siltctl tiers: t0 missing"
check 'silt_ctl -m "$M" tiers | grep -q "not there"' "with the reason under it"
check_eq "$(tstate t1 state)" active "t1 active"
err=$(read_err "$M/a")
check '[[ "$err" == *"Input/output error"* ]]' "reading a fails with EIO ($err)"
check 'same "$M/b" "$SILT_TMP/b"' "b (on t1) reads"
new_file f 256 t1
say "   another volume's tier folder appears at t0's path"
silt_make_volume "$W" 1 64K
silt_mount "$W/vol.conf" "$SILT_TMP/wm" && silt_umount "$SILT_TMP/wm"
wstate=$(silt_tree_state "$W/t0")
mkdir "$V/d0/silt"
silt_track_mount "$V/d0/silt"
mount --bind "$W/t0" "$V/d0/silt"
check 'silt_wait_for 10 "grep -q \"not taking it\" \"$LOG\""' "the daemon says it is not taking it"
check_eq "$(tstate t0 state)" missing "t0 stays missing"
new_file c2 256 t1
check '[ "$(silt_tree_state "$W/t0")" == "$wstate" ]' "nothing written into the other volume's folder"
umount "$V/d0/silt" && rmdir "$V/d0/silt"
mount "${DEV[0]}" "$V/d0"
check 'wait_state t0 active' "t0's disk mounted: t0 is active"
check 'same "$M/a" "$SILT_TMP/a"' "a reads back byte for byte"
check 'same "$M/f" "$SILT_TMP/f"' "f too"

say "5. the disks fill up"
check_cmd "fill t0's disk with other files" fallocate -l 30M "$V/d0/filler"
silt_random "$SILT_TMP/g" $((48 << 20))
check 'cp "$SILT_TMP/g" "$M/g" && sync' "a 48 MiB file is written"
check 'same "$M/g" "$SILT_TMP/g"' "and reads back byte for byte"
g0=$(silt_where_tier_chunks "$M/g" t0); g1=$(silt_where_tier_chunks "$M/g" t1)
check '[ "$g1" -gt 0 ] && [ $((g0 + g1)) -eq 768 ]' "t0 took what it could ($g0 chunks), t1 the rest ($g1)"
check 'grep -q "tier t0: its filesystem said ENOSPC" "$LOG"' "t0's filesystem did say ENOSPC"
err=$(dd if=/dev/urandom of="$M/h" bs=1M count=200 status=none 2>&1)
check '[[ "$err" == *"No space left"* ]]' "a file too big for both fails with ENOSPC ($err)"
t_cpu0=$(awk '{ print $14 + $15 }' "/proc/$PID/stat")
sleep 5
t_cpu1=$(awk '{ print $14 + $15 }' "/proc/$PID/stat")
check_le $((t_cpu1 - t_cpu0)) 50 "the daemon used $((t_cpu1 - t_cpu0)) ticks of CPU in 5 s with full disks (at most 10%)"
check 'same "$M/g" "$SILT_TMP/g"' "g is intact"
for f in a b c d e f c2; do same "$M/$f" "$SILT_TMP/$f" || fail "$f changed"; done
pass "every earlier file reads back"
rm -f "$M/h" "$V/d0/filler"
silt_random "$SILT_TMP/i" $((1 << 20))
check 'sleep 1.2; cp "$SILT_TMP/i" "$M/i" && sync && same "$M/i" "$SILT_TMP/i"' "with room again, a new file"
check 'alive' "the daemon is up"
check_cmd "umount" silt_umount "$M"

say "no tier folder there at all"
umount "$V/d0"; umount "$V/d1"
rc=0; out=$(timeout 30 "$SILTFS" "$V/vol.conf" "$M" 2>&1 </dev/null) || rc=$?
check_eq "$rc" 1 "the mount is refused"
check '[[ "$out" == *"no tier folder"* ]]' "saying so: $out"
silt_summary
