"""The Typer app, the options every command shares, and the one place errors become exits.

Nothing heavy is imported here: `duetml --help` must answer at once, so torch, numpy,
sklearn, onnxruntime and the LLM clients are imported inside the commands that need them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
import typer.core

from duetml.cli.guard import EXIT_PARTIAL as EXIT_PARTIAL
from duetml.cli.guard import open_project as open_project  # re-exported for the commands
from duetml.cli.guard import run_guarded

if TYPE_CHECKING:  # the CLI starts fast: the core is imported only by the commands that use it
    from duetml.project import Project


app = typer.Typer(
    name="duetml",
    help="Build an image classifier from your own photos, with an AI partner beside you.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ProjectOption = Annotated[
    Path,
    typer.Option(
        "--project",
        "-p",
        help="The project folder (default: the current folder).",
        envvar="DUETML_PROJECT",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


NewOption = Annotated[
    bool,
    typer.Option(
        "--new", help="Make the category if it does not exist, even if its name is close to one."
    ),
]


def check_new_category(project: Project, name: str, new: bool) -> None:
    """A typo must not make a category silently: a new name close to an existing one
    ("tshirt" beside "t-shirt") is asked about at a terminal, and needs --new in a script."""
    from duetml.names import close_names, validate_category_name

    name = validate_category_name(name)
    existing = project.all_category_names()
    if new or name in existing:
        return
    close = close_names(name, existing)
    if not close:
        return
    meant = " or ".join(repr(c) for c in close)
    if sys.stdin.isatty() and typer.confirm(
        f"There is no category {name!r} yet (did you mean {meant}?). Make {name!r}?",
        default=False,
    ):
        return
    fail(
        f"There is no category {name!r}: did you mean {meant}? "
        f"To make {name!r} as a new category, add --new."
    )


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        from duetml import __version__

        typer.echo(f"duetml {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print duetml's version and exit."
        ),
    ] = False,
) -> None:
    """Build an image classifier from your own photos, with an AI partner beside you."""


# What a person reads in --help for a value of each type, instead of Typer's `<bool>`,
# `<list[str]>` and `{images}`.
_VALUE_NAMES = {"Path": "PATH", "int": "N", "float": "NUMBER", "str": "TEXT"}


def readable_help(command: Any) -> Any:
    """Give every parameter of the command tree a plain metavar: flags show none, values show
    PATH / N / TEXT, arguments show their name in capitals (`PHOTOS...`, `[FOLDER]`).

    Typer renders types itself (`<list[Path]>`) and wraps required arguments in braces; it
    offers no setting for either, so the two methods are replaced on each argument object.
    """
    for param in command.params:
        if isinstance(param, typer.core.TyperArgument):
            label = (param.name or "value").upper() + ("..." if param.nargs != 1 else "")
            usage = label if param.required else f"[{label}]"
            param.metavar = label
            # Instance attributes win over the class's methods of the same name.
            vars(param).update(
                _usage_display_name=lambda usage=usage: usage,
                display_type_rich=lambda ctx: None,
            )
        elif isinstance(param, typer.core.TyperOption):
            if param.is_flag or param.count:
                param.metavar = ""
            elif param.metavar is None:
                kind = param.bare_type()
                param.metavar = _VALUE_NAMES.get(kind, "VALUE")
    make_help_option = command.get_help_option

    def help_option(ctx: Any) -> Any:  # -h/--help is made per call, not kept in params
        option = make_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        readable_help(sub)
    return command


def plain_coercion(command: Any) -> Any:
    """Convert the plain parameters of the command tree (paths, whole numbers, text, flags,
    and lists of them) without pydantic; anything else, and any value that is not plainly valid,
    still goes to Typer's own conversion, so the messages are Typer's.

    Typer converts every value with a pydantic TypeAdapter, and importing pydantic and
    building the adapters took longer than the rest of a cold `duetml predict`
    (bench/bench_predict.py). Typer's parameters build their converter lazily in
    `_runtime_param`; here it is set first. Where a Typer release changes that, nothing is
    replaced and Typer converts as before (tests/test_cli.py notices pydantic).
    """
    try:
        from typer._coercion import RuntimeParam, build_runtime_param
        from typer._param_types import coerce_cli_path
    except ImportError:
        return command

    class PlainRuntimeParam(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, (list, tuple)):
                return [self._one(item, param, ctx) for item in value]
            return self._one(value, param, ctx)

        def _one(self, value: Any, param: Any, ctx: Any) -> Any:
            kind = _leaf(self.annotation)
            info = self.parameter_info
            if kind is str and isinstance(value, str) or kind is bool and type(value) is bool:
                return value
            if kind is Path and isinstance(value, (str, Path)) and value and "\0" not in str(value):
                return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
            if kind is int and isinstance(value, str) and value.isascii() and value.isdigit():
                value = int(value)
            if kind is int and type(value) is int:  # a default, or the digits above
                if (info.min is None or value >= info.min) and (
                    info.max is None or value <= info.max
                ):
                    return value
            typer_own = build_runtime_param(param.type_descriptor)  # pydantic: Typer's message
            return typer_own._coerce_value(value, param=param, ctx=ctx)

    def plain(param: Any) -> bool:
        descriptor = getattr(param, "type_descriptor", None)
        info = getattr(descriptor, "parameter_info", None)
        return (
            descriptor is not None
            and descriptor.file_annotation is None
            and _leaf(descriptor.annotation) is not None
            and getattr(info, "parser", None) is None
            and not getattr(info, "clamp", False)
            and getattr(param, "_runtime_param", False) is None
        )

    def make_plain(param: Any) -> Any:
        if plain(param):
            descriptor = param.type_descriptor
            param._runtime_param = PlainRuntimeParam(
                parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
            )
        return param

    for param in command.params:
        make_plain(param)
    make_help_option = command.get_help_option
    # -h/--help is made per call, not kept in params
    command.get_help_option = lambda ctx: make_plain(make_help_option(ctx))
    for sub in getattr(command, "commands", {}).values():
        plain_coercion(sub)
    return command


def _leaf(annotation: Any) -> Any:
    """str, Path, int or bool for those and lists of them; None for anything else."""
    import typing

    if typing.get_origin(annotation) is list:
        (annotation,) = typing.get_args(annotation) or (None,)
    return annotation if annotation in (str, Path, int, bool) else None


def main() -> None:
    run_guarded(
        lambda: readable_help(plain_coercion(typer.main.get_command(app)))(prog_name="duetml")
    )
