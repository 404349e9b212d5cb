"""The command line's restore options, generated from `videofix.settings`.

What is the command line's own: the `--flag` spelling of a setting (its field name with
dashes; a True-by-default switch also gets `--no-...`), argparse groups, and the README's
option tables (`markdown_tables`, checked against the README by the tests).
"""

from __future__ import annotations

import argparse

from videofix import settings as schema
from videofix.settings import Option, RestoreSettings, default_text, values_text

FRONT_END = "cli"
ALSO_IN = {"vapoursynth": "VapourSynth", "comfyui": "ComfyUI"}


def flag(name: str) -> str:
    """The command line's name of a setting: ``temporal_radius`` -> ``--temporal-radius``."""
    return "--" + name.replace("_", "-")


def _help(opt: Option, default) -> str:
    extra = f"default: {default_text(opt, default)}"
    if opt.kind in ("int", "float") and opt.range_text():
        extra += f"; {opt.range_text()}"
    return f"{opt.help} ({extra})".replace("%", "%%")


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """Every setting exposed on the command line, in argparse groups named after the schema's groups."""
    for group in schema.GROUPS:
        g = parser.add_argument_group(schema.GROUP_TITLES[group])
        for name, opt, default in group.options():
            if not opt.exposed_in(FRONT_END):
                continue
            kwargs: dict = {"dest": name, "help": _help(opt, default)}
            if opt.kind == "bool":
                if default:
                    kwargs.update(action=argparse.BooleanOptionalAction, default=True)
                else:
                    kwargs.update(action="store_true", default=False)
            elif opt.kind == "files":
                kwargs.update(nargs="+", default=list(default), metavar=opt.metavar or "FILE")
            else:
                kwargs.update(default=default, metavar=opt.metavar)
                if opt.kind == "int":
                    kwargs["type"] = int
                elif opt.kind == "float":
                    kwargs["type"] = float
                if opt.choices:
                    kwargs["choices"] = opt.choices
                    kwargs.pop("metavar")
            g.add_argument(flag(name), **kwargs)


def settings_from_args(args: argparse.Namespace) -> RestoreSettings:
    """The `RestoreSettings` of parsed options (not yet validated)."""
    values = {name: getattr(args, name) for name, _, _ in schema.options(FRONT_END) if hasattr(args, name)}
    return RestoreSettings(**values)


def markdown_tables() -> str:
    """The README's option tables: one per group, every command-line setting with its default."""
    out = []
    for group in schema.GROUPS:
        rows = [(name, opt, default) for name, opt, default in group.options() if opt.exposed_in(FRONT_END)]
        if not rows:
            continue
        out.append(f"**{schema.GROUP_TITLES[group]}**\n")
        out.append("| option | default | values | meaning | also in |")
        out.append("| --- | --- | --- | --- | --- |")
        for name, opt, default in rows:
            spelled = f"`{flag(name)}`" + (f" / `--no-{name.replace('_', '-')}`" if opt.kind == "bool" and default
                                          else "")
            cells = [spelled, default_text(opt, default), values_text(opt), opt.help,
                     ", ".join(ALSO_IN[f] for f in ALSO_IN if opt.exposed_in(f)) or "-"]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # the README's option tables: python -m videofix.commands.options
    print(markdown_tables(), end="")
