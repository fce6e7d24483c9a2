"""Results tables made from the benchmarks' JSON, never typed: `python bench/tables.py`.

Each table is written between `<!-- table:NAME -->` and `<!-- /table:NAME -->` in the files that
show it (README.md and the docs); a re-run of a benchmark followed by this script updates them.
`--check` changes nothing and exits 1 when a committed table differs from what the committed
JSON makes (the test suite runs it).

    python bench/tables.py            # rewrite the tables in README.md and docs/
    python bench/tables.py --check    # are they what the JSON says?
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from jaxrl3m.core.io import atomic_write_text  # noqa: E402
FILES = (ROOT / "README.md",) + tuple(ROOT / "docs" / f"{page}.md" for page in (
    "results", "teacher", "transfer", "llm-priors", "lamo"))


def _m(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e5 else f"{x / 1e3:.1f}k"


def peers_table(data: dict) -> str:
    """Our PPO against rejax's and NAVIX's, end to end and training steps/s (bench/peers.json)."""
    names = {"doorkey": "DoorKey, {seeds} seeds of PPO, {steps:,} steps",
             "navix-8x8": "NAVIX DoorKey-8x8, NAVIX's rejax config, {seeds} seeds, {steps:,} steps"}
    rows = ["| | jaxrl3m | rejax | NAVIX's PPO | ratio (rejax / NAVIX) |", "|---|---|---|---|---|"]
    for key, label in names.items():
        r, st = data["results"][key], data["settings"][key]
        label = label.format(seeds=st["seeds"], steps=st["steps"])
        ours, rej, nav = r["ours"], r["rejax"], r["navix"]
        rows.append(f"| {label}, end to end | {ours['wall_s']:.1f} s | {rej['wall_s']:.1f} s | "
                    f"{nav['wall_s']:.1f} s | {rej['wall_s'] / ours['wall_s']:.2f}x / "
                    f"{nav['wall_s'] / ours['wall_s']:.2f}x |")
        rows.append(f"| same, training steps/s | {ours['train_steps_per_s'] / 1e3:.0f}k | "
                    f"{rej['train_steps_per_s'] / 1e3:.0f}k | {nav['train_steps_per_s'] / 1e3:.0f}k"
                    f" | {ours['train_steps_per_s'] / rej['train_steps_per_s']:.2f}x / "
                    f"{ours['train_steps_per_s'] / nav['train_steps_per_s']:.2f}x |")
    rows.append(f"\n`{data['command']}` ({data['hardware']}; "
                + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + ")")
    return "\n".join(rows)


def env_table(data: dict) -> str:
    """Environment steps per second against the number of environments
    (bench/env_throughput.json), with the ratio to NAVIX's own DoorKey-8x8 at 4096."""
    res = data["results"]
    sizes = ("1", "1024", "4096", "8192")
    navix = res.get("NAVIX DoorKey-8x8", {})
    rows = ["| task | " + " | ".join(f"{n} env{'s' if n != '1' else ''}" for n in sizes) + " |",
            "|---" * (len(sizes) + 1) + "|"]
    for task, by_n in res.items():
        cells = []
        for n in sizes:
            if n not in by_n:
                cells.append("")
                continue
            sps = by_n[n]["steps_per_s"]
            cell = _m(sps)
            if n == "4096" and navix.get(n) and not task.startswith(("NAVIX", "gymnasium")):
                cell += f" ({sps / navix[n]['steps_per_s']:.1f}x NAVIX)"
            cells.append(cell)
        rows.append(f"| {task} | " + " | ".join(cells) + " |")
    rows.append(f"\n`python bench/env_throughput.py` ({data['hardware']})")
    return "\n".join(rows)


def _bench(name: str):
    """A bench script as a module (bench/ on the path, as when it runs)."""
    import importlib
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    return importlib.import_module(name)


def _read(name: str) -> dict:
    return json.loads((ROOT / "bench" / name).read_text())


PPO_FAMILY = ("ppo", "oracle", "vicuna33b", "llm")


def _family(name: str) -> str:
    return name.partition(" ")[0]


def learning_ppo() -> str:
    """Guided PPO against plain PPO, each table (bench/learning.json)."""
    learning = _bench("learning")
    data = _read("learning.json")
    keep = lambda n: _family(n) in PPO_FAMILY  # noqa: E731
    return learning.markdown_table(data, keep=keep) + _hw(data, keep)


def learning_tasks() -> str:
    """Guided and plain PPO on the tasks beyond the DoorKey family (bench/learning_tasks.json)."""
    data = _read("learning_tasks.json")
    return _bench("learning").markdown_table(data) + _hw(data)


