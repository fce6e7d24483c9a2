"""Fault injection: the ways a run could go wrong without an error (issue 28). Each test
simulates one fault (a changed input, an edited config, bit rot, a concurrent run, a damaged
metrics file, a full disk, a broken server, a bad path) and checks that it is refused with a
message naming the problem, or recovered from as stated, never a silently different result."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import TINY_RUN
from jaxrl3m import train as train_cli
from jaxrl3m.core import metrics as curves
from jaxrl3m.core.config import ConfigError, load_yaml, parse_overrides
from jaxrl3m.runner import driver, runs

ROOT = Path(__file__).resolve().parent.parent
PRIOR = ROOT / "llm_cache" / "DoorKey-oracle.json"


def _flip(path: Path, at: float = 0.5) -> None:
    b = bytearray(path.read_bytes())
    i = int(len(b) * at)
    b[i: i + 8] = bytes(x ^ 0xFF for x in b[i: i + 8])
    path.write_bytes(bytes(b))


def _biggest_file(folder: Path) -> Path:
    return max((p for p in folder.rglob("*") if p.is_file() and "manifest" not in p.name),
               key=lambda p: p.stat().st_size)


# ---------------------------------------------------------------------------------------------
# A run stopped after its first chunk (checkpoint 5) and its continuation (checkpoints 5, 10),
# on the suite's tiny run with the prior given as a file (the same table as `oracle`).
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("faults")
    prior = base / "prior.json"
    shutil.copy(PRIOR, prior)
    values = parse_overrides([a for a in TINY_RUN[1:] if "=" in a])
    ppo, run = runs.load_config(TINY_RUN[0], {**values, "prior": str(prior),
                                               "runs_dir": str(base), "name": "stopped"})
    stopped, run = runs.create_run(ppo, run)
    assert driver.train_run(ppo, run, stopped, progress=False, stop_after=5) is None
    resumed = base / "resumed"
    shutil.copytree(stopped, resumed)
    cfg = resumed / "config.yaml"
    cfg.write_text(cfg.read_text().replace("name: stopped", "name: resumed"))
    rec = json.loads((resumed / "inputs.json").read_text())
    rec["config"]["name"] = "resumed"
    from jaxrl3m.runner import record
    record.write(resumed, rec["config"], rec["inputs"], layouts=rec["layouts"])
    assert train_cli.main(["--resume", str(resumed), "--no-progress"]) == 0
    return {"base": base, "prior": prior, "stopped": stopped, "resumed": resumed}


def _copy(folders, which: str, name: str) -> Path:
    dst = folders["base"] / name
    shutil.copytree(folders[which], dst)
    return dst


def test_resume_refuses_a_changed_prior_file_unless_allowed(folders, capsys):
    run_dir = _copy(folders, "stopped", "prior-changed")
    original = folders["prior"].read_bytes()
    from jaxrl3m.teacher.options import uniform_table
    from jaxrl3m.teacher.table import make_table, save_table
    try:
        save_table(make_table("DoorKey", uniform_table("DoorKey"), backend="uniform"),
                   folders["prior"])
        capsys.readouterr()
        assert train_cli.main(["--resume", str(run_dir), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "cannot be resumed as it is: prior:" in err
        assert "is not the file the run started with" in err and "--allow-changed prior" in err
        assert not (run_dir / "summary.json").exists()  # nothing trained
        # Meant: allowed, recorded.
        assert train_cli.main(["--resume", str(run_dir), "--no-progress",
                               "--allow-changed", "prior"]) == 0
        rec = json.loads((run_dir / "inputs.json").read_text())
        assert list(rec["changes"][-1]["allowed"]) == ["prior"]
    finally:
        folders["prior"].write_bytes(original)


def test_resume_refuses_an_edited_config(folders, capsys):
    run_dir = _copy(folders, "stopped", "config-edited")
    cfg = run_dir / "config.yaml"
    lr = load_yaml(cfg)["lr"]
    cfg.write_text(cfg.read_text().replace(f"lr: {lr}", "lr: 0.5"))
    capsys.readouterr()
    assert train_cli.main(["--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"lr: {lr!r} when the run started, 0.5 now" in err and "--allow-changed lr" in err
    assert train_cli.main(["--resume", str(run_dir), "--allow-changed", "nosuchkey"]) == 2
    assert "not a config key, an input" in capsys.readouterr().err


def test_resume_of_a_run_trained_on_the_older_split_is_refused_naming_layouts(folders, capsys):
    """A record without layouts (written before the split by map) trained on all layouts: a
    resume would switch it to the training maps, so it is refused unless allowed."""
    from jaxrl3m.runner import record
    run_dir = _copy(folders, "stopped", "old-split")
    rec = json.loads((run_dir / "inputs.json").read_text())
    record.write(run_dir, rec["config"], rec["inputs"])  # as the previous release wrote it
    capsys.readouterr()
    assert train_cli.main(["--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "layouts: all layouts" in err and "split map-v2" in err
    assert "--allow-changed layouts" in err


def test_bit_rot_in_the_latest_checkpoint_falls_back_to_the_one_before(folders, capsys):
    run_dir = _copy(folders, "resumed", "bit-rot")
    assert sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir()) == [5, 10]
    _flip(_biggest_file(run_dir / "checkpoints" / "10"))
    from jaxrl3m.evaluate import evaluate_run
    capsys.readouterr()
    assert evaluate_run(run_dir, 4)["update"] == 5  # the newest that verifies, said so:
    err = capsys.readouterr().err
    assert "checkpoint(s) 10 damaged" in err and "differs from its recorded sha256" in err
    assert "using checkpoint 5" in err and (run_dir / "damaged_checkpoints").is_dir()
    # --resume continues from 5, cuts metrics.csv there and ends where the intact run ended.
    assert train_cli.main(["--resume", str(run_dir), "--no-progress"]) == 0
    a = curves.read_csv(folders["resumed"] / "metrics.csv")
    b = curves.read_csv(run_dir / "metrics.csv")
    assert [(r["seed"], r["update"]) for r in a] == [(r["seed"], r["update"]) for r in b]
    for ra, rb in zip(a, b):
        for k in ("loss", "entropy", "return", "success"):
            assert ra[k] == rb[k] or (np.isnan(ra[k]) and np.isnan(rb[k])), (k, ra, rb)


def test_a_run_folder_in_use_is_refused_and_a_killed_holder_leaves_no_lock(folders, capsys):
    from jaxrl3m.core.integrity import RunLock
    run_dir = _copy(folders, "stopped", "locked")
    with RunLock(run_dir):
        capsys.readouterr()
        assert train_cli.main(["--resume", str(run_dir), "--no-progress"]) == 2
        assert f"is in use by process {os.getpid()}" in capsys.readouterr().err
    # A holder killed with SIGKILL: the OS drops its lock.
    code = ("import os, sys; from jaxrl3m.core.integrity import RunLock; "
            f"l = RunLock({str(run_dir)!r}); print('locked', flush=True); os.kill(os.getpid(), 9)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "locked" in p.stdout and p.returncode == -9
    RunLock(run_dir).release()


def test_a_garbage_line_in_metrics_is_named_not_dropped(folders, capsys):
    run_dir = _copy(folders, "stopped", "garbage")
    lines = (run_dir / "metrics.csv").read_text().splitlines(keepends=True)
    lines.insert(3, "this is not a row\n")
    (run_dir / "metrics.csv").write_text("".join(lines))
    capsys.readouterr()
    assert train_cli.main(["--resume", str(run_dir), "--no-progress"]) == 2
    assert "metrics.csv: line 4 is not a row of" in capsys.readouterr().err
    # The same rows twice (two processes appending) are refused too.
    log = curves.MetricsLog(run_dir / "metrics.csv", lines[0].strip().split(","))
    (run_dir / "metrics.csv").write_text("".join([lines[0], lines[1], lines[2], lines[1]]))
    with pytest.raises(curves.MetricsError, match="line 4 repeats seed"):
        log.read()
    # Only a cut last line (a kill mid-write) is dropped.
    (run_dir / "metrics.csv").write_text("".join([lines[0], lines[1], lines[2][:10]]))
    assert len(log.read()) == 1


def test_evaluate_needs_no_prior_file_for_a_policy_that_acts_alone(folders):
    from jaxrl3m.evaluate import evaluate_run
    moved = folders["prior"].with_suffix(".away")
    folders["prior"].rename(moved)
    try:
        assert evaluate_run(folders["stopped"], 4)["update"] == 5
    finally:
        moved.rename(folders["prior"])


def test_starts_that_cannot_work_are_refused_before_the_folder_exists(tmp_path, capsys):
    for bad, says in ((["devices=5"], "5 devices requested"),
                      (["num_envs=200000000", "total_steps=4e9"], "GB available")):
        assert train_cli.main([*TINY_RUN, f"runs_dir={tmp_path}", *bad]) == 2, bad
        assert says in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# Checkpoints, folders, files (no training)
# ---------------------------------------------------------------------------------------------
def test_checkpoint_manifest_detects_bit_rot_and_restore_newest_recovers(tmp_path):
    import jax
    import jax.numpy as jnp
    from jaxrl3m.core.checkpoint import CheckpointError, Checkpoints
    tree = {"w": jnp.arange(4096.0), "key": jax.random.key(3)}
    with Checkpoints(tmp_path / "checkpoints") as ckpt:
        ckpt.save(1, tree)
        ckpt.save(2, jax.tree.map(lambda x: x, {"w": tree["w"] + 1, "key": tree["key"]}))
        assert ckpt.verify(2) and ckpt.verify(1)
        _flip(_biggest_file(tmp_path / "checkpoints" / "2"))
        with pytest.raises(CheckpointError, match="checkpoint 2 .* is damaged: .* differs"):
            ckpt.restore(2, tree)
        notes = []
        step, got = ckpt.restore_newest(tree, notes.append)
        assert step == 1 and float(got["w"][5]) == 5.0 and "using checkpoint 1" in notes[0]
        ckpt.save(2, tree)  # the step can be written again
        assert ckpt.steps() == [2, 1]
        victim = _biggest_file(tmp_path / "checkpoints" / "2")  # a partial copy: cut short
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
        with pytest.raises(CheckpointError, match="checkpoint 2 .* is damaged: .* differs"):
            ckpt.restore(2, tree)
        assert ckpt.restore_newest(tree, notes.append)[0] == 1 and ckpt.steps() == [1]
        (tmp_path / "checkpoints" / "1" / "stray").write_text("x")  # a file added
        with pytest.raises(CheckpointError, match="does not list: stray"):
            ckpt.restore(1, tree)
        (tmp_path / "checkpoints" / "1" / "stray").unlink()
        ckpt.save(2, tree)
        _flip(_biggest_file(tmp_path / "checkpoints" / "1"))
        _flip(_biggest_file(tmp_path / "checkpoints" / "2"))
        with pytest.raises(CheckpointError, match="no checkpoint .* can be restored"):
            ckpt.restore_newest(tree, notes.append)


def test_a_full_disk_during_a_checkpoint_is_a_message_and_the_last_one_stays(tmp_path):
    code = f"""
