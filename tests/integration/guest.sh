#!/usr/bin/env bash
# guest: a real guest on siltfs.  qemu-system-x86_64 (TCG) boots Debian's
# cloud kernel (fetched by scripts/guest-kernel.sh) with a busybox
# initramfs whose /init runs silt-guestio (guest/guestio.c) on its virtio
# disk: O_DIRECT writes of checkable 4 KiB patterns at odd offsets and
# sizes, fdatasync, read back and verified in the guest, power off.  The
# disk is a raw and a qcow2 image on the mount, cache=none, with aio=io_uring
# and aio=native, on a volume whose first tier (4 MiB) is too small for the
# 17 MiB the guest writes, so every image spans both tiers.  Afterwards the
# host checks every pattern again through the mount (qcow2 through
# qemu-img convert) and runs qemu-img check; a corrupted byte must make the
# check fail (so the check can fail).
# Then the guest rewrites its disk generation after generation, reporting
# "SILTG flushed G" on its serial console after each fdatasync, while the
# daemon is killed with kill -9 and mounted again under the running qemu:
# qemu gets ENOTCONN (the guest an I/O error) and the guest powers off; every
# block must then hold the last generation the guest reported flushed (or
# the one after it, in flight at the kill), and qemu-img check must find no
# corruption.
# Every qemu runs under timeout, and inside silt_bounded (which aborts the
# FUSE connection if a guest hangs on the mount); the script under the
# lib.sh watchdog.  Needs qemu-system-x86, busybox-static and the kernel
# cache (scripts/deps.sh installs all three).
#
# Env: SILT_GUEST_CACHE (kernel cache, default /var/cache/siltfs/guest),
# SILT_GUESTIO (the static silt-guestio), GUEST_MIB (disk size, default 32).
: "${SILT_DEADLINE:=170}"
export SILT_DEADLINE
. "$(dirname "$0")/lib.sh"
set +e

: "${SILT_GUESTIO:=$BUILDDIR/tests/integration/silt-guestio}"
cache=${SILT_GUEST_CACHE:-/var/cache/siltfs/guest}
mib=${GUEST_MIB:-32}
V="$SILT_TMP/v"; M="$SILT_TMP/m"; W="$SILT_TMP/w"
mkdir -p "$W"

say "guest kernel and initramfs"
for need in qemu-system-x86_64 busybox; do
	command -v "$need" >/dev/null || silt_abort "$need is missing: run scripts/deps.sh"
done
[ -s "$cache/vmlinuz" ] && [ -s "$cache/modules/order" ] ||
	silt_abort "no guest kernel in $cache: run scripts/deps.sh (or scripts/guest-kernel.sh)"
[ -x "$SILT_GUESTIO" ] || silt_abort "SILT_GUESTIO ($SILT_GUESTIO) is not built"
check_cmd "initramfs built (busybox, /init, silt-guestio, $(wc -l < "$cache/modules/order") modules of $(cat "$cache/package" 2>/dev/null))" \
	"$SILT_LIB_DIR/guest/mkinitramfs.sh" "$W/initrd.gz" "$SILT_GUESTIO" "$cache/modules"

silt_make_volume "$V" 2 64K 4M
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"

# qemu_args IMG FMT AIO MODE GENS SERIAL: set QARGS to the qemu command line.
qemu_args() {
	QARGS=(qemu-system-x86_64 -machine pc -accel tcg -m 256 -smp 1
		-nodefaults -no-user-config -display none -no-reboot
		-kernel "$cache/vmlinuz" -initrd "$W/initrd.gz"
		-append "console=ttyS0 quiet panic=-1 silt.mode=$4 silt.mib=$mib silt.gens=$5"
		-serial "file:$6"
		-drive "file=$1,format=$2,if=none,id=d0,cache=none,aio=$3,werror=report,rerror=report"
		-device virtio-blk-pci,drive=d0)
}

# bounded NAME OUT CMD...: run CMD (output into OUT) for 45 s at most: a
# guest boots and writes in 2-3 s, a host check takes 1 s.  If it hangs,
# silt_bounded prints the daemon's threads and aborts the FUSE connection;
# then the daemon is killed and the volume mounted again, so that the
# remaining steps still run.  Returns CMD's status (124: hung).
bounded() {
	local name=$1 out=$2 rc=0 p; shift 2
	silt_bounded 45 "$M" "$name" silt_to_file "$out" timeout -k 5 60 "$@" || rc=$?
	if [ $rc -eq 124 ]; then
		for p in $(silt_daemon_pids "$M"); do kill -9 "$p"; done
		fusermount3 -uz "$M" 2>/dev/null || umount -l "$M"
		silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount again after the hang: $(cat "$SILT_LAST_ERR")"
	fi
	return $rc
}

