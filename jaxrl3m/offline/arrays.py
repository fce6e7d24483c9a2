"""Datasets on the device, ready for gradient steps: `OfflineData` (transitions with the
network's input codes and the prior's log-probabilities per observation, for CQL and BC) and
`DTData` (context windows with returns-to-go, for the Decision Transformer). Batches are drawn
from the first `size` transitions, so one compiled program serves every nested subset of a
dataset ordered by its subset permutation."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ..nets import Network
from ..teacher.teacher import Prior
from .dataset import decode_obs


class OfflineData(struct.PyTreeNode):
    """A dataset on the device, ready for gradient steps (`offline_data`).

    Observation rows `[O]`: the network's input codes and the prior's log-probabilities;
    transition rows `[M]`. Batches are drawn from the first `size` transitions, so one compiled
    program serves every nested subset of a dataset ordered by its subset permutation (and
    datasets padded to one capacity can be stacked and vmapped).
    """

    cells: jax.Array  # i16[O, C]
    carried: jax.Array  # i16[O]
    logp: jax.Array  # f32[O, A]: log p(.|s) of the prior (zeros without one)
    obs_index: jax.Array  # i32[M]: the transition's observation (the next one is + 1)
    action: jax.Array  # i32[M]
    reward: jax.Array  # f32[M]
    terminated: jax.Array  # f32[M]
    size: jax.Array  # i32[]: transitions to sample from


def offline_data(ds: Any, net: Network, prior: Prior | None, floor: float = 0.0,
                 transitions: int | None = None, capacity: tuple[int, int] | None = None,
                 chunk: int = 8192) -> OfflineData:
    """`ds` (`jaxrl3m.offline.dataset.Dataset`) on the device: codes and prior log-probabilities
    of every observation (in jitted chunks), transitions. `transitions`: sample only from the
    first that many (default all). `capacity = (O, M)`: pad the arrays to these sizes."""
    o_count, m_count = ds["obs_grid"].shape[0], ds.num_transitions
    o_cap, m_cap = capacity or (o_count, m_count)
    if o_cap < o_count or m_cap < m_count:
        raise ValueError(f"capacity {capacity} is smaller than the dataset ({o_count}, {m_count})")
    cells, carried, logp = [], [], []
    fn = _features_fn(net, prior is not None)
    for start in range(0, o_count, chunk):
        sl = slice(start, min(start + chunk, o_count))
        part = {k: ds[k][sl] for k in ("obs_grid", "obs_pose", "obs_carrying")}
        n = sl.stop - sl.start
        pad = {k: np.concatenate([v, np.zeros((chunk - n, *v.shape[1:]), v.dtype)])
               for k, v in part.items()}  # one shape: one compiled program
        c, cr, lp = jax.device_get(fn(pad, prior, jnp.float32(floor)))
        cells.append(c[:n])
        carried.append(cr[:n])
        logp.append(lp[:n])

    def padded(parts, rows):
        a = np.concatenate(parts)
        return np.concatenate([a, np.zeros((rows - len(a), *a.shape[1:]), a.dtype)])

    m = m_count if transitions is None else transitions
    return OfflineData(
        cells=jnp.asarray(padded(cells, o_cap)), carried=jnp.asarray(padded(carried, o_cap)),
        logp=jnp.asarray(padded(logp, o_cap)),
        obs_index=jnp.asarray(padded([ds.obs_index], m_cap)),
        action=jnp.asarray(padded([ds["action"].astype(np.int32)], m_cap)),
        reward=jnp.asarray(padded([ds["reward"].astype(np.float32)], m_cap)),
        terminated=jnp.asarray(padded([ds["terminated"].astype(np.float32)], m_cap)),
        size=jnp.asarray(m, jnp.int32))


_FEATURES: dict = {}


def _features_fn(net: Network, guided: bool):
    if (net, guided) not in _FEATURES:
        def features(part, prior, floor):
            obs = decode_obs(part["obs_grid"], part["obs_pose"], part["obs_carrying"])
            cells, carried = net.encode(obs)
            logp = prior.log_probs(obs, floor) if guided else jnp.zeros(
                (obs.agent_dir.shape[0], net.num_actions))
            return cells, carried, logp  # int16 codes (nets.encoders.CODE_DTYPE)
        _FEATURES[(net, guided)] = jax.jit(features)
    return _FEATURES[(net, guided)]


class DTData(struct.PyTreeNode):
    """A dataset on the device for context windows (`DT.prepare`)."""

    cells: jax.Array  # i16[O, C]
    carried: jax.Array  # i16[O]
    obs_index: jax.Array  # i32[M]
    action: jax.Array  # i32[M]
    rtg: jax.Array  # f32[M]: the return from this step to the episode's end
    timestep: jax.Array  # i32[M]: step within the episode
    episode_end: jax.Array  # i32[M]: the transition index after the episode's last
    size: jax.Array  # i32[]: window starts are drawn from the first `size` transitions
    target: jax.Array  # f32[]: evaluation's target return


def episode_arrays(ds: Any) -> dict[str, np.ndarray]:
    """Per transition: return-to-go, timestep, end of its episode (numpy)."""
    lengths = ds["episode_length"].astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    episode = np.repeat(np.arange(len(lengths)), lengths)
    end = starts[episode] + lengths[episode]
    reward = ds["reward"].astype(np.float64)
    csum = np.concatenate([[0.0], np.cumsum(reward)])
    idx = np.arange(len(episode))
    return {"rtg": (csum[end] - csum[idx]).astype(np.float32),
            "timestep": (idx - starts[episode]).astype(np.int32),
            "episode_end": end.astype(np.int32)}
