#!/usr/bin/env bash
# net_tier: a `class = net` tier on a real network filesystem (issue 11
# point 4): sshfs, from a client network namespace to an sshd in a server
# namespace over a veth pair shaped with tc tbf. t0 is a small local folder,
# t1 the sshfs export (timeout = 1s, retries = 1; compression = zstd:1, so
# that what migration sends down takes the compressed-chunk path).
#  1. a file spills to t1; its tail read hot and `siltctl migrate`: the hot
#     chunks come up to t0 and the cold head goes down to t1 (siltctl where,
#     and the chunk files on the server's export).
#  2. the link is cut (ip link set down in the server's namespace; sshfs's
#     own keepalive would wait 15 s): a read of a chunk on t1 fails with EIO
#     within the timeout and its retry (plus a margin), and so does an fsync
#     of a file with unsynced data there; a read of a t0 chunk
#     meanwhile is fast, `siltctl status` answers at once and shows t1
#     failed, new data goes elsewhere, and the tier checker still sees t0's
#     folder go away and come back; the link back up, t1 is active again and every byte
#     reads back.
#  3. the server is killed (sshd and its session), then started again: the
#     same, and the data reads back.
. "$(dirname "$0")/lib.sh"
set +e

for b in sshfs /usr/sbin/sshd ssh-keygen tc; do
	command -v "$b" >/dev/null || { skip "no $b (scripts/deps.sh installs it)"; silt_summary; exit 0; }
done

S="$SILT_TMP/srv"; V="$SILT_TMP/v"; M="$SILT_TMP/m"; NET="$SILT_TMP/net"; W="$SILT_TMP/w"
mkdir -p "$S/export" "$V/meta" "$V/t0" "$NET" "$W" "$SILT_TMP/logs"
chmod 700 "$S"
LOG="$SILT_TMP/logs/v.log"

say "a server namespace with sshd, sshfs from a client namespace"
n=$((RANDOM % 200 + 20))
A=silt-c$$ B=silt-s$$ SRV=10.243.$n.2
silt_netns_pair "$A" "$B" "10.243.$n.1/24" "$SRV/24" || silt_abort "netns pair"
for h in "$A" "$B"; do
	ip -n "$h" link set "v-$h" mtu 1500
	nsenter --net="/run/netns/$h" tc qdisc add dev "v-$h" root tbf rate 200mbit burst 1mb latency 100ms ||
		silt_abort "tc tbf on v-$h"
done
ssh-keygen -q -t ed25519 -N '' -f "$S/host_key" && ssh-keygen -q -t ed25519 -N '' -f "$S/id" ||
	silt_abort "ssh-keygen"
cp "$S/id.pub" "$S/authorized_keys" && chmod 600 "$S/authorized_keys"
cat > "$S/sshd_config" <<EOF
ListenAddress $SRV
Port 22
HostKey $S/host_key
AuthorizedKeysFile $S/authorized_keys
PidFile $S/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
ClientAliveInterval 5
Subsystem sftp internal-sftp
EOF
SSHD=""
start_sshd() {
	nsenter --net="/run/netns/$B" /usr/sbin/sshd -D -e -f "$S/sshd_config" 2>>"$SILT_TMP/logs/sshd.log" &
	SSHD=$!
	silt_wait_for 5 'nsenter --net="/run/netns/$B" ss -ltn | grep -q "$SRV:22 "'
}
# kill_tree PID: PID and every process below it (the sshd sessions)
kill_tree() {
	local c
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do kill_tree "$c"; done
	kill -KILL "$1" 2>/dev/null
}
silt_at_exit 'kill_tree "$SSHD"'
start_sshd || silt_abort "sshd does not listen on $SRV:22: $(cat "$SILT_TMP/logs/sshd.log")"

# sshfs's own bound on a dead link is ServerAlive (5 s x 3): much longer
# than the tier's timeout, so that the daemon's bound is what the test sees.
# Cleanup: lib.sh unmounts FUSE mounts (fusermount3 -uz), the watchdog
# aborts their connections.
silt_track_mount "$NET"
nsenter --net="/run/netns/$A" sshfs "root@$SRV:$S/export" "$NET" -o \
"IdentityFile=$S/id,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes,ConnectTimeout=2,"\
"ServerAliveInterval=5,ServerAliveCountMax=3,reconnect,LogLevel=ERROR" 2>"$SILT_TMP/logs/sshfs.log" ||
	silt_abort "sshfs: $(cat "$SILT_TMP/logs/sshfs.log")"
check 'silt_is_fuse_mount "$NET"' "sshfs mounted the export"
mkdir -p "$NET/silt"
python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_DIRECT)
os.close(fd)' "$NET/odirect" 2>/dev/null
check '[ $? -eq 0 ]' "sshfs takes O_DIRECT opens (the net tier keeps them)"
rm -f "$NET/odirect"

cat > "$V/vol.conf" <<EOF
[volume]
name = v-net
chunk_size = 64K
log_file = $LOG
metadata = $V/meta

[ram]
size = 0

