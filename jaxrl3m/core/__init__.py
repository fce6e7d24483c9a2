"""What every algorithm shares: config, run folders, the collector, the training driver, metrics,
checkpoints and held-out evaluation.

Modules (import them directly; this package imports nothing eagerly, so that low-level pieces such
as `core.io` stay importable from everywhere without an import circle):

- `io`: atomic file writes.
- `config`: YAML presets (shipped as package data, found by name), `key=value` overrides, one
  flat key space over several dataclasses with collisions refused.
- `parallel`: the seed axis (`vmap_seeds`) and predicates shared by all seeds (`any_seed`).
- `collector`: one `lax.scan` over environment steps for any policy, with episode statistics.
- `metrics`: `metrics.csv` (append-only), windowed success, steps to a threshold, plots.
- `checkpoint`: orbax checkpoints with typed PRNG keys.
- `evaluation`: held-out layouts, any policy.
- `runs`: `RunConfig`, run folders, restoring a run, source policies.
- `driver`: `train_run`, the chunked-jit loop behind `python -m jaxrl3m.train`.
"""
