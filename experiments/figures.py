"""Figures 1, 6 and 7 and Table 6 of the paper, the pre-activation comparison, and the claims,
from run folders alone.

    python -m experiments.figures [results/quick | results ...]

Reads <budget folder>/runs/*/{metrics.csv,summary.json,responses.csv,gradients.csv}; writes
figure_depth (the headline: final error against depth, every seed a dot, the paper's values
beside), figure1, figure6, figure7, figure_gradients and figure_preact, each as .png and .pdf,
table6.md, table6.csv and README.md into each budget folder. Works on any subset of runs (what is
missing is named); every seed is drawn, thin, under the mean of its network.
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from experiments.paper import (PLAIN_TEST_ERROR, PLAIN_TRAIN_ERROR,  # noqa: E402
                               RESNET_TEST_ERROR)
from src.grids import SCOUTING, run_names  # noqa: E402
from src.rundir import WEIGHTS, damage, read_summary, write_text  # noqa: E402  (the runs' own rules)

NAMES = {"none": "plain", "identity": "ResNet", "projection": "ResNet-B",
         "all_projection": "ResNet-C"}
# The rule every claim is judged by, fixed before the runs: a difference of means is "shown" when
# it exceeds SHOWN_AT times the larger seed std of the networks compared. A network with one seed
# has no spread, so a comparison with a one-seed side is "not decided", never "shown".
SHOWN_AT = 2
CHANCE = 90  # % error of a guess among 10 classes


def load_runs(budget_dir: Path) -> tuple[pd.DataFrame, ...]:
    """(curves: a row per run and logged iteration; runs: a row per run, from summary.json;
    responses: a row per run and 3x3 layer, from responses.csv where the run has one; gradients:
    a row per run, logged iteration and convolution, from gradients.csv where the run has one)."""
    curves, runs, responses, gradients = [], [], [], []
    for summary_path in sorted(budget_dir.glob("runs/*/summary.json")):
        problem = damage(summary_path.parent)
        if problem:
            print(f"warning: skipped {summary_path.parent.name}: damaged ({problem}); rerun it "
                  "to repair it", file=sys.stderr)
            continue
        summary = read_summary(summary_path.parent)
        metrics = summary_path.with_name("metrics.csv")
        if summary.status != "finished" or not metrics.exists():
            print(f"skipped {summary_path.parent.name}: {summary.status}, not finished")
            continue
        c = summary.config
        net = ("pre-act " if c.get("block") == "preact" else "") + NAMES[c["shortcut"]]
        run = {"net": net, "depth": c["depth"], "seed": c["seed"], "name": f"{net}-{c['depth']}",
               "folder": summary_path.parent.name}
        runs.append({**run, "parameters": summary.parameters,
                     "train_error": summary.train_error, "test_error": summary.test_error,
                     "iterations": summary.iterations, "wall_seconds": summary.wall_seconds,
                     "weights": WEIGHTS if summary_path.with_name(WEIGHTS).exists() else "-",
                     "cpu": summary.hardware["cpu"], "gpus": ", ".join(summary.hardware["gpus"]),
                     "commits": summary.commits or [summary.commit], "budget": c["budget"]["name"],
                     "batch_size": c["train"]["batch_size"], "lr": c["train"]["lr"],
                     "precision": c["train"]["precision"],
                     "milestones": ", ".join(f"{m:.0%}" for m in c["train"]["milestones"])})
        curves.append(pd.read_csv(metrics).assign(**run))
        if summary_path.with_name("responses.csv").exists():
            responses.append(pd.read_csv(summary_path.with_name("responses.csv")).assign(**run))
        if summary_path.with_name("gradients.csv").exists():
            gradients.append(pd.read_csv(summary_path.with_name("gradients.csv")).assign(
                **run, milestone=c["train"]["milestones"][0] * summary.iterations))
    if not runs:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    runs = pd.DataFrame(runs)
    runs["scouting"] = runs.folder.isin(SCOUTING.get(budget_dir.name, []))  # left out of verdicts
    n = runs.groupby("name").seed.transform("nunique")
    runs["label"] = runs.name + " (n=" + n.astype(str) + ")"
    labels = runs.drop_duplicates("name").set_index("name").label
    curves = pd.concat(curves, ignore_index=True)
    curves["label"] = curves.name.map(labels)
    responses = pd.concat(responses, ignore_index=True) if responses else pd.DataFrame()
    if not responses.empty:
        responses["label"] = responses.name.map(labels)
    gradients = pd.concat(gradients, ignore_index=True) if gradients else pd.DataFrame()
    return curves, runs, responses, gradients


def _order(frame) -> list[str]:
    """Network labels in a stable order: family (plain, ResNet, ...), then depth."""
    return frame.sort_values(["net", "depth"]).label.drop_duplicates().tolist()


def _lines(ax, data, y, palette, order, x="iteration", **style):
    """Each seed a thin line, the mean over seeds a bold one, one colour per network."""
    for label in order:
        net = data[data.label == label]
        if net.empty:
            continue
        if net.seed.nunique() > 1:
            for _, seed in net.groupby("seed"):
                seed = seed.sort_values(x)  # e.g. Figure 7's layers sorted by magnitude
                ax.plot(seed[x], seed[y], color=palette[label], linewidth=0.6, alpha=0.45,
                        linestyle=style.get("linestyle", "-"))
        mean = net.groupby(x)[y].mean()
        ax.plot(mean.index, mean.values, color=palette[label], **style)


def error_limit(curves) -> float:
    """The top of an error axis: room above the runs' final errors, at least 20% (the paper's
    Figure 6 shows 0-20%), up to 100% (and chance) when a run ends near it. The early curves leave
    the axis above, as in the paper; the ends, where the claims are, stay apart."""
    ends = curves.sort_values("iteration").groupby(["label", "seed"]).last()
    worst = ends[["train_error", "test_error"]].max().max()
    return float(np.clip(10 * np.ceil(1.5 * worst / 10), 20, 100))


def _error_axes(ax, title, ylim):
    """Error in % against iterations, with a dotted line at chance."""
    ax.axhline(CHANCE, color="grey", linestyle=":", linewidth=1)
    ax.annotate("chance", (1, CHANCE), xycoords=("axes fraction", "data"), ha="right",
                va="bottom", fontsize=7, color="grey", annotation_clip=True)
    ax.set(title=title, xlabel="iterations", ylabel="error (%)", ylim=(0, ylim))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
    ax.xaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))


def _curves(ax, curves, title, palette, ylim):
    """Dashed: training error; bold: test error; one colour per network; thin: single seeds."""
    order = _order(curves)
    _lines(ax, curves, "train_error", palette, order, linestyle="--", linewidth=1.2)
    _lines(ax, curves.dropna(subset=["test_error"]), "test_error", palette, order,
           linewidth=2.2, marker="o", markersize=3)
    _error_axes(ax, title, ylim)
    handles = [plt.Line2D([], [], color=palette[label], linewidth=2.2, label=label)
               for label in order]
    handles += [plt.Line2D([], [], color="black", linestyle="--", linewidth=1.2, label="training"),
                plt.Line2D([], [], color="black", linewidth=2.2, label="test"),
                plt.Line2D([], [], color="black", linewidth=0.6, alpha=0.45, label="one seed")]
    ax.legend(handles=handles, fontsize=7, ncols=2)


def _seeds(runs, kind="") -> str:
    """The seeds per network: '3 seeds', '1-3 seeds'; kind qualifies them ('judged ')."""
    n = runs.groupby("name").seed.nunique()
    return f"{n.min()} {kind}seed{'s' if n.max() > 1 else ''}" if n.min() == n.max() else \
        f"{n.min()}-{n.max()} {kind}seeds"


def _budget_title(runs):
    """The budget behind a figure (the hardware is in the README's provenance list)."""
    return (f"budget '{runs.budget.iloc[0]}': {runs.iterations.max():,} iterations "
            f"(the paper: 64,000), {_seeds(runs)} per net (n in the legend)")


DEPTH_COLOURS = {20: "tab:blue", 32: "tab:green", 44: "tab:orange", 56: "tab:red",
                 110: "tab:purple", 1202: "black"}


def _by_depth(frame) -> dict:
    """One colour per depth, the same in every panel and figure, far apart for 20/32/44."""
    return {label: DEPTH_COLOURS.get(depth, "tab:brown")
            for label, depth in zip(frame.label, frame.depth)}


def _finish(fig, title: str, runs, out: Path) -> bool:
    """The finding as the title, the budget under it; then written (_save)."""
    fig.suptitle(f"{title}\n{_budget_title(runs)}", fontsize=10)
    fig.tight_layout()
    hardware = ", ".join(sorted(set(runs.cpu))) + "; " + (", ".join(sorted(set(runs.gpus) - {""}))
                                                         or "no GPU")
    fig.text(0.995, 0.003, f"trained on {hardware}", ha="right", va="bottom", fontsize=6,
             color="grey")  # the footnote of provenance; the budget README has the rest
    _save(fig, out)
    return True


def _save(fig, out: Path):
    """Write the PNG and a vector PDF beside it, atomically: a kill leaves the old figure, never
    a torn one. The PDF carries no creation date, so the same runs give the same bytes."""
    for path, metadata in ((out, None), (out.with_suffix(".pdf"), {"CreationDate": None})):
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata=metadata)
        tmp.replace(path)
    plt.close(fig)


