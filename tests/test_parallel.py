"""Many devices and many processes: the same run on 1 device, on 4 (forced host devices, seeds
and environments split) and in 2 processes (jax.distributed on loopback) gives the same result;
bad placements and an unreachable coordinator fail clearly and quickly.

The multi-device and multi-process runs happen in subprocesses (a process's device count is
fixed when JAX starts). One tiny PPO configuration serves all of them.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_RUN, TINY_RUN_CHUNK, TINY_RUN_UPDATES

from jaxrl3m import train as train_cli
from jaxrl3m.core import parallel
from jaxrl3m.core.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TINY, UPDATES, CHUNK = TINY_RUN, TINY_RUN_UPDATES, TINY_RUN_CHUNK
IGNORED = {"wall_s", "steps_per_second"}


def env_with(**extra) -> dict:
    env = dict(os.environ)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def assert_same_run(a: Path, b: Path, rtol: float = 1e-4) -> None:
    """Same metrics (to `rtol`: reductions are summed in another order on other devices) and
    the same held-out evaluation."""
    ra, rb = read_metrics(a), read_metrics(b)
    assert len(ra) == len(rb) == 2 * UPDATES  # 2 seeds
    for x, y in zip(ra, rb):
        for k in x:
            if k not in IGNORED:
                np.testing.assert_allclose(float(y[k]), float(x[k]), rtol=rtol, atol=1e-6,
                                           err_msg=f"{k} differs at {x['seed']}/{x['update']}")
    ea, eb = (json.loads((r / "eval.json").read_text()) for r in (a, b))
    assert ea["success"] == eb["success"] and np.allclose(ea["length"], eb["length"])


FOUR_DEVICES = textwrap.dedent("""
    import json, sys
    import jax
    from jaxrl3m.core import parallel
    from jaxrl3m.runner import driver
    from jaxrl3m.core.config import ConfigError
    from jaxrl3m.runner.runs import create_run, init_states, load_config, setup
    from jaxrl3m.train import main
    out = sys.argv[1]
    assert len(jax.devices()) == 4
    tiny, chunk = json.loads(sys.argv[2]), int(sys.argv[3])
    lowered = []  # the training chunks lowered (one program per run, whatever the placement)
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, _, fun_name="", **kw: lowered.append(fun_name)
        if event.endswith("jaxpr_to_mlir_module_duration") and fun_name == "jit(chunk)" else None)
    assert main(tiny + ["devices=4", f"runs_dir={out}", "name=d4"]) == 0
    chunks = {4: len(lowered)}
    # Where the state lives on 4 devices: 2 seeds x 2 environment halves (the run's own
    # compiled chunk).
    c, run = load_config(f"{out}/d4/config.yaml", {})
    s = setup(c, run)
    pl = driver.placement_of(s.algo, run)
    state = parallel.put(init_states(s.algo, run), pl)
    with parallel.using(pl):
        new, _ = driver.chunk_fn(s.algo, chunk, pl)(state, parallel.put(s.inputs, pl, False))
    specs = {"grid": tuple(new.env.state.grid.sharding.spec),
             "kernel": tuple(new.params["params"]["policy"]["kernel"].sharding.spec),
             "mesh": dict(pl.mesh.shape)}
    errors = []
    for seeds, envs, devices in ((3, 6, 4), (2, 8, 5)):
        try:
            parallel.place(seeds, envs, devices)
        except ConfigError as e:
            errors.append(str(e))
    try:
        parallel.place(2, None, 4)  # offline: nothing to split but seeds
    except ConfigError as e:
        errors.append(str(e))
    print("RESULT", json.dumps({"specs": specs, "errors": errors, "chunks": chunks}))
""")


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
    """The tiny run on 1 device (in this process: the suite's other tiny runs have compiled its
    programs already, in this process or in the run's compilation cache) and, in a subprocess
    with 4 forced host devices, on 4."""
    out = tmp_path_factory.mktemp("devices")
    assert train_cli.main([*TINY, "devices=1", f"runs_dir={out}", "name=d1"]) == 0
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    p = subprocess.run([sys.executable, "-c", FOUR_DEVICES, str(out), json.dumps(TINY),
                        str(CHUNK)],
                       cwd=ROOT, env=env_with(XLA_FLAGS=flags.strip()), capture_output=True,
                       text=True, timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(p.stdout.split("RESULT", 1)[1])
    return out, result


def test_four_devices_equal_one(four_devices):
    out, result = four_devices
    assert_same_run(out / "d1", out / "d4")
    assert result["specs"]["mesh"] == {"seed": 2, "env": 2}
    assert result["specs"]["grid"] == ["seed", "env"]  # environments split within a seed
    assert result["specs"]["kernel"] == ["seed"]  # parameters: one copy per seed's devices
    # the chunk's outputs are put back on its inputs' shardings: one program per run
    assert result["chunks"] == {"4": 1}


def test_bad_placements(four_devices):
    _, result = four_devices
    not_divisible, too_many, offline = result["errors"]
    assert "num_envs=6" in not_divisible and "cannot be split over the 4 devices" in not_divisible
    assert "5 devices requested but only 4 exist" in too_many
    assert "offline" in offline and "multiple of devices" in offline
    with pytest.raises(ConfigError, match="devices requested but only 1 exist"):
        parallel.place(2, 8, 2)
    with pytest.raises(ConfigError, match="positive integer"):
        parallel.place(2, 8, -1)
    assert parallel.place(2, 8, 1).mesh is None and parallel.place(2, 8, 0).mesh is None


def test_two_processes_equal_one(four_devices, tmp_path):
    """Two processes (one CPU device each, gloo collectives on loopback) train one run together:
    one seed each; process 0 writes metrics and evaluation, both write checkpoint shards."""
    ref, _ = four_devices
    port = free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "jaxrl3m.train", *TINY, f"runs_dir={tmp_path}", "name=p",
         "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i),
         "--init-timeout", "60"], cwd=ROOT, env=env_with(JAX_PLATFORMS="cpu"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    assert "final success" in outs[0][0] and "final success" not in outs[1][0]
    assert_same_run(ref / "d1", tmp_path / "p")
    shards = list((tmp_path / "p" / "checkpoints" / str(UPDATES) / "default").glob(
        "ocdbt.process_*"))
    assert len(shards) == 2  # each process wrote its own seed's shards


@pytest.mark.parametrize("process_id", [1, 0])
def test_unreachable_coordinator_fails_fast(process_id, tmp_path):
    """Process 1 finds no coordinator; process 0 waits in vain for process 1: both stop with a
    message naming the address within the timeout, instead of hanging or aborting in XLA."""
    port = free_port()
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "jaxrl3m.train", "ppo", f"runs_dir={tmp_path}",
                        "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                        "--process-id", str(process_id), "--init-timeout", "2"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 30
    assert p.returncode != 0
    assert f"127.0.0.1:{port}" in p.stderr and "--init-timeout" in p.stderr
    assert "Traceback" not in p.stderr
    assert not any(tmp_path.iterdir())  # no run folder was created