# serial_tail FILE: the guest's last lines, indented, for failure messages.
serial_tail() { tail -n 8 "$1" 2>/dev/null | sed 's/^/    | /'; }

# host_check IMG FMT LO HI NAME: the patterns of generations LO..HI through
# the mount (a qcow2 converted to raw first); sets CHECKED to the raw file.
host_check() {
	local img=$1 fmt=$2 lo=$3 hi=$4 name=$5 out rc
	CHECKED=$img
	if [ "$fmt" = qcow2 ]; then
		CHECKED="$W/$name.raw"
		rm -f "$CHECKED"
		out="$W/$name.convert"
		bounded "$name: qemu-img convert" "$out" qemu-img convert -T none -f qcow2 -O raw "$img" "$CHECKED"
		rc=$?
		check '[ $rc -eq 0 ]' "$name: qemu-img convert to raw (-T none, through the mount)"
		[ $rc -ne 0 ] && serial_tail "$out" && return 0
	fi
	out="$W/$name.check"
	bounded "$name: host check" "$out" "$SILT_GUESTIO" check "$CHECKED" "$mib" "$lo" "$hi"
	rc=$?
	check '[ $rc -eq 0 ]' "$name: host finds every pattern of generation $lo..$hi and zeros between: $(tail -n1 "$out")"
	[ $rc -ne 0 ] && head -n 6 "$out" | sed 's/^/    | /'
	return 0
}

# corrupt_check LO HI NAME: flip one byte of CHECKED (the image host_check
# read): the same check must now fail, or it could not fail at all.
corrupt_check() {
	local lo=$1 hi=$2
	"$SILT_GUESTIO" corrupt "$CHECKED" "$mib" >/dev/null
	check '! timeout 60 "$SILT_GUESTIO" check "$CHECKED" "$mib" "$lo" "$hi" >/dev/null 2>&1' \
		"$3: the host check fails after one byte of $(basename "$CHECKED") is flipped"
}

# qcow2_check IMG NAME [LEAKS_OK]: qemu-img check is clean (or finds only
# leaked clusters, exit 3, when LEAKS_OK).
qcow2_check() {
	local out="$W/$2.qcheck" rc=0
	bounded "$2: qemu-img check" "$out" qemu-img check "$1" || rc=$?
	if [ $rc -eq 0 ] || { [ -n "${3:-}" ] && [ $rc -eq 3 ]; }; then
		pass "$2: qemu-img check (exit $rc: $(grep -m1 -E 'No errors|leaked' "$out"))"
	else
		fail "$2: qemu-img check exited $rc: $(head -n 5 "$out")"
	fi
}

# spans_tiers IMG NAME: the image has chunks on both tiers.
spans_tiers() {
	local j n0 n1 cpid i
	# (siltctl where was seen to hang for its whole 30 s timeout right
	# after a guest: show what the daemon does then)
	silt_ctl where --json "$1" >"$W/where.out" 2>&1 &
	cpid=$!
	for ((i = 0; i < 100 && $(kill -0 $cpid 2>/dev/null && echo 1 || echo 0); i++)); do sleep 0.1; done
	if kill -0 $cpid 2>/dev/null; then
		echo "    siltctl where still running after 10 s; the daemon's threads:"
		silt_daemon_stacks "$M"
	fi
	wait $cpid
	j=$(cat "$W/where.out")
	n0=$(json_get "$j" '.tiers[] | select(.name == "t0") | .chunks' 2>/dev/null)
	n1=$(json_get "$j" '.tiers[] | select(.name == "t1") | .chunks' 2>/dev/null)
	check '[ "${n0:-0}" -gt 0 ] && [ "${n1:-0}" -gt 0 ]' "$2: the image spans both tiers (t0 $n0 chunks, t1 $n1)"
	[ -z "$n0" ] && echo "    siltctl where: $j"
	return 0
}

# free_first_tier: wait until the first tier holds no chunk, so that the
# next image starts there and spills over.
free_first_tier() {
	silt_wait_for 10 '[ "$(json_get "$(silt_ctl -m "$M" status --json)" ".tiers[0].chunks")" = 0 ]'
}

# ---------------------------------------------------------------------------
# The guest writes, reads back, and the host checks: raw/qcow2 x io_uring/native

