#!/usr/bin/env bash
# powercut: proves that what fsync/fdatasync acknowledged survives a power
# cut, where the kill -9 of crash.sh does not reach: there the kernel keeps
# every unsynced write, so that test passes even with vol_fsync a no-op.
#
# The stack: pcdisk (pcdisk.c: a FUSE "disk" whose writes stay in a volatile
# cache until a flush) serves $SILT_TMP/disk/disk over the durable image
# $SILT_TMP/durable.img; a loop device over that file; ext4 on the loop
# device (mkfs and mount defaults, journal on); on that ext4 two siltfs
# volumes, each with two tiers (folders) and its metadata store (in its
# first tier): "a" with 4K chunks, "b" with 64K chunks, both with a small
# first tier so that chunks spill to the second; "a" migrates by the
# default policy and is mounted with -o cache=writeback (the kernel's
# writeback cache), "b" runs the churn migration (every chunk to the other
# tier, epochs of 200 ms, full speed), so that the cuts also land in the
# middle of chunk moves. The final check turns migration off (see there).
#
# Each iteration starts the disk afresh over the durable image (the power
# is back; the cache is empty), attaches the loop device (direct I/O off and
# on, alternating in pairs), runs e2fsck -fy as a boot would (journal replay;
# exit 0 or 1) and then e2fsck -fn (must find ext4 clean), mounts ext4 and
# both volumes, verifies everything the earlier iterations acknowledged
# (crashwriter verify with a digest: nothing may change later), runs one
# crashwriter on each volume and, after a seeded random delay (200..2000
# ms), cuts the power: kill -9 of both daemons and the writers (nothing more
# can be acknowledged), then the disk's cut: "cut" on even iterations (every
# unflushed write is lost), "cut 50 SEED" on odd ones (a seeded half of the
# cached blocks reaches the platter first, in no order), after which the
# disk fails all I/O; then the dead FUSE mounts are lazily unmounted, ext4
# unmounted, the loop device detached and the disk stopped. A final
# bring-up verifies the last iteration and unmounts everything cleanly,
# which must leave nothing in the disk's cache and ext4 clean.
# The acknowledgement logs live on the local disk, outside the mount.
#
# Env: SILTFS, CRASHWRITER, PCDISK; POWERCUT_ITERATIONS (default 8),
# POWERCUT_LONG=1 (default 60 iterations), POWERCUT_SEED (default 1),
# POWERCUT_REVERIFY (how many earlier iterations each bring-up rechecks:
# all, or 10 with POWERCUT_LONG; the final one rechecks all),
# POWERCUT_STRICT_RENAMES=1 (see below), SILT_KEEP=1.
#
# Known gaps of the daemon, both about renames (crashwriter verify exits 4):
# 1. siltfs answers no FUSE fsyncdir, so the kernel makes fsync of a
#    directory a no-op, and a rename that crashwriter acknowledged after
#    fsync(dir) is only durable once a later fsync syncs the metadata WAL;
#    a power cut in between loses it.
# 2. Freeing an inode (here: the old "current" that a rename replaced)
#    commits its deletion to the WAL unsynced and then unlinks its tier
#    files; ext4 may make the unlink durable first (any fsync commits its
#    journal), and after a power cut that loses the WAL record the store
#    still maps the old inode onto missing files: EIO, and the daemon marks
#    the whole tier failed (then remounted here, see remount_gaps).
# Until the daemon closes them, such iterations are reported as skipped,
# naming what was lost, and not checked again; POWERCUT_STRICT_RENAMES=1
# counts them as failures. Every other loss (file data, sizes, creations,
# torn renamed-in files) fails.

# lib.sh's watchdog must fire before meson's timeout (300 s)
if [ "${POWERCUT_LONG:-0}" = 1 ]; then : "${SILT_DEADLINE:=86400}"; else : "${SILT_DEADLINE:=270}"; fi
export SILT_DEADLINE
. "$(dirname "$0")/../lib.sh"

