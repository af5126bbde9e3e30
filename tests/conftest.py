"""The tests' fixtures: the synthetic CIFAR-shaped set every test reads, the real CIFAR-10 where
it can be found, a light smoke run. What the tests call is in tests/helpers.py."""
import os
import socket
import subprocess
import sys
from pathlib import Path

from src import configure_tensorflow

configure_tensorflow()  # as every entry point does: oneDNN on where TensorFlow would leave it off

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from tensorflow_datasets.image_classification.cifar import Cifar10  # noqa: E402

from src.machine import SIMULATED  # noqa: E402
from tests.helpers import LIGHT, ROOT, end_started  # noqa: E402

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
def cpu_machine():
    """Every test, and every process it starts, sees a machine without a GPU (the suite's device
    probe, src.machine.gpus, answers none) unless it simulates one (`simulated_gpu`): the tests
    mean the CPU's branches, and pass on a GPU machine as on these."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SIMULATED, "cpu")
        yield


@pytest.fixture(autouse=True)
def no_process_left():
    """A test that fails (or times out: pytest-timeout, pytest.ini) leaves no process behind:
    whatever it started and did not end is killed with its children after it."""
    yield
    end_started()


@pytest.fixture
def simulated_gpu(monkeypatch):
    """The device probe answers one GPU: the GPU branches (no CPU-speed note, no packing, float16
    allowed) run on a CPU machine."""
    monkeypatch.setenv(SIMULATED, "gpu")


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


@pytest.fixture
def smoke(tmp_path):
    """Overrides for a light smoke run of ResNet-8 (the smallest net) under tmp_path (the last
    override), and its run folder."""
    overrides = ["budget=smoke", "depth=8", *LIGHT, f"results_dir={tmp_path}"]
    return overrides, tmp_path / "smoke/runs/identity-8-s0"
