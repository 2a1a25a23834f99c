"""The manifest of the command tree that gateway.cli.fast answers shell completion from (issue 18).

It is written by reading the click command tree typer builds from gateway.cli.main, so it says what typer
would do: the commands of each group in typer's order with their short help, every parameter with its
option strings, whether it takes a value, and how typer completes its value (a choice, a file, one of the
completers of gateway.cli.complete, or nothing). What typer would do in a way the manifest cannot say
exactly (an option callback, several values, a completer outside gateway.cli.complete) is marked so, and the
fast path then asks typer. Only the miss path imports this module (it loads typer)."""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from pathlib import Path
from types import FunctionType
from typing import Any

import typer.main
import typer.rich_utils  # help renders through it: its files belong to the signature
from typer import _click
from typer._completion_classes import _sanitize_help_text
from typer._param_types import choice_as_str
from typer.core import TyperArgument, TyperGroup, TyperOption, _TyperParameter

from gateway.cli import complete
from gateway.cli.fast_cache import cli_files
from gateway.cli.fast_complete import COMPLETERS, zsh_escape

PACKAGE = "kernel-gateway"


def _completer_name(param: _TyperParameter) -> str | None:
    """The gateway.cli.complete function behind a typer `autocompletion=`, when it takes only what was
    typed (as the fast path calls it); None otherwise. typer wraps it twice: compat_autocompletion holds
    typer's wrapper, whose closure holds the function and which arguments it passes."""
    outer = param._custom_shell_complete
    for cell in getattr(outer, "__closure__", None) or ():
        wrapper = cell.cell_contents
        if not isinstance(wrapper, FunctionType) or wrapper.__closure__ is None:
            continue
        names = dict(
            zip(wrapper.__code__.co_freevars, (c.cell_contents for c in wrapper.__closure__), strict=True)
        )
        if names.get("ctx_name") is not None or names.get("args_name") is not None:
            return None
        if names.get("incomplete_name") is None:
            return None
        for name in COMPLETERS:
            if names.get("callback") is getattr(complete, name):
                return name
    return None


def _value_completion(param: _click.Parameter) -> dict[str, Any]:
    """How typer completes this parameter's value (_TyperParameter.shell_complete)."""
    if (
        not isinstance(param, _TyperParameter)
        or type(param).shell_complete is not _TyperParameter.shell_complete
    ):
        return {"kind": "unsupported"}
    if param._custom_shell_complete is not None:
        name = _completer_name(param)
        return {"kind": "function", "function": name} if name else {"kind": "unsupported"}
    desc = param.type_descriptor
    if desc.is_choice and desc.choices is not None:
        return {
            "kind": "choice",
            "choices": [choice_as_str(c) for c in desc.choices],
            "case_sensitive": bool(desc.case_sensitive),
        }
    if desc.is_file:
        return {"kind": "file"}
    return {"kind": "none"}


def _helps(node: dict[str, Any]) -> set[str]:
    found = {p["help"] for p in node["params"] if p["help"]}
    for command in node["commands"]:
        found |= {command["help"]} if command["help"] else set()
        found |= _helps(command["node"])
    return found


def help_forms(root: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Every completion help of the tree as typer's zsh and fish formats show it: rendered through rich
    (markup gone, wrapped at the width rich finds for this terminal, which is why the fast path keeps them
    per terminal)."""
    helps = sorted(_helps(root))
    return {
        "zsh": {text: _sanitize_help_text(zsh_escape(text)) for text in helps},
        "fish": {text: _sanitize_help_text(re.sub(r"\s", " ", text)) for text in helps},
    }


def _param(param: _click.Parameter) -> dict[str, Any]:
    option = isinstance(param, TyperOption)
    if not option and not isinstance(param, TyperArgument):
        raise TypeError(f"{param!r} is neither a typer option nor a typer argument")
    all_opts = [*param.opts, *param.secondary_opts]
    plain = not option or all(o.startswith("-") and not o.startswith("---") and len(o) > 1 for o in all_opts)
    return {
        "name": param.name,
        "option": option,
        "opts": list(param.opts),
        "secondary_opts": list(param.secondary_opts),
        "hidden": bool(getattr(param, "hidden", False)),
        "multiple": bool(param.multiple),
        "flag": bool(isinstance(param, TyperOption) and (param.is_flag or param.count)),
        "nargs": param.nargs,
        # a callback (--version, -v) or an eager option runs code while completion parses: typer answers
        "plain": plain and param.callback is None and not param.is_eager,
        "help": getattr(param, "help", None) or None,
        "complete": _value_completion(param),
    }


def _node(command: _click.Command, ctx: _click.Context) -> dict[str, Any]:
    node: dict[str, Any] = {
        "group": isinstance(command, TyperGroup),
        "chain": bool(getattr(command, "chain", False)),
        "no_args_is_help": bool(getattr(command, "no_args_is_help", False)),
        "params": [_param(p) for p in command.get_params(ctx)],
        "commands": [],
    }
    if isinstance(command, TyperGroup):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None:
                continue
            child = _node(sub, _click.Context(sub, info_name=name, parent=ctx))
            node["commands"].append(
                {
                    "name": name,
                    "hidden": bool(sub.hidden),
                    "help": sub.get_short_help_str() or None,
                    "node": child,
                }
            )
    return node


def _loaded_files() -> list[str]:
    """Every module file outside the standard library that the CLI has loaded: the gateway's, typer's,
    rich's; a change to any of them (an edit, an upgrade) makes the cache stale."""
    stdlib = tuple(
        {sysconfig.get_paths()["stdlib"] + os.sep, os.path.realpath(sysconfig.get_paths()["stdlib"]) + os.sep}
    )
    found = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not os.path.isabs(path):
            continue
        if path.startswith(stdlib) and "site-packages" not in path:
            continue
        found.add(path)
    return sorted(found)


def _metadata_file() -> str | None:
    """The installed distribution's METADATA (its version changes it), when the gateway is installed; a
    checkout's kernel_gateway.egg-info (what an editable build leaves there, found first when the checkout
    is on sys.path) has PKG-INFO instead."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    located = dist.locate_file("")
    path = getattr(dist, "_path", None)
    for name in ("METADATA", "PKG-INFO"):
        if isinstance(path, Path) and (path / name).is_file():
            return str((path / name).resolve())
    return str(located) if Path(str(located)).is_file() else None


def version() -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def build(prog_name: str) -> dict[str, Any]:
    """The manifest and the files it was made from (gateway.cli.fast_cache.build makes the cache of them)."""
    from gateway.cli.main import app

    command = typer.main.get_command(app)
    ctx = _click.Context(command, info_name=prog_name)
    files = _loaded_files()
    metadata = _metadata_file()
    if metadata is not None:
        files.append(metadata)
    return {"root": _node(command, ctx), "files": sorted(set(files) | set(cli_files())), "version": version()}
