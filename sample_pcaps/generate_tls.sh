#!/usr/bin/env bash
# Make sample_pcaps/tls_call.pcap (SIP over TLS) and tls_call.keys (its TLS key log) with
# real software: SIPp places and answers two calls over TCP, OpenSSL carries them over TLS.
#
#   sudo bash sample_pcaps/generate_tls.sh
#
#   sf-tlsc (198.18.1.1)                                    sf-tlss (198.18.1.2)
#   SIPp UAC :5070 --tcp--> socat :5060 -> openssl s_client ==TLS==> socat OPENSSL-LISTEN :5061
#                                          (-keylogfile)              --tcp--> SIPp UAS :5060
#
# SIPp 3.6 in Debian has no TLS, so the TLS leg is a pair of relays: socat hands each TCP
# connection of the UAC to `openssl s_client`, which writes the session secrets in the
# NSS key log format (what Wireshark's tls.keylog_file reads); socat's OPENSSL-LISTEN
# terminates TLS in front of the UAS, with a self-signed certificate made here. tcpdump
# records the veth between the two namespaces, where only TLS travels.
#
# Shapes worth testing: the INVITEs are about 3.95 KB (scenarios/uac_large.xml) and
# s_client sends at most 2048 bytes per TLS record (-max_send_frag), so each INVITE spans
# 2 TLS records, and segmentation offload is off, so each record spans 2 TCP segments.
#
# Needs root, sipp, socat (with OpenSSL), openssl, tcpdump, tshark, iproute2.
# Safety as in generate.sh: everything runs inside two namespaces made here ("sf-tls*"),
# joined by a veth pair created inside them; every process runs under `timeout`; the EXIT
# trap kills what is left in the namespaces, deletes them and the work directory.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCENARIOS=$HERE/scenarios
NS_C=sf-tlsc
NS_S=sf-tlss
IP_C=198.18.1.1  # RFC 2544 benchmarking range, as in generate.sh
IP_S=198.18.1.2
SIP_PORT=5060
UAC_PORT=5070
TLS_PORT=5061    # RFC 3261 §26.2: sips; Wireshark dissects TLS on it as SIP
CALLS=2
RUN_TIMEOUT=30
CAPTURE_TIMEOUT=90
OUT=tls_call.pcap
KEYS=tls_call.keys

WORK=""
CAPTURE_PID=""

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'generate_tls.sh: %s\n' "$*" >&2; exit 1; }

net_down() {
    local ns pid
    for ns in "$NS_C" "$NS_S"; do
        [[ -e /run/netns/$ns ]] || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill "$pid" 2>/dev/null || true
        done
        ip netns del "$ns"
    done
}

cleanup() {
    local rc=$?
    if [[ -n $CAPTURE_PID ]]; then
        kill "$CAPTURE_PID" 2>/dev/null || true
    fi
    net_down
    wait 2>/dev/null || true  # every child was started in the namespaces just emptied
    if [[ -n $WORK && -d $WORK ]]; then
        if ((rc == 0)); then
            rm -rf -- "$WORK"
        else
            printf 'generate_tls.sh: failed; logs kept in %s\n' "$WORK" >&2
        fi
    fi
    exit "$rc"
}

net_up() {
    local ns
    net_down
    for ns in "$NS_C" "$NS_S"; do
        ip netns add "$ns"
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ns" link set lo up
    done
    ip link add tlsc0 netns "$NS_C" mtu 1500 type veth peer name tlss0 netns "$NS_S" mtu 1500
    ip -n "$NS_C" addr add "$IP_C/24" dev tlsc0
    ip -n "$NS_S" addr add "$IP_S/24" dev tlss0
    # One MTU-sized segment per packet on the wire, as between two hosts (no GSO super-packets).
    ip -n "$NS_C" link set tlsc0 gso_max_segs 1 up
    ip -n "$NS_S" link set tlss0 gso_max_segs 1 up
}

make_cert() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sipflow-tls-sample" \
        -keyout "$WORK/server.key" -out "$WORK/server.crt" 2>"$WORK/openssl-req.log" ||
        die "openssl req failed"
}

# wait_listen NS PORT: until something listens on tcp PORT in NS (at most 5 s).
wait_listen() {
    local _
    for _ in $(seq 50); do
        ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
        sleep 0.1
    done
    die "nothing listens on $1 port $2"
}

