"""Figures and tables from run folders alone: synthetic runs, a missing one, several seeds."""
import json

import numpy as np
import pandas as pd

from experiments.figures import main as figures
from experiments.paper import RESNET_TEST_ERROR
from src.train import COLUMNS


def fake_run(budget_dir, shortcut, depth, seed, final_train, final_test, status="finished"):
    """A run folder as src.train writes it, with curves that fall to the given final errors."""
    folder = budget_dir / "runs" / f"{shortcut}-{depth}-s{seed}"
    folder.mkdir(parents=True)
    iterations = np.arange(100, 1001, 100)
    fall = np.linspace(90, 0, len(iterations))
    rows = pd.DataFrame({c: 0.0 for c in COLUMNS}, index=range(len(iterations)))
    rows["iteration"] = iterations
    rows["train_error"] = final_train + fall
    rows["test_error"] = np.where(iterations % 500 == 0, final_test + fall, np.nan)
    rows.to_csv(folder / "metrics.csv", index=False)
    summary = {"status": status, "iterations": 1000, "parameters": 1000 * depth,
               "train_error": float(rows.train_error.iloc[-1]),
               "test_error": float(rows.test_error.iloc[-1]), "wall_seconds": 60.0,
               "hardware": {"cpu": "Test CPU", "gpus": []}, "commit": "abc123",
               "config": {"shortcut": shortcut, "depth": depth, "seed": seed,
                          "budget": {"name": budget_dir.name},
                          "train": {"batch_size": 128, "lr": 0.1,
                                    "milestones": [0.8, 0.9]}}}
    (folder / "summary.json").write_text(json.dumps(summary))


def test_figures_and_table_from_runs_with_seeds_and_a_missing_run(tmp_path, capsys):
    budget = tmp_path / "quick"
    for seed, noise in [(0, 0.0), (1, 1.0), (2, -1.0)]:
        fake_run(budget, "none", 20, seed, 40 + noise, 42 + noise)
        fake_run(budget, "none", 56, seed, 70 + noise, 71 + noise)
        fake_run(budget, "identity", 20, seed, 35 + noise, 37 + noise)
    # ResNet-56 is missing altogether; one unfinished run is skipped with a note.
    fake_run(budget, "identity", 56, 0, 50, 50, status="interrupted")
    assert figures([str(budget)]) == 0
    assert "skipped identity-56-s0" in capsys.readouterr().out
    for name in ("figure1.png", "figure6.png", "table6.md", "table6.csv", "README.md"):
        assert (budget / name).stat().st_size > 0
    table = pd.read_csv(budget / "table6.csv").set_index("depth")
    assert table.loc[20, "plain test error (%)"] == "42.00 ± 1.00 (n=3)"
    assert table.loc[20, "ResNet test error (%)"] == "37.00 ± 1.00 (n=3)"
    assert pd.isna(table.loc[56, "ResNet test error (%)"])
    assert table.loc[20, "paper ResNet (%, Table 6)"] == RESNET_TEST_ERROR[20]
    assert table.loc[20, "ResNet minus paper"] == round(37 - RESNET_TEST_ERROR[20], 2)
    readme = (budget / "README.md").read_text()
    assert "budget `quick`" in readme and "Test CPU" in readme and "abc123" in readme
    assert "divided by 10 at 80%, 90% of them" in readme
    assert "plain-56 vs plain-20: training error 70.0% vs 40.0% (+30.0 points)" in readme
    assert "![figure6.png](figure6.png)" in readme


def test_figures_with_only_resnets_skip_figure1(tmp_path, capsys):
    budget = tmp_path / "paper"
    fake_run(budget, "identity", 20, 0, 5, 8)
    fake_run(budget, "identity", 110, 0, 2, 7)
    fake_run(budget, "identity", 1202, 0, 1, 8)
    assert figures([str(budget)]) == 0
    assert "figure1: needs plain-20 and plain-56; skipped" in capsys.readouterr().out
    assert not (budget / "figure1.png").exists() and (budget / "figure6.png").exists()
    assert "ResNet-1202 vs ResNet-20" in (budget / "README.md").read_text()


def test_no_runs_is_an_error_not_an_empty_figure(tmp_path):
    (tmp_path / "quick/runs").mkdir(parents=True)
    assert figures([str(tmp_path / "quick")]) == 1
    assert not (tmp_path / "quick/figure6.png").exists()
