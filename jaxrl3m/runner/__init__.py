"""Runs: what sits above the algorithms. `runs` (configs resolved from presets and overrides,
run folders, `setup`: the algorithm, teacher, source policy and dataset of a run, all checked
before anything is written), `driver` (`train_run`: seeds in one vmap, jitted chunks,
checkpoints, metrics, progress, the held-out evaluation) and `policies` (the behaviour policies
that datasets are collected with, run folders among them). The commands (`jaxrl3m.train`,
`.evaluate`, `.collect`) and `jaxrl3m.experiments` use this layer; nothing below imports it."""
