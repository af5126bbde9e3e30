"""Figures and tables from run folders alone: synthetic runs, a missing one, several seeds."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from experiments.figures import main as figures
from experiments.plotting import error_limit
from experiments.paper import RESNET_TEST_ERROR
from src.budgets import Budget
from src.networks import run_name
from src.runfiles import COLUMNS


def fake_run(budget_dir, shortcut, depth, seed, final_train, final_test, status="finished",
             block="original", response=None):
    """A run folder as src.train writes it, with curves that fall to the given final errors and,
    given `response`, a responses.csv whose layer stds fall from 2 x response to response."""
    folder = budget_dir / "runs" / run_name(block, shortcut, depth, seed)
    folder.mkdir(parents=True)
    iterations = np.arange(100, 1001, 100)
    fall = np.linspace(90, 0, len(iterations))
    rows = pd.DataFrame({c: 0.0 for c in COLUMNS}, index=range(len(iterations))).assign(lr=0.1)
    rows["iteration"] = iterations
    rows["train_error"] = final_train + fall
    rows["test_error"] = np.where(iterations % 500 == 0, final_test + fall, np.nan)
    rows.to_csv(folder / "metrics.csv", index=False)
    summary = {"status": status, "iterations": 1000, "parameters": 1000 * depth,
               "train_error": float(rows.train_error.iloc[-1]),
               "test_error": float(rows.test_error.iloc[-1]), "wall_seconds": 60.0,
               "hardware": {"cpu": "Test CPU", "gpus": []}, "commit": "abc123",
               "config": {"shortcut": shortcut, "depth": depth, "seed": seed, "block": block,
                          "budget": {"name": budget_dir.name},
                          "train": {"batch_size": 128, "lr": 0.1, "precision": "float32",
                                    "milestones": [0.5, 0.75]}}}
    (folder / "summary.json").write_text(json.dumps(summary))
    if response is not None:
        layers = depth - 1
        pd.DataFrame({"layer": [f"l{i}" for i in range(layers)], "index": range(1, layers + 1),
                      "std": np.linspace(2 * response, response, layers)}).to_csv(
            folder / "responses.csv", index=False)


def test_figures_table_and_claims_from_runs_with_seeds_and_missing_runs(tmp_path, capsys):
    budget = tmp_path / "quick"
    for seed, noise in [(0, 0.0), (1, 1.0), (2, -1.0)]:
        fake_run(budget, "none", 20, seed, 40 + noise, 42 + noise, response=1.0 + noise / 10)
        fake_run(budget, "none", 56, seed, 70 + noise, 71 + noise, response=1.5)
        fake_run(budget, "identity", 20, seed, 35 + noise, 37 + noise, response=0.5)
    fake_run(budget, "none", 32, 0, 41, 43)  # one seed: its std is not known
    fake_run(budget, "identity", 56, 0, 50, 50, status="interrupted")  # skipped
    fake_run(budget, "identity", 56, 0, 30, 32, block="preact")
    resumed = budget / "runs/preact-identity-56-s0/summary.json"  # trained by two commits
    resumed.write_text(json.dumps(json.loads(resumed.read_text()) | {"commits": ["unknown", "d4e5f6"]}))
    old = budget / "runs/none-32-s0/summary.json"  # resumed before runs kept each segment's code
    old.write_text(json.dumps(json.loads(old.read_text()) | {"resumed_at": [5]}))
    assert figures([str(budget)]) == 0
    assert "skipped identity-56-s0" in capsys.readouterr().out
    for name in ("figure1.png", "figure6.png", "figure7.png", "table6.md", "table6.csv",
                 "README.md"):
        assert (budget / name).stat().st_size > 0
    assert not (budget / "figure_preact.png").exists()  # no original ResNet-56 finished
    table = pd.read_csv(budget / "table6.csv").set_index("depth")
    assert table.loc[20, "plain test error (%)"] == "42.00 ± 1.00 (n=3)"
    assert table.loc[20, "ResNet test error (%)"] == "37.00 ± 1.00 (n=3)"
    assert table.loc[32, "plain test error (%)"] == "43.00 (n=1)"
    assert pd.isna(table.loc[56, "ResNet test error (%)"])
    assert table.loc[20, "paper ResNet (%, Table 6; best of 5 at 110)"] == RESNET_TEST_ERROR[20]
    assert table.loc[20, "ResNet minus paper (its mean where given)"] == round(
        37 - RESNET_TEST_ERROR[20], 2)
    readme = (budget / "README.md").read_text()
    assert "budget `quick`" in readme and "Test CPU" in readme
    assert ("- code: commit abc123, d4e5f6; earlier segments of resumed runs (the part trained "
            "before a resume): not recorded") in readme
    assert re.search(r"^\| plain-32 .*\| unknown abc123 +\|$", readme, re.M)  # 2 segments
    assert "divided by 10 at 50%, 75% of them" in readme
    assert "plain-20 n=3" in readme and "plain-32 n=1" in readme
    assert ("- still to run: identity-56-s0, identity-32-s0, none-44-s0, identity-44-s0, "
            "identity-110-s0, preact-identity-110-s0, preact_bottleneck-projection-164-s0, "
            "identity-56-s1, identity-56-s2") in readme
    rows = [re.sub(r"\s*\|\s*", "|", line) for line in readme.splitlines()
            if line.startswith("| (")]
    # (a) plain-20 -> plain-32: plain-32 has one seed, so no spread: not decided
    assert any("plain-32 above plain-20" in r and "|1.00|-|not decided: a side with one seed|"
               in r for r in rows)
    assert any("plain-56 above plain-20" in r and "|30.00|2.00|shown|" in r for r in rows)
    # (e) ResNet-20 responds more weakly than plain-20: mean layer std 0.75 vs 1.50 +- 0.15
    assert any("(e) Figure 7" in r and "plain-20 above ResNet-20" in r and "|shown|" in r
               for r in rows)
    assert not any("(b)" in r for r in rows)  # needs ResNet-56
    assert ("- (a) plain: training error rises with depth: **shown where decided** (shown in 1 "
            "of 3 comparisons, 2 not decided: a side with one seed).") in readme
    assert "![figure6.png](figure6.png)" in readme and "![figure7.png](figure7.png)" in readme
    assert readme.index("![figure_depth.png]") < readme.index("## Claims")  # the headline first
    for name in ("figure_depth", "figure1", "figure6", "figure7"):  # a vector file beside each
        assert (budget / f"{name}.pdf").stat().st_size > 0


def test_figures_with_only_resnets_skip_figure1(tmp_path, capsys):
    budget = tmp_path / "paper"
    fake_run(budget, "identity", 20, 0, 5, 8)
    fake_run(budget, "identity", 110, 0, 2, 7)
    fake_run(budget, "identity", 1202, 0, 1, 8)
    assert figures([str(budget)]) == 0
    assert "figure1: needs plain-20 and plain-56; skipped" in capsys.readouterr().out
    assert not (budget / "figure1.png").exists() and (budget / "figure6.png").exists()
    readme = (budget / "README.md").read_text()
    assert "ResNet-20 above ResNet-110" in readme and "not decided: a side with one seed" in readme


def test_the_same_runs_draw_the_same_bytes(tmp_path):
    """A redraw of committed results changes no file unless a run changed (no dates inside)."""
    budget = tmp_path / "quick"
    fake_run(budget, "identity", 20, 0, 5, 8)
    fake_run(budget, "identity", 56, 0, 4, 7)
    drawn = []
    for _ in range(2):
        assert figures([str(budget)]) == 0
        drawn.append({f.name: f.read_bytes() for f in budget.iterdir() if f.is_file()})
    assert any(name.endswith(".pdf") for name in drawn[0]) and drawn[0] == drawn[1]


def test_no_runs_is_an_error_not_an_empty_figure(tmp_path):
    (tmp_path / "quick/runs").mkdir(parents=True)
    assert figures([str(tmp_path / "quick")]) == 1
    assert not (tmp_path / "quick/figure6.png").exists()


def test_a_root_without_run_folders_is_an_error_not_a_redraw_of_results(tmp_path, capsys):
    assert figures([str(tmp_path / "nonexistent")]) == 1
    assert f"error: no run folders in {tmp_path}/nonexistent" in capsys.readouterr().err
    fake_run(tmp_path / "quick", "identity", 20, 0, 35, 37)
    assert figures([str(tmp_path)]) == 0  # a root: every <budget>/runs below it
    assert (tmp_path / "quick/table6.md").exists()


def test_a_damaged_run_is_skipped_with_a_warning_and_the_rest_drawn(tmp_path, capsys):
    budget = tmp_path / "quick"
    for shortcut in ("none", "identity"):
        for depth in (20, 56):
            fake_run(budget, shortcut, depth, 0, 10 + depth / 10, 12 + depth / 10)
    (budget / "runs/none-56-s0/summary.json").write_text('{"status": "fini')  # torn
    (budget / "runs/identity-56-s0/metrics.csv").write_text("")
    assert figures([str(budget)]) == 0
    err = capsys.readouterr().err
    assert "skipped none-56-s0: damaged (summary.json is not valid JSON)" in err
    assert "skipped identity-56-s0: damaged (metrics.csv: it cannot be parsed as CSV)" in err
    assert (budget / "figure6.png").exists()
    assert "none-56-s0" in (budget / "README.md").read_text().split("still to run:")[1]
    assert "- left out:" not in (budget / "README.md").read_text()  # quick leaves nothing out


def test_a_budget_readme_says_what_its_grids_leave_out_and_does_not_list_it_as_to_run(
        tmp_path, monkeypatch):
    import experiments.readme
    monkeypatch.setattr(experiments.readme, "ROOT", tmp_path)  # the project README's block too
    (tmp_path / "README.md").write_text("<!-- made by make figures from results/long -->\n"
                                        "<!-- end of results/long -->\n")
    budget = tmp_path / "results" / "long"
    for shortcut in ("none", "identity"):
        fake_run(budget, shortcut, 20, 0, 10, 12)
    fake_run(budget, "none", 32, 0, 50, 52, status="parked")  # unfinished, its checkpoint in git
    summary = budget / "runs/none-32-s0/summary.json"
    summary.write_text(json.dumps(json.loads(summary.read_text()) | {"iterations": 4200} | {
        "config": json.loads(summary.read_text())["config"] | {"train": {"iterations": 16000}}}))
    assert figures([str(budget)]) == 0
    readme = (budget / "README.md").read_text()
    assert "none-32-s0 (parked at 4,200 of 16,000)" in readme.split("- still to run: ")[1]
    assert "plain-32" not in (budget / "table6.md").read_text()  # drawn once finished
    left_out = Budget.load("long").left_out
    assert left_out.startswith("second seeds") and f"\n- left out: {left_out}\n" in readme
    to_run = readme.split("- still to run: ")[1].split("\n")[0].split(", ")
    assert "identity-56-s4" in to_run  # step 4 is planned; step 5 is not
    assert not {"none-32-s1", "identity-44-s1", "preact-identity-110-s0"} & set(to_run)
    glance = (tmp_path / "README.md").read_text()
    # the project README's results table says it is not whole, and how a parked run goes on
    still = glance.split("Still to run at this budget: ")[1].split("\n")[0]
    assert "none-32-s0 (parked at 4,200 of 16,000), " in still and "resumes on any clone" in still


def test_a_results_folder_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch):
    import experiments.plotting
    fake_run(tmp_path / "quick", "identity", 20, 0, 35, 37)

    def read_only(fig, out):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(experiments.plotting, "save", read_only)
    assert figures([str(tmp_path / "quick")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: cannot write the figures of "
                                               f"{tmp_path}/quick: Permission denied")


def test_a_budget_of_projection_runs_only_gets_its_runs_listed(tmp_path, capsys):
    budget = tmp_path / "quick"
    fake_run(budget, "projection", 20, 0, 10, 12)
    assert figures([str(budget)]) == 0
    assert "ResNet-B-20" in (budget / "README.md").read_text()


def test_the_gradient_figure_and_its_ratios_come_from_gradients_csv(tmp_path, monkeypatch):
    """Each seed's first-over-last-third ratio, then their geometric mean, low and high: a seed
    with large norms does not outweigh the others (as a mean of the norms before the ratio
    would)."""
    import experiments.plotting
    titles, save = {}, experiments.plotting.save
    monkeypatch.setattr(experiments.plotting, "save", lambda fig, out: (titles.setdefault(
        out.stem, fig._suptitle.get_text()), save(fig, out)))
    budget = tmp_path / "quick"
    falls = {"none": (100.0, 400.0), "identity": (2.0, 8.0)}  # seed 0's and seed 1's
    for shortcut, by_seed in falls.items():
        for seed, fall in enumerate(by_seed):
            fake_run(budget, shortcut, 56, seed, 40, 42)
            folder = budget / "runs" / run_name("original", shortcut, 56, seed)
            layers = np.arange(1, 56)  # the first layers' gradient `fall` times the last ones'
            scale = 1000.0 if seed == 1 else 1.0  # seed 1's norms are far larger
            pd.concat([pd.DataFrame({"iteration": i, "index": layers, "layer": layers.astype(str),
                                     "output_gradient_norm": scale * np.geomspace(fall, 1, 55)
                                     / max(i, 1), "kernel_gradient_norm": 1.0,
                                     "bn_output_gradient_norm": scale * np.geomspace(fall, 1, 55)
                                     / 2 if i == 0 else np.nan, "kernel_norm": 1.0})
                       for i in (0, 100, 500, 1000)]).to_csv(folder / "gradients.csv", index=False)
    assert figures([str(budget)]) == 0
    assert (budget / "figure_gradients.png").exists() and (budget / "figure_gradients.pdf").exists()
    readme = (budget / "README.md").read_text()
    table = readme.split("## The backward signal")[1].split("## Table 6")[0]

    def ratio(fall):  # first third over last third (geometric means) of a fall to 1 over 55 layers
        norms = np.log(np.geomspace(fall, 1, 55))
        return np.exp(norms[:18].mean() - norms[-18:].mean())
    bn = table.split("at the BN outputs")[1]  # measured at iteration 0 only
    combined = {}
    for shortcut, net in [("none", "plain"), ("identity", "ResNet")]:
        low, high = (ratio(fall) for fall in falls[shortcut])
        combined[net] = np.sqrt(low * high)
        cell = f"{combined[net]:.3g} ({low:.3g}-{high:.3g}, 2)"
        line = next(row for row in table.splitlines() if row.startswith(f"| {net}-56"))
        assert line.count(cell) == 4, line  # iteration 0, first row, before the drop, end
        bn_line = next(row for row in bn.splitlines() if row.startswith(f"| {net}-56"))
        assert bn_line.count(cell) == 1, bn
    header = next(row for row in bn.splitlines() if row.startswith("| name"))
    assert "initialisation" in header and "end" not in header, header
    # the effective step: lr 0.1 x 1 / 1 at every layer, a ratio of 1 at every moment
    step = table.split("The effective step")[1]
    cells = next(row for row in step.splitlines() if row.startswith("| plain-56")).split("|")
    assert [c.strip() for c in cells[2:-1]] == ["1 (1-1, 2)"] * 4
    # a measurement the claims' rule does not judge: no finding in the title, the ratios above
    title = titles["figure_gradients"].split("\n")[0]
    assert "not judged" in title and "x in" not in title, title


def test_each_gradient_panel_counts_the_seeds_it_draws(tmp_path, monkeypatch):
    """A seed that measured the BN-output gradient at iteration 0 only (an older run) counts at
    initialisation, not after: each panel's legend says how many seeds its mean is over."""
    import experiments.plotting
    legends, save = {}, experiments.plotting.save
    monkeypatch.setattr(experiments.plotting, "save", lambda fig, out: (legends.update({
        (ax.get_ylabel().split()[0], ax.get_title()): [t.get_text() for t in
                                                       ax.get_legend().get_texts()]
        for ax in fig.axes if ax.get_legend()}), save(fig, out)))
    budget = tmp_path / "quick"
    layers = np.arange(1, 56)
    for seed in (0, 1):
        fake_run(budget, "none", 56, seed, 40, 42)
        pd.concat([pd.DataFrame({"iteration": i, "index": layers, "layer": layers.astype(str),
                                 "output_gradient_norm": 1.0, "kernel_gradient_norm": 1.0,
                                 "bn_output_gradient_norm": 1.0 if i == 0 or seed == 1 else np.nan,
                                 "kernel_norm": 1.0}) for i in (0, 100, 500, 1000)]).to_csv(
            budget / "runs" / run_name("original", "none", 56, seed) / "gradients.csv",
            index=False)
    assert figures([str(budget)]) == 0
    assert legends[("norm", "initialisation")] == ["plain-56 (2 seeds)"]
    assert legends[("norm", "end")] == ["plain-56 (1 seed)"]
    assert legends[("effective", "end")] == ["plain-56 (2 seeds)"]


