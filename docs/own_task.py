"""Your own task for the LLM teacher: `python docs/own_task.py [--train]`.

A task is an environment plus, for guidance, a `Guidance`: an abstraction of the observation
into a few states, a text per state (what the language model reads), the options (skills) and,
optionally, a hand-written oracle. Here: MiniGrid's DoorKey world with an abstraction of our
own (4 states instead of the family's 60) over five of the library's skills.
"""

import sys

import jax.numpy as jnp

from jaxrl3m import envs
from jaxrl3m.core.evaluation import evaluate
from jaxrl3m.envs import DoorKeyEnv, Guidance
from jaxrl3m.envs.types import DOOR, KEY
from jaxrl3m.teacher.options import oracle_table
from jaxrl3m.teacher.prompt import load_prompt
from jaxrl3m.teacher.teacher import Teacher, reachable_states, teacher_logits

TASK = "MyDoorKey"


# 1. The abstraction: a pure, jittable function of ONE observation (the remembered map and the
#    agent's hands: only what the agent has seen), returning an index.
def abstract_state(obs):
    tag = obs.grid[..., 0]
    carrying = obs.carrying[0] == KEY
    next_thing_seen = jnp.where(carrying, (tag == DOOR).any(), (tag == KEY).any())
    return (2 * carrying + next_thing_seen).astype(jnp.int32)


# 2. A text per state, the options (the skills' names: jaxrl3m.teacher.skills.SKILLS), and what
#    an expert would do in each state (optional; the oracle table, tests, agreement reports).
TEXTS = ("You carry nothing and have not seen the key.", "You carry nothing and see the key.",
         "You carry the key and have not seen the door.", "You carry the key and see the door.")
OPTIONS = ("explore", "go to the key", "pick up the key", "go to the door", "open the door")


def oracle(i: int) -> tuple[str, ...]:
    return (("explore",), ("go to the key", "pick up the key"), ("explore",),
            ("go to the door", "open the door"))[i]


# 3. Register: the environment class (a dataclass whose fields are make()'s keywords), the
#    fields the name fixes, and the guidance.
envs.register(TASK, DoorKeyEnv, fixed=dict(n_keys=1, n_lava=0), replace=True, guidance=Guidance(
    name="my-doorkey", version=1, num_states=4, abstract_state=abstract_state,
    describe=TEXTS.__getitem__, options=OPTIONS, oracle=oracle,
    description="An agent must find a key, pick it up and open a locked door.",
    examples=({"state": 0, "answer": "explore"},)))


def main(train: bool = False) -> None:
    # 4. The teacher acting alone, on layouts training never draws (the oracle table).
    env = envs.make(TASK, layouts="heldout")
    teacher = Teacher.create(TASK, oracle_table(TASK))
    ev = evaluate(env, teacher_logits, teacher, seeds=1, episodes=500, batched=False)
    print(f"{TASK}: the oracle teacher alone succeeds in {ev['success_mean']:.3f} of 500 "
          f"held-out episodes; reachable abstract states {reachable_states(TASK)}")
    # 5. What a language model is asked in state 1 (precompute_priors sends this; the jax and
    #    openai backends score each option's text after it).
    messages = load_prompt(task=TASK).messages(TASK, list(OPTIONS), TEXTS[1])
    print("prompt:", " | ".join(m["content"] for m in messages))
    # 6. Guided PPO, from Python (the CLI's presets name tasks registered in their process):
    #    jaxrl3m.precompute_priors.main(["--task", TASK, "--backend", "jax", "--model",
    #    "smollm2", "--out", "my-table.json"]) writes a table; prior=my-table.json reads it.
    if train:
        from jaxrl3m import train as train_cli
        train_cli.main(["guided", f"task={TASK}", "prior=oracle", "total_steps=200000",
                        "name=my-doorkey"])


if __name__ == "__main__":
    main(train="--train" in sys.argv)
