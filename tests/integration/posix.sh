#!/usr/bin/env bash
# posix: the file-system semantics VM hosts rely on, through a real mount:
# files, directories, symlinks, hard links, rename (incl. renameat2
# NOREPLACE/EXCHANGE), unlink of open files (and the tier files going away),
# attributes, xattrs, statfs, truncate, fallocate (incl. punch hole),
# SEEK_DATA/SEEK_HOLE, O_DIRECT, fsync, shared writable mmap, a 4 TiB sparse
# file (tier files split in 1 TiB segments), allow_other with
# default_permissions, persistence of all of it across a remount, and fsync'd
# data surviving a kill -9 of the daemon; and that the chunk accounting
# (siltctl status vs. the files' chunks, no orphaned tier files) adds up.
# The sections run in order (list at the end); SILT_SKIP="fallocate ..."
# skips some while debugging.
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

V="$SILT_TMP/v"; M="$SILT_TMP/m"; W="$SILT_TMP/w"
mkdir -p "$W"
CS=65536
silt_make_volume "$V" 3 64K 64M 64M 64M
silt_mount "$V/vol.conf" "$M" allow_other || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"

# chunks FILE: fsync FILE, then print how many of its chunks are mapped.
chunks() { sync "$1"; silt_where_total_chunks "$1"; }
errno_of() { "$@" 2>&1 >/dev/null | tail -n1; }

# ---------------------------------------------------------------------------
sec_files() {
	say "regular files"
	silt_random "$W/r1" $((1048576 + 100))
	cp "$W/r1" "$M/r1"
	check 'cmp -s "$W/r1" "$M/r1"' "1 MiB + 100 B file reads back"
	check_eq "$(stat -c %s "$M/r1")" $((1048576 + 100)) "size"
	check_eq "$(stat -c %F "$M/r1")" "regular file" "type"
	printf abc >> "$M/r1"; printf abc >> "$W/r1"
	check 'cmp -s "$W/r1" "$M/r1"' "append (O_APPEND)"
	silt_random "$W/patch" 5000
	dd if="$W/patch" of="$M/r1" bs=5000 seek=70000 oflag=seek_bytes conv=notrunc status=none
	dd if="$W/patch" of="$W/r1" bs=5000 seek=70000 oflag=seek_bytes conv=notrunc status=none
	silt_drop_caches
	check 'cmp -s "$W/r1" "$M/r1"' "overwrite across a chunk boundary (after drop_caches)"
	check '! (set -C; echo x > "$M/r1") 2>/dev/null' "O_EXCL create of an existing file fails"
	: > "$M/empty"
	check_eq "$(stat -c %s "$M/empty")" 0 "empty file"
	check_eq "$(chunks "$M/empty")" 0 "empty file has no chunks"
	silt_random "$W/two" $((2 << 20))
	cp "$W/two" "$M/two"; sync "$M/two"
	check_ge "$(du -B1 "$M/two" | cut -f1)" $((2 << 20)) "du of a 2 MiB file counts its blocks (st_blocks)"
	check_eq "$(chunks "$M/two")" 32 "2 MiB file has 32 chunks of 64K"
	silt_random "$W/big" $((48 << 20))
	check_cmd "48 MiB written with 4 MiB writes" dd if="$W/big" of="$M/big48" bs=4M conv=fsync status=none
	silt_drop_caches
	check 'cmp -s <(dd if="$M/big48" bs=4M status=none) "$W/big"' "... and read back with 4 MiB reads"
	rm -f "$M/big48" "$W/big"
	long=$(printf 'n%.0s' {1..255})
	check 'echo x > "$M/$long"' "255-byte file name"
	check '! echo x 2>/dev/null > "$M/${long}x"' "256-byte file name refused"
	check 'echo x > "$M/sp ace é"' "name with space and UTF-8"
	check '[ "$(cat "$M/sp ace é")" == x ]' "... reads back"

}

# ---------------------------------------------------------------------------
sec_dirs() {
	say "directories"
	mkdir -p "$M/d/sub/deeper"
	echo f > "$M/d/sub/f"
	check_eq "$(stat -c %F "$M/d/sub")" directory "mkdir -p makes directories"
	out=$(rmdir "$M/d/sub" 2>&1 || true)
	check '[[ "$out" == *"Directory not empty"* ]]' "rmdir of a non-empty directory: ENOTEMPTY ($out)"
	rm "$M/d/sub/f"; rmdir "$M/d/sub/deeper"
	check 'rmdir "$M/d/sub"' "rmdir of an empty directory"
	check '[ ! -e "$M/d/sub" ]' "... it is gone"
	mkdir "$M/many"
	for i in $(seq 1 300); do : > "$M/many/file-$i"; done
	check_eq "$(ls "$M/many" | wc -l)" 300 "readdir lists 300 entries"
	check_eq "$(ls -f "$M/many" | grep -c '^\.\.\?$')" 2 "readdir has . and .."
	rm -r "$M/many"
	check '[ ! -e "$M/many" ]' "rm -r of 300 files"
	check '! rmdir "$M/r1" 2>/dev/null' "rmdir of a file fails"
	check '! mkdir "$M/r1" 2>/dev/null' "mkdir over a file fails"

}

