#!/usr/bin/env bash
# fstab: the installed siltfs works as a mount.fuse3 helper from an fstab line
# ("CONF MNT fuse.siltfs defaults,allow_other,_netdev 0 0"): mount -T mounts
# it as type fuse.siltfs with the config as source, allow_other takes
# effect, the fstab-only options are ignored, umount flushes, and SIGTERM /
# SIGINT to the daemon unmount cleanly with the data written before intact.
# As at a reboot: with a tier on a filesystem of its own listed first in the
# fstab, umount of the volume then of the tier filesystem (at once: umount
# waits for the daemon), and `mount -a` brings both back with the data.
# The build is installed into the system for the test (silt_install_system:
# /usr/local/bin/siltfs, /sbin/umount.fuse.siltfs, ...) and removed after.
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

V="$SILT_TMP/v"; M="$SILT_TMP/m"; W="$SILT_TMP/w"
FSTAB="$SILT_TMP/fstab"
mkdir -p "$W" "$M"
silt_make_volume "$V" 2 64K
silt_track_mount "$M"

say "installed binaries"
silt_install_system || silt_abort "cannot install the build into the system"
check 'cmp -s /usr/local/bin/siltfs "$SILTFS"' "/usr/local/bin/siltfs is this build"
check '[ "$(command -v siltfs)" == /usr/local/bin/siltfs ]' "siltfs is found in PATH"
check '[ -x /sbin/umount.fuse.siltfs ]' "/sbin/umount.fuse.siltfs is installed"

# fstab_mount OPTIONS: write the fstab line with OPTIONS and mount -T it;
# waits for the mount.  Returns non-zero (showing mount's output) on failure.
fstab_mount() {
	local out rc=0
	echo "$V/vol.conf $M fuse.siltfs $1 0 0" > "$FSTAB"
	out=$(timeout 60 mount -T "$FSTAB" "$M" 2>&1) || rc=$?
	[ -n "$out" ] && echo "$out" | sed 's/^/    [mount] /'
	[ $rc -eq 0 ] && silt_wait_mounted "$M" 20
}
# wait_unmounted SECONDS: wait until $M is no longer mounted
wait_unmounted() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do silt_is_mounted "$M" || return 0; sleep 0.1; done
	return 1
}

say "mount -T with the contract's fstab line"
check 'fstab_mount defaults,allow_other,_netdev' "mount -T fstab $M"
check_eq "$(findmnt -n -o FSTYPE --mountpoint "$M")" fuse.siltfs "findmnt: type fuse.siltfs"
check_eq "$(findmnt -n -o SOURCE --mountpoint "$M")" "$V/vol.conf" "findmnt: source is the config file"
echo public > "$M/pub"; chmod 0644 "$M/pub"
check_eq "$(setpriv --reuid=65534 --regid=65534 --clear-groups cat "$M/pub" 2>&1)" public "allow_other: user nobody reads a 0644 file"
check '! setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "echo x >> $M/pub" 2>/dev/null' "default_permissions: nobody cannot write it"
silt_random "$W/one" $((5 << 20))
cp "$W/one" "$M/one"
pids=$(silt_daemon_pids "$M")
check '[ -n "$pids" ]' "daemon running ($pids)"
check_cmd "umount $M" umount "$M"
# shellcheck disable=SC2086
check 'silt_wait_pids_gone 30 $pids' "daemon exits after umount"

say "mount -T again"
check 'fstab_mount defaults,allow_other,_netdev' "mount -T fstab $M"
check 'cmp -s "$W/one" "$M/one"' "data written before umount intact"
check_eq "$(cat "$M/pub" 2>&1)" public "small file intact"

say "SIGTERM unmounts cleanly"
silt_random "$W/two" $((3 << 20))
cp "$W/two" "$M/two"      # no sync: SIGTERM must flush it
mkdir "$M/dir"; echo t > "$M/dir/t"
pids=$(silt_daemon_pids "$M")
check '[ -n "$pids" ]' "daemon pid ($pids)"
# shellcheck disable=SC2086
kill -TERM $pids
# shellcheck disable=SC2086
check 'silt_wait_pids_gone 30 $pids' "daemon exits on SIGTERM"
check 'wait_unmounted 5' "$M is unmounted (no stale mount left)"
check 'stat "$M" >/dev/null 2>&1' "$M is accessible (not ENOTCONN)"
check 'fstab_mount defaults,allow_other,_netdev' "mount -T again"
check 'cmp -s "$W/two" "$M/two"' "data written before SIGTERM intact"
check 'cmp -s "$W/one" "$M/one"' "older data intact"
check_eq "$(cat "$M/dir/t" 2>&1)" t "directory written before SIGTERM intact"
pids=$(silt_daemon_pids "$M")
check_cmd "umount" umount "$M"
# shellcheck disable=SC2086
silt_wait_pids_gone 30 $pids || true

