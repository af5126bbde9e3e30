"""The figures of a budget folder, from its finished runs: Figures 1, 6 and 7 of the paper, the
error against depth, the backward signal and the pre-activation comparison; then its tables and
README (experiments.readme).

    python -m experiments.figures [results/quick | results ...]

Each figure is a function of the finished runs (experiments.runs) that draws one PNG and PDF
(experiments.plotting) or says in one line why it cannot; FIGURES lists them, the headline first.
Works on any subset of runs (what is missing is named); every seed is drawn, thin, under the mean
of its network.
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from experiments import claims, plotting  # noqa: E402
from experiments.gradients import (GRADIENT_NETS, gradient_points,  # noqa: E402
                                   layer_means, read_gradient_table)
from experiments.landscape import figure_landscape  # noqa: E402
from experiments.lesion import figure_lesion  # noqa: E402
from experiments.paper import (PLAIN_TEST_ERROR, PLAIN_TRAIN_ERROR,  # noqa: E402
                               RESNET_TEST_ERROR, RESNET_TEST_ERROR_MEAN)
from experiments.readme import write_budget  # noqa: E402
from experiments.runs import Runs, load_runs  # noqa: E402
from src import Stopped, stops_raise  # noqa: E402
from src.runfiles import read_responses  # noqa: E402

FIGURE7_NETS = ["plain-20", "plain-56", "ResNet-20", "ResNet-56", "ResNet-110"]


def figure1(data: Runs, out: Path) -> bool:
    """Figure 1: plain-20 against plain-56, training and test error."""
    curves, runs = data.curves, data.runs
    plain = curves[(curves.net == "plain") & curves.depth.isin([20, 56])]
    if plain.depth.nunique() < 2:
        print("figure1: needs plain-20 and plain-56; skipped")
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharex=True, sharey=True)
    palette = plotting.palette(plain)
    order = plotting.network_order(plain)
    for ax, column, what in zip(axes, ["train_error", "test_error"], ["training", "test"]):
        plotting.lines(ax, plain.dropna(subset=[column]), column, palette, order, linewidth=2,
               marker="o" if column == "test_error" else None, markersize=3)
        plotting.error_axes(ax, f"{what} error", plotting.error_limit(plain))
        ax.legend(handles=[plt.Line2D([], [], color=palette[label], linewidth=2, label=label)
                           for label in order] +
                  [plt.Line2D([], [], color="black", linewidth=0.6, alpha=0.45,
                              label="one seed")], fontsize=8)
    pair = runs[(runs.net == "plain") & runs.depth.isin([20, 56])]
    final = claims.judged_final(pair, "plain")["mean"]
    return plotting.finish(fig, f"Figure 1, {claims.trend(pair, 'plain')}; training error "
                   f"{final.get(20, np.nan):.1f}% vs {final.get(56, np.nan):.1f}%", runs, out)


def figure6(data: Runs, out: Path) -> bool:
    """Figure 6: plain nets and ResNets by depth, one panel each (and ResNet-1202's if run)."""
    curves, runs = data.curves, data.runs
    resnets = curves[curves.net == "ResNet"]
    panels = [("plain networks", curves[curves.net == "plain"]),
              ("ResNets", resnets[resnets.depth <= 110]),
              ("ResNet-110 and ResNet-1202", resnets[resnets.depth.isin([110, 1202])])]
    panels = [(t, c) for t, c in panels if not c.empty and (t != panels[2][0] or
                                                             (c.depth == 1202).any())]
    if not panels:
        print("figure6: no plain or ResNet runs; skipped")
        return False
    palette = plotting.palette(curves)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.6), sharex=True,
                             sharey=True, squeeze=False)
    ylim = plotting.error_limit(pd.concat([c for _, c in panels]))  # shared by the panels (sharey)
    for ax, (title, panel) in zip(axes[0], panels):
        plotting.curves_panel(ax, panel, title, palette, ylim)
    finding = "; ".join(claims.trend(runs, net) for net in ("plain", "ResNet")
                        if runs[runs.net == net].depth.nunique() > 1)
    return plotting.finish(fig, f"Figure 6: {finding or 'CIFAR-10 error'} (training dashed, test bold)",
                   runs, out)


