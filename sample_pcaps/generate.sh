#!/usr/bin/env bash
# Regenerate sipflow's own sample captures with real software: SIPp makes the calls,
# the Linux kernel carries them (veth pairs in network namespaces, or loopback inside
# one), tcpdump/dumpcap record them, and tshark lists what it sees in expected/*.tsv.
#
#   sudo bash sample_pcaps/generate.sh                 # every capture
#   sudo bash sample_pcaps/generate.sh vlan_call ...   # only these (names as in CAPTURES)
#
# Needs root, sipp, tcpdump, dumpcap, tshark, capinfos, gzip, python3 (stdlib only),
# iproute2, and a kernel with veth, netns and (for the VLAN captures) eBPF tcx (>= 6.6).
#
# Safety: all traffic stays inside the namespaces this script creates (names start
# with "sf-") and is deleted on exit; the host's interfaces, addresses and MTUs are never
# touched. Addresses are from 198.18.0.0/15 (RFC 2544 benchmarking range) and
# fd00:5f::/64 (unique local, RFC 4193). Every SIPp and capture process runs under
# `timeout`, and the EXIT trap kills whatever is left in the namespaces before deleting them.
#
# Idempotent: each run rebuilds the namespaces from scratch, writes into a temporary
# directory, and only then replaces the capture and its expected/<capture>.tsv.
#
# To add a capture: write a capture_<name> function (net_up, start_capture, sipp_call,
# stop_capture, publish, expect_* checks) and add <name> to CAPTURES.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCENARIOS=$HERE/scenarios
EXPECTED=$HERE/expected
PYTHON=${PYTHON:-python3}

NS_UAC=sf-uac
NS_UAS=sf-uas
UAC_MAC=02:00:5f:00:00:01   # locally administered, fixed so captures differ only in time
UAS_MAC=02:00:5f:00:00:02
UAC_V4=198.18.0.1
UAS_V4=198.18.0.2
UAC_V6=fd00:5f::1
UAS_V6=fd00:5f::2
SIP_PORT=5060

RUN_TIMEOUT=30      # seconds, one SIPp run
CAPTURE_TIMEOUT=90  # seconds, one tcpdump/dumpcap run (stopped long before, normally)

CAPTURES=(
    udp_call
    tcp_large_invite
    udp_fragmented
    ipv6_call
    ipv6_fragmented
    vlan_call
    qinq_call
    sll_call
    sll2_call
    nano_call
    multi_if
    udp_call_gz   # also made at the end of udp_call
)

WORK=""
CAPTURE_PID=""

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'generate.sh: %s\n' "$*" >&2; exit 1; }

# --- cleanup ---------------------------------------------------------------------------

kill_namespace_processes() {
    local ns=$1 pid
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        kill "$pid" 2>/dev/null || true
    done
}

net_down() {
    local ns
    for ns in "$NS_UAC" "$NS_UAS"; do
        if [[ -e /run/netns/$ns ]]; then
            kill_namespace_processes "$ns"
            ip netns del "$ns"
        fi
    done
}

cleanup() {
    local rc=$?
    if [[ -n $CAPTURE_PID ]]; then
        kill "$CAPTURE_PID" 2>/dev/null || true
        wait "$CAPTURE_PID" 2>/dev/null || true
    fi
    net_down
    # Reap anything still ours (all children were started in the namespaces just emptied).
    wait 2>/dev/null || true
    if [[ -n $WORK && -d $WORK ]]; then
        if ((rc == 0)); then
            rm -rf -- "$WORK"
        else
            printf 'generate.sh: failed; SIPp and capture logs kept in %s\n' "$WORK" >&2
        fi
    fi
    exit "$rc"
}

# --- network ---------------------------------------------------------------------------

# net_up FAMILY MTU: two namespaces joined by one veth pair (uac0 <-> uas0).
# FAMILY is 4 or 6; the other family is switched off (4) or kept quiet (6) so the
# captures hold the call and the neighbour discovery it needs, little else.
net_up() {
    local family=$1 mtu=$2 ns
    net_down
    for ns in "$NS_UAC" "$NS_UAS"; do
        ip netns add "$ns"
        ip netns exec "$ns" sysctl -qw \
            net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
            net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0 \
            net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
        if [[ $family == 4 ]]; then
            ip netns exec "$ns" sysctl -qw \
                net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        fi
        ip -n "$ns" link set lo up
    done
    # Created directly inside the namespaces: no interface ever appears on the host.
    ip link add uac0 netns "$NS_UAC" address "$UAC_MAC" mtu "$mtu" type veth \
        peer name uas0 netns "$NS_UAS" address "$UAS_MAC" mtu "$mtu"
    if [[ $family == 4 ]]; then
        ip -n "$NS_UAC" addr add "$UAC_V4/24" dev uac0
        ip -n "$NS_UAS" addr add "$UAS_V4/24" dev uas0
    else
        ip -n "$NS_UAC" addr add "$UAC_V6/64" dev uac0 nodad
        ip -n "$NS_UAS" addr add "$UAS_V6/64" dev uas0 nodad
    fi
    ip -n "$NS_UAC" link set uac0 up
    ip -n "$NS_UAS" link set uas0 up
}

