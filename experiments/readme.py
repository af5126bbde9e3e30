"""A budget folder's README.md, table6.md and table6.csv: what was run, on what, the claims as
the rule decides them, the figures, the backward signal's ratios, Table 6 (with the
pre-activation paper's Table 3 where its nets ran) and every run.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.claims import (SHOWN_AT, claim_lines, glance, judge, markdown,
                               preactivation_table, printed, table6)
from experiments.gradients import gradient_points, gradient_ratios, read_gradient_table
from experiments.runs import DEFAULT_RECIPE, Runs
from src.runfiles import WEIGHTS, read_responses, write_text


ROOT = Path(__file__).resolve().parent.parent
# The project README's block of each shipped budget's claims, rewritten by every `make figures`
# of that budget: no verdict there is typed by hand.
FINDINGS = ("<!-- made by make figures from results/{budget} -->",
            "<!-- end of results/{budget} -->")


def write_findings(readme: Path, budget: str, lines: list[str]) -> bool:
    """Put `lines` between the budget's FINDINGS markers in `readme`, where it has them."""
    start, end = (marker.format(budget=budget) for marker in FINDINGS)
    text = readme.read_text() if readme.exists() else ""
    if start not in text or end not in text:
        return False
    before, rest = text.split(start, 1)
    new = before + start + "\n" + "\n".join(lines) + "\n" + end + rest.split(end, 1)[1]
    if new != text:
        write_text(readme, new)
    return True


def warmups(finished: Runs) -> list[str]:
    """Where each warmed-up run went back to train.lr: summary.json's warmup_ended_at, or, for
    runs that predate it, the first row of metrics.csv at train.lr (an upper bound)."""
    lines = []
    for run in finished.runs.itertuples():
        curve = finished.curves[finished.curves.folder == run.folder].sort_values("iteration")
        full = curve[curve.lr >= run.lr].iteration
        if pd.notna(run.warmup_ended_at):
            ended = f"at iteration {int(run.warmup_ended_at):,}"
        elif curve.lr.iloc[0] >= run.lr:  # no warm-up
            continue
        elif full.empty:
            ended = f"never: below lr {run.lr} at every row"
        else:
            ended = (f"by iteration {full.iloc[0]:,} (its first row at full lr; the run predates "
                     "summary.json's warmup_ended_at)")
        lines.append(f"- {run.folder}: {ended}")
    return ["Warm-up at lr 0.01 (the paper, 110 layers: until the training error is below 80%, "
            "\"about 400 iterations\"; pre-activation units: their paper's 400 iterations), where "
            "each run went back to lr 0.1:", "", *lines, ""] if lines else []


def at_a_glance(runs, judged, left: list[str]) -> list[str]:
    """The project README's block of a budget: its results table, what is still to run (`left`,
    as its README lists it), then the claims' verdicts."""
    scouts = runs[runs.scouting].sort_values(["net", "depth"])
    named = " and ".join(f"{run.name} seed {run.seed}" for run in scouts.itertuples())
    parked = any("parked" in run for run in left)
    still = ["", f"Still to run at this budget: {', '.join(left)}" + (
        " (a parked run resumes on any clone: [runs](docs/runs.md))" if parked else "") + "."]
    return [f"Final error after {runs.iterations.max():,} iterations, % (mean ± sd over seeds, "
            "n; training error: running, over the last logged interval of augmented batches; test "
            "error: the 10,000 test images); the paper's values after 64,000" + (
                f"; every finished seed, the scouting runs that chose this budget's length "
                f"({named}) included, which the claims leave out" if named else "") + ":", "",
            glance(runs).to_markdown(index=False), *(still if left else []),
            *claims_said(runs, judged)]