def figure_depth(runs: Runs, out: Path) -> bool:
    """The headline: final training (left) and test (right) error against depth, a line of means
    per family, every seed a dot, the paper's 64k-iteration values as hollow markers."""
    runs = runs.runs
    data = runs[runs.net.isin(["plain", "ResNet", "pre-act ResNet"])]
    if data.depth.nunique() < 2:
        print("figure_depth: needs two depths of one family; skipped")
        return False
    colours = {net: plotting.colour(net, 56) for net in ("plain", "ResNet", "pre-act ResNet")}
    resnet = {d: RESNET_TEST_ERROR_MEAN.get(d, (v,))[0] for d, v in RESNET_TEST_ERROR.items()}
    paper = {("plain", "train_error"): PLAIN_TRAIN_ERROR, ("plain", "test_error"): PLAIN_TEST_ERROR,
             ("ResNet", "test_error"): resnet}  # the mean of 5 runs at 110 layers
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    for ax, column, what in zip(axes, ["train_error", "test_error"], ["training", "test"]):
        for net, group in data.groupby("net"):
            judged, scouts = group[~group.scouting], group[group.scouting]
            mean = judged.groupby("depth")[column].mean()
            seeds = plotting.seed_count(judged, "judged " if len(scouts) else "")
            ax.plot(mean.index, mean.values, color=colours[net], linewidth=2, marker="s",
                    markersize=5, label=f"{net} (mean of {seeds})")
            ax.scatter(judged.depth, judged[column], color=colours[net], s=14, alpha=0.6, zorder=3)
            if len(scouts):
                ax.scatter(scouts.depth, scouts[column], color=colours[net], s=30, marker="x",
                           zorder=3, label=f"{net}, scouting seed (chose the budget; not judged)")
            values = paper.get((net, column), {})
            shown = {d: v for d, v in values.items() if d in set(group.depth)}
            if shown:
                ax.scatter(list(shown), list(shown.values()), facecolors="none",
                           edgecolors=colours[net], s=50, linewidths=1.5, zorder=3,
                           label=f"{net}, paper, 64k it." + (" (approx.)" if net == "plain" else
                                                              " (110: mean of 5)"))
        ax.scatter([], [], color="grey", s=14, alpha=0.6, label="one seed")
        ax.set(title=f"final {what} error", xlabel="depth (layers)", ylabel="error (%)",
               xscale="log")
        ax.set_xticks(sorted(data.depth.unique()), [str(d) for d in sorted(data.depth.unique())])
        ax.minorticks_off()
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylim(0, 1.3 * axes[0].get_ylim()[1])  # both panels' points, room for the legends
    finding = "; ".join(claims.trend(data, net)
                        for net in ("plain", "ResNet") if data[data.net == net].depth.nunique() > 1)
    return plotting.finish(fig, f"Error against depth: {finding}", runs, out)


def figure7(runs: Runs, out: Path) -> bool:
    """Std of each 3x3 layer's response on the test set: in layer order (top), sorted (bottom),
    on a log axis so that plain-56's large first layers leave every other curve visible."""
    responses, runs = runs.side(read_responses, "responses.csv"), runs.runs
    if responses.empty or not responses.name.isin(FIGURE7_NETS).any():
        print("figure7: no responses.csv of plain or ResNet runs; skipped")
        return False
    data = responses[responses.name.isin(FIGURE7_NETS)].copy()
    data["rank"] = data.groupby(["name", "seed"])["std"].rank(ascending=False, method="first")
    scouts = data.folder.isin(runs.folder[runs.scouting])  # drawn, but not judged by (e)
    judged = data[~scouts].groupby("label")["std"].mean()
    scouted = data[scouts].groupby("label").seed.nunique()

    def legend(label):
        if label not in judged:
            return f"{label}: mean std {data[data.label == label]['std'].mean():.2f} (scouting " \
                   "seeds only: not judged)"
        return f"{label}: mean std {judged[label]:.2f}" + (
            f" (without its {scouted[label]} scouting seed, drawn: the claims leave it out)"
            if label in scouted else "")
    data["label"] = data.label.map(legend)
    palette = plotting.palette(data)
    fig, axes = plt.subplots(2, 1, figsize=(9, 7.5))
    for ax, x, title in [(axes[0], "index", "layer index (original order)"),
                         (axes[1], "rank", "layer index (sorted by magnitude)")]:
        for label in plotting.network_order(data):
            plotting.lines(ax, data, "std", palette, [label], x=x, linewidth=1.5, label=label)
        ax.set(xlabel=title, ylabel="std (log scale)", yscale="log")
        plotting.integer_ticks(ax.xaxis)
        ax.legend(fontsize=7, ncols=2)
    word = claims.finding(claims.judge(runs, responses), "(e)") or "not tested by these runs"
    return plotting.finish(fig, f"Figure 7, (e) ResNets respond more weakly, deeper ones more so: "
                           f"{word} (std of each 3x3 layer's output after BN, on the test set)",
                           runs, out)


GRADIENT_ROWS = [("bn_output_gradient_norm", "norm of dLoss/d(BN output), log"),
                 ("effective_step", "effective step lr |dL/dW| / |W|, log")]


