"""One call as a ladder diagram: terminal text (as sngrep draws it), Mermaid and SVG.

All three renderers draw the same :class:`Ladder`, built once from a report and its
messages by :func:`build_ladder`: one column per endpoint (``ip:port``, the caller
first, then in order of first appearance), one arrow per message with its time
offset from the first message and its frame number, retransmissions marked, and
the message that broke the call marked ``✖`` with its rule, explanation and hint.

Text from the wire (reason phrases, Call-IDs) is untrusted: control characters are
replaced before anything is drawn (an ESC in a reason phrase must not reach a
terminal, and XML 1.0 forbids most of them), and each output escapes what its own
syntax gives meaning to.
"""

from __future__ import annotations

import textwrap
import unicodedata
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from rich.cells import cell_len, set_cell_size

from analyzer.correlate.store import top_branch
from analyzer.decode.ip import hostport
from analyzer.diagnose.verdict import Breaking, CallReport
from analyzer.sip.message import SipMessage

__all__ = ["Ladder", "Step", "build_ladder", "ladder_mermaid", "ladder_svg", "ladder_text"]


@dataclass(frozen=True, slots=True)
class Step:
    """One message of the ladder."""

    frame: int
    offset_ns: int
    """Time since the first message of the ladder."""
    src: int
    """Column index of the sender."""
    dst: int
    label: str
    """``INVITE``, ``183 Session Progress (SDP)`` … (control characters replaced)."""
    is_request: bool
    retransmission: bool
    breaking: bool


@dataclass(frozen=True, slots=True)
class Ladder:
    title: str
    endpoints: tuple[str, ...]
    """``ip:port`` of each column, left to right."""
    steps: tuple[Step, ...]
    breaking: Breaking | None
    broken_step: int | None
    """Index in ``steps`` of the breaking message; None when it is not among them."""


# -- the model ------------------------------------------------------------------------------
def build_ladder(report: CallReport, messages: list[SipMessage]) -> Ladder:
    """The ladder of one conversation; ``messages`` in capture order (``Analysis.messages_of``)."""
    endpoints = _endpoints(report.caller_addr, messages)
    column = {addr: i for i, addr in enumerate(endpoints)}
    first_ns = messages[0].origin.ts_ns if messages else 0
    retrans = _retransmissions(messages)
    b = report.breaking
    broken: int | None = None
    steps: list[Step] = []
    for i, m in enumerate(messages):
        o = m.origin
        is_breaking = broken is None and b is not None and _is_breaking(m, b)
        if is_breaking:
            broken = i
        steps.append(
            Step(
                frame=o.frame,
                offset_ns=o.ts_ns - first_ns,
                src=column[hostport(o.src_ip, o.src_port)],
                dst=column[hostport(o.dst_ip, o.dst_port)],
                label=_label(m),
                is_request=m.status == 0,
                retransmission=retrans[i],
                breaking=is_breaking,
            )
        )
    return Ladder(_title(report), endpoints, tuple(steps), b, broken)


