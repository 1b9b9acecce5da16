#!/usr/bin/env bash
# Make the benchmark captures in benchmarks/data/ with SIPp on loopback, captured by tcpdump.
#
#   all_sip.pcap       20,000 basic calls at 500 calls/s, SIP over UDP only (~120,000 messages)
#   rtp_heavy.pcap     1,000 calls, each replaying 7 s of G.711 A-law RTP (~242,000 packets)
#   all_sip_x10.pcap   all_sip.pcap ten times over, the same way (memory must stay flat)
#   rtp_heavy_x4.pcap  rtp_heavy.pcap four times over, later copies shifted in time and given
#                      their own Call-IDs, tags and branches (repeat_capture.py)
#
# Usage: sudo benchmarks/make_captures.sh [--force]
#   A capture that already exists is kept unless --force is given.
#   For a quick try: SIP_CALLS=200 RTP_CALLS=20 BENCH_DATA=/tmp/bench-try make_captures.sh
#
# All traffic stays on 127.0.0.80-83 (ports 15060/15062 for SIP, 20000+ for RTP). Every SIPp
# and tcpdump run is bounded by a call count and by `timeout`, and reaped before the script
# ends. A capture is kept only if tcpdump reports 0 packets dropped by the kernel.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA="${BENCH_DATA:-$HERE/data}"
SCEN="$HERE/scenarios"
G711=/usr/share/sip-tester/g711a.pcap

# all_sip.pcap: built-in uac/uas; 2 s calls at 500 calls/s keep ~1,000 calls open.
SIP_CALLS=${SIP_CALLS:-20000}
SIP_RATE=500
SIP_UAC=127.0.0.80
SIP_UAS=127.0.0.81
SIP_PORT=15060

# rtp_heavy.pcap: 8 calls/s of ~9 s each keep ~70 calls open, i.e. ~2,000 RTP packets/s,
# well within 2 cores; SIPp's pcap_play uses one thread per playing call.
RTP_CALLS=${RTP_CALLS:-1000}
RTP_RATE=8
RTP_UAC=127.0.0.82
RTP_UAS=127.0.0.83
RTP_PORT=15062
RTP_UAS_MEDIA=20000
RTP_UAC_MEDIA=30000

FORCE=0
TMP=""
CHILDREN=()

