"""Prompts that turn an abstract state's text `describe(i)` into a question for a language model.

A prompt is a small YAML-able record (`--prompt FILE` overrides any field of the default):

    system: "...{task}...{options}..."     # the task description and the option list
    user: "...{state}..."                  # one abstract state
    tasks: {DoorKey: "...", ...}           # {task} per task
    examples: [{state: 0, answer: explore}, ...]   # worked examples, shown as earlier turns
    permutations: 4      # option orders averaged over (cyclic shifts), against position bias
    calibrate: false     # subtract the scores of a content-free state ("N/A")
    temperature: 1.0     # probs = softmax(scores / temperature)

Scores of an option are the log-probability of its full text followed by the chat template's
end-of-turn marker (so "go to the key" is not favoured as a prefix of a longer option).
"""

from __future__ import annotations

import dataclasses
from ..errors import did_you_mean
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from .. import envs
from ..envs.abstraction import DESCRIPTIONS, EXAMPLES

CONTENT_FREE = "N/A"

DEFAULT_TASKS = dict(DESCRIPTIONS)
"""The DoorKey family's task descriptions (`jaxrl3m.envs.abstraction.DESCRIPTIONS`); another
task's comes from its guidance (`Guidance.description`) unless a prompt file's `tasks` has it."""


@dataclasses.dataclass(frozen=True)
class Prompt:
    system: str = ("You are an expert who guides an agent in a grid world. {task}\n"
                   "At each moment the agent can do one of these things: {options}.\n"
                   "Answer with exactly one of them and nothing else.")
    user: str = "{state} What should the agent do next?"
    tasks: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_TASKS))
    examples: tuple = ()  # the default prompt uses DEFAULT_EXAMPLES (see load_prompt)
    permutations: int = 4
    calibrate: bool = False
    temperature: float = 1.0

    def check(self) -> None:
        if "{state}" not in self.user:
            raise ValueError("prompt field 'user' must contain {state}")
        if self.permutations < 1:
            raise ValueError(f"prompt field 'permutations' must be >= 1, got {self.permutations}")
        if not self.temperature > 0:
            raise ValueError(f"prompt field 'temperature' must be > 0, got {self.temperature}")
        for ex in self.examples:
            if set(ex) != {"state", "answer"}:
                raise ValueError(f"each prompt example needs exactly 'state' and 'answer', got "
                                 f"{sorted(ex)}")

    def sha256(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()

    def example_states(self) -> set[int]:
        return {int(ex["state"]) for ex in self.examples if isinstance(ex["state"], int)}

    def messages(self, task: str, options: list[str], state_text: str) -> list[dict[str, str]]:
        """The chat messages for one state, options listed in the given order."""
        guide = envs.guidance(task)
        description = self.tasks.get(task) or guide.description
        if not description:
            raise ValueError(f"the prompt has no description for task {task!r} (field 'tasks' "
                             f"has {sorted(self.tasks)}, and its Guidance.description is empty)")
        system = self.system.format(task=description, options=", ".join(options))
        msgs = [{"role": "system", "content": system}]
        for ex in self.examples:
            text = (guide.describe(ex["state"]) if isinstance(ex["state"], int)
                    else str(ex["state"]))
            msgs.append({"role": "user", "content": self.user.format(state=text)})
            msgs.append({"role": "assistant", "content": ex["answer"]})
        msgs.append({"role": "user", "content": self.user.format(state=state_text)})
        return msgs


def option_orders(n_options: int, permutations: int) -> list[list[int]]:
    """The option orders to average over: identity, then cyclic shifts spread over the options."""
    n = min(permutations, n_options)
    shifts = sorted({round(i * n_options / n) % n_options for i in range(n)})
    return [[(j + s) % n_options for j in range(n_options)] for s in shifts]


DEFAULT_EXAMPLES = EXAMPLES
"""The DoorKey family's worked examples, shown before the question (indices of abstract states;
`jaxrl3m.envs.abstraction.EXAMPLES`)."""


def load_prompt(path: str | Path | None = None, task: str | None = None,
                **overrides: Any) -> Prompt:
    """The default prompt, with fields from a YAML file and keyword overrides on top. Its worked
    examples are `task`'s (`Guidance.examples`; the DoorKey family's without a task), and a
    `task` outside the default `tasks` is added there with its `Guidance.description`."""
    # Defaults measured best with SmolLM2 (bench/prompt_ablation.py): worked examples, 4 orders.
    examples = envs.guidance(task).examples if task is not None else DEFAULT_EXAMPLES
    fields: dict[str, Any] = {"examples": list(examples)}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ValueError(f"prompt file {str(path)!r} does not exist") from None
        except yaml.YAMLError as e:
            raise ValueError(f"prompt file {str(path)!r} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"prompt file {str(path)!r} must be a mapping of prompt fields")
        fields.update(data)
    fields.update({k: v for k, v in overrides.items() if v is not None})
    valid = [f.name for f in dataclasses.fields(Prompt)]
    for key in fields:
        if key not in valid:
            raise ValueError(f"unknown prompt field {key!r}.{did_you_mean(key, valid)} Valid "
                             f"fields: {', '.join(valid)}")
    tasks = {**DEFAULT_TASKS, **fields.get("tasks", {})}
    if task is not None and task not in tasks and envs.guidance(task).description:
        # Recorded in the prompt (and its hash) that tables keep: what the model was told.
        tasks[task] = envs.guidance(task).description
    if tasks != DEFAULT_TASKS:
        fields["tasks"] = tasks
    if "examples" in fields:
        fields["examples"] = tuple(fields["examples"] or ())
    prompt = Prompt(**fields)
    prompt.check()
    return prompt
