"""Every mistake a user can type ends in one clear line and a non-zero exit, never a traceback."""
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from src.config import compose
from src.config import ConfigError, check_config
from tests.helpers import run


@pytest.mark.parametrize("budget", ["paper", "long", "quick", "smoke"])
def test_every_budget_composes_and_validates(budget):
    cfg = compose(f"budget={budget}")
    check_config(cfg)
    assert cfg.run_dir == f"results/{budget}/runs/identity-20-s0"


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=0", "train.batch_size=0 is not allowed: a whole number from 1 to"),
    ("train.iterations=-5", "train.iterations=-5 is not allowed"),
    ("train.iterations=99999999999", "train.iterations=99999999999 is not allowed"),
    ("train.lr=0", "train.lr=0.0 is not allowed: a finite number > 0"),
    ("train.lr=inf", "train.lr=inf is not allowed: a finite number > 0"),
    ("train.weight_decay=nan", "train.weight_decay=nan is not allowed: a finite number >= 0"),
    ("train.momentum=-0.9", "train.momentum=-0.9 is not allowed: a number in [0, 1)"),
    ("train.momentum=1.5", "train.momentum=1.5 is not allowed: a number in [0, 1)"),
    ("train.warmup_until_error=0", "train.warmup_until_error=0.0 is not allowed: a percentage in"),
    ("train.warmup_until_error=101", "train.warmup_until_error=101.0 is not allowed"),
    ("seed=-1", "seed=-1 is not allowed: a whole number from 0 to 2147483647"),
    ("seed=99999999999999999999", "seed=99999999999999999999 is not allowed"),
    ("data.test_examples=10001", "data.test_examples=10001 is not allowed: null (all) or from 1 "
                                 "to the 10,000 images of the test split"),
    ("data.train_examples=10", "data.train_examples=10 is not allowed: null (all) or from "
                               "train.batch_size=128 to the 50,000 training images"),
    ("log.every=7", "log.every must divide log.test_every"),
    ("batch_norm_group=48", "batch_norm_group=48 is not allowed: null (the whole batch) or, with "
                            "batch_norm=fused, a divisor of train.batch_size=128 from 2 to 64"),
    ("batch_norm_group=128", "batch_norm_group=128 is not allowed"),
    ("train.milestones=[0.75,0.5]", "train.milestones=[0.75, 0.5] is not allowed"),
    ("train.precision=fp8", "train.precision='fp8' is not allowed: choose one of float32"),
    ("train.warmup=maybe", "train.warmup='maybe' is not allowed: auto, true or false"),
    ("checkpoint.every=0", "checkpoint.every=0 is not allowed: auto or a whole number from 1"),
    ("checkpoint.every=often", "checkpoint.every='often' is not allowed: auto or a whole number"),
    ("train.steps_per_call=0", "train.steps_per_call=0 is not allowed: a whole number from 1"),
    ("train.kernel_norm=fixed", "train.kernel_norm='fixed' is not allowed: choose one of free, held"),
    ("train.warmup_iterations=400", "train.warmup_iterations=400 is not allowed: auto while the "
                                    "warm-up is off for this net (train.warmup=auto); add "
                                    "train.warmup=true"),
    ("train.warmup_iterations=0", "train.warmup_iterations=0 is not allowed: auto or a whole "
                                  "number of iterations from 1 to train.iterations - 1"),
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
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("override, message", [
    ("depth=21", "depth=21 is not allowed: depth must be 6n+2 with n >= 1"),
    ("depth=0", "depth=0 is not allowed"),
    ("depth=-8", "depth=-8 is not allowed"),
    ("shortcut=B", "shortcut='B' is not allowed: choose one of none, identity, projection, "
                   "all_projection"),
    ("train.batch_size=0", "train.batch_size=0 is not allowed"),
    ("train.iterations=0", "train.iterations=0 is not allowed"),
])
def test_bad_values_on_the_command_line(tmp_path, override, message):
    result = run("budget=smoke", f"results_dir={tmp_path}", override)
    assert one_line_error(result).startswith(f"error: {message}")
    assert not list(tmp_path.rglob("metrics.csv"))


