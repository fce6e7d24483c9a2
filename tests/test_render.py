"""Pictures of episodes: RGB frames of recorded episodes, and the render command."""

from __future__ import annotations

import jax
import numpy as np

from jaxrl3m import render
from jaxrl3m.envs.render import RGB, render_rgb
from jaxrl3m.envs.types import KEY


def test_recorded_episodes_give_one_frame_per_state_deterministically():
    env, policy, params, teacher = render.source_policy("DoorKey-oracle")
    a = render.record(env, policy, params, jax.random.key(3), 3, teacher)
    b = render.record(env, policy, params, jax.random.key(3), 3, teacher)
    assert [e.length for e in a] == [e.length for e in b]
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea.grid, eb.grid)
        np.testing.assert_array_equal(ea.actions, eb.actions)
        assert ea.outcome == "success" and ea.reward > 0  # the oracle teacher solves DoorKey
        assert ea.grid.shape[0] == ea.length + 1 and ea.option_probs.shape[0] == ea.length + 1
        np.testing.assert_allclose(ea.option_probs.sum(1), 1.0, rtol=1e-5)
        fr = render.frames(ea, teacher.columns, env.view_size, tile=8)
        assert len(fr) == ea.length + 1
        h, w = ea.grid.shape[1:3]
        assert fr[0].shape[0] > h * 8 and fr[0].shape[1] == 2 * w * 8 + 4
        assert all(f.shape == fr[0].shape for f in fr)
    # One step moves the agent or turns it: consecutive states differ as the action says.
    e = a[0]
    for t in range(e.length):
        if int(e.actions[t]) in (0, 1):  # left, right: the same cell, another heading
            assert (e.agent_pos[t] == e.agent_pos[t + 1]).all()
            assert int(e.agent_dir[t + 1]) == (int(e.agent_dir[t]) + (1 if e.actions[t] else 3)) % 4


def test_a_key_is_drawn_in_its_colour_and_unseen_cells_dark():
    grid = np.zeros((3, 3, 3), np.uint8)
    grid[1, 1] = (KEY, 2, 0)  # a blue key; the rest never seen
    img = render_rgb(grid, tile=16)
    cell = img[16:32, 16:32].reshape(-1, 3)
    assert (cell == RGB[2]).all(1).sum() > 20
    assert (img[:16, :16] == (20, 20, 60)).all()


def test_the_render_command_writes_a_gif(tmp_path, capsys):
    from PIL import Image
    out = tmp_path / "e.gif"
    assert render.main(["DoorKey-oracle", "--episodes", "2", "--out", str(out), "--tile",
                        "8"]) == 0
    said = capsys.readouterr().out
    im = Image.open(out)
    assert im.n_frames == int(said.split(" frames")[0].split()[-1])
    assert render.main(["DoorKey-oracle", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
