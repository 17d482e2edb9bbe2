#!/usr/bin/env bash
# powercut: proves that what fsync/fdatasync acknowledged survives a power
# cut, where the kill -9 of crash.sh does not reach: there the kernel keeps
# every unsynced write, so that test passes even with vol_fsync a no-op.
#
# The stack (pcdisk.sh): pcdisk (pcdisk.c: a FUSE "disk" whose writes stay
# in a volatile cache until a flush) serves $SILT_TMP/disk/disk over the
# durable image $SILT_TMP/durable.img; a loop device over that file; ext4 on
# the loop device (mkfs and mount defaults, journal on); on that ext4 two siltfs
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
# all, or 10 with POWERCUT_LONG; the final one rechecks all), SILT_KEEP=1.
#
# Renames count like everything else (crashwriter verify exits 4 when
# only they are wrong; that fails here too): a rename acknowledged after
# fsync of its directory must survive (the daemon answers FSYNCDIR with a
# WAL sync; the kernel makes fsync(dir) a no-op for a filesystem that does
# not), and "current" must be readable after its old inode was freed (the
# daemon syncs a freed inode's deletion before it removes its tier files).

# lib.sh's watchdog must fire before meson's timeout (300 s)
if [ "${POWERCUT_LONG:-0}" = 1 ]; then : "${SILT_DEADLINE:=86400}"; else : "${SILT_DEADLINE:=270}"; fi
export SILT_DEADLINE
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pcdisk.sh"

: "${CRASHWRITER:=$BUILDDIR/tests/integration/stress/crashwriter}"
[ -x "$CRASHWRITER" ] || { echo "powercut: $CRASHWRITER is not built"; exit 1; }
iterations=${POWERCUT_ITERATIONS:-8}
img_size=1G
if [ "${POWERCUT_LONG:-0}" = 1 ]; then
	iterations=${POWERCUT_ITERATIONS:-60}
	: "${POWERCUT_REVERIFY:=10}"
	img_size=8G
fi
seed=${POWERCUT_SEED:-1}
reverify=${POWERCUT_REVERIFY:-$iterations}
RANDOM=$seed

names=(a b)
# "a" runs with the kernel's writeback cache (buffered writes wait in the
# page cache for fsync), "b" without
mopts=(cache=writeback "")
chunks=(4096 65536)
dpids=()                       # siltfs daemons, per volume
wpids=()                       # crashwriters, per volume
derr=()                        # the daemons' stderr (their log), per volume
declare -A bad=()              # iteration -> why it failed
acks=0 dropped=0 settled=0

mnt_of() { echo "$SILT_TMP/mnt-$1"; }
conf_of() { echo "$EXT/${names[$1]}/vol.conf"; }

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
# their mounts, ext4, the loop device and the disk.
take_down() {
	local v
	for v in 0 1; do
		while silt_is_mounted "$(mnt_of "$v")"; do
			fusermount3 -uz "$(mnt_of "$v")" 2>/dev/null || umount -l "$(mnt_of "$v")" || break
		done
	done
	disk_teardown
}

# verify_upto LAST [FIRST]: check iterations FIRST..LAST-1 on both volumes.
# Iterations that failed verification are not checked again.
verify_upto() {
	local last=$1 first=${2:-0} j v rc out="$SILT_TMP/verify.out"
	for ((j = first; j < last; j++)); do
		for v in 0 1; do
			[ -e "$SILT_TMP/log.$j.$v" ] && [ "${bad[$j]:-}" != verification ] || continue
			rc=0
			silt_bounded 120 "$(mnt_of "$v")" "verify iteration $j on volume ${names[v]}" \
				"$CRASHWRITER" verify "$(mnt_of "$v")/it$j" "$SILT_TMP/log.$j.$v" \
				"$SILT_TMP/digest.$j.$v" > "$out" 2>&1 || rc=$?
			if [ $rc -ne 0 ]; then
				echo "  iteration $j (volume ${names[v]}): verification failed:"
				head -n 10 "$out" | sed 's/^/    /'
				bad[$j]="verification"
			fi
		done
	done
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
	# now was earned); disk_cut (pcdisk.sh) makes sure it has something to
	# drop.
	# (stderr off: bash reports every job killed by a signal; a hang of the
	# cut is still counted and printed by fail)
	{
		kill -9 "${dpids[@]}" "${wpids[@]}" || true
		disk_cut "$cmd" || bad[$i]="power cut"
		for pid in "${dpids[@]}" "${wpids[@]}"; do wait "$pid" || true; done
	} 2>/dev/null
	forget_daemons
	read_stats || bad[$i]="disk counters"
	take_down || bad[$i]="teardown after the cut"
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
disk_create "$img_size"
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

say "files removed just before a power cut: gone, or whole, never unreadable"
# An fsync of a file of ext4's own commits ext4's journal, and with it the
# removal of the freed inodes' tier files, but not the store's WAL, whose
# appends land in space RocksDB allocated before: the daemon must have made
# the deletion durable before it removed the files.
doomed=0
if [ "$ran" = "$iterations" ] && bring_up off; then
	for v in 0 1; do
		silt_random "$(mnt_of "$v")/doomed" $((1 << 20))
		sync "$(mnt_of "$v")/doomed"
		rm "$(mnt_of "$v")/doomed"
	done
	sleep 0.5 # the kernel's FORGET, after which the daemon frees the inodes
	doomed=1
	{
		dd if=/dev/urandom of="$EXT/canary" bs=64K count=1 conv=notrunc,fsync status=none
		kill -9 "${dpids[@]}"
		disk_cut cut || bad[final]="power cut"
		for pid in "${dpids[@]}"; do wait "$pid" || true; done
	} 2>/dev/null
	forget_daemons
	take_down || bad[final]="teardown after the cut"
fi

say "final bring-up, verification and clean unmount"
# Migration off for the count (the policy moves chunks on "a" too): a chunk
# in flight holds a reservation on its destination, which the exact count
# of the accounting check would see (as crash.sh does). The moves the last
# cut interrupted are settled at the mount all the same.
if disk_up off && ext4_up && sed -i 's/^migration = .*/migration = off/' "$(conf_of 0)" "$(conf_of 1)" &&
	volumes_up; then
	verify_upto "$iterations"
	for v in 0 1; do
		[ "$doomed" = 1 ] && check "! [ -e '$(mnt_of "$v")/doomed' ] || cat '$(mnt_of "$v")/doomed' > /dev/null" \
			"volume ${names[v]}: a file removed before the cut is gone or readable"
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
	else
		pass "iteration $i: everything acknowledged survived its power cut"
	fi
done
[ -n "${bad[final]:-}" ] && fail "final: ${bad[final]}"
echo "  chunk moves that a power cut interrupted, settled at the next mount: $settled"
check_ge "$acks" 1 "writes were acknowledged"
check_ge "$dropped" 1 "the power cuts threw away unflushed blocks"
silt_summary
