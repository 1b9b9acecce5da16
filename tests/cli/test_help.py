"""``sipflow --help``: every command listed with its whole line."""

from __future__ import annotations

from click.testing import CliRunner

from analyzer.cli import main


def test_the_command_list_gives_each_command_a_whole_line() -> None:
    result = CliRunner().invoke(main, ["--help"], terminal_width=100)
    assert result.exit_code == 0
    commands = result.output.split("Commands:\n", 1)[1].splitlines()
    assert [line.split(None, 1) for line in commands] == [
        ["analyze", "Say why each call failed, and which response broke it."],
        ["explain", "Explain a SIP response code such as 488."],
        ["export", "Write the frames of the selected calls to a pcap."],
        ["flow", "Draw one call's flow (ladder)."],
        ["live", "Watch live SIP (an interface or HEP) and report calls as they end."],
        ["messages", "List every SIP message in a capture."],
    ]