def test_a_title_says_no_more_than_the_claims_rule(tmp_path, monkeypatch):
    """Pre-activation ResNet-56 ends below ResNet-56 on one seed each: claim (d) is not decided,
    and the figure's title says so rather than "trains more easily"."""
    import experiments.plotting
    titles = {}
    monkeypatch.setattr(experiments.plotting, "save", lambda fig, out: titles.setdefault(
        out.stem, fig._suptitle.get_text()))
    budget = tmp_path / "quick"
    fake_run(budget, "identity", 56, 0, 40, 42, response=1.0)
    fake_run(budget, "identity", 56, 0, 30, 33, block="preact")
    fake_run(budget, "none", 56, 0, 60, 62, response=2.0)
    assert figures([str(budget)]) == 0
    assert titles["figure_preact"].startswith("(d) The pre-activation unit (He et al. 2016) trains "
                                              "deep nets more easily than the original: not "
                                              "decided yet\n")
    assert titles["figure7"].startswith("Figure 7, (e) ResNets respond more weakly, deeper ones "
                                        "more so: not decided yet")


def test_figure_preact_pairs_each_unit_with_its_own_original_form(tmp_path, monkeypatch):
    """The bottleneck pair joins the basic pair in figure_preact and in table6.md's
    pre-activation table, beside the pre-activation paper's numbers; no name is typed in."""
    import experiments.plotting
    drawn = {}
    monkeypatch.setattr(experiments.plotting, "save", lambda fig, out: drawn.setdefault(
        out.stem, [t.get_text() for ax in fig.axes if ax.get_legend()
                   for t in ax.get_legend().get_texts()]))
    budget = tmp_path / "quick"
    fake_run(budget, "identity", 110, 0, 40, 42)
    fake_run(budget, "identity", 110, 0, 30, 33, block="preact")
    fake_run(budget, "projection", 164, 0, 35, 37, block="bottleneck")
    fake_run(budget, "projection", 164, 0, 25, 28, block="preact_bottleneck")
    assert figures([str(budget)]) == 0
    assert drawn["figure_preact"][:4] == [
        "ResNet-110 (n=1)", "bottleneck ResNet-B-164 (n=1)",
        "pre-act ResNet-110 (n=1)", "pre-act bottleneck ResNet-B-164 (n=1)"]
    table = (budget / "table6.md").read_text()
    assert "He et al. 2016" in table and "nan" not in table  # a missing number is "-"
    row = next(line for line in table.splitlines() if line.startswith("| bottleneck ResNet-B-164"))
    assert [c.strip() for c in row.strip("|").split("|")][2:] == [
        "37.00 (n=1)", "5.93", "28.00 (n=1)", "5.46"]


