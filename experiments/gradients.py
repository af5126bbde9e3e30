"""The backward signal of a run (gradients.csv): recomputed from its final weights or its seed,
and read at the moments that figure_gradients draws.

    python -m experiments.gradients RUN_DIR [RUN_DIR ...]
    python -m experiments.gradients --initial RUN_DIR [RUN_DIR ...]

At each logged row a run writes, for every convolution, the norm of the loss gradient with
respect to the convolution's output and to its kernel, on the row's last batch, with the weights
that batch left (src.models.gradient_norms). This recomputes the rows of the run's last
iteration from its final.weights.h5 and the same batch (the input stream is a function of seed
and iteration), puts them in place of the ones in gradients.csv and prints the largest relative
difference between the two. With --initial, the rows of iteration 0 (the initialisation, on the
run's first batch, as every run writes them) from the run's seed alone, for the runs that
finished before runs wrote them: the initial weights and the first batch are a function of the
seed. Data: as the run's (experiments.trained).
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from experiments.trained import command, final_network, precision, run_data
from src.rundir import RunDirError, reading
from src.runfiles import (GRADIENT_COLUMNS, GRADIENT_COLUMNS_BEFORE, read_gradients,
                          read_summary, read_table, write_gradients)

GRADIENT_NETS = ["plain-20", "plain-56", "ResNet-20", "ResNet-56"]


def read_gradient_table(run_dir: Path) -> pd.DataFrame:
    """A finished run's gradients.csv, read-only (DamagedFile where it cannot be read)."""
    return read_table(Path(run_dir) / "gradients.csv", GRADIENT_COLUMNS, GRADIENT_COLUMNS_BEFORE)


QUANTITIES = ("output_gradient_norm", "bn_output_gradient_norm", "effective_step")


def effective_steps(gradients, curves) -> pd.DataFrame:
    """gradients with `effective_step` = lr x kernel_gradient_norm / kernel_norm: the relative
    size of a plain SGD step on each kernel, the angle it turns the kernel's direction (all that
    a kernel followed by BN gives the function; docs/runs.md). lr is the row's, from
    metrics.csv; at iteration 0 the first interval's."""
    if "kernel_norm" not in gradients or curves.empty:
        return gradients
    lr = curves[["folder", "iteration", "lr"]]
    first = curves.sort_values("iteration").groupby("folder").lr.first()
    gradients = gradients.drop(columns="lr", errors="ignore").merge(
        lr, on=["folder", "iteration"], how="left")
    gradients["lr"] = gradients.lr.fillna(gradients.folder.map(first))
    return gradients.assign(effective_step=gradients.lr * gradients.kernel_gradient_norm
                            / gradients.kernel_norm)


def gradient_points(gradients, curves=None) -> pd.DataFrame:
    """Each run's gradients at four moments: iteration 0 (where the run has it), its first row
    after it, its last row before the first lr drop, its last row; a row per network, seed,
    moment and layer (both gradient norms, the one at BN outputs and, given the runs' curves, the
    effective step, where measured)."""
    if curves is not None:
        gradients = effective_steps(gradients, curves)
    rows = []
    for (name, seed), run in gradients[gradients.name.isin(GRADIENT_NETS)].groupby(["name", "seed"]):
        iterations = sorted(run.iteration.unique())
        trained = [i for i in iterations if i > 0] or iterations
        before = [i for i in trained if i <= run.milestone.iloc[0]] or trained[:1]
        moments = [("first row", trained[0]), ("before the first lr drop", before[-1]),
                   ("end", trained[-1])]
        initial = [("initialisation", 0)] if iterations[0] == 0 else []
        for moment, iteration in initial + moments:
            rows.append(run[run.iteration == iteration].assign(moment=moment))
    if not rows:
        return pd.DataFrame()
    columns = [c for c in QUANTITIES if c in gradients]
    return pd.concat(rows)[["name", "depth", "seed", "moment", "index", *columns]] \
        .reset_index(drop=True)


def layer_means(points) -> pd.DataFrame:
    """Per network, moment and layer, the geometric mean over seeds of each quantity (where
    measured): what figure_gradients draws."""
    columns = [c for c in QUANTITIES if c in points]
    logs = points.assign(**{c: np.log(points[c]) for c in columns})
    means = logs.groupby(["name", "depth", "moment", "index"], sort=False)[columns].mean()
    return np.exp(means).reset_index()


