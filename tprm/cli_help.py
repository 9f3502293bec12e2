"""Help text conventions for `tprm --help`, whatever the installed Typer does by default.

Typer 0.2x (which vendors its own click) prints a type after every option, `<bool>` after
flags like `--json`, and a required argument as `{recipe}` in the usage line. tprm's help
follows click's conventions: flags carry no type, arguments are upper case (`RECIPE`), optional
ones in brackets. `plain_help()` adjusts the two Typer methods that draw them; on a Typer
without them it does nothing.
"""

from __future__ import annotations


def plain_help() -> None:
    from typer import core

    option, argument = getattr(core, "TyperOption", None), getattr(core, "TyperArgument", None)
    if option is None or argument is None or getattr(option, "_tprm_plain_help", False):
        return
    original = getattr(option, "display_type_rich", None)
    if original is not None:
        def display_type_rich(self, ctx):
            return None if getattr(self, "is_flag", False) else original(self, ctx)
        option.display_type_rich = display_type_rich
    if hasattr(argument, "_usage_display_name"):
        def usage_display_name(self) -> str:
            name = (self.metavar or (self.name or "").upper())
            name = name if self.required else f"[{name}]"
            return name + ("..." if self.nargs != 1 else "")
        argument._usage_display_name = usage_display_name
    option._tprm_plain_help = True