# no_segmentation_offload: make TCP hand the veth one MSS per packet, as a real NIC puts
# it on the wire; otherwise veth (TSO/GSO on) carries, and tcpdump shows, one 4 KB "segment".
no_segmentation_offload() {
    ip -n "$NS_UAC" link set uac0 gso_max_segs 1
    ip -n "$NS_UAS" link set uas0 gso_max_segs 1
}

# vlan_tags TPID:VID...: both ends of the veth push these tags on egress and pop them on
# ingress (see vlan_tag.py for why this is eBPF and not a vlan sub-interface).
vlan_tags() {
    ip netns exec "$NS_UAC" "$PYTHON" "$HERE/vlan_tag.py" uac0 "$@" >&2
    ip netns exec "$NS_UAS" "$PYTHON" "$HERE/vlan_tag.py" uas0 "$@" >&2
}

# --- capture ---------------------------------------------------------------------------

# start_capture NS READY_TEXT COMMAND...: run a capture tool in NS, wait until it listens.
start_capture() {
    local ns=$1 ready=$2
    shift 2
    : >"$WORK/capture.err"
    ip netns exec "$ns" timeout "$CAPTURE_TIMEOUT" "$@" 2>"$WORK/capture.err" &
    CAPTURE_PID=$!
    for _ in $(seq 100); do
        grep -q "$ready" "$WORK/capture.err" && return 0
        kill -0 "$CAPTURE_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK/capture.err" >&2
    die "capture did not start: $*"
}

stop_capture() {
    # libpcap hands frames over in blocks (TPACKET_V3, up to ~1 s late) unless in immediate
    # mode, and frames still in the ring at SIGINT are lost: wait longer than that.
    sleep 1.2
    kill -INT "$CAPTURE_PID"
    wait "$CAPTURE_PID" || true
    CAPTURE_PID=""
    cat "$WORK/capture.err" >&2
    # tcpdump's own count: "N packets captured" must equal "N packets received by filter".
    if grep -q 'packets captured' "$WORK/capture.err"; then
        [[ $(sed -n 's/ packets captured//p' "$WORK/capture.err") == \
            $(sed -n 's/ packets received by filter//p' "$WORK/capture.err") ]] ||
            die "tcpdump lost frames at stop"
    fi
}

# tcpdump_on NS FILE TCPDUMP_ARGS...: --immediate-mode and -U so every frame is in the
# file when tcpdump is stopped (see stop_capture).
tcpdump_on() {
    local ns=$1 file=$2
    shift 2
    start_capture "$ns" "listening on" tcpdump -n --immediate-mode -U -s 0 -w "$WORK/$file" "$@"
}

# --- SIPp ------------------------------------------------------------------------------

# sipp_call NAME UAC_NS UAS_NS TRANSPORT UAC_SCENARIO CALLS UAC_IP UAS_IP [UAC_PORT UAS_PORT]
# Starts the UAS, runs the UAC to completion, waits for the UAS; fails unless every
# call succeeded on both sides (SIPp exits 0 only then). Calls start every 0.5 s and
# last 0.2 s after the ACK, so they do not overlap. Call-IDs are "<n>-<NAME>@<uac ip>"
# (-cid_str), the same on every run, so expected/*.tsv only changes if the traffic does.
sipp_call() {
    local name=$1 uac_ns=$2 uas_ns=$3 transport=$4 scenario=$5 calls=$6 uac_ip=$7 uas_ip=$8
    local uac_port=${9:-$SIP_PORT} uas_port=${10:-$SIP_PORT} uas_pid rc=0
    local remote=$uas_ip
    [[ $uas_ip == *:* ]] && remote="[$uas_ip]"
    local common=(-nostdin -t "$transport" -timeout "${RUN_TIMEOUT}s" -timeout_error -max_retrans 3 -trace_err)

    (cd "$WORK" && exec ip netns exec "$uas_ns" timeout "$RUN_TIMEOUT" \
        sipp -sf "$SCENARIOS/uas.xml" "${common[@]}" -i "$uas_ip" -p "$uas_port" -m "$calls" \
        >"$WORK/$name.uas.log" 2>&1) &
    uas_pid=$!
    sleep 0.5  # the UAS must listen before the first INVITE
    (cd "$WORK" && exec ip netns exec "$uac_ns" timeout "$RUN_TIMEOUT" \
        sipp -sf "$SCENARIOS/$scenario" "${common[@]}" -i "$uac_ip" -p "$uac_port" -m "$calls" \
        -r 2 -d 200 -cid_str "%u-$name@%s" "$remote:$uas_port" >"$WORK/$name.uac.log" 2>&1) || rc=$?
    wait "$uas_pid" || rc=$((rc ? rc : $?))
    if ((rc != 0)); then
        die "$name: SIPp failed (exit $rc)"
    fi
}