: "${CRASHWRITER:=$BUILDDIR/tests/integration/stress/crashwriter}"
: "${PCDISK:=$BUILDDIR/tests/integration/stress/pcdisk}"
for t in "$CRASHWRITER" "$PCDISK"; do
	[ -x "$t" ] || { echo "powercut: $t is not built"; exit 1; }
done
iterations=${POWERCUT_ITERATIONS:-8}
img_size=1G
if [ "${POWERCUT_LONG:-0}" = 1 ]; then
	iterations=${POWERCUT_ITERATIONS:-60}
	: "${POWERCUT_REVERIFY:=10}"
	img_size=8G
fi
seed=${POWERCUT_SEED:-1}
reverify=${POWERCUT_REVERIFY:-$iterations}
strict_renames=${POWERCUT_STRICT_RENAMES:-0}
RANDOM=$seed

IMG="$SILT_TMP/durable.img"
DISK="$SILT_TMP/disk"          # pcdisk's mount point; the image is $DISK/disk
EXT="$SILT_TMP/ext4"           # the ext4 on the loop device
names=(a b)
# "a" runs with the kernel's writeback cache (buffered writes wait in the
# page cache for fsync), "b" without
mopts=(cache=writeback "")
chunks=(4096 65536)
disk_pid=""                    # the running pcdisk
dev=""                         # the loop device over it
dpids=()                       # siltfs daemons, per volume
wpids=()                       # crashwriters, per volume
derr=()                        # the daemons' stderr (their log), per volume
gap_vol=()                     # volumes where verify_upto just found a known gap
declare -A bad=()              # iteration -> why it failed
declare -A lost=()             # iterations that lost an acknowledged rename
acks=0 dropped=0 nfsck=0 settled=0

fsck_routine='^e2fsck [0-9.]+ |^Pass [1-5][a-z]?: |^/dev/loop[0-9]+: (recovering journal|clearing orphaned inode|\*+ FILE SYSTEM WAS MODIFIED \*+|[0-9]+/[0-9]+ files )|^Free (blocks|inodes) count wrong|^Fix\? yes$|^(Clearing|Truncating) orphaned inode|^Setting free (blocks|inodes) count|^Inode [0-9]+ extent tree \(at level [0-9]+\) could be (shorter|narrower)\.  Optimize\? yes$|^Pass 1E: Optimizing extent trees$|^$'

mnt_of() { echo "$SILT_TMP/mnt-$1"; }
conf_of() { echo "$EXT/${names[$1]}/vol.conf"; }

# disk_run MSG CMD...: CMD bounded to 60 s; a hang aborts the disk's FUSE
# connection, which fails every layer above it.
disk_run() { silt_bounded 60 "$DISK" "$@"; }

# disk_stat NAME: a counter of the running disk (see pcdisk.c).
disk_stat() { awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }' "$SILT_TMP/disk.stats"; }
read_stats() { disk_run "reading the disk's counters" cat "$DISK/ctl" > "$SILT_TMP/disk.stats"; }

# disk_up DIO: the power comes back: a fresh pcdisk over the durable image,
# and the loop device over it with direct I/O DIO (on/off).
disk_up() {
	mkdir -p "$DISK"
	silt_track_mount "$DISK"
	"$PCDISK" "$IMG" "$DISK" 2>>"$SILT_TMP/pcdisk.err" &
	disk_pid=$!
	SILT_PIDS+=("$disk_pid")
	silt_wait_mounted "$DISK" 20 "$disk_pid" || { echo "  pcdisk did not mount:"; cat "$SILT_TMP/pcdisk.err"; return 1; }
	silt_losetup "$DISK/disk" --direct-io="$1" || return 1
	dev=$SILT_LOOP
	local want=0
	[ "$1" = on ] && want=1
	[ "$(losetup -n -O DIO "$dev" | tr -d ' ')" = "$want" ] || { echo "  $dev: direct-io=$1 did not take"; return 1; }
}

