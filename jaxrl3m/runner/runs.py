"""Run folders and what a run is made of: `RunConfig`, the algorithm, the teacher, the source.

A run folder (`runs/<name>/`) holds `config.yaml` (every key, resolved), `inputs.json` (the
settings and the sha256 of every input file at the start, `jaxrl3m.runner.record`), `metrics.csv`,
`learning_curve.png`, orbax checkpoints in `checkpoints/` (each with a manifest of checksums),
`eval.json` and `summary.json`; `.lock` while a process trains it, `failed.json` when its start
failed before any checkpoint, `damaged_checkpoints/` when a damaged one was set aside. Every
run folder can be evaluated (`python -m jaxrl3m.evaluate`), resumed (`--resume`) or used as the
source policy of another run (`source=RUN_DIR`), whoever wrote it: the train command, the
transfer study or the learning bench all go through `create_run`.

`setup(algo_config, run)` resolves everything a run needs (the prior table, the source policy,
the teacher) and fails with a `ConfigError` before any folder is created.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import jax
import yaml

from ..core.checkpoint import Checkpoints
from ..core.config import (ConfigError, build, changed_keys, load_yaml, resolve_config,
                           to_dict)
from ..core.io import atomic_write_text


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What a training run does around the algorithm."""

    algo: str = "ppo"
    """The algorithm (jaxrl3m.algos registry): ppo (with kl_direction: reverse, GFlan-Prior) or
    dqn (with a prior, DQN-Prior)."""
    name: str = ""
    """Folder under runs_dir (default: the config file's name). An existing folder is never
    overwritten: a new run gets the next free name-2, name-3, ..."""
    prior: str = "none"
    """The teacher's prior table: a JSON file (llm_cache/...), oracle, uniform, or none (plain
    RL: no teacher, no KL term)."""
    seeds: int = 1
    """Seeds trained together in one vmap."""
    seed: int = 0
    """Seed of the first key; the seeds' keys are split from it."""
    devices: int = 0
    """Devices the run is spread over (0: every device of every process). Seeds are split over
    gcd(seeds, devices) device groups, each seed's environments over the rest (their gradients
    averaged across those devices); the result equals one device's (jaxrl3m.core.parallel)."""
    log_every: int = 10
    """Updates per jitted chunk: progress and metrics.csv update after each."""
    checkpoint_every: float = 60.0
    """Seconds between checkpoints (taken after a chunk; always at the end, and where a run is
    stopped or interrupted). 0: after every chunk."""
    eval_episodes: int = 1000
    """Episodes per seed on held-out layouts at the end (0: skip)."""
    eval_greedy: bool = False
    """Evaluate the greedy policy instead of sampling from it (the final and the periodic
    evaluations)."""
    eval_every: int = 10
    """Updates between periodic evaluations during training (0: none): curve_episodes fresh
    episodes per seed on held-out layouts, inside the compiled training program. They are the
    learning curve (eval_success in metrics.csv) that steps to 0.9 is read from."""
    curve_episodes: int = 128
    """Episodes per seed of each periodic evaluation."""
    runs_dir: str = "runs"
    """Where run folders go."""
    max_loss: float = 1e6
    """Divergence guard: training stops when a loss is not finite or its magnitude exceeds
    this, naming the update, the seed and the last good checkpoint."""
    tensorboard: bool = False
    """Also log every metric to TensorBoard event files in <run>/tensorboard (needs
    tensorboardX: pip install 'jaxrl3m[tensorboard]')."""
    wandb: bool = False
    """Also log every metric to Weights & Biases (needs wandb: pip install 'jaxrl3m[wandb]');
    the W&B run is named after the run folder, keeps its config, and continues on --resume."""
    wandb_project: str = "jaxrl3m"
    """The W&B project of wandb=true."""
    wandb_mode: str = "online"
    """online, offline (files under <run>/wandb, `wandb sync` them later; no network needed) or
    disabled."""
    # --- transfer learning ---
    source: str = ""
    """A source policy: the folder of a run of python -m jaxrl3m.train (its last checkpoint),
    usually on another task, with the same network keys. Used by init=source and the teachers
    that include it."""
    source_seed: int = 0
    """Which of the source run's seeds is the source policy."""
    init: str = "scratch"
    """scratch (a fresh network) or source (start from the source policy's parameters)."""
    teacher: str = "prior"
    """prior: the prior table's skills (none: no teacher); source: the frozen source policy alone
    (kickstarting); prior+source: the prior's skills plus the source policy as one more option
    ("follow the policy that solved <source task>"), see source_weight."""
    source_weight: float = 0.5
    """teacher=prior+source: the source policy's share of the prior in every abstract state
    (the skills keep the rest in the prior's proportions)."""
    learn: bool = True
    """false: no training; the teacher acts alone on eval_episodes held-out layouts per seed
    (its success rate is its competence)."""
    # --- offline algorithms (cql, bc) ---
    dataset: str = ""
    """The dataset file of an offline algorithm (python -m jaxrl3m.collect)."""
    fraction: float = 1.0
    """Train on this share of the dataset's episodes, in (0, 1]: the first of a seeded
    permutation, so that smaller fractions are nested in larger ones."""
    subset_seed: int = 0
    """Seed of the permutation behind fraction."""

    def check(self) -> "RunConfig":
        from ..teacher.teacher import TEACHER_MODES
        if self.name and (Path(self.name).name != self.name or self.name in (".", "..")
                          or "\\" in self.name):
            raise ConfigError(f"config key 'name': {self.name!r} is not a plain folder name (it "
                              "would leave runs_dir); give a name without '/', '\\' or '..', "
                              "and set runs_dir to choose where run folders go")
        for key in ("seeds", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key {key!r} must be at least 1, got "
                                  f"{getattr(self, key)}")
        for key in ("eval_every", "curve_episodes"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key {key!r} must be >= 0, got {getattr(self, key)}")
        if self.eval_episodes < 0:
            raise ConfigError(f"config key 'eval_episodes' must be >= 0, got "
                              f"{self.eval_episodes}")
        if not self.checkpoint_every >= 0:
            raise ConfigError(f"config key 'checkpoint_every' must be >= 0 seconds, got "
                              f"{self.checkpoint_every}")
        if not self.max_loss > 0:
            raise ConfigError(f"config key 'max_loss' must be positive, got {self.max_loss}")
        if self.wandb_mode not in ("online", "offline", "disabled"):
            raise ConfigError(f"config key 'wandb_mode': {self.wandb_mode!r} is unknown; valid: "
                              "online, offline, disabled")
        if self.init not in INITS:
            raise ConfigError(f"config key 'init': {self.init!r} is unknown; valid: "
                              f"{', '.join(INITS)}")
        if self.teacher not in TEACHER_MODES:
            raise ConfigError(f"config key 'teacher': {self.teacher!r} is unknown; valid: "
                              f"{', '.join(TEACHER_MODES)}")
        if self.uses_source and not self.source:
            raise ConfigError(f"init={self.init} teacher={self.teacher} needs a source policy: "
                              "set source=RUN_DIR (a run of python -m jaxrl3m.train)")
        if self.teacher == "prior+source" and self.prior == "none":
            raise ConfigError("teacher=prior+source needs a prior (a table in llm_cache/, "
                              "oracle or uniform); use teacher=source for the source alone")
        if not 0.0 <= self.source_weight <= 1.0:
            raise ConfigError(f"config key 'source_weight' must be in [0, 1], got "
                              f"{self.source_weight}")
        if not self.learn and not self.has_teacher:
            raise ConfigError("learn=false evaluates the teacher, but there is none: give a "
                              "prior or teacher=source")
        if not self.learn and self.init == "source":
            raise ConfigError("learn=false evaluates the teacher; init=source has no effect "
                              "there, use init=scratch")
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"config key 'fraction' is {self.fraction}, outside (0, 1]: give "
                              "the share of the dataset's episodes to train on, e.g. 0.05")
        if self.source_seed < 0:
            raise ConfigError(f"config key 'source_seed' must be >= 0, got {self.source_seed}")
        return self

    @property
    def has_teacher(self) -> bool:
        return self.teacher != "prior" or self.prior != "none"

    @property
    def uses_source(self) -> bool:
        return self.init == "source" or self.teacher != "prior"