# --- results and checks ----------------------------------------------------------------

# publish FILE: move the capture into sample_pcaps/ and write expected/FILE.tsv.
publish() {
    local file=$1
    # tcpdump drops to its own user after opening the file: hand the results to whoever
    # owns the work tree, so git and editors see ordinary files.
    chown --reference="$HERE" "$WORK/$file"
    chmod 644 "$WORK/$file"
    mv -f "$WORK/$file" "$HERE/$file"
    "$PYTHON" "$HERE/sip_messages.py" "$HERE/$file" >"$WORK/$file.tsv"
    chown --reference="$HERE" "$WORK/$file.tsv"
    chmod 644 "$WORK/$file.tsv"
    mv -f "$WORK/$file.tsv" "$EXPECTED/$file.tsv"
    log "$file: $(stat -c %s "$HERE/$file") bytes, $("$PYTHON" "$HERE/sip_messages.py" --summary "$HERE/$file")"
}

frames_matching() {
    local out
    out=$(tshark -n -r "$HERE/$1" --enable-heuristic sip_udp --enable-heuristic sip_tcp \
        -Y "$2" -T fields -e frame.number 2>"$WORK/tshark.err") ||
        die "$1: tshark failed on '$2': $(cat "$WORK/tshark.err")"
    grep -c . <<<"$out" || true
}

# expect_frames FILE FILTER MIN [MAX]: at least MIN (at most MAX) frames match FILTER.
expect_frames() {
    local file=$1 filter=$2 min=$3 max=${4:-} n
    n=$(frames_matching "$file" "$filter")
    if ((n < min)) || { [[ -n $max ]] && ((n > max)); }; then
        die "$file: $n frames match '$filter', expected ${min}${max:+..$max}"
    fi
    log "$file: ok, $n frames match '$filter'"
}

# expect_messages FILE N: expected/FILE.tsv lists N SIP messages.
expect_messages() {
    local file=$1 want=$2 n
    n=$(($(wc -l <"$EXPECTED/$file.tsv") - 1))
    ((n == want)) || die "$file: $n SIP messages, expected $want"
}

expect_linktype() {
    local file=$1 want=$2 got
    got=$(capinfos -E "$HERE/$file" | sed -n 's/^File encapsulation: *//p')
    [[ $got == "$want" ]] || die "$file: encapsulation '$got', expected '$want'"
}

# The kernel repeats MLDv2 reports (RFC 3810) at random times after an IPv6 interface
# comes up; they would shift frame numbers from run to run. They are the only packets
# here with a Hop-by-Hop header (next header 0); neighbour discovery is kept.
NO_MLD='not ip6 proto 0'

# 7 SIP messages per answered call: INVITE 100 180 200 ACK BYE 200.
MSGS_PER_CALL=7

# --- captures --------------------------------------------------------------------------

capture_udp_call() {
    local f=udp_call.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    sipp_call udp_call "$NS_UAC" "$NS_UAS" u1 uac.xml 3 "$UAC_V4" "$UAS_V4"
    stop_capture
    publish "$f"
    expect_linktype "$f" "Ethernet"
    expect_messages "$f" $((3 * MSGS_PER_CALL))
    capture_udp_call_gz  # keep the .gz in step with the .pcap it is made from
}