# ext4_up: boot-time check (journal replay), a clean bill of health, mount.
ext4_up() {
	local out="$SILT_TMP/fsck.$((++nfsck)).out" rc=0
	disk_run "e2fsck -fy" e2fsck -fy "$dev" > "$out" 2>&1 || rc=$?
	fsck_rc=$rc
	if [ $rc -gt 1 ]; then
		echo "  e2fsck -fy $dev exited $rc:"; tail -n 15 "$out" | sed 's/^/    | /'
		return 1
	fi
	# A disk that honours flushes leaves ext4 needing its journal replayed,
	# the free counts (not journaled) recomputed and orphans released, no
	# more (extent trees that could be shallower are an optimisation e2fsck
	# -f offers on any ext4 with punched files, not damage).
	if grep -Ev "$fsck_routine" "$out" > "$out.other"; then
		echo "  e2fsck -fy repaired more than a power cut should need:"; head -n 15 "$out.other" | sed 's/^/    | /'
		return 1
	fi
	rc=0
	disk_run "e2fsck -fn" e2fsck -fn "$dev" > "$out.n" 2>&1 || rc=$?
	if [ $rc -ne 0 ]; then
		echo "  ext4 is not clean after e2fsck -fy (e2fsck -fn exited $rc):"; tail -n 15 "$out.n" | sed 's/^/    | /'
		return 1
	fi
	mkdir -p "$EXT"
	silt_track_mount "$EXT"
	disk_run "mount ext4" mount -t ext4 "$dev" "$EXT"
}

volumes_up() {
	local v
	for v in 0 1; do
		silt_mount_fg "$(conf_of "$v")" "$(mnt_of "$v")" "${mopts[v]}" || { dpids[v]=$SILT_FG_PID; return 1; }
		dpids[v]=$SILT_FG_PID
		derr[v]=$SILT_LAST_ERR
		settled=$((settled + $(sed -n 's/.*settled \([0-9]*\) chunk moves.*/\1/p' "${derr[v]}" | head -n1) + 0))
	done
}

# bring_up DIO: disk, loop device, ext4, both volumes.
bring_up() { disk_up "$1" && ext4_up && volumes_up; }

# take_down: after the daemons are gone (killed or cleanly unmounted):
# ext4, the loop device and the disk.
take_down() {
	local v rc=0
	for v in 0 1; do
		while silt_is_mounted "$(mnt_of "$v")"; do
			fusermount3 -uz "$(mnt_of "$v")" 2>/dev/null || umount -l "$(mnt_of "$v")" || break
		done
	done
	if silt_is_mounted "$EXT" && ! disk_run "umount ext4" umount "$EXT"; then
		echo "  umount $EXT failed; lazily unmounted"
		umount -l "$EXT"; rc=1
	fi
	if [ -n "$dev" ] && ! silt_lodetach "$dev"; then
		echo "  losetup -d $dev failed"; rc=1
	fi
	dev=""
	disk_down || rc=1
	return $rc
}

# foreign_pin PATH...: a process (pid, command) in another mount namespace
# that has one of the PATHs mounted. Such a copy, made when a namespace was
# created while our mount stood (other developers' tests run sshd in one),
# keeps our ext4, and so the loop device and the disk, busy after our umount.
foreign_pin() {
	local p self
	self=$(readlink /proc/self/ns/mnt)
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/ns/mnt" 2>/dev/null)" != "$self" ] || continue
		if awk -v a="$1" -v b="${2:-$1}" '$2 == a || $2 == b { f = 1 } END { exit !f }' "$p/mounts" 2>/dev/null; then
			echo "${p#/proc/} $(tr '\0' ' ' < "$p/cmdline" | cut -c1-60)"
			return 0
		fi
	done
	return 1
}

