"""jaxrl3m's plain PPO against the fastest JAX peers, end to end, side by side in one run.

    pip install -e '.[peers]'                # rejax 0.1.3 and xminigrid 0.9.3 beside our pins
    python bench/peers.py                    # both settings, 2 rounds, into bench/peers.json/.md
    python bench/peers.py --settings doorkey --rounds 1 --agents ours rejax

Peers (PyPI): rejax's `PPO` (through its `navix2gymnax` compat, as NAVIX's repository runs it)
and NAVIX's own `navix.agents.PPO`. Settings, the same task, hyperparameters, seeds and budget
for everyone:

- `navix-8x8`: NAVIX's `Navix-DoorKey-8x8-v0` for the peers (MiniGrid's reward and horizon,
  the whole grid as observation, flat), jaxrl3m's `DoorKey-8x8` (the same NAVIX state behind
  jaxrl3m's interface) for ours, with the rejax configuration that NAVIX
  publishes (`baselines/rejax/configs/navix_doorkey_8x8_1m.yaml`): 16 envs x 128 steps, 2
  epochs x 1 minibatch, lr 3e-4, gamma 0.95, GAE lambda 0.9, clip 0.2, max_grad_norm 1, tanh
  MLP; 3 seeds vmapped x 1,048,576 steps each.
- `doorkey`: jaxrl3m's `DoorKey`, the peers through `navix.make("JaxRL3M-DoorKey-v0",
  flatten=True)` (the encoder's 11 x 11 x 3 window, flat), with the hyperparameters of our `ppo`
  preset (64 envs x 32 steps, 4 epochs x 4 minibatches, lr 3e-3, gamma 0.99, lambda 0.95, max
  grad norm 0.5); 3 seeds x 262,144 steps.

Ours reads its own input in both (the `ppo` preset's network: a 7 x 7 egocentric window of the
remembered map, embedded; an 11 x 11 window before issue 25), the peers the observation NAVIX
gives them: the input is each agent's own design, the task and budget are shared.

Every measurement is one child process, timed from its start to its end (imports, environment
and network set-up, compilation, training, and for ours the run folder with its metrics,
checkpoint and the held-out evaluation of 1000 episodes per seed; rejax evaluates as its config
says). Ours is the command a user types, `python -m jaxrl3m.train ppo ...`, with the persistent
compilation cache off (`ours`: a first run) and on (`ours-warm`: the same command again).
Training steps/s are the peers' `train` call and our chunks, compile apart. Agents alternate
within each round; the best of the rounds is kept. Writes bench/peers.json and bench/peers.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
from benchlib import ROOT

SETTINGS = {
    "navix-8x8": dict(
        peer_env="Navix-DoorKey-8x8-v0", ours_task="DoorKey-8x8", seeds=3, steps=1_048_576,
        hp=dict(num_envs=16, num_steps=128, num_epochs=2, num_minibatches=1, lr=3e-4,
                gamma=0.95, gae_lambda=0.9, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5,
                max_grad_norm=1.0), eval_freq=262_144),
    "doorkey": dict(
        peer_env="JaxRL3M-DoorKey-v0", ours_task="DoorKey", seeds=3, steps=262_144,
        hp=dict(num_envs=64, num_steps=32, num_epochs=4, num_minibatches=4, lr=3e-3,
                gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5,
                max_grad_norm=0.5), eval_freq=262_144),
}
AGENTS = ("ours", "ours-warm", "rejax", "navix")


# ---------------------------------------------------------------------------------------------
# Children: one agent, one setting; print one JSON line
# ---------------------------------------------------------------------------------------------
def peer_env_kwargs(s: dict) -> dict:
    """`navix.make` keywords: our DoorKey flat; NAVIX's DoorKey with MiniGrid's reward and
    horizon (`penalty_coeff = 0.9`, `10 N^2` steps), as jaxrl3m's `DoorKey-NxN` has them."""
    if s["peer_env"].startswith("JaxRL3M"):
        return {"flatten": True}
    n = int(s["peer_env"].split("-")[2].split("x")[0])
    return {"max_steps": 10 * n * n, "penalty_coeff": 0.9}