start_capture() {
    ip netns exec "$NS_C" timeout "$CAPTURE_TIMEOUT" \
        tcpdump -n --immediate-mode -U -s 0 -i tlsc0 -w "$WORK/$OUT" 2>"$WORK/tcpdump.err" &
    CAPTURE_PID=$!
    local _
    for _ in $(seq 100); do
        grep -q "listening on" "$WORK/tcpdump.err" && return 0
        sleep 0.1
    done
    die "tcpdump did not start: $(cat "$WORK/tcpdump.err")"
}

stop_capture() {
    sleep 1.2  # frames still in libpcap's ring at SIGINT would be lost
    kill -INT "$CAPTURE_PID"
    wait "$CAPTURE_PID" || true
    CAPTURE_PID=""
    [[ $(sed -n 's/ packets captured//p' "$WORK/tcpdump.err") == \
        $(sed -n 's/ packets received by filter//p' "$WORK/tcpdump.err") ]] || die "tcpdump lost frames"
}

run_calls() {
    local common=(-nostdin -t t1 -timeout "${RUN_TIMEOUT}s" -timeout_error -max_retrans 3 -trace_err)
    local uas_pid rc=0
    (cd "$WORK" && exec ip netns exec "$NS_S" timeout "$RUN_TIMEOUT" \
        sipp -sf "$SCENARIOS/uas.xml" "${common[@]}" -i "$IP_S" -p "$SIP_PORT" -m "$CALLS" \
        >"$WORK/uas.log" 2>&1) &
    uas_pid=$!
    wait_listen "$NS_S" "$SIP_PORT"
    # TLS server relay: one TLS connection in, one TCP connection to the UAS out.
    ip netns exec "$NS_S" timeout "$RUN_TIMEOUT" socat -d \
        "OPENSSL-LISTEN:$TLS_PORT,bind=$IP_S,reuseaddr,cert=$WORK/server.crt,key=$WORK/server.key,verify=0" \
        "TCP:$IP_S:$SIP_PORT" 2>"$WORK/socat-server.log" &
    wait_listen "$NS_S" "$TLS_PORT"
    # TLS client relay: s_client writes the key log; -quiet also turns off its command
    # letters (a line starting with Q or R would otherwise quit or renegotiate); socat needs
    # the colon in -connect escaped;
    # -no_ign_eof: when the UAC hangs up, s_client closes the TLS session (close_notify).
    ip netns exec "$NS_C" timeout "$RUN_TIMEOUT" socat -d \
        "TCP-LISTEN:$SIP_PORT,bind=$IP_C,reuseaddr" \
        "EXEC:openssl s_client -quiet -no_ign_eof -nocommands -connect $IP_S\\:$TLS_PORT -max_send_frag 2048 -keylogfile $WORK/$KEYS" \
        2>"$WORK/socat-client.log" &
    wait_listen "$NS_C" "$SIP_PORT"
    (cd "$WORK" && exec ip netns exec "$NS_C" timeout "$RUN_TIMEOUT" \
        sipp -sf "$SCENARIOS/uac_large.xml" "${common[@]}" -i "$IP_C" -p "$UAC_PORT" -m "$CALLS" \
        -r 2 -d 200 -cid_str "%u-tls_call@%s" "$IP_C:$SIP_PORT" >"$WORK/uac.log" 2>&1) || rc=$?
    wait "$uas_pid" || rc=$((rc ? rc : $?))
    ((rc == 0)) || die "SIPp failed (exit $rc)"
}

# check: with the key log tshark sees every message, without it none.
check() {
    local with without
    with=$(tshark -n -r "$HERE/$OUT" -o "tls.keylog_file:$HERE/$KEYS" -Y sip -T fields -e frame.number | wc -l)
    without=$(tshark -n -r "$HERE/$OUT" -Y sip -T fields -e frame.number | wc -l)
    log "$OUT: tshark sees SIP in $with frames with $KEYS, $without without"
    ((with > 0)) || die "tshark decrypts no SIP with the key log"
    ((without == 0)) || die "tshark sees SIP without the key log"
}

main() {
    (($(id -u) == 0)) || die "needs root (network namespaces)"
    local tool
    for tool in sipp socat openssl tcpdump tshark ip ss; do
        command -v "$tool" >/dev/null || die "missing $tool"
    done
    WORK=$(mktemp -d /tmp/sf-tls.XXXXXX)
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    make_cert
    net_up
    start_capture
    run_calls
    stop_capture
    local f
    for f in "$OUT" "$KEYS"; do
        chown --reference="$HERE" "$WORK/$f"
        chmod 644 "$WORK/$f"
        mv -f "$WORK/$f" "$HERE/$f"
    done
    check
}

main "$@"
