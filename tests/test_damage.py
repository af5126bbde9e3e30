"""Every file of a finished run folder missing, emptied or replaced by garbage, met by every
reader: the analyses (experiments.*), `make figures`, the rerun (src.run) and the sweep's plan.
Each answers in one line, exits as the table below says, and leaves the folder as it was."""
import shutil

import pytest

from src.config import compose
from tests.helpers import LIGHT, run

FAULTS = {"missing": None, "emptied": b"", "garbage": bytes(range(256)) * 8}
ANALYSES = {"experiments.evaluate": [], "experiments.lesion": [],
            "experiments.landscape": ["--images", "128", "--grid", "2", "--line", "2"],
            "experiments.responses": [], "experiments.gradients": []}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished smoke run of ResNet-8, with its final weights; copied by each test."""
    results = tmp_path_factory.mktemp("results")
    overrides = ["budget=smoke", "depth=8", *LIGHT, "train.iterations=20"]
    assert run(*overrides, f"results_dir={results}").returncode == 0
    return overrides, results / "smoke/runs/identity-8-s0"


@pytest.fixture
def damaged(finished, tmp_path):
    """make(name, fault): a copy of the finished run with its file `name` (a path inside the
    folder; "tensorboard" is its events file) damaged; returns the run's overrides, its folder
    and a listing of the folder (every file and its bytes) to compare with afterwards."""
    overrides, source = finished

    def make(name, fault):
        run_dir = tmp_path / "smoke/runs/identity-8-s0"
        shutil.copytree(source, run_dir)
        path = next((run_dir / "tensorboard").iterdir()) if name == "tensorboard" else \
            run_dir / name
        if FAULTS[fault] is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(FAULTS[fault])
        return [*overrides, f"results_dir={tmp_path}"], run_dir, listing(run_dir)
    return make


def listing(run_dir):
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


NO_WEIGHTS = ("error: {run_dir} holds no finished run with its final.weights.h5 (runs finished "
              "before the suite wrote them have none): nothing to analyse")
EXPECTED = {  # (file, fault): the one line every analysis prints
    ("final.weights.h5", "missing"): NO_WEIGHTS,
    ("final.weights.h5", "emptied"): "error: {run_dir}/final.weights.h5 cannot be read (",
    ("final.weights.h5", "garbage"): "error: {run_dir}/final.weights.h5 cannot be read (",
    ("summary.json", "missing"): NO_WEIGHTS,
    ("summary.json", "emptied"): "error: {run_dir}: summary.json is not valid JSON",
    ("summary.json", "garbage"): "error: {run_dir}: summary.json is not valid JSON"}


@pytest.mark.parametrize("name, fault", list(EXPECTED))
@pytest.mark.parametrize("module", list(ANALYSES))
def test_an_analysis_of_a_run_with_damaged_weights_or_summary_says_so_in_one_line(
        damaged, module, name, fault):
    _, run_dir, before = damaged(name, fault)
    result = run(*ANALYSES[module], str(run_dir), module=module)
    assert result.returncode != 0
    line, expected = one_line(result), EXPECTED[name, fault].format(run_dir=run_dir)
    assert line.startswith(expected), line
    if expected.endswith("("):  # the reason, then the way out
        assert line.endswith("restore it (git checkout -- the file, for a shipped run) or "
                             "retrain the run into another results_dir"), line
    else:
        assert line == expected
    assert listing(run_dir) == before  # nothing renamed, nothing written


@pytest.mark.parametrize("fault", ["emptied", "garbage"])
@pytest.mark.parametrize("name", ["gradients.csv", "responses.csv", "lesion.csv",
                                  "landscape.csv"])
def test_make_figures_leaves_out_only_what_a_damaged_side_file_feeds(damaged, name, fault,
                                                                       capsys):
    from experiments.figures import main as figures
    _, run_dir, before = damaged(name, fault)
    assert figures([str(run_dir.parent.parent)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    warning = [line for line in err.splitlines() if name in line]
    assert len(warning) == 1 and warning[0].startswith(
        f"warning: identity-8-s0/{name} cannot be read ("), err
    assert warning[0].endswith("left out of what it feeds; recompute it (docs/runs.md)")
    assert (run_dir.parent.parent / "figure6.png").exists()  # the rest is drawn
    assert listing(run_dir) == before


@pytest.mark.parametrize("name, fault", [
    (name, fault) for name in ["final.weights.h5", "tensorboard", "gradients.csv", "responses.csv",
                               "lesion.csv", "landscape.csv"] for fault in FAULTS
    # a run has no lesion.csv or landscape.csv until their commands run: every rerun is that case
    if not (fault == "missing" and name in ("lesion.csv", "landscape.csv"))])
def test_a_rerun_of_a_finished_run_leaves_its_damaged_files_as_they_are(damaged, name, fault):
    """No file beside summary.json and metrics.csv decides whether a run is finished: a rerun
    says so in one line, retrains nothing and touches none of them (a damaged weights file is
    the analyses' to report, above); the sweep's plan counts the run finished."""
    from src.sweep import status
    overrides, run_dir, before = damaged(name, fault)
    result = run(*overrides)
    assert result.returncode == 0, result.stderr
    assert "is finished" in result.stdout and "Traceback" not in result.stderr
    assert listing(run_dir) == before
    cfg = compose(*overrides)
    assert status(cfg.run_dir, cfg) == ("finished", 20)


@pytest.mark.parametrize("fault", ["emptied", "garbage"])
@pytest.mark.parametrize("name, module", [("gradients.csv", "experiments.gradients"),
                                          ("responses.csv", "experiments.responses"),
                                          ("lesion.csv", "experiments.lesion"),
                                          ("landscape.csv", "experiments.landscape")])
def test_an_analysis_rewrites_its_own_damaged_csv(damaged, name, module, fault):
    """The command that writes a CSV writes it whole again over a damaged one; the run's own
    gradients.csv, whose earlier rows only the training wrote, is kept aside with one line."""
    import pandas as pd
    _, run_dir, before = damaged(name, fault)
    result = run(*ANALYSES[module], str(run_dir), module=module)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    pd.read_csv(run_dir / name)  # whole again
    added = sorted(str(p) for p in set(listing(run_dir)) - set(before))
    if name == "gradients.csv":
        assert len(added) == 1 and added[0].startswith("gradients.corrupt-"), added
        assert one_line(result).startswith(f"warning: {run_dir}/gradients.csv cannot be read (")
    else:
        assert added == [] or added == [name], added  # a missing file comes back
        assert not result.stderr.strip()
