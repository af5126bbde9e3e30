"""The backward signal of a run (gradients.csv), recomputed from its checkpoint.

    python -m experiments.gradients RUN_DIR [RUN_DIR ...]

At each logged row a run writes, for every convolution, the norm of the loss gradient with
respect to the convolution's output and to its kernel, on the row's last batch, with the weights
that batch left (src.models.gradient_norms). This recomputes the rows of the checkpoint's
iteration from checkpoint.npz and the same batch (the input stream is a function of seed and
iteration), puts them in place of the ones in gradients.csv and prints the largest relative
difference between the two. Data: as experiments.responses.
"""
import os
import sys
from pathlib import Path

from src import configure_tensorflow

configure_tensorflow()  # before anything that imports TensorFlow

import keras  # noqa: E402
import numpy as np  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from src import data as cifar  # noqa: E402
from src.data import DataError  # noqa: E402
from src.models import gradient_norms  # noqa: E402
from src.rundir import Checkpoint, read_gradients, read_summary, write_gradients  # noqa: E402
from src.train import build_model, make_optimizer  # noqa: E402


def recompute(run_dir: Path) -> float:
    """Recompute and write the checkpoint's rows; the largest relative difference to the old."""
    summary = read_summary(run_dir)
    if summary is None or not Checkpoint(run_dir).exists():
        raise SystemExit(f"error: {run_dir} holds no run with a checkpoint (summary.json and "
                         "checkpoint.npz): nothing to recompute")
    cfg = OmegaConf.create(summary.config)
    keras.mixed_precision.set_global_policy(cfg.train.precision)
    try:
        model = build_model(cfg)
        optimizer, _ = make_optimizer(cfg)
        optimizer.build(model.trainable_variables)
        state = Checkpoint(run_dir, cfg).load(model, optimizer)
        if state is None or state["iteration"] == 0:
            raise SystemExit(f"error: no usable checkpoint of a trained network in {run_dir}")
        iteration = state["iteration"]
        data_dir = os.environ.get("TFDS_DATA_DIR", cfg.data.dir)
        download = os.environ.get("TFDS_DOWNLOAD", str(cfg.data.download)).lower() == "true"
        data = cifar.load(data_dir, download, cfg.data.train_examples, cfg.data.test_examples,
                          cfg.data.validation)
        _, images, labels = next(iter(cifar.train_batches(data, cfg.train.batch_size, cfg.seed,
                                                          iteration - 1)))  # the last step's batch
        fresh = gradient_norms(model)(images, labels, iteration)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    path = run_dir / "gradients.csv"
    rows = read_gradients(path, sys.maxsize)
    old = [r for r in rows if r["iteration"] == iteration]
    difference = max((abs(a[k] - b[k]) / abs(a[k]) for a, b in zip(old, fresh)
                      for k in ("output_gradient_norm", "kernel_gradient_norm")), default=np.nan)
    rows = sorted([r for r in rows if r["iteration"] != iteration] + fresh,
                  key=lambda r: (r["iteration"], r["index"]))
    write_gradients(path, rows)
    print(f"{run_dir}: recomputed the gradients of iteration {iteration:,} "
          + (f"(largest relative difference to the run's: {difference:.2g})" if old else
             "(the run had not written them)"))
    return difference


def main(argv=sys.argv[1:]):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    try:
        for run_dir in argv:
            recompute(Path(run_dir))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