def child_rejax(s: dict) -> dict:
    import jax
    import rejax
    import jaxrl3m.envs  # noqa: F401  (registers JaxRL3M-* in NAVIX)
    hp = s["hp"]
    algo = rejax.PPO.create(
        env=f"navix/{s['peer_env']}", env_params=peer_env_kwargs(s),
        agent_kwargs={"activation": "tanh"}, num_envs=hp["num_envs"],
        num_steps=hp["num_steps"], num_epochs=hp["num_epochs"],
        num_minibatches=hp["num_minibatches"], learning_rate=hp["lr"],
        max_grad_norm=hp["max_grad_norm"], total_timesteps=s["steps"],
        eval_freq=s["eval_freq"], gamma=hp["gamma"], gae_lambda=hp["gae_lambda"],
        clip_eps=hp["clip_eps"], ent_coef=hp["ent_coef"], vf_coef=hp["vf_coef"],
        normalize_observations=False)
    keys = jax.random.split(jax.random.key(0), s["seeds"])
    train = jax.jit(jax.vmap(algo.train))
    t0 = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, (lengths, returns) = jax.block_until_ready(compiled(keys))
    train_s = time.perf_counter() - t0
    return {"compile_s": compile_s, "train_s": train_s,
            "final_return": float(returns[:, -1].mean())}


def child_navix(s: dict) -> dict:
    import jax
    import jax.numpy as jnp
    import navix as nx
    from navix.agents import PPO, ActorCritic, PPOHparams
    import jaxrl3m.envs  # noqa: F401
    hp = s["hp"]
    kwargs = peer_env_kwargs(s)
    if not s["peer_env"].startswith("JaxRL3M"):  # the whole grid, flat (rejax flattens it too)
        n = int(s["peer_env"].split("-")[2].split("x")[0])
        kwargs.update(observation_fn=lambda st: nx.observations.symbolic(st).reshape(-1),
                      observation_space=nx.spaces.Discrete.create(256, (n * n * 3,), jnp.uint8))
    env = nx.make(s["peer_env"], **kwargs)
    agent = PPO(hparams=PPOHparams(
        budget=s["steps"], num_envs=hp["num_envs"], num_steps=hp["num_steps"],
        num_epochs=hp["num_epochs"], num_minibatches=hp["num_minibatches"], lr=hp["lr"],
        gae_lambda=hp["gae_lambda"], clip_eps=hp["clip_eps"], ent_coef=hp["ent_coef"],
        vf_coef=hp["vf_coef"], max_grad_norm=hp["max_grad_norm"]),
        network=ActorCritic(action_dim=len(env.action_set)), env=env)
    keys = jax.random.split(jax.random.key(0), s["seeds"])
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(agent.train)).lower(keys).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(keys))
    return {"compile_s": compile_s, "train_s": time.perf_counter() - t0}


def ours_command(s: dict, runs_dir: str, name: str) -> list[str]:
    hp = s["hp"]
    return [sys.executable, "-m", "jaxrl3m.train", "ppo", f"task={s['ours_task']}",
            f"num_envs={hp['num_envs']}", f"num_steps={hp['num_steps']}",
            f"update_epochs={hp['num_epochs']}", f"num_minibatches={hp['num_minibatches']}",
            f"lr={hp['lr']}", f"gamma={hp['gamma']}", f"gae_lambda={hp['gae_lambda']}",
            f"clip_eps={hp['clip_eps']}", f"ent_coef={hp['ent_coef']}",
            f"vf_coef={hp['vf_coef']}", f"max_grad_norm={hp['max_grad_norm']}",
            f"total_steps={s['steps']}", f"runs_dir={runs_dir}", f"name={name}",
            "--seeds", str(s["seeds"]), "--no-progress"]