INITS = ("scratch", "source")


def migrate(values: dict[str, Any], algo: str | None = None) -> dict[str, Any]:
    """Config values written before a key was renamed, under its new name (with a note on
    stderr): DQN-Prior's and CQL-Prior's `posterior: sampled|exact` is `inference` (one meaning
    per key: `posterior` is PPO's posterior teacher, a bool). `algo`: the run's algorithm, when
    `values` (overrides) do not say."""
    algo = str(values.get("algo", algo or ""))
    old = values.get("posterior")
    if algo in ("dqn", "cql") and isinstance(old, str):
        print(f"note: config key 'posterior: {old}' of algo {algo} is now "
              f"'inference: {old}' (read as such; write the new name)", file=sys.stderr)
        values = {k: v for k, v in values.items() if k != "posterior"}
        values.setdefault("inference", old)
    return values


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> tuple[Any, RunConfig]:
    """`(algorithm config, RunConfig)` from a YAML file or preset name (or defaults) plus
    overrides, checked. The algorithm is the `algo` key (default ppo)."""
    from .. import algos
    if path:
        path = resolve_config(path)
    values = load_yaml(path) if path else {}
    algo = str({**values, **overrides}.get("algo", RunConfig.algo))
    values = {**migrate(values, algo), **migrate(overrides, algo)}
    spec = algos.get(str(values.get("algo", RunConfig.algo)))
    algo_config, run = build((spec.config, RunConfig), values)
    if not run.name and path:
        run = dataclasses.replace(run, name=Path(path).stem)
    algo_config.check()
    run.check()
    if not run.has_teacher and float(getattr(algo_config, "kl_coef", 0.0)) > 0:
        raise ConfigError(f"config key 'kl_coef' is {algo_config.kl_coef} but prior is 'none': "
                          "give a prior (a table in llm_cache/, oracle or uniform) or set "
                          "kl_coef=0")
    return algo_config, run


