"""`make park`: an unfinished run travels to another clone through git and resumes there exactly
as it would have on its own machine."""
import json
import shutil
import os
import subprocess
import sys

import pandas as pd
import pytest

from src.park import checkpoint_iteration
from src.sweep import status
from tests.helpers import LIGHT, ROOT, interrupt_after_first_row, metrics, run

COMMON = ["budget=smoke", "depth=8", *LIGHT, "train.iterations=40", "train.deterministic=true"]
RUN = "smoke/runs/identity-8-s0"
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t"}


def git(repo, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True,
                          env={**os.environ, **IDENTITY}).stdout


def make_park(results):
    """`make park RESULTS=...` as a user types it."""
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "park",
                           f"RESULTS={results}"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **IDENTITY})


@pytest.fixture
def repo(tmp_path):
    """A repository that ships its runs as this one does (its .gitignore), with a user's work in
    progress: a staged file and an unstaged change."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet")
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    (repo / "notes.txt").write_text("one\n")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "start")
    (repo / "notes.txt").write_text("two\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    return repo


def test_a_parked_run_resumes_in_a_clone_as_if_never_interrupted(tmp_path, repo):
    straight = tmp_path / "straight"
    assert run(*COMMON, f"results_dir={straight}").returncode == 0
    interrupt_after_first_row(repo / "results" / RUN, *COMMON, f"results_dir={repo}/results")

    parked = make_park(repo / "results")
    assert parked.returncode == 0, parked.stderr
    at = checkpoint_iteration((repo / "results" / RUN / "checkpoint.npz").read_bytes())
    assert 10 <= at < 40
    assert parked.stdout.strip() == f"park: identity-8-s0 at {at} of 40"
    assert git(repo, "log", "-1", "--format=%s").strip() == parked.stdout.strip()
    head = git(repo, "rev-parse", "HEAD")
    twice = make_park(repo / "results")  # the run has not moved since: nothing new to park
    assert twice.stdout.strip().startswith("park: nothing new to park") and \
        git(repo, "rev-parse", "HEAD") == head
    committed = set(git(repo, "show", "--name-only", "--format=", "HEAD").split())
    assert f"results/{RUN}/checkpoint.npz" in committed
    assert {f"results/{RUN}/{name}" for name in ("metrics.csv", "summary.json")} <= committed
    assert not any(name.endswith(("prev.npz", ".lock", "config.yaml")) for name in committed)
    assert "notes.txt" not in committed and "staged.txt" not in committed
    assert git(repo, "status", "--porcelain", "--", "notes.txt", "staged.txt").splitlines() == [
        " M notes.txt", "A  staged.txt"]  # the user's work stays as it was, outside the commit

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(repo), str(clone))
    folder = clone / "results" / RUN
    assert status(str(folder)) == ("parked", at)
    resumed = run(*COMMON, f"results_dir={clone}/results")
    assert resumed.returncode == 0 and f"resuming at iteration {at}" in resumed.stdout
    for name in ("metrics.csv", "gradients.csv"):  # byte-identical curves
        columns = None if name == "gradients.csv" else ["train_loss", "train_error",
                                                        "test_loss", "test_error"]
        a, b = pd.read_csv(straight / RUN / name), pd.read_csv(folder / name)
        pd.testing.assert_frame_equal(a[columns] if columns else a, b[columns] if columns else b,
                                      check_exact=True)

    finished = make_park(clone / "results")  # finished since: weights in, checkpoint out
    assert finished.stdout.strip() == "park: identity-8-s0 finished", finished.stderr
    tracked = git(clone, "ls-files", "results").split()
    assert f"results/{RUN}/final.weights.h5" in tracked
    assert not any(name.endswith(".npz") for name in tracked)
    assert json.loads(git(clone, "show", f"HEAD:results/{RUN}/summary.json"))["status"] == \
        "finished"

    head = git(clone, "rev-parse", "HEAD")
    again = make_park(clone / "results")
    assert again.returncode == 0 and again.stdout.strip().startswith("park: nothing new to park")
    assert git(clone, "rev-parse", "HEAD") == head  # no commit


def test_park_refuses_what_it_cannot_park_in_one_line(tmp_path):
    def park(*args):
        return subprocess.run([sys.executable, "-m", "src.park", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    for args, error in [([str(tmp_path / "nope")],
                         f"error: RESULTS={tmp_path / 'nope'} is not a folder of run folders"),
                        ([str(tmp_path)],  # a folder, but no repository around it
                         f"error: {tmp_path} is not inside a git repository: parking commits to "
                         "one"),
                        (["a", "b"], "error: park takes one folder (RESULTS), not a b")]:
        refused = park(*args)
        assert refused.returncode == 2 and refused.stderr.splitlines() == [error]
