"""The ``sipflow`` command: parse options, call the library, map errors to exit codes."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple, TextIO, TypeVar, cast

import click

from analyzer import __version__, native
from analyzer.correlate.model import Kind, Outcome
from analyzer.correlate.store import MAX_OPEN
from analyzer.errors import SipflowError, UsageError
from analyzer.limits import Limits
from analyzer.listing import MessageRows
from analyzer.report.columns import MESSAGE_COLUMNS
from analyzer.report.render import FORMATS, TEXTS, redact_columns, write_lines
from analyzer.sip.redact import Redaction

if TYPE_CHECKING:
    from analyzer.analysis import Analysis
    from analyzer.decode.pipeline import DecodeStats
    from analyzer.diagnose.verdict import CallReport
    from analyzer.report.select import Filters


ENGINES = ["local", "dask", "tshark"]
"""Where ``analyze`` runs (``--engine``); an engine added here is branched on in ``analyze``.
``tshark``: tshark decodes, sipflow parses what it hands over (SIP over TLS, ``--tls-keylog``)."""


class CliError(click.ClickException):
    """A one-line error on stderr, no traceback; exit code 2 (bad input or usage)."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"sipflow: error: {self.message}", err=True)


class CliFailure(CliError):
    """An analysis that could not complete (exit code 1)."""

    exit_code = 1


def cli_error(exc: SipflowError) -> CliError:
    """The CLI's form of a library error, keeping its exit code."""
    return CliError(str(exc)) if exc.exit_code == 2 else CliFailure(str(exc))


def need_stdout(hint: str = "") -> None:
    """A one-line error (with ``hint``, what to do instead) when sipflow was started with
    standard output closed (``>&-``): the command's output would be lost without a word."""
    if sys.stdout is None:
        raise CliError(f"standard output is closed: {hint}" if hint else "standard output is closed")