def test_the_landscape_caption_states_each_nets_measures_from_its_landscape_csv(tmp_path,
                                                                              monkeypatch):
    """The caption gives each net's border / centre loss and its not-convex shares; the title
    the central share: a 3 x 3 bowl (plain) bends nowhere, a 5 x 5 cap (ResNet) everywhere."""
    import experiments.plotting
    titles = {}
    monkeypatch.setattr(experiments.plotting, "save", lambda fig, out: titles.setdefault(
        out.stem, fig._suptitle.get_text()))
    budget = tmp_path / "quick"
    for shortcut, axis, loss in [("none", (-1, 0, 1), lambda x, y: 1 + 4 * (x * x + y * y)),
                                 ("identity", (-1, -0.5, 0, 0.5, 1),
                                  lambda x, y: 2 - 0.5 * (x * x + y * y))]:
        fake_run(budget, shortcut, 20, 0, 10, 12)
        pd.DataFrame([{"kind": "line", "x": a, "y": 0.0, "loss": 2.3 - a, "error": 0,
                       "images": 256} for a in (0, 0.5, 1)]
                     + [{"kind": "plane", "x": x, "y": y, "loss": loss(x, y), "error": 0,
                         "images": 256} for x in axis for y in axis]).to_csv(
            budget / "runs" / run_name("original", shortcut, 20, 0) / "landscape.csv", index=False)
    assert figures([str(budget)]) == 0
    assert "plain-20 0%, ResNet-20 100% of a plane's central points" in titles["figure_landscape"]
    caption = (budget / "README.md").read_text().split("## The loss landscape")[1].split("##")[0]
    # the border of a 3 x 3 plane: 4 points at distance 1, 4 corners at sqrt(2): mean r^2 1.5;
    # of a 5 x 5 one: 16 points, mean r^2 (10 x 1.5 + 6 x 7 / 6) / 16 = 1.375
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[3:7]] for line in
            caption.splitlines() if line.startswith(("| plain-20", "| ResNet-20"))}
    assert rows == {"plain-20": ["1", "7 (7 to 7)", "0 (0 to 0)", "0 (0 to 0)"],
                    "ResNet-20": ["1", "0.656 (0.656 to 0.656)", "100 (100 to 100)",
                                  "100 (100 to 100)"]}, caption


