#!/usr/bin/env bash
# siltctl: the CLI as docs/usage.md and siltctl(8) describe it. --version,
# help, help COMMAND and COMMAND --help for every command; an unknown
# command or option, a missing or extra argument are usage errors (exit 2)
# that say so; errors are JSON on stdout with --json; a FILE that does not
# exist is "no such file", one elsewhere "not on a mounted siltfs volume";
# and the outputs of status and where keep their formats: the text
# headings and tables, the JSON keys in their order.
. "$(dirname "$0")/lib.sh"
# Keep going after a failed step so that every check reports.
set +e

V="$SILT_TMP/v"; M="$SILT_TMP/m"
silt_make_volume "$V" 2 64K 64M
# run ARGS...: siltctl's stdout, stderr and exit status in OUT, ERR, RC
# jc JSON FILTER: compact jq output
jc() { printf '%s' "$1" | jq -c "$2"; }
run() { OUT=$(timeout 30 "$SILTCTL" "$@" 2>"$SILT_TMP/err"); RC=$?; ERR=$(cat "$SILT_TMP/err"); }

say "version and help"
version=$(meson introspect "$BUILDDIR" --projectinfo | jq -r .version)
run --version
check_eq "$RC/$OUT" "0/siltctl $version" "siltctl --version"
cmds=$("$SILTCTL" --list-commands)
check '[[ "$(echo $cmds)" == "status where heat policy migrate scrub events tiers evacuate pin unpin pins metrics log sync replica help" ]]' "--list-commands: every command ($(echo $cmds))"
run help
for c in $cmds; do
	check '[[ "$OUT" == *"  $c "* ]]' "siltctl help lists $c"
	help=$("$SILTCTL" help "$c"); rc=$?
	check '[ $rc -eq 0 ] && [[ "$help" == "usage: siltctl [-m MOUNTPOINT | -s SOCKET] $c"* ]] && [ "$(echo "$help" | wc -l)" -ge 3 ]' \
		"siltctl help $c: usage line and text"
	check_eq "$("$SILTCTL" "$c" --help)" "$help" "siltctl $c --help = siltctl help $c"
done
run --help
check '[ $RC -eq 0 ] && [[ "$OUT" == usage:* ]]' "siltctl --help"

say "usage errors"
run frobnicate
check '[ $RC -eq 2 ] && [[ "$ERR" == *"unknown command '"'"'frobnicate'"'"'"* ]]' "unknown command: exit 2, says so ($ERR)"
run --json frobnicate
check_eq "$RC/$(json_get "$OUT" .errno)" 2/EINVAL "--json unknown command: exit 2, errno EINVAL"
check '[[ "$(json_get "$OUT" .error)" == *"unknown command"* ]] && [ -z "$ERR" ]' "--json: the error is JSON on stdout, nothing on stderr"
run --frob status
check '[ $RC -eq 2 ] && [[ "$ERR" == *"unknown option '"'"'--frob'"'"'"* ]]' "unknown option: exit 2, says so ($ERR)"
run where
check '[ $RC -eq 2 ] && [[ "$ERR" == *"where: missing argument"* ]] && [[ "$ERR" == *"usage: siltctl"* ]]' "where without FILE: exit 2, usage ($ERR)"
run status extra
check '[ $RC -eq 2 ] && [[ "$ERR" == *"status: too many arguments"* ]]' "status with an argument: exit 2 ($ERR)"
run log -n many
check '[ $RC -eq 2 ] && [[ "$ERR" == *"-n"* ]]' "log -n many: exit 2 ($ERR)"
run help frobnicate
check '[ $RC -eq 2 ] && [[ "$ERR" == *"unknown command"* ]]' "help of an unknown command: exit 2 ($ERR)"
run
check '[ $RC -eq 2 ] && [[ "$ERR" == *"no command given"* ]]' "no command: exit 2 ($ERR)"

say "paths and volumes that are not there"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
run where "$M/no-such-file"
check_eq "$RC/$ERR" "1/siltctl: $M/no-such-file: no such file" "where on a missing file on the volume: 'no such file'"
run where /no/such/dir/file
check_eq "$RC/$ERR" "1/siltctl: /no/such/dir/file: no such file" "where on a missing path elsewhere: 'no such file'"
run --json where /no/such/file
check_eq "$RC/$(json_get "$OUT" .errno)/$(json_get "$OUT" .error)" "1/ENOENT//no/such/file: no such file" \
	"--json where on a missing path: JSON error, ENOENT"
run where /etc/hostname
check_eq "$RC/$ERR" "1/siltctl: /etc/hostname is not on a mounted siltfs volume" "where on a file elsewhere"
mkdir "$M/d"
run where "$M/d"
check_eq "$RC/$ERR" "1/siltctl: $M/d: not a regular file" "where on a directory"
run -m /tmp status
check_eq "$RC/$ERR" "1/siltctl: /tmp is not a mounted siltfs volume" "-m on a directory that is no siltfs mount"
run --json -m /no/such/mnt status
check_eq "$RC/$(json_get "$OUT" .errno)" 1/ENOENT "--json -m on a missing directory: JSON error"
printf '[volume]\nname = x\nlog_file = %s/no/such.log\n[tier a]\npath = %s\nclass = hdd\n' "$SILT_TMP" "$SILT_TMP" > "$SILT_TMP/x.conf"
run --json log -c "$SILT_TMP/x.conf"
check_eq "$RC/$(json_get "$OUT" .errno)/$(json_get "$OUT" .error)" "1/ENOENT/$SILT_TMP/no/such.log: No such file or directory" \
	"--json log of a log file that is not there: JSON error"