import resource, signal, sys
import jax.numpy as jnp
import numpy as np
from jaxrl3m.core.checkpoint import CheckpointError, Checkpoints
ckpt = Checkpoints({str(tmp_path / 'checkpoints')!r})
ckpt.save(1, {{"w": jnp.zeros(16)}})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
try:
    ckpt.save(2, {{"w": jnp.asarray(np.random.default_rng(0).random(1_000_000), jnp.float32)}})
except CheckpointError as e:
    print("MESSAGE", e)
    sys.exit(0)
print("saved?")
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "MESSAGE could not write checkpoint 2" in p.stdout, p.stdout + p.stderr[-2000:]
    assert "checkpoint 1 is intact" in p.stdout
    from jaxrl3m.core.checkpoint import Checkpoints
    with Checkpoints(tmp_path / "checkpoints") as ckpt:
        assert ckpt.latest() == 1 and ckpt.verify(1)


def test_run_folders_are_taken_atomically_and_names_stay_inside_runs_dir(tmp_path):
    import dataclasses
    ppo, run = runs.load_config(None, {"runs_dir": str(tmp_path), "name": "same"})
    barrier = threading.Barrier(12)
    got = []

    def start():
        barrier.wait()
        got.append(runs.create_run(ppo, run)[0])

    threads = [threading.Thread(target=start) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 12
    for name in ("../x", "/tmp/x", "a/b", ".."):
        with pytest.raises(ConfigError, match="not a plain folder name"):
            runs.load_config(None, {"name": name})
    # A folder that cannot be written: a message, not a PermissionError traceback.
    original = Path.mkdir

    def denied(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    Path.mkdir = denied
    try:
        with pytest.raises(ConfigError, match="permission denied"):
            runs.create_run(ppo, dataclasses.replace(run, name="ro"))
    finally:
        Path.mkdir = original


def test_config_quirks_are_refused_or_read_as_meant(tmp_path):
    (tmp_path / "dup.yaml").write_text("task: DoorKey\nlr: 0.1\nlr: 0.2\n")
    (tmp_path / "empty.yaml").write_text("\n")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00\x01\x80")
    for f, says in (("dup", "key 'lr' is given twice (lines 2 and 3)"), ("empty", "is empty"),
                    ("bin", "is not text")):
        with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
            load_yaml(tmp_path / f"{f}.yaml")
    with pytest.raises(ConfigError, match="'lr' must be a finite number"):
        runs.load_config(None, parse_overrides(["lr=inf"]))
    ppo, run = runs.load_config(None, parse_overrides(["total_steps=1e6", "max_loss=inf"]))
    assert ppo.total_steps == 1_000_000 and isinstance(ppo.total_steps, int)
    assert run.max_loss == float("inf")
    with pytest.raises(ConfigError, match="must be int"):
        runs.load_config(None, parse_overrides(["num_envs=2.5"]))
    with pytest.raises(ConfigError, match="'wandb_mode': 'sometimes' is unknown"):
        runs.load_config(None, parse_overrides(["wandb_mode=sometimes"]))


def test_commands_refuse_bad_paths_and_counts_before_working(tmp_path, capsys):
    from jaxrl3m import collect, precompute_priors, priors_report
    assert collect.main(["--task", "DoorKey", "--policy", "random", "--episodes", "5",
                         "--out", str(tmp_path)]) == 2
    assert "is a folder; give a file name in it" in capsys.readouterr().err
    assert collect.main(["--task", "DoorKey", "--policy", "random", "--episodes", "0",
                         "--out", str(tmp_path / "d.npz")]) == 2
    assert "--episodes must be at least 1, got 0" in capsys.readouterr().err
    assert precompute_priors.main(["--task", "DoorKey", "--backend", "oracle",
                                   "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="is a folder"):
        from jaxrl3m.teacher.teacher import resolve_prior
        resolve_prior(str(tmp_path), "DoorKey")
    assert priors_report.main([str(tmp_path), "--no-png"]) == 2
    assert f"prior table {str(tmp_path)!r} is a folder" in capsys.readouterr().err


def test_policy_spec_errors_speak_of_the_policy(tmp_path):
    from jaxrl3m.runner import policies
    with pytest.raises(ConfigError, match="--policy 'nosuch': not random, a run folder"):
        policies.build("nosuch", None, "DoorKey")


def test_a_gguf_without_head_count_is_named(tmp_path):
    import gguf
    from jaxrl3m.llm.gguf import load_gguf
    from jaxrl3m.llm.model import ModelError
    path = tmp_path / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_embedding_length(8)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ModelError, match="metadata 'llama.attention.head_count' is missing"):
        load_gguf(path, "tiny")


def test_the_transfer_study_checks_its_prior_before_training(tmp_path):
    from jaxrl3m.experiments import transfer
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="--prior: prior table .*missing.json.* does not exist"):
        transfer.run_study("LavaDoorKey", str(tmp_path / "missing.json"), 1, ("1", "4"),
                           tmp_path / "out", tmp_path, progress=False)
    assert not (tmp_path / "source-DoorKey").exists() and time.perf_counter() - t0 < 30


# ---------------------------------------------------------------------------------------------
# OpenAI-compatible servers that misbehave (loopback only, bounded in time)
# ---------------------------------------------------------------------------------------------
class _Server:
    """A loopback HTTP server answering POSTs with `answer(path, body) -> (status, JSON)`."""

    def __init__(self, answer):
        outer = self
        self.bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                status, data = answer(self.path, body)
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST  # noqa: N815

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _chat(content):
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


OPTIONS = ["go to the key", "open the door", "explore"]
MSGS = [[{"role": "user", "content": f"state {i}"}] for i in range(3)]


def _scorer(url, **kw):
    from jaxrl3m.llm.openai_backend import OpenAIScorer
    return OpenAIScorer(url, "m", **{"retries": 0, "timeout": 10, **kw})


def test_a_server_whose_answers_name_no_option_gives_no_table(tmp_path, capsys):
    from jaxrl3m.llm.openai_backend import ServerError
    for answer, says in ((lambda p, b: (200, {}), "answered without choices"),
                         (lambda p, b: (200, _chat("I like turtles")), "3 of 3 states got no"),
                         (lambda p, b: (200, [1, 2]), "not an object")):
        srv = _Server(answer)
        try:
            with pytest.raises(ServerError, match=says):
                _scorer(srv.url, mode="auto", samples=2)(MSGS, OPTIONS)
            if says.startswith("answered"):  # the command: exit 2, no file
                out = tmp_path / "t.json"
                assert precompute_priors_main(srv.url, out, "--samples", "2") == 2
                assert "answered without choices" in capsys.readouterr().err
                assert not out.exists()
        finally:
            srv.close()
    # Mostly unparseable answers (over max_unparsed) are refused too.
    n = iter(range(10**6))
    srv = _Server(lambda p, b: (200, _chat("explore" if next(n) % 4 == 0 else "hm")))
    try:
        with pytest.raises(ServerError, match="named no option .more than 50%"):
            _scorer(srv.url, mode="sample", samples=4)(MSGS, OPTIONS)
    finally:
        srv.close()


def precompute_priors_main(url, out, *extra):
    from jaxrl3m import precompute_priors
    return precompute_priors.main(["--task", "DoorKey", "--backend", "openai", "--model", "m",
                                   "--base-url", url, "--out", str(out), "--retries", "0",
                                   "--chat-template", "plain", *extra])


def test_a_server_that_ignores_n_is_asked_until_enough_answers(tmp_path):
    srv = _Server(lambda p, b: (200, _chat("open the door")))  # one answer, whatever n says
    try:
        s = _scorer(srv.url, mode="sample", samples=3)
        scores = s(MSGS, OPTIONS)
        assert len(srv.bodies) == 9 and [b["n"] for b in srv.bodies[:3]] == [3, 2, 1]
        assert np.all(scores[:, 1] == 0.0) and np.all(np.isneginf(scores[:, [0, 2]]))
        assert s.stats()["answers"] == 9 and s.stats()["unparsed_answers"] == 0
    finally:
        srv.close()


def test_log_probabilities_one_prompt_per_request_when_a_list_is_refused():
    # A server that echoes one log-probability per character (-0.01 * its code point) and
    # answers a list of prompts with HTTP 500, as llama-cpp-python's does.
    def answer(path, body):
        if isinstance(body["prompt"], list):
            return 500, {"error": {"message": ""}}
        text = body["prompt"]
        lp = [None] + [-0.01 * ord(c) for c in text[1:]] + [-0.5]  # + the generated token
        return 200, {"choices": [{"index": 0, "text": text + "x", "logprobs": {
            "token_logprobs": lp, "text_offset": list(range(len(text) + 1))}}],
                     "usage": {"completion_tokens": 1}}

    srv = _Server(answer)
    try:
        from jaxrl3m.llm.openai_backend import ChatFormat
        s = _scorer(srv.url, mode="auto", chat=ChatFormat.from_jinja(
            "{% for m in messages %}<|u|>{{ m['content'] }}<|e|>{% endfor %}"
            "{% if add_generation_prompt %}<|a|>{% endif %}", "test"))
        scores = s(MSGS[:1], OPTIONS)
        assert s.chat.end_of_turn == "<|e|>" and s.used_mode == "logprobs"
        expected = [-0.01 * sum(map(ord, o + "<|e|>")) for o in OPTIONS]
        np.testing.assert_allclose(scores[0], expected, rtol=1e-9)
        assert not s.list_prompts and len(srv.bodies) == 1 + 1 + len(OPTIONS)
    finally:
        srv.close()


def test_arguments_and_a_closed_port_fail_at_once(tmp_path, capsys):
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends
    url = f"http://127.0.0.1:{port}/v1"
    for extra, says in ((("--samples", "0"), "--samples must be at least 1, got 0"),
                        (("--retries", "-1"), "--retries must be 0 or more, got -1")):
        assert precompute_priors_main(url, tmp_path / "t.json", *extra) == 2
        assert says in capsys.readouterr().err
    from jaxrl3m import precompute_priors
    t0 = time.perf_counter()
    assert precompute_priors.main(["--task", "DoorKey", "--backend", "openai", "--model", "m",
                                   "--base-url", url, "--out", str(tmp_path / "t.json"),
                                   "--chat-template", "plain"]) == 2  # default retries
    assert "nothing answers at" in capsys.readouterr().err and time.perf_counter() - t0 < 10


def test_sampled_answers_are_pooled_as_frequencies_over_option_orders():
    # An option named in one option order only has frequency 0 in the others; averaging
    # log-frequencies made every such state -inf (a non-finite table).
    from jaxrl3m.teacher.priors import llm_prior_scores, scores_to_probs
    from jaxrl3m.teacher.prompt import load_prompt

    class Sampled:
        pool, calls = "frequency", 0

        def __call__(self, msgs, options):
            s = np.full((len(msgs), len(options)), -np.inf)
            s[:, self.calls % len(options)] = 0.0  # every answer names one option per order
            self.calls += 1
            return s

    prompt = load_prompt(None)
    fake = Sampled()
    scores = llm_prior_scores(fake, "DoorKey", prompt)
    n = prompt.permutations
    assert fake.calls == n and np.isfinite(scores_to_probs(scores, 1.0)).all()
    np.testing.assert_allclose(np.exp(scores[:, :n]), 1.0 / n, rtol=1e-6)