# ---------------------------------------------------------------------------
sec_symlinks() {
	say "symlinks"
	ln -s r1 "$M/link"
	ln -s /nonexistent/target "$M/dangling"
	check_eq "$(readlink "$M/link")" r1 "readlink"
	check_eq "$(stat -c %F "$M/link")" "symbolic link" "lstat type"
	check 'cmp -s "$M/link" "$W/r1"' "reading through the symlink"
	check_eq "$(readlink "$M/dangling")" /nonexistent/target "dangling symlink readlink"
	check '! cat "$M/dangling" 2>/dev/null' "dangling symlink cannot be opened"
	mkdir "$M/ld"; ln -s ../r1 "$M/ld/up"
	check 'cmp -s "$M/ld/up" "$W/r1"' "relative symlink from a subdirectory"

}

# ---------------------------------------------------------------------------
sec_hardlinks() {
	say "hard links"
	echo one > "$M/h1"
	ln "$M/h1" "$M/h2"
	check_eq "$(stat -c %h "$M/h1")" 2 "nlink 2 after ln"
	check_eq "$(stat -c %i "$M/h1")" "$(stat -c %i "$M/h2")" "same inode"
	echo two >> "$M/h2"
	check_eq "$(cat "$M/h1" | tr '\n' ' ')" "one two " "write through one name seen through the other"
	mkdir "$M/hd"; ln "$M/h1" "$M/hd/h3"
	check_eq "$(stat -c %h "$M/h2")" 3 "nlink 3 (link in a subdirectory)"
	rm "$M/h1"
	check_eq "$(stat -c %h "$M/h2")" 2 "nlink 2 after rm of one name"
	check_eq "$(cat "$M/hd/h3" | tr '\n' ' ')" "one two " "data still there"
	check '! ln "$M/hd" "$M/hd-link" 2>/dev/null' "hard link to a directory refused"

}

# ---------------------------------------------------------------------------
sec_rename() {
	say "rename"
	echo a > "$M/ra"; echo b > "$M/rb"
	mv "$M/ra" "$M/rc"
	check '[ ! -e "$M/ra" ] && [ "$(cat "$M/rc")" == a ]' "rename to a new name"
	mv "$M/rc" "$M/rb"
	check '[ ! -e "$M/rc" ] && [ "$(cat "$M/rb")" == a ]' "rename over an existing file replaces it"
	mkdir -p "$M/rd1/x" "$M/rd2"
	echo in > "$M/rd1/x/f"
	mv -T "$M/rd1" "$M/rd2"
	check '[ ! -e "$M/rd1" ] && [ "$(cat "$M/rd2/x/f")" == in ]' "rename of a directory over an empty directory"
	mkdir -p "$M/rd3/y"
	out=$(mv -T "$M/rd3" "$M/rd2" 2>&1 || true)
	check '[ -d "$M/rd3/y" ] && [[ "$out" == *"not empty"* || "$out" == *"exists"* ]]' "rename over a non-empty directory refused ($out)"
	mv "$M/rb" "$M/rd2/x/moved"
	check '[ "$(cat "$M/rd2/x/moved")" == a ] && [ ! -e "$M/rb" ]' "rename into another directory"
	check '! mv -T "$M/rd2" "$M/rd2/x/inside" 2>/dev/null' "rename of a directory into itself refused"
	check '! mv -T "$M/rd3" "$M/r1" 2>/dev/null' "rename of a directory over a file refused"
	mv "$M/rd2/x" "$M/xmoved"
	check_eq "$(cat "$M/xmoved/f")" in "directory moved up keeps its contents"

	say "renameat2"
	echo p > "$M/np"; echo q > "$M/nq"
	check_eq "$("$SILT_RENAMEAT2" noreplace "$M/np" "$M/nq" || true)" EEXIST "RENAME_NOREPLACE onto an existing name: EEXIST"
	check '[ "$(cat "$M/np")" == p ] && [ "$(cat "$M/nq")" == q ]' "... both files untouched"
	check '"$SILT_RENAMEAT2" noreplace "$M/np" "$M/nr"' "RENAME_NOREPLACE onto a free name works"
	check '[ ! -e "$M/np" ] && [ "$(cat "$M/nr")" == p ]' "... renamed"
	check '"$SILT_RENAMEAT2" exchange "$M/nr" "$M/nq"' "RENAME_EXCHANGE of two files"
	check '[ "$(cat "$M/nr")" == q ] && [ "$(cat "$M/nq")" == p ]' "... contents swapped"
	mkdir "$M/xd"; echo inside > "$M/xd/f"
	check '"$SILT_RENAMEAT2" exchange "$M/nq" "$M/xd"' "RENAME_EXCHANGE of a file and a directory"
	check '[ "$(cat "$M/nq/f")" == inside ] && [ "$(cat "$M/xd")" == p ]' "... swapped"
	check_eq "$("$SILT_RENAMEAT2" exchange "$M/nq" "$M/absent" || true)" ENOENT "RENAME_EXCHANGE with a missing target: ENOENT"

}

