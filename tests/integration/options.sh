#!/usr/bin/env bash
# options: the daemon's command line and mount options behave as documented:
# usage errors exit non-zero, a missing mountpoint is refused, ctl=PATH puts
# the control socket there (and siltctl -s finds it), the default socket
# exists while mounted and is gone after umount, threads=N works, ro makes
# the mount read-only, noatime reaches the kernel, -d stays in the
# foreground, the same volume cannot be mounted twice at once, two volumes
# mounted side by side are independent, siltctl reports errors, and the
# config's [ram] size and metadata = PATH take effect.
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

V="$SILT_TMP/v"; M="$SILT_TMP/m"; M2="$SILT_TMP/m2"; U="$SILT_TMP/u"; MU="$SILT_TMP/mu"
silt_make_volume "$V" 2 64K
silt_make_volume "$U" 1 64K
# socket files in /run/siltfs that belong to mounts under our $SILT_TMP
our_sockets() { find /run/siltfs -maxdepth 1 -name "*$(basename "$SILT_TMP")*" 2>/dev/null | sort; }

say "usage errors"
check_cmd_fails "siltfs without arguments fails" "$SILTFS"
check_cmd_fails "siltfs with only a config fails" "$SILTFS" "$V/vol.conf"
rc=0; err=$(timeout 30 "$SILTFS" "$V/vol.conf" "$SILT_TMP/no/such/dir" 2>&1) || rc=$?
check_eq "$rc" 1 "missing mountpoint: exit status 1"
check '[[ "$err" == *"$SILT_TMP/no/such/dir"* ]]' "missing mountpoint: message names it ($err)"
check '[ -z "$(find "$V/t0" "$V/t1" -mindepth 1 | head -n1)" ]' "missing mountpoint: nothing written to the tiers"
check_cmd_fails "siltctl without a command fails" "$SILTCTL"
check_cmd_fails "siltctl -m on a directory that is no siltfs mount fails" "$SILTCTL" -m /tmp status

say "ctl=PATH and the default socket"
silt_mount "$V/vol.conf" "$M" "ctl=$SILT_TMP/ctl.sock" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
check '[ -S "$SILT_TMP/ctl.sock" ]' "control socket at the ctl= path"
check_eq "$(json_get "$(silt_ctl -s "$SILT_TMP/ctl.sock" status --json)" .volume.mountpoint)" "$M" "siltctl -s SOCKET status"
echo x > "$M/x"
check_eq "$(json_get "$(silt_ctl -s "$SILT_TMP/ctl.sock" where --json "$M/x")" .size)" 2 "siltctl -s SOCKET where"
check_eq "$(json_get "$(silt_ctl -m "$M" status --json)" .volume.mountpoint)" "$M" "siltctl -m finds a ctl= socket (default name links to it)"
check_eq "$(json_get "$(silt_ctl where --json "$M/x")" .size)" 2 "siltctl where FILE finds a ctl= socket"
check_cmd "umount" silt_umount "$M"
check '[ ! -e "$SILT_TMP/ctl.sock" ]' "ctl socket removed after umount"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
socks=$(our_sockets)
check '[ "$(echo "$socks" | grep -c .)" -eq 1 ]' "one default socket in /run/siltfs for the mount ($socks)"
check_eq "$(json_get "$(silt_ctl -m "$M" status --json)" .volume.mountpoint)" "$M" "siltctl -m MOUNTPOINT status"
check_eq "$(json_get "$(silt_ctl -s "$socks" status --json)" .volume.mountpoint)" "$M" "siltctl -s <default socket> status"

say "the same volume twice"
rc=0; err=$(timeout 30 "$SILTFS" "$V/vol.conf" "$(mkdir -p "$M2"; echo "$M2")" 2>&1 </dev/null) || rc=$?
silt_track_mount "$M2"
check_eq "$rc" 1 "second mount of a mounted volume is refused ($err)"
check '! silt_is_mounted "$M2"' "... nothing mounted"
check_eq "$(cat "$M/x" 2>&1)" x "first mount still works"