def claims_said(runs, judged) -> list[str]:
    """The claims' verdicts for the project README; none for a budget this early in training
    (its nets are far from trained: the README does not read verdicts off them; its own README
    has them)."""
    from experiments.plotting import EARLY_EPOCHS, epochs
    budget = runs.budget.iloc[0]
    if epochs(runs) < EARLY_EPOCHS:
        return []
    return ["", "The claims, judged by the rule fixed before the runs "
            f"([results/{budget}](results/{budget}/README.md) has each comparison):", "",
            *claim_lines(judged, budget, note=False)]


def analyses(finished: Runs) -> list[str]:
    """The captions of the lesion and landscape figures: what each measured, as tables."""
    from experiments.landscape import CSV as LANDSCAPE, read_landscape, shapes
    from experiments.lesion import CSV as LESION, read_lesion, rises
    from experiments.plotting import ANALYSED_NETS, barely_trained
    lines = []
    lesion = finished.side(read_lesion, LESION)
    lesion = lesion[lesion.name.isin(ANALYSED_NETS)] if not lesion.empty else lesion
    if not lesion.empty:
        lines += [
            "## Removing one unit (`figure_lesion.png`)", "",
            "Veit et al. (2016) removed single units from a fully trained ResNet-110 on CIFAR-10: "
            "apart from the downsampling units, its test error hardly moved. Here, per network "
            "(mean over the seeds lesioned), the median and the largest rise from removing one unit "
            "among the units both families can remove (a plain net has no downsampling unit it "
            "could remove), the largest as a share of the room the whole network left before chance "
            "(90%), and the largest rise over every unit:", "",
            rises(lesion).to_markdown(index=False, floatfmt=".3g"), ""]
    landscape = finished.side(read_landscape, LANDSCAPE)
    landscape = landscape[landscape.name.isin(ANALYSED_NETS) & (landscape.kind == "plane")] \
        if not landscape.empty else landscape
    if not landscape.empty:
        per_plane = shapes(landscape)
        measures = per_plane.columns[3:]  # border / centre, then the not-convex shares
        table = per_plane.groupby(["name", "seed"]).agg(
            planes=("plane", "size"), **{column: (column, spread) for column in measures}
        ).reset_index()
        nets = [n for n in ANALYSED_NETS if n in set(table.name)]
        lines += [
            "## The loss landscape (`figure_landscape.png`)", "",
            "The training loss on random filter-normalised planes around each network's final "
            "weights (Li et al. 2018; the figure draws the first plane), and on the straight line "
            "from its initial weights (Goodfellow et al. 2015). Per seed measured, over its planes "
            "(mean, and lowest to highest): the mean loss on a plane's border over the loss at its "
            "centre (a geometric mean; it falls as the centre's loss rises), and the share of the "
            "plane's inner points, and of its central ones, at which the loss is not convex: it "
            "bends down along one of the grid's directions by more than 0.01% of the loss, which "
            "a convex loss never does (away from the centre, a loss that levels off, near chance "
            "say, bends down in any net). "
            "Li et al. show their "
            "finding, a chaotic landscape without shortcuts, at 56 and 110 layers: 20-layer nets "
            "cannot test it, nor can a barely trained one" + "".join(
                f"; {name} here: {barely_trained(finished.runs, name)}" for name in nets
                if barely_trained(finished.runs, name)) + "; docs/runs.md lists where this "
            "differs from their code):", "",
            table.to_markdown(index=False), ""]
    return lines


def spread(values: pd.Series) -> str:
    """'mean (lowest to highest)' of one landscape measure (its name): the border / centre
    ratio's geometric mean to 3 digits, a not-convex share's in whole %."""
    from experiments.landscape import RATIO
    if values.isna().all():
        return "no inner point"
    if values.name == RATIO:
        return f"{np.exp(np.log(values).mean()):.3g} ({values.min():.3g} to {values.max():.3g})"
    return f"{values.mean():.0f} ({values.min():.0f} to {values.max():.0f})"