# ---------------------------------------------------------------------------
sec_unlink() {
	say "unlink of an open file"
	silt_random "$W/u" $((3 << 20))
	cp "$W/u" "$M/u"; sync "$M/u"
	ino=$(stat -c %i "$M/u")
	check_eq "$(json_get "$(silt_ctl where --json "$M/u")" .ino)" "$ino" "siltctl where ino = st_ino ($ino)"
	check '[ -n "$(silt_chunk_files "$V" "$ino")" ]' "tier file chunks/$ino exists before unlink"
	exec 3< "$M/u"
	rm "$M/u"
	check '[ ! -e "$M/u" ]' "name gone after unlink"
	check 'cmp -s <(cat <&3) "$W/u"' "data still readable through the open fd"
	exec 3<&-
	gone=0
	for i in $(seq 1 50); do
		[ -z "$(silt_chunk_files "$V" "$ino")" ] && { gone=1; break; }
		sleep 0.1
	done
	check '[ $gone = 1 ]' "after close the tier files of inode $ino are gone ($(silt_chunk_files "$V" "$ino" | tr '\n' ' '))"
	cp "$W/u" "$M/u2"; sync "$M/u2"; ino2=$(stat -c %i "$M/u2"); rm "$M/u2"
	check 'silt_wait_for 5 "[ -z \"\$(silt_chunk_files \"\$V\" \"\$ino2\")\" ]"' "plain rm removes the tier files too"
	cp "$W/u" "$M/u3"; sync "$M/u3"; ino3=$(stat -c %i "$M/u3")
	echo replacement > "$M/u4"
	exec 3< "$M/u3"
	mv "$M/u4" "$M/u3"
	check_eq "$(cat "$M/u3")" replacement "rename over an open file: the name shows the new file"
	check 'cmp -s <(cat <&3) "$W/u"' "... the old data is still readable through the open fd"
	exec 3<&-
	gone=0
	for i in $(seq 1 50); do
		[ -z "$(silt_chunk_files "$V" "$ino3")" ] && { gone=1; break; }
		sleep 0.1
	done
	check '[ $gone = 1 ]' "... and its tier files go away after close"

}

# ---------------------------------------------------------------------------
sec_attrs() {
	say "attributes"
	echo attrs > "$M/at"
	chmod 0640 "$M/at"
	check_eq "$(stat -c %a "$M/at")" 640 "chmod 0640"
	chmod 4755 "$M/at"
	check_eq "$(stat -c %a "$M/at")" 4755 "chmod 4755 (setuid bit)"
	chmod 0640 "$M/at"
	chown 1234:5678 "$M/at"
	check_eq "$(stat -c %u:%g "$M/at")" 1234:5678 "chown 1234:5678"
	touch -m -d '2001-02-03 04:05:06.123456789 UTC' "$M/at"
	check_eq "$(stat -c %Y "$M/at")" 981173106 "touch -m -d sets mtime"
	check_eq "$(stat -c %y "$M/at" | cut -c21-29)" 123456789 "mtime keeps nanoseconds"
	touch -a -d '1999-12-31 23:59:59 UTC' "$M/at"
	check_eq "$(stat -c %X "$M/at")" 946684799 "touch -a -d sets atime"
	check_eq "$(stat -c %Y "$M/at")" 981173106 "... mtime unchanged"
	c0=$(stat -c %Z "$M/at"); sleep 1.1; chmod 0600 "$M/at"
	check '[ "$(stat -c %Z "$M/at")" -gt "$c0" ]' "chmod updates ctime"
	m0=$(stat -c %Y "$M/r1"); sleep 1.1; echo more >> "$M/r1"; echo more >> "$W/r1"
	check '[ "$(stat -c %Y "$M/r1")" -gt "$m0" ]' "write updates mtime"
	mkdir "$M/atd"; m0=$(stat -c %Y "$M/atd"); sleep 1.1; : > "$M/atd/new"
	check '[ "$(stat -c %Y "$M/atd")" -gt "$m0" ]' "create in a directory updates its mtime"
	chmod 0751 "$M/atd"
	check_eq "$(stat -c %a "$M/atd")" 751 "chmod of a directory"

}