def measure(agent: str, setting: str, work: Path, i: int) -> dict:
    """One child process; its wall time from start to end, and its own figures."""
    s = SETTINGS[setting]
    env = dict(os.environ)
    if agent.startswith("ours"):
        cache = work / f"xla-{setting}"
        env["JAXRL3M_COMPILE_CACHE"] = str(cache) if agent == "ours-warm" else "off"
        if agent == "ours-warm" and not cache.exists():  # fill the cache once, untimed
            subprocess.run(ours_command(s, str(work), f"fill-{setting}"), env=env, cwd=ROOT,
                           check=True, capture_output=True)
        cmd = ours_command(s, str(work), f"{agent}-{setting}-{i}")
    else:
        cmd = [sys.executable, __file__, "--child", agent, setting]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"{agent} on {setting} failed:\n{p.stderr[-3000:]}")
    total = s["steps"] * s["seeds"]
    if agent.startswith("ours"):
        summary = json.loads((work / f"{agent}-{setting}-{i}" / "summary.json").read_text())
        return {"wall_s": wall, "compile_s": summary["compile_s"],
                "train_steps_per_s": summary["steps_per_second"],
                "eval_success": summary["eval"]["success_mean"]}
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "compile_s": out["compile_s"],
            "train_steps_per_s": total / out["train_s"]}


def table(results: dict) -> str:
    lines = ["| setting | agent | end to end s (steps/s) | compile s | training steps/s | "
             "ours / agent, end to end | ours / agent, training |",
             "|---|---|---|---|---|---|---|"]
    for setting, rows in results.items():
        s = SETTINGS[setting]
        total = s["steps"] * s["seeds"]
        ours = rows.get("ours")
        for agent, r in rows.items():
            ratio = (f"{r['wall_s'] / ours['wall_s']:.2f}x" if ours else "",
                     f"{ours['train_steps_per_s'] / r['train_steps_per_s']:.2f}x" if ours else "")
            lines.append(f"| {setting} | {agent} | {r['wall_s']:.1f} ({total / r['wall_s']:,.0f})"
                         f" | {r['compile_s']:.1f} | {r['train_steps_per_s']:,.0f} | "
                         f"{ratio[0]} | {ratio[1]} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = benchlib.parser(__doc__, "peers.json")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds; best kept")
    p.add_argument("--steps", type=int, help="override every setting's budget per seed (tests)")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.steps:
        for s in SETTINGS.values():
            s["steps"] = s["eval_freq"] = args.steps
    if args.child:
        agent, setting = args.child
        print(json.dumps((child_rejax if agent == "rejax" else child_navix)(SETTINGS[setting])))
        return 0
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="jaxrl3m-peers-") as tmp:
        work = Path(tmp)
        for i in range(args.rounds):
            for setting in args.settings:
                for agent in args.agents:
                    r = measure(agent, setting, work, i)
                    print(f"round {i + 1}: {setting:10s} {agent:10s} end to end "
                          f"{r['wall_s']:6.1f} s, compile {r['compile_s']:5.1f} s, training "
                          f"{r['train_steps_per_s']:>9,.0f} steps/s", flush=True)
                    best = results.setdefault(setting, {}).get(agent)
                    if best is None or r["wall_s"] < best["wall_s"]:
                        results[setting][agent] = {**r, "train_steps_per_s": max(
                            r["train_steps_per_s"], (best or r)["train_steps_per_s"])}
                    else:
                        best["train_steps_per_s"] = max(best["train_steps_per_s"],
                                                        r["train_steps_per_s"])
    versions = {k: importlib.metadata.version(k) for k in ("jax", "navix", "rejax")}
    benchlib.save(args.out, {"versions": versions, "command": "python " + " ".join(sys.argv),
                             "settings": {k: SETTINGS[k] for k in results}, "results": results},
                  markdown=table(results))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
