"""Tests for analyzer.sip.fields.

Header values are copied from real captures in ../shared/pcaps (the file is named beside
each one; tshark 4.0 shows the same text); a few come from RFC examples or are made up
to reach a branch, and say so.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.sip.fields import (
    AuthInfo,
    NameAddr,
    ReasonInfo,
    SipUri,
    Via,
    WarningInfo,
    auth,
    header_tag,
    name_addr,
    parse_cseq,
    parse_int,
    parse_uri,
    reasons,
    split_commas,
    vias,
    warnings,
)

V6_A = "fd17:625c:f037:2:a00:27ff:feb9:3519"
V6_B = "fd17:625c:f037:2:a00:27ff:feb9:1521"


# -- split_commas ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("   ", []),
        ("INVITE", ["INVITE"]),
        # pcapplusplus/sip_resp.pcap Allow
        ("INVITE, ACK,CANCEL", ["INVITE", "ACK", "CANCEL"]),
        ("a,,b, ", ["a", "b"]),
        # eim-lab09/sip.pcap Contact: the comma is inside a quoted string
        (
            '<sip:eim@192.168.60.101:46047;transport=udp>;+g.oma.sip-im;language="en,fr"',
            ['<sip:eim@192.168.60.101:46047;transport=udp>;+g.oma.sip-im;language="en,fr"'],
        ),
        # made up: a comma inside <…> (URI headers) and an escaped quote in a display name
        ("<sip:a@b?subject=x,y>, <sip:c@d>", ["<sip:a@b?subject=x,y>", "<sip:c@d>"]),
        ('"a\\",b" <sip:x@y>, <sip:z@w>', ['"a\\",b" <sip:x@y>', "<sip:z@w>"]),
        # linphone Contact (mtaa-sip-magum23): "<" and ">" inside quotes do not nest
        (
            '<sip:1@147.175.160.61:44938>;+sip.instance="<urn:uuid:7658>", <sip:2@h>',
            ['<sip:1@147.175.160.61:44938>;+sip.instance="<urn:uuid:7658>"', "<sip:2@h>"],
        ),
        ('"unclosed, <sip:a@b>', ['"unclosed, <sip:a@b>']),
    ],
)
def test_split_commas(value: str, expected: list[str]) -> None:
    assert split_commas(value) == expected


# -- parse_uri -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        # pcapplusplus/sip_resp.pcap
        ("sip:francisco@bestel.com:55060", SipUri("sip", "francisco", "bestel.com", 55060, ())),
        ("sip:200.57.7.195:55061;user=phone", SipUri("sip", "", "200.57.7.195", 55061, (("user", "phone"),))),
        # made up: scheme and parameter names fold to lower case, values stay as written
        (
            " SIPS:Alice@Example.COM;Transport=TLS ",
            SipUri("sips", "Alice", "Example.COM", None, (("transport", "TLS"),)),
        ),
        # sngrep/ipv6frag.pcap
        (f"sip:sipp@[{V6_B}]:15060", SipUri("sip", "sipp", V6_B, 15060, ())),
        (
            "sip:[fd17:625c:f037:2:a00:27ff:feb9:4222]:25060;transport=UDP",
            SipUri("sip", "", "fd17:625c:f037:2:a00:27ff:feb9:4222", 25060, (("transport", "UDP"),)),
        ),
        ("sip:[fd01::183]", SipUri("sip", "", "fd01::183", None, ())),
        # heplify/sip_ipv6_udp.pcap: IPv6 without brackets; the ninth group is the port
        (
            "sip:9876@fe80:0:0:0:21a:a0ff:fe07:32e0:5060",
            SipUri("sip", "9876", "fe80:0:0:0:21a:a0ff:fe07:32e0", 5060, ()),
        ),
        (
            "sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c",
            SipUri("sip", "4321", "fec0:0:0:0:216:d3ff:fe0d:22c", None, ()),
        ),
        # made up: with "::" a trailing group cannot be told from a port
        ("sip:fe80::1:5060", SipUri("sip", "", "fe80::1:5060", None, ())),
        # arkime/gtp-iphone.pcap
        ("tel:+88270006", SipUri("tel", "+88270006", "", None, ())),
        # RFC 3966 §6 style
        (
            "tel:7042;phone-context=example.com",
            SipUri("tel", "7042", "", None, (("phone-context", "example.com"),)),
        ),
        # eim-lab09/sip.pcap: odd but legal user part, flag parameter
        (
            "sip:thetestcall*75.147.63.201!5370_n@199.7.173.100;gr",
            SipUri("sip", "thetestcall*75.147.63.201!5370_n", "199.7.173.100", None, (("gr", ""),)),
        ),
        # RFC 3261 §19.1.1: user-unreserved ";" in the user part
        ("sip:+1234;npdi@host;user=phone", SipUri("sip", "+1234;npdi", "host", None, (("user", "phone"),))),
        # sip3-captain: empty user
        ("sip:@83.166.68.46:5060", SipUri("sip", "", "83.166.68.46", 5060, ())),
        # ndpi/fuzz-2006-06-26-2594.pcap: the ?headers part is ignored
        (
            "sip:35104723@192.168.1.2:5060?line=7d36558f31367051",
            SipUri("sip", "35104723", "192.168.1.2", 5060, ()),
        ),
        # a port that is not one
        ("sip:h:70000", SipUri("sip", "", "h", None, ())),
        ("sip:2K2.242.33.35:50x0", SipUri("sip", "", "2K2.242.33.35", None, ())),
        ("sip:h : 5060", SipUri("sip", "", "h", 5060, ())),
        # another scheme: only the scheme is read
        ("urn:service:sos", SipUri("urn", "", "", None, ())),
        ("sik:97239287044@voip.brujula.net", SipUri("sik", "", "", None, ())),
        # no URI at all
        ("", None),
        ("*", None),
        ("no-colon-here", None),
        ("0ip:212.242.33.35:5060", None),
        ("sip:", None),
        ("sip:user@", None),
        ("tel:", None),
    ],
)
def test_parse_uri(uri: str, expected: SipUri | None) -> None:
    assert parse_uri(uri) == expected


def test_parse_uri_drops_password() -> None:
    parsed = parse_uri("sip:alice:secretword@atlanta.com")
    assert parsed == SipUri("sip", "alice", "atlanta.com", None, ())
    assert "secretword" not in repr(parsed)


# -- name_addr -------------------------------------------------------------------------
def _sip(user: str, host: str, port: int | None = None, params: tuple[tuple[str, str], ...] = ()) -> SipUri:
    return SipUri("sip", user, host, port, params)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (" , ", None),
        (
            '"Bob" <sip:bob@b.com>;tag=x',
            NameAddr("Bob", "sip:bob@b.com", _sip("bob", "b.com"), "x", (("tag", "x"),)),
        ),
        ("<sip:a@b>", NameAddr("", "sip:a@b", _sip("a", "b"), "", ())),
        # bare addr-spec: ;params belong to the header (RFC 3261 §20.10)
        ("sip:a@b;tag=x", NameAddr("", "sip:a@b", _sip("a", "b"), "x", (("tag", "x"),))),
        # sngrep/ipv6frag.pcap, bare with IPv6
        (
            f"sip:sipp@[{V6_B}]:15060",
            NameAddr("", f"sip:sipp@[{V6_B}]:15060", _sip("sipp", V6_B, 15060), "", ()),
        ),
        # sngrep/ipv6frag.pcap: unquoted display name; a tag given twice, the first counts
        (
            f'"mcr" <sip:mcr@[{V6_A}]:5062>;tag=1632476SIPpTag0271847;tag=1632476SIPpTag0171847',
            NameAddr(
                "mcr",
                f"sip:mcr@[{V6_A}]:5062",
                _sip("mcr", V6_A, 5062),
                "1632476SIPpTag0271847",
                (("tag", "1632476SIPpTag0271847"), ("tag", "1632476SIPpTag0171847")),
            ),
        ),
        (
            f"mcr <sip:mcr@[{V6_A}]:5062>",
            NameAddr("mcr", f"sip:mcr@[{V6_A}]:5062", _sip("mcr", V6_A, 5062), "", ()),
        ),
        # pcapplusplus/sip_resp.pcap: "@" in the display name, no space before "<"
        (
            '"francisco@bestel.com" <sip:francisco@bestel.com:55060>;tag=298852044',
            NameAddr(
                "francisco@bestel.com",
                "sip:francisco@bestel.com:55060",
                _sip("francisco", "bestel.com", 55060),
                "298852044",
                (("tag", "298852044"),),
            ),
        ),
        (
            '"100"<sip:100@51xuetongxin.com>;tag=01ec0bb4',
            NameAddr(
                "100",
                "sip:100@51xuetongxin.com",
                _sip("100", "51xuetongxin.com"),
                "01ec0bb4",
                (("tag", "01ec0bb4"),),
            ),
        ),
        # made up: escapes in a quoted display name (RFC 3261 §25.1 quoted-pair)
        (
            '"Bob \\"the\\" B\\\\" <sip:bob@b>',
            NameAddr('Bob "the" B\\', "sip:bob@b", _sip("bob", "b"), "", ()),
        ),
        # suricata-verify/sip_header_multi_val.pcap ("f:"): stray escapes outside quotes
        (
            '\\"arik\\" <sip:816666@voip.brurjula.net>;tag=6433ef9',
            NameAddr(
                '\\"arik\\"',
                "sip:816666@voip.brurjula.net",
                _sip("816666", "voip.brurjula.net"),
                "6433ef9",
                (("tag", "6433ef9"),),
            ),
        ),
        # arkime/gtp-iphone.pcap
        (
            "<tel:+88270006>;tag=9Q5V3XeXXf",
            NameAddr(
                "",
                "tel:+88270006",
                SipUri("tel", "+88270006", "", None, ()),
                "9Q5V3XeXXf",
                (("tag", "9Q5V3XeXXf"),),
            ),
        ),
        # Contact: * (RFC 3261 §10.2.2)
        ("*", NameAddr("", "*", None, "", ())),
        # eim-lab09/sip.pcap Contact: quoted parameter values with "," and "%"
        (
            '<sip:eim@192.168.60.101:46047;transport=udp>;expires=0;+g.oma.sip-im;language="en,fr";'
            '+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-application.ims.iari.gsma-vs";+g.3gpp.cs-voice',
            NameAddr(
                "",
                "sip:eim@192.168.60.101:46047;transport=udp",
                _sip("eim", "192.168.60.101", 46047, (("transport", "udp"),)),
                "",
                (
                    ("expires", "0"),
                    ("+g.oma.sip-im", ""),
                    ("language", '"en,fr"'),
                    ("+g.3gpp.icsi-ref", '"urn%3Aurn-7%3A3gpp-application.ims.iari.gsma-vs"'),
                    ("+g.3gpp.cs-voice", ""),
                ),
            ),
        ),
        # mtaa-sip-magum23 (linphone) Contact: ";" and "<>" inside a quoted value
        (
            '<sip:1@147.175.160.61:44938;transport=udp>;+sip.instance="<urn:uuid:76583861-2f28-00e1-a587-bc54ef5ab08d>";'
            '+org.linphone.specs="lime"',
            NameAddr(
                "",
                "sip:1@147.175.160.61:44938;transport=udp",
                _sip("1", "147.175.160.61", 44938, (("transport", "udp"),)),
                "",
                (
                    ("+sip.instance", '"<urn:uuid:76583861-2f28-00e1-a587-bc54ef5ab08d>"'),
                    ("+org.linphone.specs", '"lime"'),
                ),
            ),
        ),
        # made up: an unquoted display name with a comma (not a token, but seen in the wild)
        (
            "Doe, John <sip:jd@h>;tag=7, <sip:b@h2>",
            NameAddr("Doe, John", "sip:jd@h", _sip("jd", "h"), "7", (("tag", "7"),)),
        ),
        # several contacts: the first (RFC 3261 §20.10)
        (
            "<sip:a@h1>;q=0.7;expires=60, <sip:b@h2>;q=0.3",
            NameAddr("", "sip:a@h1", _sip("a", "h1"), "", (("q", "0.7"), ("expires", "60"))),
        ),
        # ndpi fuzz capture: truncated, and a junk scheme
        ('"arik" <sip:%s', NameAddr("arik", "sip:%s", _sip("", "%s"), "", ())),
        (
            "<0ip:212.242.33.35:5060>",
            NameAddr("", "0ip:212.242.33.35:5060", None, "", ()),
        ),
        ('"never closed <sip:a@b>', NameAddr('"never closed', "sip:a@b", _sip("a", "b"), "", ())),
    ],
)
def test_name_addr(value: str | None, expected: NameAddr | None) -> None:
    assert name_addr(value) == expected


# -- vias ------------------------------------------------------------------------------
def _via(
    host: str,
    port: int | None,
    branch: str,
    *,
    transport: str = "UDP",
    received: str = "",
    rport: str | None = None,
    maddr: str = "",
    ttl: int | None = None,
    params: tuple[tuple[str, str], ...] = (),
) -> Via:
    return Via("SIP/2.0", transport, host, port, branch, received, rport, maddr, ttl, params)


def test_vias_comma_joined_ipv6() -> None:
    # sngrep/ipv6frag.pcap: two hops in one header, IPv6 in brackets, received without
    value = (
        f"SIP/2.0/UDP [{V6_A}]:5062;branch=z9hG4bK-333138-db2b774d20cc03da0a52fd8ce24968f1,"
        f"SIP/2.0/UDP [{V6_B}]:15060;branch=z9hG4bK-397430-71846-10;received={V6_B}"
    )
    assert vias([value]) == (
        _via(V6_A, 5062, "z9hG4bK-333138-db2b774d20cc03da0a52fd8ce24968f1"),
        _via(V6_B, 15060, "z9hG4bK-397430-71846-10", received=V6_B),
    )


def test_vias_several_values_keep_order() -> None:
    # goffinet private-test-sip.pcapng (comma-joined) then pcapplusplus sip_resp.pcap
    values = [
        "SIP/2.0/UDP 172.16.98.102:5060;branch=z9hG4bK-524287-1---17f55f4c54747b29;rport=5060;"
        "received=172.16.98.102,SIP/2.0/UDP 172.16.98.1:5060;branch=z9hG4bK-343230-65396a22b548dd770593979d4bba954f",
        "SIP/2.0/UDP 10.3.160.214:5060;rport=5060;received=10.3.160.214;branch=z9hG4bK758266975",
    ]
    assert vias(values) == (
        _via(
            "172.16.98.102",
            5060,
            "z9hG4bK-524287-1---17f55f4c54747b29",
            received="172.16.98.102",
            rport="5060",
        ),
        _via("172.16.98.1", 5060, "z9hG4bK-343230-65396a22b548dd770593979d4bba954f"),
        _via("10.3.160.214", 5060, "z9hG4bK758266975", received="10.3.160.214", rport="5060"),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # aaa.pcap: rport without a value (RFC 3581 §3)
        (
            "SIP/2.0/UDP 192.168.1.2;branch=z9hG4bKnp83260863-46304c10192.168.1.2;rport",
            _via("192.168.1.2", None, "z9hG4bKnp83260863-46304c10192.168.1.2", rport=""),
        ),
        # arkime/gtp-iphone.pcap: TCP, IPv6, flag parameter "alias"
        (
            "SIP/2.0/TCP [fd01::183]:5060;alias;branch=z9hG4bK780599774;received=fd01::183;rport=5060",
            _via(
                "fd01::183",
                5060,
                "z9hG4bK780599774",
                transport="TCP",
                received="fd01::183",
                rport="5060",
                params=(("alias", ""),),
            ),
        ),
        # heplify/sip_sctp.pcap: SCTP and an unknown parameter
        (
            "SIP/2.0/SCTP 10.249.30.11:5060;branch=z9hG4bKXfVD0C87Be5AV626;yop=00.00.08D69D07.0000.7008",
            _via(
                "10.249.30.11",
                5060,
                "z9hG4bKXfVD0C87Be5AV626",
                transport="SCTP",
                params=(("yop", "00.00.08D69D07.0000.7008"),),
            ),
        ),
        # heplify/sip_tcp_websocket.pcap
        (
            "SIP/2.0/WSS 1jon8lkj09s0.invalid;received=10.243.17.55;branch=z9hG4bK2834173",
            _via("1jon8lkj09s0.invalid", None, "z9hG4bK2834173", transport="WSS", received="10.243.17.55"),
        ),
        # heplify/sip_ipv6_udp.pcap: IPv6 without brackets
        (
            "SIP/2.0/UDP fe80:0:0:0:21a:a0ff:fe07:32e0:5060;branch=z9hG4bKkdjuw8376",
            _via("fe80:0:0:0:21a:a0ff:fe07:32e0", 5060, "z9hG4bKkdjuw8376"),
        ),
        # RFC 3261 §20.42 example: ttl and maddr
        (
            "SIP/2.0/UDP first.example.com:4000;ttl=16;maddr=224.2.0.1;branch=z9hG4bKa7c6a8dlze.1",
            _via("first.example.com", 4000, "z9hG4bKa7c6a8dlze.1", maddr="224.2.0.1", ttl=16),
        ),
        # RFC 3261 §7.3.1: LWS around "/", ":", ";" and "=", lower-case transport, tabs
        (
            "SIP / 2.0 / tcp\thost.example.com : 5061 ; Branch = z9hG4bK776 ; RPORT",
            _via("host.example.com", 5061, "z9hG4bK776", transport="TCP", rport=""),
        ),
        # made up: no parameters at all, and no port
        ("SIP/2.0/TLS proxy.example.com", _via("proxy.example.com", None, "", transport="TLS")),
        # ndpi fuzz capture: a broken protocol and mangled parameters
        (
            "SIP2.0/UDP 192.168.1.2;branch=z9hG4bKnp1;rport",
            Via("SIP2.0", "UDP", "192.168.1.2", None, "z9hG4bKnp1", "", "", "", None, ()),
        ),
        (
            "SIP/2.0/UDP 192.168.1.2:5060;received=80.230.219.70;rportn5064;b",
            _via("192.168.1.2", 5060, "", received="80.230.219.70", params=(("rportn5064", ""), ("b", ""))),
        ),
        ("%s", Via("", "", "%s", None, "", "", None, "", None, ())),
        ("SIP/2.0/UDP", Via("SIP/2.0", "UDP", "", None, "", "", None, "", None, ())),
    ],
)
def test_via(value: str, expected: Via) -> None:
    assert vias([value]) == (expected,)


def test_via_rfc3261_cookie() -> None:
    # goffinet sip-488-Not-Acceptable-Here-codec-null.pcapng: an RFC 2543 branch
    old, new = vias(
        [
            "SIP/2.0/UDP 176.9.39.206:5010;rport=5010;received=176.9.39.206;branch=0",
            "SIP/2.0/UDP 10.3.160.214:5060;branch=z9hG4bK758266975",
        ]
    )
    assert (old.branch, old.rfc3261) == ("0", False)
    assert new.rfc3261 is True
    # the cookie is case-sensitive (RFC 3261 §8.1.1.7); seen mangled in the ndpi fuzz capture
    assert vias(["SIP/2.0/UDP h;branch=z9HG4bKnp61001873"])[0].rfc3261 is False
    assert vias(["SIP/2.0/UDP h"])[0].rfc3261 is False


def test_vias_long_path() -> None:
    # zeek/sip-long-request-response-paths.pcap: ten Via lines of 932 characters each,
    # host "a" * 900 followed by the hop number
    values = [f"SIP/2.0/UDP {'a' * 900}{i:04d};branch=z9hG4bK{i}" for i in range(10)]
    assert [len(v) for v in values] == [932] * 10
    hops = vias(values)
    assert [(h.host[-4:], len(h.host), h.port, h.branch) for h in hops] == [
        (f"{i:04d}", 904, None, f"z9hG4bK{i}") for i in range(10)
    ]


def test_vias_empty() -> None:
    assert vias([]) == ()
    assert vias(["", " , "]) == ()


# -- reasons ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # heplify/erspan_sip_ipv4_udp.pcapng: a colon inside the quoted text
        (
            ['SIP;cause=488;text="Transfer impossible: No call handling ressources"'],
            (ReasonInfo("SIP", 488, "Transfer impossible: No call handling ressources", ()),),
        ),
        # heplify/sip_ipv4_tcp.pcap: spaces before ";"
        (['Q.850 ;cause=16 ;text="local"'], (ReasonInfo("Q.850", 16, "local", ()),)),
        # aaa.pcap: lower-case protocol
        (["q.850;cause=21"], (ReasonInfo("Q.850", 21, "", ()),)),
        # pcap2sipp/example.pcap: space after ";"
        (["Q.850; cause=16"], (ReasonInfo("Q.850", 16, "", ()),)),
        # wireshark sip-rtp-g711.pcap
        (['Q.850;cause=16;text="NORMAL_CLEARING"'], (ReasonInfo("Q.850", 16, "NORMAL_CLEARING", ()),)),
        # gprshome-wireshark/sip.pcap: a non-standard parameter, no cause
        (
            ['SIP;description="User Hung Up"'],
            (ReasonInfo("SIP", None, "", (("description", '"User Hung Up"'),)),),
        ),
        # RFC 3326 §2 example, two reasons in one value, plus a second header
        (
            [
                'SIP ;cause=200 ;text="Call completed elsewhere", Q.850 ;cause=16 ;text="Terminated"',
                "X.int;cause=7",
            ],
            (
                ReasonInfo("SIP", 200, "Call completed elsewhere", ()),
                ReasonInfo("Q.850", 16, "Terminated", ()),
                ReasonInfo("X.int", 7, "", ()),
            ),
        ),
        # made up: a comma and escaped quotes inside the text, a cause that is not a number
        (['SIP;cause=603;text="No, \\"thanks\\""'], (ReasonInfo("SIP", 603, 'No, "thanks"', ()),)),
        (["Q.850;cause=abc;text=unquoted"], (ReasonInfo("Q.850", None, "unquoted", ()),)),
        (['Q.850;cause=16;text="truncated'], (ReasonInfo("Q.850", 16, "truncated", ()),)),
        ([], ()),
        ([""], ()),
    ],
)
def test_reasons(values: list[str], expected: tuple[ReasonInfo, ...]) -> None:
    assert reasons(values) == expected


# -- auth ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        # aaa.pcap 407
        (
            "Proxy-Authenticate",
            'Digest realm="sip.cybercity.dk",nonce="1701b4767d49c41117c7b73a255a353",opaque="1701a1351f70795",'
            "stale=false,algorithm=MD5",
            AuthInfo(
                "proxy-authenticate",
                "Digest",
                realm="sip.cybercity.dk",
                nonce="1701b4767d49c41117c7b73a255a353",
                algorithm="MD5",
                opaque=True,
            ),
        ),
        # goffinet private-test-sip.pcapng: a comma inside the quoted qop
        (
            "proxy-authenticate",
            'Digest nonce="1462954968:8abcee6ff767266e974028274cd94505",algorithm=MD5,realm="domain.xyz",'
            'qop="auth,auth-int"',
            AuthInfo(
                "proxy-authenticate",
                "Digest",
                realm="domain.xyz",
                nonce="1462954968:8abcee6ff767266e974028274cd94505",
                algorithm="MD5",
                qop="auth,auth-int",
            ),
        ),
        # goffinet sip-register-ok-unregister.pcapng: stale=true, spaces after commas
        (
            "WWW-Authenticate",
            'Digest algorithm=MD5, realm="asterisk", nonce="06ca9ee7", stale=true',
            AuthInfo("www-authenticate", "Digest", realm="asterisk", nonce="06ca9ee7", algorithm="MD5", stale=True),
        ),
        # gprshome-wireshark/sip.pcap: stale=FALSE
        (
            "www-authenticate",
            'Digest realm="51xuetongxin.com",algorithm=MD5,nonce="02D11A114EF3141B5E2B248C50284BC7",stale=FALSE',
            AuthInfo(
                "www-authenticate",
                "Digest",
                realm="51xuetongxin.com",
                nonce="02D11A114EF3141B5E2B248C50284BC7",
                algorithm="MD5",
            ),
        ),
        # pcapplusplus/sip_resp.pcap: two spaces after the scheme
        (
            "www-authenticate",
            'Digest  realm="ims.hom",nonce="021fa2db5ff06518",opaque="627f7bb95d5e2dcd",algorithm=MD5,qop="auth"',
            AuthInfo(
                "www-authenticate",
                "Digest",
                realm="ims.hom",
                nonce="021fa2db5ff06518",
                algorithm="MD5",
                qop="auth",
                opaque=True,
            ),
        ),
        # aaa.pcap Proxy-Authorization
        (
            "proxy-authorization",
            'Digest username="voi18062",realm="sip.cybercity.dk",uri="sip:192.168.1.2",'
            'nonce="1701b4767d49c41117c7b73a255a353",opaque="1701a1351f70795",nc="00000001",'
            'response="8258d3744c08b75f7af46cd0f1762510"',
            AuthInfo(
                "proxy-authorization",
                "Digest",
                realm="sip.cybercity.dk",
                nonce="1701b4767d49c41117c7b73a255a353",
                username="voi18062",
                uri="sip:192.168.1.2",
                opaque=True,
                has_response=True,
            ),
        ),
        # goffinet sip-488-Not-Acceptable-Here-codec-null.pcapng: double space, md5 in
        # lower case, unquoted qop, ";" inside a quoted uri elsewhere
        (
            "authorization",
            'Digest realm="asterisk", nonce="1566926808/1dd69977dc8e079d5047bee62c887e9f", algorithm=md5, '
            'opaque="3ba09d470ec4e448", username="8801",  uri="sip:8802@192.168.8.13", '
            'response="369c6e7b765434b07cdb14d9c962a96f", cnonce="JsV1V0p7dvXCgmiJ", nc=00000001, qop=auth',
            AuthInfo(
                "authorization",
                "Digest",
                realm="asterisk",
                nonce="1566926808/1dd69977dc8e079d5047bee62c887e9f",
                username="8801",
                uri="sip:8802@192.168.8.13",
                algorithm="md5",
                qop="auth",
                opaque=True,
                has_response=True,
            ),
        ),
        # arkime/gtp-iphone.pcap: IMS first REGISTER, empty nonce and response
        (
            "Authorization",
            'Digest nonce="",uri="sip:310410010001002@ims.mnc410.mcc310.3gppnetwork.org",'
            'realm="310410010001002@ims.mnc410.mcc310.3gppnetwork.org",username="263734@imstest.lan",response=""',
            AuthInfo(
                "authorization",
                "Digest",
                realm="310410010001002@ims.mnc410.mcc310.3gppnetwork.org",
                username="263734@imstest.lan",
                uri="sip:310410010001002@ims.mnc410.mcc310.3gppnetwork.org",
            ),
        ),
        # ndpi fuzz capture: a mangled parameter name is ignored
        (
            "proxy-authenticate",
            'Digest raalm="sip.cybercity.dk",nonce="1701b4767d49c41117c7b73a255a353",opaque="1701a1351f70795",'
            "stale=false,algorithm=MD5",
            AuthInfo(
                "proxy-authenticate",
                "Digest",
                nonce="1701b4767d49c41117c7b73a255a353",
                algorithm="MD5",
                opaque=True,
            ),
        ),
        # made up: lower-case scheme, two challenges in one value (only the first is read)
        (
            "WWW-Authenticate",
            'digest realm="a", nonce="1", Digest realm="b", nonce="2", algorithm=SHA-256',
            AuthInfo("www-authenticate", "Digest", realm="a", nonce="1"),
        ),
        # made up: no scheme, other schemes, nothing
        ("www-authenticate", 'realm="x"', AuthInfo("www-authenticate", "", realm="x")),
        ("authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", AuthInfo("authorization", "Basic")),
        ("authorization", "", AuthInfo("authorization", "")),
    ],
)
def test_auth(name: str, value: str, expected: AuthInfo) -> None:
    assert auth(name, value) == expected


def test_auth_never_keeps_response() -> None:
    # goffinet sip-cme-zoiper-register.pcapng
    secret = "88e7fdd7b33c0957f520fc8ce9157714"
    value = (
        'Digest username="1111",realm="ciscolab.xyz",nonce="C9E1E3FD0002B29F",uri="sip:192.168.0.102;transport=UDP",'
        f'response="{secret}",cnonce="1d16f4c538e222bb9fb1790f407af4bd",nc=00000002,qop=auth,algorithm=MD5'
    )
    info = auth("authorization", value)
    assert info.has_response is True
    assert "response" not in AuthInfo._fields
    assert secret not in repr(info)
    assert all(secret not in str(value) for value in info)


@given(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32))
def test_auth_response_never_leaks(secret: str) -> None:
    value = f'Digest username="u",realm="r",nonce="n",uri="sip:x",response="{secret}",algorithm=MD5'
    info = auth("proxy-authorization", value)
    assert info.has_response is True
    assert secret not in repr(info)


# -- warnings --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # goffinet private-test-sip.pcapng: a comma inside the quoted text
        (
            ['399 sip1 "No other DNS entries to try (0,0)"'],
            (WarningInfo(399, "sip1", "No other DNS entries to try (0,0)"),),
        ),
        # pcap2sipp/example.pcap: agent left out
        (['399  "Max-Forwards zero"'], (WarningInfo(399, "", "Max-Forwards zero"),)),
        # aaa.pcap: host:port agent, long text with "=" and double spaces
        (
            [
                '392 200.68.120.81:5060 "Noisy feedback tells:  pid=32642 req_src_ip=80.230.219.70 req_src_port=5060 '
                'in_uri=sip:97239287044@voip.brujula.net out_uri=sip:97239287044@voip.brujula.net via_cnt==1"'
            ],
            (
                WarningInfo(
                    392,
                    "200.68.120.81:5060",
                    "Noisy feedback tells:  pid=32642 req_src_ip=80.230.219.70 req_src_port=5060 "
                    "in_uri=sip:97239287044@voip.brujula.net out_uri=sip:97239287044@voip.brujula.net via_cnt==1",
                ),
            ),
        ),
        # RFC 3261 §20.43 example, two warnings in one value
        (
            [
                "307 isi.edu \"Session parameter 'foo' not understood\", 301 isi.edu \"Incompatible network address type 'E.164'\""
            ],
            (
                WarningInfo(307, "isi.edu", "Session parameter 'foo' not understood"),
                WarningInfo(301, "isi.edu", "Incompatible network address type 'E.164'"),
            ),
        ),
        (["abc"], (WarningInfo(None, "", ""),)),
        (["399 agent"], (WarningInfo(399, "agent", ""),)),
        ([], ()),
    ],
)
def test_warnings(values: list[str], expected: tuple[WarningInfo, ...]) -> None:
    assert warnings(values) == expected


# -- numbers ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1 INVITE", (1, "INVITE")),
        ("4711   REGISTER", (4711, "REGISTER")),
        ("\t20\tBYE ", (20, "BYE")),
        ("4294967295 ACK", (4294967295, "ACK")),
        ("4294967296 ACK", None),  # not a 32-bit number (RFC 3261 §8.1.1.5)
        (" INVITE", None),
        ("%s", None),  # ndpi fuzz capture
        ("12", None),
        ("", None),
        ("-1 INVITE", None),
        ("²3 INVITE", None),
        ("1" * 5000 + " INVITE", None),
    ],
)
def test_parse_cseq(value: str, expected: tuple[int, str] | None) -> None:
    assert parse_cseq(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("70", 70),
        (" 3600 ", 3600),
        ("0", 0),  # pcapplusplus/sip_resp.pcap Retry-After
        # RFC 3261 §20.33 examples
        ("18000;duration=3600", 18000),
        ("120 (I'm in a meeting)", 120),
        ("Thu, 01 Dec 1994 16:00:00 GMT", None),  # an RFC 2543 SIP-date
        ("-5", None),
        ("4294967296", 4294967295),
        ("9" * 5000, 4294967295),
        ("٣", None),
    ],
)
def test_parse_int(value: str | None, expected: int | None) -> None:
    assert parse_int(value) == expected


# -- values are frozen -----------------------------------------------------------------
def test_values_are_frozen() -> None:
    hop = vias(["SIP/2.0/UDP h;branch=z9hG4bK1"])[0]
    with pytest.raises(AttributeError):
        hop.branch = "x"  # type: ignore[misc]
    assert not hasattr(hop, "__dict__")


# -- never an exception ----------------------------------------------------------------
# Characters that steer the parsers, so that generated text reaches their branches.
SIPPY = st.text(alphabet=st.sampled_from(list(' \t"\\<>,;=:@[]/?*.0123456789abfSIPUDtagbranchz9hG4bK²٣')))
ANY_TEXT = st.one_of(st.text(), SIPPY)


@given(ANY_TEXT)
def test_single_value_parsers_never_raise(value: str) -> None:
    assert isinstance(split_commas(value), list)
    parsed = parse_uri(value)
    assert parsed is None or isinstance(parsed, SipUri)
    addr = name_addr(value)
    assert addr is None or isinstance(addr, NameAddr)
    cseq = parse_cseq(value)
    assert cseq is None or (isinstance(cseq, tuple) and 0 <= cseq[0] <= 2**32 - 1)
    number = parse_int(value)
    assert number is None or 0 <= number <= 2**32 - 1


@given(st.lists(ANY_TEXT, max_size=4))
def test_multi_value_parsers_never_raise(values: list[str]) -> None:
    hops = vias(values)
    assert len(hops) <= sum(v.count(",") + 1 for v in values)
    assert all(isinstance(h.rfc3261, bool) for h in hops)
    assert all(h.port is None or 0 <= h.port <= 65535 for h in hops)
    assert all(isinstance(r, ReasonInfo) for r in reasons(values))
    assert all(isinstance(w, WarningInfo) for w in warnings(values))


@given(ANY_TEXT, ANY_TEXT)
def test_auth_never_raises(name: str, value: str) -> None:
    assert isinstance(auth(name, value), AuthInfo)


# -- header_tag: the tag without taking the URI apart ------------------------------------
@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("<sip:bob@example.com>;tag=a6c85cf", "a6c85cf"),
        ("Bob <sip:bob@example.com;tag=uri-param>;TAG=header", "header"),
        ("sip:bob@example.com;tag=bare", "bare"),
        ('"a>b;tag=no" <sip:bob@example.com>;tag=yes', "yes"),
        ("<sip:bob@example.com", ""),
        ("<sip:bob@example.com>", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_header_tag(value: str | None, tag: str) -> None:
    assert header_tag(value) == tag


@given(st.text(alphabet='<>;=", tagsip:@bx\t', max_size=40))
def test_header_tag_is_name_addr_tag(value: str) -> None:
    na = name_addr(value)
    assert header_tag(value) == (na.tag if na else "")
