"""Figures 1 and 6 and Table 6 of the paper, from run folders alone.

    python -m experiments.figures [results/quick ...]

Reads <budget folder>/runs/*/{metrics.csv,summary.json}; writes figure1.png, figure6.png,
table6.md, table6.csv and README.md into each budget folder. Works on any subset of runs (what is
missing is named and skipped) and aggregates seeds: the mean line with a band of +-1 std.
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from experiments.paper import PLAIN_TEST_ERROR, RESNET_TEST_ERROR  # noqa: E402

NAMES = {"none": "plain", "identity": "ResNet", "projection": "ResNet-B",
         "all_projection": "ResNet-C"}


def load_runs(budget_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves: one row per run and logged iteration; runs: one row per run, from summary.json)."""
    curves, runs = [], []
    for summary_path in sorted(budget_dir.glob("runs/*/summary.json")):
        summary = json.loads(summary_path.read_text())
        metrics = summary_path.with_name("metrics.csv")
        if summary.get("status") != "finished" or not metrics.exists():
            print(f"skipped {summary_path.parent.name}: {summary.get('status')}, not finished")
            continue
        c = summary["config"]
        run = {"net": NAMES[c["shortcut"]], "depth": c["depth"], "seed": c["seed"]}
        runs.append({**run, "parameters": summary["parameters"],
                     "train_error": summary["train_error"], "test_error": summary["test_error"],
                     "iterations": summary["iterations"], "wall_seconds": summary["wall_seconds"],
                     "cpu": summary["hardware"]["cpu"], "gpus": ", ".join(summary["hardware"]["gpus"]),
                     "commit": summary["commit"], "budget": c["budget"]["name"],
                     "batch_size": c["train"]["batch_size"], "lr": c["train"]["lr"],
                     "milestones": ", ".join(f"{m:.0%}" for m in c["train"]["milestones"])})
        curves.append(pd.read_csv(metrics).assign(**run))
    if not runs:
        return pd.DataFrame(), pd.DataFrame()
    return pd.concat(curves, ignore_index=True), pd.DataFrame(runs)


def _panel(ax, curves, title, palette):
    """Dashed: training error; bold: test error; one colour per depth; mean +- std over seeds."""
    kw = dict(x="iteration", hue="depth", palette=palette, errorbar="sd", ax=ax)
    sns.lineplot(data=curves, y="train_error", linestyle="--", linewidth=1, legend=False, **kw)
    tested = curves.dropna(subset=["test_error"])
    sns.lineplot(data=tested, y="test_error", linewidth=2.2, marker="o", markersize=4, **kw)
    ax.set(title=title, xlabel="iterations", ylabel="error (%)")
    ax.legend(title="depth (dashed: train, bold: test)", fontsize=8, title_fontsize=8)


def _seeds(runs) -> str:
    n = runs.groupby(["net", "depth"]).seed.nunique()
    return f"{n.min()} seed{'s' if n.max() > 1 else ''}" if n.min() == n.max() else \
        f"{n.min()}-{n.max()} seeds"


def _budget_title(runs):
    return (f"budget '{runs.budget.iloc[0]}': {runs.iterations.max():,} iterations, "
            f"{_seeds(runs)} per net, {runs.cpu.iloc[0]}"
            + (f", {runs.gpus.iloc[0]}" if runs.gpus.iloc[0] else ""))


def figure1(curves, runs, out: Path) -> bool:
    plain = curves[(curves.net == "plain") & curves.depth.isin([20, 56])]
    if plain.depth.nunique() < 2:
        print("figure1: needs plain-20 and plain-56; skipped")
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True, sharey=True)
    palette = {20: "tab:orange", 56: "tab:red"}
    for ax, column, what in zip(axes, ["train_error", "test_error"], ["training", "test"]):
        data = plain.dropna(subset=[column])
        sns.lineplot(data=data, x="iteration", y=column, hue="depth", palette=palette,
                     errorbar="sd", ax=ax, marker="o" if column == "test_error" else None)
        ax.set(title=f"{what} error", xlabel="iterations", ylabel="error (%)")
        ax.legend(title="plain network", labels=None)
    fig.suptitle(f"Figure 1: plain-20 vs plain-56 on CIFAR-10. {_budget_title(runs)}", fontsize=9)
    fig.tight_layout()
    _save(fig, out)
    return True


def figure6(curves, runs, out: Path) -> bool:
    panels = [("plain networks", curves[curves.net == "plain"]),
              ("ResNets", curves[(curves.net == "ResNet") & (curves.depth <= 110)]),
              ("ResNet-110 and ResNet-1202",
               curves[(curves.net == "ResNet") & curves.depth.isin([110, 1202])])]
    panels = [(t, c) for t, c in panels if not c.empty and (t != panels[2][0] or
                                                             (c.depth == 1202).any())]
    if not panels:
        print("figure6: no plain or ResNet runs; skipped")
        return False
    depths = sorted(curves.depth.unique())
    palette = dict(zip(depths, sns.color_palette("viridis_r", len(depths))))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), sharex=True,
                             sharey=True, squeeze=False)
    for ax, (title, data) in zip(axes[0], panels):
        _panel(ax, data, title, palette)
    fig.suptitle(f"Figure 6: CIFAR-10 training (dashed) and test (bold) error. "
                 f"{_budget_title(runs)}", fontsize=9)
    fig.tight_layout()
    _save(fig, out)
    return True


