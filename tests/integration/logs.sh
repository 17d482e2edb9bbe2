#!/usr/bin/env bash
# logs: a daemon's log lines reach a place an admin reads (docs/usage.md,
# "Logs"). Detached and with no syslog daemon on /dev/log, it writes
# time-stamped, levelled lines to /var/log/siltfs/<volume>.log (or
# log_file); with a syslog daemon listening on /dev/log (a private mount
# namespace with its own /dev and a listener), to syslog as siltfs/<volume>
# with the right priorities, and to the file again when /dev/log is a stale
# socket. The refusals of PR_SET_IO_FLUSHER and of mlockall are said once.
# log_level, -o log_level= and -o log_file= work, bad values are refused
# naming them, the file is rotated by size (log_max_size, three old files)
# and reopened when moved away (logrotate). siltctl status says where the
# log goes, siltctl log shows its last lines (across a rotation, -n, -c,
# --json). A foreground daemon logs to stderr.
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

TAG=$(basename "$SILT_TMP")
STAMP='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}[+-][0-9]{4} \[[0-9]+\]'
# Does this host refuse PR_SET_IO_FLUSHER to root (no CAP_SYS_RESOURCE)?
io_flusher_refused() {
	python3 -c 'import ctypes, sys; sys.exit(0 if ctypes.CDLL(None).prctl(57, 1, 0, 0, 0) != 0 else 1)'
}
syslog_present() {
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try: s.connect("/dev/log")
except OSError: sys.exit(1)'
}
# count PATTERN FILE: lines of FILE matching the extended regex PATTERN
count() { grep -cE "$1" "$2" 2>/dev/null || true; }
# the init callback logs after mount returned: wait for the mount's lines
wait_log() { silt_wait_for 10 "grep -qE '$1' '$2' 2>/dev/null"; }

say "the default log file, when no syslog daemon listens"
V="$SILT_TMP/v"; M="$SILT_TMP/m"
NAME="logs-$TAG"
LOG="/var/log/siltfs/$NAME.log"
SILT_LOG_FILE="" silt_make_volume "$V" 2 64K
sed -i "s/^name = .*/name = $NAME/" "$V/vol.conf"
if syslog_present; then
	skip "a syslog daemon listens on /dev/log here: the default is syslog (checked below in a namespace)"
else
	silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
	wait_log 'PR_SET_IO_FLUSHER|mlockall|mounted on' "$LOG"
	check '[ -f "$LOG" ]' "the daemon writes $LOG"
	check_eq "$(count "^$STAMP info: volume $NAME \(.*\) mounted on $M\$" "$LOG")" 1 \
		"one time-stamped info line says where the volume is mounted"
	if io_flusher_refused; then
		wait_log 'PR_SET_IO_FLUSHER' "$LOG"
		check_eq "$(count "^$STAMP warning: PR_SET_IO_FLUSHER" "$LOG")" 1 \
			"PR_SET_IO_FLUSHER is refused here: the log says so once, as a warning"
	else
		check_eq "$(count PR_SET_IO_FLUSHER "$LOG")" 0 "PR_SET_IO_FLUSHER is granted here: no warning"
	fi
	check_eq "$(count mlockall "$LOG")" 0 "mlockall works for root: no warning"
	check_eq "$(grep -vc 'created volume' "$SILT_LAST_ERR")" 0 "mount printed no more than 'created volume'"
	s=$(silt_ctl -m "$M" status --json)
	check_eq "$(json_get "$s" .log.destination)/$(json_get "$s" .log.path)/$(json_get "$s" .log.level)" \
		"file/$LOG/info" "siltctl status --json: log.destination, path, level"
	check_eq "$(silt_ctl -m "$M" log -n 3)" "$(tail -n 3 "$LOG")" "siltctl log -n 3 = the last 3 lines"
	check_eq "$(silt_ctl log -c "$V/vol.conf")" "$(tail -n 20 "$LOG")" "siltctl log -c CONFIG: the last 20 lines"
	j=$(silt_ctl -m "$M" --json log -n 2)
	check_eq "$(json_get "$j" '.lines | length')/$(json_get "$j" .path)" "2/$LOG" "siltctl --json log: lines and path"
	check_eq "$(json_get "$j" '.lines[1]')" "$(tail -n 1 "$LOG")" "siltctl --json log: the last line"
	check_cmd "umount" silt_umount "$M"
	check_eq "$(count "^$STAMP info: volume $NAME closed" "$LOG")" 1 "the log says when the volume is closed"