# disk_down: unmount the disk and let pcdisk exit.
disk_down() {
	local n rc=0 st=0 pin=""
	# (a prober may hold the loop device, and so the image, for a moment
	# after the detach: retry; bounded, since umount looks up the mount
	# point, which waits for a hung disk)
	for ((n = 0; n < 10; n++)); do
		disk_run "umount the disk" umount "$DISK" 2>/dev/null && break
		sleep 0.5
	done
	if silt_is_mounted "$DISK"; then
		if pin=$(foreign_pin "$EXT" "$DISK"); then
			echo "  note: a copy of our mounts in another mount namespace (pid $pin) holds the disk:" \
				"lazily unmounted, pcdisk stopped (the durable image is not written after that)"
		else
			echo "  umount $DISK failed; lazily unmounted"; rc=1
		fi
		fusermount3 -uz "$DISK" 2>/dev/null
	fi
	if ! silt_wait_pids_gone 10 "$disk_pid"; then
		[ -n "$pin" ] || { echo "  pcdisk $disk_pid still runs 10 s after its unmount: killing it"; rc=1; }
		kill -9 "$disk_pid"
	fi
	wait "$disk_pid" 2>/dev/null || st=$?
	silt_forget_pid "$disk_pid"
	if [ $st -ne 0 ] && [ -z "$pin" ]; then
		echo "  pcdisk exited $st:"; tail -n 5 "$SILT_TMP/pcdisk.err"; rc=1
	fi
	return $rc
}

# verify_upto LAST [FIRST]: check iterations FIRST..LAST-1 on both volumes.
# Iterations that failed verification or showed a known gap (below) are not
# checked again; a volume that shows a known gap now is named in gap_vol.
verify_upto() {
	local last=$1 first=${2:-0} j v rc out="$SILT_TMP/verify.out"
	gap_vol=()
	for ((j = first; j < last; j++)); do
		for v in 0 1; do
			[ -e "$SILT_TMP/log.$j.$v" ] && [ -z "${lost[$j]:-}" ] &&
				[ "${bad[$j]:-}" != verification ] || continue
			rc=0
			silt_bounded 120 "$(mnt_of "$v")" "verify iteration $j on volume ${names[v]}" \
				"$CRASHWRITER" verify "$(mnt_of "$v")/it$j" "$SILT_TMP/log.$j.$v" \
				"$SILT_TMP/digest.$j.$v" > "$out" 2>&1 || rc=$?
			[ $rc -eq 4 ] && [ "$strict_renames" = 0 ] && known_gap "$j" "$v" "$out" && continue
			if [ $rc -ne 0 ]; then
				echo "  iteration $j (volume ${names[v]}): verification failed:"
				head -n 10 "$out" | sed 's/^/    /'
				bad[$j]="verification"
			fi
		done
	done
}

# known_gap J V OUT: crashwriter verify said (exit 4, in OUT) that only what
# renames made in iteration J on volume V is wrong. True (and recorded in
# lost) when it is one of the daemon's two known gaps: a rename acknowledged
# after fsync(dir) lost, or "current" unreadable because the daemon freed
# the tier files of the inode a rename replaced before that rename was
# durable (its log then names a tier failed on a missing chunk file).
known_gap() {
	local j=$1 v=$2 out=$3 what
	what=$(grep -m1 '^FAIL: ' "$out" | sed 's/^FAIL: //; s/ \[rename\]$//')
	if grep -q 'unreadable' "$out" &&
	   ! grep -qs "failed: opening a chunk's file: No such file or directory" "${derr[v]}"; then
		return 1
	fi
	echo "  iteration $j (volume ${names[v]}): known gap: $what"
	lost[$j]="$what"
	gap_vol[v]=1
}

start_writers() {
	local i=$1 v
	for v in 0 1; do
		"$CRASHWRITER" write "$(mnt_of "$v")/it$i" "$((seed * 1000003 + i * 16 + v))" "${chunks[v]}" \
			> "$SILT_TMP/log.$i.$v" 2> "$SILT_TMP/writer.$i.$v.err" &
		wpids[v]=$!
	done
}

