import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification.cifar import Cifar10

import experiments.gradients
import experiments.responses
import src.run
import src.sweep

ROOT = Path(__file__).resolve().parent.parent
# Where the real CIFAR-10 may be, in this order: TFDS_DATA_DIR as the user set it, the shared
# copy beside the checkout, tfds's default folder (downloading into it if it is empty).
REAL_DATA_DIRS = [d for d in (os.environ.get("TFDS_DATA_DIR"),
                              str(ROOT.parent / "shared/datasets/tensorflow_datasets")) if d]


class SyntheticCifar10(Cifar10, skip_registration=True):
    """A small CIFAR-shaped set in tfds's own prepared format (cifar10/3.0.2, 2,560 training and
    500 test images, the smoke budget's slices), learnable: each class has its own colour under
    the noise. Most tests train on it; it needs no download."""

    name = "cifar10"
    SIZES = {"train": 2560, "test": 500}

    def _split_generators(self, dl_manager):
        return {split: self._synthetic(seed, n)
                for seed, (split, n) in enumerate(self.SIZES.items())}

    def _synthetic(self, seed, n):
        rng = np.random.default_rng(seed)
        colours = np.random.default_rng(10).integers(40, 216, (10, 3))
        for i in range(n):
            label = int(rng.integers(10))
            image = colours[label] + rng.normal(0, 40, (32, 32, 3))
            yield i, {"id": f"{seed}_{i}", "label": label,
                      "image": np.clip(image, 0, 255).astype(np.uint8)}


@pytest.fixture(scope="session", autouse=True)
def synthetic_data(tmp_path_factory):
    """Every test reads the synthetic set unless it asks for the real one (`real_data`)."""
    data_dir = tmp_path_factory.mktemp("tensorflow_datasets")
    SyntheticCifar10(data_dir=str(data_dir)).download_and_prepare()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFDS_DATA_DIR", str(data_dir))
        patch.setenv("TFDS_DOWNLOAD", "false")
        yield data_dir


CIFAR10_HOST = "www.cs.toronto.edu"  # where tfds downloads CIFAR-10 from (its cifar.py)


def real_cifar10_dir() -> tuple[str | None, str]:
    """The first folder holding the real, prepared CIFAR-10 (REAL_DATA_DIRS, then tfds's default
    folder, downloading into it), or None and why not."""
    default = tfds.core.constants.DATA_DIR
    for data_dir in [*REAL_DATA_DIRS, default]:
        if (Path(data_dir) / "cifar10/3.0.2/dataset_info.json").exists():
            return data_dir, ""
    try:  # offline, tfds would retry for minutes before giving up
        socket.create_connection((CIFAR10_HOST, 443), timeout=10).close()
    except OSError as e:
        return None, f"no connection to {CIFAR10_HOST}: {e}"
    download = subprocess.run([sys.executable, "-c", "import tensorflow_datasets as t; "
                               f"t.builder('cifar10', data_dir={default!r}).download_and_prepare()"],
                              capture_output=True, text=True, timeout=1800)
    if download.returncode:
        return None, download.stderr.strip().splitlines()[-1]
    return default, ""


@pytest.fixture(scope="session")
def real_data():
    """The real CIFAR-10's data_dir, or a skip that says where it was looked for."""
    found, why_not = real_cifar10_dir()
    if found is None:
        pytest.skip(f"real CIFAR-10 not found in {', '.join(REAL_DATA_DIRS)} and not "
                    f"downloadable into {tfds.core.constants.DATA_DIR} ({why_not})")
    return found


def run_env():
    return {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(ROOT)}


def start(*args, module="src.run"):
    """`python -m module *args` as a process of its own (for kill -9, two runs at once, the
    sweep's children); most tests use `run`, which saves each its start-up of about 4 s."""
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=run_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_process(*args, module="src.run", timeout=600):
    p = start(*args, module=module)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


ENTRY_POINTS = {"src.run": lambda args: src.run.cli(),  # Hydra reads sys.argv
                "src.sweep": src.sweep.main,  # its runs' output is not captured: use run_process
                "experiments.responses": experiments.responses.main,
                "experiments.gradients": experiments.gradients.main}


def run(*args, module="src.run"):
    """`python -m module *args` run in this process (one of ENTRY_POINTS): its exit
    code, stdout and stderr, as a CompletedProcess. Uncaught exceptions propagate, where a process
    would print a traceback."""
    out, err = io.StringIO(), io.StringIO()
    with (mock.patch.object(sys, "argv", [module, *args]),
          mock.patch.dict(os.environ, {"HYDRA_FULL_ERROR": "0"}),
          contextlib.redirect_stdout(out), contextlib.redirect_stderr(err)):
        try:
            code = ENTRY_POINTS[module](list(args)) or 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
            if isinstance(e.code, str):  # as Python prints it on exit
                print(e.code, file=sys.stderr)
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


def wait_for_first_row(run_dir: Path, p: subprocess.Popen | None = None,
                       done: threading.Event | None = None) -> None:
    """Until the run in `run_dir` has logged a row (or process `p` ended, or `done` was set, or 5
    minutes passed)."""
    deadline = time.time() + 300
    while (not (run_dir / "metrics.csv").exists() and (p is None or p.poll() is None)
           and not (done and done.is_set()) and time.time() < deadline):
        time.sleep(0.01)


def interrupt_after_first_row(run_dir: Path, *overrides, sig=signal.SIGTERM):
    """`run` src.run and send this process `sig` once `run_dir` has logged a row, as Ctrl-C or a
    scheduler would; return the finished run. A signal that comes after the run ended is ignored."""
    done = threading.Event()

    def send():
        wait_for_first_row(run_dir, done=done)
        if not done.is_set():
            os.kill(os.getpid(), sig)

    previous = signal.signal(sig, lambda *_: None)
    sender = threading.Thread(target=send)
    sender.start()
    try:
        return run(*overrides)
    finally:
        done.set()
        sender.join()
        signal.signal(sig, previous)


def interrupt_process_after_first_row(run_dir: Path, *args, sig=signal.SIGTERM, module="src.run"):
    """Start `python -m module *args`, wait until `run_dir` has logged a row, send the process
    `sig`, return the finished process."""
    p = start(*args, module=module)
    wait_for_first_row(run_dir, p)
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv")


# Batches of 32 and 100 test images: steps and evaluations 4-5x cheaper than the smoke budget's.
LIGHT = ["train.batch_size=32", "data.test_examples=100"]


@pytest.fixture
def smoke(tmp_path):
    """Overrides for a light smoke run of ResNet-8 (the smallest net) under tmp_path (the last
    override), and its run folder."""
    overrides = ["budget=smoke", "depth=8", *LIGHT, f"results_dir={tmp_path}"]
    return overrides, tmp_path / "smoke/runs/identity-8-s0"
