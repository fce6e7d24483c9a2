"""Pictures of episodes: `python -m jaxrl3m.render RUN_DIR|PRESET --episodes 4 --out episodes.gif`.

    python -m jaxrl3m.render DoorKey-oracle --out doorkey.gif        # the teacher acts
    python -m jaxrl3m.render runs/DoorKey-oracle --episodes 2         # a trained policy acts
    python -m jaxrl3m.render LavaDoorKey-oracle --out lava.mp4        # needs imageio's ffmpeg

A run folder's policy (its newest checkpoint, seed `--seed-index`), or a preset's teacher (its
prior table's skills; a random policy for presets without one), plays `--episodes` episodes on
held-out layouts. They are recorded in one jitted call (the environment stepped without
autoreset until each episode ends), then drawn on the host: each frame shows the true state
with the agent's view shaded, the map the agent remembers beside it, and a caption with the
step, the action about to be taken and the teacher's top options with their probabilities.
A GIF is written with Pillow; `.mp4` needs imageio with its ffmpeg plugin.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .core.config import ConfigError
from .envs.types import mission_of


@dataclasses.dataclass
class Episode:
    """One recorded episode: `T + 1` states (the first and one after each of its `T` steps)."""

    grid: np.ndarray  # u8[T + 1, H, W, 3]: the true grid
    memory: np.ndarray  # u8[T + 1, H, W, 3]: what the agent remembers
    agent_pos: np.ndarray  # i32[T + 1, 2]
    agent_dir: np.ndarray  # i32[T + 1]
    actions: np.ndarray  # i32[T]
    option_probs: np.ndarray | None  # f32[T + 1, K]: the teacher's mixture weights per state
    reward: float
    outcome: str  # "success", "lava" (Fetch: "wrong object") or "time limit"
    mission: str = ""  # the mission in words ("fetch a red key"); "" for tasks without one

    @property
    def length(self) -> int:
        return len(self.actions)


def record(env: Any, policy: Any, params: Any, key: jax.Array, episodes: int,
           teacher: Any = None) -> list[Episode]:
    """Plays `episodes` episodes of `policy` (a collector policy: `policy(params, obs, key)`)
    in one jitted call and returns them cut at their ends."""
    def run(params, key):
        k_reset, k_act = jax.random.split(key)
        first = jax.vmap(env.reset)(jax.random.split(k_reset, episodes))

        def body(carry, k):
            state, done = carry
            obs = jax.vmap(env.observe)(state)
            action, _ = policy(params, obs, k)
            nxt, reward, term, trunc = jax.vmap(env.transition)(state, action)
            nxt = jax.tree.map(lambda a, b: jnp.where(
                done.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), state, nxt)
            out = (nxt, action, jnp.where(done, 0.0, reward), term & ~done, trunc & ~done)
            return (nxt, done | term | trunc), out

        keys = jax.random.split(k_act, env.horizon)
        _, (states, actions, rewards, term, trunc) = jax.lax.scan(
            body, (first.state, jnp.zeros(episodes, bool)), keys)
        states = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first.state, states)
        probs = None
        if teacher is not None:
            obs = jax.vmap(jax.vmap(env.observe))(states)
            probs = teacher.table[jax.vmap(teacher.abstract_states)(obs)]
        drawn = (states.grid, states.memory, states.agent_pos, states.agent_dir)
        mission = mission_of(states)
        mission = jnp.zeros((episodes, 0), jnp.uint8) if mission is None else mission[0]
        return drawn, actions, rewards, term, trunc, probs, mission

    (grid, memory, pos, dirs), actions, rewards, term, trunc, probs, mission = jax.tree.map(
        np.asarray, jax.jit(run)(params, key))
    out = []
    for e in range(episodes):
        ended = np.flatnonzero(term[:, e] | trunc[:, e])
        t = int(ended[0]) + 1 if len(ended) else env.horizon
        pick = lambda a: a[: t + 1, e]  # noqa: E731
        outcome = ("time limit" if not term[t - 1, e] else
                   "success" if rewards[:t, e].sum() > 0 else
                   "wrong object" if mission.shape[1] else "lava")
        out.append(Episode(grid=pick(grid), memory=pick(memory), agent_pos=pick(pos),
                           agent_dir=pick(dirs),
                           actions=actions[:t, e],
                           option_probs=None if probs is None else pick(probs),
                           reward=float(rewards[:t, e].sum()), outcome=outcome,
                           mission=_mission_text(mission[e])))
    return out


def _mission_text(code: np.ndarray) -> str:
    """"fetch a red key" from a mission's `(tag, colour, 0)` code; "" without a mission."""
    from .envs.types import COLOUR_NAMES, TAG_NAMES
    if not len(code):
        return ""
    return f"fetch a {COLOUR_NAMES[int(code[1])]} {TAG_NAMES[int(code[0])]}"


