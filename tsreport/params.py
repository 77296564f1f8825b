"""An analysis's settings: one frozen ``Params`` dataclass per analysis, each field a :func:`setting`.

A setting carries its default, a one-line help and a check. The config keys, their defaults, the
validation of a ``--config`` file and the settings tables are all read from these dataclasses, so
an analysis declares its settings once, in its own module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from tsreport.exceptions import UsageError

#: ``check(value, label)`` raises UsageError naming ``label`` ("<analysis> <key>") and the fix.
Check = Callable[[Any, str], None]


def setting(
    default: Any = None,
    help: str = "",
    *,
    check: Check | None = None,
    factory: Callable[[], Any] | None = None,
    default_for: Callable[[tuple[str, ...] | None], Any] | None = None,
) -> Any:
    """A Params field. ``factory`` for a mutable default (a list); ``default_for(selected analyses)``
    when the default depends on which analyses run (the faithfulness methods)."""
    metadata = {"help": help, "check": check, "default_for": default_for}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Params:
    """Base of every analysis's settings; an analysis without settings uses it as is."""

    analysis: ClassVar[str] = ""

    @classmethod
    def defaults(cls, selected: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The settings' defaults, in declaration order (for ``selected`` analyses, None: the default battery)."""
        values = {}
        for field in dataclasses.fields(cls):
            default_for = field.metadata.get("default_for")
            if default_for is not None:
                values[field.name] = default_for(selected)
            elif field.default_factory is not dataclasses.MISSING:
                values[field.name] = field.default_factory()
            else:
                values[field.name] = field.default
        return values

    @classmethod
    def selection_dependent(cls) -> list[str]:
        """Keys whose default depends on the analyses selected."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("default_for") is not None]

    @classmethod
    def help(cls) -> dict[str, str]:
        """key -> one-line help (for --help and the README's settings tables)."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}

    @classmethod
    def validate(cls, name: str, values: Mapping[str, Any]) -> None:
        """Check every setting (types and ranges), naming the setting and the fix; then :meth:`check_together`."""
        for field in dataclasses.fields(cls):
            check = field.metadata.get("check")
            if check is not None:
                check(values[field.name], f"{name} {field.name}")
        cls.check_together(name, values)

    @classmethod
    def check_together(cls, name: str, values: Mapping[str, Any]) -> None:
        """Checks that involve more than one setting (override where needed)."""


# --------------------------------------------------------------------------- checks


def positive_int(value: Any, label: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"Invalid {label} '{value}': give a positive integer.")


def optional_positive_int(value: Any, label: str) -> None:
    if value is not None:
        positive_int(value, label)


def boolean(value: Any, label: str) -> None:
    if not isinstance(value, bool):
        raise UsageError(f"Invalid {label} '{value}': give true or false.")


def one_of(choices: tuple[str, ...]) -> Check:
    def check(value: Any, label: str) -> None:
        if value not in choices:
            raise UsageError(f"Invalid {label} '{value}': choose from {', '.join(choices)}.")

    return check


def is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))
