"""A run restored from its checkpoint, for the commands that recompute one of its files
(experiments.responses, experiments.gradients).

Data: data.dir and data.download of the run's config, or TFDS_DATA_DIR and TFDS_DOWNLOAD where
they are set; the same slices, so the same mean image as the run.
"""
import contextlib
import os
import sys
from pathlib import Path

from src import configure_tensorflow

configure_tensorflow()  # before anything that imports TensorFlow

import keras  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from src import data as cifar  # noqa: E402
from src.config import compose  # noqa: E402
from src.data import DataError  # noqa: E402
from src.rundir import Checkpoint, read_summary  # noqa: E402
from src.train import build_model, make_optimizer  # noqa: E402


@contextlib.contextmanager
def restore(run_dir: Path):
    """(config, network with the checkpoint's weights, its data, the checkpoint's loop state),
    under the run's precision policy while the block runs."""
    summary = read_summary(run_dir)
    if summary is None or not Checkpoint(run_dir).exists():
        raise SystemExit(f"error: {run_dir} holds no run with a checkpoint (summary.json and "
                         "checkpoint.npz): nothing to recompute")
    cfg = OmegaConf.create(summary.config)
    with precision(cfg):
        model = build_model(cfg)
        optimizer, _ = make_optimizer(cfg)
        optimizer.build(model.trainable_variables)
        state = Checkpoint(run_dir, cfg).load(model, optimizer)
        if state is None:
            raise SystemExit(f"error: no usable checkpoint in {run_dir}")
        yield cfg, model, run_data(cfg), state


@contextlib.contextmanager
def precision(cfg):
    """The run's precision policy while the block runs."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(cfg.train.precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)


def run_data(cfg):
    """The run's slices of CIFAR-10 (so the same mean image), from its data.dir and
    data.download, or from TFDS_DATA_DIR and TFDS_DOWNLOAD where they are set, read as a run's
    config reads them."""
    data, here = cfg.data, compose().data
    data_dir = here.dir if "TFDS_DATA_DIR" in os.environ else data.dir
    download = here.download if "TFDS_DOWNLOAD" in os.environ else data.download
    return cifar.load(data_dir, download, data.train_examples, data.test_examples,
                      data.validation)


def command(recompute, doc: str, argv) -> int:
    """`python -m experiments.<name> RUN_DIR [RUN_DIR ...]`: `recompute` each run folder."""
    if not argv or argv[0] in ("-h", "--help"):
        print(doc)
        return 0 if argv else 2
    try:
        for run_dir in argv:
            recompute(Path(run_dir))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
