"""Shell completion answered from the cached manifest of the command tree (gateway.cli.fast), as typer
would answer it (typer's protocol: _GATEWAY_COMPLETE=complete_bash|complete_zsh|complete_fish); a value is
completed by the same gateway.cli.complete function typer calls. A line the manifest cannot follow exactly
raises NotExact, and typer answers it. Standard library only: this module loads on every TAB."""

from __future__ import annotations

import os

from gateway.cli.fast_cache import help_key

TYPE_CHECKING = False  # typing itself costs milliseconds: this module loads on every TAB
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Item = tuple[str, str | None]  # a completion: its value and help

# gateway.cli.complete functions a manifest may name; a name outside this set sends completion to typer
COMPLETERS = ("site_names", "gpu_types", "task_names", "board_names")


class NotExact(Exception):
    """The manifest cannot say exactly what typer would answer."""


def zsh_escape(text: str) -> str:
    """typer's ZshComplete.format_completion escaping."""
    return (
        text.replace('"', '""')
        .replace("'", "''")
        .replace("$", "\\$")
        .replace("`", "\\`")
        .replace(":", r"\\:")
    )


def split_arg_string(string: str) -> list[str]:
    """click.shell_completion.split_arg_string: shlex, keeping an unfinished last word as it is."""
    import shlex

    lex = shlex.shlex(string, posix=True)
    lex.whitespace_split = True
    lex.commenters = ""
    out: list[str] = []
    try:
        out.extend(lex)
    except ValueError:
        out.append(lex.token)
    return out


def completion_args(shell: str) -> tuple[list[str], str]:
    """What typer's BashComplete/ZshComplete/FishComplete.get_completion_args return."""
    if shell == "bash":
        cwords = split_arg_string(os.environ["COMP_WORDS"])
        cword = int(os.environ["COMP_CWORD"])
        args = cwords[1:cword]
        incomplete = cwords[cword] if cword < len(cwords) else ""
        if cword < 0:
            raise NotExact
        return args, incomplete
    completion = os.getenv("_TYPER_COMPLETE_ARGS", "")
    words = split_arg_string(completion)[1:]
    if words and not completion.endswith(" "):
        return words[:-1], words[-1]
    return words, ""


def _option(node: dict[str, Any], name: str) -> dict[str, Any] | None:
    for param in node["params"]:
        if param["option"] and (name in param["opts"] or name in param["secondary_opts"]):
            return param  # type: ignore[no-any-return]
    return None


def _resolve(root: dict[str, Any], args: list[str]) -> tuple[dict[str, Any], set[str]]:
    """The command the complete args lead to and the parameters given on the line (click's
    _resolve_context with resilient parsing), for the lines the manifest can follow exactly."""
    node, arguments, index = root, 0, 0
    given: set[str] = set()
    while index < len(args):
        word = args[index]
        if node["chain"] or word == "--":
            raise NotExact
        if word.startswith("-") and word != "-":
            name, equals, _ = word.partition("=")
            if equals and not name.startswith("--"):
                raise NotExact
            param = _option(node, name)
            if param is None or not param["plain"] or (param["nargs"] != 1 and not param["flag"]):
                raise NotExact
            if param["flag"] and equals:
                raise NotExact
            if not param["flag"] and not equals:
                if index + 1 == len(args):  # its value is what is being typed: click stops here
                    return node, given
                index += 1  # click takes the next word as the value, whatever it looks like
            given.add(param["name"])
            index += 1
            continue
        if node["group"]:
            child = next((c for c in node["commands"] if c["name"] == word), None)
            if child is None:
                raise NotExact
            node, given, arguments = child["node"], set(), 0
            index += 1
            continue
        positional = [p for p in node["params"] if not p["option"]]
        if (
            arguments >= len(positional)
            or positional[arguments]["nargs"] != 1
            or not positional[arguments]["plain"]
        ):
            raise NotExact
        given.add(positional[arguments]["name"])
        arguments += 1
        index += 1
    if node["chain"]:
        raise NotExact
    return node, given


def _option_names(node: dict[str, Any], given: set[str], incomplete: str) -> list[Item]:
    """click Command.shell_complete: the option strings not given yet (typer options only)."""
    items: list[Item] = []
    if not incomplete or incomplete[0].isalnum():
        return items
    for param in node["params"]:
        if not param["option"] or param["hidden"]:
            continue
        if not param["multiple"] and param["name"] in given:
            continue
        items.extend(
            (name, param["help"])
            for name in [*param["opts"], *param["secondary_opts"]]
            if name.startswith(incomplete)
        )
    return items


