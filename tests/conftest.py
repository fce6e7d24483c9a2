import os
import sys

# Tests run on the CPU; keep XLA from grabbing every core's worth of threads per test process.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite compiles far more than it computes (tiny budgets, many programs): XLA's backend at
# optimisation level 0 compiles faster and, on balance, runs the whole suite faster (measured in
# bench/RESULTS.md, "The test suite"). Set XLA_FLAGS yourself to test at the default level.
# Subprocesses started by tests inherit it.
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


# The slow tier: tests that take 5 s or more on 2 cores, or need a module fixture that does (compiling a training run, a study, a
# model, several processes). `make test-fast` (`-m "not slow"`) leaves them out for the edit
# loop; `make test` (CI) runs everything. Named here, in one place, by file and test function.
SLOW = {
    "test_api.py": ("test_navix_doorkey_through_make", "test_batch_step_resets_only_ended_episodes",
                    "test_navix_doorkey_reward_is_minigrids"),
    "test_bench.py": ("test_gpu_script_runs_at_tiny_sizes_and_writes_its_section",),
    "test_contract.py": ("test_the_contract", "test_train_is_init_then_every_update"),
    "test_core.py": ("test_divergence_stops_the_run", "test_teacher_and_bootstrap_skips",
                     "test_a_chunk_skips_its_surplus_updates", "test_navix_is_imported_only",
                     "test_tensorboard_logging"),
    "test_dqn_prior.py": ("test_dqn_prior_run_two_seeds", "test_dqn_prior_learns_q_star",
                          "test_transfer_study_with_the_dqn_learner"),
    "test_docs.py": ("test_the_walkthrough_runs",),
    "test_dt.py": ("",),  # every test: its module fixture writes models and collects data
    "test_gym_api.py": ("test_gymnasium_vector_env", "test_gymnax_env_steps"),
    "test_render.py": ("test_recorded_episodes", "test_the_render_command"),
    "test_faults.py": ("test_resume_refuses", "test_bit_rot_in_the_latest",
                       "test_a_run_folder_in_use", "test_a_garbage_line",
                       "test_evaluate_needs_no_prior", "test_starts_that_cannot_work"),
    "test_layout.py": ("test_single_draw_never_fails_exhaustively",),
    "test_metrics.py": ("test_the_periodic_evaluation_plays",),
    "test_parity_minigrid.py": ("test_two_room_tasks_match", "test_room_worlds_match",
                                "test_fetch_matches"),
    "test_tasks.py": ("test_registered_task_gets_the_teacher", "test_the_how_to_script_runs",
                      "test_fetch_generator", "test_a_mission_leaves"),
    "test_llm.py": ("test_gemma3_270m_matches_transformers", "test_smollm2_matches_transformers",
                    "test_precompute_with_the_jax_backend", "test_precompute_scores_a_past_policy"),
    "test_navix.py": ("test_navix_task_through_our_trainer", "test_navix_ppo_runs_on_our_task"),
    "test_offline.py": ("test_bc_run_evaluates_on_heldout_layouts", "test_shuffled_prior_is_wrong",
                        "test_cql_loss_is_td_plus_penalty", "test_cql_prior_two_seeds",
                        "test_dataset_structure_and_round_trip"),
    "test_parallel.py": ("",),  # every test: its module fixture trains on 4 devices
    "test_posterior.py": ("test_guided_ppo_with_the_posterior_teacher",),
    "test_ppo.py": ("test_train_writes_a_run_and_resume", "test_kl_coef_zero_is_exactly",
                    "test_guidance_pulls_the_student", "test_two_seeds_under_vmap",
                    "test_evaluate_command"),
    "test_readme_and_cli.py": ("test_readme_python_snippet_runs",),
    "test_teacher.py": ("test_reachable_states_are_consistent", "test_oracle_teacher_solves",
                        "test_reachable_fingerprint_follows",
                        "test_precompute_oracle_and_report", "test_precompute_published_table",
                        "test_uniform_teacher_is_worse", "test_navigation_matches_reference_bfs"),
    "test_transfer.py": ("",),  # every test: its module fixture trains the source policy
    "test_object_skills.py": ("test_a_task_guided_by_words", "test_words_give_the_library"),
    "test_factored.py": ("test_a_factored_task_is_solved", "test_a_factor_out_of_its_range"),
}


# Files in order of their time, heaviest first (the per-file report of bench/suite_profile.py;
# files not named follow in collection order). Handed out longest first (the Makefile's
# --no-loadscope-reorder), the two workers finish within a few seconds of each other; xdist's
# default order, by number of tests, left one idle for the last minute.
HEAVY_FIRST = ("test_teacher.py", "test_parity_minigrid.py", "test_transfer.py", "test_ppo.py",
               "test_bench.py", "test_parallel.py", "test_core.py", "test_dt.py", "test_llm.py",
               "test_contract.py", "test_offline.py", "test_dqn_prior.py", "test_api.py",
               "test_tasks.py", "test_navix.py", "test_posterior.py", "test_metrics.py",
               "test_docs.py", "test_object_skills.py", "test_factored.py",
               "test_layout.py", "test_readme_and_cli.py", "test_faults.py",
               "test_gym_api.py", "test_render.py", "test_abstraction.py", "test_rules.py",
               "test_soft_targets.py", "test_cli.py")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: 5 s or more on 2 cores (make test-fast skips it)")


def pytest_collection_modifyitems(config, items):
    import pytest
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(os.path.basename(str(item.fspath)), len(rank)))
    for item in items:
        names = SLOW.get(os.path.basename(str(item.fspath)), ())
        if names and item.originalname.startswith(names):
            item.add_marker(pytest.mark.slow)

