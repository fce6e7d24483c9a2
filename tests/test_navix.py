"""NAVIX both ways: jaxrl3m's tasks through `navix.make` (NAVIX's conventions, NAVIX's own PPO
agent) step as `jaxrl3m.envs.make` does; NAVIX's tasks through jaxrl3m's trainer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import navix as nx
import numpy as np
import pytest

from jaxrl3m import envs
from jaxrl3m.core.config import ConfigError
from jaxrl3m.envs.navix_env import REGISTERED, navix_observation, observation_array


# Every registered id is one `NavixTask.of(task)`: the DoorKey family and the two-room task
# with every object kind (Unlock and UnlockPickup are the same class with fewer objects).
@pytest.mark.parametrize("navix_id", [i for i in REGISTERED
                                      if i not in ("JaxRL3M-Unlock-v0", "JaxRL3M-UnlockPickup-v0")])
def test_registered_tasks_step_as_ours(navix_id):
    """Random actions in 4 environments for 200 steps (several episodes each, horizon 30):
    NAVIX's deferred autoreset inserts one reset step after each episode and ignores its
    action; with those steps removed, rewards, ends, observations and states are ours."""
    ours = envs.make(REGISTERED[navix_id], max_steps=30)
    theirs = nx.make(navix_id, max_steps=30)
    assert isinstance(theirs, nx.Environment) and theirs.max_steps == 30
    n, t = 4, 200
    keys = jax.random.split(jax.random.key(1), n)
    actions = jax.random.randint(jax.random.key(2), (t, n), 0, 7)

    def navix_run(keys, actions):
        def body(ts, a):
            nxt = jax.vmap(theirs.step)(ts, a)
            return nxt, (ts.step_type > 0, a, nxt)
        return jax.lax.scan(body, jax.vmap(theirs.reset)(keys), actions)[1]

    was_done, used, nts = jax.jit(navix_run)(keys, actions)
    was_done, used = np.asarray(was_done), np.asarray(used)
    # jaxrl3m's env gets, per environment, the actions NAVIX applied (padded to t steps)
    order = np.argsort(was_done, axis=0, kind="stable")  # applied steps first, in order
    acts = np.take_along_axis(used, order, axis=0)

    def our_run(key, acts):
        def body(st, a):
            ts = ours.step(st, a)
            return ts.state, ts
        return jax.lax.scan(body, ours.reset(key).state, acts)[1]

    ots_all = jax.jit(jax.vmap(our_run, in_axes=(0, 1), out_axes=1))(keys, jnp.asarray(acts))
    window = jax.vmap(jax.vmap(lambda o: observation_array(o, "window")))
    final_all, first_all = window(ots_all.final_obs), window(ots_all.obs)
    for e in range(n):
        steps = ~was_done[:, e]  # the steps that applied an action
        k = int(steps.sum())
        ots = jax.tree.map(lambda x: np.asarray(x)[:k, e], ots_all.replace(state=None))
        sel = lambda x: np.asarray(x)[steps, e]  # noqa: E731
        np.testing.assert_allclose(sel(nts.reward), ots.reward, atol=1e-6)
        assert (sel(nts.step_type) == 2).tolist() == ots.terminated.tolist()
        assert (sel(nts.step_type) == 1).tolist() == ots.truncated.tolist()
        done = ots.terminated | ots.truncated
        assert done.sum() >= 2  # episodes ended, so resets were compared too
        np.testing.assert_array_equal(sel(nts.observation), np.asarray(final_all)[:k, e])
        # after a reset step NAVIX shows the next episode's start: jaxrl3m's obs after the end
        resets = np.flatnonzero(was_done[:, e])
        assert len(resets) == done.sum() - int(bool(done[-1]))
        np.testing.assert_array_equal(np.asarray(nts.observation)[resets, e],
                                      np.asarray(first_all)[:k, e][done][:len(resets)])
        assert (np.asarray(nts.t)[resets, e] == 0).all()
    # NAVIX's episodic return bookkeeping
    ended = np.asarray(nts.step_type) > 0
    np.testing.assert_allclose(np.asarray(nts.info["return"])[ended],
                               np.asarray(nts.reward)[ended] + 0.0, atol=1e-6)


def test_navix_ppo_runs_on_our_task():
    """NAVIX's own PPO agent, unchanged, trains on a registered jaxrl3m task."""
    from navix.agents import PPO, ActorCritic, PPOHparams
    env = nx.make("JaxRL3M-DoorKey-v0", flatten=True)
    assert env.observation_space.shape == (11 * 11 * 3,)
    agent = PPO(hparams=PPOHparams(budget=2 * 16 * 8, num_envs=16, num_steps=8,
                                   num_minibatches=2), network=ActorCritic(action_dim=7), env=env)
    _, logs = jax.jit(agent.train)(jax.random.key(0))
    assert logs["agent/train/returns"].shape == (2, 8, 16)
    assert np.isfinite(np.asarray(logs["agent/diagnostics/total_loss"])).all()


def test_navix_task_through_our_trainer(tmp_path):
    from jaxrl3m.train import main
    assert main(["ppo", "task=Navix-Empty-5x5-v0", "seeds=2", "num_envs=8", "num_steps=8",
                 "total_steps=128", "hidden=[16]", "eval_episodes=0", "eval_every=0", f"runs_dir={tmp_path}",
                 "name=nav", "--no-progress"]) == 0
    import csv
    rows = list(csv.DictReader(open(tmp_path / "nav" / "metrics.csv")))
    assert len(rows) == 4 and all(np.isfinite(float(r["loss"])) for r in rows)
    # NAVIX's state seen as jaxrl3m's Observation: walls around, the goal, the agent's pose
    ts = envs.make("Navix-Empty-5x5-v0").reset(jax.random.key(0))
    grid = np.asarray(ts.obs.grid)
    assert (grid[0, :, 0] == 2).all() and grid[3, 3, 0] == 8
    assert ts.obs.agent_pos.tolist() == [1, 1] and ts.obs.carrying.tolist() == [1, 0, 0]


def test_navix_pocket_is_our_carrying():
    """Carrying NAVIX's key (picked up in DoorKey-5x5) shows as the key's encoding."""
    env = nx.make("Navix-DoorKey-5x5-v0")
    ts = env.reset(jax.random.key(0))
    key = ts.state.entities["key"]
    held = ts.state.replace(entities={**ts.state.entities, "player": ts.state.entities[
        "player"].replace(pocket=key.id)})
    obs = navix_observation(held)
    assert obs.carrying.tolist() == [5, int(key.colour[0]), 0]


def test_navix_bad_input():
    with pytest.raises(ValueError, match="Navix-DoorKey-5x5-v0"):
        envs.make("Navix-DoorKey-5x5-v1")
    from jaxrl3m.runner.runs import load_config, setup
    c, run = load_config("ppo", {"task": "Navix-Empty-5x5-v0", "prior": "oracle"})
    with pytest.raises(ConfigError, match="no abstract states"):
        setup(c, run)
    with pytest.raises(ValueError, match="unknown observation"):
        nx.make("JaxRL3M-DoorKey-v0", observation="pixels")
