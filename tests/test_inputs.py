"""Every mistake a user can type ends in one clear line and a non-zero exit, never a traceback."""
import os
import shutil
from pathlib import Path

import pytest

from src.run import compose
from src.train import ConfigError, check_config
from tests.conftest import DATA_DIR, run


@pytest.mark.parametrize("budget", ["paper", "quick", "smoke"])
def test_every_budget_composes_and_validates(budget):
    cfg = compose(f"budget={budget}")
    check_config(cfg)
    assert cfg.run_dir == f"results/{budget}/runs/identity-20-s0"


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=0", "train.batch_size=0 is not allowed: it must be a positive whole number"),
    ("train.iterations=-5", "train.iterations=-5 is not allowed"),
    ("train.lr=0", "train.lr=0 is not allowed: it must be a positive number"),
    ("train.momentum=-0.9", "train.momentum=-0.9 is not allowed: it must be a non-negative"),
    ("budget.log_every=7", "log.every must divide log.test_every"),
    ("train.milestones=[0.75,0.5]", "train.milestones=[0.75, 0.5] is not allowed"),
    ("train.precision=fp8", "train.precision='fp8' is not allowed: choose one of float32"),
    ("train.warmup=maybe", "train.warmup='maybe' is not allowed: auto, true or false"),
    ("data.train_examples=0", "data.train_examples=0 is not allowed"),
])
def test_bad_training_values_are_named(override, message):
    with pytest.raises(ConfigError) as e:
        check_config(compose(override))
    assert message in str(e.value)


def one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    return lines[-1]


@pytest.mark.parametrize("override, message", [
    ("depth=21", "depth=21 is not allowed: depth must be 6n+2 with n >= 1"),
    ("depth=0", "depth=0 is not allowed"),
    ("depth=-8", "depth=-8 is not allowed"),
    ("depth=abc", "depth='abc' is not allowed"),
    ("shortcut=B", "shortcut='B' is not allowed: choose one of none, identity, projection, "
                   "all_projection"),
    ("train.batch_size=0", "train.batch_size=0 is not allowed"),
    ("train.iterations=0", "train.iterations=0 is not allowed"),
])
def test_bad_values_on_the_command_line(tmp_path, override, message):
    result = run("budget=smoke", f"results_dir={tmp_path}", override)
    assert one_line_error(result) == f"error: {message}" or message in one_line_error(result)
    assert not list(tmp_path.rglob("metrics.csv"))


def test_unknown_budget_lists_the_budgets(tmp_path):
    result = run("budget=huge", f"results_dir={tmp_path}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Could not find 'budget/huge'" in result.stderr
    for name in ("paper", "quick", "smoke"):
        assert name in result.stderr


def test_missing_data_directory_says_where_it_looked(tmp_path):
    result = run("budget=smoke", f"results_dir={tmp_path}", f"data.dir={tmp_path}/nowhere")
    line = one_line_error(result)
    assert f"data.dir={tmp_path}/nowhere does not exist" in line and "TFDS_DATA_DIR" in line


def test_a_directory_without_cifar10_is_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("budget=smoke", f"results_dir={tmp_path}", f"data.dir={empty}")
    line = one_line_error(result)
    assert f"no prepared cifar10 in {empty} and data.download=false" in line


def test_a_corrupted_tfrecord_is_reported(tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(Path(DATA_DIR) / "cifar10", copy / "cifar10")
    record = next((copy / "cifar10/3.0.2").glob("cifar10-test.tfrecord*"))
    os.chmod(record, 0o644)
    blob = bytearray(record.read_bytes())
    blob[1000:1100] = bytes(100)  # zero a stretch inside the first records
    record.write_bytes(bytes(blob))
    result = run("budget=smoke", f"results_dir={tmp_path}/r", f"data.dir={copy}")
    line = one_line_error(result)
    assert f"error: cifar10 in {copy} cannot be read (corrupted record at " in line
    assert "damaged" in line and "{{" not in line and "[Op:" not in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_results_dir_is_named(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run("budget=smoke", f"results_dir={locked}")
    assert "cannot be written" in one_line_error(result)


def test_a_results_dir_that_is_a_file_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run("budget=smoke", f"results_dir={blocker}")
    line = one_line_error(result)
    assert f"results_dir={blocker} cannot be written" in line


def test_an_empty_results_dir_is_refused_not_the_filesystem_root(tmp_path):
    result = run("budget=smoke", "results_dir=")
    assert one_line_error(result) == ("error: results_dir='' is not allowed: name a folder (the "
                                      "default is results)")
    assert not Path("/smoke").exists()


def test_a_multirun_whose_every_run_failed_exits_nonzero(tmp_path):
    result = run("-m", "budget=smoke", "depth=21,27", f"results_dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.count("is not allowed: depth must be 6n+2") == 2
    assert "error: 2 run(s) failed" in result.stderr
