"""Figures 1, 6 and 7 and Table 6 of the paper, the pre-activation comparison, and the claims,
from run folders alone.

    python -m experiments.figures [results/quick | results ...]

Reads <budget folder>/runs/*/{metrics.csv,summary.json,responses.csv}; writes figure1.png,
figure6.png, figure7.png, figure_preact.png, table6.md, table6.csv and README.md into each budget
folder. Works on any subset of runs (what is missing is named) and aggregates seeds: the mean
line with a band of +-1 std, and n for every network.
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from experiments.paper import PLAIN_TEST_ERROR, RESNET_TEST_ERROR  # noqa: E402

NAMES = {"none": "plain", "identity": "ResNet", "projection": "ResNet-B",
         "all_projection": "ResNet-C"}
# The rule every claim is judged by, fixed before the runs: a difference of means is "shown" when
# it exceeds SHOWN_AT times the larger seed std of the networks compared (a network with one
# seed has no std of its own; with one seed on every side nothing can be shown).
SHOWN_AT = 2


def load_runs(budget_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(curves: a row per run and logged iteration; runs: a row per run, from summary.json;
    responses: a row per run and 3x3 layer, from responses.csv where the run has one)."""
    from src.rundir import damage  # one rule for what is damaged: the runs' own
    curves, runs, responses = [], [], []
    for summary_path in sorted(budget_dir.glob("runs/*/summary.json")):
        problem = damage(summary_path.parent)
        if problem:
            print(f"warning: skipped {summary_path.parent.name}: damaged ({problem}); rerun it "
                  "to repair it", file=sys.stderr)
            continue
        summary = json.loads(summary_path.read_text())
        metrics = summary_path.with_name("metrics.csv")
        if summary.get("status") != "finished" or not metrics.exists():
            print(f"skipped {summary_path.parent.name}: {summary.get('status')}, not finished")
            continue
        c = summary["config"]
        net = ("pre-act " if c.get("block") == "preact" else "") + NAMES[c["shortcut"]]
        run = {"net": net, "depth": c["depth"], "seed": c["seed"], "name": f"{net}-{c['depth']}"}
        runs.append({**run, "folder": summary_path.parent.name, "parameters": summary["parameters"],
                     "train_error": summary["train_error"], "test_error": summary["test_error"],
                     "iterations": summary["iterations"], "wall_seconds": summary["wall_seconds"],
                     "cpu": summary["hardware"]["cpu"], "gpus": ", ".join(summary["hardware"]["gpus"]),
                     "commit": summary["commit"], "budget": c["budget"]["name"],
                     "batch_size": c["train"]["batch_size"], "lr": c["train"]["lr"],
                     "precision": c["train"]["precision"],
                     "milestones": ", ".join(f"{m:.0%}" for m in c["train"]["milestones"])})
        curves.append(pd.read_csv(metrics).assign(**run))
        if summary_path.with_name("responses.csv").exists():
            responses.append(pd.read_csv(summary_path.with_name("responses.csv")).assign(**run))
    if not runs:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    runs = pd.DataFrame(runs)
    n = runs.groupby("name").seed.transform("nunique")
    runs["label"] = runs.name + " (n=" + n.astype(str) + ")"
    labels = runs.drop_duplicates("name").set_index("name").label
    curves = pd.concat(curves, ignore_index=True)
    curves["label"] = curves.name.map(labels)
    responses = pd.concat(responses, ignore_index=True) if responses else pd.DataFrame()
    if not responses.empty:
        responses["label"] = responses.name.map(labels)
    return curves, runs, responses


def _order(frame) -> list[str]:
    """Network labels in a stable order: family (plain, ResNet, ...), then depth."""
    return frame.sort_values(["net", "depth"]).label.drop_duplicates().tolist()


def _curves(ax, curves, title, palette):
    """Dashed: training error; bold: test error; one colour per network; mean +- std over seeds."""
    kw = dict(x="iteration", hue="label", hue_order=_order(curves), palette=palette,
              errorbar="sd", ax=ax)
    sns.lineplot(data=curves, y="train_error", linestyle="--", linewidth=1, legend=False, **kw)
    tested = curves.dropna(subset=["test_error"])
    sns.lineplot(data=tested, y="test_error", linewidth=2.2, marker="o", markersize=4, **kw)
    ax.set(title=title, xlabel="iterations", ylabel="error (%)")
    ax.legend(title="dashed: train, bold: test", fontsize=8, title_fontsize=8)


def _seeds(runs) -> str:
    n = runs.groupby("name").seed.nunique()
    return f"{n.min()} seed{'s' if n.max() > 1 else ''}" if n.min() == n.max() else \
        f"{n.min()}-{n.max()} seeds"