def write_budget(finished: Runs, made: list[str]) -> None:
    """The tables and the README of a budget folder with finished runs; `made`: the figures
    drawn, the headline first."""
    gradients = finished.side(read_gradient_table, "gradients.csv")
    points = gradient_points(gradients, finished.curves) if not gradients.empty else \
        pd.DataFrame()

    def ratio_table(column, says=None):
        """The first-over-last-third ratio of `column` per network and moment, where measured,
        after the sentence `says`; nothing where no network has it."""
        table = gradient_ratios(points, column) if column in points else pd.DataFrame()
        if table.empty:
            return []
        moments = [m for m in dict.fromkeys(points.moment) if m in set(table.moment)]
        table["cell"] = [f"{r.first_over_last:.3g} (" + (f"{r.low:.3g}-{r.high:.3g}, "
                                                         if r.seeds > 1 else "") + f"{r.seeds})"
                         for r in table.itertuples()]
        shown = table.pivot(index="name", columns="moment", values="cell")[moments]
        gaps = ["-: no run of that network has it at that moment.", ""] if shown.isna().any(
            axis=None) else []
        return [*([says, ""] if says else []), shown.fillna("-").to_markdown(), "", *gaps]
    first_rows = "" if points.empty else " or ".join(f"{i:,}" for i in sorted(
        gradients[gradients.iteration > 0].groupby(["name", "seed"]).iteration.min().unique()))
    backward = [] if points.empty else [
        "## The backward signal (`figure_gradients.png`)", "",
        "The paper argues that the degradation is not vanishing gradients: with BN, \"the backward "
        "propagated gradients exhibit healthy norms\" (its section 4.1, of the ImageNet plain "
        "nets). Measured here (gradients.csv, on the row's batch), per network and moment, the "
        "geometric mean of a quantity over the first third of the convolutions divided by that "
        "over the last third, for each seed, then the geometric mean of the seeds' ratios, with "
        "the lowest and highest seed's and the number of seeds in brackets. A norm of the first "
        "third's 32x32 maps covers 4x the values of the last third's 8x8 ones: an equal signal "
        "per value gives a gradient ratio of 2, not 1. Yang et al. (2019, a mean-field theory of "
        "batch norm) predict the explosion at initialisation in deep BN nets without shortcuts, "
        "and observe that a single step of optimisation brings the gradients to a far smaller "
        "dynamic range. Set the initialisation column against the first row (iteration "
        f"{first_rows}: it cannot test the single step); in the BN-output table, which no "
        "rescaling of a kernel changes, a first row below 2 says the early layers' gradient per "
        "value has become the smaller: the explosion reversed, not only shrunk. Three quantities "
        "(docs/runs.md says what each is invariant to): the gradient at each convolution's output, "
        "before BN, which BN rescales (a kernel multiplied by c gives the same function and 1/c "
        "of it, so a small value can mean a large kernel, not a weak signal):", "",
        *ratio_table("output_gradient_norm"),
        *ratio_table("bn_output_gradient_norm", "The gradient at the BN outputs, which no "
                     "rescaling of a kernel changes (where the rows have it):"),
        *ratio_table("effective_step", "The effective step, lr x |dLoss/dW| / |W|, the relative "
                     "size of a plain SGD step on each kernel (where the rows have it):")]
    runs, budget_dir = finished.runs, finished.folder
    table = table6(runs)
    write_text(budget_dir / "table6.csv", table.to_csv(index=False))
    tables = markdown(table, index=False, floatfmt=".2f")
    preact = preactivation_table(runs)
    if not preact.empty:  # the pre-activation paper's Table 3, where its nets ran
        tables += ("\n\nThe pre-activation unit beside the original one (He et al. 2016, "
                   "\"Identity Mappings\", Table 3; same schedule):\n\n"
                   + markdown(preact, index=False, floatfmt=".2f"))
    write_text(budget_dir / "table6.md", tables + "\n")
    listing = runs.sort_values(["net", "depth", "seed"]).assign(
        code=lambda r: r.commits.map(lambda c: " ".join(commit[:7] for commit in c)))[
        ["name", "seed", "iterations", "train_error", "test_error", "wall_seconds", "weights",
         "recipe", "code"]]
    recipes = runs.recipe.unique()
    n = runs.groupby("name").seed.nunique()
    left = finished.missing()
    scouts = runs[runs.scouting].folder.tolist()
    judged = judge(runs, finished.side(read_responses, "responses.csv"))
    hours = runs.wall_seconds.sum() / 3600
    commits = set(runs.commits.sum())  # of every segment of every run
    machines = sorted(set(runs.machines.sum()))  # of every segment that records one
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
                                             ", no GPU") + (
            f"; the segments that record their machine: {'; '.join(machines)}" if machines else ""),
        f"- total compute: {hours:.2f} h of training and evaluation wall time over {len(runs)} "
        f"run{'s' if len(runs) > 1 else ''}",
        *([f"- scouting runs (they chose the budget's length; left out of the claims): "
           f"{', '.join(scouts)}"] if scouts else []),
        (f"- recipe: every run's config holds the same one (`train.*` but the length, and "
         f"`batch_norm`, hashed where they differ from conf/config.yaml's defaults: {recipes[0]}"
         + (", none does)" if recipes[0] == DEFAULT_RECIPE else ")") if len(recipes) == 1 else
         f"- recipe: {len(recipes)} different ones (hashes {', '.join(recipes)}; the runs list "
         "which)"),
        f"- code: commit {', '.join(sorted(commits - {'unknown'}))}"
        + ("; earlier segments of resumed runs (the part trained before a resume): not recorded "
           "(trained before runs kept one per segment)" if "unknown" in commits else ""),
        "- still to run: " + (", ".join(left) if left else "nothing: every planned run is in"),
        *([f"- left out: {finished.left_out}"] if finished.left_out else []), "",
        "## Claims", "",
        f"Each claim is judged by one rule, fixed before the runs: **shown** when the difference of "
        f"the means exceeds {SHOWN_AT} x the larger seed standard deviation of the networks "
        "compared; a comparison with a one-seed side has no spread and is **not decided**; else "
        "**not shown at this budget**. Errors are final values in % "
        "(the training error running over the last logged interval); `std` in (e) is a run's "
        "layer response std averaged over its 3x3 layers.", "",
        *claim_lines(judged, runs.budget.iloc[0]), "",
        printed(judged) if not judged.empty else "(no pairs yet)",
        "", *[f"![{name}]({name})" for name in made[1:]], "", *backward, *analyses(finished),
        "## Table 6 (final test error: the last evaluation, never the best one)", "",
        *(["Every seed that ran, the scouting ones included (the claims leave them out).", ""]
          if scouts else []), tables, "",
        "The paper's ResNet column is one run per depth, except at 110 layers: the best of 5 runs, "
        "beside their mean; the difference is taken from the mean where the paper gives one.", "",
        *warmups(finished),
        "## Runs", "", f"A run with `{WEIGHTS}` ships its trained network (Keras' `load_weights`"
        " into the network `src.models.resnet` builds); `python -m experiments.evaluate "
        f"{budget_dir.as_posix()}/runs/<run>` checks it against the run's final test error. Runs "
        "finished before the suite kept their weights have none. `recipe`: the hash of its config's "
        "training recipe; `code`: the commit of each segment it was trained in (the start, then "
        "each resume; `unknown` for a segment trained before runs recorded one: its config is "
        "known, its code is not).", "",
        listing.to_markdown(index=False, floatfmt=".2f"), "",
    ]
    write_text(budget_dir / "README.md", "\n".join(readme))
    if budget_dir.resolve() == (ROOT / "results" / budget_dir.name).resolve():  # shipped runs
        write_findings(ROOT / "README.md", budget_dir.name, at_a_glance(runs, judged, left))


