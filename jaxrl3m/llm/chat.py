"""Chat templates, rendered by transformers' `PreTrainedTokenizerFast` (it imports without
torch), exactly as Hugging Face renders them."""

from __future__ import annotations

import os

from .model import Model, ModelError

def chat_tokenizer(model: Model):
    """transformers' `PreTrainedTokenizerFast` around the model's tokenizer and chat template
    (built once per model): it renders Hugging Face chat templates exactly, `raise_exception`
    and the other helpers included, and imports without torch."""
    cached = getattr(model, "_chat_tokenizer", None)
    if cached is None:
        # transformers warns at import that PyTorch is absent; jaxrl3m needs only its tokenizers.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from transformers import PreTrainedTokenizerFast
        cached = PreTrainedTokenizerFast(tokenizer_object=model.tokenizer,
                                         chat_template=model.chat_template, **model.special)
        model._chat_tokenizer = cached
    return cached


def apply_chat_template(model: Model, messages: list[dict[str, str]],
                        add_generation_prompt: bool = True) -> str:
    """Renders the model's own chat template (through transformers, as Hugging Face does)."""
    if not model.chat_template:
        raise ModelError(f"{model.path} has no chat template; give a prompt with `chat: false`")
    try:
        return chat_tokenizer(model).apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as e:  # noqa: BLE001 - jinja2's TemplateError and raise_exception's
        raise ModelError(f"{model.path}: its chat template refused these messages: {e}"
                         ) from None
