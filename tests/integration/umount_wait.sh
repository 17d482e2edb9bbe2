#!/usr/bin/env bash
# umount_wait: `umount MOUNTPOINT` returns only once the daemon has exited
# (docs/usage.md, "Unmounting"). With the build installed (for
# /sbin/umount.fuse.siltfs; removed again at exit), a plain umount of a
# volume just written to leaves no daemon behind and its tier filesystem
# can be unmounted at once, mounted by `siltfs` or through mount(8) with
# fstab-only options; the daemon's utab entry goes with the mount (also
# after SIGTERM); `umount -l` returns without waiting while a file is held
# open; a dead daemon's mount unmounts; the helper run by hand says how
# long the daemon took.
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

V="$SILT_TMP/v"; M="$SILT_TMP/m"
silt_make_volume "$V" 2 64K
# the fast tier on a filesystem of its own
mount -t tmpfs -o size=256M silt-t0 "$V/t0" || silt_abort "cannot mount a tmpfs on $V/t0"
silt_track_mount "$V/t0"
silt_install_system || silt_abort "cannot install the build"
check '[ -x /sbin/umount.fuse.siltfs ]' "/sbin/umount.fuse.siltfs installed"

# utab_has MNT: libmount's utab has an entry for MNT
utab_has() { grep -qs " TARGET=$1 " /run/mount/utab; }
# write_some: 32 MiB through the page cache, 8 MiB direct, 1000 small
# files, not synced: the daemon then needs tens of milliseconds after the
# unmount to close the volume, long enough for a umount that does not wait
# to be caught
write_some() {
	dd if=/dev/urandom of="$M/cached" bs=1M count=32 status=none
	dd if=/dev/urandom of="$M/direct" bs=1M count=8 oflag=direct status=none
	mkdir -p "$M/small"
	for ((f = 0; f < 1000; f++)); do echo $f > "$M/small/$f"; done
}

say "umount waits for the daemon"
for how in siltfs "mount -t fuse.siltfs -o _netdev,x-siltfs-test"; do
	for i in 1 2; do
		if [ "$how" = siltfs ]; then
			silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
		else
			mkdir -p "$M"
			out=$($how "$V/vol.conf" "$M" 2>&1) || silt_abort "cannot $how: $out"
			silt_wait_mounted "$M" 20
		fi
		pid=$(silt_daemon_pids "$M")
		[ $i = 1 ] && check 'utab_has "$M"' "$how: the mount has a utab entry (helper=fuse.siltfs)"
		write_some
		rc=0; umount "$M" || rc=$?
		alive=$(silt_pid_alive "$pid" && echo "still running" || echo gone)
		check_eq "$rc/$alive" "0/gone" "$how, round $i: umount returned, the daemon ($pid) is gone"
		[ $i = 1 ] && check '! utab_has "$M"' "$how: no utab entry left"
	done
done
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
write_some
umount "$M"
check_cmd "the tier filesystem unmounts right after" umount "$V/t0"
mount -t tmpfs -o size=256M silt-t0 "$V/t0"   # (empty again: a new volume below)
rm -rf "$V/t1"/*

say "the daemon ended by SIGTERM leaves no utab entry"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
pid=$(silt_daemon_pids "$M")
kill -TERM "$pid"
check 'silt_wait_pids_gone 20 $pid' "the daemon exits on SIGTERM"
check '! utab_has "$M"' "no utab entry left"

say "umount -l does not wait for files still open"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
echo held > "$M/held"
pid=$(silt_daemon_pids "$M")
exec 7<"$M/held"
check_cmd "umount -l returns" umount -l "$M"
check 'silt_pid_alive $pid' "the daemon still serves the open file"
check_eq "$(cat <&7)" held "the open file reads"
exec 7<&-
check 'silt_wait_pids_gone 20 $pid' "the daemon exits once the file is closed"

say "a dead daemon's mount"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
pid=$(silt_daemon_pids "$M")
kill -KILL "$pid"; silt_wait_pids_gone 10 "$pid"
check_cmd "umount of a dead mount" umount "$M"
check '! silt_is_mounted "$M"' "unmounted"

say "the helper by hand"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
write_some
out=$(/sbin/umount.fuse.siltfs "$M" -v 2>&1); rc=$?
check '[ $rc -eq 0 ] && [[ "$out" =~ the\ daemon\ of\ $M\ \(pid\ [0-9]+\)\ exited\ [0-9]+\ ms\ after\ the\ unmount ]]' \
	"umount.fuse.siltfs MOUNTPOINT -v ($out)"
check '! silt_is_mounted "$M"' "unmounted"
out=$(/sbin/umount.fuse.siltfs "$M" 2>&1); rc=$?
check '[ $rc -ne 0 ] && [[ "$out" == *"not mounted"* ]]' "on a directory that is not mounted: umount's error ($out)"

silt_summary
