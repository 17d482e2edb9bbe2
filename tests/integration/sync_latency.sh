#!/usr/bin/env bash
# Replication over a link with latency (issue 10 point 6): the primary's
# host reaches the replica's through silt-delay, a proxy in its namespace
# that holds every byte 25 ms each way (50 ms round trip; this kernel has
# no netem), on top of the 200 Mbit/s tbf link of sync_hosts.sh. A new
# volume's files arrive; a change made under a steady write load arrives
# within max_lag and a round trip; a cut of the delayed link (the proxy
# killed -9 while a 16 MiB file ships) stalls shipping, which resumes from
# the last acknowledged batch when the link is back, and the replica ends
# equal to the primary, byte for byte. A cut while nothing ships shows
# at once: the sender watches the idle connection.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sync_hosts.sh"

DPID=
start_delay() { # the delayed path from the primary's host: 127.0.0.1:7499 -> the replica
	# nsenter --net, not ip netns exec: that makes a mount namespace too,
	# which would keep a copy of our FUSE mounts alive past their unmount
	nsenter --net=/run/netns/"$A" "$SILT_DELAY" 127.0.0.1:7499 "10.239.$n.2:7411" 25 &
	DPID=$!
	silt_wait_for 5 "nsenter --net=/run/netns/'$A' ss -ltn | grep -q 127.0.0.1:7499" || silt_abort "silt-delay does not listen"
}
silt_at_exit '[ -z "$DPID" ] || kill -9 "$DPID" 2>/dev/null; [ -z "${EPID:-}" ] || kill -9 "$EPID" 2>/dev/null'

say "the link: silt-delay holds each way 25 ms"
nsenter --net=/run/netns/"$A" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 7498)); s.listen(1)
c, _ = s.accept()
while True:
    d = c.recv(65536)
    if not d: break
    c.sendall(d)' &
EPID=$!
nsenter --net=/run/netns/"$A" "$SILT_DELAY" 127.0.0.1:7497 127.0.0.1:7498 25 &
probe=$!
sleep 0.5
rtt=$(nsenter --net=/run/netns/"$A" python3 -c '
import socket, time
c = socket.create_connection(("127.0.0.1", 7497)); best = 1e9
for i in range(5):
    t = time.time(); c.sendall(b"ping"); c.recv(16); best = min(best, time.time() - t)
print(int(best * 1000))') || rtt=0
kill -9 "$probe" "$EPID" 2>/dev/null || true
EPID=
check '((rtt >= 50 && rtt < 150))' "a round trip through it takes 50 ms ($rtt ms)"

sed -i "s/^address = 10.239.$n.2:7411/address = 127.0.0.1:7499/" "$pconf"
start_delay
start_replica
start_primary

say "a volume's files arrive over the delayed link"
mkdir "$P/vms"
silt_random "$P/vms/disk.img" $((8 << 20))
echo hello > "$P/vms/notes.txt"
wait_same "8 MiB and a file arrive" 30

say "under a steady write load, a change arrives within max_lag (2 s) and a round trip"
under_load "$P/vms/disk.img" 500
dt=$ARRIVAL_MS fpid=$FIO_PID
check '((ARRIVED))' "the file arrives ($dt ms)"
check '((dt <= 3000))' "within max_lag and a round trip ($dt ms)"
wait "$fpid" || fail "fio steady"
wait_same "the replica follows the load" 30

say "the delayed link is cut while 16 MiB ship, and comes back"
silt_random "$P/vms/big.img" $((16 << 20))
sleep 0.3
kill -9 "$DPID"
wait "$DPID" 2>/dev/null || true
DPID=
sleep 2
state=$(json_get "$(silt_ctl -m "$P" sync status --json)" '.peers[0].state')
check '[ "$state" != live ]' "shipping stalls while the link is down (state $state)"
start_delay
wait_same "shipping resumes and the replica equals the primary" 60
live() { [ "$(json_get "$(silt_ctl -m "$P" sync status --json)" '.peers[0].state')" = live ]; }
check 'silt_wait_for 20 live' "the peer is live again"

say "an idle link that is cut shows at once, not at the next ping"
kill -9 "$DPID"
wait "$DPID" 2>/dev/null || true
DPID=
check 'silt_wait_for 1 "! live"' "the peer is not live within 1 s"
start_delay
check 'silt_wait_for 20 live' "and live again when the link is back"
silt_summary