# ---------------------------------------------------------------------------
sec_xattrs() {
	say "xattrs"
	X=$SILT_XATTR
	check '"$X" set "$M/at" user.colour blue' "setxattr user.colour"
	check_eq "$("$X" get "$M/at" user.colour)" blue "getxattr"
	"$X" set "$M/at" user.shape round
	check_eq "$("$X" list "$M/at" | sort | tr '\n' ' ')" "user.colour user.shape " "listxattr"
	check '"$X" set "$M/at" user.colour green' "replace a value"
	check_eq "$("$X" get "$M/at" user.colour)" green "... new value"
	check '"$X" remove "$M/at" user.shape' "removexattr"
	check_eq "$("$X" get "$M/at" user.shape || true)" ENODATA "removed attribute: ENODATA"
	check_eq "$("$X" get "$M/at" user.never || true)" ENODATA "never-set attribute: ENODATA"
	check_eq "$("$X" remove "$M/at" user.never || true)" ENODATA "remove of a never-set attribute: ENODATA"
	check '"$X" set "$M/atd" user.dir yes' "xattr on a directory"
	check_eq "$("$X" get "$M/atd" user.dir)" yes "... reads back"
	big=$(head -c 3000 /dev/zero | tr '\0' v)
	check '"$X" set "$M/at" user.big "$big"' "3000-byte value"
	check_eq "$("$X" get "$M/at" user.big)" "$big" "... reads back"

}

# ---------------------------------------------------------------------------
sec_statfs() {
	say "statfs"
	sz=$(df -B1 --output=size "$M" | tail -n1 | tr -d ' ')
	av0=$(df -B1 --output=avail "$M" | tail -n1 | tr -d ' ')
	check_ge "$sz" $((3 * 64 << 20)) "df size >= sum of tier capacities (3 x 64M)"
	check_le "$sz" $((4 * 64 << 20)) "df size is about the tiers, not the host file system"
	silt_random "$W/eight" $((8 << 20))
	cp "$W/eight" "$M/eight"; sync "$M/eight"
	av1=$(df -B1 --output=avail "$M" | tail -n1 | tr -d ' ')
	check_ge "$((av0 - av1))" $((7 << 20)) "df avail drops by about 8 MiB after writing 8 MiB"
	rm "$M/eight"
	avail() { df -B1 --output=avail "$M" | tail -n1 | tr -d ' '; }
	silt_wait_for 5 '[ $(( $(avail) - av1 )) -ge $((7 << 20)) ]'
	check_ge "$(( $(avail) - av1 ))" $((7 << 20)) "df avail comes back after rm"

}

# ---------------------------------------------------------------------------
sec_truncate() {
	say "truncate"
	silt_pattern 255 $((1 << 20)) > "$M/tr"
	check_eq "$(chunks "$M/tr")" 16 "1 MiB file: 16 chunks"
	truncate -s 100000 "$M/tr"
	check_eq "$(stat -c %s "$M/tr")" 100000 "shrink to 100000: size"
	check_eq "$(chunks "$M/tr")" 2 "shrink frees chunks (2 left)"
	truncate -s 1M "$M/tr"
	check_eq "$(stat -c %s "$M/tr")" 1048576 "grow to 1 MiB: size"
	silt_drop_caches
	check 'silt_is_byte "$M/tr" 0 100000 255' "data before the cut intact"
	check 'silt_is_zero "$M/tr" 100000 $((1048576 - 100000))' "grown region reads zeros (also the old tail of chunk 1)"
	check_eq "$(chunks "$M/tr")" 2 "growing allocates nothing"
	truncate -s 0 "$M/tr"
	check_eq "$(chunks "$M/tr")" 0 "truncate to 0 frees everything"
	silt_pattern 7 1000 > "$M/tr2"
	truncate -s 10 "$M/tr2"; truncate -s 1000 "$M/tr2"; silt_drop_caches
	check 'silt_is_byte "$M/tr2" 0 10 7 && silt_is_zero "$M/tr2" 10 990' "shrink/grow inside one chunk zeroes the tail"

}