def figure1(curves, runs, out: Path) -> bool:
    plain = curves[(curves.net == "plain") & curves.depth.isin([20, 56])]
    if plain.depth.nunique() < 2:
        print("figure1: needs plain-20 and plain-56; skipped")
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharex=True, sharey=True)
    palette = {label: "tab:orange" if depth == 20 else "tab:red"
               for label, depth in zip(plain.label, plain.depth)}
    order = _order(plain)
    for ax, column, what in zip(axes, ["train_error", "test_error"], ["training", "test"]):
        _lines(ax, plain.dropna(subset=[column]), column, palette, order, linewidth=2,
               marker="o" if column == "test_error" else None, markersize=3)
        _error_axes(ax, f"{what} error", error_limit(plain))
        ax.legend(handles=[plt.Line2D([], [], color=palette[label], linewidth=2, label=label)
                           for label in order] +
                  [plt.Line2D([], [], color="black", linewidth=0.6, alpha=0.45,
                              label="one seed")], fontsize=8)
    pair = runs[(runs.net == "plain") & runs.depth.isin([20, 56])]
    final = _judged_final(pair, "plain")["mean"]
    return _finish(fig, f"Figure 1, {_trend(pair, 'plain')}; training error "
                   f"{final.get(20, np.nan):.1f}% vs {final.get(56, np.nan):.1f}%", runs, out)