def table6(runs) -> pd.DataFrame:
    """Depth, parameters, plain and ResNet final test error (mean +- std, n), paper, difference."""
    def cell(net, depth):
        e = runs[(runs.net == net) & (runs.depth == depth)].test_error
        if e.empty:
            return "", float("nan")
        spread = f" ± {e.std():.2f}" if len(e) > 1 else ""
        return f"{e.mean():.2f}{spread} (n={len(e)})", e.mean()

    rows = []
    for depth in sorted(runs.depth.unique()):
        plain, plain_mean = cell("plain", depth)
        resnet, resnet_mean = cell("ResNet", depth)
        params = runs[(runs.depth == depth) & runs.net.isin(["plain", "ResNet"])].parameters
        paper = RESNET_TEST_ERROR.get(depth, float("nan"))
        rows.append({"depth": depth, "parameters (M)": round(params.iloc[0] / 1e6, 2),
                     "plain test error (%)": plain,
                     "paper plain (%, Fig. 6)": PLAIN_TEST_ERROR.get(depth, float("nan")),
                     "ResNet test error (%)": resnet, "paper ResNet (%, Table 6)": paper,
                     "ResNet minus paper": round(resnet_mean - paper, 2)})
    return pd.DataFrame(rows)


def findings(runs) -> list[str]:
    """The degradation problem in numbers: how final errors change from the shallowest to the
    deepest net of each kind, worded from the data (nothing here is fixed in advance)."""
    lines = ["## What these runs show", ""]
    means = runs.groupby(["net", "depth"])[["train_error", "test_error"]].mean()
    gaps = {}
    for net in ("plain", "ResNet"):
        if net not in means.index.get_level_values(0):
            continue
        by_depth = means.loc[net]
        if len(by_depth) < 2:
            continue
        low, high = by_depth.index.min(), by_depth.index.max()
        gap = by_depth.train_error[high] - by_depth.train_error[low]
        gaps[net] = gap
        lines.append(
            f"- {net}-{high} vs {net}-{low}: training error {by_depth.train_error[high]:.1f}% vs "
            f"{by_depth.train_error[low]:.1f}% ({gap:+.1f} points), test error "
            f"{by_depth.test_error[high]:.1f}% vs {by_depth.test_error[low]:.1f}% "
            f"({by_depth.test_error[high] - by_depth.test_error[low]:+.1f} points).")
    if "plain" in gaps and "ResNet" in gaps and gaps["plain"] > 0:
        lines.append(f"- The shortcuts remove {100 * (1 - gaps['ResNet'] / gaps['plain']):.0f}% of "
                     "the training-error penalty for depth.")
    if gaps.get("ResNet", -1) > 0:
        lines.append("- The deeper ResNet is still behind the shallower one at this budget; in the "
                     "paper (64k iterations) it ends ahead. That claim needs a longer budget than "
                     "this one.")
    if runs.groupby(["net", "depth"]).seed.nunique().min() < 2:
        lines.append("- One seed per configuration: at the paper budget independent reproductions "
                     "see 0.2-0.3 points of seed-to-seed spread, so small differences here rank "
                     "nothing; `SEEDS=5` gives mean and spread.")
    return lines + [""]


def _save(fig, out: Path):
    """Write atomically: a kill leaves the old figure, never a torn one."""
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)


def report(budget_dir: Path) -> bool:
    from src.train import write_text  # atomic
    curves, runs = load_runs(budget_dir)
    if runs.empty:
        print(f"{budget_dir}: no finished runs; nothing written")
        return False
    sns.set_theme(style="whitegrid", context="notebook")
    made = [name for name, ok in [("figure1.png", figure1(curves, runs, budget_dir / "figure1.png")),
                                  ("figure6.png", figure6(curves, runs, budget_dir / "figure6.png"))]
            if ok]
    table = table6(runs)
    write_text(budget_dir / "table6.csv", table.to_csv(index=False))
    markdown = table.to_markdown(index=False, floatfmt=".2f")
    write_text(budget_dir / "table6.md", markdown + "\n")
    listing = runs.sort_values(["net", "depth", "seed"])[
        ["net", "depth", "seed", "iterations", "train_error", "test_error", "wall_seconds"]]
    hours = runs.wall_seconds.sum() / 3600
    readme = [
        f"# CIFAR-10, budget `{runs.budget.iloc[0]}`", "",
        "Made by `make figures` (python -m experiments.figures) from the run folders in `runs/`; "
        "every number below comes from their `metrics.csv` and `summary.json`.", "",
        f"- iterations per run: {runs.iterations.max():,} (batch {runs.batch_size.iloc[0]}; lr {runs.lr.iloc[0]} "
        f"divided by 10 at {runs.milestones.iloc[0]} of them)",
        f"- seeds per configuration: {_seeds(runs)}",
        f"- hardware: {runs.cpu.iloc[0]}" + (f", {runs.gpus.iloc[0]}" if runs.gpus.iloc[0] else
                                             ", no GPU"),
        f"- total compute: {hours:.2f} h of training and evaluation wall time over {len(runs)} runs",
        f"- code: commit {', '.join(sorted(runs.commit.unique()))}", "",
        *[f"![{name}]({name})" for name in made], "",
        "## Table 6 (final test error: the last evaluation, never the best one)", "", markdown, "",
        "## Runs", "", listing.to_markdown(index=False, floatfmt=".2f"), "",
    ]
    readme += findings(runs)
    write_text(budget_dir / "README.md", "\n".join(readme))
    print(f"{budget_dir}: wrote {', '.join(made + ['table6.md', 'table6.csv', 'README.md'])}")
    return True


def main(argv=sys.argv[1:]):
    folders = [Path(a) for a in argv] or sorted(p.parent for p in Path("results").glob("*/runs"))
    if not folders:
        print("no results/<budget>/runs folders yet: run `make reproduce-cifar` first")
        return 1
    made = [report(folder) for folder in folders]
    return 0 if any(made) else 1


if __name__ == "__main__":
    sys.exit(main())
