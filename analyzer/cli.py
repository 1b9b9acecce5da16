"""The ``sipflow`` command: parse options, call the library, map errors to exit codes."""

from __future__ import annotations

import json
import sys
from typing import IO, Any, TextIO

import click

from analyzer import __version__
from analyzer.errors import SipflowError
from analyzer.reader import MessageReader
from analyzer.report.columns import MESSAGE_COLUMNS
from analyzer.report.render import FORMATS, WRITERS, defuse


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sipflow")
def main() -> None:
    """sipflow: find why SIP calls fail, from pcap/pcapng captures."""


@main.command()
@click.argument("capture", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format.")
@click.option(
    "-o",
    "--output",
    type=click.File("w", encoding="utf-8", lazy=True),
    default="-",
    help="Write here instead of standard output.",
)
@click.option(
    "--show-skipped",
    is_flag=True,
    help="List (on stderr) frames skipped by reason and every message that could not be parsed.",
)
def messages(capture: str, fmt: str, output: TextIO, show_skipped: bool) -> None:
    """List every SIP message in CAPTURE (pcap/pcapng, optionally gzipped; - for stdin)."""
    reader = MessageReader(capture)
    try:
        WRITERS[fmt](output, MESSAGE_COLUMNS, reader.open())
    except SipflowError as exc:
        raise cli_error(exc) from None
    except BrokenPipeError:
        sys.stderr.close()  # `sipflow messages x | head`: stop quietly
        return
    finally:
        output.flush()
    _report_reading(reader, show_skipped)


def _report_reading(reader: MessageReader, show_skipped: bool) -> None:
    """Truncation warning always; counts and malformed messages on request (stderr)."""
    cap, st = reader.capture, reader.decoder.stats
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
    for m in st.malformed:
        frames = ",".join(str(f) for f in m.frames)
        click.echo(f"  malformed frame {m.frame} ({frames}): {m.reason} {m.detail!r}", err=True)


@main.command()
@click.argument("capture", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("table", "json", "jsonl", "csv")),
    default="table",
    show_default=True,
    help="table: a summary for people; json: the whole analysis; jsonl: one call per line; csv: one row per call.",
)
@click.option(
    "-o",
    "--output",
    type=click.File("w", encoding="utf-8", lazy=True),
    default="-",
    help="Write here instead of standard output.",
)
def analyze(capture: str, fmt: str, output: TextIO) -> None:
    """Group CAPTURE's SIP into calls and say, for each, how it ended and what broke it."""
    from analyzer.analysis import analyze as run
    from analyzer.report import calls as calls_report
    from analyzer.report.terminal import write_summary

    try:
        result = run(capture)
    except SipflowError as exc:
        raise cli_error(exc) from None
    if fmt == "json":
        json.dump(calls_report.analysis_dict(result), output, indent=1, ensure_ascii=False)
        output.write("\n")
    elif fmt == "jsonl":
        for r in result.calls:
            output.write(json.dumps(calls_report.call_dict(r), ensure_ascii=False) + "\n")
    elif fmt == "csv":
        frame = calls_report.calls_dataframe(result.calls)
        for col in ("caller", "callee", "call_id", "explanation", "final_reason"):
            frame[col] = frame[col].map(defuse)
        frame.to_csv(output, index=False)
    else:
        write_summary(output, result)
    if result.warning:
        click.echo(
            f"sipflow: warning: {capture}: reading stopped after frame {result.stats.frames}: {result.warning}",
            err=True,
        )


@main.command()
@click.argument("code", type=int)
def explain(code: int) -> None:
    """Explain a SIP response code (e.g. 488), from the IANA registry."""
    from analyzer.diagnose.codes import lookup

    try:
        entry = lookup(code)
    except ValueError:
        raise CliError(f"{code} is not a SIP response code (100-699)") from None
    click.echo(f"{code} {entry.reason}  [{entry.cls}, {entry.rfc}]")
    click.echo(f"  meaning: {entry.meaning}")
    click.echo(f"  hint:    {entry.hint}")
