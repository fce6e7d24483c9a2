"""How many of Fetch's layouts (MiniGrid's generator, in distribution) cannot be solved: the
mission's object, or the agent, walled in by other objects in a corner. A breadth-first search
from the agent over the room's free cells; a layout is solvable when some object of the
mission's kind and colour has a reachable free neighbour.

    python bench/fetch_solvable.py [--layouts 100000] [--seed 11]
"""

from __future__ import annotations

import argparse
from collections import deque

import jax
import numpy as np

from jaxrl3m import envs

STEPS = ((0, 1), (1, 0), (0, -1), (-1, 0))


def solvable(pos, object_pos, object_tag, object_colour, mission, inner: int) -> bool:
    occupied = {tuple(p) for p in object_pos}
    seen, queue = {tuple(pos)}, deque([tuple(pos)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in STEPS:
            n = (r + dr, c + dc)
            if 1 <= n[0] <= inner and 1 <= n[1] <= inner and n not in occupied | seen:
                seen.add(n)
                queue.append(n)
    return any(t == mission[0] and col == mission[1]
               and any((p[0] + dr, p[1] + dc) in seen for dr, dc in STEPS)
               for p, t, col in zip(object_pos, object_tag, object_colour))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layouts", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args()
    env = envs.make("Fetch")
    lay = jax.tree.map(np.asarray, jax.jit(jax.vmap(env.sample_layout))(
        jax.random.split(jax.random.key(args.seed), args.layouts)))
    bad = sum(not solvable(lay.agent_pos[i], lay.object_pos[i], lay.object_tag[i],
                           lay.object_colour[i], lay.mission[i], env.size - 2)
              for i in range(args.layouts))
    print(f"Fetch: {bad} of {args.layouts:,} layouts unsolvable (1 in "
          f"{args.layouts / max(bad, 1):,.0f})")


if __name__ == "__main__":
    main()