def _endpoints(caller: str, messages: list[SipMessage]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for m in messages:
        o = m.origin
        seen.setdefault(hostport(o.src_ip, o.src_port))
        seen.setdefault(hostport(o.dst_ip, o.dst_port))
    if caller in seen:
        return (caller, *(a for a in seen if a != caller))
    return tuple(seen)


def _retransmissions(messages: list[SipMessage]) -> list[bool]:
    """A copy of an earlier message of the same transaction (RFC 3261 §17.1.1.2, §17.2.1).

    A request repeats the top Via branch, CSeq and method (§17.2.3); a response repeats
    the status, CSeq, branch and To tag. A proxy's forwarded copy has its own top Via
    (§16.6 step 8), so it is not counted as a retransmission of the request it forwards.
    """
    seen: set[tuple[str, ...]] = set()
    out: list[bool] = []
    for m in messages:
        branch = top_branch(m)
        if m.status == 0:
            key: tuple[str, ...] = ("request", branch, str(m.cseq), m.method.upper())
        else:
            to = m.to
            tag = to.tag if to is not None and to.tag else ""
            key = ("response", str(m.status), str(m.cseq), m.cseq_method.upper(), branch, tag)
        out.append(key in seen)
        seen.add(key)
    return out


def _is_breaking(m: SipMessage, b: Breaking) -> bool:
    """The breaking message: same frame, CSeq and code (or method, for an unanswered request)."""
    if m.origin.frame != b.frame or m.cseq != b.cseq:
        return False
    if b.code:
        return m.status == b.code
    return m.status == 0 and m.method == b.method


def _label(m: SipMessage) -> str:
    label = clean(m.label)
    if m.body and "sdp" in m.content_type:
        label += " (SDP)"
    return label


def _title(report: CallReport) -> str:
    title = f"{report.kind} {report.call_id}: {report.outcome}"
    if report.final_code is not None:
        title += f", {report.final_code} {report.final_reason}".rstrip()
    return clean(title)


def clean(text: str) -> str:
    """``text`` with control characters (C0, DEL, C1) and line separators replaced by U+FFFD."""
    return "".join("\ufffd" if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)


def _offset(ns: int) -> str:
    return f"{ns / 1e9:+.3f} s"


def _details(lad: Ladder) -> list[str]:
    """Rule, explanation and hint of the breaking message, one paragraph each."""
    b = lad.breaking
    if b is None:
        return []
    rule = f"rule: {b.rule}"
    if lad.broken_step is None:
        rule = f"✖ {rule} (frame {b.frame}, not among the messages)"
    out = [clean(rule), clean(b.explanation)]
    if b.hint:
        out.append(clean(f"hint: {b.hint}"))
    return out


# -- terminal text --------------------------------------------------------------------------
_MIN_SPACING = 6
"""Narrowest column pitch: an arrow still shows ``─4…─▶``."""
_PREFERRED_SPACING = 24
_MAX_SPACING = 40
_LINE = "─"
_LIFELINE = "│"


def _fit(text: str, cells: int) -> str:
    """``text`` cut to ``cells`` terminal cells, ending with … when cut."""
    if cells <= 0:
        return ""
    if cell_len(text) <= cells:
        return text
    return set_cell_size(text, cells - 1) + "…"


def _fit_middle(text: str, cells: int) -> str:
    """``text`` cut in the middle (an address keeps its start and its port)."""
    if cell_len(text) <= cells or cells < 3:
        return _fit(text, cells)
    tail = (cells - 1) // 2
    head = cells - 1 - tail
    return set_cell_size(text, head) + "…" + text[len(text) - tail :]


@dataclass(frozen=True, slots=True)
class _Grid:
    """Column geometry of the diagram part of every line."""

    spacing: int
    count: int

    def x(self, column: int) -> int:
        return self.spacing // 2 + column * self.spacing

    @property
    def width(self) -> int:
        return self.x(self.count - 1) + 1

    def lifelines(self, start: int, end: int) -> str:
        """Cells ``start``..``end - 1``: a lifeline at each column, blanks between."""
        xs = {self.x(c) for c in range(self.count)}
        return "".join(_LIFELINE if x in xs else " " for x in range(start, end))


def ladder_text(report: CallReport, messages: list[SipMessage], *, width: int = 100) -> str:
    """The call flow as plain text (no ANSI), one line per message.

    Diagram lines fit in ``width`` cells unless even the narrowest columns do not; the
    title and the endpoint list (printed when header labels had to be cut) are not cut.
    """
    lad = build_ladder(report, messages)
    lines = [lad.title]
    if not lad.steps:
        return "\n".join([*lines, "(no messages)"]) + "\n"
    times = [_offset(s.offset_ns) for s in lad.steps]
    tw = max(len("time"), *(len(t) for t in times))
    fw = max(len("frame"), *(len(str(s.frame)) for s in lad.steps))
    gutter = tw + 1 + fw + 1
    notes = [_notes(s, lad) for s in lad.steps]
    notes_w = max(cell_len(n) for n in notes)
    notes_w = notes_w + 2 if notes_w else 0
    grid = _Grid(_spacing(lad, width - gutter - notes_w), len(lad.endpoints))
    labels = [_fit_middle(clean(e), grid.spacing - 1) for e in lad.endpoints]
    if labels != list(lad.endpoints):
        lines += [f"  {i}: {clean(e)}" for i, e in enumerate(lad.endpoints, 1)]
    lines.append(f"{'time':>{tw}} {'frame':>{fw}} " + _header(grid, labels))
    lines.append(" " * gutter + grid.lifelines(0, grid.width))
    for step, when, note in zip(lad.steps, times, notes, strict=True):
        row = f"{when:>{tw}} {step.frame:>{fw}} " + _row(grid, step)
        lines.append((row + "  " + note) if note else row)
        if step.breaking:
            lines += _wrapped(_details(lad), gutter + 2, width)
    if lad.breaking is not None and lad.broken_step is None:
        lines += _wrapped(_details(lad), gutter, width)
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _notes(step: Step, lad: Ladder) -> str:
    out = []
    if step.retransmission:
        out.append("(retrans)")
    if step.breaking:
        out.append("✖")
    return " ".join(out)


def _spacing(lad: Ladder, room: int) -> int:
    """Column pitch: wide enough for the labels, shrunk to fit ``room`` cells."""
    widest_label = max(cell_len(s.label) for s in lad.steps)
    widest_addr = max(cell_len(e) for e in lad.endpoints)
    ideal = min(_MAX_SPACING, max(_PREFERRED_SPACING, widest_addr + 2, widest_label + 5))
    return max(_MIN_SPACING, min(ideal, room // len(lad.endpoints)))


def _header(grid: _Grid, labels: list[str]) -> str:
    """Endpoint labels, each centred over its lifeline."""
    out = ""
    cell = grid.spacing - 1
    for column, label in enumerate(labels):
        start = grid.x(column) - cell // 2
        pad = (cell - cell_len(label)) // 2
        out += " " * (start - cell_len(out)) + " " * pad + label
    return out


def _row(grid: _Grid, step: Step) -> str:
    a, b = grid.x(step.src), grid.x(step.dst)
    if a == b:  # sent to itself: a loop beside the lifeline
        text = _fit("↺ " + step.label, grid.spacing - 2)
        return grid.lifelines(0, a + 1) + text + grid.lifelines(a + 1 + cell_len(text), grid.width)
    lo, hi = min(a, b), max(a, b)
    return grid.lifelines(0, lo + 1) + _arrow(step.label, hi - lo - 1, b > a) + grid.lifelines(hi, grid.width)


def _arrow(label: str, inner: int, rightward: bool) -> str:
    """``──INVITE──▶`` or ``◀──200 OK──`` exactly ``inner`` cells long."""
    text = _fit(label, inner - 3)
    rest = inner - 1 - cell_len(text)
    left = rest // 2
    body = _LINE * left + text + _LINE * (rest - left)
    return body + "▶" if rightward else "◀" + body


def _wrapped(paragraphs: list[str], indent: int, width: int) -> list[str]:
    """Paragraphs wrapped to ``width`` cells, indented (at least 30 cells of text per line)."""
    pad = " " * indent
    out: list[str] = []
    for p in paragraphs:
        sub = pad + " " * 6 if p.startswith("hint: ") else pad
        out += textwrap.wrap(
            p, width=max(indent + 30, width), initial_indent=pad, subsequent_indent=sub, break_on_hyphens=False
        ) or [pad]
    return out


# -- Mermaid --------------------------------------------------------------------------------
# Mermaid's sequence grammar ends a message at '#', ';' or a newline, treats '%%' as a
# comment and renders HTML in labels; its entity codes (#NN;) are decoded after parsing,
# so every character with a meaning is written as one.
_MERMAID_ESCAPES = {c: f"#{ord(c)};" for c in '#;%<>"&'}


def mermaid_text(text: str) -> str:
    """``text`` safe inside a Mermaid sequence-diagram label, participant alias or title."""
    return "".join(_MERMAID_ESCAPES.get(c, c) for c in clean(text)).strip()


def ladder_mermaid(report: CallReport, messages: list[SipMessage]) -> str:
    """A Mermaid ``sequenceDiagram``; the breaking message is a crossed arrow with a note."""
    lad = build_ladder(report, messages)
    lines = ["sequenceDiagram", f"    title {mermaid_text(lad.title)}"]
    lines += [f"    participant E{i} as {mermaid_text(e)}" for i, e in enumerate(lad.endpoints, 1)]
    for step in lad.steps:
        arrow = ("-" if step.is_request else "--") + ("x" if step.breaking else ">>")
        text = f"{step.label} · frame {step.frame} · {_offset(step.offset_ns)}"
        if step.retransmission:
            text += " (retrans)"
        lines.append(f"    E{step.src + 1}{arrow}E{step.dst + 1}: {mermaid_text(text)}")
        if step.breaking:
            over = sorted({step.src + 1, step.dst + 1})
            lines.append(f"    Note over {','.join(f'E{i}' for i in over)}: {_mermaid_note(lad)}")
    if lad.breaking is not None and lad.broken_step is None and lad.endpoints:
        lines.append(f"    Note over E1: {_mermaid_note(lad)}")
    return "\n".join(lines) + "\n"


def _mermaid_note(lad: Ladder) -> str:
    """Rule, explanation and hint, wrapped with Mermaid's own line break."""
    parts = [mermaid_text(line) for p in _details(lad) for line in textwrap.wrap(p, 60)]
    return "<br/>".join(parts)


# -- SVG ------------------------------------------------------------------------------------
_FONT = 12
_CHAR = 7.2
"""Advance of one character of a 12 px monospace font, for layout."""
_ROW = 26
_NOTE_LINE = 16
_MARGIN = 12
_HEAD_Y = 30
_FIRST_ROW = 96
_MIN_COL = 160
_MAX_COL = 360
_RED = "#c0392b"


def ladder_svg(report: CallReport, messages: list[SipMessage]) -> str:
    """A standalone SVG document of the ladder (monospace text, no scripts, no external refs)."""
    lad = build_ladder(report, messages)
    n = max(1, len(lad.endpoints))
    times = [_offset(s.offset_ns) for s in lad.steps]
    tw = max([len("time"), *(len(t) for t in times)])
    fw = max([len("frame"), *(len(str(s.frame)) for s in lad.steps)])
    gutter = _MARGIN + (tw + fw + 3) * _CHAR
    widest = max([len(e) for e in lad.endpoints] + [len(s.label) + 12 for s in lad.steps] + [10])
    col = min(_MAX_COL, max(_MIN_COL, widest * _CHAR + 24))
    xs = [gutter + col / 2 + i * col for i in range(n)]
    right = gutter + n * col + _MARGIN
    note_chars = min(100, max(30, int((n * col - 24) / _CHAR)))
    body: list[str] = []
    y = _FIRST_ROW
    for step, when in zip(lad.steps, times, strict=True):
        body.append(_svg_step(step, when, xs, y, col, tw, fw))
        y += _ROW
        if step.breaking:
            note, height = _svg_note(lad, gutter + 8, y - 12, n * col - 16, note_chars)
            body.append(note)
            y += height
    if lad.breaking is not None and lad.broken_step is None:
        note, height = _svg_note(lad, gutter + 8, y - 12, n * col - 16, note_chars)
        body.append(note)
        y += height
    height = y + _MARGIN
    head = [
        f'<text x="{_MARGIN}" y="20" font-weight="bold">{_x(lad.title)}</text>',
        f'<text x="{_MARGIN + tw * _CHAR:.1f}" y="{_FIRST_ROW - 24}" text-anchor="end" fill="#666">time</text>',
        f'<text x="{_MARGIN + (tw + 1 + fw) * _CHAR:.1f}" y="{_FIRST_ROW - 24}" text-anchor="end" '
        'fill="#666">frame</text>',
    ]
    for x, e in zip(xs, lad.endpoints, strict=True):
        w = col - 16
        head.append(
            f'<g class="endpoint"><rect x="{x - w / 2:.1f}" y="{_HEAD_Y}" width="{w:.1f}" height="24" rx="3" '
            f'fill="#eef3f8" stroke="#345"/><text x="{x:.1f}" y="{_HEAD_Y + 16}" text-anchor="middle">'
            f"{_x(_fit_middle(e, int(w / _CHAR) - 1))}</text><title>{_x(e)}</title></g>"
        )
        head.append(f'<line x1="{x:.1f}" y1="{_HEAD_Y + 24}" x2="{x:.1f}" y2="{height - _MARGIN}" stroke="#999"/>')
    return "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{right:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {right:.0f} {height:.0f}" font-family="monospace" font-size="{_FONT}">',
            "<defs>",
            _svg_marker("arrow", "#234"),
            _svg_marker("arrow-broken", _RED),
            "</defs>",
            f'<rect width="{right:.0f}" height="{height:.0f}" fill="white"/>',
            *head,
            *body,
            "</svg>",
            "",
        ]
    )


def _x(text: str) -> str:
    """Text content for XML (& < > escaped, control characters already gone)."""
    return escape(clean(text))


def _svg_marker(name: str, colour: str) -> str:
    return (
        f'<marker id="{name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
    )


def _svg_step(step: Step, when: str, xs: list[float], y: int, col: float, tw: int, fw: int) -> str:
    colour = _RED if step.breaking else "#234"
    marker = "arrow-broken" if step.breaking else "arrow"
    dash = ' stroke-dasharray="4 3"' if step.retransmission else ""
    label = ("✖ " if step.breaking else "") + step.label + (" (retrans)" if step.retransmission else "")
    a, b = xs[step.src], xs[step.dst]
    if a == b:
        shape = (
            f'<path d="M{a:.1f},{y - 6} h30 v12 h-30" fill="none" stroke="{colour}"{dash} marker-end="url(#{marker})"/>'
        )
        text_x, anchor = a + 36, "start"
        room = col - 44
    else:
        shape = (
            f'<line x1="{a:.1f}" y1="{y}" x2="{b:.1f}" y2="{y}" stroke="{colour}"{dash} marker-end="url(#{marker})"/>'
        )
        text_x, anchor = (a + b) / 2, "middle"
        room = abs(b - a) - 16
    weight = ' font-weight="bold"' if step.breaking else ""
    return (
        f'<g class="msg{" breaking" if step.breaking else ""}{" retrans" if step.retransmission else ""}">'
        f"<title>{_x(f'frame {step.frame}, {when}: {label}')}</title>"
        f'<text x="{_MARGIN + tw * _CHAR:.1f}" y="{y + 4}" text-anchor="end">{_x(when)}</text>'
        f'<text x="{_MARGIN + (tw + 1 + fw) * _CHAR:.1f}" y="{y + 4}" text-anchor="end">{step.frame}</text>'
        f"{shape}"
        f'<text x="{text_x:.1f}" y="{y - 5}" text-anchor="{anchor}" fill={quoteattr(colour)}{weight}>'
        f"{_x(_fit(label, max(4, int(room / _CHAR))))}</text></g>"
    )


def _svg_note(lad: Ladder, x: float, y: float, width: float, chars: int) -> tuple[str, int]:
    """The breaking message's rule, explanation and hint in a box; returns (svg, height)."""
    lines: list[tuple[str, bool]] = []
    for i, p in enumerate(_details(lad)):
        lines += [(line, i == 0) for line in textwrap.wrap(p, chars, subsequent_indent="      " if i > 1 else "")]
    height = len(lines) * _NOTE_LINE + 10
    parts = [
        f'<g class="note"><rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height}" rx="3" '
        f'fill="#fdf0ee" stroke="{_RED}"/>'
    ]
    for i, (line, bold) in enumerate(lines):
        weight = ' font-weight="bold"' if bold else ""
        parts.append(
            f'<text x="{x + 8:.1f}" y="{y + 17 + i * _NOTE_LINE:.1f}"{weight} xml:space="preserve">{_x(line)}</text>'
        )
    parts.append("</g>")
    return "".join(parts), height + 8