capture_tcp_large_invite() {
    local f=tcp_large_invite.pcap
    net_up 4 1500
    no_segmentation_offload
    tcpdump_on "$NS_UAC" "$f" -i uac0
    # t1: the three calls share one TCP connection, as between two proxies.
    sipp_call tcp_large_invite "$NS_UAC" "$NS_UAS" t1 uac_large.xml 3 "$UAC_V4" "$UAS_V4"
    stop_capture
    publish "$f"
    expect_messages "$f" $((3 * MSGS_PER_CALL))
    # Every INVITE reassembled from 3 or more segments, and no segment over the MTU.
    expect_frames "$f" 'sip.Method == "INVITE" && tcp.segment.count >= 3' 3 3
    expect_frames "$f" 'frame.len > 1514' 0 0
}

capture_udp_fragmented() {
    local f=udp_fragmented.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    sipp_call udp_fragmented "$NS_UAC" "$NS_UAS" u1 uac_large.xml 2 "$UAC_V4" "$UAS_V4"
    stop_capture
    publish "$f"
    expect_messages "$f" $((2 * MSGS_PER_CALL))
    expect_frames "$f" 'sip.Method == "INVITE" && ip.fragment.count >= 3' 2 2
    expect_frames "$f" 'ip.flags.mf == 1' 4
}

capture_ipv6_call() {
    local f=ipv6_call.pcap
    net_up 6 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0 "$NO_MLD"
    sipp_call ipv6_call "$NS_UAC" "$NS_UAS" u1 uac.xml 2 "$UAC_V6" "$UAS_V6"
    stop_capture
    publish "$f"
    expect_messages "$f" $((2 * MSGS_PER_CALL))
    expect_frames "$f" 'sip && ipv6' $((2 * MSGS_PER_CALL))
}

capture_ipv6_fragmented() {
    local f=ipv6_fragmented.pcap
    # 1280: the IPv6 minimum link MTU (RFC 8200 section 5), so the INVITE takes 4 fragments.
    net_up 6 1280
    tcpdump_on "$NS_UAC" "$f" -i uac0 "$NO_MLD"
    sipp_call ipv6_fragmented "$NS_UAC" "$NS_UAS" u1 uac_large.xml 2 "$UAC_V6" "$UAS_V6"
    stop_capture
    publish "$f"
    expect_messages "$f" $((2 * MSGS_PER_CALL))
    expect_frames "$f" 'sip.Method == "INVITE" && ipv6.fragment.count >= 3' 2 2
    expect_frames "$f" 'ipv6.fraghdr.more == 1' 4
}

capture_vlan_call() {
    local f=vlan_call.pcap
    net_up 4 1500
    vlan_tags 8100:100
    tcpdump_on "$NS_UAC" "$f" -i uac0
    sipp_call vlan_call "$NS_UAC" "$NS_UAS" u1 uac.xml 2 "$UAC_V4" "$UAS_V4"
    stop_capture
    publish "$f"
    expect_messages "$f" $((2 * MSGS_PER_CALL))
    expect_frames "$f" 'sip && vlan.id == 100' $((2 * MSGS_PER_CALL))
    expect_frames "$f" '!vlan' 0 0
}

capture_qinq_call() {
    local f=qinq_call.pcap
    net_up 4 1500
    # C-tag 100 pushed first, then S-tag 200 outside it (IEEE 802.1ad, TPID 0x88a8).
    vlan_tags 8100:100 88a8:200
    tcpdump_on "$NS_UAC" "$f" -i uac0
    sipp_call qinq_call "$NS_UAC" "$NS_UAS" u1 uac.xml 2 "$UAC_V4" "$UAS_V4"
    stop_capture
    publish "$f"
    expect_messages "$f" $((2 * MSGS_PER_CALL))
    expect_frames "$f" 'sip && eth.type == 0x88a8 && ieee8021ad.id == 200 && vlan.id == 100' $((2 * MSGS_PER_CALL))
    expect_frames "$f" '!(eth.type == 0x88a8)' 0 0
}

capture_sll_call() {
    local f=sll_call.pcap
    net_up 4 1500
    # libpcap >= 1.10 gives "any" LINUX_SLL2 by default: ask for v1 by name.
    tcpdump_on "$NS_UAC" "$f" -i any -y LINUX_SLL
    sipp_call sll_call "$NS_UAC" "$NS_UAS" u1 uac.xml 2 "$UAC_V4" "$UAS_V4"
    stop_capture
    publish "$f"
    expect_linktype "$f" "Linux cooked-mode capture v1"
    expect_messages "$f" $((2 * MSGS_PER_CALL))
}