usage() {
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

log() { printf '[make_captures] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# End what this script started (by pid, SIGINT first so tcpdump flushes), reap it, tidy up.
cleanup() {
    local pid
    for pid in "${CHILDREN[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
    done
    for pid in "${CHILDREN[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$TMP" ]]; then
        rm -rf "$TMP"
    fi
    # A capture that did not finish (error, drops, Ctrl-C) is never left to look complete.
    rm -f "$DATA"/*.pcap.part "$DATA"/*.pcap.part.tcpdump.log
}
trap cleanup EXIT

forget_child() {
    local pid=$1 kept=() p
    for p in "${CHILDREN[@]}"; do
        [[ "$p" == "$pid" ]] || kept+=("$p")
    done
    CHILDREN=("${kept[@]+"${kept[@]}"}")
}

check_prereqs() {
    [[ $EUID -eq 0 ]] || die "run as root (tcpdump, and SIPp's raw socket for pcap_play)"
    local tool
    for tool in sipp tcpdump tshark capinfos python3 timeout; do
        command -v "$tool" >/dev/null || die "$tool not found"
    done
    [[ -r "$G711" ]] || die "$G711 missing (Debian package sip-tester)"
}

# start_tcpdump FILE FILTER SECONDS: capture on lo into FILE; sets TCPDUMP_PID.
start_tcpdump() {
    local file=$1 filter=$2 secs=$3
    # -B 131072: a 128 MiB kernel buffer so bursts are not dropped; -Z root: keep the right
    # to write into a root-owned directory (Debian's tcpdump drops to user tcpdump otherwise).
    timeout -s INT "$secs" tcpdump -i lo -n -s 0 -B 131072 -Z root -w "$file" "$filter" \
        2>"$file.tcpdump.log" &
    TCPDUMP_PID=$!
    CHILDREN+=("$TCPDUMP_PID")
    local _
    for _ in $(seq 50); do
        grep -q 'listening on' "$file.tcpdump.log" 2>/dev/null && return 0
        sleep 0.1
    done
    die "tcpdump did not start: $(cat "$file.tcpdump.log")"
}

# stop_tcpdump FILE: stop the capture, print its counters; fail if the kernel dropped any.
stop_tcpdump() {
    local file=$1
    sleep 1 # let the last datagrams reach the capture buffer
    kill -INT "$TCPDUMP_PID" 2>/dev/null || true
    wait "$TCPDUMP_PID" || true
    forget_child "$TCPDUMP_PID"
    local dropped
    dropped=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$file.tcpdump.log")
    sed -n '/captured\|received\|dropped/s/^/    tcpdump: /p' "$file.tcpdump.log" >&2
    [[ -n "$dropped" ]] || die "tcpdump printed no drop count"
    [[ "$dropped" == 0 ]] || die "tcpdump: $dropped packets dropped by kernel; capture discarded"
    log "tcpdump: 0 packets dropped by kernel"
}

# run_pair NAME UAS_SECS UAC_SECS UAS_ARGS... -- UAC_ARGS...: run a SIPp UAS in the background
# and a SIPp UAC in the foreground, both bounded, in $TMP (SIPp writes its logs in the cwd).
run_pair() {
    local name=$1 uas_secs=$2 uac_secs=$3
    shift 3
    local uas_args=() uac_args=()
    while [[ $1 != -- ]]; do uas_args+=("$1"); shift; done
    shift
    uac_args=("$@")
    (cd "$TMP" && exec timeout "$uas_secs" sipp "${uas_args[@]}" -nostdin -trace_err \
        >"$TMP/$name.uas.out" 2>&1) &
    local uas_pid=$!
    CHILDREN+=("$uas_pid")
    sleep 0.5
    local rc=0
    (cd "$TMP" && exec timeout "$uac_secs" sipp "${uac_args[@]}" -nostdin -trace_err \
        >"$TMP/$name.uac.out" 2>&1) || rc=$?
    # The UAS stops by itself after its -m calls; give it its closing pause, then stop it.
    local _
    for _ in $(seq 60); do
        kill -0 "$uas_pid" 2>/dev/null || break
        sleep 0.25
    done
    kill -INT "$uas_pid" 2>/dev/null || true
    wait "$uas_pid" 2>/dev/null || true
    forget_child "$uas_pid"
    report_sipp "$name" "$rc"
}

# SIPp exits 0 when every call succeeded, 1 when some failed; more is a setup error.
report_sipp() {
    local name=$1 rc=$2 out="$TMP/$1.uac.out"
    local ok failed retrans errors
    ok=$(sed -n 's/^ *Successful call *|.*| *\([0-9]*\) *$/\1/p' "$out" | tail -1)
    failed=$(sed -n 's/^ *Failed call *|.*| *\([0-9]*\) *$/\1/p' "$out" | tail -1)
    # Message table rows: "INVITE ----------> 20000 3 0", "200 <---------- E-RTD1 20000 0 0 0".
    retrans=$(sed 's/E-RTD[0-9]*//' "$out" |
        awk '$2 ~ /^(-+>|<-+)$/ && $4 ~ /^[0-9]+$/ {s += $4} END {print s + 0}')
    errors=$(cat "$TMP"/*_errors.log 2>/dev/null | grep -c . || true)
    log "SIPp $name: exit $rc, successful calls ${ok:-?}, failed calls ${failed:-?}," \
        "retransmissions $retrans, error-log lines $errors"
    if [[ $rc -gt 1 ]]; then
        sed 's/^/    sipp: /' "$out" | tail -20 >&2
        die "SIPp $name failed (exit $rc)"
    fi
    rm -f "$TMP"/*_errors.log
}

# summarize FILE: size, packets and SIP messages as tshark sees them.
summarize() {
    local file=$1 packets sip
    packets=$(capinfos -c -M "$file" | sed -n 's/^Number of packets: *//p')
    # The sip,stat tap, not "-Y sip": a display filter builds every packet's tree and takes
    # minutes on the RTP captures, the tap seconds.
    sip=$(tshark -q -z sip,stat -r "$file" 2>/dev/null | sed -n 's/^Number of SIP messages: *//p')
    log "$(basename "$file"): $(stat -c %s "$file") bytes, $packets packets, $sip SIP messages"
}