def figure6(curves, runs, out: Path) -> bool:
    resnets = curves[curves.net == "ResNet"]
    panels = [("plain networks", curves[curves.net == "plain"]),
              ("ResNets", resnets[resnets.depth <= 110]),
              ("ResNet-110 and ResNet-1202", resnets[resnets.depth.isin([110, 1202])])]
    panels = [(t, c) for t, c in panels if not c.empty and (t != panels[2][0] or
                                                             (c.depth == 1202).any())]
    if not panels:
        print("figure6: no plain or ResNet runs; skipped")
        return False
    palette = _by_depth(curves[curves.net.isin(["plain", "ResNet"])])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.6), sharex=True,
                             sharey=True, squeeze=False)
    ylim = error_limit(pd.concat([c for _, c in panels]))  # shared by the panels (sharey)
    for ax, (title, data) in zip(axes[0], panels):
        _curves(ax, data, title, palette, ylim)
    finding = "; ".join(_trend(runs, net) for net in ("plain", "ResNet")
                        if runs[runs.net == net].depth.nunique() > 1)
    return _finish(fig, f"Figure 6: {finding or 'CIFAR-10 error'} (training dashed, test bold)",
                   runs, out)


FIGURE7_NETS = ["plain-20", "plain-56", "ResNet-20", "ResNet-56", "ResNet-110"]


PLURAL = {"plain": "plain nets", "ResNet": "ResNets"}


def _judged_final(runs, net):
    """Final training error of `net` per depth, mean and std over the seeds the claims judge."""
    return runs[(runs.net == net) & ~runs.scouting].groupby("depth").train_error.agg(
        ["mean", "std"])


