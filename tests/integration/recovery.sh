#!/usr/bin/env bash
# recovery: what users see when the daemon dies, and the documented way
# back (docs/usage.md, "When the daemon dies"). After kill -9, every access
# to the mount fails with ENOTCONN ("Transport endpoint is not connected"),
# a qemu-io that had the image open gets I/O errors, siltctl says that the
# daemon of the mount is not running and still shows its log; umount and a
# new mount bring the volume back with every acknowledged write, while the
# old qemu-io keeps failing and a new one reads. Then the systemd unit's own
# commands, run the way systemd runs them for Restart=on-failure (with this
# build's daemon, the mount point set as a drop-in would): ExecStart mounts
# (Type=forking: mounted when it returns), after a crash ExecStopPost
# detaches the dead mount and ExecStartPre + ExecStart mount it again.
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

V="$SILT_TMP/v"; M="$SILT_TMP/m"
silt_make_volume "$V" 2 64K
ENOTCONN="Transport endpoint is not connected"

say "the daemon dies"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
silt_random "$SILT_TMP/a" $((3 << 20))
cp "$SILT_TMP/a" "$M/a"
qemu-img create -q -f raw "$M/disk.img" 16M
qemu-io -n -f raw -c "write -P 0x5a 0 1M" "$M/disk.img" >/dev/null
# a qemu-io that keeps the image open, reading its commands from a fifo
mkfifo "$SILT_TMP/q"
qemu-io -n -f raw "$M/disk.img" <"$SILT_TMP/q" >"$SILT_TMP/q.out" 2>&1 &
qpid=$!
exec 8>"$SILT_TMP/q"
# qio CMD: one command to that qemu-io, then wait for its answer (qemu-io
# takes one command per wake-up: never send the next one before)
qio() {
	local prompts
	prompts=$(grep -o 'qemu-io>' "$SILT_TMP/q.out" | wc -l)
	echo "$1" >&8
	silt_wait_for 20 "[ \$(grep -o 'qemu-io>' '$SILT_TMP/q.out' | wc -l) -gt $prompts ]"
}
qio "read -P 0x5a 0 64k"
check 'grep -q "read 65536/65536" "$SILT_TMP/q.out"' "qemu-io reads the image"
pid=$(silt_daemon_pids "$M")
kill -KILL "$pid"; silt_wait_pids_gone 10 "$pid"
# (a request in flight at the moment of the crash may get ECONNABORTED,
# "Software caused connection abort"; every later one gets ENOTCONN)
silt_wait_for 5 "stat '$M/a' 2>&1 | grep -q '$ENOTCONN'"
check_eq "$(stat -c %s "$M/a" 2>&1 | sed 's/^.*: //')" "$ENOTCONN" "stat of a file: $ENOTCONN"
check_eq "$(ls "$M" 2>&1 | sed 's/^.*: //')" "$ENOTCONN" "ls of the mount: $ENOTCONN"
qio "read -P 0x5a 0 64k"
qio "write -P 0x33 64k 64k"
check 'grep -q "read failed: $ENOTCONN" "$SILT_TMP/q.out"' "qemu-io: reads fail ($(grep failed "$SILT_TMP/q.out" | head -n1))"
check 'grep -q "write failed: $ENOTCONN" "$SILT_TMP/q.out"' "qemu-io: writes fail"
out=$(silt_ctl -m "$M" status 2>&1); rc=$?
check '[ $rc -eq 1 ] && [[ "$out" == *"the daemon of $M is not running"* ]]' "siltctl status: the daemon is not running ($out)"
out=$(silt_ctl where "$M/a" 2>&1); rc=$?
check '[ $rc -eq 1 ] && [[ "$out" == *"the daemon of $M is not running"* ]]' "siltctl where: the daemon is not running ($out)"
out=$(silt_ctl --json -m "$M" status); rc=$?
check_eq "$rc/$(json_get "$out" .errno)" 1/ECONNREFUSED "siltctl --json status: a JSON error"
log=$(silt_ctl -m "$M" log -n 3 2>"$SILT_TMP/log.err"); rc=$?
check_eq "$rc/$log" "0/$(tail -n 3 "$(silt_volume_log "$V")")" "siltctl log still shows the last lines"
check 'grep -q "the daemon of $M is not running; its log, as $V/vol.conf sets it" "$SILT_TMP/log.err"' \
	"... and says where they come from ($(cat "$SILT_TMP/log.err"))"