# forget_daemons: the daemons of this bring-up (dpids) are reaped: forget
# them. stop_daemons: kill -9 them first; one stuck in I/O on a hung disk
# dies once the disk's connection is aborted.
forget_daemons() {
	[ ${#dpids[@]} -gt 0 ] && silt_forget_pid "${dpids[@]}"
	dpids=()
}
stop_daemons() {
	local p
	[ ${#dpids[@]} -gt 0 ] || return 0
	kill -9 "${dpids[@]}" 2>/dev/null
	if ! silt_wait_pids_gone 10 "${dpids[@]}"; then
		echo "  daemons ${dpids[*]} outlive kill -9: aborting the disk's FUSE connection"
		silt_fuse_abort "$DISK"
		silt_wait_pids_gone 10 "${dpids[@]}" || { echo "  and still run"; return 1; }
	fi
	for p in "${dpids[@]}"; do wait "$p" 2>/dev/null || true; done
	forget_daemons
}

# power_cut I CMD: stop the machine (daemons and writers: no acknowledgement
# after this), cut the disk's power with ctl command CMD, take it all down.
power_cut() {
	local i=$1 cmd=$2 v pid
	for v in 0 1; do
		pid=${wpids[v]}
		if ! kill -0 "$pid" 2>/dev/null || grep -qs '^State:.*Z' "/proc/$pid/status"; then
			echo "  iteration $i: the writer on volume ${names[v]} stopped before the cut:"
			sed 's/^/    /' "$SILT_TMP/writer.$i.$v.err"
			bad[$i]="writer error"
		fi
	done
	# The cut follows the kill at once, before the processes are reaped:
	# in-flight I/O of the dying daemons hits a disk that has lost its
	# cache, but no acknowledgement can come any more (an fsync reply sent
	# now was earned). In between, a 64 KiB direct write into ext4 (not
	# siltfs), never flushed, so that the cut has something to drop even
	# when siltfs had just flushed it all: the check that the disk really
	# loses its cache cannot pass vacuously.
	# (stderr off: bash reports every job killed by a signal; a hang of the
	# cut is still counted and printed by fail)
	{
		kill -9 "${dpids[@]}" "${wpids[@]}" || true
		dd if=/dev/urandom of="$EXT/canary" bs=64K count=1 oflag=direct conv=notrunc status=none ||
			bad[$i]="canary write"
		disk_run "power cut" sh -c 'echo "$1" > "$2"' _ "$cmd" "$DISK/ctl" || bad[$i]="power cut"
		for pid in "${dpids[@]}" "${wpids[@]}"; do wait "$pid" || true; done
	} 2>/dev/null
	forget_daemons
	read_stats || bad[$i]="disk counters"
	take_down || bad[$i]="teardown after the cut"
}

# remount_gaps: a daemon that found a chunk file missing has marked that
# tier failed (new chunks go elsewhere, the small first tier fills: ENOSPC)
# until it is mounted again: remount the volumes verify_upto named.
remount_gaps() {
	local v
	for v in "${!gap_vol[@]}"; do
		silt_umount "$(mnt_of "$v")" || return 1
		silt_forget_pid "${dpids[v]}"
		silt_mount_fg "$(conf_of "$v")" "$(mnt_of "$v")" "${mopts[v]}" || return 1
		dpids[v]=$SILT_FG_PID
		derr[v]=$SILT_LAST_ERR
	done
}

# one_iteration I
one_iteration() {
	local i=$1 dio=off cmd=cut delay_ms n
	[ $(( (i / 2) % 2 )) = 1 ] && dio=on
	[ $(( i % 2 )) = 1 ] && cmd="cut 50 $((seed * 7919 + i))"
	delay_ms=$(( 200 + RANDOM % 1801 ))
	if ! bring_up "$dio"; then
		echo "  iteration $i: bring-up after the last power cut FAILED"
		bad[$(( i > 0 ? i - 1 : 0 ))]="bring-up"
		stop_daemons
		take_down
		return 1
	fi
	verify_upto "$i" "$(( i > reverify ? i - reverify : 0 ))"
	remount_gaps || { bad[$i]="remount"; return 1; }
	start_writers "$i"
	sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
	power_cut "$i" "$cmd"
	n=$(cat "$SILT_TMP"/log."$i".* | grep -c '^A\|^NA\|^PA' || true)
	acks=$((acks + n))
	dropped=$((dropped + $(disk_stat cut_dropped)))
	echo "  iteration $i: direct-io=$dio, e2fsck -fy $fsck_rc, '$cmd' after $delay_ms ms:" \
		"$n acknowledgements; the disk saw $(disk_stat flushes) flushes," \
		"dropped $(disk_stat cut_dropped) cached blocks, kept $(disk_stat cut_kept)," \
		"refused $(disk_stat refused_writes) writes after the cut"
}

say "setup: ext4 on a loop device over pcdisk, two volumes on it"
truncate -s "$img_size" "$IMG"
disk_up off || silt_abort "cannot start the disk"
disk_run "mkfs.ext4" mkfs.ext4 -q -F "$dev" || silt_abort "mkfs.ext4 failed"
mkdir -p "$EXT"
silt_track_mount "$EXT"
disk_run "mount ext4" mount -t ext4 "$dev" "$EXT" || silt_abort "cannot mount the ext4"
head -c 64K /dev/zero > "$EXT/canary"
SILT_VOLUME_OPTS=$'[placement]\nmigration = policy' silt_make_volume "$EXT/a" 2 4K 2M auto
SILT_VOLUME_OPTS=$'[placement]\nmigration = churn\nepoch = 200ms\nrate = 4G\nbusy_rate = 4G' \
	silt_make_volume "$EXT/b" 2 64K 8M auto
volumes_up || silt_abort "cannot create the volumes"
for v in 0 1; do silt_umount "$(mnt_of "$v")" || silt_abort "umount of volume ${names[v]}"; done
forget_daemons
take_down || silt_abort "clean teardown after setup"

say "powercut: $iterations power cuts, seed $seed"
ran=0
for ((i = 0; i < iterations; i++)); do
	one_iteration "$i" || break
	ran=$((i + 1))
done

say "final bring-up, verification and clean unmount"
# Migration off for the count (the policy moves chunks on "a" too): a chunk
# in flight holds a reservation on its destination, which the exact count
# of the accounting check would see (as crash.sh does). The moves the last
# cut interrupted are settled at the mount all the same.
if disk_up off && ext4_up && sed -i 's/^migration = .*/migration = off/' "$(conf_of 0)" "$(conf_of 1)" &&
	volumes_up; then
	verify_upto "$iterations"
	for v in 0 1; do
		silt_check_accounting "$(mnt_of "$v")" strays-ok
		silt_umount "$(mnt_of "$v")" || bad[final]="clean umount of volume ${names[v]}"
	done
	forget_daemons
	disk_run "umount ext4" umount "$EXT" || bad[final]="clean umount of the ext4"
	read_stats || bad[final]="disk counters"
	check_eq "$(disk_stat cached_blocks)" 0 "a clean unmount of ext4 leaves nothing in the disk's cache"
	check_cmd "ext4 clean after the clean unmount (e2fsck -fn)" e2fsck -fn "$dev"
	take_down || bad[final]="clean teardown"
else
	bad[$(( ran > 0 ? ran - 1 : 0 ))]="bring-up"
fi

for ((i = 0; i < iterations; i++)); do
	if [ "$i" -ge "$ran" ]; then
		fail "iteration $i: not run"
	elif [ -n "${bad[$i]:-}" ]; then
		fail "iteration $i: ${bad[$i]}"
	elif [ -n "${lost[$i]:-}" ]; then
		skip "iteration $i: known gap (POWERCUT_STRICT_RENAMES=1 fails on it): ${lost[$i]};" \
			"all else survived its power cut"
	else
		pass "iteration $i: everything acknowledged survived its power cut"
	fi
done
[ -n "${bad[final]:-}" ] && fail "final: ${bad[final]}"
echo "  chunk moves that a power cut interrupted, settled at the next mount: $settled"
check_ge "$acks" 1 "writes were acknowledged"
check_ge "$dropped" 1 "the power cuts threw away unflushed blocks"
silt_summary
