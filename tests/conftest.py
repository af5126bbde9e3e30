import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification.cifar import Cifar10

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


def real_cifar10_dir() -> str | None:
    """The first folder holding the real, prepared CIFAR-10 (see REAL_DATA_DIRS), or None after
    trying to download it into tfds's default folder."""
    default = tfds.core.constants.DATA_DIR
    for data_dir in [*REAL_DATA_DIRS, default]:
        if (Path(data_dir) / "cifar10/3.0.2/dataset_info.json").exists():
            return data_dir
    try:
        download = subprocess.run([sys.executable, "-c", "import tensorflow_datasets as t; "
                                   "t.builder('cifar10').download_and_prepare()"],
                                  capture_output=True, timeout=1800)
    except subprocess.TimeoutExpired:
        return None
    return default if download.returncode == 0 else None


@pytest.fixture(scope="session")
def real_data():
    """The real CIFAR-10's data_dir, or a skip that says where it was looked for."""
    found = real_cifar10_dir()
    if found is None:
        pytest.skip(f"real CIFAR-10 not found in {', '.join(REAL_DATA_DIRS)} and not "
                    f"downloadable into {tfds.core.constants.DATA_DIR}")
    return found


def run_env():
    return {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(ROOT)}


def start(*overrides, module="src.run"):
    return subprocess.Popen([sys.executable, "-m", module, *overrides], cwd=ROOT, env=run_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(*overrides, module="src.run", timeout=600):
    p = start(*overrides, module=module)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def wait_for_first_row(run_dir: Path, p: subprocess.Popen) -> None:
    """Until the run in `run_dir` has logged a row (or `p` ended, or 5 minutes passed)."""
    deadline = time.time() + 300
    while not (run_dir / "metrics.csv").exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)


def interrupt_after_first_row(run_dir: Path, *overrides, sig=signal.SIGTERM, module="src.run"):
    """Start a run (or a sweep), wait until `run_dir` has logged a row, send `sig`, return the
    finished process."""
    p = start(*overrides, module=module)
    wait_for_first_row(run_dir, p)
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv")


@pytest.fixture
def smoke(tmp_path):
    """Overrides for a smoke run of ResNet-8 (the smallest, so the fastest) under tmp_path, and
    its run folder."""
    overrides = ["budget=smoke", "depth=8", f"results_dir={tmp_path}"]
    return overrides, tmp_path / "smoke/runs/identity-8-s0"