say "fstab-only options are ignored"
check 'fstab_mount defaults,_netdev,nofail,noauto,noatime,x-systemd.requires=network-online.target,comment=siltfs-test' \
	"mount -T with nofail,noauto,noatime,x-*,comment=*"
check 'findmnt -n -o OPTIONS --mountpoint "$M" | grep -q noatime' "noatime reaches the kernel mount"
check 'cmp -s "$W/one" "$M/one"' "data intact"
pids=$(silt_daemon_pids "$M")
check_cmd "umount" umount "$M"
# shellcheck disable=SC2086
silt_wait_pids_gone 30 $pids || true

say "mount -t fuse.siltfs"
out=$(timeout 60 mount -t fuse.siltfs -o allow_other "$V/vol.conf" "$M" 2>&1) && rc=0 || rc=$?
check '[ $rc -eq 0 ] && silt_wait_mounted "$M" 10' "mount -t fuse.siltfs CONF MNT ($out)"
check 'cmp -s "$W/two" "$M/two"' "data intact"
pids=$(silt_daemon_pids "$M")
check_cmd "umount" umount "$M"
# shellcheck disable=SC2086
silt_wait_pids_gone 30 $pids || true

say "SIGINT to a foreground daemon unmounts cleanly"
silt_mount_fg "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
echo int > "$M/int"
kill -INT "$SILT_FG_PID"
if silt_wait_pids_gone 30 "$SILT_FG_PID"; then
	pass "daemon exits on SIGINT"
	wait "$SILT_FG_PID" && rc=0 || rc=$?
	check_eq "$rc" 0 "exit status 0 after SIGINT"
else
	fail "daemon exits on SIGINT (still running after 30 s: killed)"
	kill -KILL "$SILT_FG_PID"; wait "$SILT_FG_PID"
	fusermount3 -uz "$M"
fi
check 'wait_unmounted 5' "$M is unmounted"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
check_eq "$(cat "$M/int" 2>&1)" int "data written before SIGINT intact"
check_cmd "umount" silt_umount "$M"

say "mount -a after a full unmount, as at a reboot"
R="$SILT_TMP/r"; RM="$SILT_TMP/rm"; IMG="$SILT_TMP/fast.img"
silt_make_volume "$R" 2 64K
# the fast tier is a folder on its own ext4 (a tier folder must start empty:
# not the filesystem's root, which has lost+found)
sed -i "s|^path = $R/t0\$|path = $R/t0/silt|" "$R/vol.conf"
truncate -s 128M "$IMG" && mkfs.ext4 -q -F "$IMG"
silt_track_mount "$R/t0"; silt_track_mount "$RM"; mkdir -p "$RM"
printf '%s\n' "$IMG  $R/t0  ext4  loop  0 0" "$R/vol.conf  $RM  fuse.siltfs  defaults,allow_other,_netdev  0 0" > "$FSTAB"
mount -o loop "$IMG" "$R/t0" && mkdir "$R/t0/silt" && umount "$R/t0"
# boot: mount -a, then both are mounted
boot() {
	local out rc=0
	out=$(timeout 60 mount -a -T "$FSTAB" 2>&1) || rc=$?
	[ -n "$out" ] && echo "$out" | sed 's/^/    [mount -a] /'
	[ $rc -eq 0 ] && silt_is_mounted "$R/t0" && silt_wait_mounted "$RM" 20
}
check boot "mount -a -T FSTAB: the tier filesystem and the volume"
check_eq "$(findmnt -n -o FSTYPE --mountpoint "$RM")" fuse.siltfs "the volume is fuse.siltfs"
silt_random "$W/three" $((6 << 20))
cp "$W/three" "$RM/three"
check_ge "$(silt_where_tier_chunks "$RM/three" t0)" 1 "data on the tier filesystem"
pids=$(silt_daemon_pids "$RM")
check_cmd "umount the volume" umount "$RM"
check_cmd "umount the tier filesystem right after (the daemon is gone)" umount "$R/t0"
# shellcheck disable=SC2086
check '! silt_pid_alive $pids' "no daemon left"
check boot "mount -a again: both mounted"
check 'cmp -s "$W/three" "$RM/three"' "data written before the reboot intact"
pids=$(silt_daemon_pids "$RM")
umount "$RM"; umount "$R/t0"
# shellcheck disable=SC2086
silt_wait_pids_gone 30 $pids || true

silt_summary