def _command_items(node: dict[str, Any], given: set[str], incomplete: str) -> list[Item]:
    """TyperGroup.shell_complete (visible subcommands, then options) or Command.shell_complete."""
    items: list[Item] = []
    if node["group"]:
        items = [
            (c["name"], c["help"])
            for c in node["commands"]
            if c["name"].startswith(incomplete) and not c["hidden"]
        ]
    return items + _option_names(node, given, incomplete)


def _value_items(param: dict[str, Any], incomplete: str) -> list[Item]:
    """_TyperParameter.shell_complete for this parameter's value."""
    how = param["complete"]
    kind = how["kind"]
    if kind == "function":
        name = how["function"]
        if name not in COMPLETERS:
            raise NotExact
        from gateway.cli import complete

        completer: Callable[[str], list[Any]] = getattr(complete, name)
        items: list[Item] = []
        for found in completer(incomplete):
            if isinstance(found, str) and found.startswith(incomplete):
                items.append((found, None))
            elif not isinstance(found, str):
                raise NotExact
        return items
    if kind == "choice":
        choices = [str(c) for c in how["choices"]]
        if how["case_sensitive"]:
            return [(c, None) for c in choices if c.startswith(incomplete)]
        lowered = incomplete.lower()
        return [(c, None) for c in choices if c.lower().startswith(lowered)]
    if kind == "file":
        return [(incomplete, None)]
    if kind == "none":
        return []
    raise NotExact


def completions(root: dict[str, Any], args: list[str], incomplete: str) -> list[Item]:
    """click's get_completions (_resolve_context, then _resolve_incomplete), from the manifest."""
    node, given = _resolve(root, args)
    args = list(args)
    if incomplete == "=":
        incomplete = ""
    elif "=" in incomplete and incomplete.startswith("-"):
        name, _, incomplete = incomplete.partition("=")
        args.append(name)
    if "--" not in args and incomplete.startswith("-"):
        return _command_items(node, given, incomplete)
    params = node["params"]
    last = args[-1] if args else None
    for param in params:
        if param["option"] and not param["flag"]:
            if param["nargs"] != 1:
                raise NotExact
            if last is not None and last.startswith("-") and last in param["opts"]:
                return _value_items(param, incomplete)
    for param in params:
        if not param["option"]:
            if param["nargs"] != 1:
                raise NotExact
            if param["name"] not in given:
                return _value_items(param, incomplete)
    return _command_items(node, given, incomplete)


def format_completions(shell: str, items: list[Item], forms: dict[str, str]) -> str:
    """typer's format_completion and complete() for bash, zsh and fish; `forms` holds each help as typer
    shows it to this shell in this terminal."""
    if shell == "bash":
        return "\n".join(value for value, _ in items)
    shown = {text: forms[text] for _, text in items if text}  # KeyError: not rendered for this terminal yet
    if shell == "zsh":
        lines = [f'"{zsh_escape(v)}":"{shown[h]}"' if h else f'"{zsh_escape(v)}"' for v, h in items]
        return f"_arguments '*: :(({chr(10).join(lines)}))'" if lines else "_files"
    lines = [f"{v}\t{shown[h]}" if h else v for v, h in items]
    action = os.getenv("_TYPER_COMPLETE_FISH_ACTION", "")
    if action == "get-args" and lines:
        return "\n".join(lines)
    if action == "is-args":
        raise SystemExit(0 if lines else 1)
    return ""


def forms_key(prog_name: str) -> str:
    """The terminal conditions that typer's rendering of completion help depends on."""
    return help_key(prog_name, None)


def complete_from(data: dict[str, Any], instruction: str, prog_name: str) -> str | None:
    """The completion output for this instruction, or None when typer must answer."""
    action, _, shell = instruction.partition("_")
    if action != "complete" or shell not in ("bash", "zsh", "fish"):
        return None
    try:
        args, incomplete = completion_args(shell)
        items = completions(data["root"], args, incomplete)
        forms = data["forms"].get(forms_key(prog_name), {}).get(shell, {}) if shell != "bash" else {}
        text = format_completions(shell, items, forms)
    except SystemExit:
        raise
    except Exception:  # NotExact, a manifest that is not what it should be, a completer that failed
        return None
    if "\x1b" in text:  # click strips ANSI codes from a pipe: leave that to it
        return None
    return text
