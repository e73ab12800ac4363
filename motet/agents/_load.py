"""Find a user's `Agent` by name: `myagent.py:agent` (a Python file) or `package.module:agent` (a module).

This is what `motet agent serve --agent ...` serves. Every failure is an `InvalidAgentDefinition` that names
the file or module, the attribute, and what to do.

Example:
    >>> load_agent("motet.agents.builtins:builtin_agent")
    Traceback (most recent call last):
    ...
    motet.errors.InvalidAgentDefinition: motet.agents.builtins:builtin_agent is a function, not a motet Agent: ...
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from motet.agents._define import Agent
from motet.errors import InvalidAgentDefinition

DEFAULT_ATTRIBUTE = "agent"
"""The attribute read when the spec names none (`myagent.py` means `myagent.py:agent`)."""

_FORM = "give FILE.py:NAME (the Python file that defines your Agent, and the variable that holds it) or package.module:NAME"


def load_agent(spec: str, *, cwd: str | Path | None = None) -> Agent:
    """The `Agent` that `spec` names: `path/to/file.py:name` or `package.module:name` (`:agent` when left out).

    A file is imported with its folder first on `sys.path` (so it can import its neighbours); a module is
    imported with `cwd` (default: the current directory) on `sys.path`. Raises `InvalidAgentDefinition` when
    the file or module is not there, fails to import (naming the line), has no such attribute (naming the
    Agents it has), holds something other than an `Agent`, or an agent without capabilities.
    """
    where, attribute = _split(spec)
    base = Path(cwd) if cwd is not None else Path.cwd()
    if where.endswith(".py") or "/" in where or "\\" in where:
        module, shown = _import_file(base / where, where, spec)
    else:
        module, shown = _import_module(where, base, spec), where
    if not hasattr(module, attribute):
        found = sorted(name for name, value in vars(module).items() if isinstance(value, Agent))
        has = (
            f"the Agents it defines: {', '.join(found)} (serve one with {where}:{found[0]})"
            if found
            else 'it defines no Agent: add one, e.g. `agent = Agent("my-agent", price=10**12)` '
            "(from motet.agents import Agent)"
        )
        raise InvalidAgentDefinition(f"{shown} has no {attribute!r}: {has}")
    value = getattr(module, attribute)
    if not isinstance(value, Agent):
        kind = (
            "a function" if callable(value) and not isinstance(value, type) else f"a {type(value).__name__}"
        )
        raise InvalidAgentDefinition(
            f"{where}:{attribute} is {kind}, not a motet Agent: name a variable that holds one, e.g. "
            f'`{attribute} = Agent("my-agent", price=10**12)` (from motet.agents import Agent)'
        )
    if not value.capabilities:
        raise InvalidAgentDefinition(
            f"agent {value.name!r} ({where}:{attribute}) has no capabilities: add one with "
            f"`@{attribute}.capability(...)` on an async function or `{attribute}.prompt(...)`"
        )
    return value


def _split(spec: str) -> tuple[str, str]:
    where, colon, attribute = spec.strip().rpartition(":")
    if not colon or any(mark in attribute for mark in ("/", "\\", ".py")):
        where, attribute = spec.strip(), DEFAULT_ATTRIBUTE  # no attribute (or a Windows drive's colon)
    if not where or not attribute.isidentifier():
        raise InvalidAgentDefinition(f"--agent {spec!r} names no agent: {_FORM}, e.g. myagent.py:agent")
    return where, attribute


def _import_file(path: Path, shown: str, spec: str) -> tuple[ModuleType, str]:
    path = path.resolve()
    if not path.is_file():
        raise InvalidAgentDefinition(
            f"no file {shown} (looked for {path}): {_FORM}, e.g. myagent.py:agent, from the folder that holds it"
        )
    name = (
        path.stem
        if path.stem.isidentifier() and path.stem not in sys.modules
        else f"_motet_agent_{abs(hash(path))}"
    )
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise InvalidAgentDefinition(f"{shown} cannot be imported as Python: {_FORM}")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # pydantic resolves the models' annotations through it
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise InvalidAgentDefinition(f"importing {shown} failed{_line_in(exc, path)}: {_said(exc)}") from exc
    return module, shown


def _import_module(name: str, base: Path, spec: str) -> ModuleType:
    folder = str(base.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):  # the module itself, not one it imports
            raise InvalidAgentDefinition(
                f"no module {name!r} (looked on the Python path, {folder} first): {_FORM}, e.g. myagent.py:agent"
            ) from exc
        raise InvalidAgentDefinition(f"importing {name} failed: {_said(exc)}") from exc
    except Exception as exc:
        raise InvalidAgentDefinition(f"importing {name} failed{_line_in(exc, None)}: {_said(exc)}") from exc


def _line_in(exc: BaseException, path: Path | None) -> str:
    """' at FILE line N' for the deepest frame of the user's file (or of any file when `path` is None)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        return f" at line {exc.lineno}"
    mine = [frame for frame in frames if path is None or Path(frame.filename).resolve() == path]
    if not mine:
        return ""
    frame = mine[-1]
    return f" at {Path(frame.filename).name} line {frame.lineno}"


def _said(exc: BaseException) -> str:
    text = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
