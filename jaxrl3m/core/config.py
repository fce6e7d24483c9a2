"""One config system: YAML presets with `key=value` overrides, checked against dataclasses.

A config file is flat YAML whose keys are fields of the dataclasses it configures (for training:
the algorithm's config, e.g. `PPOConfig`, and `RunConfig`); each key belongs to exactly one of
them, and a field name defined in two of them is refused when they are combined (it would
otherwise go to one silently). `base: other.yaml` (relative to the file) inherits another file's
keys, which the file then overrides. Unknown keys and values of the wrong type fail at once with
a message naming the key, the expected type and the closest valid key.

Presets ship inside the package (`jaxrl3m/configs/`, also reachable as `configs/` in a checkout):
`resolve_config("DoorKey-oracle")` or `resolve_config("transfer/4-llm")` finds one by name after a
plain `pip install`; a path to any YAML file works too.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, did_you_mean  # noqa: F401  (re-exported)


PRESETS = Path(__file__).resolve().parent.parent / "configs"
"""The presets shipped with the package."""


def preset_names() -> list[str]:
    """Every shipped preset, by name (`DoorKey-oracle`, `transfer/4-llm`, ...)."""
    return sorted(str(p.relative_to(PRESETS).with_suffix("")) for p in PRESETS.rglob("*.yaml"))


def resolve_config(name_or_path: str | Path) -> Path:
    """The YAML file of a preset name or a path (an existing path wins)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path).removesuffix(".yaml").removeprefix("configs/")
    preset = PRESETS / f"{name}.yaml"
    if preset.is_file():
        return preset
    raise ConfigError(f"config {str(name_or_path)!r} is neither a file nor a shipped preset."
                      f"{did_you_mean(name, preset_names())} Presets: "
                      f"{', '.join(preset_names())}")