fi

say "mlockall refused: said once"
W="$SILT_TMP/w"; MW="$SILT_TMP/mw"
if [ -n "${SILT_SANITIZED:-}" ]; then
	skip "AddressSanitizer makes mlockall a no-op: it cannot be refused"
else
	silt_make_volume "$W" 1 64K
	mkdir -p "$MW"; silt_track_mount "$MW"
	# no CAP_IPC_LOCK, and 8 MiB of lockable memory (Debian's default): too
	# little for the daemon, enough for its io_uring rings
	lim=$((8 << 20)); hard=$(ulimit -Hl)
	[ "$hard" != unlimited ] && [ $((hard * 1024)) -lt $lim ] && lim=$((hard * 1024))
	rc=0; setpriv --bounding-set -ipc_lock prlimit --memlock=$lim "$SILTFS" "$W/vol.conf" "$MW" </dev/null \
		>/dev/null 2>"$SILT_TMP/mw.err" || rc=$?
	check_eq "$rc" 0 "mounts without CAP_IPC_LOCK ($(head -c 200 "$SILT_TMP/mw.err"))"
	wait_log mlockall "$(silt_volume_log "$W")"
	check_eq "$(count "^$STAMP warning: mlockall failed .*: do not put swap on this volume" "$(silt_volume_log "$W")")" 1 \
		"the log says once that mlockall failed"
	echo data > "$MW/f"
	check_eq "$(cat "$MW/f" 2>&1)" data "the volume works all the same"
	check_cmd "umount" silt_umount "$MW"
fi

say "log_level and -o"
L="$SILT_TMP/l"; ML="$SILT_TMP/ml"
SILT_VOLUME_OPTS="log_level = warning" silt_make_volume "$L" 1 64K
silt_mount "$L/vol.conf" "$ML" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
silt_ctl -m "$ML" status >/dev/null
io_flusher_refused && wait_log PR_SET_IO_FLUSHER "$(silt_volume_log "$L")"
check_cmd "umount" silt_umount "$ML"
check_eq "$(count ' (info|debug): ' "$(silt_volume_log "$L")")" 0 "log_level = warning: no info or debug lines"
if io_flusher_refused; then
	check_eq "$(count ' warning: PR_SET_IO_FLUSHER' "$(silt_volume_log "$L")")" 1 "... but the warning"
fi
silt_mount "$L/vol.conf" "$ML" log_level=debug || fail "mount with -o log_level=debug"
check_eq "$(json_get "$(silt_ctl -m "$ML" status --json)" .log.level)" debug \
	"-o log_level=debug overrides the config (status says debug)"
check_ge "$(count " debug: control socket: request 'status'" "$(silt_volume_log "$L")")" 1 "debug lines: the control requests"
check_ge "$(count " debug: config $L/vol.conf" "$(silt_volume_log "$L")")" 1 "debug lines: the start-up settings"
silt_umount "$ML"
silt_mount "$L/vol.conf" "$ML" "log_file=$SILT_TMP/other.log,log_level=info" || fail "mount with -o log_file="
silt_ctl -m "$ML" status >/dev/null
check_eq "$(json_get "$(silt_ctl -m "$ML" status --json)" .log.path)" "$SILT_TMP/other.log" "-o log_file=PATH: status says so"
check_eq "$(count " info: volume .* mounted on $ML\$" "$SILT_TMP/other.log")" 1 "-o log_file=PATH: the lines go there"
silt_umount "$ML"

