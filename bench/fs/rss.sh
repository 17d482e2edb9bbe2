#!/usr/bin/env bash
# rss.sh: measures the daemon's resident memory per chunk of open files.
# Target (from the issue): at most 16 bytes of resident memory per chunk of
# open files beyond a fixed base, measured with a 16 GiB image fully written
# at 64 KiB chunks (262,144 chunks).
#
# A fresh one-tier volume (chunk_size 64K) gets a 1 GiB and a 16 GiB file,
# both fully written (fio, O_DIRECT, 4 MiB blocks); then it is remounted so
# that the daemon starts cold, and VmRSS of the daemon is read
#   base   with no file open,
#   small  with the 1 GiB file open (16,384 chunks),
#   big    with the 16 GiB file open (262,144 chunks; the 1 GiB one closed).
# A file is held open by a shell descriptor, and one byte of its first and
# of its last chunk is read through the mount. The per-chunk slope
# (big - small) / (262,144 - 16,384) separates the per-chunk cost from the
# fixed base; (big - base) / 262,144 is printed too.
# Needs 40 GiB free under BENCH_DIR (skips with a message otherwise).
#
# Env: SILTFS (default build/siltfs), BENCH_DIR (default
# /var/tmp/siltfs-rss), RSS_BIG (default 16G), RSS_SMALL (default 1G).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
SILTFS=${SILTFS:-$(cd "$here/../.." && pwd)/build/siltfs}
dir=${BENCH_DIR:-/var/tmp/siltfs-rss}
big=${RSS_BIG:-16G}
small=${RSS_SMALL:-1G}
chunk=65536
pid=

die() { echo "rss.sh: $*" >&2; exit 1; }

cleanup() {
	exec 8<&- 9<&- 2>/dev/null || true
	mountpoint -q "$dir/mnt" 2>/dev/null && { umount "$dir/mnt" 2>/dev/null || fusermount3 -uz "$dir/mnt"; }
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	[ -n "${BENCH_KEEP:-}" ] || rm -rf --one-file-system "$dir"
}

bytes() { numfmt --from=iec "$1"; }

# mount_volume: start the daemon in the foreground (background job), wait.
mount_volume() {
	local i
	"$SILTFS" "$dir/vol.conf" "$dir/mnt" -f >>"$dir/daemon.log" 2>&1 &
	pid=$!
	for ((i = 0; i < 200; i++)); do
		grep -qs " $dir/mnt fuse" /proc/self/mounts && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$dir/daemon.log" >&2
	die "siltfs did not mount"
}

umount_volume() {
	local i
	umount "$dir/mnt" || die "umount failed"
	for ((i = 0; i < 600; i++)); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" || true; pid=; return 0; }
		sleep 0.1
	done
	die "daemon did not exit after umount"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }

# touch_ends FILE: read one byte of the first and of the last chunk.
touch_ends() {
	local size
	size=$(stat -c %s "$1")
	dd if="$1" of=/dev/null bs=1 count=1 status=none
	dd if="$1" of=/dev/null bs=1 count=1 skip=$((size - 1)) iflag=skip_bytes status=none
}

fill() {
	echo "rss.sh: writing $2 to $1" >&2
	fio --name=fill --filename="$1" --size="$2" --rw=write --bs=4M --direct=1 \
		--ioengine=io_uring --iodepth=8 --end_fsync=1 --output=/dev/null ||
		die "writing $1 failed"
}

measure() {
	local settle=2
	sleep $settle
	rss_kib
}

main() {
	[ "$(id -u)" = 0 ] || die "needs root"
	[ -x "$SILTFS" ] || die "SILTFS ($SILTFS) is not built"
	[ -e "$dir" ] && die "$dir exists; remove it or set BENCH_DIR"
	mkdir -p "$dir/t0" "$dir/mnt"
	trap cleanup EXIT
	local avail need=$((40 << 30))
	avail=$(df --output=avail -B1 "$dir" | tail -n1)
	if [ "$avail" -lt "$need" ]; then
		echo "rss.sh: skipped: $((avail >> 30)) GiB free under $dir, needs 40 GiB"
		return 0
	fi
	printf '[volume]\nname = rss\nchunk_size = 64K\n\n[tier disk]\npath = %s\nclass = ssd\n' \
		"$dir/t0" > "$dir/vol.conf"
	mount_volume
	fill "$dir/mnt/small.img" "$small"
	fill "$dir/mnt/big.img" "$big"
	umount_volume
	mount_volume
	local base rs rb nsmall nbig
	nsmall=$(( $(bytes "$small") / chunk ))
	nbig=$(( $(bytes "$big") / chunk ))
	base=$(measure)
	exec 9<"$dir/mnt/small.img"
	touch_ends "$dir/mnt/small.img"
	rs=$(measure)
	exec 9<&-
	exec 8<"$dir/mnt/big.img"
	touch_ends "$dir/mnt/big.img"
	rb=$(measure)
	exec 8<&-
	local slope total verdict
	slope=$(awk -v b="$rb" -v s="$rs" -v nb="$nbig" -v ns="$nsmall" 'BEGIN { printf "%.2f", (b - s) * 1024 / (nb - ns) }')
	total=$(awk -v b="$rb" -v a="$base" -v nb="$nbig" 'BEGIN { printf "%.2f", (b - a) * 1024 / nb }')
	verdict=$(awk -v s="$slope" 'BEGIN { print (s <= 16 ? "ok" : "MISSED") }')
	echo "daemon VmRSS, no file open:              $base KiB"
	echo "daemon VmRSS, $small file open ($nsmall chunks):   $rs KiB"
	echo "daemon VmRSS, $big file open ($nbig chunks): $rb KiB"
	echo "bytes per chunk, slope between the two files: $slope"
	echo "bytes per chunk, ($big open - base) / $nbig: $total"
	echo "$verdict  per-chunk slope $slope B (target <= 16 B per chunk beyond a fixed base)"
	umount_volume
}

main "$@"