def load_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The keys of a config file, with `base:` files merged in (the file's own keys win)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    if path.resolve() in _seen:
        raise ConfigError(f"config file {str(path)!r} inherits itself through 'base'")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not text (a binary or damaged file); "
                          "give a YAML file of key: value lines") from None
    except OSError as e:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {e.strerror}") from None
    data = parse_yaml(text, f"config file {str(path)!r}")
    if data is None:
        raise ConfigError(f"config file {str(path)!r} is empty; give at least one key (e.g. "
                          "task: DoorKey), or no file to train the defaults")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must be a mapping of key: value")
    base = data.pop("base", None)
    if base is None:
        return data
    merged = load_yaml(path.parent / base, _seen + (path.resolve(),))
    merged.update(data)
    return merged


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML would keep the last
    value silently)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(
                    f"{self._source}: key {key!r} is given twice (lines "
                    f"{seen[key] + 1} and {key_node.start_mark.line + 1}); keep one")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, source: str) -> Any:
    """YAML text (safe), a key given twice in a mapping refused; errors name `source`."""
    loader = _UniqueKeyLoader(text)
    loader._source = source
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        raise ConfigError(f"{source} is not valid YAML: {e}") from None
    finally:
        loader.dispose()


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["lr=0.001", "hidden=[32, 32]"]` -> `{"lr": 0.001, "hidden": [32, 32]}` (YAML values)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def coerce(key: str, value: Any, tp: Any) -> Any:
    """`value` as type `tp` (int, float, str, bool, tuple[int, ...], or `X | None`), or a
    ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return coerce(key, value, inner)
    if origin is tuple:
        (inner, *_), = [typing.get_args(tp)]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list of {_type_name(inner)}, "
                              f"got {value!r}")
        return tuple(coerce(key, v, inner) for v in value)
    if tp in (float, int) and isinstance(value, str):
        try:  # YAML 1.1 reads 1e-3 and 1e9 (no dot) as strings
            value = float(value)
        except ValueError:
            pass
    if tp is int and isinstance(value, float) and value.is_integer():
        value = int(value)  # total_steps=1e9, 2.0e6
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool) \
            and not math.isfinite(value) and key not in INFINITE_OK:
        raise ConfigError(f"config key {key!r} must be a finite number, got {value!r}")
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str)}[tp](value)
    if not ok:
        raise ConfigError(f"config key {key!r} must be {_type_name(tp)}, got {value!r} "
                          f"({type(value).__name__})")
    return float(value) if tp is float else value


INFINITE_OK = ("max_loss", "checkpoint_every")
"""Float keys for which infinity means something (no divergence guard; checkpoints only at the
end); every other float key must be finite."""


def key_space(classes: tuple[type, ...]) -> dict[str, tuple[type, Any]]:
    """`{key: (dataclass, type)}` over `classes`; a key defined in two of them is refused."""
    fields: dict[str, tuple[type, Any]] = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in fields and fields[f.name][0] is not cls:
                raise ConfigError(
                    f"config key {f.name!r} is defined in both {fields[f.name][0].__name__} and "
                    f"{cls.__name__}; a flat config cannot tell which one a value is for: "
                    "rename one of the fields")
            fields[f.name] = (cls, hints[f.name])
    return fields


def build(classes: tuple[type, ...], values: dict[str, Any]) -> tuple[Any, ...]:
    """One instance of each dataclass from the flat `values` (each key goes to the class that
    has the field); unknown keys raise ConfigError with the closest valid key."""
    fields = key_space(classes)
    kwargs: dict[type, dict[str, Any]] = {cls: {} for cls in classes}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown config key {key!r}.{did_you_mean(key, fields)} Valid "
                              f"keys: {', '.join(sorted(fields))}")
        cls, tp = fields[key]
        kwargs[cls][key] = coerce(key, value, tp)
    return tuple(cls(**kwargs[cls]) for cls in classes)


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The keys whose values differ between two flat configs (a key missing on one side
    included), sorted."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def to_dict(*objs: Any) -> dict[str, Any]:
    """The fields of dataclasses as one flat dict of plain values (tuples as lists)."""
    out = {}
    for obj in objs:
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


# ---------------------------------------------------------------------------------------------
# Declarative bounds of config keys
# ---------------------------------------------------------------------------------------------
def bounded(default: Any, *, static: bool = False, at_least: int | None = None,
            within: str | None = None, choices: tuple | None = None, why: str = "") -> Any:
    """A config field with its bounds as metadata (`check_keys` checks them): `at_least=n`
    (integers), `within` one of `"positive"`, `"non-negative"`, `"[0, 1]"`, `"(0, 1]"`,
    `"[0, 1)"`, or `choices` (the valid values). `why` is added to the message. `static`
    fields fix shapes or code (not pytree leaves)."""
    from flax import struct
    if within is not None and within not in _WITHIN:
        raise ValueError(f"within={within!r}; valid: {', '.join(_WITHIN)}")
    rule = {"at_least": at_least, "within": within, "choices": choices, "why": why}
    return struct.field(pytree_node=not static, default=default, metadata={"bounds": rule})


_WITHIN = {"positive": lambda v: v > 0, "non-negative": lambda v: v >= 0,
           "[0, 1]": lambda v: 0 <= v <= 1, "(0, 1]": lambda v: 0 < v <= 1,
           "[0, 1)": lambda v: 0 <= v < 1}


def check_keys(config: Any, bad) -> None:
    """Calls `bad(key, why)` for the first field of `config` outside the bounds `bounded` gave it,
    in field order."""
    for f in dataclasses.fields(config):
        rule = f.metadata.get("bounds")
        if rule is None:
            continue
        v = getattr(config, f.name)
        why = f" ({rule['why']})" if rule["why"] else ""
        if rule["at_least"] is not None and v < rule["at_least"]:
            bad(f.name, f"must be at least {rule['at_least']}{why}, got {v}")
        if rule["within"] is not None and not _WITHIN[rule["within"]](float(v)):
            what = rule["within"] if rule["within"][0].isalpha() else f"in {rule['within']}"
            bad(f.name, f"must be {what}{why}, got {v}")
        if rule["choices"] is not None and v not in rule["choices"]:
            bad(f.name, f"{v!r} is unknown; valid: {', '.join(map(str, rule['choices']))}{why}")