def learning_window7() -> str:
    """The PPO presets' 7 x 7 window (bench/learning_window7.json, learning_ppo_window7.json)."""
    learning = _bench("learning")
    data = _read("learning_window7.json")
    plain = _read("learning_ppo_window7.json")
    for task in learning.TASKS:
        data.setdefault(task, {}).update(plain.get(task, {}))
    return learning.markdown_table(data) + _hw(data)


def _priors(n: str) -> bool:
    return _family(n).startswith(("dqn", "gflan"))


def learning_priors() -> str:
    """DQN, DQN-Prior and GFlan-Prior with their presets (bench/learning.json)."""
    data = _read("learning.json")
    keep = lambda n: _priors(n) and " " not in n  # noqa: E731
    return _bench("learning").markdown_table(data, keep=keep) + _hw(data, keep)


def learning_priors_ablation() -> str:
    """The LLM-prior family's rows with one setting changed (bench/learning.json)."""
    data = _read("learning.json")
    keep = lambda n: _priors(n) and " " in n  # noqa: E731
    return _bench("learning").markdown_table(data, keep=keep) + _hw(data, keep)


def posterior() -> str:
    """Each table with the fixed and the posterior teacher (bench/posterior.json)."""
    data = _read("posterior.json")
    return _bench("learning").pair_table(data, "posterior=true",
                                         ("fixed teacher", "posterior teacher")) + _hw(data)


def transfer() -> str:
    """The transfer studies' approaches side by side (bench/transfer/*.json)."""
    ts = _bench("transfer_summary")
    return ts.table(ts.load())


def offline(task: str):
    def make() -> str:
        return _bench("offline").markdown(_read(f"offline_{task}_mixed.json")).rstrip("\n")
    make.__doc__ = f"Offline RL against dataset size on {task} (bench/offline_{task}_mixed.json)."
    return make


OFFLINE_TASKS = ("DoorKey", "LavaDoorKey", "ColoredDoorKey")
OFFLINE_PRIORS = ("oracle", "vicuna33b", "smollm2", "uniform", "shuffled:oracle", "")
OFFLINE_KINDS = ("zero-shot", "cql-prior", "cql-priorx", "bc-prior", "cql", "cql-sampled", "bc")


def offline_summary(sizes: tuple[int, ...] = (10, 200, 2000)) -> str:
    """Every offline method on the three tasks at a few dataset sizes, with N*
    (bench/offline_<task>_mixed.json)."""
    data = {t: _read(f"offline_{t}_mixed.json") for t in OFFLINE_TASKS}
    names = list(dict.fromkeys(m for r in data.values() for m in r["methods"]))

    def order(name):
        kind, _, prior = name.partition(":")
        return (OFFLINE_PRIORS.index(prior) if prior in OFFLINE_PRIORS else len(OFFLINE_PRIORS),
                OFFLINE_KINDS.index(kind) if kind in OFFLINE_KINDS else len(OFFLINE_KINDS))

    def cells(r, name):
        m = r["methods"].get(name)
        if m is None:
            return "—", "—"
        at = " / ".join(f"{m['mean'][r['episodes'].index(n)]:.2f}" for n in sizes)
        return at, (str(m["n_star"]) if m.get("n_star") is not None else f">{r['episodes'][-1]}")

    lines = ["| method | " + " | ".join(OFFLINE_TASKS) + " | N* (episodes) |",
             "|---|" + "---|" * (len(OFFLINE_TASKS) + 1)]
    for name in sorted(names, key=order):
        got = [cells(data[t], name) for t in OFFLINE_TASKS]
        lines.append(f"| {name} | " + " | ".join(c for c, _ in got) + " | "
                     + " / ".join(n for _, n in got) + " |")
    first = data[OFFLINE_TASKS[0]]
    return ("\n".join(lines) + "\n\nCells: mean success on held-out layouts with "
            + " / ".join(f"{n:,}" for n in sizes) + f" episodes of {first['recipe']} data "
            f"({first['data_seeds']} datasets x {first['seeds']} training seeds, "
            f"{first['steps']:,} gradient steps); N* per task.")


def lamo() -> str:
    """LaMo against its controls (bench/lamo_DoorKey.json)."""
    return _bench("lamo").markdown(_read("lamo_DoorKey.json")).rstrip("\n")


def lamo_l4() -> str:
    """The decisive rows at 4 of SmolLM2's layers (bench/lamo_DoorKey_L4.json)."""
    data = _read("lamo_DoorKey_L4.json")
    return _bench("lamo").markdown(data).rstrip("\n") + _hw(data)