def _trend(runs, net) -> str:
    """A title's finding: how the deepest `net` ends in training error against its shallowest,
    on the seeds the claims judge (scouting runs left out) and qualified by the claims' rule."""
    final = _judged_final(runs, net)
    if len(final) < 2:
        return f"{PLURAL[net]}: depth not judged yet (scouting seeds left out)"
    (shallow, a), (deep, b) = final.iloc[[0, -1]].iterrows()
    verdict = _verdict(abs(b["mean"] - a["mean"]), [a["std"], b["std"]])[1]
    qualifier = {"shown": "", "not shown at this budget": ", within the seeds' spread"}.get(
        verdict, " (a side with one seed: not decided)")
    scouted = ", scouting seeds left out" if runs[runs.net == net].scouting.any() else ""
    return (f"{PLURAL[net]}{scouted}: {deep} layers train "
            f"{'worse' if b['mean'] > a['mean'] else 'better'} than {shallow}{qualifier}")


def figure_depth(runs, out: Path) -> bool:
    """The headline: final training (left) and test (right) error against depth, a line of means
    per family, every seed a dot, the paper's 64k-iteration values as hollow markers."""
    data = runs[runs.net.isin(["plain", "ResNet", "pre-act ResNet"])]
    if data.depth.nunique() < 2:
        print("figure_depth: needs two depths of one family; skipped")
        return False
    colours = {"plain": "tab:red", "ResNet": "tab:blue", "pre-act ResNet": "tab:green"}
    paper = {("plain", "train_error"): PLAIN_TRAIN_ERROR, ("plain", "test_error"): PLAIN_TEST_ERROR,
             ("ResNet", "test_error"): RESNET_TEST_ERROR}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    for ax, column, what in zip(axes, ["train_error", "test_error"], ["training", "test"]):
        for net, group in data.groupby("net"):
            judged, scouts = group[~group.scouting], group[group.scouting]
            mean = judged.groupby("depth")[column].mean()
            seeds = _seeds(judged, "judged " if len(scouts) else "")
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
                           label=f"{net}, paper, 64k it." + (" (approx.)" if net == "plain" else ""))
        ax.scatter([], [], color="grey", s=14, alpha=0.6, label="one seed")
        ax.set(title=f"final {what} error", xlabel="depth (layers)", ylabel="error (%)",
               xscale="log")
        ax.set_xticks(sorted(data.depth.unique()), [str(d) for d in sorted(data.depth.unique())])
        ax.minorticks_off()
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylim(0, 1.3 * axes[0].get_ylim()[1])  # both panels' points, room for the legends
    finding = "; ".join(_trend(data, net)
                        for net in ("plain", "ResNet") if data[data.net == net].depth.nunique() > 1)
    return _finish(fig, f"Error against depth: {finding}", runs, out)


def figure7(responses, runs, out: Path) -> bool:
    """Std of each 3x3 layer's response on the test set: in layer order (top), sorted (bottom),
    on a log axis so that plain-56's large first layers leave every other curve visible."""
    if responses.empty or not responses.name.isin(FIGURE7_NETS).any():
        print("figure7: no responses.csv of plain or ResNet runs; skipped")
        return False
    data = responses[responses.name.isin(FIGURE7_NETS)].copy()
    data["rank"] = data.groupby(["name", "seed"])["std"].rank(ascending=False, method="first")
    means = data.groupby("label")["std"].mean()
    data["label"] = data.label.map(lambda label: f"{label}: mean std {means[label]:.2f}")
    palette = _by_depth(data)  # depth by colour as in Figure 6, plain nets dashed
    fig, axes = plt.subplots(2, 1, figsize=(9, 7.5))
    for ax, x, title in [(axes[0], "index", "layer index (original order)"),
                         (axes[1], "rank", "layer index (sorted by magnitude)")]:
        for label in _order(data):
            _lines(ax, data, "std", palette, [label], x=x, linewidth=1.5, label=label,
                   linestyle="--" if label.startswith("plain") else "-")
        ax.set(xlabel=title, ylabel="std (log scale)", yscale="log")
        ax.legend(fontsize=7, ncols=2)
    per_run = responses.groupby("name")["std"].mean()
    finding = ("ResNets respond more weakly than plain nets" if {"plain-56", "ResNet-56"} <=
               set(per_run.index) and per_run["ResNet-56"] < per_run["plain-56"] else
               "layer responses of plain nets and ResNets")
    return _finish(fig, f"Figure 7: {finding} (std of each 3x3 layer's output after BN, on the "
                   "test set)", runs, out)


GRADIENT_NETS = ["plain-20", "plain-56", "ResNet-20", "ResNet-56"]