def _budget_title(runs):
    return (f"budget '{runs.budget.iloc[0]}': {runs.iterations.max():,} iterations, "
            f"{_seeds(runs)} per net (n in the legend), {runs.cpu.iloc[0]}"
            + (f", {runs.gpus.iloc[0]}" if runs.gpus.iloc[0] else ""))


def _by_depth(frame, colours="viridis_r") -> dict:
    """One colour per depth, the same in every panel and figure."""
    depths = sorted(frame.depth.unique())
    colour = dict(zip(depths, sns.color_palette(colours, len(depths))))
    return {label: colour[depth] for label, depth in zip(frame.label, frame.depth)}


def _save(fig, out: Path):
    """Write atomically: a kill leaves the old figure, never a torn one."""
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)


def figure1(curves, runs, out: Path) -> bool:
    plain = curves[(curves.net == "plain") & curves.depth.isin([20, 56])]
    if plain.depth.nunique() < 2:
        print("figure1: needs plain-20 and plain-56; skipped")
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True, sharey=True)
    palette = {label: "tab:orange" if depth == 20 else "tab:red"
               for label, depth in zip(plain.label, plain.depth)}
    for ax, column, what in zip(axes, ["train_error", "test_error"], ["training", "test"]):
        sns.lineplot(data=plain.dropna(subset=[column]), x="iteration", y=column, hue="label",
                     hue_order=_order(plain), palette=palette, errorbar="sd", ax=ax,
                     marker="o" if column == "test_error" else None)
        ax.set(title=f"{what} error", xlabel="iterations", ylabel="error (%)")
        ax.legend(title="plain network", fontsize=8, title_fontsize=8)
    fig.suptitle(f"Figure 1: plain-20 vs plain-56 on CIFAR-10. {_budget_title(runs)}", fontsize=9)
    fig.tight_layout()
    _save(fig, out)
    return True


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
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), sharex=True,
                             sharey=True, squeeze=False)
    for ax, (title, data) in zip(axes[0], panels):
        _curves(ax, data, title, palette)
    fig.suptitle(f"Figure 6: CIFAR-10 training (dashed) and test (bold) error. "
                 f"{_budget_title(runs)}", fontsize=9)
    fig.tight_layout()
    _save(fig, out)
    return True


FIGURE7_NETS = ["plain-20", "plain-56", "ResNet-20", "ResNet-56", "ResNet-110"]


def figure7(responses, runs, out: Path) -> bool:
    """Std of each 3x3 layer's response on the test set: in layer order (top), sorted (bottom)."""
    if responses.empty or not responses.name.isin(FIGURE7_NETS).any():
        print("figure7: no responses.csv of plain or ResNet runs; skipped")
        return False
    data = responses[responses.name.isin(FIGURE7_NETS)].copy()
    data["rank"] = data.groupby(["name", "seed"])["std"].rank(ascending=False, method="first")
    palette = {label: sns.color_palette("tab10")[FIGURE7_NETS.index(name)]
               for label, name in zip(data.label, data.name)}
    dashes = {label: (2, 1) if label.startswith("plain") else "" for label in data.label}
    fig, axes = plt.subplots(2, 1, figsize=(9, 7))
    for ax, x, title in [(axes[0], "index", "layer index (original order)"),
                         (axes[1], "rank", "layer index (sorted by magnitude)")]:
        sns.lineplot(data=data, x=x, y="std", hue="label", style="label", dashes=dashes,
                     hue_order=_order(data), palette=palette, errorbar="sd", ax=ax, linewidth=1.2)
        ax.set(xlabel=title, ylabel="std")
        ax.legend(fontsize=8, ncols=2)
    fig.suptitle("Figure 7: std of the 3x3 layers' responses (after BN, before ReLU/addition) on "
                 f"the test set.\n{_budget_title(runs)}", fontsize=9)
    fig.tight_layout()
    _save(fig, out)
    return True


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
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    _curves(ax, data, "original unit vs pre-activation unit", palette)
    fig.suptitle(f"Pre-activation ResNets (He et al. 2016) beside the original ones. "
                 f"{_budget_title(runs)}", fontsize=9)
    fig.tight_layout()
    _save(fig, out)
    return True


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
    spread = max((s for s in stds if not np.isnan(s)), default=np.nan)
    if np.isnan(spread):
        return "-", "not decided: one seed on every side"
    threshold = SHOWN_AT * spread
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
        compare("(c) ResNets: deeper is better", runs, "test_error", f"ResNet-{b}", f"ResNet-{a}")
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
    """One line per claim: in how many of its comparisons the rule finds it shown."""
    lines = []
    for claim, rows in (judged.groupby("claim", sort=False) if not judged.empty else []):
        decided = rows[~rows.verdict.str.startswith("not decided")]
        shown = (decided.verdict == "shown").sum()
        word = ("not decided yet" if decided.empty else "shown" if shown == len(decided)
                else "not shown" if shown == 0 else "partly shown")
        lines.append(f"- {claim}: **{word}** (shown in {shown} of {len(rows)} comparisons"
                     + (f", {len(rows) - len(decided)} not decided: one seed on every side)."
                        if len(decided) < len(rows) else ")."))
    if budget != "paper":
        lines.append("- (c) is the paper's Table 6, the result of the full 64k-iteration schedule; "
                     "whatever a shorter budget shows, the test of it is the paper budget on a "
                     "GPU: `make reproduce-cifar BUDGET=paper SEEDS=5` (project README, Speed).")
    return lines


