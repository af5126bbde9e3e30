"""Loss landscape (Li et al., "Visualizing the Loss Landscape of Neural Nets", NeurIPS 2018): a
finished run's training loss along the line from its initial to its final weights, and on a
plane around its final weights.

    python -m experiments.landscape [--images N] [--grid K] [--line L] [--planes P] RUN_DIR ...

From the run's final weights (experiments.trained) and its initial ones, rebuilt from its seed
(as experiments.gradients does). The loss is the cross-entropy (no weight decay) on a fixed
subset of training images, the first N (default 512) as the test images are given: mean-subtracted,
not augmented; in batches of 128 with BN normalising by each batch's statistics, as in training:
the loss is then a function of the weights alone (BN's moving statistics belong to the final
weights, and would be wrong at every other point), and it is unchanged when a kernel followed by
BN is rescaled, which is what makes filter normalisation meaningful.

- line: w(a) = w0 + a (w1 - w0) for L values of a from -0.25 to 1.25 (0: the initial weights, 1:
  the final ones; L = 13 steps by 0.125), every weight moving, BN's included;
- planes: w1 + x d1 + y d2 on a K x K grid over [-1, 1]^2, for P planes (default 3: the spread
  of what one random plane shows), d1 and d2 random Gaussian directions (drawn in turn from one
  generator seeded by the run's seed, so plane 0 is the same for any P) normalised filter by
  filter as Li et al. do: each output filter of a kernel (a convolution's or the classifier's) is
  scaled to the norm of the same filter of w1; BN's gamma and beta and the classifier's bias get
  no direction.

Writes landscape.csv beside the run: `kind` (line or plane), `plane` (0 to P - 1; 0 on the line),
`x`, `y` (0 on the line), `loss`, `error` (% of the subset misclassified), `images` (N). Costs
(L + P K^2) x N forward passes: with the defaults (L = 13, K = 11, P = 3, 512 images) 192,500.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import plotting
from experiments.runs import Runs
from experiments.trained import command, final_network, write_csv
from src.runfiles import read_table

CSV = "landscape.csv"
COLUMNS = ["kind", "plane", "x", "y", "loss", "error", "images"]
COLUMNS_BEFORE = ["kind", "x", "y", "loss", "error", "images"]  # of files with one plane
DEFAULTS = {"images": 512, "grid": 11, "line": 13, "planes": 3}
BATCH = 128


def filter_normalised(weights: list, rng) -> list:
    """A random direction for each weight: a Gaussian scaled, filter by filter (the last axis of
    a Keras kernel), to the norm of the weight's same filter; zero for vectors (BN, biases)."""
    directions = []
    for w in weights:
        if w.ndim < 2:
            directions.append(np.zeros_like(w))
            continue
        d = rng.standard_normal(w.shape).astype(w.dtype)
        axes = tuple(range(w.ndim - 1))
        scale = np.sqrt((w ** 2).sum(axis=axes)) / (np.sqrt((d ** 2).sum(axis=axes)) + 1e-12)
        directions.append(d * scale)
    return directions


def initial_weights(cfg) -> list:
    """The run's initial trainable weights, as its seed made them (experiments.gradients)."""
    from experiments.gradients import initial_network
    return [v.numpy() for v in initial_network(cfg)[0].trainable_weights]


