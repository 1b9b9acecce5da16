"""The decoder: frames in, SIP messages out (sans-I/O; the same for files and live capture).

Feed it frames in capture order with :meth:`Decoder.feed`; call :meth:`Decoder.finish`
at the end. Every frame is accounted for exactly once in :attr:`DecodeStats.frames_by_reason`
(``sip`` when it completed at least one SIP message). Bytes that start like SIP but
cannot be read as a message are listed in :attr:`DecodeStats.malformed` with their
frame numbers, never dropped silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from analyzer.decode import hep as hep_mod
from analyzer.decode import ip as ip_mod
from analyzer.decode import sctp as sctp_mod
from analyzer.decode import tunnels
from analyzer.decode.fragments import FragmentTable
from analyzer.decode.link import ETH_IPV4, ETH_IPV6, LINK_DECODERS, LinkResult
from analyzer.decode.tcp import Piece, TcpTable
from analyzer.errors import DecodeError, SipParseError
from analyzer.limits import DEFAULT_LIMITS, Limits
from analyzer.sip.message import Origin, SipMessage, new_tuple
from analyzer.sip.parser import call_id_of, parse_message

MAX_DEPTH = 6  # tunnels inside tunnels deeper than this are not decoded

# First payload bytes worth a closer look on UDP: letters (SIP, "HEP3"), 0x02 (HEPv2),
# 0x08-0x0f (VXLAN flags), 0x30-0x37 (GTPv1). RTP (0x80-0xbf) falls through at once.
UDP_INTERESTING = bytes(
    1 if (0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A or b == 0x02 or 0x08 <= b <= 0x0F or 0x30 <= b <= 0x37) else 0
    for b in range(256)
)
# Letters that can start a SIP start line, except H (HEP3's "HEP3" magic goes the long way).
SIP_FIRST = bytes(1 if (0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A) and b not in (0x48, 0x68) else 0 for b in range(256))
TUNNEL_PORTS = frozenset({tunnels.VXLAN_PORT, tunnels.GTPU_PORT})
_KEEPALIVES = (b"\r\n\r\n", b"\r\n", b"\n", b"\0\0\0\0", b"\0", b"jaK\n", b"ping")


class Malformed(NamedTuple):
    """Something that started like SIP but is not a SIP message."""

    frame: int
    frames: tuple[int, ...]
    reason: str
    detail: str


class Unreachable(NamedTuple):
    """An ICMP destination-unreachable about a packet sent to ``dst`` (RFC 792, RFC 4443 §3.1)."""

    frame: int
    ts_ns: int
    reporter: str
    """Who sent the ICMP error."""
    dst: str
    """ip:port the quoted packet was sent to."""
    code: int
    call_id: str = ""
    """The Call-ID of the SIP message the error quotes, as far as the quote goes (it may be cut
    short); empty when the quote holds none (a TCP segment, a quote of 8 bytes)."""

    def may_quote(self, call_id: str) -> bool:
        """Whether the quoted message may be of ``call_id`` (a quote cut short: a prefix of it)."""
        return not self.call_id or call_id.startswith(self.call_id)


@dataclass(slots=True)
class DecodeStats:
    frames: int = 0
    bytes: int = 0
    sip_messages: int = 0
    frames_by_reason: Counter[str] = field(default_factory=Counter)
    malformed: list[Malformed] = field(default_factory=list)
    unreachable: list[Unreachable] = field(default_factory=list)
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    limits: Counter[str] = field(default_factory=Counter)
    """What a limit (analyzer.limits) made the decoder drop, by limit: ``tcp_streams``
    (directions forgotten), ``fragment_pieces`` (datagrams refused), ``fragment_bytes``
    (datagrams dropped to stay within the bytes or datagrams held), ``sctp_fragments``."""


@dataclass(slots=True)
class _Ctx:
    """What is known about the frame being decoded."""

    number: int
    ts_ns: int
    encap: str = ""
    frames: tuple[int, ...] = ()


class Decoder:
    """Stateful decoder: IP fragments and TCP streams are kept between frames.

    ``limits`` bound what it holds (:class:`analyzer.limits.Limits`); they are handed to the
    tables here, once.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.stats = DecodeStats()
        self.fragments = FragmentTable(
            max_pending=limits.fragment_datagrams, max_bytes=limits.fragment_bytes, max_pieces=limits.fragment_pieces
        )
        self.tcp = TcpTable(
            max_streams=limits.tcp_streams,
            max_buffer=limits.tcp_buffer,
            max_pending=limits.tcp_pending_segments,
            max_header=limits.max_sip_header,
            max_body=limits.max_sip_body,
            ws_message=limits.ws_message,
        )
        self.sctp = sctp_mod.SctpReassembler(max_message=limits.sctp_message, max_pending=limits.sctp_fragments)
        self._hep_max = limits.hep_payload
        self._addr: dict[bytes, str] = {}
        self._fast_not_sip = 0

    # -- entry points ----------------------------------------------------------------
    def feed(self, number: int, ts_ns: int, linktype: int, data: bytes) -> list[SipMessage]:
        """Decode one frame; returns the SIP messages it completed (often none)."""
        st = self.stats
        st.frames += 1
        st.bytes += len(data)
        if st.first_ts_ns is None:
            st.first_ts_ns = ts_ns
        st.last_ts_ns = ts_ns
        # Fast path: Ethernet / IPv4 without options, not a fragment / UDP. RTP and other
        # payloads that cannot start SIP, HEP or a tunnel are counted and dropped at once;
        # plain SIP on UDP is parsed without going through the layer functions.
        if (
            linktype == 1
            and len(data) > 42
            and data[12] == 0x08
            and data[13] == 0
            and data[14] == 0x45
            and data[23] == 17
            and not (data[20] & 0x3F or data[21])
        ):
            first = data[42]
            if not UDP_INTERESTING[first]:
                self._fast_not_sip += 1
                return []
            if SIP_FIRST[first]:
                return self._fast_udp_sip(number, ts_ns, data)
        decoder = LINK_DECODERS.get(linktype)
        if decoder is None:
            return self._skip("link-unsupported")
        ctx = _Ctx(number, ts_ns)
        return self._network(data, decoder(data), ctx, 0)

    def feed_hep(self, number: int, ts_ns: int, payload: bytes) -> list[SipMessage]:
        """Decode one HEP packet a collector received (a UDP datagram, or one HEP3 packet cut
        from a TCP stream): counted as a frame; its SIP keeps the agent's addresses and time
        (``ts_ns``, the receive time, only when the agent sent none)."""
        st = self.stats
        st.frames += 1
        st.bytes += len(payload)
        if st.first_ts_ns is None:
            st.first_ts_ns = ts_ns
        st.last_ts_ns = ts_ns
        return self._hep(payload, _Ctx(number, ts_ns))

    def _fast_udp_sip(self, number: int, ts_ns: int, data: bytes) -> list[SipMessage]:
        """Ethernet/IPv4/UDP whose payload starts with a letter other than H (HEP3)."""
        sport = (data[34] << 8) | data[35]
        dport = (data[36] << 8) | data[37]
        if sport in TUNNEL_PORTS or dport in TUNNEL_PORTS:
            return self._network(data, (ETH_IPV4, 14, ""), _Ctx(number, ts_ns), 0)
        end = 14 + ((data[16] << 8) | data[17])
        uend = 34 + ((data[38] << 8) | data[39])
        if 42 <= uend < end:
            end = uend
        # an IP total length below 28 (0 with segmentation offload) leaves no payload; a slice
        # that ends before it starts must not reach mypyc's bytes slice (analyzer/native.py)
        payload = data[42:end] if end > 42 else b""
        addr = self._addr
        src = addr.get(data[26:30]) or self._add_addr(data[26:30])
        dst = addr.get(data[30:34]) or self._add_addr(data[30:34])
        origin: Origin = new_tuple(Origin, (number, (number,), ts_ns, src, sport, dst, dport, "udp", ""))
        return self._udp_sip(payload, origin, cut=end > len(data))

    def _udp_sip(self, payload: bytes, origin: Origin, cut: bool = False) -> list[SipMessage]:
        """One datagram's SIP message (RFC 3261 §18.3: one message per datagram).

        ``cut``: the IP or UDP length says more than was captured (a snap length).
        """
        out: list[SipMessage] = []
        if not self._sip(payload, origin, out, quiet=True, cut=cut):
            return self._skip("sip-malformed")
        if not out:
            return self._skip("keepalive" if payload in _KEEPALIVES else "udp-not-sip")
        return out

    def _add_addr(self, raw: bytes) -> str:
        """Address text, cached: a capture has few addresses and many packets."""
        text = ip_mod.address_text(raw)
        if len(self._addr) < 65_536:
            self._addr[raw] = text
        return text

    def finish(self) -> list[SipMessage]:
        """End of input: report what is left in TCP streams and fragment tables."""
        self.sync_stats()
        out: list[SipMessage] = []
        for piece in self.tcp.close_all():
            self._piece(piece, None, out)
        for frames in self.fragments.pending():
            self.stats.malformed.append(Malformed(frames[-1], frames, "ip-fragments-incomplete", ""))
        return out

    # -- layers ------------------------------------------------------------------------
    def skipped_fast(self, frames: int, nbytes: int, first_ts_ns: int, last_ts_ns: int) -> None:
        """Count ``frames`` a reader dropped by the fast path's own test (Ethernet / IPv4 /
        UDP whose payload cannot start SIP, HEP or a tunnel) without handing them over, as
        :meth:`feed` would have counted them."""
        self._count(frames, nbytes, first_ts_ns, last_ts_ns)
        self._fast_not_sip += frames

    def counted_elsewhere(self, nbytes: int, ts_ns: int) -> None:
        """Count a frame that another process decodes and counts by reason (see
        :class:`analyzer.decode.fastpcap.FastRun`'s ``share``)."""
        self._count(1, nbytes, ts_ns, ts_ns)

    def _count(self, frames: int, nbytes: int, first_ts_ns: int, last_ts_ns: int) -> None:
        """Frames read, in time order (:meth:`feed` does the same inline, for speed)."""
        st = self.stats
        st.frames += frames
        st.bytes += nbytes
        if st.first_ts_ns is None:
            st.first_ts_ns = first_ts_ns
        st.last_ts_ns = last_ts_ns

    def sync_stats(self) -> DecodeStats:
        """Fold the fast path's counter into ``stats`` (done by :meth:`finish` too)."""
        if self._fast_not_sip:
            self.stats.frames_by_reason["udp-not-sip"] += self._fast_not_sip
            self._fast_not_sip = 0
        hit = (
            ("tcp_streams", self.tcp.evicted),
            ("fragment_pieces", self.fragments.refused),
            ("fragment_bytes", self.fragments.evicted),
            ("sctp_fragments", self.sctp.dropped_fragments),
        )
        for name, count in hit:
            if count:
                self.stats.limits[name] = count
        return self.stats

    def _skip(self, reason: str) -> list[SipMessage]:
        self.stats.frames_by_reason[reason] += 1
        return []

    def _network(self, data: bytes, link: LinkResult, ctx: _Ctx, depth: int) -> list[SipMessage]:
        etype, off, encap = link
        if encap:
            ctx.encap = f"{ctx.encap}/{encap}" if ctx.encap else encap
        if depth > MAX_DEPTH:
            return self._skip("tunnel-too-deep")
        try:
            if etype == ETH_IPV4:
                pkt = ip_mod.ipv4(data, off)
            elif etype == ETH_IPV6:
                pkt = ip_mod.ipv6(data, off)
            else:
                return self._skip("not-ip")
        except DecodeError as exc:
            return self._skip(exc.reason)
        if pkt.frag_id >= 0:
            key = (pkt.src, pkt.dst, pkt.frag_id, pkt.proto)
            done = self.fragments.add(key, pkt.frag_offset, pkt.more_fragments, pkt.payload, ctx.number)
            if done is None:
                return self._skip("ip-fragment")
            payload, ctx.frames = done
            pkt = ip_mod.IpPacket(pkt.version, pkt.src, pkt.dst, pkt.proto, payload)
        return self._transport(pkt, ctx, depth)

    def _transport(self, pkt: ip_mod.IpPacket, ctx: _Ctx, depth: int) -> list[SipMessage]:
        proto = pkt.proto
        if proto == ip_mod.PROTO_UDP:
            return self._udp(pkt, ctx, depth)
        if proto == ip_mod.PROTO_TCP:
            return self._tcp(pkt, ctx)
        if proto == ip_mod.PROTO_SCTP:
            return self._sctp(pkt, ctx)
        if proto in (ip_mod.PROTO_IPIP, ip_mod.PROTO_IPV6):
            etype = ETH_IPV4 if proto == ip_mod.PROTO_IPIP else ETH_IPV6
            return self._network(pkt.payload, (etype, 0, "ip-in-ip"), ctx, depth + 1)
        if proto == ip_mod.PROTO_GRE:
            return self._tunnel(tunnels.gre(pkt.payload), pkt.payload, ctx, depth)
        if proto in (ip_mod.PROTO_ICMP, ip_mod.PROTO_ICMPV6):
            self._icmp(pkt, ctx)
            return self._skip("icmp")  # SIP quoted in an ICMP error is not a message
        return self._skip("ip-other")

    def _icmp(self, pkt: ip_mod.IpPacket, ctx: _Ctx) -> None:
        """Keep destination-unreachable errors: they explain requests that got no answer."""
        data = pkt.payload
        unreachable = 3 if pkt.proto == ip_mod.PROTO_ICMP else 1
        if len(data) < 8 or data[0] != unreachable:
            return
        try:
            quoted = ip_mod.ipv4(data, 8) if pkt.version == 4 else ip_mod.ipv6(data, 8)
        except DecodeError:
            return
        if len(quoted.payload) < 4 or quoted.proto not in (ip_mod.PROTO_UDP, ip_mod.PROTO_TCP, ip_mod.PROTO_SCTP):
            return
        dport = (quoted.payload[2] << 8) | quoted.payload[3]
        dst = ip_mod.address_text(quoted.dst)
        call_id = call_id_of(quoted.payload[8:]) if quoted.proto == ip_mod.PROTO_UDP else None
        self.stats.unreachable.append(
            Unreachable(
                ctx.number, ctx.ts_ns, ip_mod.address_text(pkt.src), ip_mod.hostport(dst, dport), data[1], call_id or ""
            )
        )

    def _tunnel(self, link: LinkResult, data: bytes, ctx: _Ctx, depth: int) -> list[SipMessage]:
        if not link[0]:
            return self._skip("tunnel-unsupported")
        return self._network(data, link, ctx, depth + 1)

    def _udp(self, pkt: ip_mod.IpPacket, ctx: _Ctx, depth: int) -> list[SipMessage]:
        seg = pkt.payload
        if len(seg) < 8:
            return self._skip("udp-truncated")
        sport = (seg[0] << 8) | seg[1]
        dport = (seg[2] << 8) | seg[3]
        ulen = (seg[4] << 8) | seg[5]
        payload = seg[8:ulen] if 8 <= ulen <= len(seg) else seg[8:]
        if not payload:
            return self._skip("udp-empty")
        if not UDP_INTERESTING[payload[0]]:
            if payload in _KEEPALIVES:
                return self._skip("keepalive")
            return self._skip("udp-not-sip")
        if tunnels.VXLAN_PORT in (sport, dport):
            link = tunnels.vxlan(payload)
            if link[0]:
                return self._network(payload, link, ctx, depth + 1)
        if tunnels.GTPU_PORT in (sport, dport):
            link = tunnels.gtpu(payload)
            if link[0]:
                return self._network(payload, link, ctx, depth + 1)
        if payload[0] in (0x02, 0x48) and hep_mod.is_hep(payload):
            return self._hep(payload, ctx)
        origin = self._origin(pkt, sport, dport, "udp", ctx)
        return self._udp_sip(payload, origin, cut=ulen > len(seg))

    def _tcp(self, pkt: ip_mod.IpPacket, ctx: _Ctx) -> list[SipMessage]:
        seg = pkt.payload
        if len(seg) < 20:
            return self._skip("tcp-truncated")
        sport = (seg[0] << 8) | seg[1]
        dport = (seg[2] << 8) | seg[3]
        seq = int.from_bytes(seg[4:8], "big")
        hlen = (seg[12] >> 4) * 4
        flags = seg[13]
        data = seg[hlen:] if hlen >= 20 else b""
        key = (pkt.src, sport, pkt.dst, dport)
        pieces = self.tcp.segment(key, seq, flags, data, ctx.number)
        if not pieces:
            if key in self.tcp.streams and data:
                return self._skip("tcp-sip-segment")
            if not data:
                return self._skip("tcp-no-payload")
            # a TLS record (RFC 8446 §5.1: type 20-23, version 3.x): SIP over TLS, unreadable here
            return self._skip("tls" if len(data) > 4 and 20 <= data[0] <= 23 and data[1] == 3 else "tcp-not-sip")
        out: list[SipMessage] = []
        for piece in pieces:
            self._piece(piece, (pkt, sport, dport, ctx), out)
        if not out:
            return self._skip("tcp-sip-segment")
        return out

    def _piece(
        self,
        piece: Piece,
        where: tuple[ip_mod.IpPacket, int, int, _Ctx] | None,
        out: list[SipMessage],
    ) -> None:
        frame = piece.frames[-1] if piece.frames else 0
        if piece.kind != "message" or where is None:
            if piece.data.strip(b"\r\n\0 "):
                reason = "tcp-junk" if piece.kind == "junk" else "tcp-incomplete"
                detail = piece.data[:60].decode("utf-8", "replace")
                self.stats.malformed.append(Malformed(frame, piece.frames, reason, detail))
            return
        pkt, sport, dport, ctx = where
        ctx.frames = piece.frames
        self._sip(piece.data, self._origin(pkt, sport, dport, piece.transport, ctx), out)

    def _sctp(self, pkt: ip_mod.IpPacket, ctx: _Ctx) -> list[SipMessage]:
        try:
            packet = sctp_mod.parse_sctp(pkt.payload)
        except DecodeError as exc:
            return self._skip(exc.reason)
        if packet is None:
            return self._skip("sctp-not-sip")
        out: list[SipMessage] = []
        key = (pkt.src, packet.src_port, pkt.dst, packet.dst_port)
        for chunk in packet.chunks:
            try:
                whole = self.sctp.feed(key, chunk)
            except DecodeError as exc:
                self.stats.malformed.append(Malformed(ctx.number, (ctx.number,), exc.reason, ""))
                continue
            if whole is not None:
                origin = self._origin(pkt, packet.src_port, packet.dst_port, "sctp", ctx)
                self._sip(whole, origin, out, quiet=True)
        if not out:
            return self._skip("sctp-not-sip")
        return out

    def _hep(self, payload: bytes, ctx: _Ctx) -> list[SipMessage]:
        try:
            hep = hep_mod.parse_hep(payload, self._hep_max)
        except DecodeError as exc:
            self.stats.malformed.append(Malformed(ctx.number, (ctx.number,), exc.reason, ""))
            return self._skip("hep-malformed")
        if hep is None or not hep.payload:
            return self._skip("hep-not-sip")
        transport = {6: "tcp", 17: "udp", 132: "sctp"}.get(hep.ip_proto, "udp")
        origin = Origin(
            frame=ctx.number,
            frames=(ctx.number,),
            ts_ns=hep.ts_ns if hep.ts_ns is not None else ctx.ts_ns,
            src_ip=hep.src_ip,
            src_port=hep.src_port,
            dst_ip=hep.dst_ip,
            dst_port=hep.dst_port,
            transport=transport,
            encap=f"{ctx.encap}/hep{hep.version}" if ctx.encap else f"hep{hep.version}",
        )
        out: list[SipMessage] = []
        self._sip(hep.payload, origin, out, quiet=True)
        if not out:
            return self._skip("hep-not-sip")
        return out

    # -- SIP -------------------------------------------------------------------------
    def _sip(self, data: bytes, origin: Origin, out: list[SipMessage], quiet: bool = False, cut: bool = False) -> bool:
        """Parse one framed message into ``out``.

        A failure is listed as malformed (and False returned) unless ``quiet`` and the
        bytes are plainly not SIP (no start line at all), which returns True, adding nothing.
        A message ``cut`` short by the capture's snap length is kept (with the defect
        ``cut-short``) only when its Call-ID survived the cut: without one it belongs to
        no call, so it is listed as malformed (``sip-cut-short``) instead.
        """
        try:
            msg = parse_message(data, origin)
        except SipParseError as exc:
            if quiet and exc.reason == "bad-start-line":
                return True
            self.stats.malformed.append(Malformed(origin.frame, origin.frames, exc.reason, exc.detail))
            return False
        if cut:
            if not msg.call_id:
                detail = f"{len(data)} bytes captured: {msg.label} {msg.uri}".rstrip()
                self.stats.malformed.append(Malformed(origin.frame, origin.frames, "sip-cut-short", detail))
                return False
            msg = msg._replace(defects=(*msg.defects, "cut-short"))
        self.stats.sip_messages += 1
        if not out:
            self.stats.frames_by_reason["sip"] += 1
        out.append(msg)
        return True

    def _origin(self, pkt: ip_mod.IpPacket, sport: int, dport: int, transport: str, ctx: _Ctx) -> Origin:
        return Origin(
            frame=ctx.number,
            frames=ctx.frames or (ctx.number,),
            ts_ns=ctx.ts_ns,
            src_ip=self._addr.get(pkt.src) or self._add_addr(pkt.src),
            src_port=sport,
            dst_ip=self._addr.get(pkt.dst) or self._add_addr(pkt.dst),
            dst_port=dport,
            transport=transport,
            encap=ctx.encap,
        )
