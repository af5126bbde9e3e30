"""The one visual language of every figure: a hue per family (plain red, ResNet blue, pre-act
green), darker with depth, the same network the same colour everywhere; each seed a thin line
under the mean of its network; error axes with chance marked; integer ticks where an axis counts
layers or units; a one-line title that states only what the claims' rule decides, the budget and
its length in epochs under it; the provenance footnote; written atomically as PNG and a date-free
PDF.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402

CHANCE = 90  # % error of a guess among 10 classes


def network_order(frame) -> list[str]:
    """Network labels in a stable order: family (plain, ResNet, ...), then depth."""
    return frame.sort_values(["net", "depth"]).label.drop_duplicates().tolist()


def lines(ax, data, y, palette, order, x="iteration", geometric=False, **style):
    """Each seed a thin line, the mean over seeds a bold one (geometric: of a ratio), one colour
    per network."""
    for label in order:
        net = data[data.label == label]
        if net.empty:
            continue
        if net.seed.nunique() > 1:
            for _, seed in net.groupby("seed"):
                seed = seed.sort_values(x)  # e.g. Figure 7's layers sorted by magnitude
                ax.plot(seed[x], seed[y], color=palette[label], linewidth=0.6, alpha=0.45,
                        linestyle=style.get("linestyle", "-"))
        mean = np.exp(np.log(net[y]).groupby(net[x]).mean()) if geometric else \
            net.groupby(x)[y].mean()
        ax.plot(mean.index, mean.values, color=palette[label], **style)


def error_limit(curves) -> float:
    """The top of an error axis: room above the runs' final errors, at least 20% (the paper's
    Figure 6 shows 0-20%), up to 100% (and chance) when a run ends near it. The early curves leave
    the axis above, as in the paper; the ends, where the claims are, stay apart."""
    ends = curves.sort_values("iteration").groupby(["label", "seed"]).last()
    worst = ends[["train_error", "test_error"]].max().max()
    return float(np.clip(10 * np.ceil(1.5 * worst / 10), 20, 100))


def error_axes(ax, title, ylim):
    """Error in % against iterations, with a dotted line at chance."""
    ax.axhline(CHANCE, color="grey", linestyle=":", linewidth=1)
    ax.annotate("chance", (1, CHANCE), xycoords=("axes fraction", "data"), ha="right",
                va="bottom", fontsize=7, color="grey", annotation_clip=True)
    ax.set(title=title, xlabel="iterations", ylabel="error (%)", ylim=(0, ylim))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
    ax.xaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))


def curves_panel(ax, curves, title, palette, ylim):
    """Dashed: training error; bold: test error; one colour per network; thin: single seeds."""
    order = network_order(curves)
    lines(ax, curves, "train_error", palette, order, linestyle="--", linewidth=1.2)
    lines(ax, curves.dropna(subset=["test_error"]), "test_error", palette, order,
           linewidth=2.2, marker="o", markersize=3)
    error_axes(ax, title, ylim)
    handles = [plt.Line2D([], [], color=palette[label], linewidth=2.2, label=label)
               for label in order]
    handles += [plt.Line2D([], [], color="black", linestyle="--", linewidth=1.2, label="training"),
                plt.Line2D([], [], color="black", linewidth=2.2, label="test"),
                plt.Line2D([], [], color="black", linewidth=0.6, alpha=0.45, label="one seed")]
    ax.legend(handles=handles, fontsize=7, ncols=2)


def seed_count(runs, kind="") -> str:
    """The seeds per network: '3 seeds', '1-3 seeds'; kind qualifies them ('judged ')."""
    n = runs.groupby("name").seed.nunique()
    return f"{n.min()} {kind}seed{'s' if n.max() > 1 else ''}" if n.min() == n.max() else \
        f"{n.min()}-{n.max()} {kind}seeds"


TRAIN_IMAGES = 50_000
PAPER_ITERATIONS = 64_000
EARLY_EPOCHS = 10  # below this many epochs, a figure says its nets are early in training


def epochs(runs) -> float:
    return runs.iterations.max() * runs.batch_size.iloc[0] / TRAIN_IMAGES


def budget_note(runs) -> str:
    """The line under every title: the budget and its length in epochs beside the paper's (the
    seeds are in each legend, counted from what is drawn; the hardware in the footnote)."""
    paper = PAPER_ITERATIONS * runs.batch_size.iloc[0] / TRAIN_IMAGES
    early = (" - early training: these nets are far from their final errors"
             if epochs(runs) < EARLY_EPOCHS else "")
    return (f"budget '{runs.budget.iloc[0]}': {runs.iterations.max():,} iterations = "
            f"{epochs(runs):.1f} epochs (the paper: {PAPER_ITERATIONS:,} = {paper:.0f}){early}")


# A hue per family, darker with depth: the same network is the same colour in every figure.
FAMILY_COLOURMAPS = {"plain": "Reds", "ResNet": "Blues", "pre-act ResNet": "Greens",
                     "bottleneck ResNet-B": "Greys", "pre-act bottleneck ResNet-B": "Greens",
                     "ResNet-B": "Purples", "ResNet-C": "Purples"}
DEPTH_SHADES = {20: 0.45, 32: 0.58, 44: 0.7, 56: 0.82, 110: 0.95, 164: 0.8, 1202: 1.0}
INTERVENTION_COLOURS = ["tab:orange", "tab:purple", "tab:olive", "tab:brown"]


def colour(family: str, depth: int):
    cmap = matplotlib.colormaps[FAMILY_COLOURMAPS.get(family, "Greys")]
    return cmap(DEPTH_SHADES.get(depth, 0.9))


def integer_ticks(axis) -> None:
    """An axis that counts layers or units: whole numbers only."""
    axis.set_major_locator(ticker.MaxNLocator(integer=True))


ANALYSED_NETS = ["plain-20", "ResNet-20", "plain-56", "ResNet-56"]


def analysed(finished, reader, csv: str, figure: str, module: str):
    """The rows of an analysis's CSV (`reader`) for the plain and ResNet 20/56 runs that have
    it; empty, with the line that says how to make it, where none has."""
    table = finished.side(reader, csv)
    table = table[table.name.isin(ANALYSED_NETS)] if not table.empty else table
    if table.empty:
        print(f"{figure}: no {csv} of plain or ResNet 20/56 runs (python -m {module} RUN_DIR); "
              "skipped")
    return table


NEAR_CHANCE = 60  # % test error above which a figure's panel calls a net barely trained


def barely_trained(runs, name: str) -> str:
    """A panel's words for a net whose mean final test error is near chance; else ''."""
    error = runs[runs.name == name].test_error.mean()
    return f"{error:.0f}% test error, chance {CHANCE}%: barely trained" \
        if error > NEAR_CHANCE else ""


def palette(frame) -> dict:
    """Each network's colour (plotting.colour), keyed by its label."""
    return {k: colour(net, depth) for k, net, depth in zip(frame.label, frame.net, frame.depth)}


def finish(fig, title: str, runs, out: Path) -> bool:
    """The one-line title, the budget under it, the footnote; then written (save)."""
    fig.suptitle(f"{title}\n{budget_note(runs)}", fontsize=10)
    fig.tight_layout()
    hardware = ", ".join(sorted(set(runs.cpu))) + "; " + (", ".join(sorted(set(runs.gpus) - {""}))
                                                         or "no GPU")
    fig.text(0.995, 0.003, f"trained on {hardware}", ha="right", va="bottom", fontsize=6,
             color="grey")  # the footnote of provenance; the budget README has the rest
    save(fig, out)
    return True


def save(fig, out: Path):
    """Write the PNG and a vector PDF beside it, atomically: a kill leaves the old figure, never
    a torn one. The PDF carries no creation date, so the same runs give the same bytes."""
    for path, metadata in ((out, None), (out.with_suffix(".pdf"), {"CreationDate": None})):
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata=metadata)
        tmp.replace(path)
    plt.close(fig)