# ---------------------------------------------------------------------------
sec_fallocate() {
	say "fallocate"
	fallocate -l 1M "$M/fa"
	check_eq "$(stat -c %s "$M/fa")" 1048576 "fallocate -l 1M: size"
	check_eq "$(chunks "$M/fa")" 16 "fallocate -l 1M: 16 chunks allocated"
	check 'silt_is_zero "$M/fa" 0 1048576' "fallocated range reads zeros"
	fallocate -n -o 1M -l 1M "$M/fa"
	check_eq "$(stat -c %s "$M/fa")" 1048576 "fallocate -n (KEEP_SIZE) past EOF: size unchanged"
	check_eq "$(chunks "$M/fa")" 32 "fallocate -n: 32 chunks allocated"
	silt_pattern 171 $((1 << 20)) > "$M/fp"
	fallocate -p -o 128K -l 256K "$M/fp"
	silt_drop_caches
	check_eq "$(stat -c %s "$M/fp")" 1048576 "punch hole keeps the size"
	check 'silt_is_zero "$M/fp" 131072 262144' "punched range reads zeros"
	check 'silt_is_byte "$M/fp" 0 131072 171 && silt_is_byte "$M/fp" 393216 655360 171' "data around the hole intact"
	check_eq "$(chunks "$M/fp")" 12 "punching 4 whole chunks frees them (16 -> 12)"
	fallocate -p -o 600000 -l 200000 "$M/fp"
	silt_drop_caches
	check 'silt_is_zero "$M/fp" 600000 200000' "unaligned punch reads zeros"
	check 'silt_is_byte "$M/fp" 393216 $((600000 - 393216)) 171 && silt_is_byte "$M/fp" 800000 $((1048576 - 800000)) 171' "data around the unaligned hole intact"
	check_eq "$(chunks "$M/fp")" 10 "unaligned punch frees the 2 chunks it covers whole (12 -> 10)"
	fallocate -p -o 2M -l 1M "$M/fp"
	check_eq "$(stat -c %s "$M/fp")" 1048576 "punch past EOF: size unchanged"

}

# ---------------------------------------------------------------------------
sec_seek() {
	say "SEEK_DATA / SEEK_HOLE"
	silt_pattern 1 $CS | dd of="$M/sk" bs=$CS iflag=fullblock conv=notrunc status=none
	silt_pattern 2 $CS | dd of="$M/sk" bs=$CS iflag=fullblock seek=10 conv=notrunc status=none
	truncate -s 1M "$M/sk"; sync "$M/sk"
	S=$SILT_SEEK
	check_eq "$("$S" "$M/sk" data 0 || true)" 0 "SEEK_DATA 0 -> 0"
	check_eq "$("$S" "$M/sk" hole 0 || true)" 65536 "SEEK_HOLE 0 -> 65536"
	check_eq "$("$S" "$M/sk" data 65536 || true)" 655360 "SEEK_DATA 65536 -> 655360 (chunk 10)"
	check_eq "$("$S" "$M/sk" data 1000 || true)" 1000 "SEEK_DATA inside data -> same offset"
	check_eq "$("$S" "$M/sk" hole 100000 || true)" 100000 "SEEK_HOLE inside a hole -> same offset"
	check_eq "$("$S" "$M/sk" hole 655360 || true)" 720896 "SEEK_HOLE 655360 -> 720896"
	check_eq "$("$S" "$M/sk" data 720896 || true)" ENXIO "SEEK_DATA after the last data -> ENXIO"
	check_eq "$("$S" "$M/sk" hole 1048575 || true)" 1048575 "SEEK_HOLE in the trailing hole -> same offset"
	check_eq "$("$S" "$M/sk" data 1048576 || true)" ENXIO "SEEK_DATA at EOF -> ENXIO"
	check_eq "$("$S" "$M/sk" hole 1048576 || true)" ENXIO "SEEK_HOLE at EOF -> ENXIO"
	check_eq "$(chunks "$M/sk")" 2 "file with data in chunks 0 and 10 has 2 chunks"
	j=$(silt_ctl where --json "$M/sk")
	check_eq "$(json_get "$j" '[.tiers[].runs[]] | sort | map(tostring) | join(" ")')" "[0,0] [10,10]" "siltctl where runs [0,0] and [10,10]"

}

# ---------------------------------------------------------------------------
sec_odirect() {
	say "O_DIRECT"
	silt_random "$W/od" $((1 << 20))
	check_cmd "dd oflag=direct bs=4096" dd if="$W/od" of="$M/od" bs=4096 oflag=direct status=none
	silt_drop_caches
	check 'cmp -s "$W/od" "$M/od"' "... data reads back"
	check 'cmp -s <(dd if="$M/od" bs=4096 iflag=direct status=none) "$W/od"' "dd iflag=direct bs=4096 reads it"
	silt_random "$W/p1" 8192
	check_cmd "O_DIRECT write from a misaligned buffer" "$SILT_ODIRECT" write "$M/od" 4096 1 < "$W/p1"
	dd if="$W/p1" of="$W/od" bs=8192 seek=4096 oflag=seek_bytes conv=notrunc status=none
	silt_random "$W/p2" 3333
	check_cmd "O_DIRECT write at an unaligned offset and length" "$SILT_ODIRECT" write "$M/od" 100001 0 < "$W/p2"
	dd if="$W/p2" of="$W/od" bs=3333 seek=100001 oflag=seek_bytes conv=notrunc status=none
	check_cmd "O_DIRECT write across a chunk boundary" "$SILT_ODIRECT" write "$M/od" $((CS - 4096)) 0 < "$W/p1"
	dd if="$W/p1" of="$W/od" bs=8192 seek=$((CS - 4096)) oflag=seek_bytes conv=notrunc status=none
	silt_drop_caches
	check 'cmp -s "$W/od" "$M/od"' "file matches after the O_DIRECT writes"
	check 'cmp -s <("$SILT_ODIRECT" read "$M/od" 100001 3333 3) "$W/p2"' "O_DIRECT read at an unaligned offset into a misaligned buffer"
	check 'cmp -s <("$SILT_ODIRECT" read "$M/od" 0 1048576 0) "$W/od"' "O_DIRECT read of the whole file"
	check_cmd "O_DIRECT write past EOF extends the file" "$SILT_ODIRECT" write "$M/od" $((2 << 20)) 0 < "$W/p1"
	check_eq "$(stat -c %s "$M/od")" $(((2 << 20) + 8192)) "... size"

}