def measure(run_dir: Path, images=DEFAULTS["images"], grid=DEFAULTS["grid"],
            line=DEFAULTS["line"], planes=DEFAULTS["planes"]) -> pd.DataFrame:
    import keras
    import tensorflow as tf
    from src.steps import count_wrong
    with final_network(run_dir) as (cfg, model, data):
        start = initial_weights(cfg)
        variables = model.trainable_weights
        final = [v.numpy() for v in variables]
        n = min(images, len(data.train_labels)) // BATCH * BATCH
        if n == 0:
            raise SystemExit(f"error: --images={images} is not allowed: at least {BATCH} (one "
                             f"batch), at most the run's {len(data.train_labels)} images")
        subset = tf.constant(data.train_images[:n].astype(np.float32) / 255 - data.mean)
        labels = tf.constant(data.train_labels[:n])

        @tf.function(autograph=False)
        def batch_loss(x, y):
            logits = model(x, training=True)  # batch statistics; the moving ones are not used
            loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits, True))
            return loss, count_wrong(logits, y)

        def at(point) -> tuple[float, float]:
            for v, value in zip(variables, point):
                v.assign(value)
            loss = wrong = 0.0
            for k in range(0, n, BATCH):
                batch, batch_wrong = batch_loss(subset[k:k + BATCH], labels[k:k + BATCH])
                loss, wrong = loss + float(batch), wrong + float(batch_wrong)
            return loss / n, 100 * wrong / n

        rows = []
        for a in np.linspace(-0.25, 1.25, line):
            loss, error = at([w0 + a * (w1 - w0) for w0, w1 in zip(start, final)])
            rows.append({"kind": "line", "plane": 0, "x": a, "y": 0.0, "loss": loss,
                         "error": error, "images": n})
        rng = np.random.default_rng(cfg.seed)
        for plane in range(planes):
            d1, d2 = filter_normalised(final, rng), filter_normalised(final, rng)
            for x in np.linspace(-1, 1, grid):
                for y in np.linspace(-1, 1, grid):
                    loss, error = at([w + x * a + y * b for w, a, b in zip(final, d1, d2)])
                    rows.append({"kind": "plane", "plane": plane, "x": x, "y": y, "loss": loss,
                                 "error": error, "images": n})
        table = pd.DataFrame(rows, columns=COLUMNS)
        write_csv(run_dir, CSV, table)
    centre = table[(table.kind == "plane") & (table.x.abs() < 1e-9) & (table.y.abs() < 1e-9)]
    print(f"{run_dir}: wrote {CSV} ({line} points on the line, {planes} planes of {grid} x "
          f"{grid}, {n} "
          f"training images; loss {centre.loss.mean():.3g} at the final weights, "
          f"{table[table.kind == 'plane'].loss.max():.3g} at most on the plane)")
    return table


def read_landscape(run_dir: Path) -> pd.DataFrame:
    """landscape.csv; a file of one plane, from before `plane`, as plane 0."""
    table = read_table(Path(run_dir) / CSV, COLUMNS, COLUMNS_BEFORE, integers=("images",),
                       text=("kind",))
    return table.assign(plane=table.plane.fillna(0).astype(int))


def edge_rise(plane: pd.DataFrame) -> float:
    """The mean loss on the plane's border (|x| or |y| = 1) over the loss at its centre."""
    border = plane[(plane.x.abs() > 1 - 1e-9) | (plane.y.abs() > 1 - 1e-9)].loss.mean()
    centre = plane[(plane.x.abs() < 1e-9) & (plane.y.abs() < 1e-9)].loss.mean()
    return border / centre


def not_convex(plane: pd.DataFrame, within: float = 1.0) -> float:
    """The share (%) of the plane's inner points (off its border), those within `within` of the
    centre in x and in y, at which the loss bends down along one of the grid's four directions
    (x, y and the diagonals): f(p - h) + f(p + h) < 2 f(p), h one grid step, by more than BEND
    of f(p) (landscape.csv's 6 digits cannot make one). No convex function bends down (midpoint
    convexity): each such point proves the loss curves down somewhere between p - h and p + h,
    so that the Hessian there has a negative eigenvalue (Li et al. map the Hessian's
    |min / max eigenvalue| instead; a negative one need not show in a plane). None does not
    prove it convex. Away from the centre, a loss that levels off (near chance, say) bends down
    in any net: CENTRAL bounds the part that asks about the minimum. Unchanged by multiplying
    the loss by a positive number."""
    loss = plane.pivot(index="y", columns="x", values="loss")
    f = loss.to_numpy()
    centre = f[1:-1, 1:-1]
    neighbours = np.min([f[1:-1, 2:] + f[1:-1, :-2], f[2:, 1:-1] + f[:-2, 1:-1],
                         f[2:, 2:] + f[:-2, :-2], f[2:, :-2] + f[:-2, 2:]], axis=0)
    bends = 2 * centre - neighbours > BEND * np.abs(centre)
    x, y = np.meshgrid(loss.columns.to_numpy()[1:-1], loss.index.to_numpy()[1:-1])
    inside = (np.abs(x) <= within + 1e-9) & (np.abs(y) <= within + 1e-9)
    return 100 * bends[inside].mean() if inside.any() else np.nan


BEND = 1e-4  # the least bend not_convex counts, relative to the loss
CENTRAL = 0.5  # the central part of the plane, |x| and |y| at most this
RATIO = "border / centre"
CENTRAL_SHARE = f"not convex (% of central points, x and y in [-{CENTRAL:g}, {CENTRAL:g}])"


