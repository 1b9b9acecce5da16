"""``python -m analyzer.live …`` runs ``sipflow live …`` on its own."""

from analyzer.live.cli import live

live(prog_name="sipflow live")