for fmt in raw qcow2; do
	for aio in io_uring native; do
		name="$fmt-$aio"
		say "guest on a $fmt image, cache=none, aio=$aio"
		img="$M/$name.img"; log="$W/$name.serial"
		check_cmd "$name: qemu-img create -f $fmt ${mib}M" qemu-img create -q -f "$fmt" "$img" "${mib}M"
		qemu_args "$img" "$fmt" "$aio" write 1 "$log"
		t0=$SECONDS
		bounded "$name: guest" "$W/$name.qemu" "${QARGS[@]}"
		rc=$?
		check '[ $rc -eq 0 ]' "$name: qemu exited 0 after $((SECONDS - t0)) s"
		[ $rc -ne 0 ] && serial_tail "$W/$name.qemu"
		if grep -q '^SILTG verify ok' "$log" && grep -q '^SILTG exit 0' "$log"; then
			pass "$name: the guest wrote, flushed and verified: $(grep -m1 '^SILTG verify' "$log" | tr -d '\r')"
		else
			fail "$name: the guest did not verify its disk:"; serial_tail "$log"
		fi
		# after a hang the image is whatever the aborted guest left
		if [ $rc -eq 124 ]; then rm -f "$img"; free_first_tier; continue; fi
		host_check "$img" "$fmt" 1 1 "$name"
		[ "$fmt" = qcow2 ] && qcow2_check "$img" "$name"
		spans_tiers "$img" "$name"
		[ "$name" = raw-io_uring ] || [ "$name" = qcow2-native ] && corrupt_check 1 1 "$name"
		rm -f "$img" "$W/$name.raw"
		free_first_tier || fail "$name: the first tier still holds chunks after the image was removed"
	done
done

# ---------------------------------------------------------------------------
# kill -9 of the daemon under a running guest

say "guest rewriting its qcow2 disk while the daemon is killed and mounted again"
name=crash; img="$M/crash.qcow2"; log="$W/crash.serial"
check_cmd "crash: qemu-img create -f qcow2 ${mib}M" qemu-img create -q -f qcow2 "$img" "${mib}M"
qemu_args "$img" qcow2 io_uring loop 1000 "$log"
timeout -k 5 120 "${QARGS[@]}" >"$W/crash.qemu" 2>&1 &
qpid=$!
# flushed: the last generation the guest reported flushed (0 if none)
flushed() { grep -a '^SILTG flushed ' "$log" 2>/dev/null | awk '{ g = $3 } END { print g + 0 }'; }
silt_wait_for 40 '[ "$(flushed)" -ge 2 ] || ! kill -0 $qpid 2>/dev/null'
at_kill=$(flushed)
if [ "${at_kill:-0}" -ge 2 ] && kill -0 $qpid 2>/dev/null; then
	pass "crash: the guest flushed generation $at_kill"
	# land the kill somewhere inside the next generation
	sleep "0.$((RANDOM % 4))"
	dpid=$(silt_daemon_pids "$M" | head -n1)
	kill -9 "$dpid"
	silt_wait_pids_gone 10 "$dpid" || fail "crash: daemon $dpid still there after kill -9"
	echo "    killed daemon $dpid after the guest reported generation $(flushed) flushed"
	fusermount3 -uz "$M" 2>/dev/null || umount -l "$M"
	silt_mount "$V/vol.conf" "$M" || silt_abort "crash: cannot mount again after kill -9: $(cat "$SILT_LAST_ERR")"
	pass "crash: mounted again under the running guest"
else
	fail "crash: the guest did not report two flushed generations in 40 s:"; serial_tail "$log"
	silt_daemon_stacks "$M"
	silt_fuse_abort "$M"
	kill -9 $qpid 2>/dev/null
	silt_summary	# nothing to check: the lib.sh cleanup unmounts
fi
# The guest sees an I/O error from the dead connection and powers off.
silt_wait_for 30 '! kill -0 $qpid 2>/dev/null'
if kill -0 $qpid 2>/dev/null; then
	fail "crash: qemu still running 30 s after the kill"; serial_tail "$log"
	kill -9 $qpid 2>/dev/null
fi
wait $qpid 2>/dev/null
F=$(flushed)
check 'grep -aq "^SILTG ioerror" "$log"' "crash: the guest saw the I/O error: $(grep -a -m1 '^SILTG ioerror' "$log" | tr -d '\r')"
check_ge "${F:-0}" 2 "crash: generations the guest reported flushed before the kill"
if [ "${F:-0}" -ge 1 ]; then
	qcow2_check "$img" crash leaks-ok
	host_check "$img" qcow2 "$F" $((F + 1)) crash
	corrupt_check "$F" $((F + 1)) crash
fi
check_cmd "umount" silt_umount "$M"

silt_summary