def figure_gradients(data: Runs, out: Path) -> bool:
    """The paper's argument that degradation is not vanishing gradients, in quantities BN cannot
    rescale: the gradient at each convolution's BN output and each kernel's effective step,
    against layer index, at four moments of training, plain against ResNet at 20 and 56 layers."""
    gradients, runs = data.side(read_gradient_table, "gradients.csv"), data.runs
    points = gradient_points(gradients, data.curves) if not gradients.empty else pd.DataFrame()
    rows = [(c, label) for c, label in GRADIENT_ROWS if c in points and points[c].notna().any()]
    if points.empty or not rows:
        print("figure_gradients: no BN-output gradients in the gradients.csv of plain or ResNet "
              "20/56 runs; skipped")
        return False
    moments = list(dict.fromkeys(points.moment))
    palette = {name: plotting.colour(*name.rsplit("-", 1)[:1], depth)
               for name, depth in zip(points.name, points.depth)}
    means = layer_means(points)
    fig, axes = plt.subplots(len(rows), len(moments), figsize=(4.6 * len(moments),
                                                                3.8 * len(rows)),
                             sharey="row", squeeze=False)
    for (column, label), row in zip(rows, axes):
        for ax, moment in zip(row, moments):
            for name in GRADIENT_NETS:
                line = means[(means.name == name) & (means.moment == moment)].dropna(
                    subset=[column])
                if not line.empty:
                    seeds = points[(points.name == name) & (points.moment == moment)].dropna(
                        subset=[column]).seed.nunique()
                    ax.plot(line["index"], line[column], color=palette[name], linewidth=1.5,
                            label=f"{name} ({seeds} seed{'s' if seeds > 1 else ''})")
            if not ax.lines:
                ax.text(0.5, 0.5, "not measured in these runs", ha="center", va="center",
                        transform=ax.transAxes, color="grey")
            else:
                ax.set_yscale("log")
                ax.legend(fontsize=8)
            ax.set(title=moment, xlabel="convolution (network order)", ylabel=label)
            plotting.integer_ticks(ax.xaxis)
    return plotting.finish(fig, "The backward signal and the effective step by layer, geometric "
                           "means over the seeds that measured each (legends: how many; measured, "
                           "not judged: the README gives the ratios)", runs, out)


def figure_preact(data: Runs, out: Path) -> bool:
    """Each pre-activation net beside the original-form net of its unit and depth, where both
    ran: ResNet-110 and pre-act ResNet-110, the bottleneck ResNet-164 pair, ..."""
    curves, runs = data.curves, data.runs
    pairs = claims.preactivation_pairs(runs)
    if not pairs:
        print("figure_preact: needs a pre-activation net and the original-form net of its unit "
              "and depth; skipped")
        return False
    palette = {}
    for pair in pairs:  # each net in its family's colour: pre-act green, the original blue
        for name in pair:
            palette.update(plotting.palette(curves[curves.name == name]))
    shown = curves[curves.label.isin(palette)]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    plotting.curves_panel(ax, shown, "original unit vs pre-activation unit", palette,
                          plotting.error_limit(shown))
    word = claims.finding(claims.judge(runs, pd.DataFrame()), "(d)") or "not decided yet"
    return plotting.finish(fig, "(d) The pre-activation unit (He et al. 2016) trains deep nets more "
                           f"easily than the original: {word}", runs, out)


# Every figure of a budget folder, in the README's order: the headline first.
FIGURES = [("figure_depth", figure_depth), ("figure1", figure1), ("figure6", figure6),
           ("figure7", figure7), ("figure_gradients", figure_gradients),
           ("figure_preact", figure_preact), ("figure_lesion", figure_lesion),
           ("figure_landscape", figure_landscape)]


def draw_budget(budget_dir: Path) -> bool:
    """Every figure, the tables and the README of one budget folder; False if it has no runs."""
    finished = load_runs(budget_dir)
    if finished.empty:
        print(f"{budget_dir}: no finished runs; nothing written")
        return False
    sns.set_theme(style="whitegrid", context="notebook")
    made = [f"{name}.png" for name, draw in FIGURES if draw(finished, budget_dir / f"{name}.png")]
    write_budget(finished, made)
    print(f"{budget_dir}: wrote {', '.join(made + ['table6.md', 'table6.csv', 'README.md'])}")
    return True


def main(argv=sys.argv[1:]):
    """Each argument is a budget folder (holding runs/) or a root of them (default: results).
    Ctrl-C or SIGTERM stops it in one line: every file it wrote is whole (each is renamed into
    place), the others are as they were."""
    try:
        with stops_raise():
            return draw(argv)
    except Stopped as stop:
        print(f"figures stopped by signal {stop.args[0]}: the files written so far are whole; run "
              "`make figures` again", file=sys.stderr)
        return 128 + stop.args[0]


def draw(argv) -> int:
    folders = []
    for root in [Path(a) for a in argv] or [Path("results")]:
        found = [root] if (root / "runs").is_dir() else sorted(p.parent for p in root.glob("*/runs"))
        if not found:
            print(f"error: no run folders in {root} (neither {root}/runs nor {root}/<budget>/runs): "
                  "run `make reproduce-cifar` first", file=sys.stderr)
            return 1
        folders += found
    made = []
    for folder in folders:
        try:
            made.append(draw_budget(folder))
        except OSError as e:  # a read-only or full results folder
            print(f"error: cannot write the figures of {folder}: {e.strerror or e}",
                  file=sys.stderr)
            return 2
    return 0 if any(made) else 1


if __name__ == "__main__":
    sys.exit(main())
