"""The help formatter every subcommand uses: descriptions and examples kept as written, and each
option's default shown after its help (unless it has none worth showing)."""

from __future__ import annotations

import argparse

__all__ = ["HelpFormatter"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--k K  cut-off … (default: 5)``; flags and options without a default say nothing more."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        unset = default is None or default is False or default == argparse.SUPPRESS
        if "default" in text or unset or (not action.option_strings and action.nargs not in ("?", "*")):
            return text
        return f"{text} (default: {default})"