say "two volumes side by side"
silt_mount "$U/vol.conf" "$MU" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
echo u > "$MU/u"
check_eq "$(json_get "$(silt_ctl where --json "$MU/u")" '.tiers[0].name')" t0 "siltctl where finds the second volume's file"
check_eq "$(json_get "$(silt_ctl -m "$MU" status --json)" .volume.name)" "$(silt_volume_name "$U/vol.conf")" "siltctl -m picks the right volume"
check '[ ! -e "$M/u" ] && [ ! -e "$MU/x" ]' "namespaces are separate"
check_cmd_fails "siltctl status without -m fails when several volumes are mounted" "$SILTCTL" status
check_cmd "umount the second volume" silt_umount "$MU"
check_cmd "umount" silt_umount "$M"
check '[ -z "$(our_sockets)" ]' "default sockets removed after umount"

say "threads out of range"
for n in 0 65; do
	rc=0; err=$(timeout 30 "$SILTFS" "$V/vol.conf" "$M" -o threads=$n 2>&1 </dev/null) || rc=$?
	check_eq "$rc" 1 "threads=$n is refused with exit status 1 ($err)"
	if silt_is_mounted "$M"; then fail "threads=$n: mounted"; silt_umount "$M"; fi
done

say "threads=4"
silt_mount "$V/vol.conf" "$M" threads=4 || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
silt_random "$SILT_TMP/data" $((4 << 20))
pids=(); for i in 1 2 3 4 5 6; do cp "$SILT_TMP/data" "$M/par$i" & pids+=($!); done
wait "${pids[@]}"   # (not a bare wait: the lib's watchdog is a background job too)
silt_drop_caches
ok=1; for i in 1 2 3 4 5 6; do cmp -s "$SILT_TMP/data" "$M/par$i" || ok=0; done
check '[ $ok = 1 ]' "6 parallel writers with 4 threads"
check_cmd "umount" silt_umount "$M"

say "cache=writeback"
rc=0; err=$(timeout 30 "$SILTFS" "$V/vol.conf" "$M" -o cache=sometimes 2>&1 </dev/null) || rc=$?
check "[ $rc -eq 1 ] && grep -q 'cache=writeback or cache=writethrough' <<<\"\$err\"" "cache=sometimes is refused ($err)"
if silt_is_mounted "$M"; then fail "cache=sometimes: mounted"; silt_umount "$M"; fi
writes() { json_get "$(silt_ctl -m "$M" status --json)" .volume.writes; }
for mode in writethrough writeback; do
	silt_mount "$V/vol.conf" "$M" cache=$mode || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
	check_eq "$(json_get "$(silt_ctl -m "$M" status --json)" .volume.cache)" $mode "siltctl status says cache $mode"
	bdi=/sys/class/bdi/$(mountpoint -d "$M")
	limits="$(cat "$bdi/max_ratio") $(cat "$bdi/strict_limit")"
	if [ $mode = writeback ]; then
		check_eq "$limits" "100 0" "$mode: the mount's bdi takes dirty pages as a disk's does (max_ratio, strict_limit)"
	else
		check_eq "$limits" "1 1" "$mode: the mount's bdi keeps the kernel's FUSE limits"
	fi
	w0=$(writes)
	dd if="$SILT_TMP/data" of="$M/wb-$mode" bs=4k conv=fsync status=none
	n=$(( $(writes) - w0 ))
	eval "requests_$mode=$n"
	silt_drop_caches
	check "cmp -s '$SILT_TMP/data' '$M/wb-$mode'" "$mode: 4 MiB of 4 KiB buffered writes read back intact ($n write requests)"
	# a write-only open that writes inside a page: the kernel reads the
	# page through that handle first
	cp "$SILT_TMP/data" "$SILT_TMP/expect"
	for f in "$M/wb-$mode" "$SILT_TMP/expect"; do
		printf 'XYZ' | dd of="$f" bs=1 seek=5000 conv=notrunc,fsync status=none
	done
	silt_drop_caches
	check "cmp -s '$SILT_TMP/expect' '$M/wb-$mode'" "$mode: a 3-byte write through a write-only handle"
	check_cmd "umount" silt_umount "$M"