def config_values(algo_config: Any, run: RunConfig) -> dict[str, Any]:
    """Every key of a run as plain values (what `config.yaml` holds)."""
    return to_dict(run, algo_config)


# ---------------------------------------------------------------------------------------------
# Run folders
# ---------------------------------------------------------------------------------------------
def create_run(algo_config: Any, run: RunConfig, path: Path | None = None
               ) -> tuple[Path, RunConfig]:
    """Creates the run folder and writes its `config.yaml`: at `path`, or the first free
    `runs_dir/name`, `name-2`, ... (the run's name is then the folder's). The folder is taken
    by an atomic `mkdir`, so two processes starting at once never share one."""
    main = jax.process_index() == 0
    try:
        if path is None:
            base = Path(run.runs_dir) / (run.name or "run")
            base.parent.mkdir(parents=True, exist_ok=True)
            path, i = base, 1
            while main:
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    i += 1
                    path = base.with_name(f"{base.name}-{i}")
            if jax.process_count() > 1:  # every process takes the folder process 0 chose
                import numpy as np
                from jax.experimental import multihost_utils
                i = int(multihost_utils.broadcast_one_to_all(np.int32(i)))
                path = base if i == 1 else base.with_name(f"{base.name}-{i}")
            run = dataclasses.replace(run, name=path.name)
        path.mkdir(parents=True, exist_ok=True)
        if main:
            atomic_write_text(path / "config.yaml",
                              yaml.safe_dump(config_values(algo_config, run), sort_keys=False))
    except PermissionError as e:
        raise ConfigError(f"cannot create the run folder {str(path)!r}: permission denied on "
                          f"{e.filename!r}; set runs_dir to a folder you can write to") from None
    except OSError as e:
        raise ConfigError(f"cannot create the run folder {str(path)!r}: {e.strerror} "
                          f"({e.filename}); set runs_dir to another folder") from None
    return path, run


def check_same_settings(path: Path, algo_config: Any, run: RunConfig) -> None:
    """Refuses to reuse `path` for a run with other settings than the ones it holds."""
    old = migrate(load_yaml(path / "config.yaml"))
    values = config_values(algo_config, run)
    differ = changed_keys(old, values)
    if differ:
        raise ConfigError(
            f"{path} holds a run with other settings ({', '.join(f'{k}: {old.get(k)!r} there, '
            f'{values.get(k)!r} now' for k in differ[:4])}); give another --out (or --runs-dir) "
            "or delete that folder")


def read_run_config(run_dir: str | Path) -> tuple[Any, RunConfig]:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{str(run_dir)!r} is not a run folder (no config.yaml); give a "
                          "folder written by python -m jaxrl3m.train")
    return load_config(run_dir / "config.yaml", {})


FAILED = "failed.json"
"""Written into a run folder whose start failed before any checkpoint (what went wrong)."""


