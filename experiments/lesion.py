"""Lesion (Veit et al., "Residual Networks Behave Like Ensembles of Relatively Shallow Networks",
NeurIPS 2016): a finished run's test error with one residual unit removed at a time.

    python -m experiments.lesion RUN_DIR [RUN_DIR ...]

From the run's final weights (experiments.trained), in inference mode with BN's moving
statistics as trained. In a ResNet, removing a unit skips its residual branch and keeps its
shortcut: the branch's last BN (original form) or its last convolution (pre-activation form) is
set to output zero, so the unit passes on its shortcut (the ReLU after the sum leaves the
non-negative shortcut of an original unit as it is). In a plain net there is no shortcut; a unit
that keeps its input's shape is replaced by the identity instead (both convolutions a centre tap,
both BNs undoing their normalisation, and each ReLU then passes its non-negative input), and a
unit that changes the shape cannot be removed. Each lesion is undone before the next. Writes
lesion.csv beside the run: one row per unit (`index` from 1, in network order) with its test
error, and `index` 0 for the network whole. Costs one evaluation of the test set per unit.
"""
import contextlib
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import plotting
from experiments.runs import Runs
from experiments.trained import command, final_network, write_csv
from src.runfiles import read_table

CSV = "lesion.csv"
COLUMNS = ["index", "unit", "test_error"]
UNIT = re.compile(r"(stage\d+_block\d+)_1_conv$")


def units(model) -> list[str]:
    """The residual units (or plain blocks) of a network, in order: stage1_block1, ..."""
    return [UNIT.match(layer.name).group(1) for layer in model.layers if UNIT.match(layer.name)]


def last_conv(model, unit: str) -> str:
    """The name of the last convolution of a unit's branch: its 2nd (two-layer unit) or 3rd
    (bottleneck)."""
    return max((layer.name for layer in model.layers
                if re.fullmatch(rf"{unit}_\d+_conv", layer.name)),
               key=lambda name: int(name.split("_")[-2]))


def removable(model, unit: str, residual: bool) -> bool:
    """A ResNet's every unit; a plain net's units that keep their input's shape."""
    first = model.get_layer(f"{unit}_1_conv")
    return residual or (first.strides == (1, 1) and first.input.shape[-1] == first.filters)


@contextlib.contextmanager
def removed(model, unit: str, residual: bool, after: dict):
    """The network with `unit` removed while the block runs; its weights as before after it.
    `after`: src.models.normalised_outputs(model), the layer that ends each conv's branch."""
    if residual:  # the branch's last layer, its BN (original unit) or its conv (pre-activation)
        changed = [after[last_conv(model, unit)]]
    else:
        changed = [model.get_layer(f"{unit}_{k}_{kind}") for k in (1, 2) for kind in ("conv", "bn")]
    kept = [[v.numpy() for v in layer.weights] for layer in changed]
    try:
        for layer in changed:
            if residual:  # the branch outputs zero: BN's gamma and beta, or the conv's kernel
                for v in layer.trainable_weights:
                    v.assign(np.zeros(v.shape, v.dtype))
            elif "_conv" in layer.name:  # a centre tap: output channel c = input channel c
                kernel = np.zeros(layer.kernel.shape, np.float32)
                kernel[1, 1] = np.eye(kernel.shape[2], kernel.shape[3])
                layer.kernel.assign(kernel)
            else:  # BN undoes its own normalisation: gamma = its std, beta = its mean
                epsilon = max(layer.epsilon, 1.001e-5)  # the fused kernel's floor
                layer.gamma.assign(np.sqrt(layer.moving_variance.numpy() + epsilon))
                layer.beta.assign(layer.moving_mean.numpy())
        yield
    finally:
        for layer, values in zip(changed, kept):
            for v, value in zip(layer.weights, values):
                v.assign(value)


def measure(run_dir: Path) -> pd.DataFrame:
    """The run's test error whole (index 0) and with each removable unit removed."""
    from src import data as cifar
    from src.models import normalised_outputs
    from src.steps import evaluate, make_test_step
    with final_network(run_dir) as (cfg, model, data):
        if cfg.shortcut == "none" and cfg.block != "original":
            raise SystemExit(f"error: {run_dir} is a plain net of block={cfg.block}: its units do "
                             "not end in a ReLU, so none can be replaced by the identity; lesion "
                             "takes ResNets and plain nets of the original unit")
        residual, after = cfg.shortcut != "none", normalised_outputs(model)
        step, batches = make_test_step(model), cifar.test_batches(data)
        rows = [{"index": 0, "unit": "none", "test_error": evaluate(step, batches)[1]}]
        for index, unit in enumerate(units(model), 1):
            if removable(model, unit, residual):
                with removed(model, unit, residual, after):
                    rows.append({"index": index, "unit": unit,
                                 "test_error": evaluate(step, batches)[1]})
        table = pd.DataFrame(rows, columns=COLUMNS)
        write_csv(run_dir, CSV, table)
    worst = table.iloc[1:].test_error.max() if len(table) > 1 else np.nan
    print(f"{run_dir}: wrote {CSV} ({len(table) - 1} units removed one at a time; test error "
          f"{table.test_error.iloc[0]:.2f}% whole, at worst {worst:.2f}%)")
    return table


def read_lesion(run_dir: Path) -> pd.DataFrame:
    return read_table(Path(run_dir) / CSV, COLUMNS, integers=("index",), text=("unit",))


