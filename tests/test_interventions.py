"""The interventions on plain-56 (conf/interventions.yaml): runnable as planned, judged by the
claims' rule, drawn and written from run folders alone."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments import interventions
from experiments.claims import SHOWN_AT
from src.config import check_config, compose
from src.networks import run_name
from tests.test_figures import fake_run


def test_every_planned_intervention_is_a_valid_run_config_judged_by_the_claims_rule():
    plan = interventions.load_plan()
    assert plan["rule"]["shown_at"] == SHOWN_AT
    for name in plan["interventions"]:
        words = interventions.sweep_words(plan, name, interventions.Path("results"))
        run_words = [w for w in words if not w.startswith(("seeds=", "results_dir="))]
        check_config(compose(*run_words))  # raises ConfigError on a value a run would refuse
        assert f"results_dir=results/interventions/{name}" in words


def gradients(folder, first_third_step: float):
    """A gradients.csv whose first third of 55 convolutions has `first_third_step` times the
    effective step of the rest (lr 0.1 from metrics.csv, |W| = 1)."""
    layers = np.arange(1, 56)
    pd.concat([pd.DataFrame({"iteration": i, "index": layers, "layer": layers.astype(str),
                             "output_gradient_norm": 1.0,
                             "kernel_gradient_norm": np.where(layers <= 18, first_third_step, 1.0),
                             "bn_output_gradient_norm": 1.0, "kernel_norm": 1.0})
               for i in (0, 100, 1000)]).to_csv(folder / "gradients.csv", index=False)


@pytest.fixture
def results(tmp_path):
    """Shipped plain-56 and ResNet-56 (3 seeds each) and two interventions' runs."""
    finals = {("quick", "none"): [75.7, 75.6, 75.8], ("quick", "identity"): [58.3, 51.2, 59.1],
              ("interventions/held_kernel_norms/quick", "none"): [50.0, 52.0, 54.0],
              ("interventions/warmup/quick", "none"): [75.0, 76.5, 74.0]}
    steps = {"quick": 0.01, "interventions/held_kernel_norms/quick": 1.0,
             "interventions/warmup/quick": 0.012}
    for (budget, shortcut), errors in finals.items():
        for seed, error in enumerate(errors):
            fake_run(tmp_path / budget, shortcut, 56, seed, error, error)
            gradients(tmp_path / budget / "runs" / run_name("original", shortcut, 56, seed),
                      steps[budget] if shortcut == "none" else 0.5)
    return tmp_path


def test_the_verdicts_follow_the_rule_written_before_the_runs(results):
    plan = interventions.load_plan()
    runs, curves, ratios = interventions.gather(results, plan, "quick")
    judged = interventions.judge(plan, runs, ratios).set_index(["intervention", "verdict of"])
    held, warmup = (plan["interventions"][k]["label"] for k in ("held_kernel_norms", "warmup"))
    # (i): 75.70 - 52.00 = 23.7 > 2 x 2.0 (held); 75.70 - 75.17 < 2 x 1.26 (warm-up)
    assert judged.loc[(held, "(i) lifts plain-56"), "verdict"] == "shown"
    assert judged.loc[(held, "(i) lifts plain-56"), "difference"] == pytest.approx(23.7)
    assert judged.loc[(warmup, "(i) lifts plain-56"), "verdict"] == "not shown at this budget"
    # (ii): 52.0 - 56.2 < 0: not shown worse than ResNet-56
    assert judged.loc[(held, "(ii) against ResNet-56"), "verdict"] == (
        "not shown worse than ResNet-56")
    # (iii): the ratio at the first row is 100x the baseline's; every seed alike: std 0
    assert judged.loc[(held, "(iii) holds the early step up"), "difference"] == pytest.approx(2.0)
    assert judged.loc[(warmup, "(iii) holds the early step up"), "verdict"] == "shown"


def test_make_interventions_draws_and_writes_from_the_run_folders(results, capsys):
    assert interventions.main([str(results)]) == 0
    folder = results / "interventions"
    assert (folder / "figure_interventions.png").exists()
    readme = (folder / "README.md").read_text()
    assert "## The rule, fixed before the runs" in readme
    per_seed = next(line for line in readme.split("per seed")[1].splitlines()
                    if line.startswith("| plain-56, kernel norms held"))
    assert [c.strip() for c in per_seed.split("|")[2:5]] == ["50.00", "52.00", "54.00"]
    assert "compute of the interventions: 0.10 h of wall time over 6 runs" in readme  # 6 x 60 s


