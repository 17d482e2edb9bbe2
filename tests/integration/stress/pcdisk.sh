# shellcheck shell=bash
# The power-cut harness shared by powercut.sh and sync_powercut.sh, sourced
# after lib.sh: a machine whose disk can lose power.
#
# pcdisk (pcdisk.c: a FUSE "disk" whose writes stay in a volatile cache
# until a flush) serves $DISK/disk over the durable image $IMG; a loop
# device ($dev) over it; ext4 on the loop device (mkfs and mount defaults,
# journal on) mounted on $EXT, on which the tests put their volumes.
#   disk_create SIZE    a fresh image, ext4 made and mounted on it
#   disk_up DIO         the power is back: pcdisk over the image, the loop
#                       device with direct I/O DIO (on/off)
#   ext4_up             boot-time e2fsck (journal replay, nothing more) and
#                       the mount; sets fsck_rc
#   disk_cut CMD        the power cut: CMD written to pcdisk's ctl ("cut" or
#                       "cut PERCENT SEED", see pcdisk.c) after an unflushed
#                       write into ext4, so that there is always something
#                       to lose; the caller kills its daemons first
#   disk_teardown       after the daemons above are gone and their mounts
#                       unmounted: ext4, the loop device and the disk
#   read_stats / disk_stat NAME   the disk's counters
# Env: PCDISK.

: "${PCDISK:=$BUILDDIR/tests/integration/stress/pcdisk}"
[ -x "$PCDISK" ] || { echo "pcdisk.sh: $PCDISK is not built"; exit 1; }

IMG="$SILT_TMP/durable.img"
DISK="$SILT_TMP/disk"          # pcdisk's mount point; the image is $DISK/disk
EXT="$SILT_TMP/ext4"           # the ext4 on the loop device
disk_pid=""                    # the running pcdisk
dev=""                         # the loop device over it
fsck_rc=0 nfsck=0

fsck_routine='^e2fsck [0-9.]+ |^Pass [1-5][a-z]?: |^/dev/loop[0-9]+: (recovering journal|clearing orphaned inode|\*+ FILE SYSTEM WAS MODIFIED \*+|[0-9]+/[0-9]+ files )|^Free (blocks|inodes) count wrong|^Fix\? yes$|^(Clearing|Truncating) orphaned inode|^Setting free (blocks|inodes) count|^Inode [0-9]+ extent tree \(at level [0-9]+\) could be (shorter|narrower)\.  Optimize\? yes$|^Pass 1E: Optimizing extent trees$|^$'

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

# disk_create SIZE: a fresh durable image of SIZE, ext4 on it, mounted.
disk_create() {
	truncate -s "$1" "$IMG"
	disk_up off || silt_abort "cannot start the disk"
	disk_run "mkfs.ext4" mkfs.ext4 -q -F "$dev" || silt_abort "mkfs.ext4 failed"
	mkdir -p "$EXT"
	silt_track_mount "$EXT"
	disk_run "mount ext4" mount -t ext4 "$dev" "$EXT" || silt_abort "cannot mount the ext4"
	head -c 64K /dev/zero > "$EXT/canary"
}

# disk_cut CMD: between the kill of the processes above and the cut, a
# 64 KiB direct write into ext4 (not siltfs), never flushed, so that the
# cut has something to drop even when siltfs had just flushed it all: the
# check that the disk really loses its cache cannot pass vacuously.
disk_cut() {
	dd if=/dev/urandom of="$EXT/canary" bs=64K count=1 oflag=direct conv=notrunc status=none ||
		{ echo "  the canary write before the cut failed"; return 1; }
	disk_run "power cut" sh -c 'echo "$1" > "$2"' _ "$1" "$DISK/ctl"
}

# disk_teardown: ext4, the loop device and the disk, once nothing above
# them is mounted (a dead FUSE mount above is lazily unmounted first by the
# caller).
disk_teardown() {
	local rc=0
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
