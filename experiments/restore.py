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
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(cfg.train.precision)
    try:
        model = build_model(cfg)
        optimizer, _ = make_optimizer(cfg)
        optimizer.build(model.trainable_variables)
        state = Checkpoint(run_dir, cfg).load(model, optimizer)
        if state is None:
            raise SystemExit(f"error: no usable checkpoint in {run_dir}")
        data_dir = os.environ.get("TFDS_DATA_DIR", cfg.data.dir)
        download = os.environ.get("TFDS_DOWNLOAD", str(cfg.data.download)).lower() == "true"
        data = cifar.load(data_dir, download, cfg.data.train_examples, cfg.data.test_examples,
                          cfg.data.validation)
        yield cfg, model, data, state
    finally:
        keras.mixed_precision.set_global_policy(policy)


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
