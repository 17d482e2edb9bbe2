#!/usr/bin/env bash
# queue_depth: O_DIRECT I/O at the queue depths and request sizes VMs use
# never hangs and never loses or tears a write (issue 7 point 1: qemu-img
# bench -w -d 32 -s 128K hung the daemon for good).
#
# On a raw image spanning a small fast tier and a slow one, qemu-img bench
# writes and reads at depths 1, 16, 32, 64 and 128 with 4K, 64K, 128K,
# 512K and 1M requests, chunk-aligned and not (a 4 KiB-aligned stride that
# straddles chunks, and a 512-byte one that needs read-modify-write), each
# write pass twice (allocation, then overwrite of mapped chunks), each write
# with its own pattern. The same commands build a reference image on a
# plain file; the two must be identical at the end. Then fio with mixed
# block sizes at iodepth 128 and 4 jobs, verifying what it wrote. Every
# command runs under silt_bounded: a hang aborts the FUSE connection and
# fails loudly instead of stalling CI.
#
# QD_LONG=SECONDS repeats the whole load (new patterns each round) for that
# long: the stress mode.
. "$(dirname "$0")/lib.sh"
set +e

V="$SILT_TMP/v"; M="$SILT_TMP/m"; R="$SILT_TMP/ref"
MiB=$((1 << 20))
IMG_MB=768
BOUND=90
SIZES="4K 64K 128K 512K 1M" DEPTHS="1 16 32 64 128"
# Under AddressSanitizer (about twice as slow) a third of the matrix: its
# corners and the depth that hung; the gcc build runs all of it
[ -n "${SILT_SANITIZED:-}" ] && SIZES="4K 128K 1M" DEPTHS="1 32 128"
silt_make_volume "$V" 2 64K 64M
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
mkdir -p "$R"
qemu-img create -q -f raw "$M/img" ${IMG_MB}M
qemu-img create -q -f raw "$R/img" ${IMG_MB}M

pattern=0
# bench IMAGEDIR ARGS...: qemu-img bench with cache=none on DIR/img.
# Its output goes to $SILT_TMP/bench.out.
bench() {
	local dir=$1; shift
	qemu-img bench -q -f raw -t none -i io_uring "$@" "$dir/img" >"$SILT_TMP/bench.out" 2>&1
}

# run_pair DESC ARGS...: the same bench on the reference and on siltfs.
run_pair() {
	local desc=$1; shift
	bench "$R" "$@" || { fail "$desc: on the reference file: $(tail -n 3 "$SILT_TMP/bench.out")"; return 0; }
	local rc=0
	silt_bounded $BOUND "$M" "$desc" bench "$M" "$@" || rc=$?
	case $rc in
	0) ;;
	124) silt_abort "$desc hung (above): the mount is gone" ;;
	*) fail "$desc: $(tail -n 3 "$SILT_TMP/bench.out")" ;;
	esac
}

# One pass over sizes x alignments x depths. Each combination gets its own
# region of the image so that every pass is also an allocation pass.
matrix() {
	local sz bytes align depth off step count region=0 regions=0 ok=0 total=0
	for sz in $SIZES; do
		bytes=$(numfmt --from=iec "$sz")
		for align in chunk straddle sector; do
			for depth in $DEPTHS; do
				case $align in
				chunk) off=0; step=$bytes ;;
				straddle) off=4096; step=$((bytes + 4096)) ;;
				sector) off=3584; step=$((bytes + 512)) ;;
				esac
				# 8 MiB per run or two rounds of the queue, whichever
				# is more, but at most 2000 requests and 32 MiB
				count=$(( (8 * MiB) / bytes ))
				[ $count -lt $((2 * depth)) ] && count=$((2 * depth))
				[ $count -gt 2000 ] && count=2000
				[ $((count * bytes)) -gt $((32 * MiB)) ] && count=$(( (32 * MiB) / bytes ))
				regions=$(( (count * step + 8 * MiB - 1) / (8 * MiB) ))
				off=$((off + (region % (IMG_MB / 8 - regions)) * 8 * MiB))
				region=$((region + regions))
				local what="$sz $align depth $depth"
				for pass in 1 2; do
					pattern=$((pattern % 250 + 1))
					run_pair "write $what (pass $pass)" -w --pattern=$pattern \
						-c $count -d $depth -s "$sz" -S $step -o $off
				done
				silt_bounded $BOUND "$M" "read $what" bench "$M" -c $count -d $depth \
					-s "$sz" -S $step -o $off
				case $? in
				0) ;;
				124) silt_abort "read $what hung (above): the mount is gone" ;;
				*) fail "read $what: $(tail -n 3 "$SILT_TMP/bench.out")" ;;
				esac
				total=$((total + 3))
			done
		done
	done
	echo "    $total qemu-img bench runs"
}

