import os
import sys

# Tests run on the CPU; keep XLA from grabbing every core's worth of threads per test process.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite compiles far more than it computes (tiny budgets, many programs): XLA's backend at
# optimisation level 0 compiles faster and, on balance, runs the whole suite in 9 min instead of
# 11.5 on 2 cores (measured on one clean clone, 154 tests, 2026-11-22). Set XLA_FLAGS yourself
# to test at the default level. Subprocesses started by tests inherit it.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_backend_optimization_level=0").strip()
sys.path.insert(0, os.path.dirname(__file__))

# XLA's persistent compilation cache, fresh for each run of the suite and shared by its pytest
# workers and the commands the tests start (never the user's ~/.cache/jaxrl3m): programs that
# several test files compile alike are compiled once per run.
import tempfile  # noqa: E402

_run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
os.environ.setdefault("JAXRL3M_COMPILE_CACHE",
                      os.path.join(tempfile.gettempdir(), f"jaxrl3m-tests-xla-{_run}"))
from jaxrl3m.core import compile_cache  # noqa: E402

compile_cache.enable()


def pytest_sessionfinish(session, exitstatus):
    """The run's compilation cache goes with the run (the controller removes it; workers, which
    have `workerinput`, leave it to the controller)."""
    if hasattr(session.config, "workerinput"):
        return
    import shutil
    folder = os.environ.get("JAXRL3M_COMPILE_CACHE", "")
    if os.path.basename(folder).startswith("jaxrl3m-tests-xla-"):
        shutil.rmtree(folder, ignore_errors=True)
