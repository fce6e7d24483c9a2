"""What a run was made of, recorded so that `--resume` cannot mix settings or inputs silently.

A run folder's `inputs.json` holds, from the run's start:
- `config`: every key of the run, resolved (what `config.yaml` said then), and its sha256;
- `inputs`: the sha256 of every file the run reads: the prior table (`prior`), the offline
  dataset (`dataset`), the source run's checkpoint (`source`: its folder, step and manifest), the
  base language model (`model`);
- `layouts`: the layouts training drew and evaluation plays, with the split's version
  (`jaxrl3m.envs.layout.SPLIT`);
- `changes`: what a user allowed to change on a resume (`--allow-changed KEY ...`), when.

`check(run_dir, ...)` compares the run's settings and inputs now with the record and refuses a
difference with a message naming the key (config keys by name; inputs by `prior`, `dataset`,
`source`, `model`). A key named in `allow_changed` is accepted, and the change is recorded.
A run folder written before records existed gets its record at its first resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from ..core.checkpoint import checkpoint_steps
from ..core.config import ConfigError, changed_keys, to_dict
from ..core.integrity import manifest_digest, sha256_file, sha256_tree
from ..core.io import atomic_write_json

RECORD = "inputs.json"
INPUT_KEYS = ("prior", "dataset", "source", "model")
"""The names of recorded input files (config keys of the same names say where they are)."""


def layouts_of(algo_config: Any) -> str:
    """Which layouts a run of `algo_config` trains and evaluates on."""
    from ..envs.layout import SPLIT
    if hasattr(algo_config.make_env(), "layouts"):
        return f"train, evaluated on heldout (split {SPLIT})"
    return "all (the task has no held-out split)"


OLD_LAYOUTS = "all layouts, evaluated on heldout of split v1 (before the record held layouts)"


def config_digest(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def input_files(algo_config: Any, run: Any) -> dict[str, dict[str, Any]]:
    """`{name: {"path": ..., "sha256": ...}}` of the files the run reads now (names in
    `INPUT_KEYS`). A file that does not exist is left out (the run's setup says so first)."""
    from ..teacher.teacher import prior_path
    out: dict[str, dict[str, Any]] = {}
    path = prior_path(run.prior) if run.has_teacher else None
    if path is not None and path.is_file():
        out["prior"] = {"path": str(path), "sha256": sha256_file(path)}
    if run.dataset and Path(run.dataset).is_file():
        out["dataset"] = {"path": run.dataset, "sha256": sha256_file(run.dataset)}
    if run.uses_source and run.source:
        src = source_checkpoint(Path(run.source))
        if src is not None:
            out["source"] = src
    model = getattr(algo_config, "model", None)
    if model and getattr(algo_config, "transformer", "") != "scratch":
        from ..llm.loading import load_model_cached
        from ..llm.model import ModelError
        try:  # the run's setup loaded it: a cache hit, and the digest load_model computed
            m = load_model_cached(model)
        except ModelError:
            m = None
        if m is not None:
            out["model"] = {"path": m.path, "sha256": m.sha256}
    return out


def source_checkpoint(source: Path) -> dict[str, Any] | None:
    """The source run's newest checkpoint: its folder, step and the sha256 of its manifest
    (of its files where it has none)."""
    steps = checkpoint_steps(source / "checkpoints")
    if not steps:
        return None
    step_dir = source / "checkpoints" / str(steps[0])
    digest = manifest_digest(step_dir) or sha256_tree(step_dir)
    return {"path": str(source), "step": steps[0], "sha256": digest}


def write(run_dir: Path, values: dict[str, Any], inputs: dict[str, dict[str, Any]],
          changes: list | None = None, layouts: str | None = None) -> Path:
    return atomic_write_json(run_dir / RECORD, {
        "config": values, "config_sha256": config_digest(values), "inputs": inputs,
        "layouts": layouts, "changes": changes or []})


def read(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / RECORD
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        assert isinstance(data, dict) and isinstance(data["config"], dict)
        assert data["config_sha256"] == config_digest(data["config"])
        return data
    except (ValueError, KeyError, AssertionError, TypeError, UnicodeDecodeError):
        raise ConfigError(f"{path} is damaged (not the record this library wrote); restore it "
                          "or train the run again") from None


def start(run_dir: Path, algo_config: Any, run: Any) -> None:
    """Records a fresh run's settings and inputs."""
    write(run_dir, to_dict(run, algo_config), input_files(algo_config, run),
          layouts=layouts_of(algo_config))


def differences(recorded: dict[str, Any], values: dict[str, Any],
                inputs: dict[str, dict[str, Any]], layouts: str | None = None
                ) -> dict[str, str]:
    """`{key: what changed}` between a record and the run's settings and inputs now (and its
    layouts, when `layouts` is given)."""
    out = {}
    if layouts is not None and (recorded.get("layouts") or OLD_LAYOUTS) != layouts:
        out["layouts"] = f"{recorded.get('layouts') or OLD_LAYOUTS} when the run started, " \
                         f"{layouts} now"
    old = recorded["config"]
    for k in changed_keys(old, values):
        out[k] = f"{old.get(k)!r} when the run started, {values.get(k)!r} now"
    for k in INPUT_KEYS:
        a, b = recorded["inputs"].get(k), inputs.get(k)
        if a is None and b is None:
            continue
        if a is None or b is None or a.get("sha256") != b.get("sha256"):
            where = (b or a)["path"]
            out[k] = (f"{where} is gone" if b is None else
                      f"{where} is not the file the run started with (sha256 "
                      f"{a['sha256'][:12]}... then, {b['sha256'][:12]}... now)" if a else
                      f"{where} was not recorded")
    return out


def check(run_dir: Path, algo_config: Any, run: Any, allow_changed: tuple[str, ...] = (),
          log=None) -> None:
    """Refuses to resume `run_dir` when its settings or inputs differ from the record (keys in
    `allow_changed` excepted, and recorded as changed)."""
    values = to_dict(run, algo_config)  # what config.yaml holds (runs.config_values)
    inputs = input_files(algo_config, run)
    layouts = layouts_of(algo_config)
    recorded = read(run_dir)
    if recorded is None:
        if log:
            log(f"note: {run_dir} has no {RECORD} (written before inputs were recorded); "
                "recording its settings and inputs as they are now")
        write(run_dir, values, inputs, layouts=layouts)
        return
    diff = differences(recorded, values, inputs, layouts)
    unknown = [k for k in allow_changed
               if k not in values and k not in INPUT_KEYS and k != "layouts"]
    if unknown:
        raise ConfigError(f"--allow-changed {' '.join(unknown)}: not a config key, an input "
                          f"({', '.join(INPUT_KEYS)}) or layouts")
    refused = {k: v for k, v in diff.items() if k not in allow_changed}
    if refused:
        raise ConfigError(
            f"{run_dir} cannot be resumed as it is: "
            + "; ".join(f"{k}: {v}" for k, v in list(refused.items())[:4])
            + (f" (and {len(refused) - 4} more)" if len(refused) > 4 else "")
            + ". A resumed run continues the run that started, with the same settings and "
            "inputs: put them back, or start a new run; if you mean the change, resume with "
            f"--allow-changed {' '.join(refused)} (recorded in {RECORD})")
    if diff:
        change = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "pid": os.getpid(),
                  "allowed": {k: diff[k] for k in sorted(diff)}}
        write(run_dir, values, inputs, recorded.get("changes", []) + [change], layouts)
        if log:
            log(f"note: resuming {run_dir} with changes you allowed: {', '.join(sorted(diff))} "
                f"(recorded in {RECORD})")