say "umount, mount again"
check_cmd "umount -l the dead mount (qemu-io still holds a file)" umount -l "$M"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount again: $(cat "$SILT_LAST_ERR")"
check 'cmp -s "$SILT_TMP/a" "$M/a"' "the file written before the crash is intact"
qio "read -P 0x5a 0 64k"
echo "quit" >&8
exec 8>&-
silt_wait_pids_gone 20 "$qpid" || kill -KILL "$qpid"
wait "$qpid"
check_eq "$(grep -c "read failed: $ENOTCONN" "$SILT_TMP/q.out")" 2 "the old qemu-io still fails (its descriptor is dead)"
out=$(qemu-io -n -f raw -c "read -P 0x5a 0 1M" "$M/disk.img" 2>&1)
check '[[ "$out" == *"read 1048576/1048576"* ]]' "a new qemu-io reads the image written before the crash"
check_cmd "umount" silt_umount "$M"

say "the systemd unit's commands recover by themselves"
UNIT="$BUILDDIR/tools/system/siltfs@.service"
prefix=$(meson introspect "$BUILDDIR" --buildoptions | jq -r '.[] | select(.name == "prefix") | .value')
INST="siltit-$(basename "$SILT_TMP" | tr -dc 'A-Za-z0-9')"
UM="$SILT_TMP/unit-mnt"
U="$SILT_TMP/u"
silt_make_volume "$U" 1 64K
[ -d /etc/siltfs ] || silt_at_exit "rmdir /etc/siltfs 2>/dev/null"
mkdir -p /etc/siltfs
cp "$U/vol.conf" "/etc/siltfs/$INST.conf"
silt_at_exit "rm -f /etc/siltfs/$INST.conf"
silt_track_mount "$UM"
check 'grep -qx "Type=forking" "$UNIT" && grep -qx "Restart=on-failure" "$UNIT"' "the unit: Type=forking, Restart=on-failure"
declare -A ENV=()
while IFS= read -r kv; do ENV[${kv%%=*}]=${kv#*=}; done < <(sed -n 's/^Environment=//p' "$UNIT")
ENV[SILTFS_MOUNTPOINT]=$UM   # a drop-in: systemctl edit siltfs@INST
# unit KEY: run the unit's KEY= commands as systemd would (%i, ${VAR}, a
# leading - ignores failure), with this build's daemon for the installed one
unit() {
	local line cmd v ignore rc=0 argv
	while IFS= read -r line; do
		cmd=${line#"$1="}; ignore=0
		[[ "$cmd" == -* ]] && { ignore=1; cmd=${cmd#-}; }
		cmd=${cmd//%i/$INST}
		for v in "${!ENV[@]}"; do cmd=${cmd//"\${$v}"/${ENV[$v]}}; done
		cmd=${cmd/#"$prefix/bin/siltfs "/"$SILTFS "}
		read -ra argv <<<"$cmd"
		"${argv[@]}" </dev/null >"$SILT_TMP/unit.out" 2>&1 || { [ $ignore = 1 ] || rc=1; }
	done < <(grep "^$1=" "$UNIT")
	return $rc
}
check 'unit ExecStartPre && unit ExecStart' "ExecStartPre, ExecStart ($(cat "$SILT_TMP/unit.out"))"
check 'silt_is_fuse_mount "$UM"' "mounted on the drop-in's mount point when ExecStart returns"
check 'findmnt -n -o OPTIONS --mountpoint "$UM" | grep -q allow_other' "with SILTFS_OPTIONS (allow_other)"
echo "before the crash" > "$UM/f"; sync "$UM/f"
pid=$(silt_daemon_pids "$UM")
kill -KILL "$pid"; silt_wait_pids_gone 10 "$pid"
check '! stat "$UM/f" 2>/dev/null' "crashed: the mount is dead"
check 'unit ExecStopPost' "ExecStopPost"
check '! silt_is_mounted "$UM"' "ExecStopPost detached the dead mount"
check 'unit ExecStartPre && unit ExecStart' "Restart: ExecStartPre, ExecStart again ($(cat "$SILT_TMP/unit.out"))"
check_eq "$(cat "$UM/f" 2>&1)" "before the crash" "mounted again, with the data written before the crash"
pid=$(silt_daemon_pids "$UM")
kill -TERM "$pid"   # systemctl stop
check 'silt_wait_pids_gone 30 $pid' "stop: the daemon exits on SIGTERM"
check 'unit ExecStopPost && ! silt_is_mounted "$UM"' "stop: nothing left mounted"

silt_summary