def test_the_project_readme_takes_its_verdicts_from_the_claims_block_by_block(tmp_path):
    from experiments.readme import write_findings
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- made by make figures from results/long -->\n"
                      "- (a) typed by hand: **shown**\n<!-- end of results/long -->\nrest\n")
    assert write_findings(readme, "long", ["- (a) plain: **not shown** (shown in 0 of 1)."])
    assert readme.read_text() == (
        "intro\n<!-- made by make figures from results/long -->\n"
        "- (a) plain: **not shown** (shown in 0 of 1).\n<!-- end of results/long -->\nrest\n")
    assert not write_findings(readme, "quick", ["- (a) ..."])  # no block of that budget


def test_the_lesion_caption_compares_the_units_both_families_can_remove(tmp_path, monkeypatch):
    """A downsampling unit (first of stages 2 and 3) has no plain counterpart: the worst rise is
    given over the shared units (with their median), as a share of the room left before chance,
    and over all."""
    import experiments.plotting
    titles = {}
    monkeypatch.setattr(experiments.plotting, "save", lambda fig, out: titles.setdefault(
        out.stem, fig._suptitle.get_text()))
    budget = tmp_path / "long"
    for shortcut, units in (("identity", {"stage1_block1": 11.0, "stage2_block1": 25.0,
                                          "stage2_block2": 12.0}),
                            ("none", {"stage1_block2": 90.0})):
        whole = 10.0 if shortcut == "identity" else 12.0
        fake_run(budget, shortcut, 20, 0, 8, whole)
        pd.DataFrame({"index": range(len(units) + 1), "unit": ["none", *units],
                      "test_error": [whole, *units.values()]}).to_csv(
            budget / f"runs/{shortcut}-20-s0/lesion.csv", index=False)
    assert figures([str(budget)]) == 0
    assert titles["figure_lesion"].startswith(
        "Removing one unit (Veit et al. 2016), median rise in test error over the units both "
        "families have: ResNet-20 1.5, plain-20 78 points\n"), titles["figure_lesion"]
    readme = (budget / "README.md").read_text()
    assert "![figure_lesion.png](figure_lesion.png)" in readme
    caption = readme.split("## Removing one unit")[1].split("##")[0]
    rows = {line.split("|")[1].strip(): [float(c) for c in line.split("|")[2:-1]]
            for line in caption.splitlines() if line.startswith(("| plain-20", "| ResNet-20"))}
    assert rows == {"ResNet-20": [1, 10, 1.5, 2, 0.025, 15], "plain-20": [1, 12, 78, 78, 1, 78]}, \
        caption