run -s "$SILT_TMP/no.sock" status
check_eq "$RC/$ERR" "1/siltctl: no siltfs daemon answers on $SILT_TMP/no.sock" "-s on a missing socket"

say "status and where keep their formats"
silt_random "$SILT_TMP/data" $((40 << 16))
cp "$SILT_TMP/data" "$M/f"
truncate -s 1G "$M/sparse"
dd if="$SILT_TMP/data" of="$M/sparse" bs=64K count=1 seek=9000 conv=notrunc status=none
s=$(silt_ctl -m "$M" status --json)
check_eq "$(jc "$s" keys_unsorted)" '["volume","ram","tiers","placement","log"]' "status --json: top-level keys in order"
check_eq "$(jc "$s" '.placement | [.policy, .migration, (.moved | type)]')" '["arc","policy","number"]' \
	"status --json: placement (policy, migration, counters)"
check_eq "$(jc "$s" '.volume | keys_unsorted')" \
	'["name","uuid","chunk_size","mountpoint","reads","writes","read_bytes","write_bytes","namespace_ops","cache"]' "status --json: volume keys"
check_eq "$(jc "$s" '.ram | keys_unsorted')" '["size","used","hits","misses","fills","evictions","invalidations"]' "status --json: ram keys"
check_eq "$(jc "$s" '.tiers[0] | keys_unsorted')" \
	'["name","class","path","capacity","used","chunks","high_watermark","low_watermark","compression","state","reason"]' "status --json: tier keys"
check_eq "$(jc "$s" '.log | keys_unsorted')" '["destination","level","path","ident"]' "status --json: log keys"
check_eq "$(silt_ctl -m "$M" status --json | head -c 13)" '{"volume": {"' "status --json: spacing as documented"
t=$(silt_ctl -m "$M" status)
uuid=$(json_get "$s" .volume.uuid)
check_eq "$(echo "$t" | sed -n 1p)" "volume $(silt_volume_name "$V/vol.conf")  uuid $uuid  mounted on $M  cache writethrough" "status: first line"
check '[[ "$(echo "$t" | sed -n 2p)" =~ ^chunk\ size\ 64\.0\ KiB\ \ reads\ [0-9]+\ \(.*\)\ \ writes\ [0-9]+\ \(.*\)$ ]]' "status: second line"
check_eq "$(echo "$t" | sed -n 3p)" "" "status: a blank line"
check_eq "$(echo "$t" | sed -n 4p)" "TIER         CLASS     CAPACITY         USED   USE%     CHUNKS COMPRESS STATE   PATH" "status: table header"
row=$(echo "$t" | sed -n 5p)
c0=$(json_get "$s" '.tiers[0].chunks')
check_eq "$(printf '%s' "$row" | cut -c1-19)" "t0           nvme  " "status: tier row, name and class columns"
check '[[ "$row" =~ \ +64\.0\ MiB\ +[0-9.]+\ [KMG]iB\ +[0-9]+\.[0-9]%\ +$c0\ none\ {5}active\ \ $V/t0$ ]]' "status: tier row ($row)"
check_eq "$(echo "$t" | wc -l)" 6 "status: one row per tier"
w=$(silt_ctl where "$M/f")
check_eq "$(echo "$w" | sed -n 1p)" "$M/f  size 2.5 MiB  chunk 64.0 KiB  40 chunks placed" "where: first line"
check_eq "$(echo "$w" | sed -n 2p)" "TIER         CLASS     CHUNKS  SHARE  RUNS" "where: table header"
check_eq "$(echo "$w" | sed -n 3p)" "t0           nvme          40 100.0%  0-39" "where: the tier holding the file"
check_eq "$(echo "$w" | sed -n 4p)" "t1           ssd            0   0.0%  " "where: an empty tier"
j=$(silt_ctl where --json "$M/f")
check_eq "$(jc "$j" .)" \
	"{\"file\":\"$M/f\",\"ino\":$(stat -c %i "$M/f"),\"size\":2621440,\"chunk_size\":65536,\"chunks\":40,\"tiers\":[{\"name\":\"t0\",\"class\":\"nvme\",\"chunks\":40,\"runs\":[[0,39]]},{\"name\":\"t1\",\"class\":\"ssd\",\"chunks\":0,\"runs\":[]}]}" \
	"where --json: keys, order and values"
check_eq "$(silt_ctl where "$M/sparse" | sed -n 1p)" "$M/sparse  size 1.0 GiB  chunk 64.0 KiB  1 chunks placed" "where: a sparse file counts placed chunks"
# a failed tier says why under its row
rm -rf "$V/t0/$uuid/chunks"
dd if="$SILT_TMP/data" of="$M/new" bs=64K count=2 status=none 2>/dev/null
t=$(silt_ctl -m "$M" status)
check '[[ "$(echo "$t" | sed -n 5p)" =~ ^t0\ .*\ none\ {5}failed\ \ $V/t0$ ]]' "status: a failed tier's row ($(echo "$t" | sed -n 5p))"
check_eq "$(echo "$t" | sed -n 6p)" "             $(json_get "$(silt_ctl -m "$M" status --json)" '.tiers[0].reason')" \
	"status: the reason on the next line, under the columns"
check_cmd "umount" silt_umount "$M"

silt_summary
