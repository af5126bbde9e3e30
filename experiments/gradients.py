"""The backward signal of a run (gradients.csv), recomputed from its checkpoint.

    python -m experiments.gradients RUN_DIR [RUN_DIR ...]

At each logged row a run writes, for every convolution, the norm of the loss gradient with
respect to the convolution's output and to its kernel, on the row's last batch, with the weights
that batch left (src.models.gradient_norms). This recomputes the rows of the checkpoint's
iteration from checkpoint.npz and the same batch (the input stream is a function of seed and
iteration), puts them in place of the ones in gradients.csv and prints the largest relative
difference between the two. Data: as the run's (experiments.restore).
"""
import sys
from pathlib import Path

import numpy as np

from experiments.restore import command, restore
from src import data as cifar
from src.models import gradient_norms
from src.rundir import read_gradients, write_gradients


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


def main(argv=sys.argv[1:]):
    return command(recompute, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