def gradient_ratios(points, column="output_gradient_norm") -> pd.DataFrame:
    """Per network and moment: each seed's ratio of the geometric mean of a gradient norm over
    the first third of the convolutions to that over the last third (1: as strong at the input
    as at the output, in norm: a first third of 32x32 maps holds 4x the values of a last third of
    8x8 ones, so an equal signal per value gives 2), then their geometric mean over the seeds
    (`first_over_last`), the lowest and highest seed's (`low`, `high`) and the seeds; only
    seeds where every layer has it."""
    per_seed = seed_ratios(points, column)
    if per_seed.empty:
        return pd.DataFrame(columns=["name", "moment", "first_over_last", "low", "high", "seeds"])
    combined = per_seed.assign(log=np.log(per_seed.first_over_last)).groupby(
        ["name", "moment"], sort=False).log.agg(first_over_last="mean", low="min", high="max",
                                                 seeds="size").reset_index()
    for c in ("first_over_last", "low", "high"):
        combined[c] = np.exp(combined[c])
    return combined


def seed_ratios(points, column="output_gradient_norm") -> pd.DataFrame:
    """Per network, seed and moment (any value: a named moment, an iteration), the ratio of the
    geometric mean of `column` over the first third of the convolutions to that over the last
    third (`first_over_last`); only where every layer has it."""
    def ratio(layers):
        logs = np.log(layers.sort_values("index")[column].to_numpy())
        third = max(1, len(logs) // 3)
        return np.exp(logs[:third].mean() - logs[-third:].mean())
    keys = ["name", "seed", "moment"]
    measured = points[points.groupby(keys)[column].transform("count")
                      == points.groupby(keys)["index"].transform("count")]
    if measured.empty:
        return pd.DataFrame(columns=[*keys, "first_over_last"])
    return measured.groupby(keys, sort=False)[["index", column]].apply(ratio).rename(
        "first_over_last").reset_index()


def recompute(run_dir: Path) -> float:
    """Recompute and write the last iteration's rows; the largest relative difference to the old."""
    from src import data as cifar
    from src.models import gradient_norms
    with final_network(run_dir) as (cfg, model, data):
        iteration = cfg.train.iterations
        _, draw, labels = next(iter(cifar.train_batches(data, cfg.train.batch_size, cfg.seed,
                                                        iteration - 1)))  # the last step's batch
        fresh = gradient_norms(model)(cifar.augment(draw, data.mean), labels, iteration)
        path = run_dir / "gradients.csv"
        rows = read_gradients(path, sys.maxsize)
        old = [r for r in rows if r["iteration"] == iteration]
        difference = max((abs(a[k] - b[k]) / abs(a[k]) for a, b in zip(old, fresh)
                          for k in ("output_gradient_norm", "kernel_gradient_norm")),
                         default=np.nan)
        rows = sorted([r for r in rows if r["iteration"] != iteration] + fresh,
                      key=lambda r: (r["iteration"], r["index"]))
        write_gradients(path, rows)
    print(f"{run_dir}: recomputed the gradients of iteration {iteration:,} "
          + (f"(largest relative difference to the run's: {difference:.2g})" if old else
             "(the run had not written them)"))
    return difference


def initial_network(cfg):
    """(its network as the seed initialised it, its first batch's images and labels): set as
    src.train's process settings set it, before the data and the network."""
    import keras
    from src import data as cifar
    from src.steps import build_model
    keras.utils.set_random_seed(cfg.seed)
    with precision(cfg):
        data = run_data(cfg)
        model = build_model(cfg)
    _, draw, labels = next(iter(cifar.train_batches(data, cfg.train.batch_size, cfg.seed)))
    return model, cifar.augment(draw, data.mean), labels


def initial_rows(cfg) -> list[dict]:
    """The rows of iteration 0 a run of `cfg` writes: its initial network on its first batch."""
    from src.models import gradient_norms
    model, images, labels = initial_network(cfg)
    with precision(cfg):
        return gradient_norms(model)(images, labels, 0)


def add_initial(run_dir: Path) -> None:
    """Put the rows of iteration 0 into the run's gradients.csv (in place of any there)."""
    summary = read_summary(run_dir)
    if summary is None:
        raise SystemExit(f"error: {run_dir} holds no run (no summary.json)")
    path = run_dir / "gradients.csv"
    try:
        with reading(run_dir):  # no run rewrites gradients.csv meanwhile
            rows = [r for r in read_gradients(path, sys.maxsize) if r["iteration"] != 0]
            write_gradients(path, initial_rows(OmegaConf.create(summary.config)) + rows)
    except RunDirError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"{run_dir}: wrote the gradients of iteration 0 (from seed {summary.config['seed']})")


def main(argv=sys.argv[1:]):
    if argv[:1] == ["--initial"]:
        return command(add_initial, __doc__, argv[1:])
    return command(recompute, __doc__, argv, ("--initial",))


if __name__ == "__main__":
    sys.exit(main())