def frames(ep: Episode, options: tuple[str, ...] = (), view_size: int | None = None,
           tile: int = 16, number: int = 0) -> list[np.ndarray]:
    """`T + 1` RGB frames of an episode: the true state (view shaded) | the remembered map,
    over a caption."""
    from PIL import Image, ImageDraw
    from .envs.render import render_rgb
    from .envs.types import ACTION_NAMES
    out = []
    for i in range(ep.length + 1):
        pos, d = ep.agent_pos[i], ep.agent_dir[i]
        view = (int(pos[0]), int(pos[1]), view_size) if view_size else None
        true = render_rgb(ep.grid[i], pos, d, tile, view)
        seen = render_rgb(ep.memory[i], pos, d, tile)
        gap = np.full((true.shape[0], tile // 2, 3), 255, np.uint8)
        top = np.concatenate([true, gap, seen], 1)
        lines = [f"episode {number + 1}, step {i}/{ep.length}: "
                 + (f"next action: {ACTION_NAMES[int(ep.actions[i])]}" if i < ep.length else
                    f"{ep.outcome}, return {ep.reward:.2f}")]
        if ep.mission:
            lines.append(f"mission: {ep.mission}")
        if ep.option_probs is not None and options:
            p = ep.option_probs[i]
            best = np.argsort(-p)[:2]
            lines.append("teacher: " + ", ".join(f"{options[k]} {p[k]:.2f}" for k in best))
        img = Image.new("RGB", (top.shape[1], top.shape[0] + 14 * len(lines) + 6), "white")
        img.paste(Image.fromarray(top), (0, 0))
        draw = ImageDraw.Draw(img)
        for j, line in enumerate(lines):
            draw.text((3, top.shape[0] + 3 + 14 * j), line, fill=(0, 0, 0))
        out.append(np.asarray(img))
    return out


def write_video(frames_: list[np.ndarray], path: Path, fps: float = 6.0) -> Path:
    """A GIF (Pillow) or, for `.mp4`, a video (imageio with ffmpeg), written atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    if path.suffix.lower() == ".mp4":
        try:
            import imageio.v2 as imageio
            imageio.mimwrite(tmp, frames_, fps=fps)
        except Exception as e:  # noqa: BLE001 - imageio without its ffmpeg plugin
            raise ConfigError(f"--out {path}: writing .mp4 needs imageio with ffmpeg (pip "
                              f"install imageio[ffmpeg]) ({type(e).__name__}: {e}); or write a "
                              ".gif") from None
    else:
        from PIL import Image
        h = max(f.shape[0] for f in frames_)
        w = max(f.shape[1] for f in frames_)
        imgs = [Image.fromarray(np.pad(f, ((0, h - f.shape[0]), (0, w - f.shape[1]), (0, 0)),
                                       constant_values=255)) for f in frames_]
        imgs[0].save(tmp, format="GIF", save_all=True, append_images=imgs[1:],
                     duration=int(1000 / fps), loop=0)
    tmp.replace(path)
    return path


def source_policy(source: str, seed_index: int = 0, greedy: bool = False):
    """`(env, policy, params, teacher or None)` of a run folder or a preset (the environment
    draws held-out layouts)."""
    from .core.collector import Random, Sample
    from .teacher.teacher import Teacher, resolve_prior, teacher_logits
    path = Path(source)
    if path.is_dir():
        from .runner.runs import restore_run
        algo_config, run, s, state, _ = restore_run(path)
        if not 0 <= seed_index < run.seeds:
            raise ConfigError(f"--seed-index {seed_index}: the run has {run.seeds} seed(s)")
        params = jax.tree.map(lambda x: x[seed_index], state.params)
        params = s.algo.evaluation_params(params, s.inputs)
        teacher = s.teacher
        if teacher is None and run.has_teacher and run.teacher == "prior":
            try:
                teacher = Teacher.create(algo_config.task,
                                         resolve_prior(run.prior, algo_config.task)[0])
            except ConfigError:
                teacher = None  # the table is gone: pictures without the teacher's options
        return s.algo.eval_env, s.algo.policy(greedy), params, teacher
    from .runner.runs import load_config
    algo_config, run = load_config(source, {})
    env = algo_config.make_env("heldout")
    if run.prior == "none":
        return env, Random(env.num_actions), None, None
    teacher = Teacher.create(algo_config.task, resolve_prior(run.prior, algo_config.task)[0])
    return env, Sample(teacher_logits, greedy), teacher, teacher


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jaxrl3m.render", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a run folder, or a preset's name (its teacher acts)")
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--out", default="episodes.gif", help=".gif, or .mp4 (imageio's ffmpeg)")
    p.add_argument("--seed", type=int, default=0, help="seed of the layouts and actions")
    p.add_argument("--seed-index", type=int, default=0, help="which of a run's seeds acts")
    p.add_argument("--greedy", action="store_true", help="act greedily")
    p.add_argument("--tile", type=int, default=16, help="pixels per cell")
    p.add_argument("--fps", type=float, default=6.0)
    args = p.parse_args(argv)
    try:
        from .core.io import check_output_file
        if args.episodes < 1 or args.tile < 4 or not args.fps > 0:
            raise ConfigError("--episodes must be >= 1, --tile >= 4 and --fps positive")
        check_output_file(args.out)
        env, policy, params, teacher = source_policy(args.source, args.seed_index, args.greedy)
        eps = record(env, policy, params, jax.random.key(args.seed), args.episodes, teacher)
        options = teacher.columns if teacher is not None else ()
        view = None if getattr(env, "fully_observed", True) else getattr(env, "view_size", None)
        all_frames = [f for i, ep in enumerate(eps)
                      for f in frames(ep, options, view, args.tile, i)]
        path = write_video(all_frames, Path(args.out), args.fps)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}: {len(eps)} episode(s), {len(all_frames)} frames ("
          + ", ".join(f"{ep.outcome} in {ep.length}" for ep in eps) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
