"""The `jaxrl3m` command: one entry point for the `python -m jaxrl3m.<command>` forms.

    jaxrl3m train DoorKey-oracle seeds=4          # python -m jaxrl3m.train
    jaxrl3m train ppo --keys                      # every config key: value, default, meaning
    jaxrl3m evaluate runs/DoorKey-oracle          # python -m jaxrl3m.evaluate
    jaxrl3m collect --task DoorKey --policy oracle --episodes 1000 --out d.npz
    jaxrl3m priors --task DoorKey --backend oracle --out t.json   # python -m jaxrl3m.precompute_priors
    jaxrl3m report llm_cache/DoorKey-smollm2.json                 # python -m jaxrl3m.priors_report
    jaxrl3m transfer --target LavaDoorKey                         # the transfer study
    jaxrl3m rollout DoorKey                                       # watch the teacher act (text)
    jaxrl3m render DoorKey-oracle --episodes 4 --out doorkey.gif  # pictures of episodes

`jaxrl3m COMMAND --help` shows each command's own options.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import sys
import textwrap

COMMANDS = {
    "train": ("jaxrl3m.train", "train a run, or --resume one"),
    "evaluate": ("jaxrl3m.evaluate", "evaluate a run folder on held-out layouts"),
    "collect": ("jaxrl3m.collect", "collect an offline dataset"),
    "priors": ("jaxrl3m.precompute_priors", "compute a prior table with a language model"),
    "report": ("jaxrl3m.priors_report", "describe a prior table (agreement, heat map)"),
    "transfer": ("jaxrl3m.experiments.transfer", "the five-approach transfer study"),
    "rollout": ("jaxrl3m.rollout", "play episodes and print them as text"),
    "render": ("jaxrl3m.render", "pictures of episodes (GIF, MP4)"),
}


def field_docs(cls: type) -> dict[str, str]:
    """`{field: docstring}` of a dataclass's fields (the string under each field, as in
    jaxrl3m's configs), its base classes' included."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, nxt in zip(body, body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def describe_keys(config: str | None, overrides: list[str]) -> str:
    """Every config key of a run (its algorithm's and the run's): the value the config gives,
    the default where it differs, and what the key means."""
    from .core.config import parse_overrides
    from .runner.runs import load_config
    algo_config, run = load_config(config, parse_overrides(overrides))
    lines = []
    for obj in (algo_config, run):
        cls = type(obj)
        docs = field_docs(cls)
        defaults = cls()
        lines.append(f"# {cls.__name__}" + (f" (algo: {run.algo})" if obj is algo_config else ""))
        for f in dataclasses.fields(obj):
            value, default = getattr(obj, f.name), getattr(defaults, f.name)
            shown = f"{f.name} = {value!r}"
            if value != default:
                shown += f"  (default {default!r})"
            lines.append(shown)
            if docs.get(f.name):
                lines.extend("    " + t for t in textwrap.wrap(docs[f.name], 92))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__.strip())
        print("\ncommands:")
        for name, (_, what) in COMMANDS.items():
            print(f"  {name:<10} {what}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        from .errors import did_you_mean
        print(f"error: unknown command {name!r}.{did_you_mean(name, COMMANDS)} Commands: "
              f"{', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if name == "train" and "--keys" in rest:
        from .core.config import ConfigError
        rest = [a for a in rest if a != "--keys"]
        config = rest[0] if rest and "=" not in rest[0] else None
        try:
            print(describe_keys(config, [a for a in rest if "=" in a]))
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
