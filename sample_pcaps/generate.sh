#!/usr/bin/env bash
# Regenerate sipflow's own sample captures with real software: SIPp makes the calls,
# the Linux kernel carries them (veth pairs in network namespaces, or loopback inside
# one), tcpdump/dumpcap record them, and tshark lists what it sees in expected/*.tsv.
#
#   sudo bash sample_pcaps/generate.sh                 # every capture
#   sudo bash sample_pcaps/generate.sh vlan_call ...   # only these (names as in CAPTURES)
#
# Needs root, sipp, tcpdump, dumpcap, tshark, capinfos, gzip, python3 (stdlib only),
# iproute2, kamailio (for the rule_* captures that go through a proxy), and a kernel with
# veth, bridges, netns and (for the VLAN captures) eBPF tcx (>= 6.6).
#
# Safety: all traffic stays inside the namespaces this script creates (names start
# with "sf-") and is deleted on exit; the host's interfaces, addresses and MTUs are never
# touched. Addresses are from 198.18.0.0/15 (RFC 2544 benchmarking range) and
# fd00:5f::/64 (unique local, RFC 4193). Every SIPp, Kamailio and capture process runs
# under `timeout`, and the EXIT trap kills whatever is left in the namespaces before
# deleting them.
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
NS_PX=sf-px         # the proxy's namespace, in the rule_* captures that go through Kamailio
NS_UAS2=sf-uas2     # a second callee (phone B), in rule_forking
UAC_MAC=02:00:5f:00:00:01   # locally administered, fixed so captures differ only in time
UAS_MAC=02:00:5f:00:00:02
UAC_V4=198.18.0.1
UAS_V4=198.18.0.2
UAC_V6=fd00:5f::1
UAS_V6=fd00:5f::2
SIP_PORT=5060

RUN_TIMEOUT=30      # seconds, one SIPp run
CAPTURE_TIMEOUT=90  # seconds, one tcpdump/dumpcap run (stopped long before, normally)

# The rule_* captures (one per diagnosis rule, see README): some go through Kamailio in
# a third namespace, on the same Ethernet segment as the other two (a bridge in sf-px).
PX_MAC=02:00:5f:00:00:03
PX_V4=198.18.0.3
KAMAILIO_CFG=$HERE/kamailio/kamailio.cfg
SBC_CFG=$HERE/kamailio/sbc_loop.cfg  # the misrouted SBC in sf-uas, rule_loop
UAS2_MAC=02:00:5f:00:00:04
UAS2_V4=198.18.0.4
RULE_TIMEOUT=45      # seconds, one SIPp run in a rule_* capture (Timers B and H take 32 s)
KAMAILIO_TIMEOUT=60  # seconds, one Kamailio run (stopped after its capture, normally)

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
    rule_early_media_rejected
    rule_auth_loop
    rule_challenge_unanswered
    rule_auth_forbidden
    rule_redirect
    rule_numbering
    rule_callee_busy
    rule_no_answer
    rule_timeout
    rule_server_error
    rule_proxy_remap
    rule_proxy_timeout
    rule_ack_missing
    rule_bye_reason
    rule_reinvite_failed
    rule_registration
    rule_cancelled
    rule_extension_or_media
    rule_final_response
    rule_loop
    rule_dialog_gone
    rule_forking
    rule_session_interval
    rule_glare
    tls_call
)

WORK=""
CAPTURE_PID=""
KAMAILIO_PID=""
RULE_UAS_PID=""
BG_PIDS=()          # other background runs (the SBC, phone B, a caller): killed on exit

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
    for ns in "$NS_UAC" "$NS_UAS" "$NS_PX" "$NS_UAS2"; do
        if [[ -e /run/netns/$ns ]]; then
            kill_namespace_processes "$ns"
            ip netns del "$ns"
        fi
    done
}