def downsampling(unit: str) -> bool:
    """The first unit of stages 2 and 3, which halves the map and doubles the width: a ResNet's
    shortcut there is not an identity, and a plain net has no such unit it could remove."""
    stage, block = map(int, re.fullmatch(r"stage(\d+)_block(\d+)", unit).groups())
    return stage > 1 and block == 1


def rises(table) -> pd.DataFrame:
    """Per network (mean over its seeds): its whole test error, the median and the largest rise
    from removing one unit among the units every family can remove (not the downsampling ones;
    the median is Veit et al.'s typical unit), the largest as a share of the room the whole
    network left before chance, and the largest rise over any unit."""
    rows = []
    for name, net in table.groupby("name", sort=False):
        whole = net[net["index"] == 0].groupby("seed").test_error.mean()
        removed = net[net["index"] > 0]
        shared = removed[~removed.unit.map(downsampling)]
        typical = shared.groupby("seed").test_error.median() - whole
        worst = shared.groupby("seed").test_error.max() - whole
        worst_any = removed.groupby("seed").test_error.max() - whole
        room = (plotting.CHANCE - whole).where(plotting.CHANCE - whole >= 1)  # none near chance
        rows.append({"network": name, "seeds": len(whole), "whole test error (%)": whole.mean(),
                     "median rise, shared units (points)": typical.mean(),
                     "worst rise, shared units (points)": worst.mean(),
                     "as a share of the room to chance": (worst / room).mean(),
                     "worst rise, any unit (points)": worst_any.mean()})
    return pd.DataFrame(rows)


def figure_lesion(finished: Runs, out: Path) -> bool:
    """Test error against the unit removed, one panel per depth, plain against ResNet, the whole
    network's as a dotted line of the same colour, each net's downsampling units dashed in its
    colour; seeds averaged, each thin. The title gives each net's median rise (rises)."""
    import matplotlib.pyplot as plt
    table = plotting.analysed(finished, read_lesion, CSV, "figure_lesion", "experiments.lesion")
    if table.empty:
        return False
    seeds = table.groupby("name").seed.transform("nunique")
    table = table.assign(label=table.name + " (" + seeds.astype(str) + " seed"
                         + np.where(seeds > 1, "s", "") + ")")  # the seeds lesioned, not run
    palette = plotting.palette(table)
    depths = sorted(table.depth.unique())
    fig, axes = plt.subplots(1, len(depths), figsize=(4.5 + 4.5 * len(depths), 4.8), sharey=True,
                             squeeze=False, width_ratios=depths)
    for ax, depth in zip(axes[0], depths):
        draw_lesion(ax, finished, table[table.depth == depth], palette)
        ax.set_title(f"{depth} layers")
    axes[0][0].set_ylabel("test error (%)")
    fig.supxlabel("BN statistics as trained; a removed ResNet unit leaves its shortcut, a plain "
                  "one the identity", fontsize=9)
    axes[0][0].set_ylim(top=max(axes[0][0].get_ylim()[1], plotting.CHANCE) + 25)  # the legend
    typical = rises(table).set_index("network")["median rise, shared units (points)"]
    said = ", ".join(f"{label.split()[0]} {typical[label.split()[0]]:.2g}"
                     for label in plotting.network_order(table))
    return plotting.finish(fig, "Removing one unit (Veit et al. 2016), median rise in test error "
                           f"over the units both families have: {said} points", finished.runs,
                           out)


def draw_lesion(ax, finished: Runs, table, palette):
    """One depth's panel of figure_lesion."""
    whole, worst = table[table["index"] == 0], table[table["index"] > 0]
    for (label, index), _ in worst[worst.unit.map(downsampling)].groupby(["label", "index"]):
        ax.axvline(index, color=palette[label], linestyle="--", linewidth=0.8, alpha=0.7)
    # a plain net's units that change shape have no row: a gap in its line, not a bridge
    keys = ["label", "name", "seed"]
    every = pd.MultiIndex.from_tuples(
        [(*run, index) for run, rows in worst.groupby(keys)
         for index in range(1, rows["index"].max() + 1)], names=[*keys, "index"])
    worst = worst.set_index([*keys, "index"]).reindex(every).reset_index()
    for label in plotting.network_order(table):
        style = {"marker": "o", "markersize": 3, "linewidth": 1.5}
        plotting.lines(ax, worst, "test_error", palette, [label], x="index", **style)
        level = whole[whole.label == label].test_error.mean()
        ax.axhline(level, color=palette[label], linestyle=":", linewidth=1)
        side = 0 if label.startswith("plain") else 1  # plain's at the left: close levels apart
        ax.annotate(f"{label.split()[0]} whole: {level:.1f}%", (side, level),
                    xycoords=("axes fraction", "data"), ha=("left", "right")[side],
                    va="bottom", fontsize=7, color=palette[label])
        early = plotting.barely_trained(finished.runs, label.split()[0])
        ax.plot([], [], color=palette[label], label=label + (f": {early}" if early else ""),
                **style)
    ax.plot([], [], color="grey", linestyle=":", label="the network whole")
    ax.plot([], [], color="grey", linestyle="--", linewidth=0.8, label="a downsampling unit "
            "(plain: cannot be removed)")
    ax.set(xlabel="unit removed (network order)")
    plotting.integer_ticks(ax.xaxis)
    ax.legend(fontsize=7, handlelength=3, loc="upper center", ncols=1 if table.depth.iloc[0] < 32
              else 2)


def main(argv=sys.argv[1:]):
    return command(measure, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