def gradient_points(gradients) -> pd.DataFrame:
    """Each run's gradients at four moments: iteration 0 (where the run has it), its first row
    after it, its last row before the first lr drop, its last row; averaged over seeds per
    network, moment and layer (both gradient norms; the one at BN outputs where measured)."""
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
    columns = [c for c in ("output_gradient_norm", "bn_output_gradient_norm") if c in gradients]
    points = pd.concat(rows).groupby(["name", "moment", "index"], sort=False)[columns].mean()
    return points.reset_index()


def gradient_ratios(points, column="output_gradient_norm") -> pd.DataFrame:
    """Per network and moment: the geometric mean of a gradient norm over the first third of the
    convolutions divided by that over the last third (1: as strong at the input as at the
    output); only where every layer has it."""
    def ratio(layers):
        norms = np.log(layers.sort_values("index")[column].to_numpy())
        third = max(1, len(norms) // 3)
        return np.exp(norms[:third].mean() - norms[-third:].mean())
    measured = points[points.groupby(["name", "moment"])[column].transform("count")
                      == points.groupby(["name", "moment"])["index"].transform("count")]
    return measured.groupby(["name", "moment"], sort=False)[["index", column]] \
        .apply(ratio).rename("first_over_last").reset_index()


def figure_gradients(gradients, runs, out: Path) -> bool:
    """The paper's argument that degradation is not vanishing gradients: the norm of the loss
    gradient at each convolution's output, against layer index, at three moments of training."""
    points = gradient_points(gradients) if not gradients.empty else pd.DataFrame()
    if points.empty:
        print("figure_gradients: no gradients.csv of plain or ResNet 20/56 runs; skipped")
        return False
    moments = list(dict.fromkeys(points.moment))
    palette = {name: DEPTH_COLOURS[int(name.split("-")[1])] for name in GRADIENT_NETS}  # as Fig. 6
    fig, axes = plt.subplots(1, len(moments), figsize=(5 * len(moments), 4.4), sharey=True,
                             squeeze=False)
    for ax, moment in zip(axes[0], moments):
        for name in GRADIENT_NETS:
            line = points[(points.name == name) & (points.moment == moment)]
            if not line.empty:
                ax.plot(line["index"], line.output_gradient_norm, color=palette[name],
                        linestyle="--" if name.startswith("plain") else "-", linewidth=1.5,
                        label=name)
        ax.set(title=moment, xlabel="convolution (network order)",
               ylabel="norm of dLoss/d(conv output), log", yscale="log")
        ax.legend(fontsize=8)
    ratios = gradient_ratios(points).pivot(index="name", columns="moment",
                                           values="first_over_last")
    ends = [m for m in (moments[0], "end") if m in ratios]
    return _finish(fig, "First third of the layers' gradient norm over the last third's, "
                   + " -> ".join(ends) + ": " + ", ".join(
                       f"{name} " + " -> ".join(f"{ratios.loc[name, m]:.2g}x" for m in ends)
                       for name in ratios.index), runs, out)


def figure_preact(curves, runs, out: Path) -> bool:
    """The original and the pre-activation unit at the depths both were trained at."""
    both = set(curves[curves.net == "ResNet"].depth) & set(curves[curves.net == "pre-act ResNet"].depth)
    data = curves[curves.net.isin(["ResNet", "pre-act ResNet"]) & curves.depth.isin(both)]
    if data.empty:
        print("figure_preact: needs a ResNet and a pre-act ResNet of the same depth; skipped")
        return False
    colours = sns.color_palette("Paired", 2 * len(both))
    palette = {label: colours[2 * sorted(both).index(d) + (net == "pre-act ResNet")]
               for label, net, d in zip(data.label, data.net, data.depth)}
    fig, ax = plt.subplots(figsize=(7.5, 5))
    _curves(ax, data, "original unit vs pre-activation unit", palette, error_limit(data))
    final = runs[runs.net.isin(["ResNet", "pre-act ResNet"]) & runs.depth.isin(both)]
    better = final.groupby("net").train_error.mean()
    word = "trains more easily" if better["pre-act ResNet"] < better["ResNet"] else "does not train more easily"
    return _finish(fig, f"The pre-activation unit (He et al. 2016) {word} than the original",
                   runs, out)


def _stats(runs, name, column) -> tuple[float, float, int]:
    values = runs[runs.name == name][column]
    return values.mean(), values.std(), len(values)  # std is NaN for one seed


def _fmt(mean, std, n) -> str:
    return f"{mean:.2f}" + ("" if np.isnan(std) else f" ± {std:.2f}") + f" (n={n})"


def table6(runs) -> pd.DataFrame:
    """Depth, parameters, plain and ResNet final test error (mean +- std, n), paper, difference."""
    rows = []
    for depth in sorted(runs[runs.net.isin(["plain", "ResNet"])].depth.unique()):
        cells = {}
        for net in ("plain", "ResNet"):
            mean, std, n = _stats(runs, f"{net}-{depth}", "test_error")
            cells[net] = ("" if n == 0 else _fmt(mean, std, n)), mean
        params = runs[(runs.depth == depth) & runs.net.isin(["plain", "ResNet"])].parameters
        paper = RESNET_TEST_ERROR.get(depth, float("nan"))
        rows.append({"depth": depth, "parameters (M)": round(params.iloc[0] / 1e6, 2),
                     "plain test error (%)": cells["plain"][0],
                     "paper plain (%, Fig. 6)": PLAIN_TEST_ERROR.get(depth, float("nan")),
                     "ResNet test error (%)": cells["ResNet"][0], "paper ResNet (%, Table 6)": paper,
                     "ResNet minus paper": round(cells["ResNet"][1] - paper, 2)})
    return pd.DataFrame(rows)


def _verdict(difference, stds) -> tuple[str, str]:
    """(threshold, verdict) of one comparison under the SHOWN_AT rule."""
    if any(np.isnan(s) for s in stds):
        return "-", "not decided: a side with one seed"
    threshold = SHOWN_AT * max(stds)
    return f"{threshold:.2f}", "shown" if difference > threshold else "not shown at this budget"


def claims(runs, responses) -> pd.DataFrame:
    """Each claim of the paper that these runs can test, as a row: what is compared, the two
    sides (mean +- std, n), the difference in the claim's direction, the threshold, the verdict."""
    rows = []

    def compare(claim, table, column, better, worse):
        """The claim: network `better` has a lower `column` than network `worse`."""
        if not {better, worse} <= set(table.name):
            return
        (mb, sb, nb), (mw, sw, nw) = _stats(table, better, column), _stats(table, worse, column)
        threshold, verdict = _verdict(mw - mb, [sb, sw])
        rows.append({"claim": claim, "comparison": f"{worse} above {better}", "metric": column,
                     "higher": _fmt(mw, sw, nw), "lower": _fmt(mb, sb, nb),
                     "difference": round(mw - mb, 2), "threshold": threshold, "verdict": verdict})

    def depths(net):
        """Every pair of adjacent depths, and 20 vs 56; each pair once."""
        found = sorted(runs[runs.net == net].depth.unique())
        pairs = list(zip(found, found[1:])) + ([(20, 56)] if {20, 56} <= set(found) else [])
        return list(dict.fromkeys(pairs))

    for a, b in depths("plain"):
        compare("(a) plain: training error rises with depth", runs, "train_error", f"plain-{a}",
                f"plain-{b}")
    if {"plain-20", "plain-56", "ResNet-20", "ResNet-56"} <= set(runs.name):
        stats = {(net, d): _stats(runs, f"{net}-{d}", "train_error")
                 for net in ("plain", "ResNet") for d in (20, 56)}
        gap = {net: stats[net, 56][0] - stats[net, 20][0] for net in ("plain", "ResNet")}
        threshold, verdict = _verdict(gap["plain"] - gap["ResNet"], [s for _, s, _ in stats.values()])
        rows.append({"claim": "(b) shortcuts shrink the depth penalty",
                     "comparison": "plain 20->56 penalty above ResNet 20->56 penalty",
                     "metric": "train_error", "higher": f"{gap['plain']:+.2f}",
                     "lower": f"{gap['ResNet']:+.2f}",
                     "difference": round(gap["plain"] - gap["ResNet"], 2),
                     "threshold": threshold, "verdict": verdict})
    for a, b in depths("ResNet"):
        for metric in ("train_error", "test_error"):
            compare("(c) ResNets: deeper is better", runs, metric, f"ResNet-{b}", f"ResNet-{a}")
    for depth in sorted(runs[runs.net == "pre-act ResNet"].depth.unique()):
        compare("(d) pre-activation trains deep nets more easily", runs, "train_error",
                f"pre-act ResNet-{depth}", f"ResNet-{depth}")
    if not responses.empty:  # one number per run: the mean over its layers of the response std
        per_run = responses.groupby(["name", "seed"])["std"].mean().reset_index()
        for worse, better in [("plain-20", "ResNet-20"), ("plain-56", "ResNet-56"),
                              ("ResNet-20", "ResNet-56"), ("ResNet-56", "ResNet-110")]:
            compare("(e) Figure 7: ResNets respond more weakly, deeper ones more so", per_run,
                    "std", better, worse)
    return pd.DataFrame(rows)


def summary(judged, budget) -> list[str]:
    """One line per claim: in how many of its comparisons the rule finds it shown. A claim with
    undecided comparisons is "shown" or "not shown" only "where decided"."""
    lines = []
    for claim, rows in (judged.groupby("claim", sort=False) if not judged.empty else []):
        decided = rows[~rows.verdict.str.startswith("not decided")]
        shown = (decided.verdict == "shown").sum()
        word = ("not decided yet" if decided.empty else "partly shown" if 0 < shown < len(decided)
                else ("shown" if shown else "not shown")
                + (" where decided" if len(decided) < len(rows) else ""))
        lines.append(f"- {claim}: **{word}** (shown in {shown} of {len(rows)} comparisons"
                     + (f", {len(rows) - len(decided)} not decided: a side with one seed)."
                        if len(decided) < len(rows) else ")."))
    if budget != "paper":
        lines.append("- (c) is the paper's Table 6, the result of the full 64k-iteration schedule; "
                     "whatever a shorter budget shows, the test of it is the paper budget on a "
                     "GPU: `make reproduce-cifar BUDGET=paper SEEDS=5` (docs/speed.md).")
    return lines


def missing(budget_dir: Path, runs) -> list[str]:
    """The runs the budget's sweep plans that are not finished here."""
    return [name for name in run_names(budget_dir.name) if name not in set(runs.folder)]


def report(budget_dir: Path) -> bool:
    curves, runs, responses, gradients = load_runs(budget_dir)
    if runs.empty:
        print(f"{budget_dir}: no finished runs; nothing written")
        return False
    sns.set_theme(style="whitegrid", context="notebook")
    drawn = {"figure_depth.png": lambda out: figure_depth(runs, out),
             "figure1.png": lambda out: figure1(curves, runs, out),
             "figure6.png": lambda out: figure6(curves, runs, out),
             "figure7.png": lambda out: figure7(responses, runs, out),
             "figure_gradients.png": lambda out: figure_gradients(gradients, runs, out),
             "figure_preact.png": lambda out: figure_preact(curves, runs, out)}
    made = [name for name, draw in drawn.items() if draw(budget_dir / name)]
    points = gradient_points(gradients) if not gradients.empty else pd.DataFrame()
    bn = (gradient_ratios(points, "bn_output_gradient_norm")
          if "bn_output_gradient_norm" in points else pd.DataFrame())
    backward = [] if points.empty else [
        "## The backward signal (`figure_gradients.png`)", "",
        "The paper argues that the degradation is not vanishing gradients: with BN, \"the backward "
        "propagated gradients exhibit healthy norms\". Measured here (gradients.csv, the norm of "
        "the loss gradient at each convolution's output on the row's batch), the geometric mean "
        "over the first third of the convolutions divided by that over the last third (1: the "
        "signal reaches the first layers as strong as it leaves the last). BN rescales this "
        "quantity: a kernel multiplied by c gives the same function and 1/c of this gradient "
        "(docs/runs.md), so a small value after training can mean large early kernels, not a "
        "weak signal:", "",
        gradient_ratios(points).pivot(index="name", columns="moment", values="first_over_last")
        [list(dict.fromkeys(points.moment))].to_markdown(floatfmt=".3g"), "",
        *(["The same ratio at the BN outputs, which no rescaling of a kernel changes (where the "
           "rows have it):", "", bn.pivot(index="name", columns="moment",
                                          values="first_over_last").to_markdown(floatfmt=".3g"),
           ""] if not bn.empty else [])]
    table = table6(runs)
    write_text(budget_dir / "table6.csv", table.to_csv(index=False))
    markdown = table.to_markdown(index=False, floatfmt=".2f")
    write_text(budget_dir / "table6.md", markdown + "\n")
    listing = runs.sort_values(["net", "depth", "seed"])[
        ["name", "seed", "iterations", "train_error", "test_error", "wall_seconds", "weights"]]
    n = runs.groupby("name").seed.nunique()
    left = missing(budget_dir, runs)
    scouts = runs[runs.scouting].folder.tolist()
    judged = claims(runs[~runs.scouting],
                    responses[~responses.folder.isin(scouts)] if not responses.empty else responses)
    hours = runs.wall_seconds.sum() / 3600
    commits = set(runs.commits.sum())  # of every segment of every run
    readme = [
        f"# CIFAR-10, budget `{runs.budget.iloc[0]}`", "",
        "Made by `make figures` (python -m experiments.figures) from the run folders in `runs/`; "
        "every number below comes from their `metrics.csv`, `summary.json`, `responses.csv` and "
        "`gradients.csv`.", "", *[f"![{name}]({name})" for name in made[:1]], "",
        f"- iterations per run: {runs.iterations.max():,} (batch {runs.batch_size.iloc[0]}; lr "
        f"{runs.lr.iloc[0]} divided by 10 at {runs.milestones.iloc[0]} of them; "
        f"{', '.join(sorted(runs.precision.unique()))})",
        "- seeds per network: " + ", ".join(f"{name} n={k}" for name, k in n.items()),
        f"- hardware: {runs.cpu.iloc[0]}" + (f", {runs.gpus.iloc[0]}" if runs.gpus.iloc[0] else
                                             ", no GPU"),
        f"- total compute: {hours:.2f} h of training and evaluation wall time over {len(runs)} "
        f"run{'s' if len(runs) > 1 else ''}",
        *([f"- scouting runs (they chose the budget's length; left out of the claims): "
           f"{', '.join(scouts)}"] if scouts else []),
        f"- code: commit {', '.join(sorted(commits - {'unknown'}))}"
        + ("; earlier segments of resumed runs: not recorded (trained before runs kept one per "
           "segment)" if "unknown" in commits else ""),
        "- still to run: " + (", ".join(left) if left else "nothing: every planned run is in"), "",
        "## Claims", "",
        f"Each claim is judged by one rule, fixed before the runs: **shown** when the difference of "
        f"the means exceeds {SHOWN_AT} x the larger seed standard deviation of the networks "
        "compared; a comparison with a one-seed side has no spread and is **not decided**; else "
        "**not shown at this budget**. Errors are final values in % "
        "(the training error running over the last logged interval); `std` in (e) is a run's "
        "layer response std averaged over its 3x3 layers.", "",
        *summary(judged, runs.budget.iloc[0]), "",
        judged.to_markdown(index=False, floatfmt=".2f") if not judged.empty else "(no pairs yet)",
        "", *[f"![{name}]({name})" for name in made[1:]], "", *backward,
        "## Table 6 (final test error: the last evaluation, never the best one)", "",
        *(["Every seed that ran, the scouting ones included (the claims leave them out).", ""]
          if scouts else []), markdown, "",
        "## Runs", "", f"A run with `{WEIGHTS}` ships its trained network (Keras' `load_weights`"
        " into the network `src.models.resnet` builds); `python -m experiments.evaluate "
        f"{budget_dir.as_posix()}/runs/<run>` checks it against the run's final test error. Runs "
        "finished before the suite kept their weights have none.", "",
        listing.to_markdown(index=False, floatfmt=".2f"), "",
    ]
    write_text(budget_dir / "README.md", "\n".join(readme))
    print(f"{budget_dir}: wrote {', '.join(made + ['table6.md', 'table6.csv', 'README.md'])}")
    return True


def main(argv=sys.argv[1:]):
    """Each argument is a budget folder (holding runs/) or a root of them (default: results)."""
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
            made.append(report(folder))
        except OSError as e:  # a read-only or full results folder
            print(f"error: cannot write the figures of {folder}: {e.strerror or e}",
                  file=sys.stderr)
            return 2
    return 0 if any(made) else 1


if __name__ == "__main__":
    sys.exit(main())
