"""sipflow: SIP call-flow analyzer."""

from __future__ import annotations

__version__ = "0.1.0"
