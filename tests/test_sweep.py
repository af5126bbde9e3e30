"""The sweep: its plan, resuming (finished runs skipped), and its account of failures."""
import json
import re

from tests.conftest import run


def test_sweep_skips_finished_runs_reports_failures_and_exits_nonzero(tmp_path):
    sweep = ["budget=smoke", "depth=20", "shortcut=none,identity", f"results_dir={tmp_path}"]
    first = run(*sweep, module="src.sweep")
    assert first.returncode == 0, first.stderr
    assert "plan: 2 runs, budget smoke (30 iterations each)" in first.stdout
    assert "estimated wall time on this machine" in first.stdout
    assert "sweep: 2 of 2 runs finished" in first.stdout
    runs = tmp_path / "smoke/runs"
    plain = runs / "none-20-s0"
    # The plain run's folder now claims another config: that run must fail, the other skip.
    summary = json.loads((plain / "summary.json").read_text())
    summary["config"]["train"]["lr"] = 0.2
    (plain / "summary.json").write_text(json.dumps(summary))
    second = run(*sweep, module="src.sweep")
    assert second.returncode == 1
    assert "finished" in second.stdout and "is finished" in second.stdout  # identity-20 skipped
    assert re.search(r"none-20-s0\s+conflict", second.stdout)
    assert f"not finished: {plain} (conflict at iteration 0)" in second.stderr
    assert "sweep: 1 of 2 runs finished" in second.stdout
    assert json.loads((runs / "identity-20-s0/summary.json").read_text())["status"] == "finished"


def test_sweep_refuses_bad_values_before_running_anything(tmp_path):
    for word, message in [("launcher=slurmish", "launcher='slurmish' is not allowed"),
                          ("seeds=0", "seeds='0' is not allowed"),
                          ("depth=20,22", "depth=22 is not allowed")]:
        result = run("budget=smoke", f"results_dir={tmp_path}", word, module="src.sweep")
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert not (tmp_path / "smoke").exists()


def test_the_quick_sweep_covers_figure_6_with_three_seeds_where_the_claims_are_made():
    from src.sweep import parse, planned_runs
    options, grids, passed = parse(["budget=quick", "results_dir=/tmp/q"])
    names = [cfg.run_dir.rsplit("/", 1)[1] for cfg in planned_runs(options, grids, passed)]
    assert len(names) == len(set(names)) == 19
    for net in ("none-20", "none-56", "identity-20", "identity-56"):
        assert {f"{net}-s{s}" for s in range(3)} <= set(names)
    assert {"none-32-s0", "none-44-s0", "identity-32-s0", "identity-44-s0", "identity-110-s0",
            "preact-identity-56-s0", "preact-identity-110-s0"} <= set(names)
    assert names[:4] == ["none-20-s0", "identity-20-s0", "none-56-s0", "identity-56-s0"]
    assert "none-110-s0" not in names  # plain-110 is in the paper budget's sweep only

    options, grids, passed = parse(["budget=quick", "seeds=2", "depth=20", "shortcut=identity"])
    assert [(g["depth"], g["shortcut"], g["block"], g["seeds"]) for g in grids] == [
        ("20", "identity", "original", 2)]