# ---------------------------------------------------------------------------
sec_fsync() {
	say "fsync / fdatasync"
	silt_random "$W/fs" $((1 << 20))
	check_cmd "write + fsync" "$SILT_SYNCIO" "$M/fs1" fsync < "$W/fs"
	check_cmd "write + fdatasync" "$SILT_SYNCIO" "$M/fs2" fdatasync < "$W/fs"
	check_cmd "fsync of a directory" "$SILT_SYNCIO" "$M" dirfsync
	check_cmd "dd conv=fsync" dd if="$W/fs" of="$M/fs3" bs=64K conv=fsync status=none
	check_cmd "dd conv=fdatasync" dd if="$W/fs" of="$M/fs4" bs=64K conv=fdatasync status=none
	check_cmd "syncfs (sync -f)" sync -f "$M/fs1"
	silt_drop_caches
	check 'cmp -s "$M/fs1" "$W/fs" && cmp -s "$M/fs2" "$W/fs" && cmp -s "$M/fs3" "$W/fs" && cmp -s "$M/fs4" "$W/fs"' "synced files read back"

}

# ---------------------------------------------------------------------------
sec_mmap() {
	say "shared writable mmap"
	silt_random "$W/mm" $(((3 << 20) + 123))
	check_cmd "mmap MAP_SHARED write + msync + munmap" "$SILT_MMAPRW" write "$M/mm" < "$W/mm"
	check 'cmp -s "$M/mm" "$W/mm"' "read() sees the mmap writes"
	silt_drop_caches
	check 'cmp -s "$M/mm" "$W/mm"' "... also after drop_caches (they reached the daemon)"
	check 'cmp -s <("$SILT_MMAPRW" read "$M/mm") "$W/mm"' "read through a shared mapping"
	check_cmd "mmap write over an existing file (same size)" "$SILT_MMAPRW" write "$M/r1" < <(cat "$W/r1")
	silt_drop_caches
	check 'cmp -s "$M/r1" "$W/r1"' "... content"

}

# ---------------------------------------------------------------------------
sec_sparse4t() {
	say "4 TiB sparse file"
	TB=$((1 << 40))
	silt_random "$W/b0" $((1 << 20)); silt_random "$W/b1" $((1 << 20))
	check_cmd "truncate -s 4T" truncate -s 4T "$M/big"
	check_cmd "write 1 MiB at 4T-1M" dd if="$W/b1" of="$M/big" bs=1M seek=$((4 * 1024 * 1024 - 1)) conv=notrunc,fsync status=none
	check_cmd "write 1 MiB at 0" dd if="$W/b0" of="$M/big" bs=1M conv=notrunc,fsync status=none
	check_eq "$(stat -c %s "$M/big")" $((4 * TB)) "size 4 TiB"
	silt_drop_caches
	check 'cmp -s <(silt_range "$M/big" $((4 * TB - (1 << 20))) $((1 << 20))) "$W/b1"' "last MiB reads back"
	check 'cmp -s <(silt_range "$M/big" 0 $((1 << 20))) "$W/b0"' "first MiB reads back"
	check 'silt_is_zero "$M/big" $((2 * TB)) $((1 << 20))' "the middle (2 TiB) reads zeros"
	check_le "$(du -k "$M/big" | cut -f1)" 16384 "du is small"
	check_eq "$(chunks "$M/big")" 32 "32 chunks mapped"
	ino=$(stat -c %i "$M/big")
	files=$(silt_chunk_files "$V" "$ino")
	echo "    tier files: $(for f in $files; do echo -n "$(basename "$f")=$(stat -c %s "$f") "; done)"
	check '[ -n "$files" ]' "tier files exist for inode $ino"
	maxsz=0; for f in $files; do s=$(stat -c %s "$f"); [ "$s" -gt "$maxsz" ] && maxsz=$s; done
	check_le "$maxsz" $((TB + (1 << 20))) "no tier file above 1 TiB + 1 MiB apparent size"
	check 'echo "$files" | grep -q "/chunks/$ino\.3$"' "the last MiB is in segment 3 (chunks/$ino.3)"
	rm "$M/big"
	silt_wait_for 5 '[ -z "$(silt_chunk_files "$V" "$ino")" ]'
	check '[ -z "$(silt_chunk_files "$V" "$ino")" ]' "rm removes every segment"

}

