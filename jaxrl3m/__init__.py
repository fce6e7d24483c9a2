"""jaxrl3m: high-throughput JAX reinforcement learning guided by large-language-model priors.

Library packages: `core` (collector, driver, config, run folders, metrics, checkpoints,
evaluation), `envs` (the tasks), `nets` (encoder and heads), `teacher` (skills, prior tables, the
`Teacher` object), `llm` (the offline language models that fill prior tables), `algos` (the
algorithm interface, its registry and the algorithms), `experiments` (studies of many runs).
The modules at this level are the commands (`python -m jaxrl3m.train`, `.evaluate`, `.rollout`,
`.precompute_priors`, `.priors_report`); no library module imports them.

Public names, importable from here (each loaded on first use, so `import jaxrl3m` stays cheap):
`jaxrl3m.make_env` (`envs.make`), `jaxrl3m.make_algo` (`algos.make`), `jaxrl3m.Teacher`,
`jaxrl3m.Prior`, `jaxrl3m.Inputs`, `jaxrl3m.train_run` (the driver), `jaxrl3m.load_config`.
"""

from ._lazy import lazy_exports

_EXPORTS = {"make_env": "jaxrl3m.envs:make", "make_algo": "jaxrl3m.algos:make",
            "Teacher": "jaxrl3m.teacher.teacher", "Prior": "jaxrl3m.teacher.teacher",
            "Inputs": "jaxrl3m.algos.base", "train_run": "jaxrl3m.runner.driver",
            "load_config": "jaxrl3m.runner.runs"}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