def failed_note(run_dir: Path) -> str:
    """" (its start failed: ...)" for a folder marked as failed, else ""."""
    import json
    try:
        why = json.loads((Path(run_dir) / FAILED).read_text())["error"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return f" (its start failed: {why[:300]})"


# ---------------------------------------------------------------------------------------------
# What a run is made of
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Setup:
    """What a run needs besides its configs: the algorithm, its teacher (None: no teacher), and
    the parameters training starts from (None: a fresh network)."""

    algo: Any
    teacher: Any
    start: Any
    info: dict  # what the prior and source were
    data: Any = None  # an offline algorithm's dataset on the device (OfflineData, DTData)
    frozen: Any = None  # what an algorithm keeps frozen and shares across seeds (DT's base LM)

    @property
    def inputs(self) -> Any:
        """What the algorithm's `update` takes besides its state (`jaxrl3m.algos.Inputs`):
        the teacher, an offline algorithm's dataset, what an algorithm keeps frozen (a Decision
        Transformer's base model)."""
        from ..algos import Inputs
        return Inputs(teacher=self.teacher, data=self.data, frozen=self.frozen)


def setup(algo_config: Any, run: RunConfig, with_data: bool = True,
          evaluation: bool = False) -> Setup:
    """Resolves the prior table and the source policy of a run, builds its algorithm and
    teacher, and loads an offline algorithm's dataset (`with_data`; evaluation needs none, but a
    Decision Transformer's evaluation needs the target return its dataset gives).
    `evaluation`: only what evaluating the trained policy needs (no teacher where the policy
    acts without one: a PPO run whose prior table is gone can still be evaluated).
    Everything is checked here, before anything is written, the devices included."""
    from ..core import parallel
    from .. import algos
    from ..nets import Network
    from ..teacher import teacher as teachers
    spec = algos.get(run.algo)
    source = load_source(run, algo_config) if run.uses_source else None
    past = (source[0],) if source and run.teacher != "prior" else ()
    algo = spec.make(algo_config, guided=run.has_teacher, past_policies=past)
    if source is not None:
        check_source_fits(source, algo, algo_config.task)
    if run.learn:
        parallel.place(run.seeds, algo.num_envs, run.devices)
        if not evaluation:
            from .resources import check_memory
            check_memory(algo, run, state_shapes(algo, run))
    teacher, info = None, {"prior": run.prior}
    needs_teacher = not evaluation or not run.learn or algo.evaluation_needs_teacher
    if run.has_teacher and needs_teacher:
        net = Network.from_config(algo_config, "actor_critic")
        teacher, info = teachers.compose(algo_config.task, run.prior, run.teacher, source,
                                         run.source_weight, net)
    if source:
        info = {**info, "source": str(run.source), "source_task": source[0],
                "source_seed": run.source_seed, "init": run.init}
    offline = algo.offline
    if run.dataset and not offline:
        raise ConfigError(f"config key 'dataset' is for the offline algorithms (cql, bc, dt); "
                          f"{run.algo} learns online: remove dataset=")
    data = None
    if offline and run.learn:
        if not run.dataset:
            raise ConfigError(f"{run.algo} learns from a dataset: set dataset=FILE (python -m "
                              "jaxrl3m.collect builds one)")
        info = {**info, "dataset": run.dataset, "fraction": run.fraction,
                "subset_seed": run.subset_seed}
        if with_data or algo.evaluation_needs_data:  # a DT's needs the target return
            data, ds_info = load_offline_data(algo, teacher, run)
            info.update(ds_info)
    frozen = algo.frozen()
    return Setup(algo, teacher, source[1] if source and run.init == "source" else None, info,
                 data, frozen)


def check_source_fits(source: tuple[str, Any], algo: Any, task: str) -> None:
    """Raises `ConfigError` when the source policy's parameters do not have the shapes of this
    run's network: same network keys, but another observation (Fetch's mission is one more
    input code than DoorKey's), which would fail deep inside the first matrix product."""
    init = getattr(algo, "init_params", None)
    if init is None:
        return
    want = jax.eval_shape(init, jax.random.key(0))
    got = source[1]
    shapes = lambda tree: [tuple(x.shape) for x in jax.tree.leaves(tree)]  # noqa: E731
    if jax.tree.structure(want) == jax.tree.structure(got) and shapes(want) == shapes(got):
        return
    paths = [(jax.tree_util.keystr(p), tuple(x.shape))
             for p, x in jax.tree_util.tree_leaves_with_path(want)]
    theirs = dict((jax.tree_util.keystr(p), tuple(x.shape))
                  for p, x in jax.tree_util.tree_leaves_with_path(got))
    first = next(((k, v, theirs.get(k)) for k, v in paths if theirs.get(k) != v), None)
    where = f" ({first[0]}: {first[2]} there, {first[1]} here)" if first else ""
    raise ConfigError(
        f"config key 'source': the source policy (task {source[0]!r}) does not fit task "
        f"{task!r}'s network{where}: the two tasks' observations differ (a mission, as "
        f"Fetch's, is one more input). Use a source policy trained on a task with the same "
        f"observation")


def load_offline_data(algo: Any, teacher: Any, run: RunConfig) -> tuple[Any, dict]:
    """The run's dataset subset on the device, checked against the task."""
    from ..offline import dataset as dsl
    env = algo.config.make_env()
    ds = dsl.load(run.dataset, env)
    if ds.meta.get("layouts") != "train":
        raise dsl.DatasetError(
            f"{run.dataset} was collected on layouts={ds.meta.get('layouts')!r}, which include "
            "the held-out evaluation layouts: collect it with python -m jaxrl3m.collect "
            "(--layouts train, the default)")
    from ..envs.layout import SPLIT
    if ds.meta.get("split", "v1") != SPLIT:
        raise dsl.DatasetError(
            f"{run.dataset} was collected with the train/held-out split "
            f"{ds.meta.get('split', 'v1')!r}, whose training layouts share maps with today's "
            f"held-out ones ({SPLIT!r} splits by map): collect it again with python -m "
            "jaxrl3m.collect")
    sub = ds.subset(run.fraction, run.subset_seed)
    data, extra = algo.prepare(sub, teacher)
    return data, {"dataset_episodes": sub.num_episodes, "dataset_transitions":
                  sub.num_transitions, "dataset_success_rate": sub.meta["success_rate"],
                  "dataset_policy": ds.meta.get("policy"), **extra}


_INITS: dict = {}


def init_states(algo: Any, run: RunConfig, params: Any = None) -> Any:
    """Every seed's initial state (all seeds start from `params` when given). One jitted
    function per algorithm, so that `state_shapes` and the run share its trace."""
    from ..core.parallel import vmap_seeds
    if algo not in _INITS:
        _INITS[algo] = jax.jit(vmap_seeds(algo.init, in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(run.seed), run.seeds)
    return _INITS[algo](keys, params)


def state_shapes(algo: Any, run: RunConfig) -> Any:
    """The shapes and dtypes of `init_states` without computing it (nothing compiles): the
    template a checkpoint restores into."""
    return jax.eval_shape(lambda: init_states(algo, run))


def restore_run(run_dir: str | Path, log=None) -> tuple[Any, RunConfig, Setup, Any, int]:
    """A run folder's configs, setup (what evaluating its policy needs) and state at its newest
    checkpoint that verifies (a damaged newer one is moved aside, and `log` told)."""
    from . import record
    run_dir = Path(run_dir)
    algo_config, run = read_run_config(run_dir)
    recorded = record.read(run_dir)
    if recorded is not None:
        diff = record.differences(recorded, config_values(algo_config, run),
                                  recorded["inputs"])
        if diff:
            k = next(iter(diff))
            raise ConfigError(f"{run_dir}/config.yaml was edited after the run started ({k}: "
                              f"{diff[k]}); put it back (inputs.json holds the settings the "
                              "checkpoints were trained with)")
    s = setup(algo_config, run, with_data=False, evaluation=True)
    if not (run_dir / "checkpoints").is_dir():
        raise ConfigError(f"{str(run_dir)!r} has no checkpoint yet{failed_note(run_dir)}; "
                          "train it first")
    with Checkpoints(run_dir / "checkpoints") as ckpt:
        found = ckpt.restore_newest(state_shapes(s.algo, run), log)
    if found is None:
        raise ConfigError(f"{str(run_dir)!r} has no checkpoint yet{failed_note(run_dir)}; "
                          "train it first")
    step, state = found
    s.algo.check_restored(state, s.frozen)
    return algo_config, run, s, state, int(step)


def load_source(run: RunConfig, algo_config: Any) -> tuple[str, Any]:
    """`(source task, parameters)` of the source policy named by `run.source`, checked to fit
    the run's network."""
    from ..nets import NETWORK_KEYS
    try:
        src_config, src_run, _, state, _ = restore_run(run.source)
    except ConfigError as e:
        raise ConfigError(f"config key 'source': {e}") from None
    differ = [k for k in NETWORK_KEYS if getattr(src_config, k) != getattr(algo_config, k)]
    if differ:
        raise ConfigError(
            f"config key 'source': the source policy in {run.source!r} has a different network ("
            + ", ".join(f"{k}={getattr(src_config, k)} here {getattr(algo_config, k)}"
                        for k in differ)
            + "); set these keys to the source's values")
    if run.source_seed >= src_run.seeds:
        raise ConfigError(f"config key 'source_seed' is {run.source_seed} but the source run "
                          f"has {src_run.seeds} seed(s)")
    return src_config.task, jax.tree.map(lambda x: x[run.source_seed], state.params)
