"""The error tree drawn in `motet/errors.py`'s docstring is the tree of classes: every error, its parent, and
the builtin it also is."""

from __future__ import annotations

import inspect
import re

import motet.errors
from motet.errors import MotetError

_LINE = re.compile(r"^(?P<indent>[\s│]*)(?:[├└]── )?(?P<name>[A-Z]\w+)(?:\s+\(also (?P<also>\w+)\))?")


def _drawn() -> dict[str, tuple[str | None, str | None]]:
    """Each error named in the docstring → (its parent in the drawing, the builtin named after 'also')."""
    doc = motet.errors.__doc__ or ""
    tree: dict[str, tuple[str | None, str | None]] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = _LINE.match(line)
        if match is None or not line.startswith("    "):
            continue
        depth = match.start("name")
        while stack and stack[-1][0] >= depth:
            stack.pop()
        tree[match["name"]] = (stack[-1][1] if stack else None, match["also"])
        stack.append((depth, match["name"]))
    return tree


def _errors() -> dict[str, type[MotetError]]:
    return {
        name: value
        for name, value in vars(motet.errors).items()
        if inspect.isclass(value) and issubclass(value, MotetError)
    }


def test_every_error_is_drawn_under_its_parent_with_its_builtin() -> None:
    drawn, errors = _drawn(), _errors()
    assert set(drawn) == set(errors)
    for name, error in errors.items():
        parent, also = drawn[name]
        motet_bases = [base.__name__ for base in error.__bases__ if issubclass(base, MotetError)]
        builtins = [base.__name__ for base in error.__mro__[1:] if base.__module__ == "builtins"]
        assert motet_bases == ([parent] if parent else []), name
        if also is not None:
            assert also in builtins, f"{name} is drawn as also {also} but is not one"
        direct = [b.__name__ for b in error.__bases__ if b.__module__ == "builtins" and b is not Exception]
        assert direct == ([also] if also else []), f"{name} also subclasses {direct}; draw it"


def test_no_error_is_defined_outside_the_tree() -> None:
    import motet.agents
    import motet.composer
    import motet.gateway
    import motet.payments
    import motet.registry
    import motet.runtimes

    for package in (
        motet.agents,
        motet.composer,
        motet.gateway,
        motet.payments,
        motet.registry,
        motet.runtimes,
    ):
        for name in getattr(package, "__all__", []):
            value = getattr(package, name)
            if inspect.isclass(value) and issubclass(value, MotetError):
                assert value.__module__ == "motet.errors", f"{package.__name__}.{name} is not in motet.errors"
