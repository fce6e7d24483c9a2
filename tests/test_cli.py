"""The `jaxrl3m` console script: subcommands dispatch to the `python -m` commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from jaxrl3m import cli


def test_train_keys_lists_every_key_with_value_default_and_meaning(capsys):
    assert cli.main(["train", "DoorKey-oracle", "--keys", "lr=0.001"]) == 0
    out = capsys.readouterr().out
    assert "# PPOConfig (algo: ppo)" in out and "# RunConfig" in out
    assert "prior = 'oracle'  (default 'none')" in out
    assert "lr = 0.001  (default" in out  # an override shows as the value
    assert "lambda_0, the guidance weight at the first update" in out  # the field's docstring
    assert cli.main(["train", "DoorKey-oracle", "--keys", "nosuchkey=1"]) == 2
    assert "unknown config key 'nosuchkey'" in capsys.readouterr().err


def test_subcommands_dispatch_and_unknown_ones_are_named(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert cli.main(["trian"]) == 2
    assert "unknown command 'trian'. Did you mean 'train'?" in capsys.readouterr().err
    assert cli.main([]) == 0 and "commands:" in capsys.readouterr().out


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "jaxrl3m"
    p = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "jaxrl3m train" in p.stdout