def test_the_readmes_kernel_growth_is_what_the_shipped_quick_runs_measured():
    """The README's (and docs/interventions.md's) 4-220x and 1.1-9x: the norm of each kernel of
    the first third of the convolutions at the first row over its initial norm, every seed of
    quick plain-56 and ResNet-56, from their gradients.csv."""
    from tests.helpers import ROOT
    def growth(shortcut):
        ratios = []
        for folder in sorted((ROOT / "results/quick/runs").glob(f"{shortcut}-56-s*")):
            norms = pd.read_csv(folder / "gradients.csv").pivot(
                index="iteration", columns="index", values="kernel_norm")
            ratios += list((norms.loc[50] / norms.loc[0]).iloc[:len(norms.columns) // 3])
        return min(ratios), max(ratios)
    plain, resnet = growth("none"), growth("identity")
    said = f"grow {plain[0]:.0f}-{plain[1]:.0f}x in norm within the\nfirst 50 iterations " \
        f"(ResNet-56's {resnet[0]:.1f}-{resnet[1]:.0f}x)"
    assert said in (ROOT / "README.md").read_text(), said
    assert f"grow {plain[0]:.0f}-{plain[1]:.0f}x" in (ROOT / "docs/interventions.md").read_text()


@pytest.mark.slow  # ~55 s on 2 AVX2 cores: it kept make test over 20 min there
@pytest.mark.heavy  # counts the FLOPs of every net of three sweeps, and of ResNet-1202
def test_the_gpu_hours_said_are_the_counted_ones():
    """The quick start's "11-53 GPU-hours" for `make reproduce-cifar BUDGET=paper SEEDS=5` and
    every row of docs/speed.md's table: the sweeps' training FLOPs (src.bench.budget_cost) at 10
    and at 2 TFLOP/s sustained."""
    from src.bench import GPU_TFLOPS, budget_cost, in_the_sweep
    from tests.helpers import ROOT
    hours = [f"GPU-hours at {t} TFLOP/s" for t in (max(GPU_TFLOPS), min(GPU_TFLOPS))]

    def row(name, cost):
        return f"| {name} | {cost.runs:.0f} | {cost.PFLOP:.3g} | " + "-".join(
            f"{cost[h]:.2g}" for h in hours) + " |"
    paper = budget_cost("paper", seeds=5)
    low, high = (in_the_sweep(paper)[h] for h in hours)
    said = f"`make reproduce-cifar BUDGET=paper SEEDS=5` | {low:.0f}-{high:.0f} GPU-hours"
    assert said in (ROOT / "README.md").read_text(), said
    networks = paper.set_index("network").drop(columns="in the sweep").astype(float)
    resnet56, resnet1202 = networks.loc["ResNet-56"], networks.loc["ResNet-1202"]
    rows = [row("`quick`", in_the_sweep(budget_cost("quick"))),
            row("`long`", in_the_sweep(budget_cost("long"))),
            row("`paper`, one seed per network", in_the_sweep(budget_cost("paper"))),
            row("`paper`, `SEEDS=5`", in_the_sweep(paper)),
            row("one ResNet-56 at `paper`", resnet56 / resnet56.runs),
            row("one ResNet-1202 at `paper` (in no sweep)", resnet1202)]
    speed = (ROOT / "docs/speed.md").read_text()
    for said in rows:
        assert said in speed, said


def test_figure7_s_legend_gives_the_mean_the_claims_judge(tmp_path, monkeypatch):
    """The long budget's scouting seed (identity-20-s0) is drawn but left out of claim (e): the
    legend's mean std is that of the judged seeds, and says so."""
    import experiments.plotting
    legends, save = {}, experiments.plotting.save
    monkeypatch.setattr(experiments.plotting, "save", lambda fig, out: (legends.setdefault(
        out.stem, [t.get_text() for t in fig.axes[0].get_legend().get_texts()]), save(fig, out)))
    budget = tmp_path / "long"
    fake_run(budget, "identity", 20, 0, 10, 12, response=4.0)  # scouting
    fake_run(budget, "identity", 20, 1, 10, 12, response=1.0)
    fake_run(budget, "none", 20, 1, 10, 12, response=2.0)
    assert figures([str(budget)]) == 0
    assert legends["figure7"] == [
        "ResNet-20 (n=2): mean std 1.50 (without its 1 scouting seed, drawn: the claims leave it "
        "out)", "plain-20 (n=1): mean std 3.00"], legends["figure7"]