def shapes(planes: pd.DataFrame) -> pd.DataFrame:
    """Per network, seed and plane: the border / centre loss (edge_rise) and where the loss is
    not convex (not_convex), over the plane's inner points and over its central ones."""
    return planes.groupby(["name", "seed", "plane"]).apply(lambda plane: pd.Series({
        RATIO: edge_rise(plane), "not convex (% of inner points)": not_convex(plane),
        CENTRAL_SHARE: not_convex(plane, CENTRAL)}),
        include_groups=False).reset_index()


def figure_landscape(finished: Runs, out: Path) -> bool:
    """The line from initial to final weights for every network, and each network's plane
    around its final weights, on one colour scale (log10 of the loss); one seed per network,
    the lowest with a landscape.csv. The title gives where each is not convex near its centre
    (not_convex within CENTRAL)."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker as ticker
    table = plotting.analysed(finished, read_landscape, CSV, "figure_landscape", "experiments.landscape")
    if table.empty:
        return False
    table = table[table.seed == table.groupby("name").seed.transform("min")]
    nets = [n for n in plotting.ANALYSED_NETS if n in set(table.name)]
    palette = plotting.palette(table)
    fig, axes = plt.subplots(1, 1 + len(nets), figsize=(4.2 * (1 + len(nets)), 4.2),
                             squeeze=False)
    ax = axes[0, 0]
    for name in nets:
        line = table[(table.name == name) & (table.kind == "line")]
        label = line.label.iloc[0]
        ax.plot(line.x, line.loss, color=palette[label], marker="o", markersize=3,
                label=f"{name} (seed {line.seed.iloc[0]})")
    ax.set(yscale="log", xlabel="0: initial weights, 1: final weights", ylabel="training loss",
           title="the straight line from the initial to the\nfinal weights (Goodfellow et al. 2015)")
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))  # 1, 2, 5, 10: not 2 x 10^0
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.legend(fontsize=7, handlelength=4)
    planes = table[(table.kind == "plane") & (table.plane == 0)]  # the first of each run's
    levels = np.linspace(np.log10(planes.loss.min()), np.log10(planes.loss.max()), 15)
    for ax, name in zip(axes[0, 1:], nets):
        plane = planes[planes.name == name].pivot(index="y", columns="x", values="loss")
        filled = ax.contourf(plane.columns, plane.index, np.log10(plane.to_numpy()), levels,
                             cmap="viridis")
        ax.plot(0, 0, "r+")
        early = plotting.barely_trained(finished.runs, name)
        ax.set(title=f"{name} (seed {planes[planes.name == name].seed.iloc[0]}, random plane 1 "
               f"of {table[table.name == name].plane.nunique()})"
               + (f"\n{early}" if early else ""),
               xlabel="direction 1 (filter-normalised)", ylabel="direction 2", aspect="equal")
    fig.colorbar(filled, ax=axes[0, -1], label="log10 training loss (one scale for all)",
                 format="%.2f", use_gridspec=True)
    grids = planes.groupby("name").x.nunique()
    fig.text(0.5, 0.005, "measured on " + ", ".join(sorted(
        {f"{grids[n]} x {grids[n]} points, {planes[planes.name == n].images.iloc[0]} training "
         "images" for n in nets})) + "; unlike Li et al.'s code: BN on batch statistics (theirs: "
        "the trained running ones), one seed (docs/runs.md)", ha="center", fontsize=7)
    shares = shapes(table[table.kind == "plane"]).groupby("name")[CENTRAL_SHARE].mean()
    said = ", ".join(f"{name} {shares[name]:.0f}%" for name in nets if shares[name] >= 0)
    return plotting.finish(fig, "Around the final weights (Li et al. 2018) the training loss is "
                           + (f"not convex at {said} of a plane's central points (x and y within "
                              f"{CENTRAL:g} of the centre; mean over its planes)" if said else
                              "drawn on planes with no inner point"), finished.runs, out)


def main(argv=sys.argv[1:]):
    parser = argparse.ArgumentParser(add_help=False)
    for key, value in DEFAULTS.items():
        parser.add_argument(f"--{key}", type=int, default=value)
    options, rest = parser.parse_known_args(argv)
    for key, value in vars(options).items():
        least = {"images": BATCH, "planes": 1}.get(key, 2)
        if value < least:
            print(f"error: --{key}={value} is not allowed: at least {least}", file=sys.stderr)
            return 2
    return command(lambda run_dir: measure(run_dir, **vars(options)), __doc__, rest,
                   tuple(f"--{key}" for key in DEFAULTS))


if __name__ == "__main__":
    sys.exit(main())