class _StdoutText(io.TextIOWrapper):
    """Standard output as UTF-8 text that never closes it (the interpreter does, at exit)."""

    def close(self) -> None:
        self.flush()

    def __del__(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self.detach()


class OutputFile(click.File):
    """``-o``/``--output``: a file, opened on first write (nothing is created when the
    command fails first); ``-`` is standard output, flushed by the block, by the line only
    on a terminal. (click's own stream for ``-`` flushes at every newline: a row's write
    cost a flush through two Python-level wrappers and a system call, 15 % of ``messages``.)"""

    def __init__(self) -> None:
        super().__init__("w", encoding="utf-8", lazy=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "-":
            need_stdout("give a file with -o")
            return _StdoutText(sys.stdout.buffer, encoding="utf-8", line_buffering=sys.stdout.isatty())
        return super().convert(value, param, ctx)


def refuse_output_over(output: TextIO, inputs: list[str]) -> None:
    """An ``-o`` file that is one of the captures read: a one-line error before it is opened
    (it would be emptied while being read)."""
    if not isinstance(output, _StdoutText):  # a file named by -o, not opened yet
        from analyzer.report.atomic import refuse_inputs

        refuse_inputs(output.name, inputs)


_C = TypeVar("_C", bound=Callable[..., None])


def quiet_on_closed_pipe(command: _C) -> _C:
    """``sipflow … | head``: when the reader of standard output goes away, stop there and
    exit 0, with nothing on stderr (what is left unwritten has nowhere to go). Processes
    started for ``--jobs`` are stopped on the way out. An ``-o`` file that cannot be opened
    (it is, on first write) is a one-line error, exit 2."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except click.FileError as exc:  # an -o file opened on first write, and it could not be
            raise CliError(f"{exc.ui_filename}: {exc.message}") from None
        except BrokenPipeError:
            # Python would flush stdout again at exit, fail and say so on stderr
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.stderr.close()

    return cast(_C, run)


REDACT_HELP = (
    "Mask this header's value in the output (repeatable; compact forms and any case count). "
    "Authorization/Proxy-Authorization digests are masked in any case."
)


def redact_option(f: Callable[..., None]) -> Callable[..., None]:
    """``--redact HEADER`` (repeatable), shared by the commands that show message content."""
    return click.option("--redact", "redact", multiple=True, metavar="HEADER", help=REDACT_HELP)(f)


def redaction_of(names: tuple[str, ...]) -> Redaction:
    """The ``--redact`` values as a :class:`Redaction` (a bad name is a usage error)."""
    try:
        return Redaction.of(names)
    except SipflowError as exc:
        raise cli_error(exc) from None


LIMIT_HELP = (
    "Change a decode limit (repeatable; VALUE may end in K, M or G; README: Limits and safety). NAME: "
    + ", ".join(Limits.names())
    + "."
)


def limit_option(f: Callable[..., None]) -> Callable[..., None]:
    """``--limit NAME=VALUE`` (repeatable), shared by the commands that decode captures."""
    return click.option("--limit", "limit", multiple=True, metavar="NAME=VALUE", help=LIMIT_HELP)(f)


def jobs_option(text: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``-j/--jobs N`` (0, the default: every core), shared by the commands that use processes."""
    return click.option("-j", "--jobs", type=click.IntRange(0), default=0, show_default="0: every core", help=text)


def limits_of(items: tuple[str, ...]) -> Limits | None:
    """The ``--limit`` values as :class:`Limits` (None when none is given; a bad one exits 2)."""
    if not items:
        return None
    try:
        return Limits.parse(items)
    except SipflowError as exc:
        raise cli_error(exc) from None


class _Commands(click.Group):
    """``live`` (with its capture threads, rich view and HTTP server) is imported only when it
    is asked for: every other command starts 0.25 s sooner."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "live"])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "live":
            from analyzer.live.cli import live

            return live
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, prog_name="sipflow", message=f"%(prog)s, version %(version)s; hot modules: {native.state()}"
)
def main() -> None:
    """sipflow: find why SIP calls fail, from pcap/pcapng captures."""


_ends_fast = [False]
"""Set by a command that holds nothing but memory once its output is written (:func:`run`)."""


def end_fast_when_done() -> None:
    """Called by ``messages`` and a local ``analyze``: their files are closed by the time
    :func:`main` returns, their processes joined, no thread or temporary file left."""
    _ends_fast[0] = True


def run() -> None:
    """The ``sipflow`` console script: :func:`main`; after a command that asked for it
    (:func:`end_fast_when_done`), the process ends without tearing the interpreter down
    (``os._exit``, once standard output and error are flushed, which those commands do
    themselves already): freeing every object and module took 10-15 ms, 6 % of analysing the
    RTP-heavy benchmark. Anything else exits as Python does."""
    try:
        main()
    except SystemExit as exc:
        if not _ends_fast[0] or not (exc.code is None or isinstance(exc.code, int)):
            raise
        for stream in (sys.stdout, sys.stderr):  # None when started with it closed (2>&-)
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: told already (quiet_on_closed_pipe)
                if stream is not None:
                    stream.flush()
        os._exit(exc.code or 0)


@main.command(short_help="List every SIP message in a capture.")
@click.argument("capture", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format.")
@click.option(
    "-o",
    "--output",
    type=OutputFile(),
    default="-",
    help="Write here instead of standard output.",
)
@click.option(
    "--show-skipped",
    is_flag=True,
    help="List (on stderr) frames skipped by reason and every message that could not be parsed.",
)
@redact_option
@limit_option
@jobs_option(
    "Processes at most (SIP datagrams shared out by frame; one for standard input, for other than a classic "
    "Ethernet pcap, for a small capture or one with little SIP; same list as one)."
)
@quiet_on_closed_pipe
def messages(
    capture: str,
    fmt: str,
    output: TextIO,
    show_skipped: bool,
    redact: tuple[str, ...],
    limit: tuple[str, ...],
    jobs: int,
) -> None:
    """List every SIP message in CAPTURE (pcap/pcapng, optionally gzipped; - for stdin)."""
    end_fast_when_done()
    columns = redact_columns(MESSAGE_COLUMNS, redaction_of(redact))
    reader = MessageRows(capture, columns, jobs=jobs or cpu_count(), limits=limits_of(limit))
    try:
        refuse_output_over(output, [capture])
        reader.open()  # not a capture: an error before the output is touched (no empty file)
        text = TEXTS[fmt](columns)
        try:
            write_lines(output, text, reader.lines(text.line))
        finally:
            output.flush()  # the rows listed before an error are kept
    except SipflowError as exc:
        raise cli_error(exc) from None
    _report_reading(reader, show_skipped)


def _tls_hint(stats: DecodeStats, how: str) -> None:
    """A capture that gave no SIP but holds TLS: say how to read it (stderr)."""
    tls = stats.frames_by_reason.get("tls", 0)
    if tls and not stats.sip_messages:
        click.echo(f"sipflow: warning: no SIP message read, but {tls:,} frames carry TLS: {how}", err=True)


def _report_reading(reader: MessageRows, show_skipped: bool) -> None:
    """Truncation warning always; counts and malformed messages on request (stderr)."""
    cap, st = reader.capture, reader.stats
    _tls_hint(st, "sipflow analyze --engine tshark --tls-keylog FILE decrypts it with the session keys")
    if cap.warning:
        click.echo(f"sipflow: warning: {cap.path}: reading stopped after frame {st.frames}: {cap.warning}", err=True)
    if not show_skipped:
        if st.malformed:
            click.echo(
                f"sipflow: {len(st.malformed)} malformed SIP message(s) skipped (--show-skipped lists them)",
                err=True,
            )
        return
    click.echo(f"{st.frames} frames, {st.sip_messages} SIP messages", err=True)
    for reason, count in sorted(st.frames_by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
        click.echo(f"  {reason:<24} {count:>9} frames", err=True)
    for m in sorted(st.malformed, key=lambda m: m.frame):  # in frame order (TCP's leftovers come last)
        frames = f" (frames {','.join(str(f) for f in m.frames)})" if m.frames != (m.frame,) else ""
        click.echo(f"  malformed frame {m.frame}{frames}: {m.reason} {m.detail!r}", err=True)


_FILTER_OPTIONS = (
    click.option("--call-id", multiple=True, help="Only these Call-IDs (repeatable)."),
    click.option("--number", multiple=True, help="Only calls whose From/To/Request-URI user contains this."),
    click.option("--ip", multiple=True, help="Only calls with a message from or to this address."),
    click.option(
        "--outcome",
        multiple=True,
        type=click.Choice([o.value for o in Outcome]),
        help="Only these outcomes (answered, busy, auth_failed …).",
    ),
    click.option("--code", multiple=True, type=int, help="Only calls in which this response code was seen."),
    click.option("--kind", multiple=True, type=click.Choice([k.value for k in Kind]), help="Only these kinds."),
    click.option("--since", help="Only calls starting at or after this ISO 8601 time (UTC unless given)."),
    click.option("--until", help="Only calls starting at or before this ISO 8601 time."),
)


def filter_options(f: Callable[..., None]) -> Callable[..., None]:
    """The call filters shared by analyze and export (see analyzer.report.select.Filters)."""
    for option in reversed(_FILTER_OPTIONS):
        f = option(f)
    return f


@main.command(short_help="Say why each call failed, and which response broke it.")
@click.argument("captures", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("table", "json", "jsonl", "csv")),
    default="table",
    show_default=True,
    help="table: a summary for people; json: the whole analysis; jsonl: one call per line; csv: one row per call.",
)
@click.option("-o", "--output", type=OutputFile(), default="-", help="Write here, not stdout.")
@filter_options
@click.option(
    "--report",
    "report_dir",
    is_flag=False,
    flag_value="",
    default=None,
    help="Write report.html, calls.csv, messages.csv, calls.json, calls.parquet to DIR "
    "(--report alone: reports/<capture name>/).",
)
@click.option(
    "--fail-on",
    multiple=True,
    help="Exit 1 when this holds, e.g. 'asr<0.8', 'outcome=auth_failed', 'security' or 'security>=high'.",
)
@click.option(
    "--peers",
    "peers_file",
    type=click.Path(dir_okay=False, exists=True),
    help='TOML file naming peers: [peers] "10.0.0.1" = "carrier-a" (ip or ip:port).',
)
@redact_option
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="local",
    show_default=True,
    help="local: this process; dask: a Dask distributed cluster (--scheduler, or one started on this machine).",
)
@click.option("--scheduler", metavar="ADDR", help="With --engine dask: the scheduler, tcp://host:port.")
@click.option(
    "--tls-keylog",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --engine tshark: TLS key log (SSLKEYLOGFILE format) to decrypt SIP over TLS.",
)
@jobs_option(
    "Processes at most for the local engine (calls shared out by Call-ID; one for standard input, a small "
    "capture or one with little SIP; same result as one). With --report, one: the report needs every "
    "message in one process."
)
@click.option(
    "--max-open",
    "max_open_calls",
    type=click.IntRange(1),
    default=MAX_OPEN,
    show_default=True,
    help="Conversations open at once (about 4 KiB each); beyond it the least recently active are "
    "judged early and counted (a flood of unique Call-IDs).",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False),
    help="With --engine dask: where workers write the shuffled messages (storage all workers share).",
)
@limit_option
@quiet_on_closed_pipe
def analyze(
    captures: tuple[str, ...],
    fmt: str,
    output: TextIO,
    report_dir: str | None,
    fail_on: tuple[str, ...],
    peers_file: str | None,
    redact: tuple[str, ...],
    engine: str,
    scheduler: str | None,
    work_dir: str | None,
    tls_keylog: Path | None,
    jobs: int,
    max_open_calls: int,
    limit: tuple[str, ...],
    **filter_args: Any,
) -> None:
    """Group the SIP of CAPTURES (files or directories, read as one) into calls and say, for each,
    how it ended and which response broke it."""
    from analyzer.analysis import Streaming, capture_paths, usable_captures
    from analyzer.analysis import analyze as run
    from analyzer.report import calls as calls_report
    from analyzer.report.kpi import kpis
    from analyzer.report.select import build_filters, check_expression, select, undefined
    from analyzer.report.select import fail_on as holds

    redaction = redaction_of(redact)
    limits = limits_of(limit)
    streamed: _Streamed | None = None
    try:
        for expr in fail_on:
            check_expression(expr)
        filters = build_filters(**filter_args)
        names = _peer_names(peers_file)
        # each file opened as far as its header, before the output's first line: no file for a
        # bad capture; an empty one among several (a rotation's newest) is left out
        paths, skipped = usable_captures(capture_paths(list(captures)))
        refuse_output_over(output, paths)
        outdir = _report_dir(report_dir, list(captures)) if report_dir is not None else None
        with _progress_bar(paths) as tick:
            # Without a report the messages are not needed: stream, memory follows open calls.
            # A redacted header's values are looked for in each call's texts: that needs them.
            keep = report_dir is not None or bool(redaction.headers)
            if tls_keylog is not None and engine != "tshark":
                raise UsageError("--tls-keylog is read by tshark: give --engine tshark too")
            if limits is not None and engine == "tshark":
                raise UsageError("--limit bounds sipflow's own decoder: not with --engine tshark")
            if engine == "dask":
                result = _run_dask(paths, scheduler, work_dir, keep, limits)
            elif engine == "tshark":
                result = _run_tshark(paths, tls_keylog)
            else:
                if scheduler is not None or work_dir is not None:
                    raise UsageError("--scheduler and --work-dir go with --engine dask")
                if outdir is None:
                    end_fast_when_done()
                if not keep:
                    # Each call is written as soon as it is over: memory stays flat however long
                    # the capture. The summary table and --fail-on keep what they read of each
                    # selected call (terminal.summary_view), not the whole report.
                    streamed = _Streamed(fmt, output, filters, keep_reports=bool(fail_on) or fmt == "table")
                result = run(
                    paths,
                    tick,
                    keep_messages=keep,
                    jobs=jobs or cpu_count(),
                    max_open=max_open_calls,
                    on_report=Streaming(streamed.prepare, streamed.take) if streamed is not None else None,
                    limits=limits,
                )
        reports = streamed.reports if streamed is not None else select(result, filters)
        if outdir is not None:
            from analyzer.report.files import write_report_dir  # pandas, jinja2: only here

            written = write_report_dir(result, reports, outdir, paths, redaction)
            click.echo(f"sipflow: wrote {', '.join(str(p) for p in written)}", err=True)
    except SipflowError as exc:
        raise cli_error(exc) from None
    reports = calls_report.redact_reports(reports, redaction, result.messages_of)
    if fmt == "table":
        from analyzer.report.terminal import write_summary  # rich: only for the table

        total = streamed.summary.conversations if streamed is not None else None
        write_summary(output, result, reports, peer_names=names, total=total)
    elif streamed is not None:
        streamed.close(result)
    else:  # the same writers as when streaming: the same text
        from analyzer.report import select as selection

        again = _Streamed(fmt, output, selection.Filters(), keep_reports=False)
        for r in reports:
            again.add(r)
        if again.json is not None:
            again.json.close(result, calls_report.summary_dict(result))
    output.flush()
    if result.stats.limits:
        hit = ", ".join(f"{name} {n}" for name, n in sorted(result.stats.limits.items()))
        click.echo(f"sipflow: warning: limits reached ({hit}): see --limit and the README's limits", err=True)
    if result.evicted:
        click.echo(
            f"sipflow: warning: {result.evicted} conversation(s) judged early: more than {max_open_calls} were "
            "open at once (--max-open)",
            err=True,
        )
    for line in skipped:
        click.echo(f"sipflow: warning: {line}", err=True)
    if engine != "tshark":
        _tls_hint(result.stats, "give --engine tshark --tls-keylog FILE")
    if result.warning:
        stopped = "" if engine == "tshark" else "reading stopped early: "
        click.echo(f"sipflow: warning: {stopped}{result.warning}", err=True)
    cut = sum(1 for m in result.stats.malformed if m.reason == "sip-cut-short")
    if cut:
        click.echo(
            f"sipflow: warning: {cut} SIP message(s) cut short by the capture's snap length lost their Call-ID "
            "and belong to no call (capture with -s 0)",
            err=True,
        )
    gate = kpis(reports) if fail_on else None  # once, for every expression
    for expr in fail_on:
        if gate is not None and undefined(expr, gate):
            click.echo(f"sipflow: warning: --fail-on {expr}: no call gives it a value here: it cannot hold", err=True)
    failed = [expr for expr in fail_on if holds(expr, reports, result.security, gate)]
    if failed:
        click.echo(f"sipflow: --fail-on holds: {'; '.join(failed)}", err=True)
        sys.exit(1)


def _report_dir(option: str, paths: list[str]) -> Path:
    """``--report``'s directory, made before the analysis: one that cannot be made is an
    error before a long run, not after it."""
    from analyzer.report.files import default_dir

    outdir = Path(option) if option else default_dir(paths)
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"{outdir}: not a directory: --report writes several files")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{outdir}: cannot make the report directory: {exc.strerror or exc}") from None
    return outdir


class _Streamed:
    """``analyze``'s json, jsonl and csv output written call by call, as the analysis hands
    them over; the summary counted on the way. The analysis makes each report into a
    :class:`_Written` (:meth:`prepare`) where the report is made, with ``--jobs`` in the
    processes of the calls, side by side; this process counts and writes them (:meth:`take`)."""

    def __init__(self, fmt: str, output: TextIO, filters: Filters, keep_reports: bool) -> None:
        from analyzer.report import calls as calls_report

        self.fmt = fmt
        self.output = output
        self.filters = filters
        self.keep_reports = keep_reports
        self.reports: list[CallReport] = []
        self.failed = 0
        self.summary = calls_report.SummaryCounts()
        self.json = calls_report.JsonCallsWriter(output) if fmt == "json" else None
        self.csv = calls_report.CsvCallsWriter(output) if fmt == "csv" else None

    def add(self, r: CallReport) -> None:
        self.take(self.prepare(r))

    def prepare(self, r: CallReport) -> _Written:
        """What :meth:`take` needs of ``r``: it may run in another process."""
        from analyzer.report.calls import call_csv_line, call_json, counted
        from analyzer.report.select import matches

        kind, outcome, rule = counted(r)
        if not (self.filters.empty or matches(r, self.filters)):
            return _Written(kind, outcome, rule, False, None, None, None)
        view = full = None
        if self.keep_reports:
            from analyzer.report.terminal import summary_view

            view = summary_view(r, False)
            full = summary_view(r, True) if r.breaking is not None else None
        text = None
        if self.fmt in ("json", "jsonl"):
            text = call_json(r)
        elif self.fmt == "csv":
            text = call_csv_line(r)
        return _Written(kind, outcome, rule, True, view, full, text)

    def take(self, w: _Written) -> None:
        self.summary.count(w.kind, w.outcome, w.rule)
        if not w.selected:
            return
        if w.view is not None:
            from analyzer.report.terminal import MAX_FAILED_ROWS

            failed = w.rule is not None
            shown = failed and self.failed < MAX_FAILED_ROWS  # the first failed calls, in start order
            self.failed += failed
            self.reports.append(w.full if shown and w.full is not None else w.view)
        if w.text is None:
            return
        if self.json is not None:
            self.json.add_text(w.text)
        elif self.csv is not None:
            self.csv.add_text(w.text)
        else:
            self.output.write(w.text + "\n")  # jsonl

    def close(self, result: Analysis) -> None:
        if self.json is not None:
            self.json.close(result, self.summary.as_dict())


class _Written(NamedTuple):
    """What :class:`_Streamed` counts, keeps and writes of one report."""

    kind: str
    outcome: str
    """Kind and outcome, as the summary counts them."""
    rule: str | None
    """The breaking rule; None when nothing broke the call."""
    selected: bool
    """The report passes the filters."""
    view: CallReport | None
    """What the summary table and ``--fail-on`` read of it (``summary_view``), when they do
    and it is selected …"""
    full: CallReport | None
    """… and of a failed call the table shows in full (one of the first failed ones)."""
    text: str | None
    """Its JSON object, or CSV line, when it is selected and the format is one of those."""


def cpu_count() -> int:
    """Cores this process may use (its CPU affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run_dask(
    paths: list[str], scheduler: str | None, work_dir: str | None, keep: bool, limits: Limits | None
) -> Analysis:
    """The analysis on a Dask cluster (see analyzer.engines.dask): the same result."""
    from analyzer.engines import dask as engine

    with engine.connect(scheduler) as client, engine.work_directory(work_dir, scheduler) as shared:
        return engine.analyze(paths, client, work_dir=shared, keep_messages=keep, limits=limits)


def _run_tshark(paths: list[str], keylog: Path | None) -> Analysis:
    """The analysis of what tshark decodes (see analyzer.capture.tshark): the same result."""
    from analyzer.capture.tshark import analyze_with_tshark

    if len(paths) != 1:
        raise UsageError("--engine tshark reads one capture at a time")
    return analyze_with_tshark(paths[0], keylog)


@contextlib.contextmanager
def _progress_bar(paths: list[str]) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr, only when stderr is a terminal and the input is a file."""
    from analyzer.capture.source import read_once

    if sys.stderr is None or not sys.stderr.isatty() or any(read_once(p) for p in paths):  # 2>&-: no bar
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    total = sum(os.path.getsize(p) for p in paths if os.path.isfile(p))
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("reading", total=total)
        yield lambda done: bar.update(task, completed=done)


def _peer_names(path: str | None) -> dict[str, str]:
    if path is None:
        return {}
    import tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except UnicodeDecodeError as exc:  # TOML is UTF-8
        raise UsageError(f"{path}: cannot read peer names: not UTF-8 text (byte {exc.start})") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: cannot read peer names: {exc}") from None
    peers = data.get("peers")
    if not isinstance(peers, dict) or not all(isinstance(v, str) for v in peers.values()):
        raise UsageError(f'{path}: expected a [peers] table of "address" = "name"')
    for key in peers:
        if not _peer_address(key):
            raise UsageError(f'{path}: [peers] "{key}": not an address (10.0.0.1, 10.0.0.1:5060, [2001:db8::1]:5060)')
    return {str(k): v for k, v in peers.items()}


def _peer_address(text: str) -> bool:
    """Whether ``text`` is an IP address, or one with a port (IPv6 in brackets then)."""
    import ipaddress

    host, port = text, ""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return not port or (port.isdigit() and 0 < int(port) < 65536)


@main.command(short_help="Explain a SIP response code such as 488.")
@click.argument("code", type=int)
@quiet_on_closed_pipe
def explain(code: int) -> None:
    """Explain a SIP response code (e.g. 488), from the IANA registry."""
    from analyzer.diagnose.codes import INVALID, lookup

    need_stdout()
    entry = lookup(code)
    if entry.cls == INVALID:
        raise CliError(f"{code} is not a SIP response code (100-699)")
    click.echo(f"{code} {entry.reason}  [{entry.cls}, {entry.rfc}]")
    click.echo(f"  meaning: {entry.meaning}")
    click.echo(f"  hint:    {entry.hint}")


@main.command(short_help="Draw one call's flow (ladder).")
@click.argument("capture", type=click.Path(dir_okay=False))
@click.argument("call_id")
@click.option("--mermaid", is_flag=True, help="Print a Mermaid sequence diagram instead.")
@click.option("--svg", "svg_file", type=click.Path(dir_okay=False), help="Write the ladder as an SVG picture.")
@click.option("--width", type=int, default=None, help="Terminal width (default: the terminal's).")
@redact_option
@quiet_on_closed_pipe
def flow(
    capture: str, call_id: str, mermaid: bool, svg_file: str | None, width: int | None, redact: tuple[str, ...]
) -> None:
    """Draw the call flow (ladder) of CALL_ID in CAPTURE, like sngrep's call flow."""
    from analyzer.analysis import analyze as run
    from analyzer.report.atomic import refuse_inputs
    from analyzer.report.calls import redact_reports
    from analyzer.report.ladder import ladder_mermaid, ladder_svg, ladder_text

    if not svg_file:
        need_stdout("write the ladder to a file with --svg")
    redaction = redaction_of(redact)
    try:
        result = run(capture)
    except SipflowError as exc:
        raise cli_error(exc) from None
    matches = [r for r in result.calls if r.call_id == call_id]
    if not matches:
        raise CliError(f"{capture}: no Call-ID {call_id!r} (sipflow analyze lists them)")
    # a Call-ID with several conversations (kinds, or one after another): a picture each
    svgs = [] if not svg_file else [Path(svg_file)] if len(matches) == 1 else [
        Path(svg_file).with_stem(f"{Path(svg_file).stem}-{n}") for n in range(1, len(matches) + 1)
    ]  # fmt: skip
    try:
        for path in svgs:
            refuse_inputs(path, [capture])
    except SipflowError as exc:
        raise cli_error(exc) from None
    for n, found in enumerate(matches):
        msgs = result.messages_of(found)
        (r,) = redact_reports([found], redaction, result.messages_of)
        if svgs:
            _write_text(svgs[n], ladder_svg(r, msgs))
            click.echo(f"sipflow: wrote {svgs[n]}", err=True)
        elif mermaid:
            click.echo(ladder_mermaid(r, msgs))
        else:
            click.echo(ladder_text(r, msgs, width=width or _terminal_columns()))


def _terminal_columns() -> int:
    import shutil  # here: only a ladder for the terminal needs it (5 ms of every start)

    return shutil.get_terminal_size((100, 24)).columns


def _write_text(path: Path, text: str) -> None:
    from analyzer.report.atomic import atomic_write

    def write(f: IO[Any]) -> None:
        f.write(text)

    try:
        atomic_write(path, write)
    except OSError as exc:
        raise CliError(f"{path}: cannot write ({exc.strerror or exc})") from None


@main.command(short_help="Write the frames of the selected calls to a pcap.")
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="The pcap to write.")
@click.option("--failed", is_flag=True, help="Only calls with a breaking response.")
@filter_options
@click.option(
    "--redact",
    "redact",
    multiple=True,
    metavar="HEADER",
    help="Mask this header's value in the SIP of the written frames, in place, same length (repeatable); "
    "Authorization/Proxy-Authorization digests are then masked too. Without --redact every frame is "
    "written exactly as captured, credentials included.",
)
def export(
    capture: str,
    out: str,
    failed: bool,
    redact: tuple[str, ...],
    **filter_args: Any,
) -> None:
    """Write the frames of the selected calls (every fragment and segment) to a new pcap."""
    from analyzer.analysis import analyze as run
    from analyzer.report.export import export_frames, frames_for
    from analyzer.report.select import build_filters, select

    redaction = redaction_of(redact) if redact else None
    try:
        filters = build_filters(**filter_args)
        result = run(capture)
        reports = [r for r in select(result, filters) if r.breaking is not None or not failed]
        if not reports:
            raise UsageError("no call matches: nothing to export")
        frames = frames_for(result, reports)
        msgs = [m for r in reports for m in result.messages_of(r)]
        n = export_frames(Path(capture), frames, Path(out), redaction=redaction, messages=msgs)
    except SipflowError as exc:
        raise cli_error(exc) from None
    click.echo(f"sipflow: wrote {n} frames of {len(reports)} call(s) to {out}", err=True)
    if n < len(frames):
        click.echo(
            f"sipflow: warning: {len(frames) - n} frame(s) left out: their SIP could not be redacted in place",
            err=True,
        )
