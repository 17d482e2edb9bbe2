#!/usr/bin/env bash
# already_mounted: mounting a volume that a live daemon serves (same config
# on the same or another mountpoint, or a copy of the config) is refused at
# once, naming that daemon's pid and mountpoint, and the mount in use goes
# on working. `umount && mount` still works: a daemon whose mount is gone
# but that still holds the metadata store (here: stopped with SIGSTOP right
# after umount) is waited for, and one that never lets go is named after
# the wait.
. "$(dirname "$0")/lib.sh"
set +e

V="$SILT_TMP/v"; M1="$SILT_TMP/m1"; M2="$SILT_TMP/m2"
mkdir -p "$M2"
silt_track_mount "$M2"
silt_make_volume "$V" 2 64K
silt_mount "$V/vol.conf" "$M1" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
echo hello > "$M1/f"
pid=$(silt_daemon_pids "$M1")
name=$(silt_volume_name "$V/vol.conf")
cp "$V/vol.conf" "$SILT_TMP/copy.conf"

# refused_now DESC CONF MNT: siltfs CONF MNT exits 1 before the 10 s that
# the old lock wait took (no timing target: a refusal that waits for the
# lock is the bug), saying the volume is mounted on M1 by $pid; MNT stays
# as it was and M1 keeps working.
refused_now() {
	local desc=$1 conf=$2 mnt=$3 rc=0 t0 secs err="$SILT_TMP/refused.err"
	say "$desc"
	t0=$(date +%s%N)
	timeout 30 "$SILTFS" "$conf" "$mnt" </dev/null >/dev/null 2>"$err" || rc=$?
	secs=$(( ($(date +%s%N) - t0) / 1000000000 ))
	sed 's/^/    [siltfs] /' "$err" | head -n 3
	check_eq "$rc" 1 "$desc: exit status 1"
	check 'grep -qF "volume $name (uuid " "$err" && grep -qF "is already mounted on $M1 (siltfs, pid $pid)" "$err"' \
		"$desc: says the volume is mounted on $M1 by pid $pid"
	check '! grep -q LOCK "$err"' "$desc: no RocksDB lock text"
	check_le "$secs" 5 "$desc: refused without the lock wait (seconds)"
	check_eq "$(cat "$M1/f" 2>&1)" hello "$desc: $M1 still serves the volume"
}

refused_now "same config, same mountpoint" "$V/vol.conf" "$M1"
refused_now "same config, another mountpoint" "$V/vol.conf" "$M2"
check '! silt_is_mounted "$M2"' "... $M2 not mounted"
refused_now "a copy of the config, another mountpoint" "$SILT_TMP/copy.conf" "$M2"
check '! silt_is_mounted "$M2"' "... $M2 not mounted"

say "umount && mount"
if umount "$M1" && silt_mount "$V/vol.conf" "$M1"; then
	pass "umount && mount at once"
	check_eq "$(cat "$M1/f" 2>&1)" hello "file intact"
else
	fail "umount && mount: $(cat "$SILT_LAST_ERR")"
fi

# The previous daemon still holds the store after its mount is gone: it
# is stopped before the umount, so it cannot finish closing until SIGCONT.
# (umount -c: without it, umount first stats the mountpoint, which waits
# for the stopped daemon.)
say "a daemon still closing the store after umount is waited for"
old=$(silt_daemon_pids "$M1")
kill -STOP $old
check_cmd "umount with the daemon stopped" timeout 10 umount -c "$M1"
timeout 30 "$SILTFS" "$V/vol.conf" "$M1" </dev/null >/dev/null 2>"$SILT_TMP/wait.err" &
new=$!
sleep 2
check 'kill -0 $new 2>/dev/null && ! silt_is_mounted "$M1"' "the new daemon waits (2 s on) instead of failing"
kill -CONT $old
wait $new
rc=$?
sed 's/^/    [siltfs] /' "$SILT_TMP/wait.err" | head -n 3
check_eq "$rc" 0 "it mounts once the old one has gone"
check 'grep -qF "waiting for process $old (siltfs) to close the metadata store" "$SILT_TMP/wait.err"' "... having said whom it waited for"
silt_wait_mounted "$M1" 10 && check_eq "$(cat "$M1/f" 2>&1)" hello "file intact"
for p in $(silt_daemon_pids "$M1"); do SILT_PIDS+=("$p"); done

say "a daemon that never lets go is named after the wait"
old=$(silt_daemon_pids "$M1")
kill -STOP $old
check_cmd "umount with the daemon stopped" timeout 10 umount -c "$M1"
rc=0
timeout 30 "$SILTFS" "$V/vol.conf" "$M1" </dev/null >/dev/null 2>"$SILT_TMP/stuck.err" || rc=$?
kill -CONT $old
sed 's/^/    [siltfs] /' "$SILT_TMP/stuck.err" | head -n 3
check_eq "$rc" 1 "refused after the wait"
check 'grep -qF "is held by process $old (siltfs), which serves no mount" "$SILT_TMP/stuck.err"' "... naming the holder"
silt_wait_pids_gone 30 $old || fail "the stopped daemon did not exit after SIGCONT"
check '! silt_is_mounted "$M1"' "nothing mounted"

silt_summary