def test_validation_split_limits_test_examples_to_its_5000_images():
    with pytest.raises(ConfigError, match="from 1 to the 5,000 images of the validation split"):
        check_config(compose("data.validation=true", "data.test_examples=5001"))


def test_float16_without_a_gpu_is_refused():  # the tests' machine has none (conftest)
    with pytest.raises(ConfigError, match="float16 needs a GPU"):
        check_config(compose("train.precision=mixed_float16"))


@pytest.mark.parametrize("override", ["seed=abc", "seed=1.5", "depth=abc", "train.milestones=0.5",
                                      "train.milestones=abc", "train.jit_compile=maybe",
                                      "data.validation=abc", "overwrite=maybe", "no_such_key=1"])
def test_the_schema_refuses_a_wrong_type_or_an_unknown_key(override):
    with pytest.raises(ConfigCompositionException, match=re.escape(override.split("=")[0])):
        compose(override)


def test_yes_no_words_are_booleans_not_any_text():
    assert compose("overwrite=no").overwrite is False
    assert compose("train.deterministic=yes").train.deterministic is True


@pytest.mark.parametrize("override", ["seed=abc", "train.milestones=0.5", "no_such_key=1"])
def test_a_wrong_type_on_the_command_line_names_the_key_and_leaves_no_folder(tmp_path, override):
    result = run("budget=smoke", f"results_dir={tmp_path}", override)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert override.split("=")[0] in result.stderr
    assert not list(tmp_path.iterdir())


