"""Scoring options with any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI).

Two ways to score, chosen by `mode`:
- "logprobs": `POST {base_url}/completions` with `echo: true, logprobs: 1, max_tokens: 1`: per
  state, the prompt alone and the prompt followed by each option; an option's score is the sum of
  the log-probabilities of the tokens the option adds (the second echo less the first: no
  character offsets are needed, which servers report inconsistently around special tokens). The
  prompt is the chat rendered with the model's own chat template (`ChatFormat`: from a local copy
  of the model, a .jinja file, or the server's `/props`), and each option is followed by the
  template's end-of-turn marker, exactly as the `jax` backend scores it, so that both backends
  score the same strings; without a template, a plain-text rendering (recorded as such).
  Servers that refuse a list of prompts in one request (llama-cpp-python) get one per request.
  Servers: vLLM, llama.cpp's and llama-cpp-python's servers (`--logits_all true`), the OpenAI
  legacy completions models.
- "sample": `POST {base_url}/chat/completions` with `n` sampled answers per state (temperature 1),
  asked again until `samples` answers arrived (servers that ignore `n` answer once); an option's
  score is the log of its frequency among the answers that name an option (LLM4Teach's offline
  tables were made this way). Every state needs at least one answer naming an option, and at
  most `max_unparsed` of all answers may name none: otherwise the table would be made up, and
  the run stops with the counts (recorded in the table's metadata when it passes).
- "auto" (default): "logprobs" if the server returns prompt log-probabilities, else "sample".

Every request has a timeout and is retried with exponential backoff on 429, 5xx and timeouts;
a refused connection (nothing listens there) and other errors stop at once with the server's
message. Only the standard library is used (jinja2 to render a template given as text).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Callable

import numpy as np


class ServerError(RuntimeError):
    """The server could not be used; the message says why."""


class ServerUnreachable(ServerError):
    """Nothing answers at the address: no other mode can help."""


class _NoLogprobs(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class ChatFormat:
    """How chat messages become a completion prompt: `render(messages)` ends where the
    assistant's answer starts; `answer(option)` is the text scored after it."""

    source: str
    """Where the template came from (recorded in the table's metadata)."""
    render: Callable[[list[dict[str, str]]], str]
    end_of_turn: str = ""

    def answer(self, option: str) -> str:
        return option + self.end_of_turn if self.source != "plain" else f" {option}\n"

    @staticmethod
    def plain() -> "ChatFormat":
        return ChatFormat("plain", plain_chat)

    @staticmethod
    def from_model(model: str) -> "ChatFormat":
        """The chat template of a local copy of the served model (an alias such as smollm2,
        a .gguf file or a Hugging Face folder), rendered as the `jax` backend renders it."""
        from .chat import apply_chat_template
        from .loading import load_model_cached
        from .scoring import end_of_turn
        m = load_model_cached(model)
        return ChatFormat(f"model:{model}", lambda msgs: apply_chat_template(m, msgs),
                          end_of_turn(m))

    @staticmethod
    def from_jinja(template: str, source: str, bos_token: str = "",
                   eos_token: str = "") -> "ChatFormat":
        """A Hugging Face chat template given as text (a .jinja file, a server's `/props`);
        the end-of-turn marker is the template's first `<...>` token after an answer."""
        import jinja2

        def raise_exception(msg):
            raise jinja2.TemplateError(msg)

        env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        tpl = env.from_string(template)

        def render(msgs, add_generation_prompt=True):
            return tpl.render(messages=msgs, add_generation_prompt=add_generation_prompt,
                              bos_token=bos_token, eos_token=eos_token)

        marker = "\u2400ANSWER\u2400"
        tail = render([{"role": "user", "content": "x"},
                       {"role": "assistant", "content": marker}], False).split(marker, 1)[-1]
        m = re.search(r"<[|/]?[A-Za-z_][^<>\s]*[|]?>", tail)
        eot = tail[: m.end()] if m else tail.rstrip()
        return ChatFormat(source, render, eot)


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
                 backoff: float = 1.0, log: Callable[[str], None] | None = None,
                 chat: ChatFormat | None = None, max_unparsed: float = 0.5):
        if mode not in ("auto", "logprobs", "sample"):
            raise ValueError(f"mode must be auto, logprobs or sample, got {mode!r}")
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"--samples must be at least 1, got {samples}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"--retries must be 0 or more, got {retries}")
        if not timeout > 0:
            raise ValueError(f"--timeout must be positive seconds, got {timeout}")
        if not 0 <= max_unparsed < 1:
            raise ValueError(f"max_unparsed must be in [0, 1), got {max_unparsed}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.mode = mode
        self.samples = samples
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.log = log or (lambda m: None)
        self.chat = chat or ChatFormat.plain()
        self.max_unparsed = max_unparsed
        self.used_mode: str | None = None
        self.list_prompts = True  # one request for a state's prompts, until a server refuses
        self.answers = 0
        self.unparsed_answers = 0
        self.requests = 0

    @property
    def pool(self) -> str:
        """How `jaxrl3m.teacher.priors` averages this backend's scores over option orders:
        sampled answers' frequencies, or log-probabilities."""
        return "frequency" if self.used_mode == "sample" else "log"

    def stats(self) -> dict:
        """What the table's metadata records of the scoring."""
        out = {"openai_mode": self.used_mode, "chat_template": self.chat.source,
               "requests": self.requests}
        if self.used_mode == "sample":
            out.update(answers=self.answers, unparsed_answers=self.unparsed_answers,
                       samples_per_state=self.samples)
        return out

    # -----------------------------------------------------------------------------------------
    def _request(self, path: str, body: dict | None = None, retries: int | None = None) -> Any:
        url = f"{self.base_url}/{path}"
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None if body is None else json.dumps(body).encode()
        delay = self.backoff
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            req = urllib.request.Request(url, data=data, headers=headers,
                                         method="GET" if body is None else "POST")
            self.requests += 1
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode())
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:500]
                if e.code == 429 or e.code >= 500:
                    why = f"HTTP {e.code}: {detail}"
                else:
                    raise ServerError(f"{url} answered HTTP {e.code}: {detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, socket.timeout) as e:
                reason = getattr(e, "reason", e)
                if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
                    raise ServerUnreachable(
                        f"nothing answers at {url} ({type(reason).__name__}: {reason}): start "
                        "the server, or fix --base-url") from None
                why = f"{type(reason).__name__}: {reason}"
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ServerError(f"{url} did not answer JSON ({e})") from None
            if attempt < retries:
                self.log(f"{url}: {why}; retrying in {delay:.1f}s "
                         f"({attempt + 1}/{retries})")
                time.sleep(delay)
                delay *= 2
        raise ServerError(f"{url} failed after {retries + 1} attempt(s) ({why}). Is the "
                          f"server running and is --base-url right? (timeout {self.timeout}s)")

    def _post(self, path: str, body: dict, retries: int | None = None) -> dict:
        resp = self._request(path, body, retries)
        if not isinstance(resp, dict):
            raise ServerError(f"{self.base_url}/{path} answered {type(resp).__name__} JSON, not "
                              "an object: is --base-url an OpenAI-compatible API (ending in "
                              "/v1)?")
        return resp

    # -----------------------------------------------------------------------------------------
    def _echo(self, texts: list[str]) -> list[list[float]]:
        """Per text, the log-probabilities of its tokens (the first, unconditioned one as 0) as
        the server echoes them, the generated token left out."""
        body = {"model": self.model, "max_tokens": 1, "echo": True, "logprobs": 1,
                "temperature": 0}
        if self.list_prompts:
            try:
                # a refusal is not retried: the prompts go one by one instead
                choices = self._post("completions", {**body, "prompt": texts},
                                     retries=0).get("choices")
                if isinstance(choices, list) and len(choices) == len(texts):
                    choices = sorted(choices, key=lambda c: c.get("index", 0))
                    return [self._prompt_logprobs(c, None) for c in choices]
            except ServerUnreachable:
                raise
            except ServerError as e:
                self.log(f"the server refused a list of prompts ({str(e)[:120]}); sending one "
                         "prompt per request")
            self.list_prompts = False
        out = []
        for t in texts:
            resp = self._post("completions", {**body, "prompt": t})
            choices = resp.get("choices")
            if not isinstance(choices, list) or len(choices) != 1:
                raise _NoLogprobs(f"expected 1 choice, got {choices!r:.100}")
            usage = resp.get("usage") or {}
            out.append(self._prompt_logprobs(choices[0], usage.get("completion_tokens")))
        return out

    @staticmethod
    def _prompt_logprobs(choice: dict, generated: int | None) -> list[float]:
        lp = choice.get("logprobs") or {}
        tlp = lp.get("token_logprobs")
        if not isinstance(tlp, list) or not tlp:
            raise _NoLogprobs("the server returned no prompt log-probabilities")
        n = len(tlp) - (1 if generated is None else int(generated))
        return [0.0 if v is None else float(v) for v in tlp[:n]]

    def _logprob_scores(self, messages_list, options) -> np.ndarray:
        out = np.zeros((len(messages_list), len(options)), np.float64)
        for i, messages in enumerate(messages_list):
            prompt = self.chat.render(messages)
            echoes = self._echo([prompt] + [prompt + self.chat.answer(o) for o in options])
            base = echoes[0]
            for k, e in enumerate(echoes[1:]):
                if len(e) <= len(base):
                    raise _NoLogprobs(f"option {options[k]!r} added no tokens to the echo")
                if not np.allclose(e[:len(base)], base, atol=1e-3):
                    self.log(f"note: the prompt's tokens differ with option {options[k]!r} "
                             "after it (a token spans the boundary); its score is the "
                             "difference of the two sums")
                out[i, k] = sum(e) - sum(base)
        return out

    def _sample_scores(self, messages_list, options) -> np.ndarray:
        out = np.zeros((len(messages_list), len(options)), np.float64)
        empty = []
        for i, messages in enumerate(messages_list):
            counts = np.zeros(len(options))
            got = 0
            for _ in range(self.samples):  # a server that ignores n answers once a request
                resp = self._post("chat/completions", {
                    "model": self.model, "messages": messages, "n": self.samples - got,
                    "temperature": 1.0, "max_tokens": 24})
                choices = resp.get("choices")
                if not isinstance(choices, list) or not choices:
                    raise ServerError(f"{self.base_url}/chat/completions answered without "
                                      f"choices ({json.dumps(resp)[:200]})")
                for ch in choices[: self.samples - got]:
                    msg = ch.get("message") if isinstance(ch, dict) else None
                    k = parse_answer((msg or {}).get("content") or "", options)
                    self.answers += 1
                    got += 1
                    if k is None:
                        self.unparsed_answers += 1
                    else:
                        counts[k] += 1
                if got >= self.samples:
                    break
            if counts.sum() == 0:
                empty.append(i)
                continue
            with np.errstate(divide="ignore"):
                out[i] = np.log(counts / counts.sum())
        if empty:
            raise ServerError(
                f"{len(empty)} of {len(messages_list)} states got no answer naming an option "
                f"({self.unparsed_answers} of {self.answers} answers so far named none): a "
                "table from these answers would be made up. Check that the server serves a "
                "chat model that follows the prompt (or raise --samples)")
        return out

    def __call__(self, messages_list, options) -> np.ndarray:
        if self.mode in ("auto", "logprobs") and self.used_mode in (None, "logprobs"):
            try:
                s = self._logprob_scores(messages_list, options)
                self.used_mode = "logprobs"
                return s
            except ServerUnreachable:
                raise
            except (_NoLogprobs, ServerError) as e:
                if self.mode == "logprobs":
                    raise ServerError(f"{self.base_url} cannot score options by log-probability "
                                      f"({e}); use --openai-mode sample") from None
                self.log(f"no prompt log-probabilities ({e}); sampling {self.samples} answers "
                         "per state instead")
        self.used_mode = "sample"
        s = self._sample_scores(messages_list, options)
        if self.answers and self.unparsed_answers > self.max_unparsed * self.answers:
            raise ServerError(
                f"{self.unparsed_answers} of {self.answers} answers named no option (more than "
                f"{self.max_unparsed:.0%}): the model does not follow the prompt, and a table "
                "from the rest would say little. Use another model or prompt")
        if self.unparsed_answers:
            self.log(f"{self.unparsed_answers} of {self.answers} answers named no option")
        return np.where(np.isfinite(s), s, -math.inf)


def server_chat_format(base_url: str, model: str, timeout: float = 10.0) -> ChatFormat | None:
    """The served model's chat template where the server tells it: llama.cpp's `/props`, or a
    model id that is a local model file or alias (llama-cpp-python names models by their path);
    None if neither."""
    root = base_url.rstrip("/").removesuffix("/v1")
    probe = OpenAIScorer(root, model, timeout=timeout, retries=0)
    try:
        props = probe._request("props")
        if isinstance(props, dict) and props.get("chat_template"):
            return ChatFormat.from_jinja(props["chat_template"], f"server:{root}/props",
                                         props.get("bos_token") or "",
                                         props.get("eos_token") or "")
    except ServerError:
        pass
    from .loading import ALIASES
    if model in ALIASES or (model.endswith(".gguf") and os.path.isfile(model)):
        return ChatFormat.from_model(model)
    return None