def missing(budget_dir: Path, runs) -> list[str]:
    """The runs the budget's sweep plans that are not finished here."""
    from src.sweep import run_names
    return [name for name in run_names(budget_dir.name) if name not in set(runs.folder)]


def report(budget_dir: Path) -> bool:
    from src.rundir import write_text  # atomic
    curves, runs, responses = load_runs(budget_dir)
    if runs.empty:
        print(f"{budget_dir}: no finished runs; nothing written")
        return False
    sns.set_theme(style="whitegrid", context="notebook")
    figures = [("figure1.png", figure1(curves, runs, budget_dir / "figure1.png")),
               ("figure6.png", figure6(curves, runs, budget_dir / "figure6.png")),
               ("figure7.png", figure7(responses, runs, budget_dir / "figure7.png")),
               ("figure_preact.png", figure_preact(curves, runs, budget_dir / "figure_preact.png"))]
    made = [name for name, ok in figures if ok]
    table = table6(runs)
    write_text(budget_dir / "table6.csv", table.to_csv(index=False))
    markdown = table.to_markdown(index=False, floatfmt=".2f")
    write_text(budget_dir / "table6.md", markdown + "\n")
    listing = runs.sort_values(["net", "depth", "seed"])[
        ["name", "seed", "iterations", "train_error", "test_error", "wall_seconds"]]
    n = runs.groupby("name").seed.nunique()
    left = missing(budget_dir, runs)
    judged = claims(runs, responses)
    hours = runs.wall_seconds.sum() / 3600
    readme = [
        f"# CIFAR-10, budget `{runs.budget.iloc[0]}`", "",
        "Made by `make figures` (python -m experiments.figures) from the run folders in `runs/`; "
        "every number below comes from their `metrics.csv`, `summary.json` and `responses.csv`.", "",
        f"- iterations per run: {runs.iterations.max():,} (batch {runs.batch_size.iloc[0]}; lr "
        f"{runs.lr.iloc[0]} divided by 10 at {runs.milestones.iloc[0]} of them; "
        f"{', '.join(sorted(runs.precision.unique()))})",
        "- seeds per network: " + ", ".join(f"{name} n={k}" for name, k in n.items()),
        f"- hardware: {runs.cpu.iloc[0]}" + (f", {runs.gpus.iloc[0]}" if runs.gpus.iloc[0] else
                                             ", no GPU"),
        f"- total compute: {hours:.2f} h of training and evaluation wall time over {len(runs)} runs",
        f"- code: commit {', '.join(sorted(runs.commit.unique()))}",
        "- still to run: " + (", ".join(left) if left else "nothing: every planned run is in"), "",
        "## Claims", "",
        f"Each claim is judged by one rule, fixed before the runs: **shown** when the difference of "
        f"the means exceeds {SHOWN_AT} x the larger seed standard deviation of the networks "
        "compared (a network with one seed contributes no std; with one seed on every side "
        "nothing is decided); else **not shown at this budget**. Errors are final values in % "
        "(the training error running over the last logged interval); `std` in (e) is a run's "
        "layer response std averaged over its 3x3 layers.", "",
        *summary(judged, runs.budget.iloc[0]), "",
        judged.to_markdown(index=False, floatfmt=".2f") if not judged.empty else "(no pairs yet)",
        "", *[f"![{name}]({name})" for name in made], "",
        "## Table 6 (final test error: the last evaluation, never the best one)", "", markdown, "",
        "## Runs", "", listing.to_markdown(index=False, floatfmt=".2f"), "",
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
    made = [report(folder) for folder in folders]
    return 0 if any(made) else 1


if __name__ == "__main__":
    sys.exit(main())
