"""The LLM teacher: skills `pi_k` (`skills`), options and the oracle (`options`), the mixture
`pi_L` (`mixture`), prompts and prior tables (`prompt`, `priors`, `table`, `yaml_table`), and the
`Teacher` object every algorithm uses (`teacher`)."""