cleanup() {
    local rc=$?
    local pid
    for pid in "$CAPTURE_PID" "$KAMAILIO_PID" "$RULE_UAS_PID" "${BG_PIDS[@]}"; do
        if [[ -n $pid ]]; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
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

# ns_add NS FAMILY: a fresh namespace with loopback up and no router solicitation or DAD;
# FAMILY 4 switches IPv6 off in it.
ns_add() {
    local ns=$1 family=$2
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
}

# net_up FAMILY MTU: two namespaces joined by one veth pair (uac0 <-> uas0).
# FAMILY is 4 or 6; the other family is switched off (4) or kept quiet (6) so the
# captures hold the call and the neighbour discovery it needs, little else.
net_up() {
    local family=$1 mtu=$2 ns
    net_down
    for ns in "$NS_UAC" "$NS_UAS"; do
        ns_add "$ns" "$family"
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

# --- rule_* captures: one per diagnosis rule ------------------------------------------
#
# Each shows the failure one rule of analyzer/diagnose/rules.py names, made by SIPp and,
# where a server or proxy belongs in the story, Kamailio (kamailio/kamailio.cfg). The
# verdict each call must get is in verdicts.json (tests/test_sample_verdicts.py).
# Call-IDs are "<n>-<run name>@198.18.0.1", the same on every run.

# net_up_proxy: three IPv4 namespaces on one Ethernet segment. sf-px holds a bridge, br0,
# with the proxy's address (198.18.0.3) and two ports, px-uac and px-uas, the peers of uac0
# (sf-uac, 198.18.0.1) and uas0 (sf-uas, 198.18.0.2). The caller and the trunk only talk
# to the proxy, so every packet of both legs goes in or out of br0: one capture there
# shows the whole call, as a capture taken on a proxy does.
net_up_proxy() {
    local ns
    net_down
    for ns in "$NS_UAC" "$NS_UAS" "$NS_PX"; do
        ns_add "$ns" 4
    done
    # STP is off by default, so the ports forward at once.
    # No multicast snooping: otherwise br0 joins 224.0.0.106 (IGMP, at a random moment).
    ip -n "$NS_PX" link add br0 address "$PX_MAC" type bridge mcast_snooping 0
    ip link add uac0 netns "$NS_UAC" address "$UAC_MAC" mtu 1500 type veth \
        peer name px-uac netns "$NS_PX" address 02:00:5f:00:01:01 mtu 1500
    ip link add uas0 netns "$NS_UAS" address "$UAS_MAC" mtu 1500 type veth \
        peer name px-uas netns "$NS_PX" address 02:00:5f:00:01:02 mtu 1500
    ip -n "$NS_PX" link set px-uac master br0
    ip -n "$NS_PX" link set px-uas master br0
    ip -n "$NS_UAC" addr add "$UAC_V4/24" dev uac0
    ip -n "$NS_UAS" addr add "$UAS_V4/24" dev uas0
    ip -n "$NS_PX" addr add "$PX_V4/24" dev br0
    ip -n "$NS_UAC" link set uac0 up
    ip -n "$NS_UAS" link set uas0 up
    ip -n "$NS_PX" link set px-uac up
    ip -n "$NS_PX" link set px-uas up
    ip -n "$NS_PX" link set br0 up
}

# kamailio_up [KAMAILIO_ARG...]: start Kamailio in sf-px (foreground mode, logging to
# $WORK/kamailio.log) and wait until it listens on 198.18.0.3:5060.
kamailio_up() {
    command -v kamailio >/dev/null || die "missing tool: kamailio (Debian package kamailio)"
    mkdir -p "$WORK/kamailio"
    ip netns exec "$NS_PX" timeout "$KAMAILIO_TIMEOUT" kamailio -f "$KAMAILIO_CFG" -DD -E \
        -m 32 -M 4 -Y "$WORK/kamailio" "$@" >"$WORK/kamailio.log" 2>&1 &
    KAMAILIO_PID=$!
    for _ in $(seq 100); do
        if ip netns exec "$NS_PX" ss -Hlun "sport = :$SIP_PORT" | grep -q "$PX_V4"; then
            sleep 0.5  # the socket is bound before the worker processes start
            return 0
        fi
        kill -0 "$KAMAILIO_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK/kamailio.log" >&2
    die "kamailio did not start"
}

kamailio_down() {
    kill -0 "$KAMAILIO_PID" 2>/dev/null || die "kamailio exited early, see $WORK/kamailio.log"
    kill -TERM "$KAMAILIO_PID"
    wait "$KAMAILIO_PID" || true
    KAMAILIO_PID=""
    # (ALERT is also how the main process reports its children's normal exit at shutdown.)
    if grep -E ' (ERROR|CRITICAL|BUG):' "$WORK/kamailio.log" >&2; then
        die "kamailio logged errors, see $WORK/kamailio.log"
    fi
}

# rule_sipp NS LOG SCENARIO CALLS SIPP_ARG...: one SIPp run in NS, on port 5060, to the end.
rule_sipp() {
    local ns=$1 log=$2 scenario=$3 calls=$4
    shift 4
    (cd "$WORK" && exec ip netns exec "$ns" timeout "$RULE_TIMEOUT" \
        sipp -sf "$SCENARIOS/$scenario" -nostdin -t u1 -p "$SIP_PORT" -m "$calls" \
        -timeout "${RULE_TIMEOUT}s" -timeout_error -trace_err "$@" >"$WORK/$log.log" 2>&1)
}

# rule_uas NAME SCENARIO CALLS [SIPP_ARG...]: start the callee (sf-uas, 198.18.0.2) in the
# background; rule_uas_done NAME waits for it. SIPp exits 0 only if every call went
# exactly as its scenario says.
rule_uas() {
    local name=$1 scenario=$2 calls=$3
    shift 3
    rule_sipp "$NS_UAS" "$name.uas" "$scenario" "$calls" -i "$UAS_V4" "$@" &
    RULE_UAS_PID=$!
    sleep 0.5  # the UAS must listen before the first INVITE
}

rule_uas_done() {
    local name=$1 rc=0
    wait "$RULE_UAS_PID" || rc=$?
    RULE_UAS_PID=""
    ((rc == 0)) || die "$name: UAS SIPp failed (exit $rc)"
}

# rule_uac NAME SCENARIO CALLS TARGET [SIPP_ARG...]: the caller (sf-uac, 198.18.0.1), to
# the end. Call-IDs are "<n>-NAME@198.18.0.1".
rule_uac() {
    local name=$1 scenario=$2 calls=$3 target=$4 rc=0
    shift 4
    rule_sipp "$NS_UAC" "$name.uac" "$scenario" "$calls" -i "$UAC_V4" \
        -cid_str "%u-$name@%s" "$@" "$target" || rc=$?
    ((rc == 0)) || die "$name: UAC SIPp failed (exit $rc)"
}

# dial_list NAME USER...: $WORK/NAME.csv, the users uac_reject.xml or uac_auth.xml dial,
# one per call, in order.
dial_list() {
    local name=$1
    shift
    { echo SEQUENTIAL; printf '%s;\n' "$@"; } >"$WORK/$name.csv"
}

# rejected_calls NAME USER...: one call per USER from uac_reject.xml to uas_reject.xml,
# which picks its failure by the dialled user. A call every 3 s: none overlap.
rejected_calls() {
    local name=$1
    shift
    dial_list "$name" "$@"
    rule_uas "$name" uas_reject.xml $#
    rule_uac "$name" uac_reject.xml $# "$UAS_V4:$SIP_PORT" -inf "$WORK/$name.csv" -r 1 -rp 3000
    rule_uas_done "$name"
}

capture_rule_early_media_rejected() {
    local f=rule_early_media_rejected.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    rejected_calls rule_early_media_rejected earlymedia earlymedia
    stop_capture
    publish "$f"
    # INVITE 100 183 488 ACK per call.
    expect_messages "$f" 10
    expect_frames "$f" 'sip.Status-Code == 183 && sdp.media.format contains "G.729"' 2 2
    expect_frames "$f" 'sip.Status-Code == 488' 2 2
}

# auth_calls NAME PASSWORD USER...: uac_auth.xml through Kamailio (WITH_AUTH), one call per
# USER, a call every second.
auth_calls() {
    local name=$1 password=$2
    shift 2
    dial_list "$name" "$@"
    rule_uac "$name" uac_auth.xml $# "$PX_V4:$SIP_PORT" -inf "$WORK/$name.csv" \
        -au alice -ap "$password" -r 1 -rp 1000
}

capture_rule_auth_loop() {
    local f=rule_auth_loop.pcap
    net_up_proxy
    kamailio_up -A WITH_AUTH
    tcpdump_on "$NS_PX" "$f" -i br0
    # A wrong password: each INVITE with credentials is challenged again.
    auth_calls rule_auth_loop wrong-password 5550100 5550101
    stop_capture
    kamailio_down
    publish "$f"
    # (INVITE 407 ACK) x 3 per call.
    expect_messages "$f" 18
    expect_frames "$f" 'sip.Status-Code == 407' 6 6
    expect_frames "$f" 'sip.Method == "INVITE" && sip.Proxy-Authorization' 4 4
}

capture_rule_challenge_unanswered() {
    local f=rule_challenge_unanswered.pcap
    net_up_proxy
    kamailio_up -A WITH_AUTH
    tcpdump_on "$NS_PX" "$f" -i br0
    # uac_reject.xml has no credentials: it acknowledges the 407 and stops.
    dial_list rule_challenge_unanswered 5550100 5550101
    rule_uac rule_challenge_unanswered uac_reject.xml 2 "$PX_V4:$SIP_PORT" \
        -inf "$WORK/rule_challenge_unanswered.csv" -r 1 -rp 1000
    stop_capture
    kamailio_down
    publish "$f"
    # INVITE 407 ACK per call.
    expect_messages "$f" 6
    expect_frames "$f" 'sip.Status-Code == 407' 2 2
    expect_frames "$f" 'sip.Proxy-Authorization' 0 0
}

capture_rule_auth_forbidden() {
    local f=rule_auth_forbidden.pcap
    net_up_proxy
    kamailio_up -A WITH_AUTH
    tcpdump_on "$NS_PX" "$f" -i br0
    # The right password, but international numbers are barred: 403 after credentials.
    auth_calls rule_auth_forbidden sipflow-secret 00441632960001 00441632960002
    stop_capture
    kamailio_down
    publish "$f"
    # INVITE 407 ACK, INVITE (credentials) 403 ACK per call.
    expect_messages "$f" 12
    expect_frames "$f" 'sip.Status-Code == 403 && sip.CSeq.seq == 2' 2 2
}

capture_rule_redirect() {
    local f=rule_redirect.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    rejected_calls rule_redirect moved moved
    stop_capture
    publish "$f"
    # INVITE 100 302 ACK per call; the caller does not follow the Contact.
    expect_messages "$f" 8
    expect_frames "$f" 'sip.Status-Code == 302 && sip.Contact' 2 2
    expect_frames "$f" 'sip.Method == "INVITE"' 2 2
}

capture_rule_numbering() {
    local f=rule_numbering.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    rejected_calls rule_numbering unknown incomplete
    stop_capture
    publish "$f"
    expect_messages "$f" 8
    expect_frames "$f" 'sip.Status-Code == 404' 1 1
    expect_frames "$f" 'sip.Status-Code == 484' 1 1
}

capture_rule_callee_busy() {
    local f=rule_callee_busy.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    rejected_calls rule_callee_busy busy decline
    stop_capture
    publish "$f"
    # INVITE 100 486 ACK; INVITE 100 180 603 ACK.
    expect_messages "$f" 9
    expect_frames "$f" 'sip.Status-Code == 486' 1 1
    expect_frames "$f" 'sip.Status-Code == 603' 1 1
}

capture_rule_no_answer() {
    local f=rule_no_answer.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    rejected_calls rule_no_answer away noanswer
    stop_capture
    publish "$f"
    # INVITE 100 180 (2 s) 480 or 408, ACK.
    expect_messages "$f" 10
    expect_frames "$f" 'sip.Status-Code == 480' 1 1
    expect_frames "$f" 'sip.Status-Code == 408' 1 1
}

# Nothing listens on the callee's port: each INVITE draws an ICMP port unreachable, and
# the caller retransmits it until Timer B (32 s). A pcap ends at its last frame, so the
# capture must go on after Timer B to show that it fired: the caller then redials, the
# callee's SIP service is back up, and that call is answered.
capture_rule_timeout() {
    local f=rule_timeout.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    # Two calls 0.5 s apart, 7 INVITEs each (6 Timer A retransmissions).
    rule_uac rule_timeout uac_timeout.xml 2 "$UAS_V4:$SIP_PORT" -max_invite_retrans 6 -r 2
    sleep 1
    rule_uas rule_timeout-redial uas.xml 1
    rule_uac rule_timeout-redial uac.xml 1 "$UAS_V4:$SIP_PORT" -d 200
    rule_uas_done rule_timeout-redial
    stop_capture
    publish "$f"
    expect_messages "$f" $((2 * 7 + MSGS_PER_CALL))
    expect_frames "$f" 'sip.Method == "INVITE" && !icmp && sip.Call-ID contains "rule_timeout@"' 14 14
    expect_frames "$f" 'icmp.type == 3 && icmp.code == 3' 1 14
}

capture_rule_server_error() {
    local f=rule_server_error.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    rejected_calls rule_server_error overload overload
    stop_capture
    publish "$f"
    expect_messages "$f" 8
    expect_frames "$f" 'sip.Status-Code == 503 && sip.Retry-After == 120' 2 2
}

# The trunk answers 503; Kamailio (tm) relays the best answer to the caller, and a 503 is
# not relayed as such (RFC 3261 section 16.7 step 6): the caller sees another code, and
# only the leg behind the proxy shows where it came from.
capture_rule_proxy_remap() {
    local f=rule_proxy_remap.pcap
    net_up_proxy
    kamailio_up
    tcpdump_on "$NS_PX" "$f" -i br0
    dial_list rule_proxy_remap overload overload
    rule_uas rule_proxy_remap uas_reject.xml 2
    rule_uac rule_proxy_remap uac_reject.xml 2 "$PX_V4:$SIP_PORT" \
        -inf "$WORK/rule_proxy_remap.csv" -r 1 -rp 1000
    rule_uas_done rule_proxy_remap
    stop_capture
    kamailio_down
    publish "$f"
    # Per call: caller leg INVITE 100 500 ACK, trunk leg INVITE 100 503 ACK.
    expect_messages "$f" 16
    expect_frames "$f" 'sip.Status-Code == 503 && ip.src == 198.18.0.2' 2 2
    expect_frames "$f" 'sip.Status-Code == 500 && ip.src == 198.18.0.3 && ip.dst == 198.18.0.1' 2 2
}

# The trunk rings and never answers. Kamailio's fr_inv_timer (5 s) fires: it CANCELs the
# trunk leg (200, 487, ACK) and answers the caller 408 itself.
capture_rule_proxy_timeout() {
    local f=rule_proxy_timeout.pcap
    net_up_proxy
    kamailio_up
    tcpdump_on "$NS_PX" "$f" -i br0
    dial_list rule_proxy_timeout ringout ringout
    rule_uas rule_proxy_timeout uas_cancel.xml 2
    rule_uac rule_proxy_timeout uac_reject.xml 2 "$PX_V4:$SIP_PORT" \
        -inf "$WORK/rule_proxy_timeout.csv" -r 1 -rp 1000
    rule_uas_done rule_proxy_timeout
    stop_capture
    kamailio_down
    publish "$f"
    # Per call: caller leg INVITE 100 180 408 ACK; trunk leg INVITE 100 180 CANCEL
    # 200/CANCEL 487 ACK.
    expect_messages "$f" 24
    expect_frames "$f" 'sip.Status-Code == 408 && ip.src == 198.18.0.3 && ip.dst == 198.18.0.1' 2 2
    expect_frames "$f" 'sip.Method == "CANCEL" && ip.src == 198.18.0.3' 2 2
    expect_frames "$f" 'sip.Status-Code == 487 && ip.src == 198.18.0.2' 2 2
}

capture_rule_ack_missing() {
    local f=rule_ack_missing.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    # Two calls 0.5 s apart; each takes the 32 s of Timer H.
    rule_uas rule_ack_missing uas_no_ack.xml 2
    rule_uac rule_ack_missing uac_no_ack.xml 2 "$UAS_V4:$SIP_PORT" -r 2
    rule_uas_done rule_ack_missing
    stop_capture
    publish "$f"
    # Per call: INVITE 100 180, the 200 and its 10 retransmissions, BYE, 200/BYE.
    expect_messages "$f" 32
    expect_frames "$f" 'sip.Method == "ACK"' 0 0
    expect_frames "$f" 'sip.Status-Code == 200 && sip.CSeq.method == "INVITE"' 22 22
    expect_frames "$f" 'sip.Method == "BYE" && ip.src == 198.18.0.2' 2 2
}

# bye_call NAME REASON: one answered call that the callee ends with "BYE ... Reason: REASON".
bye_call() {
    local name=$1 reason=$2
    rule_uas "$name" uas_bye_reason.xml 1 -key reason "$reason"
    rule_uac "$name" uac_callee_hangs_up.xml 1 "$UAS_V4:$SIP_PORT"
    rule_uas_done "$name"
}

capture_rule_bye_reason() {
    local f=rule_bye_reason.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    # A PSTN failure (Q.850 41), an expired session timer (SIP 408), and the control: a
    # normal hang-up that says so (Q.850 16, "Normal call clearing").
    bye_call rule_bye_reason-q850_41 'Q.850;cause=41;text="Temporary failure"'
    bye_call rule_bye_reason-sip_408 'SIP;cause=408;text="Session timer expired"'
    bye_call rule_bye_reason-q850_16 'Q.850;cause=16;text="Normal call clearing"'
    stop_capture
    publish "$f"
    expect_messages "$f" $((3 * MSGS_PER_CALL))
    expect_frames "$f" 'sip.Method == "BYE" && sip.Reason' 3 3
}

capture_rule_reinvite_failed() {
    local f=rule_reinvite_failed.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    rule_uas rule_reinvite_failed uas_reinvite_t38.xml 2
    rule_uac rule_reinvite_failed uac_reinvite_t38.xml 2 "$UAS_V4:$SIP_PORT" -r 1 -rp 2000
    rule_uas_done rule_reinvite_failed
    stop_capture
    publish "$f"
    # Per call: INVITE 100 180 200 ACK, re-INVITE 100 488 ACK, BYE 200.
    expect_messages "$f" 22
    expect_frames "$f" 'sip.Method == "INVITE" && sdp.media.media == "image"' 2 2
    expect_frames "$f" 'sip.Status-Code == 488 && sip.CSeq.seq == 2' 2 2
}

# Four registrations of alice at Kamailio (WITH_AUTH), each its own Call-ID, one after the
# other: register; ask for 30 s, get 423, retry with the Min-Expires; ask for 30 s, get 423,
# give up; unregister (Expires 0).
capture_rule_registration() {
    local f=rule_registration.pcap
    net_up_proxy
    kamailio_up -A WITH_AUTH
    tcpdump_on "$NS_PX" "$f" -i br0
    local auth=(-au alice -ap sipflow-secret)
    rule_uac rule_registration-register reg_auth.xml 1 "$PX_V4:$SIP_PORT" "${auth[@]}" -key expires 3600
    rule_uac rule_registration-brief reg_brief.xml 1 "$PX_V4:$SIP_PORT" "${auth[@]}"
    rule_uac rule_registration-brief_gave_up reg_auth.xml 1 "$PX_V4:$SIP_PORT" "${auth[@]}" -key expires 30
    rule_uac rule_registration-unregister reg_auth.xml 1 "$PX_V4:$SIP_PORT" "${auth[@]}" -key expires 0
    stop_capture
    kamailio_down
    publish "$f"
    # REGISTER 401 REGISTER 200 | REGISTER 401 REGISTER 423 REGISTER 200 |
    # REGISTER 401 REGISTER 423 | REGISTER 401 REGISTER 200.
    expect_messages "$f" 18
    expect_frames "$f" 'sip.Status-Code == 401' 4 4
    expect_frames "$f" 'sip.Status-Code == 423 && sip.Min-Expires == 60' 2 2
    expect_frames "$f" 'sip.Status-Code == 200' 3 3
}

capture_rule_cancelled() {
    local f=rule_cancelled.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    rule_uas rule_cancelled uas_cancel.xml 2
    rule_uac rule_cancelled uac_cancel.xml 2 "$UAS_V4:$SIP_PORT" -r 1 -rp 2000
    rule_uas_done rule_cancelled
    stop_capture
    publish "$f"
    # Per call: INVITE 100 180 CANCEL 200/CANCEL 487 ACK.
    expect_messages "$f" 14
    expect_frames "$f" 'sip.Status-Code == 487' 2 2
}

capture_rule_extension_or_media() {
    local f=rule_extension_or_media.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    # 488 straight away, no early media: the callee shares no codec with the offer.
    rejected_calls rule_extension_or_media nocodec nocodec
    stop_capture
    publish "$f"
    expect_messages "$f" 8
    expect_frames "$f" 'sip.Status-Code == 488 && sip.Warning' 2 2
    expect_frames "$f" 'sip.Status-Code == 183' 0 0
}

capture_rule_final_response() {
    local f=rule_final_response.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    # A code no specific rule covers: 410 Gone.
    rejected_calls rule_final_response gone gone
    stop_capture
    publish "$f"
    expect_messages "$f" 8
    expect_frames "$f" 'sip.Status-Code == 410' 2 2
}

# bg_wait PID: wait for a run started in the background and forget its pid; returns its
# exit status.
bg_wait() {
    local pid=$1 rc=0 p kept=()
    wait "$pid" || rc=$?
    for p in "${BG_PIDS[@]}"; do
        [[ $p == "$pid" ]] || kept+=("$p")
    done
    BG_PIDS=("${kept[@]}")
    return "$rc"
}

# sbc_up / sbc_down: the misrouted SBC (kamailio/sbc_loop.cfg) in sf-uas, on 198.18.0.2:5060,
# started and checked as kamailio_up / kamailio_down do the proxy.
SBC_PID=""
sbc_up() {
    mkdir -p "$WORK/sbc"
    ip netns exec "$NS_UAS" timeout "$KAMAILIO_TIMEOUT" kamailio -f "$SBC_CFG" -DD -E \
        -m 32 -M 4 -Y "$WORK/sbc" >"$WORK/sbc.log" 2>&1 &
    SBC_PID=$!
    BG_PIDS+=("$SBC_PID")
    for _ in $(seq 100); do
        if ip netns exec "$NS_UAS" ss -Hlun "sport = :$SIP_PORT" | grep -q "$UAS_V4"; then
            sleep 0.5  # the socket is bound before the worker processes start
            return 0
        fi
        kill -0 "$SBC_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK/sbc.log" >&2
    die "the SBC (kamailio) did not start"
}

sbc_down() {
    kill -0 "$SBC_PID" 2>/dev/null || die "the SBC exited early, see $WORK/sbc.log"
    kill -TERM "$SBC_PID"
    bg_wait "$SBC_PID" || true
    SBC_PID=""
    if grep -E ' (ERROR|CRITICAL|BUG):' "$WORK/sbc.log" >&2; then
        die "the SBC logged errors, see $WORK/sbc.log"
    fi
}

# A routing loop between two stateful proxies: Kamailio (sf-px) relays the call to the
# trunk, whose SBC (sf-uas) routes it straight back. Every pass decrements Max-Forwards
# (the SBC caps it at 8 on the way out). Call 1: the proxy has no loop check, so the
# INVITE goes round until a Max-Forwards of 0 reaches the proxy, which answers 483; the 483
# is relayed back along every hop. Call 2: the proxy checks for its own Via (RFC 3261
# section 16.3 step 4) and answers 482 the first time the INVITE comes back.
capture_rule_loop() {
    local f=rule_loop.pcap
    net_up_proxy
    sbc_up
    tcpdump_on "$NS_PX" "$f" -i br0
    kamailio_up
    rule_uac rule_loop-max_forwards uac_loop.xml 1 "$PX_V4:$SIP_PORT"
    kamailio_down
    kamailio_up -A WITH_LOOP_CHECK
    rule_uac rule_loop-via_check uac_loop.xml 1 "$PX_V4:$SIP_PORT"
    kamailio_down
    stop_capture
    sbc_down
    publish "$f"
    # Call 1: 11 INVITEs, 10 100s, 11 483s, 11 ACKs. Call 2: 3 INVITEs, 2 100s, 3 482s, 3 ACKs.
    expect_messages "$f" 54
    expect_frames "$f" 'sip.Status-Code == 483 && ip.src == 198.18.0.3 && ip.dst == 198.18.0.1' 1 1
    expect_frames "$f" 'sip.Status-Code == 482 && ip.src == 198.18.0.3 && ip.dst == 198.18.0.1' 1 1
    # The INVITE of call 1 crosses br0 11 times: caller -> proxy, then 5 times each way.
    expect_frames "$f" 'sip.Method == "INVITE" && sip.Call-ID contains "max_forwards"' 11 11
    expect_frames "$f" 'sip.Method == "INVITE" && sip.Max-Forwards == 0' 1 1
}

# forgetful_call NAME UAC_SCENARIO RESTARTED_SCENARIO: an answered call whose callee
# restarts right after the ACK: its SIPp (uas_answer_and_forget.xml) exits and a new one,
# RESTARTED_SCENARIO, takes the same address before the caller's next request, 2 s later.
forgetful_call() {
    local name=$1 uac=$2 restarted=$3 uac_pid
    rule_uas "$name" uas_answer_and_forget.xml 1
    rule_uac "$name" "$uac" 1 "$UAS_V4:$SIP_PORT" &
    uac_pid=$!
    BG_PIDS+=("$uac_pid")
    rule_uas_done "$name"
    rule_uas "$name-restarted" "$restarted" 1
    bg_wait "$uac_pid" || die "$name: UAC SIPp failed"
    rule_uas_done "$name-restarted"
}

capture_rule_dialog_gone() {
    local f=rule_dialog_gone.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    forgetful_call rule_dialog_gone-bye uac_bye_481.xml uas_restarted_bye.xml
    forgetful_call rule_dialog_gone-reinvite uac_reinvite_481.xml uas_restarted_reinvite.xml
    stop_capture
    publish "$f"
    # INVITE 100 180 200 ACK BYE 481; INVITE 100 180 200 ACK re-INVITE 481 ACK.
    expect_messages "$f" 15
    expect_frames "$f" 'sip.Status-Code == 481 && sip.CSeq.method == "BYE"' 1 1
    expect_frames "$f" 'sip.Status-Code == 481 && sip.CSeq.method == "INVITE" && sip.CSeq.seq == 2' 1 1
}

# net_up_fork: the proxy network plus phone B, sf-uas2 (198.18.0.4), on a third port of br0.
net_up_fork() {
    net_up_proxy
    ns_add "$NS_UAS2" 4
    ip link add uas0 netns "$NS_UAS2" address "$UAS2_MAC" mtu 1500 type veth \
        peer name px-uas2 netns "$NS_PX" address 02:00:5f:00:01:04 mtu 1500
    ip -n "$NS_PX" link set px-uas2 master br0
    ip -n "$NS_UAS2" addr add "$UAS2_V4/24" dev uas0
    ip -n "$NS_UAS2" link set uas0 up
    ip -n "$NS_PX" link set px-uas2 up
}

# fork_call NAME UAC_SCENARIO PHONE_A_SCENARIO PHONE_B_SCENARIO [UAC_ARG...]: one call
# through Kamailio (WITH_FORK), which rings phone A (sf-uas) and phone B (sf-uas2) at once.
fork_call() {
    local name=$1 uac=$2 phone_a=$3 phone_b=$4 b_pid
    shift 4
    rule_sipp "$NS_UAS2" "$name.phone_b" "$phone_b" 1 -i "$UAS2_V4" &
    b_pid=$!
    BG_PIDS+=("$b_pid")
    rule_uas "$name" "$phone_a" 1
    rule_uac "$name" "$uac" 1 "$PX_V4:$SIP_PORT" "$@"
    rule_uas_done "$name"
    bg_wait "$b_pid" || die "$name: phone B SIPp failed"
}

# Parallel forking. Call 1: both phones ring, A answers after 1 s, Kamailio CANCELs B
# (200, 487, ACK). Call 2: A is busy (486 at once), B rings and declines (603); Kamailio
# answers the caller the best response, the 603 (RFC 3261 section 16.7 step 6).
capture_rule_forking() {
    local f=rule_forking.pcap
    net_up_fork
    kamailio_up -A WITH_FORK
    tcpdump_on "$NS_PX" "$f" -i br0
    fork_call rule_forking-answered uac_routed.xml uas_fork_answer.xml uas_cancel.xml
    dial_list rule_forking-rejected busy
    fork_call rule_forking-rejected uac_reject.xml uas_reject.xml uas_decline.xml \
        -inf "$WORK/rule_forking-rejected.csv"
    stop_capture
    kamailio_down
    publish "$f"
    # Call 1: caller leg INVITE 100 180 180 200 ACK BYE 200, and per phone leg INVITE 100
    # 180, then A: 200 ACK BYE 200, B: CANCEL 200 487 ACK. Call 2: caller leg INVITE 100 180
    # 603 ACK, A: INVITE 100 486 ACK, B: INVITE 100 180 603 ACK.
    expect_messages "$f" 36
    expect_frames "$f" 'sip.Method == "CANCEL" && ip.src == 198.18.0.3 && ip.dst == 198.18.0.4' 1 1
    expect_frames "$f" 'sip.Status-Code == 487 && ip.src == 198.18.0.4' 1 1
    expect_frames "$f" 'sip.Status-Code == 486 && ip.src == 198.18.0.2' 1 1
    expect_frames "$f" 'sip.Status-Code == 603 && ip.src == 198.18.0.3 && ip.dst == 198.18.0.1' 1 1
    expect_frames "$f" 'sip.Method == "BYE" && ip.src == 198.18.0.3 && ip.dst == 198.18.0.2' 1 1
}

# session_timer_call NAME USER: one call from uac_session_timer.xml to
# uas_session_timer.xml; the dialled USER ("retry" or "giveup") tells both sides what comes
# after the 422.
session_timer_call() {
    local name=$1 user=$2
    rule_uas "$name" uas_session_timer.xml 1
    rule_uac "$name" uac_session_timer.xml 1 "$UAS_V4:$SIP_PORT" -s "$user"
    rule_uas_done "$name"
}

# Session Interval Too Small (RFC 4028 section 6): the caller asks for Session-Expires 60,
# the callee wants at least 90 and answers 422 with Min-SE 90. Call 1: the caller retries
# with Session-Expires 90 (CSeq 2, section 7.4) and is answered. Call 2: it gives up.
capture_rule_session_interval() {
    local f=rule_session_interval.pcap
    net_up 4 1500
    tcpdump_on "$NS_UAC" "$f" -i uac0
    session_timer_call rule_session_interval-retried retry
    session_timer_call rule_session_interval-gave_up giveup
    stop_capture
    publish "$f"
    # Call 1: INVITE 100 422 ACK, INVITE 100 180 200 ACK, BYE 200. Call 2: INVITE 100 422 ACK.
    expect_messages "$f" $((4 + 5 + 2 + 4))
    expect_frames "$f" 'sip.Status-Code == 422 && sip.Min-SE == "90"' 2 2
    expect_frames "$f" 'sip.Method == "INVITE" && sip.Session-Expires == "60"' 2 2
    expect_frames "$f" 'sip.Method == "INVITE" && sip.Session-Expires == "90" && sip.CSeq.seq == 2' 1 1
}

# Re-INVITE glare (RFC 3261 section 14.1/14.2), through Kamailio with -A WITH_SLOW_REINVITE:
# Record-Routed, and each re-INVITE and each answer to one waits 300 ms in the proxy (a slow
# proxy, a long path). After the ACK the caller (uac_glare.xml) puts the call on hold 200 ms
# on, the callee (uas_glare.xml) refreshes the session 230 ms on: each re-INVITE reaches the
# other side while that side's own is pending, and both answer 491. (Without the delay the
# two would have to be sent within the ~0.1 ms one SIPp takes to read the other's.) The
# callee, not the Call-ID's owner, retries after 1 s and is answered; the caller about 3 s
# after its 491, and is answered; then the caller hangs up.
capture_rule_glare() {
    local f=rule_glare.pcap
    net_up_proxy
    kamailio_up -A WITH_SLOW_REINVITE
    tcpdump_on "$NS_PX" "$f" -i br0
    rule_uas rule_glare uas_glare.xml 1
    rule_uac rule_glare uac_glare.xml 1 "$PX_V4:$SIP_PORT"
    rule_uas_done rule_glare
    stop_capture
    kamailio_down
    publish "$f"
    # Per leg (caller and callee side): INVITE 100 180 200 ACK; each first re-INVITE:
    # INVITE 100, INVITE 491 ACK, 491 ACK (the proxy ACKs the 491 hop by hop); each retry:
    # INVITE 100, INVITE 200, 200, ACK, ACK; BYE BYE 200 200.
    expect_messages "$f" $((10 + 2 * 7 + 2 * 7 + 4))
    expect_frames "$f" 'sip.Status-Code == 491' 4 4
    expect_frames "$f" 'sip.Status-Code == 491 && ip.src == 198.18.0.3' 2 2
    # Both re-INVITEs were pending at the far end when the other arrived: glare both ways.
    expect_frames "$f" 'sip.Status-Code == 491 && ip.src == 198.18.0.1 && sip.CSeq.seq == 1' 1 1
    expect_frames "$f" 'sip.Status-Code == 491 && ip.src == 198.18.0.2 && sip.CSeq.seq == 2' 1 1
    # The proxy's own ACKs of the two 491s (one Via, its own); the UAs' ACKs stop there.
    expect_frames "$f" 'sip.Method == "ACK" && ip.src == 198.18.0.3 && count(sip.Via) == 1' 2 2
    # The retries: the callee's CSeq 2 and the caller's CSeq 3, both answered on both legs.
    expect_frames "$f" 'sip.Status-Code == 200 && sip.CSeq.method == "INVITE" && sip.CSeq.seq >= 2' 4 4
}

# --- main ------------------------------------------------------------------------------

require_tools() {
    local tool
    ((EUID == 0)) || die "run as root: sudo bash $0"
    for tool in ip sipp tcpdump dumpcap tshark capinfos gzip timeout "$PYTHON"; do
        command -v "$tool" >/dev/null || die "missing tool: $tool"
    done
}

# SIP over TLS with its key log: two namespaces of its own and OpenSSL relays (see the script).
capture_tls_call() {
    bash "$HERE/generate_tls.sh"
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