def test_a_bad_tfds_download_variable_is_named_not_taken_as_true(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DOWNLOAD", "maybe")
    result = run("budget=smoke", f"results_dir={tmp_path}")
    assert one_line_error(result) == ("error: data.download='maybe' is not allowed: Value 'maybe' is "
                                 "not a valid bool (type str)")


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


def test_a_corrupted_tfrecord_is_reported(tmp_path, synthetic_data):
    copy = tmp_path / "data"
    shutil.copytree(synthetic_data / "cifar10", copy / "cifar10")
    record = next((copy / "cifar10/3.0.2").glob("cifar10-test.tfrecord*"))
    os.chmod(record, 0o644)
    blob = bytearray(record.read_bytes())
    blob[1000:1100] = bytes(100)  # zero a stretch inside the first records
    record.write_bytes(bytes(blob))
    result = run("budget=smoke", f"results_dir={tmp_path}/r", f"data.dir={copy}")
    line = one_line_error(result)
    assert f"error: cifar10 in {copy} cannot be read (corrupted record at " in line
    assert "damaged" in line and "{{" not in line and "[Op:" not in line


@pytest.fixture
def unwritable(tmp_path):
    """A folder this process cannot write into: its mode for a user; for root, which writes past
    any mode (as CI runs), a read-only tmpfs mounted there."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() != 0:
        yield locked
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(locked)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"root, and no read-only tmpfs: {mounted.stderr.strip()}")
    try:
        yield locked
    finally:
        subprocess.run(["umount", "--lazy", str(locked)], check=True)


def test_an_unwritable_results_dir_is_named(unwritable):
    result = run("budget=smoke", f"results_dir={unwritable}")
    assert f"results_dir={unwritable} cannot be written" in one_line_error(result)


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


def test_a_first_run_with_no_network_and_no_copy_fails_at_once_naming_the_way_out(tmp_path):
    from src.data import CONNECT_SECONDS, PROXIES
    if any(os.environ.get(k) for k in PROXIES):
        pytest.skip("an HTTPS proxy is set: the download goes through it, unchecked")
    try:  # a machine with network downloads as before: nothing to test there
        socket.create_connection(("www.cs.toronto.edu", 443), timeout=CONNECT_SECONDS).close()
        pytest.skip("the download host is reachable from this machine")
    except OSError:
        pass
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("budget=smoke", f"results_dir={tmp_path}", f"data.dir={empty}",
                 "data.download=true")
    line = one_line_error(result)
    assert f"cifar10 is not in {empty} and its download host www.cs.toronto.edu cannot be " \
           "reached" in line
    assert "TFDS_DATA_DIR=<folder holding cifar10/3.0.2> TFDS_DOWNLOAD=false" in line
    assert "data.dir=... data.download=false" in line


def test_the_two_gpu_batch_norm_groups_compose_and_refuse_keras_batch_norm():
    check_config(compose("batch_norm_group=64"))  # the paper's two GPUs: 64 of each 128
    with pytest.raises(ConfigError, match="batch_norm_group=64 is not allowed: .* with "
                                          "batch_norm=fused"):
        check_config(compose("batch_norm_group=64", "batch_norm=keras"))


@pytest.mark.parametrize("module, takes", [
    ("experiments.landscape", "it takes --images, --grid, --line, --planes"),
    ("experiments.lesion", "it takes run folders only"),
    ("experiments.gradients", "it takes --initial")])
def test_an_analysis_names_the_options_it_takes(tmp_path, module, takes):
    result = run("--points=5", str(tmp_path), module=module)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: --points=5 is not an option of this command: {takes} (--help)"


def test_an_analysis_of_a_budget_folder_names_its_run_folders(tmp_path):
    budget = tmp_path / "long"
    for name, weights in [("identity-20-s0", True), ("none-20-s0", False)]:
        (budget / "runs" / name).mkdir(parents=True)
        if weights:
            (budget / "runs" / name / "final.weights.h5").write_bytes(b"")
    result = run(str(budget), module="experiments.evaluate")
    assert result.returncode != 0
    assert result.stderr.strip() == (f"error: {budget} is a budget's folder, not a run's: name a "
                                     f"run folder in it, {budget}/runs/<run>; those with "
                                     "weights: identity-20-s0")


def test_make_help_lists_every_target_and_every_variable_with_its_default():
    from tests.helpers import ROOT
    shown = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60).stdout
    for target in ("setup", "test", "reproduce-cifar", "park", "figures", "bench"):
        assert f"make {target} " in shown
    for variable, default in [("BUDGET", "paper"), ("SEEDS", "1"), ("JOBS", "auto"),
                              ("LAUNCHER", "basic"), ("RESULTS", "results"), ("ARGS", "")]:
        assert re.search(rf"^  {variable}={re.escape(default)} +# \S", shown, re.M), variable


def test_make_keeps_the_tensorflow_that_setup_installed_unless_another_is_named(tmp_path):
    """After `make setup TENSORFLOW='tensorflow[and-cuda]...'` a plain `make reproduce-cifar` must
    not put the CPU TensorFlow back (its set-up step installs whatever TENSORFLOW says)."""
    from tests.helpers import ROOT
    gpu, cpu = "tensorflow[and-cuda]==2.21.0", "tensorflow-cpu==2.21.0"
    (tmp_path / ".installed").write_text(gpu + "\n")  # newer than requirements.txt: no new venv
    environment = {k: v for k, v in os.environ.items() if k != "TENSORFLOW"}

    def setup_commands(*words):
        return subprocess.run(["make", "--no-print-directory", "-n", "-C", str(ROOT), "setup",
                               f"VENV={tmp_path}", *words], capture_output=True, text=True,
                              timeout=60, env=environment).stdout

    kept = setup_commands()
    assert f"grep -qxF '{gpu}'" in kept and cpu not in kept
    assert f"--disable-pip-version-check '{cpu}'" in setup_commands(f"TENSORFLOW={cpu}")


def test_run_help_lists_every_documented_key_with_its_value_and_the_runs_cost():
    from src.config import documented_keys
    shown = run("budget=smoke", "depth=8", "shortcut=none", "--help")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    for key, text in documented_keys():
        assert any(line.startswith(f"  {key}=") and line.endswith(text) for line in lines), key
    for value in ("  depth=8 ", "  shortcut=none ", "  budget=smoke ", "  train.iterations=30 ",
                  "  train.milestones=[0.5, 0.75] ", "  data.train_examples=2560 "):
        assert any(line.startswith(value) for line in lines), value
    assert re.search(r"^This run: plain-8, 30 iterations of 128 images \(budget smoke\), about "
                     r"\d\d:\d\d:\d\d on this machine \(\d+ images/s, timed now; .*oneDNN",
                     shown.stdout, re.M)
    bad = run("width=2", "--help")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "width" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
