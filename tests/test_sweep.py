"""The sweep: its plan, resuming (finished runs skipped), and its account of failures."""
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from src.config import compose
from tests.helpers import (LIGHT, PAUSE_AT, interrupt_process_after_first_row, metrics, run,
                            run_process, start, wait_for_first_row)


@pytest.mark.heavy
def test_sweep_skips_finished_runs_reports_failures_and_exits_nonzero(tmp_path):
    sweep = ["budget=smoke", "depth=8", "shortcut=none,identity", "jobs=1",
             f"results_dir={tmp_path}"]
    first = run_process(*sweep, module="src.sweep")
    assert first.returncode == 0, first.stderr
    assert "plan: 2 runs, budget smoke (30 iterations each)" in first.stdout
    assert "estimated wall time on this machine" in first.stdout
    assert "sweep: 2 of 2 runs finished" in first.stdout
    runs = tmp_path / "smoke/runs"
    plain = runs / "none-8-s0"
    # The plain run's folder now claims another config: that run must fail, the other skip.
    summary = json.loads((plain / "summary.json").read_text())
    summary["config"]["train"]["lr"] = 0.2
    (plain / "summary.json").write_text(json.dumps(summary))
    second = run_process(*sweep, module="src.sweep")
    assert second.returncode == 1
    assert re.search(r"identity-8-s0\s+finished", second.stdout)  # skipped
    assert "run 1 of 1: none-8-s0" in second.stdout and "identity-8-s0;" not in second.stdout
    assert re.search(r"none-8-s0\s+conflict", second.stdout)
    assert "holds a run with another config" in second.stderr  # the run's own words
    assert f"not finished: {plain} (conflict at iteration 0)" in second.stderr
    assert "sweep: 1 of 2 runs finished" in second.stdout
    assert json.loads((runs / "identity-8-s0/summary.json").read_text())["status"] == "finished"