def test_the_long_follow_up_trains_only_what_lifted_plain_56_and_is_drawn_beside_it(
        results, monkeypatch, capsys):
    """Verdict (i): held kernel norms lifted plain-56 at quick, the warm-up did not; only the
    first is trained at long (its sweep's words), and its long runs get their own section."""
    plan = interventions.load_plan()
    assert interventions.lifted(plan, results) == ["held_kernel_norms"]
    calls = []
    monkeypatch.setattr(interventions.subprocess, "call", lambda words: calls.append(words) or 0)
    assert interventions.main(["train-long", str(results)]) == 0
    assert len(calls) == 1 and "budget=long" in calls[0] and "seeds=1" in calls[0]
    assert "train.kernel_norm=held" in calls[0]
    for shortcut in ("none", "identity"):
        fake_run(results / "long", shortcut, 56, 1, 30.0 if shortcut == "none" else 5.0, 30.0)
    fake_run(results / "long", "identity", 56, 0, 50.0, 50.0)  # a scouting run: not judged
    held = plan["interventions"]["held_kernel_norms"]["label"]
    fake_run(results / "interventions/held_kernel_norms/long", "none", 56, 0, 25.0, 26.0,
             status="parked")  # the follow-up on its way: said with its progress
    summary = results / "interventions/held_kernel_norms/long/runs/none-56-s0/summary.json"
    parked = json.loads(summary.read_text())
    summary.write_text(json.dumps(parked | {"iterations": 5100, "config": parked["config"] | {
        "train": parked["config"]["train"] | {"iterations": 16000}}}))
    assert interventions.unfinished(results, plan) == [(held, "parked", 5100, 16000)]
    assert interventions.main([str(results)]) == 0
    section = (results / "interventions/README.md").read_text().split("## At the `long` budget")[1]
    assert f"- {held}: parked at iteration 5,100 of 16,000; " in section
    shutil.rmtree(summary.parent)
    fake_run(results / "interventions/held_kernel_norms/long", "none", 56, 0, 25.0, 26.0)
    assert interventions.unfinished(results, plan) == []
    assert interventions.main([str(results)]) == 0
    assert (results / "interventions/figure_interventions_long.png").exists()
    section = (results / "interventions/README.md").read_text().split("## At the `long` budget")[1]
    assert "not decided: a side with one seed" in section and "25.00" in section
    assert "| 5.00 (n=1) " in section  # ResNet-56: its scouting seed 0 (50.00) left out
    assert "(shown, not judged: ResNet-56 seed 0, which chose the budget's length)" in section
    assert "compute of the interventions: 0.02 h of wall time over 1 run" in section


def test_no_intervention_runs_is_one_line_and_nothing_written(tmp_path, capsys):
    """Nothing to draw is not a failure (make figures goes on); bad arguments are."""
    assert interventions.main([str(tmp_path)]) == 0
    assert "no finished intervention runs" in capsys.readouterr().out
    assert not (tmp_path / "interventions" / "README.md").exists()
    for bad in (["train", "a", "b"], ["--points=5"], ["train", "--help"]):
        assert interventions.main(bad) == 2
        assert capsys.readouterr().err.startswith(f"error: {' '.join(bad)} is not allowed: ")


def test_the_readme_concludes_only_what_every_interventions_verdicts_decide():
    plan = interventions.load_plan()
    def judged(against_held):
        rows = []
        for label, against in ((plan["interventions"]["held_kernel_norms"]["label"], against_held),
                               (plan["interventions"]["warmup"]["label"],
                                "shown worse than ResNet-56")):
            for claim, verdict in (("(i) lifts plain-56", "shown"),
                                   ("(ii) against ResNet-56", against),
                                   ("(iii) holds the early step up", "shown")):
                rows.append({"intervention": label, "verdict of": claim, "higher": "75.7",
                             "lower": "70.0", "difference": 5.0 if claim[:3] == "(i)" else 15.0,
                             "verdict": verdict})
        return pd.DataFrame(rows)
    both = interventions.glance_lines(plan, judged("shown worse than ResNet-56"))
    assert both[-1].startswith("Where the early layers' effective step was held up ((iii) "
                               "shown: plain-56, kernel norms held, plain-56, warm-up)")
    assert both[-1].endswith("closed 25% of the 20.0 points between plain-56 and ResNet-56; "
                             "plain-56, warm-up closed 25% of the 20.0 points between plain-56 "
                             "and ResNet-56): at this budget, these interventions removed part "
                             "of the deficit, not all of it. The interventions act on every "
                             "layer, not on the early ones alone: this does not tell whether it "
                             "is the early layers' step that matters.")
    one = interventions.glance_lines(plan, judged("not shown worse than ResNet-56"))
    assert len(one) == 2  # one held the step up and was not shown worse: no conclusion
    held = plan["interventions"]["held_kernel_norms"]["label"]
    waiting = interventions.glance_lines(plan, judged("not shown worse than ResNet-56"), None,
                                         [(held, "parked", 5100, 16000)])
    assert waiting[-1] == (f"- {held}: parked at iteration 5,100 of 16,000; once it finishes, "
                           "its final error is set beside the baseline's seeds; with one seed the "
                           "rule can only call it not decided.")
    assert plan["follow_up"]["seeds"] == 1  # else: "judged by the same rule once it finishes"
    assert waiting[-3].startswith("At the `long` budget (`make interventions-long`")
    later = judged("shown worse than ResNet-56")
    finished = interventions.glance_lines(plan, later, later[later.intervention == held])
    assert finished[-1].startswith(f"- {held} (long): final training error 70.0 against 75.7")
    assert finished[-1].endswith("(iii) its early layers' step raised (first logged row): "
                                 "**shown**.")


def test_every_shipped_intervention_run_is_finished_for_the_command_that_trains_it():
    """make interventions on a fresh clone retrains nothing that is shipped: each committed
    run's folder and config are what its intervention's sweep asks, and it is finished or parked
    (which the sweep resumes) (src.sweep.status)."""
    import subprocess
    from src.sweep import status
    from tests.helpers import ROOT
    plan = interventions.load_plan()
    listed = subprocess.run(["git", "ls-files", "--", "results/interventions/*/summary.json"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    changed = subprocess.run(["git", "diff", "--name-only", "--", "results/interventions"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    shipped = [ROOT / path for path in listed if path not in changed]
    for summary in shipped:
        name, budget = summary.parts[-5], summary.parts[-4]
        words = [w for w in interventions.sweep_words(plan, name, ROOT / "results",
                                                      budget != plan["budget"])
                 if not w.startswith("seeds=")]
        cfg = compose(*words, f"seed={summary.parent.name.rsplit('-s', 1)[1]}")
        assert Path(cfg.run_dir) == summary.parent
        assert status(cfg.run_dir, cfg)[0] in ("finished", "parked"), summary
    assert len(shipped) >= 6 or not (ROOT / "results/interventions").exists()
