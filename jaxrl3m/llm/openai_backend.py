"""Scoring options with any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI).

Two ways to score, chosen by `mode`:
- "logprobs": `POST {base_url}/completions` with `echo: true, logprobs: 1, max_tokens: 1`, once
  per (state, option), on a plain-text rendering of the chat (the server's own chat template is
  not available to the client); the option's score is the sum of the log-probabilities of the
  tokens at or after the option's first character (`text_offset`). Servers that support this:
  vLLM, the OpenAI legacy completions models.
- "sample": `POST {base_url}/chat/completions` with `n` sampled answers per state (temperature 1);
  an option's score is the log of its frequency among the answers that name an option (LLM4Teach's
  offline tables were made this way). Answers naming no option are counted and reported.
- "auto" (default): "logprobs" if the server returns prompt log-probabilities, else "sample".

Every request has a timeout and is retried with exponential backoff on connection errors, 429
and 5xx; other errors stop at once with the server's message. Only the standard library is used.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.error
import urllib.request
from typing import Callable

import numpy as np


class ServerError(RuntimeError):
    """The server could not be used; the message says why."""


class _NoLogprobs(Exception):
    pass


def plain_chat(messages: list[dict[str, str]]) -> str:
    """A plain-text rendering of chat messages, ending where the assistant's answer starts."""
    parts = []
    for m in messages:
        role = {"system": "System", "user": "User", "assistant": "Assistant"}[m["role"]]
        parts.append(f"{role}: {m['content']}")
    return "\n\n".join(parts) + "\n\nAssistant:"


def parse_answer(text: str, options: list[str]) -> int | None:
    """The option an answer names: the longest option text found in it (case-insensitive)."""
    low = " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())
    best = None
    for k, o in enumerate(options):
        if o.lower() in low and (best is None or len(o) > len(options[best])):
            best = k
    return best


class OpenAIScorer:
    """A `ScoreFn` backed by an OpenAI-compatible HTTP server."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, mode: str = "auto",
                 samples: int = 10, timeout: float = 60.0, retries: int = 5,
                 backoff: float = 1.0, log: Callable[[str], None] | None = None):
        if mode not in ("auto", "logprobs", "sample"):
            raise ValueError(f"mode must be auto, logprobs or sample, got {mode!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.mode = mode
        self.samples = samples
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.log = log or (lambda m: None)
        self.used_mode: str | None = None
        self.unparsed_answers = 0

    # -----------------------------------------------------------------------------------------
    def _post(self, path: str, body: dict) -> dict:
        url = f"{self.base_url}/{path}"
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        delay = self.backoff
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode())
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:500]
                if e.code == 429 or e.code >= 500:
                    why = f"HTTP {e.code}: {detail}"
                else:
                    raise ServerError(f"{url} answered HTTP {e.code}: {detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                reason = getattr(e, "reason", e)
                why = f"{type(reason).__name__}: {reason}"
            except json.JSONDecodeError as e:
                raise ServerError(f"{url} did not answer JSON ({e})") from None
            if attempt < self.retries:
                self.log(f"{url}: {why}; retrying in {delay:.1f}s "
                         f"({attempt + 1}/{self.retries})")
                time.sleep(delay)
                delay *= 2
        raise ServerError(f"{url} failed after {self.retries + 1} attempts ({why}). Is the server "
                          f"running and is --base-url right? (timeout {self.timeout}s)")

    # -----------------------------------------------------------------------------------------
    def _logprob_scores(self, messages_list, options) -> np.ndarray:
        out = np.zeros((len(messages_list), len(options)), np.float64)
        for i, messages in enumerate(messages_list):
            prompt = plain_chat(messages)
            texts = [f"{prompt} {o}\n" for o in options]
            resp = self._post("completions", {"model": self.model, "prompt": texts,
                                              "max_tokens": 1, "echo": True, "logprobs": 1,
                                              "temperature": 0})
            choices = sorted(resp.get("choices", []), key=lambda c: c.get("index", 0))
            if len(choices) != len(options):
                raise _NoLogprobs(f"expected {len(options)} choices, got {len(choices)}")
            for k, ch in enumerate(choices):
                lp = ch.get("logprobs") or {}
                offs, tlp = lp.get("text_offset"), lp.get("token_logprobs")
                if not offs or not tlp:
                    raise _NoLogprobs("the server returned no prompt log-probabilities")
                start = len(prompt) + 1
                end = len(texts[k])
                vals = [v for o, v in zip(offs, tlp) if start <= o < end and v is not None]
                if not vals:
                    raise _NoLogprobs("no log-probabilities for the option's tokens")
                out[i, k] = sum(vals)
        return out

    def _sample_scores(self, messages_list, options) -> np.ndarray:
        out = np.zeros((len(messages_list), len(options)), np.float64)
        for i, messages in enumerate(messages_list):
            resp = self._post("chat/completions", {"model": self.model, "messages": messages,
                                                   "n": self.samples, "temperature": 1.0,
                                                   "max_tokens": 24})
            counts = np.zeros(len(options))
            for ch in resp.get("choices", []):
                k = parse_answer((ch.get("message") or {}).get("content") or "", options)
                if k is None:
                    self.unparsed_answers += 1
                else:
                    counts[k] += 1
            if counts.sum() == 0:
                self.log(f"state {i}: no answer named an option; using uniform scores")
                counts[:] = 1
            with np.errstate(divide="ignore"):
                out[i] = np.log(counts / counts.sum())
        return out

    def __call__(self, messages_list, options) -> np.ndarray:
        if self.mode in ("auto", "logprobs") and self.used_mode in (None, "logprobs"):
            try:
                s = self._logprob_scores(messages_list, options)
                self.used_mode = "logprobs"
                return s
            except (_NoLogprobs, ServerError) as e:
                if self.mode == "logprobs":
                    raise ServerError(f"{self.base_url} cannot score options by log-probability "
                                      f"({e}); use --openai-mode sample") from None
                self.log(f"no prompt log-probabilities ({e}); sampling {self.samples} answers "
                         "per state instead")
        self.used_mode = "sample"
        s = self._sample_scores(messages_list, options)
        if self.unparsed_answers:
            self.log(f"{self.unparsed_answers} answers named no option")
        return np.where(np.isfinite(s), s, -math.inf)