capture_sll2_call() {
    local f=sll2_call.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i any -y LINUX_SLL2
    sipp_call sll2_call "$NS_UAC" "$NS_UAS" u1 uac.xml 2 "$UAC_V4" "$UAS_V4"
    stop_capture
    publish "$f"
    expect_linktype "$f" "Linux cooked-mode capture v2"
    expect_messages "$f" $((2 * MSGS_PER_CALL))
}

capture_nano_call() {
    local f=nano_call.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0 --time-stamp-precision=nano
    sipp_call nano_call "$NS_UAC" "$NS_UAS" u1 uac.xml 2 "$UAC_V4" "$UAS_V4"
    stop_capture
    publish "$f"
    capinfos "$HERE/$f" | grep -q 'precision: *nanoseconds' || die "$f: no nanosecond timestamps"
    [[ $(head -c 4 "$HERE/$f" | od -An -tx1 | tr -d ' ') == 4d3cb2a1 ]] ||
        die "$f: not the nanosecond pcap magic (a1b23c4d, little-endian)"
    expect_messages "$f" $((2 * MSGS_PER_CALL))
}

# One dumpcap run, two interfaces, two link types in one pcapng (two IDBs):
# interface 0 = uac0 (Ethernet) carries call A between the namespaces; interface 1 =
# "any" (Linux cooked v1), filtered to loopback, carries call B between two SIPp
# instances on 127.0.0.1 inside sf-uac. The two calls overlap, so the two interfaces'
# blocks interleave in the file.
capture_multi_if() {
    local f=multi_if.pcapng a_pid
    net_up 4 1500
    start_capture "$NS_UAC" "Capturing on" dumpcap -q -w "$WORK/$f" \
        -i uac0 \
        -i any -y LINUX_SLL -f "host 127.0.0.1"
    sipp_call multi_if_a "$NS_UAC" "$NS_UAS" u1 uac.xml 1 "$UAC_V4" "$UAS_V4" &
    a_pid=$!
    # B starts 50 ms after A, while A rings (A's 200 comes 100 ms after its 180), so the
    # two calls interleave the same way on every run.
    sleep 0.05
    sipp_call multi_if_b "$NS_UAC" "$NS_UAC" u1 uac.xml 1 127.0.0.1 127.0.0.1 5061 5062
    wait "$a_pid" || die "multi_if: call A failed"
    stop_capture
    publish "$f"
    capinfos -t "$HERE/$f" | grep -q 'pcapng' || die "$f: not pcapng"
    [[ $(capinfos -I "$HERE/$f" | grep -c 'Encapsulation = ') == 2 ]] || die "$f: expected 2 interfaces"
    expect_frames "$f" 'sip && frame.interface_id == 0 && eth' "$MSGS_PER_CALL" "$MSGS_PER_CALL"
    expect_frames "$f" 'sip && frame.interface_id == 1 && sll' "$MSGS_PER_CALL" "$MSGS_PER_CALL"
    expect_messages "$f" $((2 * MSGS_PER_CALL))
}

capture_udp_call_gz() {
    local f=udp_call.pcap.gz
    [[ -f $HERE/udp_call.pcap ]] || die "$f: run udp_call first"
    # -n: no name or time stamp in the gzip header, so the .gz depends only on the .pcap.
    gzip -n -9 -c "$HERE/udp_call.pcap" >"$WORK/$f"
    publish "$f"
    cmp -s "$EXPECTED/$f.tsv" "$EXPECTED/udp_call.pcap.tsv" || die "$f: differs from udp_call.pcap"
}

# --- main ------------------------------------------------------------------------------

require_tools() {
    local tool
    ((EUID == 0)) || die "run as root: sudo bash $0"
    for tool in ip sipp tcpdump dumpcap tshark capinfos gzip timeout "$PYTHON"; do
        command -v "$tool" >/dev/null || die "missing tool: $tool"
    done
}

main() {
    local name
    local selected=("$@")
    ((${#selected[@]})) || selected=("${CAPTURES[@]}")
    for name in "${selected[@]}"; do
        [[ " ${CAPTURES[*]} " == *" $name "* ]] || die "unknown capture '$name' (known: ${CAPTURES[*]})"
    done
    require_tools
    WORK=$(mktemp -d /tmp/sf-pcaps.XXXXXX)
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$EXPECTED"
    chown --reference="$HERE" "$EXPECTED"
    for name in "${selected[@]}"; do
        log "capture $name"
        "capture_$name"
        net_down
    done
    log "done: ${selected[*]}"
}

main "$@"