say "bad log settings are refused, naming them"
# refused LABEL EXPECT CONF [OPTS]: siltfs exits 1, stderr has EXPECT, nothing mounted
refused() {
	local label=$1 expect=$2 conf=$3 opts=${4:-} rc=0 err
	if [ -n "$opts" ]; then
		err=$(timeout 30 "$SILTFS" "$conf" "$ML" -o "$opts" 2>&1 </dev/null) || rc=$?
	else
		err=$(timeout 30 "$SILTFS" "$conf" "$ML" 2>&1 </dev/null) || rc=$?
	fi
	check '[ $rc -eq 1 ] && [[ "$err" == *"$expect"* ]]' "$label: exit 1, '$expect' ($err)"
	if silt_is_mounted "$ML"; then fail "$label: mounted"; silt_umount "$ML"; fi
}
B="$SILT_TMP/b"
for bad in "log_level = loud|log_level = loud: must be error, warning, info or debug" \
	   "log_file = relative.log|log_file = relative.log: must be auto, syslog or an absolute path" \
	   "log_max_size = 1K|log_max_size = 1K: must be 0 (never rotate) or a size of at least 4K"; do
	rm -rf "$B"; SILT_VOLUME_OPTS=${bad%%|*} silt_make_volume "$B" 1 -
	line=$(grep -nxF "${bad%%|*}" "$B/vol.conf" | cut -d: -f1)
	refused "${bad%%|*}" "vol.conf:$line: ${bad#*|}" "$B/vol.conf"
done
refused "-o log_level=loud" "-o log_level=loud: must be error, warning, info or debug" "$L/vol.conf" log_level=loud
refused "-o log_file=x.log" "-o log_file=x.log: must be auto, syslog or an absolute path" "$L/vol.conf" log_file=x.log
touch "$SILT_TMP/afile"
refused "a log file that cannot be created" "log_file $SILT_TMP/afile/x.log: Not a directory" "$L/vol.conf" \
	"log_file=$SILT_TMP/afile/x.log"
check '[ -z "$(find "$B/t0" -mindepth 1 | head -n1)" ]' "nothing written to the tier of a refused config"

say "rotation by size, and a file moved away"
R="$SILT_TMP/r"; MR="$SILT_TMP/mr"; RL=$(silt_volume_log "$R")
SILT_VOLUME_OPTS=$'log_max_size = 4K\nlog_level = debug' silt_make_volume "$R" 1 64K
silt_mount "$R/vol.conf" "$MR" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
# each request is a debug line of ~80 bytes: 300 of them fill 6 files of 4K
for i in $(seq 300); do "$SILTCTL" -m "$MR" status >/dev/null; done
sizes=$(stat -c %s "$RL" "$RL".[123] 2>/dev/null | tr '\n' ' ')
check '[ -f "$RL.1" ] && [ -f "$RL.2" ] && [ -f "$RL.3" ]' "rotated: $RL.1 .2 .3 exist (sizes $sizes)"
check '[ ! -e "$RL.4" ]' "no fourth old file"
big=0; for f in "$RL" "$RL".[123]; do [ "$(stat -c %s "$f")" -le 4096 ] || big=1; done
check_eq "$big" 0 "every file at most log_max_size (4096 bytes)"
n=$(grep -c . "$RL")
check_eq "$(silt_ctl -m "$MR" log -n $((n + 5)))" "$(cat "$RL.1" "$RL" | tail -n $((n + 5)))" \
	"siltctl log -n $((n + 5)) reads across the rotation ($n lines in the current file)"
mv "$RL" "$SILT_TMP/moved.log"
silt_ctl -m "$MR" status >/dev/null
check_eq "$(count "request 'status'" "$RL")" 1 "a file moved away (logrotate) is recreated at the next line"
silt_umount "$MR"

say "a foreground daemon logs to stderr"
F="$SILT_TMP/f"; MF="$SILT_TMP/mf"
SILT_LOG_FILE="" silt_make_volume "$F" 1 64K
silt_mount_fg "$F/vol.conf" "$MF" || silt_abort "cannot mount -f: $(cat "$SILT_LAST_ERR")"
check_eq "$(json_get "$(silt_ctl -m "$MF" status --json)" .log.destination)" stderr "status: destination stderr"
if io_flusher_refused; then
	silt_wait_for 10 "grep -q PR_SET_IO_FLUSHER '$SILT_LAST_ERR'"
	check_eq "$(grep -c '^siltfs: warning: PR_SET_IO_FLUSHER' "$SILT_LAST_ERR")" 1 "the warning is on stderr, once"
fi
rc=0; out=$(silt_ctl -m "$MF" log 2>&1) || rc=$?
check '[ $rc -eq 1 ] && [[ "$out" == *"standard error"* ]]' "siltctl log says where a foreground daemon logs ($out)"
kill -TERM "$SILT_FG_PID"; silt_wait_pids_gone 20 "$SILT_FG_PID"; wait "$SILT_FG_PID" 2>/dev/null

