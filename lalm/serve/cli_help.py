"""`--help` for a command with many long flags (`lalm serve`): the options in titled panels, each flag whole.

typer's own panels share the width between four name columns, the type and the help, and cut any flag longer
than about 30 characters to `--screen-text-max-frames…` at 80 columns. Here a panel has two columns: the flag
(its `--no-` form on the next line, its value type after it), never cut, and the help, wrapped in the rest."""

from __future__ import annotations

import inspect
import os
from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand, TyperOption

__all__ = ["PanelHelpCommand"]

_OTHER = "Options"


class PanelHelpCommand(TyperCommand):
    """A typer command whose help lists its options by `rich_help_panel`, panels in the order of their first
    option, options without one last under "Options"."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        width = os.environ.get("TERMINAL_WIDTH")  # what typer's own help honours, besides COLUMNS
        console = Console(width=int(width) if width else None, highlight=False)
        console.print(Padding(escape(self.get_usage(ctx)), 1), style="bold")
        if self.help:
            # paragraphs reflowed to the width: the docstring's own line breaks are the source's
            text = "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(self.help).split("\n\n"))
            console.print(Padding(escape(text), (0, 1, 1, 1)))
        panels: defaultdict[str, list[TyperOption]] = defaultdict(list)
        for param in self.get_params(ctx):
            if isinstance(param, TyperOption) and not param.hidden:
                panels[param.rich_help_panel or _OTHER].append(param)
        if _OTHER in panels:
            panels[_OTHER] = panels.pop(_OTHER)
        for title, params in panels.items():
            table = Table.grid(padding=(0, 2))
            table.add_column(no_wrap=True)
            table.add_column(ratio=1)
            for param in params:
                table.add_row(_names(param, ctx), _help(param))
            console.print(Panel(table, title=title, title_align="left", border_style="dim"))


def _names(param: TyperOption, ctx: Any) -> Text:
    """`--flag <type>`, and a switch's `--no-flag` on a line of its own."""
    names = Text(", ".join(param.opts), style="bold cyan")
    if param.is_flag:
        for opt in param.secondary_opts:
            names.append("\n" + opt, style="bold magenta")
    else:
        names.append(" " + (param.display_type_rich(ctx) or ""), style="yellow")
    return names


def _help(param: TyperOption) -> Text:
    text = Text.from_markup(param.help or "")
    if param.show_default and param.default is not None:
        text.append(f" [default: {param.default}]", style="dim")
    return text
