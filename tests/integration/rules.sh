#!/usr/bin/env bash
# Placement rules (issue 11, point 2), through the mount and the real CLI, on
# a three-tier volume (nvme 8 MiB, ssd, hdd) with the policy's migration off
# (so what moves is what the rules ask): [rule swap] pins *.swap to t2,
# [rule images] keeps vms/*.img off t0 (max_tier = t1). New chunks are born
# inside a file's rule; a file renamed into a rule's glob moves into it, one
# renamed out of it is free again, and so are the files of a renamed
# directory; the rules hold after a remount; a pin wins over a rule, and an
# unpin falls back to it; siltctl policy shows them; a rule naming a tier
# that does not exist is refused at mount, naming the line.
. "$(dirname "$0")/lib.sh"

MiB=$((1 << 20))
V=$SILT_TMP/v M=$SILT_TMP/m W=$SILT_TMP/w
mkdir -p "$W"
SILT_VOLUME_OPTS=$'[ram]\nsize = 0\n[placement]\nmigration = off\nepoch = 200ms' \
	silt_make_volume "$V" 3 64K 8M
cat >> "$V/vol.conf" <<EOF

[rule swap]
match = *.swap
pin = t2

[rule images]
match = vms/*.img
max_tier = t1
EOF
mount_it() { silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"; }
mount_it
on() { silt_where_tier_chunks "$M/$1" "$2"; }   # FILE TIER: its chunks there
settles() { silt_wait_for 20 "[ \"\$(on '$1' '$2')\" = '$3' ]"; } # FILE TIER N

say "new files are born inside their rule"
mkdir -p "$M/vms"
silt_random "$W/img" $MiB
cp "$W/img" "$M/vms/a.img"
check_eq "$(on vms/a.img t0)" 0 "vms/a.img: no chunk on t0 (images: max_tier = t1)"
check_eq "$(on vms/a.img t1)" 16 "its 16 chunks on t1"
cp "$W/img" "$M/x.swap"
check_eq "$(on x.swap t2)" 16 "x.swap: on t2 (swap: pin = t2)"
cp "$W/img" "$M/plain.dat"
check_eq "$(on plain.dat t0)" 16 "a file no rule matches goes to t0"

say "renames"
mv "$M/plain.dat" "$M/vms/plain.img"
check "settles vms/plain.img t0 0" "a file renamed into vms/*.img leaves t0"
check "cmp -s '$W/img' '$M/vms/plain.img'" "and reads back intact"
mv "$M/vms" "$M/vms-old"
dd if=/dev/urandom of="$W/tail" bs=64K count=4 status=none
cat "$W/tail" >> "$M/vms-old/a.img"
check_eq "$(on vms-old/a.img t0)" 4 "its directory renamed away, the file is free: new chunks go to t0"
mv "$M/vms-old" "$M/vms"
check "settles vms/a.img t0 0" "renamed back, the rule holds again: its chunks leave t0"

say "a remount"
silt_umount "$M" || silt_abort "cannot unmount"
mount_it
cat "$W/tail" >> "$M/vms/a.img"
check_eq "$(on vms/a.img t0)" 0 "after the remount, new chunks of vms/a.img still avoid t0"
cat "$W/tail" >> "$M/x.swap"
check_eq "$(on x.swap t2)" 20 "and x.swap's are born on t2"
cat "$W/img" "$W/tail" "$W/tail" > "$W/a.expect"
check "cmp -s '$W/a.expect' '$M/vms/a.img'" "vms/a.img reads back as written"

say "a pin wins over a rule; an unpin falls back to it"
check_cmd "pin vms/a.img t0" silt_ctl pin "$M/vms/a.img" t0
check "settles vms/a.img t0 24" "pinned: all 24 chunks move to t0"
check_cmd "unpin vms/a.img" silt_ctl unpin "$M/vms/a.img"
check "settles vms/a.img t0 0" "unpinned: the rule again, they leave t0"

say "siltctl policy shows them"
j=$(silt_ctl -m "$M" policy --json)
check_eq "$(json_get "$j" '[.rules[].name] | join(",")')" "swap,images" "the rules, in the config's order"
check_eq "$(json_get "$j" '.rules[1].tiers')" "t1,t2" "images: t1 and t2"
check "silt_ctl -m '$M' policy | grep -qE '^swap +\\*\\.swap +t2'" "and as a table"
check_cmd "umount" silt_umount "$M"

say "a rule naming no tier"
sed -i 's/^pin = t2$/pin = t9/' "$V/vol.conf"
silt_mount_refused "$V/vol.conf" "$M" 'vol.conf:[0-9]+: \[rule swap\] pin = t9: no such tier' \
	"refused at mount, naming the line"
sed -i 's/^pin = t9$/pin = t2/' "$V/vol.conf"
sed -i '/^\[tier t2\]$/a compression = zstd:1' "$V/vol.conf"
printf '\n[rule raw]\nmatch = raw/*\npin = t2\ncompress = no\n' >> "$V/vol.conf"
silt_mount_refused "$V/vol.conf" "$M" 'rule raw\] compress = no leaves no tier' \
	"compress = no with only a compressed tier allowed is refused"

silt_summary