say "syslog, when a syslog daemon listens on /dev/log (private mount namespace)"
S="$SILT_TMP/s"; MS="$SILT_TMP/ms"; SNAME="sys-$TAG"
SILT_LOG_FILE="" silt_make_volume "$S" 1 64K
sed -i "s/^name = .*/name = $SNAME/" "$S/vol.conf"
mkdir -p "$MS"; silt_track_mount "$MS"
# Inside: /dev is a fresh tmpfs with the nodes the daemon needs and a
# listener on /dev/log; the mount stays inside the namespace.
in_namespace() {
	local lpid pid i
	mount -t tmpfs -o mode=0755 silt-dev /dev || return 1
	mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/full c 1 7
	mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/fuse c 10 229
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind("/dev/log")
out = open(sys.argv[1], "ab", buffering=0)
while True: out.write(s.recv(65536).rstrip(b"\0\n") + b"\n")' "$S/syslog.txt" </dev/null >/dev/null 2>&1 &
	lpid=$!
	trap 'kill $lpid 2>/dev/null' EXIT
	i=0; while [ ! -S /dev/log ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	# gone DAEMON: wait until its process has gone
	gone() { local i=0; while [ -n "$1" ] && [ -d "/proc/$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done; }
	"$SILTFS" "$S/vol.conf" "$MS" </dev/null >"$S/ns-mount1.out" 2>&1
	i=0; while ! grep -q PR_SET_IO_FLUSHER "$S/syslog.txt" 2>/dev/null && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
	"$SILTCTL" -m "$MS" status --json >"$S/status1.json" 2>&1
	"$SILTCTL" -m "$MS" log >"$S/log1.out" 2>&1; echo "rc=$?" >>"$S/log1.out"
	[ -e "/var/log/siltfs/$SNAME.log" ] && touch "$S/file-while-syslog"
	pid=$(pgrep -xf "$SILTFS $S/vol.conf $MS")
	umount "$MS"; gone "$pid"
	kill "$lpid"; wait "$lpid" 2>/dev/null   # /dev/log stays: a stale socket
	"$SILTFS" "$S/vol.conf" "$MS" </dev/null >"$S/ns-mount2.out" 2>&1
	"$SILTCTL" -m "$MS" status --json >"$S/status2.json" 2>&1
	pid=$(pgrep -xf "$SILTFS $S/vol.conf $MS")
	umount "$MS"; gone "$pid"
}
export S MS SNAME SILTFS SILTCTL
silt_bounded 60 "$MS" "syslog namespace run" unshare -m --propagation private bash -c "$(declare -f in_namespace); in_namespace" </dev/null >"$S/ns.out" 2>&1
sed 's/^/    [namespace] /' "$S/ns.out"
check_eq "$(json_get "$(cat "$S/status1.json")" .log.destination)/$(json_get "$(cat "$S/status1.json")" .log.ident)" \
	"syslog/siltfs/$SNAME" "status: syslog, identifier siltfs/<volume>"
# <30> = daemon.info, <28> = daemon.warning
check_ge "$(count "^<30>.* siltfs/$SNAME\[[0-9]+\]: volume $SNAME .* mounted on $MS\$" "$S/syslog.txt")" 1 \
	"syslog got the mount line (daemon.info, identifier and pid)"
if io_flusher_refused; then
	check_eq "$(count "^<28>.* siltfs/$SNAME\[[0-9]+\]: PR_SET_IO_FLUSHER failed" "$S/syslog.txt")" 1 \
		"syslog got the PR_SET_IO_FLUSHER warning once (daemon.warning)"
fi
check '[ ! -e "$S/file-while-syslog" ]' "no log file while syslog listens"
check 'grep -q "logs to syslog as siltfs/$SNAME" "$S/log1.out" && grep -q "rc=1" "$S/log1.out"' \
	"siltctl log says the daemon logs to syslog ($(head -c 200 "$S/log1.out"))"
check_eq "$(json_get "$(cat "$S/status2.json")" .log.destination)/$(json_get "$(cat "$S/status2.json")" .log.path)" \
	"file//var/log/siltfs/$SNAME.log" "a stale /dev/log (nobody listening): the log file"

silt_summary
