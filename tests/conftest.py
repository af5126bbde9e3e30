import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
# The real CIFAR-10: the shared copy beside the checkout unless TFDS_DATA_DIR says otherwise.
DATA_DIR = os.environ.get("TFDS_DATA_DIR", str(ROOT.parent / "shared/datasets/tensorflow_datasets"))


def run_env():
    return {**os.environ, "TFDS_DATA_DIR": DATA_DIR, "TFDS_DOWNLOAD": "false",
            "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(ROOT)}


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
    """Overrides for a smoke run of ResNet-20 under tmp_path, and its run folder."""
    overrides = ["budget=smoke", "depth=20", f"results_dir={tmp_path}"]
    return overrides, tmp_path / "smoke/runs/identity-20-s0"
