"""jaxrl3m: high-throughput JAX reinforcement learning guided by large-language-model priors.

Library packages: `core` (collector, driver, config, run folders, metrics, checkpoints,
evaluation), `envs` (the tasks), `nets` (encoder and heads), `teacher` (skills, prior tables, the
`Teacher` object), `llm` (the offline language models that fill prior tables), `algos` (the
algorithm interface, its registry and the algorithms), `experiments` (studies of many runs).
The modules at this level are the commands (`python -m jaxrl3m.train`, `.evaluate`, `.rollout`,
`.precompute_priors`, `.priors_report`); no library module imports them.
"""