make_all_sip() {
    local out="$DATA/all_sip.pcap" part="$DATA/all_sip.pcap.part"
    log "all_sip.pcap: $SIP_CALLS calls at $SIP_RATE calls/s on $SIP_UAC -> $SIP_UAS:$SIP_PORT"
    start_tcpdump "$part" "udp and host $SIP_UAC and host $SIP_UAS and port $SIP_PORT" 240
    # -d 2000: each call holds 2 s between ACK and BYE; -l caps open calls if the UAS lags.
    run_pair all_sip 200 180 \
        -sn uas -i "$SIP_UAS" -p "$SIP_PORT" -m "$SIP_CALLS" \
        -- "$SIP_UAS:$SIP_PORT" -sn uac -i "$SIP_UAC" -p "$SIP_PORT" \
        -m "$SIP_CALLS" -r "$SIP_RATE" -d 2000 -l 3000
    stop_tcpdump "$part"
    rm -f "$part.tcpdump.log"
    mv "$part" "$out"
    summarize "$out"
}

make_rtp_heavy() {
    local out="$DATA/rtp_heavy.pcap" part="$DATA/rtp_heavy.pcap.part"
    log "rtp_heavy.pcap: $RTP_CALLS calls at $RTP_RATE calls/s with G.711 RTP on $RTP_UAC -> $RTP_UAS"
    start_tcpdump "$part" \
        "udp and host $RTP_UAC and host $RTP_UAS and (port $RTP_PORT or portrange 20000-65535)" 400
    # 1,000 calls / 8 per s = 125 s, plus the last call's 9 s.
    run_pair rtp_heavy 260 240 \
        -sf "$SCEN/uas_pcma.xml" -i "$RTP_UAS" -p "$RTP_PORT" \
        -mi "$RTP_UAS" -mp "$RTP_UAS_MEDIA" -m "$RTP_CALLS" \
        -- "$RTP_UAS:$RTP_PORT" -sf "$SCEN/uac_g711a.xml" -i "$RTP_UAC" -p "$RTP_PORT" \
        -mi "$RTP_UAC" -mp "$RTP_UAC_MEDIA" -cid_str 'sfb0-%u-%p@%s' \
        -m "$RTP_CALLS" -r "$RTP_RATE" -l 200
    stop_tcpdump "$part"
    rm -f "$part.tcpdump.log"
    mv "$part" "$out"
    summarize "$out"
}

# make_repeated SOURCE COPIES SIP_PORT: SOURCE.pcap COPIES times over, as SOURCE_xCOPIES.pcap
make_repeated() {
    local src="$DATA/$1.pcap" out="$DATA/$1_x$2.pcap"
    log "$1_x$2.pcap: $1.pcap $2 times over"
    python3 "$HERE/repeat_capture.py" --copies "$2" --sip-port "$3" "$src" "$out.part"
    mv "$out.part" "$out"
    summarize "$out"
}

main() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --force) FORCE=1 ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; exit 2 ;;
        esac
        shift
    done
    check_prereqs
    mkdir -p "$DATA"
    TMP=$(mktemp -d /tmp/sipflow-bench.XXXXXX)
    local built_rtp=0
    if [[ $FORCE == 1 || ! -s "$DATA/all_sip.pcap" ]]; then
        make_all_sip
    else
        log "all_sip.pcap exists, kept (--force to remake)"
    fi
    if [[ $FORCE == 1 || ! -s "$DATA/rtp_heavy.pcap" ]]; then
        make_rtp_heavy
        built_rtp=1
    else
        log "rtp_heavy.pcap exists, kept (--force to remake)"
    fi
    if [[ $FORCE == 1 || $built_rtp == 1 || ! -s "$DATA/rtp_heavy_x4.pcap" ]]; then
        make_repeated rtp_heavy 4 "$RTP_PORT"
    else
        log "rtp_heavy_x4.pcap exists, kept (--force to remake)"
    fi
    if [[ $FORCE == 1 || ! -s "$DATA/all_sip_x10.pcap" ]]; then
        make_repeated all_sip 10 "$SIP_PORT"  # memory must stay flat
    else
        log "all_sip_x10.pcap exists, kept (--force to remake)"
    fi
}

main "$@"