done
check "[ $requests_writeback -lt $((requests_writethrough / 8)) ]" \
	"writeback coalesces: $requests_writeback write requests against $requests_writethrough"

say "ro"
silt_mount "$V/vol.conf" "$M" ro || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
check 'findmnt -n -o OPTIONS --mountpoint "$M" | grep -qw ro' "mounted read-only"
check_eq "$(cat "$M/x" 2>&1)" x "reads work"
out=$(echo y 2>&1 > "$M/x")
check '[[ "$out" == *"Read-only file system"* ]]' "writes fail with EROFS ($out)"
check '! mkdir "$M/newdir" 2>/dev/null' "mkdir fails"
check '! rm "$M/x" 2>/dev/null' "unlink fails"
check_cmd "siltctl status works on a ro mount" "$SILTCTL" -m "$M" status --json
check_cmd "umount" silt_umount "$M"
silt_mount "$V/vol.conf" "$M" noatime || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
check_eq "$(cat "$M/x" 2>&1)" x "file unchanged after the ro mount"
check 'findmnt -n -o OPTIONS --mountpoint "$M" | grep -qw noatime' "noatime reaches the kernel mount"
check_cmd "umount" silt_umount "$M"

say "config: [ram] size and metadata = PATH"
R="$SILT_TMP/r"; MR="$SILT_TMP/mr"
mkdir -p "$SILT_TMP/meta"
SILT_VOLUME_OPTS="metadata = $SILT_TMP/meta" silt_make_volume "$R" 2 64K
printf '\n[ram]\nsize = 16M\n' >> "$R/vol.conf"
if silt_mount "$R/vol.conf" "$MR"; then
	check_eq "$(json_get "$(silt_ctl -m "$MR" status --json)" .ram.size)" 16777216 "status: ram size 16M"
	echo meta > "$MR/f"
	check_cmd "umount" silt_umount "$MR"
	check '[ -n "$(ls -A "$SILT_TMP/meta")" ]' "the metadata store is in the metadata directory"
	check '[ -z "$(find "$R/t0" -name meta)" ]' "... and not in the first tier"
	silt_mount "$R/vol.conf" "$MR" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
	check_eq "$(cat "$MR/f" 2>&1)" meta "remount with the metadata elsewhere keeps the data"
	check_cmd "umount" silt_umount "$MR"
else
	fail "volume with [ram] size and metadata = PATH does not mount: $(cat "$SILT_LAST_ERR")"
fi

say "-d stays in the foreground"
env --default-signal=INT "$SILTFS" "$V/vol.conf" "$M" -d </dev/null >/dev/null 2>"$SILT_TMP/debug.err" &
dpid=$!
silt_track_mount "$M"
if silt_wait_mounted "$M" 20 "$dpid"; then
	pass "-d mounts"
	sleep 0.5
	check 'kill -0 $dpid 2>/dev/null' "-d: the started process is still running (foreground)"
	cat "$M/x" >/dev/null
	check '[ -s "$SILT_TMP/debug.err" ]' "-d writes debug output to stderr ($(wc -l < "$SILT_TMP/debug.err") lines)"
	kill -TERM $dpid
	check 'silt_wait_pids_gone 20 $dpid' "-d: exits on SIGTERM"
	check '! silt_is_mounted "$M"' "-d: unmounted"
else
	fail "-d did not mount: $(head -n 5 "$SILT_TMP/debug.err")"
fi
wait $dpid 2>/dev/null

silt_summary