# ---------------------------------------------------------------------------
sec_allow_other() {
	say "allow_other + default_permissions"
	nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	echo public > "$M/pub"; chmod 0644 "$M/pub"
	echo secret > "$M/priv"; chmod 0600 "$M/priv"
	mkdir "$M/open"; chmod 0777 "$M/open"
	check_eq "$(nobody cat "$M/pub" 2>&1)" public "nobody reads a 0644 file"
	check '! nobody sh -c "echo x >> \"$M/pub\"" 2>/dev/null' "nobody cannot write a 0644 root file"
	check_eq "$(cat "$M/pub")" public "... it is unchanged"
	check '! nobody cat "$M/priv" >/dev/null 2>&1' "nobody cannot read a 0600 file"
	check '! nobody touch "$M/by-nobody" 2>/dev/null' "nobody cannot create in a 0755 root directory"
	check '! nobody chmod 0666 "$M/pub" 2>/dev/null' "nobody cannot chmod a root file"
	check 'nobody sh -c "echo n > \"$M/open/nf\""' "nobody creates a file in a 0777 directory"
	check_eq "$(stat -c %u:%g "$M/open/nf" 2>&1)" 65534:65534 "... owned by nobody"
	check 'nobody mkdir "$M/open/nd"' "nobody mkdir in a 0777 directory"
	check_eq "$(stat -c %u:%g "$M/open/nd" 2>&1)" 65534:65534 "... owned by nobody"
	mkdir "$M/sgid"; chown 0:4321 "$M/sgid"; chmod 2777 "$M/sgid"
	nobody sh -c "echo s > \"$M/sgid/f\"; mkdir \"$M/sgid/d\""
	check_eq "$(stat -c %u:%g "$M/sgid/f" 2>&1)" 65534:4321 "file created in a setgid directory gets the directory's group"
	check_eq "$(stat -c %g:%A "$M/sgid/d" 2>&1)" "4321:drwxr-sr-x" "directory created in a setgid directory inherits group and setgid bit"
	echo suid > "$M/suid"; chmod 4777 "$M/suid"
	nobody sh -c "echo more >> \"$M/suid\""
	check_eq "$(stat -c %a "$M/suid")" 777 "a write by another user clears the setuid bit"
}

# ---------------------------------------------------------------------------
# What writes, truncates, O_TRUNC opens and chowns take from a file, as the
# kernel takes it on ext4: siltfs does it itself (FUSE_HANDLE_KILLPRIV_V2,
# see fs/fuse/fuse_loop.c), and the kernel must not go on showing a mode
# that is gone (no cache dropped before the checks).
sec_privileges() {
	say "privileges killed by writes, truncates and chowns (${1:-write-through})"
	priv_case() { # priv_case MODE EXPECTED WHAT CMD...: a fresh file in MODE, CMD, its mode
		local f="$M/priv-case" what=$3 want=$2
		rm -f "$f"; echo data > "$f"; chmod "$1" "$f"; shift 3
		"$@" "$f" || true
		check_eq "$(stat -c %a "$f")" "$want" "$what"
	}
	append() { echo more >> "$1"; }
	nobody_append() { nobody sh -c "echo more >> \"\$1\"" _ "$1"; }
	nobody_trunc() { nobody truncate -s 2 "$1"; }
	nobody_otrunc() { nobody sh -c ": > \"\$1\"" _ "$1"; }
	dio() { dd if=/dev/zero of="$1" bs=4k count=1 oflag=direct conv=notrunc status=none; }
	nobody_dio() { nobody dd if=/dev/zero of="$1" bs=4k count=1 oflag=direct conv=notrunc status=none; }
	chown_nobody() { chown 65534 "$1"; }
	priv_case 6777 777 "a write by another user clears setuid and setgid (group-executable)" nobody_append
	priv_case 2666 2666 "... and keeps setgid where the group cannot execute" nobody_append
	priv_case 4777 4777 "a write by root (CAP_FSETID) keeps the setuid bit" append
	priv_case 4777 777 "a truncate by another user clears the setuid bit" nobody_trunc
	priv_case 4777 777 "an O_TRUNC open by another user clears the setuid bit" nobody_otrunc
	priv_case 4777 777 "an O_DIRECT write by another user clears the setuid bit" nobody_dio
	priv_case 4755 755 "a chown clears the setuid bit, also by root" chown_nobody
	cap_case() { # cap_case WHAT CMD...: a file with file capabilities, CMD, are they gone
		local f="$M/cap-case" what=$1
		rm -f "$f"; echo data > "$f"; chmod 0777 "$f"; shift
		setcap cap_net_raw+ep "$f"
		check "getcap '$f' | grep -q cap_net_raw" "$what: the file has capabilities first"
		"$@" "$f"
		check "[ -z \"\$(getcap '$f')\" ]" "$what: they are gone"
	}
	cap_case "a write by root" append
	cap_case "an O_DIRECT write by root" dio
	cap_case "a truncate" truncate -s 1
	cap_case "a chown" chown_nobody
}
sec_privileges_wb() {
	check_cmd "umount" silt_umount "$M"
	silt_mount "$V/vol.conf" "$M" allow_other,cache=writeback || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
	sec_privileges "the writeback cache"
	check_cmd "umount" silt_umount "$M"
	silt_mount "$V/vol.conf" "$M" allow_other || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
}