@pytest.mark.heavy
def test_make_reproduce_cifar_with_a_refused_value_says_so_once_and_draws_nothing(tmp_path):
    from tests.helpers import ROOT
    p = subprocess.run(["make", "--no-print-directory", "reproduce-cifar", "BUDGET=nope",
                        f"RESULTS={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: budget='nope' is not allowed: choose one of long, paper, quick, smoke"]
    assert "no run folders" not in p.stderr


@pytest.mark.heavy
def test_ctrl_c_of_make_reproduce_cifar_stops_the_sweep_and_draws_no_figures(tmp_path):
    """Ctrl-C reaches make, its shell, the sweep and the run (one process group): the run
    checkpoints, the sweep exits 128 + 2, and the figures step does not follow."""
    import os
    from tests.helpers import PAUSE_AT, ROOT, default_ctrl_c, run_env
    p = subprocess.Popen(["make", "--no-print-directory", "reproduce-cifar", "BUDGET=smoke",
                          "JOBS=1", f"RESULTS={tmp_path}", "ARGS=depth=8 shortcut=none "
                          "train.iterations=60"], cwd=ROOT, env=run_env(PAUSE_AT), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=default_ctrl_c, start_new_session=True)
    run_dir = tmp_path / "smoke/runs/none-8-s0"
    wait_for_first_row(run_dir, p)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode != 0
    assert "sweep stopped by signal 2" in err
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    assert "experiments.figures" in out  # make echoed the whole recipe; it did not run it:
    assert "no finished runs" not in out + err and not (tmp_path / "smoke/README.md").exists()


def test_sweep_refuses_bad_values_before_running_anything(tmp_path):
    for word, message in [("launcher=slurmish", "launcher='slurmish' is not allowed"),
                          ("seeds=0", "seeds='0' is not allowed"),
                          ("jobs=0", "jobs='0' is not allowed: auto or a whole number"),
                          ("depth=20,22", "depth=22 is not allowed")]:
        result = run("budget=smoke", f"results_dir={tmp_path}", word, module="src.sweep")
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert not (tmp_path / "smoke").exists()


def test_the_quick_sweep_covers_figure_6_with_three_seeds_where_the_claims_are_made():
    from src.sweep import parse, planned_runs
    options, grids, passed = parse(["budget=quick", "results_dir=/tmp/q"])
    names = [cfg.run_dir.rsplit("/", 1)[1] for cfg in planned_runs(options, grids, passed)]
    assert len(names) == len(set(names)) == 20
    for net in ("none-20", "none-56", "identity-20", "identity-56"):
        assert {f"{net}-s{s}" for s in range(3)} <= set(names)
    assert {"none-32-s0", "none-44-s0", "identity-32-s0", "identity-44-s0", "identity-110-s0",
            "preact-identity-56-s0", "preact-identity-110-s0",
            "preact_bottleneck-projection-164-s0"} <= set(names)
    assert names[:4] == ["none-20-s0", "identity-20-s0", "none-56-s0", "identity-56-s0"]
    assert "none-110-s0" not in names  # plain-110 is in the paper budget's sweep only

    options, grids, passed = parse(["budget=quick", "seeds=2", "depth=20", "shortcut=identity"])
    assert [(g["depth"], g["shortcut"], g["block"], g["seeds"]) for g in grids] == [
        ("20", "identity", "original", 2)]


def shipped_runs() -> list[tuple[Path, dict]]:
    """(folder, config) of every committed run of a budget, as committed: a run this checkout
    trains now (its summary changed since) is left out."""
    from src.runfiles import read_summary
    from tests.helpers import ROOT

    def git(*args):
        return set(subprocess.run(["git", *args, "--", "results/*/runs/*/summary.json"], cwd=ROOT,
                                  capture_output=True, text=True, check=True).stdout.split())
    paths = sorted(ROOT / path for path in git("ls-files") - git("diff", "--name-only"))
    runs = [(path.parent, read_summary(path.parent).config) for path in paths]
    # Not those kept aside under another name, e.g. the long budget's 8k scouting runs, nor the
    # interventions' (results/interventions/<name>/<budget>/: tests/test_interventions.py).
    return [(folder, c) for folder, c in runs if folder.parent.parent.name == c["budget"]["name"]
            and folder.parent.parent.parent == ROOT / "results"]


def shipped_overrides(c: dict) -> list[str]:
    from tests.helpers import ROOT
    return [f"budget={c['budget']['name']}", f"depth={c['depth']}", f"shortcut={c['shortcut']}",
            f"block={c['block']}", f"seed={c['seed']}", f"results_dir={ROOT / 'results'}"]


def shipped_config(c: dict):
    return compose(*shipped_overrides(c))


def test_the_plan_lists_every_shipped_run_as_finished_or_parked():
    """The committed run folders count as finished with today's config, whichever version of it
    wrote them (older ones repeated the budget's values under budget.*, or predate a key), or
    as parked (make park) at their checkpoint's iteration."""
    from src.park import checkpoint_iteration
    from src.networks import run_name
    from src.sweep import status
    shipped = shipped_runs()
    assert shipped
    for folder, c in shipped:
        cfg = shipped_config(c)
        assert Path(cfg.run_dir) == folder
        assert folder.name == run_name(c["block"], c["shortcut"], c["depth"], c["seed"])
        state, done = status(cfg.run_dir, cfg)
        if state == "parked":
            assert checkpoint_iteration((folder / "checkpoint.npz").read_bytes()) == done, folder
        else:
            assert state == "finished", folder


def test_a_new_config_key_at_its_default_leaves_every_shipped_run_finished(tmp_path, monkeypatch):
    """A key added to the schema after the shipped runs (here `width`, default 1) is, for a run
    whose config lacks it, the default it trained with; asked for another value, it conflicts."""
    import dataclasses
    import shutil
    from hydra.core.config_store import ConfigStore
    import src.checkpoint
    import src.config
    from src.sweep import status
    conf = tmp_path / "conf"
    shutil.copytree(src.config.CONF, conf)
    (conf / "config.yaml").write_text((conf / "config.yaml").read_text().replace(
        "\ndepth:", "\nwidth: 1  # a key added after the shipped runs\ndepth:", 1))
    wider = dataclasses.make_dataclass("Config", [("width", int, dataclasses.field(default=1))],
                                       bases=(src.config.Config,))
    store = ConfigStore.instance()
    monkeypatch.setattr(src.config, "CONF", conf)
    monkeypatch.setattr(src.checkpoint, "CONFIG", conf / "config.yaml")
    src.checkpoint.defaults.cache_clear()
    store.store(name="schema", node=wider)
    try:
        runs = shipped_runs()
        assert runs and all("width" not in c for _, c in runs)
        for folder, c in runs:
            assert shipped_config(c).width == 1
            assert status(str(folder), shipped_config(c))[0] in ("finished", "parked"), folder
        folder, c = runs[0]
        assert status(str(folder), compose(*shipped_overrides(c), "width=2"))[0] == "conflict"
    finally:
        store.store(name="schema", node=src.config.Config)
        src.checkpoint.defaults.cache_clear()


def test_the_long_sweep_trains_what_was_shipped_then_every_depth_step_by_step():
    from src.sweep import parse, planned_runs
    options, grids, passed = parse(["budget=long", "results_dir=/tmp/l"])
    cfgs = planned_runs(options, grids, passed)
    names = [cfg.run_dir.rsplit("/", 1)[1] for cfg in cfgs]
    assert names[:12] == ["identity-20-s0", "identity-56-s0", "identity-20-s1", "identity-20-s2",
                          "identity-56-s1", "identity-56-s2", "none-20-s0", "none-56-s0",
                          "none-20-s1", "none-56-s1", "none-20-s2",
                          "identity-20-s3"]  # what was shipped, in its order
    steps = [{"none-32-s0", "identity-32-s0"},  # started first
             {"none-56-s2", "identity-56-s3"},  # the third judged 56-layer seeds, with weights
             {"none-44-s0", "identity-44-s0"},  # Figure 6's depths whole
             {"identity-110-s0"},
             {"identity-20-s4", "identity-56-s4"}]
    rest = names[12:]
    for step in steps:  # each whole before the next
        assert set(rest[:len(step)]) == step, rest
        rest = rest[len(step):]
    assert rest == []  # second seeds at 32/44 and the pre-act ResNet-110 are left out
    assert {cfg.train.iterations for cfg in cfgs} == {16000}  # the scouting's choice
    assert list(cfgs[0].train.milestones) == [0.5, 0.75]


@pytest.mark.heavy
def test_a_packed_sweep_runs_two_at_once_on_one_thread_each_and_labels_their_lines(tmp_path):
    sweep = ["budget=smoke", "depth=8", "shortcut=none,identity", "jobs=2", *LIGHT,
             "train.iterations=40", f"results_dir={tmp_path}"]
    result = run_process(*sweep, module="src.sweep")
    assert result.returncode == 0, result.stderr
    assert "run 1 of 2: none-8-s0" in result.stdout and "run 2 of 2: identity-8-s0" in result.stdout
    for name in ("none-8-s0", "identity-8-s0"):
        assert f"{name:<22}| threads: 1 intra-op, 1 inter-op" in result.stdout
        assert metrics(tmp_path / "smoke/runs" / name).iteration.tolist() == [10, 20, 30, 40]
    # Both ran at once: the sweep started the second before the first had finished (it starts
    # it at once; a run's first line follows its TensorFlow start-up of seconds).
    lines = result.stdout.splitlines()
    second = next(i for i, line in enumerate(lines)
                  if line.startswith("sweep: run 2 of 2: identity-8-s0;"))
    ends = [i for i, line in enumerate(lines) if "| finished:" in line]
    assert len(ends) == 2 and second < min(ends)
    assert "sweep: 2 of 2 runs finished" in result.stdout


@pytest.mark.heavy
@pytest.mark.slow  # ~2.5-4.5 min on 2 cores: make test-all
def test_the_last_run_of_a_packed_sweep_is_resumed_on_every_core(tmp_path, monkeypatch, capsys):
    """Packed, each run has one core; once the short run has finished, the long one would train on
    one core while the other idles: it checkpoints and resumes on every core, its curve whole."""
    import src.sweep
    monkeypatch.setattr(src.sweep, "TAIL_SECONDS", 0)  # any time left pays (in a sweep: 2 min)
    assert src.sweep.main(["budget=smoke", "depth=8,56", "shortcut=identity", "jobs=2", *LIGHT,
                           "train.iterations=120", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    switch = re.search(r"sweep: identity-56-s0 is the last run: resumed on every core "
                       r"\((\d+) iterations done\)", out)
    assert switch and int(switch[1]) < 120, out
    deep = [line for line in out.splitlines() if line.startswith("identity-56-s0 ")]
    assert sum("threads: 1 intra-op" in line for line in deep) == 1  # the packed segment only
    assert sum("resuming at iteration" in line for line in deep) == 1
    runs = tmp_path / "smoke/runs"
    assert len(json.loads((runs / "identity-56-s0/summary.json").read_text())["resumed_at"]) == 1
    assert json.loads((runs / "identity-8-s0/summary.json").read_text())["resumed_at"] == []
    for name in ("identity-8-s0", "identity-56-s0"):
        assert metrics(runs / name).iteration.tolist() == list(range(10, 130, 10))


@pytest.mark.heavy
@pytest.mark.slow  # ~3-5 min on 2 cores: make test-all
@pytest.mark.parametrize("when", ["after the stop", "before the restart"])
def test_a_signal_during_the_last_runs_switch_is_one_line_and_the_rerun_completes(
        tmp_path, monkeypatch, capsys, when):
    """Ctrl-C or SIGTERM while the sweep moves its last run onto every core (the run stopped and
    checkpointed, not yet restarted; or restarted that instant): the sweep's one line, no process
    left, and the same command finishes both curves whole."""
    import src.sweep
    monkeypatch.setattr(src.sweep, "TAIL_SECONDS", 0)
    status, start = src.sweep.status, src.sweep.Sweep.start
    starts = []

    def signalled_status(run_dir, cfg=None):
        if cfg is None and when == "after the stop":  # the switch's own read of the run
            os.kill(os.getpid(), signal.SIGTERM)
        return status(run_dir, cfg)

    def signalled_start(self, words, name):
        starts.append(name)
        child = start(self, words, name)
        if when == "before the restart" and starts.count(name) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return child
    monkeypatch.setattr(src.sweep, "status", signalled_status)
    monkeypatch.setattr(src.sweep.Sweep, "start", signalled_start)
    words = ["budget=smoke", "depth=8,56", "shortcut=identity", "jobs=2", *LIGHT,
             "train.iterations=120", f"results_dir={tmp_path}"]
    assert src.sweep.main(words) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == ("sweep stopped by signal 15; the running runs were "
                                            "checkpointed: run the same command again to resume")
    assert "Traceback" not in err and not sweep_processes(tmp_path)
    monkeypatch.setattr(src.sweep, "status", status)
    monkeypatch.setattr(src.sweep.Sweep, "start", start)
    assert src.sweep.main(words) == 0
    for name in ("identity-8-s0", "identity-56-s0"):
        assert metrics(tmp_path / "smoke/runs" / name).iteration.tolist() == \
            list(range(10, 130, 10))


def sweep_processes(root) -> list[str]:
    """Command lines of the live processes working under `root` (the sweep's and its runs')."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"results_dir={root}" in cmdline and "src." in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.heavy
@pytest.mark.parametrize("sig, jobs", [  # SIGTERM of one run: the Ctrl-C test covers it in make test
    pytest.param(signal.SIGTERM, 1, marks=pytest.mark.slow), (signal.SIGKILL, 1),
    (signal.SIGTERM, 2)])
def test_stopping_the_sweep_stops_its_runs_and_the_rerun_completes_the_curves(tmp_path, sig, jobs):
    """SIGTERM: the sweep passes it on to every running run and waits; SIGKILL: the runs get
    SIGTERM from the kernel as their parent dies. Either way no run trains on alone, and the rerun
    ends with whole curves."""
    sweep = ["budget=smoke", "depth=8", "shortcut=none,identity", "train.iterations=60",
             f"jobs={jobs}", f"results_dir={tmp_path}"]
    runs = tmp_path / "smoke/runs"
    stopped = interrupt_process_after_first_row(runs / "none-8-s0", *sweep, sig=sig,
                                                module="src.sweep")
    if sig == signal.SIGTERM:
        assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
        assert "sweep stopped by signal 15" in stopped.stderr
    deadline = time.time() + 60
    while sweep_processes(tmp_path) and time.time() < deadline:
        time.sleep(0.2)
    assert not sweep_processes(tmp_path)
    summary = json.loads((runs / "none-8-s0/summary.json").read_text())
    assert summary["status"] == "interrupted" and 10 <= summary["iterations"] < 60
    if jobs == 1:
        assert not (runs / "identity-8-s0/summary.json").exists()  # never started
    else:  # started beside the first, stopped with it (or, started late, not at all)
        other = runs / "identity-8-s0/summary.json"
        assert not other.exists() or json.loads(other.read_text())["status"] == "interrupted"

    again = run_process(*sweep, module="src.sweep")
    assert again.returncode == 0, again.stderr
    for name in ("none-8-s0", "identity-8-s0"):
        assert metrics(runs / name).iteration.tolist() == list(range(10, 70, 10))


@pytest.mark.heavy
def test_a_run_folder_is_trained_by_one_process_at_a_time(smoke):
    from src.rundir import holder
    from src.sweep import status
    overrides, run_dir = smoke
    overrides = [*overrides, "train.iterations=60"]
    first = start(*overrides, pause_at=PAUSE_AT)  # it waits there until it is stopped
    wait_for_first_row(run_dir, first)
    second = run(*overrides)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines()[-1] == (
        f"error: {run_dir} is being trained by process {first.pid}; wait for it to end or stop "
        "it, then run the command again")
    assert holder(run_dir) == str(first.pid)
    cfg = compose(*overrides)
    assert status(cfg.run_dir, cfg)[0] == "running elsewhere"
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 128 + signal.SIGTERM, err
    assert "oneDNN" not in err and "cpu_feature_guard" not in err  # TensorFlow starts up quietly
    assert holder(run_dir) is None  # the kernel released it
    assert run(*overrides).returncode == 0  # now this process may train it
    assert metrics(run_dir).iteration.tolist() == list(range(10, 70, 10))


def rate_processes() -> list[str]:
    """The PIDs of the packing measurement's processes (src.bench --rate-of) on this machine."""
    found = subprocess.run(["pgrep", "-f", "src.bench --rate-of"], capture_output=True, text=True)
    return found.stdout.split()


@pytest.mark.heavy
@pytest.mark.parametrize("phase", ["plan", "packing"])
def test_a_signal_before_the_first_run_is_one_line_and_leaves_no_process(tmp_path, phase):
    """Ctrl-C while the sweep plans (measuring step rates) or measures whether packing pays."""
    p = start("budget=long", "depth=20", "shortcut=none,identity", f"results_dir={tmp_path}",
              module="src.sweep")
    deadline = time.time() + 300
    if phase == "plan":  # printed before the step rates are measured
        assert p.stdout.readline().startswith("plan: 2 runs"), p.stderr.read()
    else:
        while not rate_processes() and p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert rate_processes(), p.communicate()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1] == ("sweep stopped by signal 2 before its first run: "
                                            "nothing was trained; run the same command again")
    assert "Traceback" not in err and "sweep: run 1" not in out
    assert not rate_processes() and not (tmp_path / "long/runs").exists()


@pytest.mark.heavy
@pytest.mark.parametrize("rates, free, expected", [
    ({1: [100.0], 2: [90.0, 90.0], 3: [70.0] * 3, 4: [52.0] * 4}, None, (3, 2.1)),  # 4: 2.08x
    ({1: [100.0], 2: [52.0, 52.0]}, None, (1, 1.0)),  # 2 runs add under 10%
    ({1: [100.0], 2: [90.0, 90.0], 3: [70.0] * 3}, 3.9 * 2**30, (2, 1.8)),  # 1.5 GiB: 2 fit
])
def test_the_gpu_packing_adds_runs_while_each_adds_a_tenth_and_they_fit(monkeypatch, rates,
                                                                         free, expected):
    import src.bench
    def packed_rates(depth, jobs, threads, seconds=6.0, memory=None):
        if memory is not None:
            memory.append(2**30)  # each run's peak: 1 GiB
        return rates[jobs]
    monkeypatch.setattr(src.bench, "packed_rates", packed_rates)
    monkeypatch.setattr(src.bench.machine, "gpu_free_bytes", lambda: free)
    jobs, gain, why = src.bench.gpu_packing(20)
    assert (jobs, round(gain, 1)) == expected, why


@pytest.mark.heavy
def test_a_started_process_and_its_children_end_with_the_test_that_started_it(tmp_path):
    """What conftest's no_process_left does after a test that fails: a sweep and its run, killed
    with their process group."""
    from tests.helpers import STARTED, end_started
    p = start("budget=smoke", "depth=8", "shortcut=none", "jobs=1", f"results_dir={tmp_path}",
              module="src.sweep", pause_at=PAUSE_AT)  # its run waits at PAUSE_AT
    wait_for_first_row(tmp_path / "smoke/runs/none-8-s0", p)
    children = subprocess.run(["pgrep", "-g", str(p.pid)], capture_output=True, text=True)
    assert len(children.stdout.split()) >= 2  # the sweep and its run
    assert end_started() == [p.pid] and not STARTED
    left = subprocess.run(["pgrep", "-g", str(p.pid)], capture_output=True, text=True)
    assert left.stdout.strip() == ""


def test_the_plan_gives_each_step_of_the_long_grid_its_wall_time_packed():
    from src.budgets import Budget, expand
    from src.sweep import step_times
    grids = Budget.load("long").grids
    estimates = {f"results/long/runs/{network.folder(seed)}": 3600.0
                 for grid in grids for network, seed in expand(grid)}
    estimates["results/long/runs/identity-56-s0"] = 0.0  # finished
    lines = step_times(grids, estimates, gain=2.0)  # an hour each one at a time, packed 2x
    assert len(lines) == len(grids)
    assert lines[0] == ("  step 1 (depth=20,56 shortcut=identity block=original, 1 seed(s)): 1 of "
                        "2 new runs to train, ~00:30:00 packed, whole after ~00:30:00")
    assert lines[2].endswith("2 of 2 new runs to train, ~01:00:00 packed, whole after ~03:30:00")
    # plain-20's third seed: the grid names seeds 0-2, of which only seed 2 is new
    assert lines[4].startswith("  step 5 (depth=20 shortcut=none block=original, 3 seed(s)): 1 of "
                               "1 new runs to train")
    assert lines[6].startswith("  step 7 (depth=32 shortcut=none,identity block=original, "
                               "1 seed(s)): 2 of 2 new runs to train, ~01:00:00 packed")


def test_a_signal_inside_a_librarys_except_exception_still_stops_the_sweep(tmp_path, monkeypatch,
                                                                           capsys):
    """Keras builds each layer through inspect.getfullargspec, whose `except Exception` once
    turned a Ctrl-C in the plan into `TypeError: unsupported callable` and a traceback."""
    import src.sweep

    def plan(runs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except Exception as ex:  # as inspect.getfullargspec does
            raise TypeError("unsupported callable") from ex
    monkeypatch.setattr(src.sweep, "plan", plan)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the tests run in the background
    assert src.sweep.main(["budget=long", "depth=20", "shortcut=none",
                           f"results_dir={tmp_path}"]) == 130
    assert capsys.readouterr().err.strip() == ("sweep stopped by signal 2 before its first run: "
                                               "nothing was trained; run the same command again")
    assert signal.getsignal(signal.SIGINT) == before


def test_a_gpu_machine_packs_runs_on_the_gpu_as_measured_and_takes_float16(simulated_gpu,
                                                                          monkeypatch):
    """The GPU branches, under the simulated probe: the sweep packs as many runs on the GPU as
    measured faster (bench.gpu_packing), on TensorFlow's threads, and float16, refused on a CPU,
    is allowed."""
    import src.sweep
    from src.config import check_config
    from src.sweep import Sweep, packing
    monkeypatch.setattr(src.sweep, "gpu_packing", lambda depth, deepest: (3, 2.4, "4 gave 2.5x"))
    options = {"launcher": "basic", "jobs": "auto"}
    pending = [compose("budget=smoke", f"depth={d}") for d in (8, 20)]
    assert packing(options, pending, seconds=3600.0) == (3, None, 2.4)
    assert packing(options, pending[:1], seconds=3600.0) == (1, None, 1.0)  # nothing to pack
    assert Sweep(3, None, {}, {}, 2.4, []).env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    check_config(compose("budget=smoke", "train.precision=mixed_float16"))