[placement]
policy = lru
epoch = 1h

[tier t0]
path = $V/t0
class = nvme
capacity = 1M

[tier t1]
path = $NET/silt
class = net
capacity = 1G
timeout = 1s
retries = 1
write_promote = no
compression = zstd:1
EOF
silt_mount "$V/vol.conf" "$M" || silt_abort "cannot mount: $(cat "$SILT_LAST_ERR")"
PID=$(silt_daemon_pids "$M" | head -n 1)
uuid=$(json_get "$(silt_ctl -m "$M" status --json)" .volume.uuid)

tstate() { json_get "$(silt_ctl -m "$M" status --json)" ".tiers[] | select(.name == \"$1\") | .$2"; }
wait_state() { local tier=$1 want=$2; silt_wait_for "${3:-15}" '[ "$(tstate "$tier" state)" == "$want" ]'; }
# tier_of K: the tier that holds chunk K of f
tier_of() { json_get "$(silt_ctl where --json "$M/f")" ".tiers[] | select(any(.runs[]; .[0] <= $1 and $1 <= .[1])) | .name"; }
on_tier() { silt_where_tier_chunks "$M/$1" "$2"; }
runs() { json_get "$(silt_ctl where --json "$M/$1")" ".tiers[] | select(.name == \"$2\") | .runs | map(\"\(.[0])-\(.[1])\") | join(\",\")"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# read_chunk K: read chunk K of f (O_DIRECT): sets RC (dd's status) and MS
read_chunk() {
	local t0=$(now_ms)
	ERR=$(dd if="$M/f" of=/dev/null bs=64k skip="$1" count=1 iflag=direct status=none 2>&1)
	RC=$?
	MS=$(($(now_ms) - t0))
}
alive() { kill -0 "$PID" 2>/dev/null; }
remote_files() { find "$S/export/silt/$uuid/chunks" -type f | wc -l; }

say "1. cold chunks go down to the net tier, hot ones come up"
# base64 of random bytes: zstd saves a quarter of it, so what migration
# sends down to t1 is stored compressed (random data would be stored plain)
head -c $((3 << 19)) /dev/urandom | base64 -w0 > "$W/f"
dd if="$W/f" of="$M/f" bs=1M oflag=direct status=none && sync
hot0=$(on_tier f t0)
check_eq "$(runs f t0)" "0-$((hot0 - 1))" "f's first $hot0 chunks are on t0, the rest spilled to t1"
check_eq "$(on_tier f t1)" $((32 - hot0)) "$((32 - hot0)) chunks on t1 (the net tier)"
check '[ "$(remote_files)" -ge 1 ]' "the server's export holds the chunk file ($(du -sh "$S/export/silt" | cut -f1))"
h1=24 # the last 8 chunks read hot (t0 holds 14)
for i in 1 2 3; do dd if="$M/f" of=/dev/null bs=64k skip=$h1 count=8 iflag=direct status=none; done
# (an epoch makes room first, the next promotes into it)
moved=0
for e in 1 2 3; do
	moved=$((moved + $(json_get "$(silt_ctl -m "$M" migrate --json)" .moved)))
	up=0; for k in $(seq $h1 31); do [ "$(tier_of $k)" == t0 ] && up=$((up + 1)); done
	[ "$up" -eq 8 ] && break
done
check_ge "$moved" 16 "siltctl migrate ($e epochs) moved $moved chunks"
check_eq "$up" 8 "the hot tail $h1-31 came up to t0"
check_ge "$(on_tier f t1)" 18 "cold chunks of the head went down to t1 ($(runs f t1))"
check_eq "$(tier_of 1)" t1 "chunk 1 (cold) is on t1"
check 'cmp -s "$W/f" "$M/f"' "f reads back byte for byte"
ls -l "$S/export/silt/$uuid/chunks" | sed 's/^/    [export] /'

# outage WHAT: t1 is unreachable (the caller made it so): bounded reads,
# the daemon and the local tier unhindered, t1 failed
outage() {
	local what=$1 bg ms
	silt_drop_caches
	# the net read in the background, the local one meanwhile
	( read_chunk 1; echo "$RC $MS $ERR" > "$W/netread" ) &
	bg=$!
	sleep 0.3
	read_chunk $((h1 + 1))
	check_eq "$RC" 0 "$what: a read of a t0 chunk meanwhile works ($MS ms)"
	check_le "$MS" 500 "$what: ... and is fast ($MS ms)"
	local t=$(now_ms) st
	st=$(silt_ctl -m "$M" status --json)
	ms=$(($(now_ms) - t))
	check_le "$ms" 1000 "$what: siltctl status answers at once ($ms ms)"
	silt_bounded 30 "$M" "$what: the read of a t1 chunk" silt_wait_pids_gone 30 $bg
	read -r RC MS ERR < "$W/netread"
	say "$what: the read of a t1 chunk: status $RC after $MS ms ($ERR)"
	check '[ "$RC" -ne 0 ] && [[ "$ERR" == *"Input/output error"* ]]' "$what: it failed with EIO"
	# timeout 1 s, one retry: 2 s, and 1.5 s for the rest
	check_le "$MS" 3500 "$what: within timeout and retry ($MS ms <= 3500)"
	check 'wait_state t1 failed 5' "$what: siltctl status shows t1 failed ($(tstate t1 reason))"
	check 'silt_ctl -m "$M" tiers | grep -E "^ *t1 " | grep -q failed' "$what: siltctl tiers too"
	check 'alive' "$what: the daemon is up"
	silt_random "$W/g" $((128 << 10))
	check 'cp "$W/g" "$M/g" && sync' "$what: a new file is written"
	check_eq "$(on_tier g t1)" 0 "$what: none of it on t1"
	rm -f "$M/g"
	# t1's checker may be stuck in sshfs (its ssh lives 15 s after a cut):
	# the looks at the other tiers go on
	mv "$V/t0" "$V/t0.away"
	check 'wait_state t0 failed 4' "$what: the checker still looks at the other tiers (t0 moved away: failed)"
	mv "$V/t0.away" "$V/t0"
	check 'wait_state t0 active 10' "$what: t0 moved back: active"
}

# back WHAT: t1 reachable again: active, and every byte right
back() {
	local what=$1 t=$(now_ms)
	check 'wait_state t1 active 30' "$what: t1 is active again ($(($(now_ms) - t)) ms)"
	silt_drop_caches
	check 'cmp -s "$W/f" "$M/f"' "$what: f reads back byte for byte"
	check_eq "$(tier_of 1)" t1 "$what: chunk 1 is still on t1"
	silt_ctl -m "$M" events | grep "tier t1" | tail -n 2 | sed 's/^/    [events] /'
}

say "sshfs cannot punch holes: punched ranges still read as zeros"
# f's own t1 is compressed and checksummed, so a punch there rewrites the
# chunk; a plain net tier (a second volume) punches in the chunk file,
# which sshfs refuses (EOPNOTSUPP): siltfs writes the zeros instead
V2="$SILT_TMP/v2" M2="$SILT_TMP/m2"
mkdir -p "$V2/meta" "$V2/t0" "$M2" "$NET/silt2"
cat > "$V2/vol.conf" <<EOF
[volume]
name = v-net2
chunk_size = 64K
log_file = $SILT_TMP/logs/v2.log
metadata = $V2/meta

[ram]
size = 0

[tier t0]
path = $V2/t0
class = nvme
capacity = 1M

[tier t1]
path = $NET/silt2
class = net
capacity = 1G
checksum = no
EOF
silt_mount "$V2/vol.conf" "$M2" || silt_abort "cannot mount v2: $(cat "$SILT_LAST_ERR")"
silt_random "$W/h" $((2 << 20))
dd if="$W/h" of="$M2/h" bs=1M oflag=direct status=none && sync
check_ge "$(silt_where_tier_chunks "$M2/h" t1)" 12 "h: its tail (chunk 20 on) spilled to the plain net tier"
# all of chunk 20 and 8 KiB inside chunk 21, on the mount and in the model
for f in "$M2/h" "$W/h"; do
	fallocate -p -o $((20 * 65536)) -l 65536 "$f" && fallocate -p -o $((21 * 65536 + 8192)) -l 8192 "$f" ||
		fail "fallocate --punch-hole $f"
done
silt_drop_caches
check 'cmp -s "$W/h" "$M2/h"' "h reads back as the model: zeros where punched"
silt_umount "$M2" || fail "umount v2"

say "2. the link is cut"
# chunk 2 rewritten in place on t1 (write_promote = no), then the link cut
# and the file fsynced (one process, the file open all along)
read -r rc ms err < <(python3 - "$W/f" "$M/f" "$B" <<'PY'
import mmap, os, subprocess, sys, time
src, dst, ns = sys.argv[1:4]
buf = mmap.mmap(-1, 65536)
buf.write(open(src, "rb").read()[2 * 65536:3 * 65536])
fd = os.open(dst, os.O_RDWR | os.O_DIRECT)
os.pwrite(fd, buf, 2 * 65536)
subprocess.run(["ip", "-n", ns, "link", "set", "v-" + ns, "down"], check=True)
t = time.monotonic()
try:
	os.fsync(fd); rc, err = 0, "ok"
except OSError as e:
	rc, err = e.errno, e.strerror
print(rc, int((time.monotonic() - t) * 1000), err)
PY
)
check_eq "$(tier_of 2)" t1 "chunk 2 was rewritten in place on t1"
say "link down: fsync of f: status $rc after $ms ms ($err)"
check_eq "$rc" 5 "link down: fsync of f fails with EIO"
check_le "$ms" 3500 "link down: ... within timeout and retry ($ms ms <= 3500)"
outage "link down"
ip -n "$B" link set "v-$B" up
back "link up"

say "3. the server is killed"

kill_tree "$SSHD"
outage "server killed"
start_sshd || fail "sshd starts again"
back "server restarted"

check 'alive' "the daemon is up at the end"
silt_umount "$M" || fail "umount"
silt_summary