def scaling() -> str:
    """Training throughput over devices (bench/scaling.json)."""
    data = _read("scaling.json")
    return _bench("scaling").table(data["results"]) + f"\n\n`{data['command']}`" + _hw(data)


def navix_agents() -> str:
    """NAVIX's own PPO and PQN against our plain PPO (bench/navix_peers.json)."""
    data = _read("navix_peers.json")
    # the JSON gathers the rows of make bench-navix's three commands; its "command" is the last
    return (_bench("navix_peers").table(data["results"]) + f"\n\n`make bench-navix` (NAVIX "
            f"{data['navix']})" + _hw(data))


def validation(key: str):
    """A hyperparameter chosen on the validation split (bench/validate_<key>.json)."""
    def table() -> str:
        data = _read(f"validate_{key}.json")
        return (_bench("validate").markdown(data) + f"\n\n`python bench/validate.py {key}`"
                + _hw(data))
    return table


def _hw(data: dict, keep=None) -> str:
    """The machine the rows were measured on: the file's `hardware`, unless rows carry their
    own (`bench/learning.py` records it per row), then every machine with the rows it ran."""
    hw = data.get("hardware")
    if not hw:
        return ""
    describe = _bench("benchlib").describe
    machines: dict[str, list[str]] = {}
    for task, rows in data.items():
        if task == "hardware" or not isinstance(rows, dict):
            continue
        for name, row in rows.items():
            if isinstance(row, dict) and (keep is None or keep(name)):
                machines.setdefault(describe(row.get("hardware", hw)), []).append(
                    f"{task} {name}")
    if len(machines) <= 1:
        return f"\n\nMeasured on: {next(iter(machines), describe(hw))}."
    main = describe(hw)
    others = "; ".join(f"{', '.join(rows)} on {m}" for m, rows in machines.items() if m != main)
    return f"\n\nMeasured on: {main}, except {others}."


def _peers() -> str:
    return peers_table(_read("peers.json"))


def _env() -> str:
    return env_table(_read("env_throughput.json"))


# Every generated table: its marker's name and the function that makes it from the JSON.
TABLES = {"peers": _peers, "env-throughput": _env, "learning-ppo": learning_ppo,
          "learning-tasks": learning_tasks,
          "learning-window7": learning_window7, "learning-priors": learning_priors,
          "learning-priors-ablation": learning_priors_ablation,
          "posterior": posterior, "transfer": transfer, "offline-DoorKey": offline("DoorKey"),
          "offline-LavaDoorKey": offline("LavaDoorKey"),
          "offline-ColoredDoorKey": offline("ColoredDoorKey"), "offline-summary": offline_summary,
          "lamo": lamo, "lamo-L4": lamo_l4, "scaling": scaling, "navix-agents": navix_agents,
          "validate-posterior-tau": validation("posterior_tau"),
          "validate-eval-greedy": validation("eval_greedy"),
          "validate-kl-floor": validation("kl_floor"),
          "validate-kl-floor-uniform": validation("kl_floor_uniform")}


def tables(names=None) -> dict[str, str]:
    """The tables `names` (all by default), made from the committed JSON."""
    return {name: TABLES[name]() for name in (names or TABLES)}


def fill(text: str, made: dict[str, str]) -> str:
    for name, table in made.items():
        pattern = re.compile(rf"(<!-- table:{name} -->\n)(?:.*?\n)?(<!-- /table:{name} -->)", re.S)
        text = pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text)
    return text


def _show(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    made = tables()
    texts = {path: path.read_text() for path in FILES}
    marked = {m for text in texts.values()
              for m in re.findall(r"<!-- table:([\w-]+) -->", text)}
    unknown, unplaced = sorted(marked - set(made)), sorted(set(made) - marked)
    if unknown or unplaced:
        print("error: " + "; ".join(
            ([f"markers with no table of that name: {', '.join(unknown)}"] if unknown else [])
            + ([f"tables placed nowhere (add <!-- table:NAME --><!-- /table:NAME --> to one of "
                f"{', '.join(_show(f) for f in FILES)}): {', '.join(unplaced)}"]
               if unplaced else [])), file=sys.stderr)
        return 1
    stale = []
    for path, text in texts.items():
        new = fill(text, made)
        if new != text:
            stale.append(path)
            if not args.check:
                atomic_write_text(path, new)
    if args.check and stale:
        print("error: tables differ from what bench/*.json makes in "
              + ", ".join(_show(p) for p in stale)
              + ": run python bench/tables.py", file=sys.stderr)
        return 1
    print(("stale: " if args.check else "updated: ")
          + (", ".join(_show(p) for p in stale) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
