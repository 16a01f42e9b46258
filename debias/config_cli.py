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
        import yaml

        loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config_file}: expected a mapping of config fields")
        unknown = sorted(set(loaded) - names)
        if unknown:
            raise ValueError(f"{config_file}: unknown field(s) {', '.join(unknown)} for {cls.__name__}")
        values.update(loaded)
    values.update({k: v for k, v in vars(args).items() if k in names})
    return cls(**values)
