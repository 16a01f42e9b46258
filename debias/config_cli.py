"""Map a method's config dataclass to command-line flags, one flag per field, and back.

Generating the flags from the dataclass keeps "CLI flag == config field" true by construction: a field
added to a config is immediately settable, documented by its default, and saved in the run's config.json.
A YAML file (``--config``) may set any field; explicit flags override it.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": f"(default: {default!r})"}
        args = typing.get_args(tp)
        origin = typing.get_origin(tp)
        if origin in (types.UnionType, typing.Union):  # X | None
            tp = next(a for a in args if a is not type(None))
            origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            kwargs["choices"] = list(args)
        elif origin is tuple:
            kwargs.update(nargs="+", type=args[0])
        else:
            kwargs["type"] = tp
        parser.add_argument(_flag(f.name), dest=f.name, **kwargs)


def dataclass_from_args(
    cls: type, args: argparse.Namespace, config_file: str | None = None, preset: dict[str, Any] | None = None
):
    """Defaults < ``preset`` (e.g. --quick) < YAML file < explicit flags; unknown YAML keys are an error."""
    values: dict[str, Any] = dict(preset or {})
    names = {f.name for f in dataclasses.fields(cls)}
    if config_file:
        values.update(read_config_file(cls, Path(config_file)))
    values.update({k: v for k, v in vars(args).items() if k in names})
    return cls(**values)


def read_config_file(cls: type, path: Path) -> dict[str, Any]:
    """The fields a YAML file sets, each checked against the dataclass's type hint.

    A wrong type would otherwise surface as a TypeError deep inside the method; here it is one line
    naming the file, the line and the field.
    """
    import yaml

    from debias.run_folder import read_text

    text = read_text(path, "file not found")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{path}: {where}: not valid YAML ({problem})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict) or not isinstance(node, yaml.MappingNode):
        raise ValueError(f"{path}: line 1: expected a mapping of config fields, got {type(loaded).__name__}")
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in loaded.items():
        where = f"{path}: line {lines.get(key, '?')}: field {key!r}"
        if key not in names:
            raise ValueError(f"{where}: unknown field for {cls.__name__} (known: {', '.join(sorted(names))})")
        problem = _type_problem(hints[key], value)
        if problem:
            raise ValueError(f"{where}: {problem}")
    return loaded


def _type_problem(tp: Any, value: Any) -> str | None:
    """Why ``value`` does not fit the type hint ``tp`` (None when it does)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return None if value in args else f"expected one of {', '.join(map(repr, args))}, got {value!r}"
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return f"expected a list, got {value!r}"
        for item in value:
            problem = _type_problem(args[0], item)
            if problem:
                return f"list item {item!r}: {problem}"
        return None
    if tp is bool:
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if tp is int:
        return (
            None
            if isinstance(value, int) and not isinstance(value, bool)
            else f"expected an integer, got {value!r}"
        )
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"expected a number, got {value!r}"
    if tp is str:
        return None if isinstance(value, str) else f"expected text, got {value!r}"
    return None