# ---------------------------------------------------------------------------
# Everything above must survive an unmount and a new mount.
verify_state() {
	local when=$1
	check 'cmp -s "$W/r1" "$M/r1"' "$when: r1 data"
	check 'cmp -s "$W/two" "$M/two"' "$when: two data"
	check_eq "$(readlink "$M/link")" r1 "$when: symlink"
	check_eq "$(stat -c %h "$M/h2")" 2 "$when: nlink of h2"
	check_eq "$(stat -c %i "$M/h2")" "$(stat -c %i "$M/hd/h3")" "$when: hard links share the inode"
	check_eq "$(stat -c %a:%u:%g:%Y:%X "$M/at")" "600:1234:5678:981173106:946684799" "$when: mode, owner, mtime, atime"
	check_eq "$("$SILT_XATTR" get "$M/at" user.colour)" green "$when: xattr"
	if [[ " ${SILT_SKIP:-} " != *" fallocate "* ]]; then
		check_eq "$(stat -c %s "$M/fa")" 1048576 "$when: fallocated size"
		check_eq "$(chunks "$M/fp")" 10 "$when: punched file chunk count"
		check 'silt_is_zero "$M/fp" 131072 262144' "$when: punched range still zeros"
	fi
	check_eq "$("$SILT_SEEK" "$M/sk" data 65536 || true)" 655360 "$when: SEEK_DATA"
	check 'cmp -s "$W/mm" "$M/mm"' "$when: mmap-written file"
	check 'cmp -s "$W/od" <(head -c 1048576 "$M/od")' "$when: O_DIRECT-written file"
	check_eq "$(stat -c %u "$M/open/nf")" 65534 "$when: file created by nobody"
	check '[ ! -e "$M/d/sub" ] && [ -d "$M/d" ] && [ ! -e "$M/u" ]' "$when: removed names stay removed"
	check_eq "$(cat "$M/xmoved/f")" in "$when: renamed directory"
}
sec_remount() {
	say "state before remount"
	verify_state "before remount"
	silt_check_accounting "$M"
	check_cmd "umount" silt_umount "$M"
	say "state after remount"
	silt_mount "$V/vol.conf" "$M" allow_other || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
	silt_drop_caches
	verify_state "after remount"
	silt_check_accounting "$M"
	check_cmd "umount" silt_umount "$M"
}

# ---------------------------------------------------------------------------
sec_crash() {
	say "fsync'd data survives kill -9 of the daemon"
	silt_mount_fg "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
	silt_random "$W/crash" $(((2 << 20) + 777))
	check_cmd "write + fsync" "$SILT_SYNCIO" "$M/crash" fsync < "$W/crash"
	mkdir "$M/crashdir"; echo x > "$M/crashdir/f"
	"$SILT_SYNCIO" "$M/crashdir/f" fsync < /dev/null
	"$SILT_SYNCIO" "$M/crashdir" dirfsync
	"$SILT_SYNCIO" "$M" dirfsync
	kill -9 "$SILT_FG_PID"
	wait "$SILT_FG_PID" 2>/dev/null || true
	fusermount3 -uz "$M" 2>/dev/null || umount -l "$M"
	if silt_mount "$V/vol.conf" "$M"; then
		check 'cmp -s "$W/crash" "$M/crash"' "fsync'd file intact after kill -9"
		check_eq "$(cat "$M/crashdir/f" 2>&1)" x "fsync'd directory entry intact"
		check 'cmp -s "$W/r1" "$M/r1"' "older data intact"
		check_cmd "umount" silt_umount "$M"
	else
		fail "mount after kill -9: $(cat "$SILT_LAST_ERR")"
	fi
}

# Run the sections in order; SILT_SKIP="fallocate seek" skips some (for
# debugging: later sections use files made by earlier ones).
for sec in files dirs symlinks hardlinks rename unlink attrs xattrs statfs truncate fallocate \
	seek odirect fsync mmap sparse4t allow_other privileges privileges_wb remount crash; do
	if [[ " ${SILT_SKIP:-} " == *" $sec "* ]]; then skip "section $sec (SILT_SKIP)"; continue; fi
	"sec_$sec"
done

silt_summary
