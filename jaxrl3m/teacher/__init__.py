"""The LLM teacher: skills `pi_k` (`skills`), options and the oracle (`options`), the mixture
`pi_L` (`mixture`), prompts and prior tables (`prompt`, `priors`, `table`, `yaml_table`), and the
`Teacher` object every algorithm uses (`teacher`)."""

from .._lazy import lazy_exports

_EXPORTS = {"Teacher": ".teacher", "Prior": ".teacher", "resolve_prior": ".teacher",
            "teacher_logits": ".teacher", "oracle_table": ".options", "task_options": ".options"}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)  # jaxrl3m.teacher.Teacher, loaded on first use
