#!/usr/bin/env bash
# metrics: `siltctl metrics` (issue 11 point 6) through the real CLI.
#
# On a two-tier volume (nvme, hdd) after a known workload: every line is
# Prometheus text exposition (HELP and TYPE before each family, samples
# "name{labels} value"), every sample carries the volume label; the request
# counters cover what was done, the latency histograms are cumulative and
# end in their count; the tier gauges equal what `siltctl status --json`
# says; a byte flipped in a chunk on the hdd tier shows up as a checksum
# error of that tier, found by a read and by the scrubber, and as a
# checksum event; --json carries the same samples.
. "$(dirname "$0")/lib.sh"
set +e

MiB=$((1 << 20))
V="$SILT_TMP/v"; M="$SILT_TMP/m"; W="$SILT_TMP/w"; mkdir -p "$W"
SILT_VOLUME_OPTS=$'[ram]\nsize = 0\n[placement]\npolicy = lru\nepoch = 1h' silt_make_volume "$V" 2 64K
sed -i 's/^class = ssd$/class = hdd/' "$V/vol.conf"
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"

silt_random "$W/f" $((2 * MiB))
dd if="$W/f" of="$M/f" bs=64k oflag=direct status=none             # 32 writes
dd if="$M/f" of=/dev/null bs=64k iflag=direct status=none           # 32 reads
met=$(silt_ctl -m "$M" metrics); rc=$?
check_eq "$rc" 0 "siltctl metrics exits 0"
# value NAME LABELS: the sample's value ("" if absent)
value() { awk -v n="$1" -v l="$2" '$1 == n "{" l "}" { print $2 }' <<<"$met"; }
vl='volume="v-v"'

say "the text format"
bad=$(awk '
	/^# HELP / { help[$3] = 1; next }
	/^# TYPE / { if (!help[$3]) { print "TYPE before HELP: " $0 }; type[$3] = $4; next }
	/^#/ { print "comment: " $0; next }
	{
		if ($0 !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? [0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?$/)
			print "not a sample: " $0
		name = $1; sub(/\{.*/, "", name)
		fam = name; sub(/_(bucket|sum|count)$/, "", fam)
		if (!type[name] && !type[fam]) print "no TYPE for " name
		if ($1 !~ /volume="v-v"/) print "no volume label: " $1
	}' <<<"$met")
check_eq "$bad" "" "every line is a HELP, a TYPE or a sample of a declared family, with the volume label"
check '[ "$(grep -c "^# TYPE" <<<"$met")" -ge 30 ]' "$(grep -c "^# TYPE" <<<"$met") families"

say "requests and their latency"
check '[ "$(value siltfs_io_requests_total "$vl,op=\"write\"")" -ge 32 ]' "writes counted ($(value siltfs_io_requests_total "$vl,op=\"write\"") >= 32)"
check '[ "$(value siltfs_io_requests_total "$vl,op=\"read\"")" -ge 32 ]' "reads counted ($(value siltfs_io_requests_total "$vl,op=\"read\"") >= 32)"
check '[ "$(value siltfs_io_bytes_total "$vl,op=\"read\"")" -ge $((2 * MiB)) ]' "bytes read counted"
check_eq "$(value siltfs_io_errors_total "$vl,op=\"read\"")" 0 "no read failed yet"
for op in read write; do
	# cumulative buckets, ending in +Inf = count
	mono=$(awk -v op="$op" 'index($1, "siltfs_io_latency_seconds_bucket{") == 1 && index($1, "op=\"" op "\"") {
		if ($2 < last) bad = 1; last = $2; n++ } END { print (bad ? "no" : "yes") " " n " " last }' <<<"$met")
	read -r ok nb inf <<<"$mono"
	check_eq "$ok" yes "$op latency buckets are cumulative ($nb buckets)"
	check_eq "$inf" "$(value siltfs_io_latency_seconds_count "$vl,op=\"$op\"")" "$op: the +Inf bucket equals the count"
	check_eq "$(value siltfs_io_latency_seconds_count "$vl,op=\"$op\"")" "$(value siltfs_io_requests_total "$vl,op=\"$op\"")" \
		"$op: one latency observation per request"
done

say "tiers, as status says"
s=$(silt_ctl -m "$M" status --json)
for t in t0 t1; do
	tl="$vl,tier=\"$t\",class=\"$(json_get "$s" ".tiers[] | select(.name == \"$t\") | .class")\""
	for f in chunks used capacity; do
		name=siltfs_tier_$f; [ "$f" != chunks ] && name=${name}_bytes
		check_eq "$(value "$name" "$tl")" "$(json_get "$s" ".tiers[] | select(.name == \"$t\") | .$f")" "$name of $t"
	done
done

say "a damaged chunk: counted per tier, by who found it"
silt_ctl -m "$M" migrate churn >/dev/null && silt_ctl -m "$M" migrate >/dev/null && silt_ctl -m "$M" migrate off >/dev/null
tf=$(silt_chunk_files "$V" "$(stat -c %i "$M/f")" | grep "/t1/" | head -n1)
printf '\xAA' | dd of="$tf" bs=1 seek=$((5 * 65536 + 100)) conv=notrunc,fsync status=none
rc=0; dd if="$M/f" of=/dev/null bs=4096 skip=$((5 * 16)) count=1 iflag=direct status=none 2>/dev/null || rc=$?
check "[ $rc -ne 0 ]" "the damaged block reads as an error"
rc=0; silt_ctl -m "$M" scrub >/dev/null 2>&1 || rc=$?
check_eq "$rc" 1 "siltctl scrub exits 1: it found damage"
met=$(silt_ctl -m "$M" metrics)
check_eq "$(value siltfs_checksum_errors_total "$vl,tier=\"t1\",source=\"read\"")" 1 "one checksum error found by a read on t1"
check_eq "$(value siltfs_checksum_errors_total "$vl,tier=\"t1\",source=\"scrub\"")" 1 "one found by the scrubber on t1"
check_eq "$(value siltfs_checksum_errors_total "$vl,tier=\"t0\",source=\"read\"")" 0 "none on t0"
check '[ "$(value siltfs_io_errors_total "$vl,op=\"read\"")" -ge 1 ]' "the failed read counted as an error"
check '[ "$(value siltfs_events_total "$vl,kind=\"checksum\"")" -ge 1 ]' "checksum events counted"
check_eq "$(value siltfs_scrub_damaged_chunks "$vl")" 1 "the last scrub pass found 1 damaged chunk"
check '[ "$(value siltfs_migration_moves_total "$vl,direction=\"down\"")" -ge 32 ]' "the demotion's moves counted"

say "--json"
j=$(silt_ctl -m "$M" metrics --json)
check_eq "$(json_get "$j" '[.metrics[] | select(.name == "siltfs_checksum_errors_total") | .samples[] | select(.labels.tier == "t1" and .labels.source == "scrub") | .value] | .[0]')" 1 \
	"the same samples as JSON"
check_eq "$(json_get "$j" '[.metrics[].samples | length] | add')" "$(grep -vc '^#' <<<"$met")" "as many samples as the text"
check_cmd "umount" silt_umount "$M"

silt_summary