compare_images() {
	if cmp -s "$R/img" "$M/img"; then
		pass "$1: the image on siltfs equals the reference image byte for byte"
	else
		fail "$1: the image differs from the reference: $(cmp "$R/img" "$M/img" 2>&1 | head -n 1)"
	fi
}

say "qemu-img bench: 5 depths x 5 sizes x 3 alignments, writes twice and reads"
matrix
compare_images "after the bench matrix"
j=$(silt_ctl -m "$M" where --json "$M/img")
check '[ "$(json_get "$j" ".tiers[1].chunks")" -gt 0 ]' "the image spans both tiers ($(json_get "$j" '[.tiers[].chunks] | join("+")') chunks)"

say "fio: mixed block sizes, iodepth 128, 4 jobs"
fio_run() {
	fio --output-format=terse --minimal --direct=1 --ioengine=io_uring --iodepth=128 \
		--numjobs=4 --group_reporting --filename="$M/img" --size=128M --offset_increment=128M \
		--bssplit=4k/30:64k/20:128k/20:512k/20:1m/10 --random_generator=tausworthe64 "$@"
}
out=$SILT_TMP/fio.out
if silt_bounded $BOUND "$M" "fio randwrite + verify, mixed sizes, qd128 x 4" \
	fio_run --name=wv --rw=randwrite --verify=crc32c --do_verify=1 --verify_state_save=0 --randseed=7 >"$out" 2>&1; then
	pass "fio randwrite then verify: no error ($(cut -d';' -f1-3 "$out" | head -n1))"
else
	[ $? -eq 124 ] && silt_abort "fio hung (above)"
	fail "fio randwrite + verify: $(tail -n 5 "$out")"
fi
if silt_bounded $BOUND "$M" "fio randrw, mixed sizes, qd128 x 4" \
	fio_run --name=rw --rw=randrw --io_size=64M --randseed=8 >"$out" 2>&1; then
	pass "fio randrw at qd128 x 4 completes"
else
	[ $? -eq 124 ] && silt_abort "fio hung (above)"
	fail "fio randrw: $(tail -n 5 "$out")"
fi

if [ -n "${QD_LONG:-}" ]; then
	say "stress: the matrix again and again for ${QD_LONG}s"
	end=$((SECONDS + QD_LONG)); rounds=0
	while [ $SECONDS -lt $end ] && [ "$SILT_FAILED" -eq 0 ]; do
		matrix >/dev/null
		fio_run --name=rw --rw=randrw --io_size=64M --randseed=$rounds >/dev/null 2>&1
		rounds=$((rounds + 1))
	done
	echo "    $rounds rounds"
	# fio wrote into the image behind the reference's back: rebuild both
	cp --sparse=always "$M/img" "$R/img"
	matrix >/dev/null
	compare_images "after $rounds stress rounds"
fi

say "SIGTERM after the load: the daemon stops, the volume mounts again"
sum=$(silt_sum "$M/img")
pid=$(silt_daemon_pids "$M" | head -n 1)
kill -TERM "$pid"
check 'silt_wait_pids_gone 30 "$pid"' "the daemon exits on SIGTERM within 30 s"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount again: $(cat "$SILT_LAST_ERR")"
check_eq "$(silt_sum "$M/img")" "$sum" "the image is unchanged after the remount"
check_cmd "umount" silt_umount "$M"

silt_summary
