"""The backward signal of a run (gradients.csv), recomputed from its checkpoint or its seed.

    python -m experiments.gradients RUN_DIR [RUN_DIR ...]
    python -m experiments.gradients --initial RUN_DIR [RUN_DIR ...]

At each logged row a run writes, for every convolution, the norm of the loss gradient with
respect to the convolution's output and to its kernel, on the row's last batch, with the weights
that batch left (src.models.gradient_norms). This recomputes the rows of the checkpoint's
iteration from checkpoint.npz and the same batch (the input stream is a function of seed and
iteration), puts them in place of the ones in gradients.csv and prints the largest relative
difference between the two. With --initial, the rows of iteration 0 (the initialisation, on the
run's first batch, as every run writes them) from the run's seed alone, for the runs that
finished before runs wrote them: the initial weights and the first batch are a function of the
seed. Data: as the run's (experiments.restore).
"""
import sys
from pathlib import Path

import numpy as np

import keras
from omegaconf import OmegaConf

from experiments.restore import command, precision, restore, run_data
from src import data as cifar
from src.models import gradient_norms
from src.rundir import read_gradients, read_summary, write_gradients
from src.train import build_model


def recompute(run_dir: Path) -> float:
    """Recompute and write the checkpoint's rows; the largest relative difference to the old."""
    with restore(run_dir) as (cfg, model, data, state):
        iteration = state["iteration"]
        if iteration == 0:
            raise SystemExit(f"error: the checkpoint in {run_dir} is of an untrained network")
        _, images, labels = next(iter(cifar.train_batches(data, cfg.train.batch_size, cfg.seed,
                                                          iteration - 1)))  # the last step's batch
        fresh = gradient_norms(model)(images, labels, iteration)
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


def initial_rows(cfg) -> list[dict]:
    """The rows of iteration 0 a run of `cfg` writes: its network as the seed initialises it
    (set as src.train's process settings set it, before the data and the network), on its first
    batch."""
    keras.utils.set_random_seed(cfg.seed)
    with precision(cfg):
        data = run_data(cfg)
        model = build_model(cfg)
        _, images, labels = next(iter(cifar.train_batches(data, cfg.train.batch_size, cfg.seed)))
        return gradient_norms(model)(images, labels, 0)


def add_initial(run_dir: Path) -> None:
    """Put the rows of iteration 0 into the run's gradients.csv (in place of any there)."""
    summary = read_summary(run_dir)
    if summary is None:
        raise SystemExit(f"error: {run_dir} holds no run (no summary.json)")
    path = run_dir / "gradients.csv"
    rows = [r for r in read_gradients(path, sys.maxsize) if r["iteration"] != 0]
    write_gradients(path, initial_rows(OmegaConf.create(summary.config)) + rows)
    print(f"{run_dir}: wrote the gradients of iteration 0 (from seed {summary.config['seed']})")


def main(argv=sys.argv[1:]):
    if argv[:1] == ["--initial"]:
        return command(add_initial, __doc__, argv[1:])
    return command(recompute, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
