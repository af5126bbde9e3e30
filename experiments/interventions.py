"""Why a deep plain net fails, put to a test: the interventions on plain-56 of
conf/interventions.yaml, trained as ordinary runs and judged by the rule written there before
they ran.

    python -m experiments.interventions train [RESULTS]   # `make interventions`: the runs, then
    python -m experiments.interventions [RESULTS]         # the verdicts, figure and README
    python -m experiments.interventions train-long [RESULTS]  # those that lifted plain-56, long

Each intervention's runs are a sweep of their own (src.sweep, so they pack, resume and park like
every run) in RESULTS/interventions/<name>/<budget>/runs/; the baseline (plain-56) and the
reference (ResNet-56) are the shipped runs of RESULTS/<budget>/. Writes
RESULTS/interventions/README.md and figure_interventions.png, and, for the shipped results, the
project README's block between its interventions markers.
"""
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from experiments import plotting  # noqa: E402
from experiments.claims import SHOWN_AT, fmt, markdown, printed, stats, verdict  # noqa: E402
from experiments.gradients import effective_steps, read_gradient_table, seed_ratios  # noqa: E402
from experiments.readme import ROOT, write_findings  # noqa: E402
from experiments.runs import load_runs  # noqa: E402
from src.budgets import CONF  # noqa: E402
from src.runfiles import write_text  # noqa: E402

PLAN = CONF / "interventions.yaml"
FOLDER = "interventions"


def load_plan() -> dict:
    plan = OmegaConf.to_container(OmegaConf.load(PLAN))
    if plan["rule"]["shown_at"] != SHOWN_AT:
        raise SystemExit(f"error: {PLAN.name} says shown_at={plan['rule']['shown_at']}, the claims' "
                         f"rule {SHOWN_AT}: one rule for every verdict")
    return plan


def sweep_words(plan: dict, name: str, results: Path, follow_up: bool = False) -> list[str]:
    """The src.sweep command line of one intervention's runs (at the follow-up budget)."""
    net, spec = plan["network"], plan["interventions"][name]
    where = plan["follow_up"] if follow_up else plan
    return [f"budget={where['budget']}", f"seeds={where['seeds']}",
            *(f"{key}={value}" for key, value in net.items()),
            f"results_dir={results / FOLDER / name}", *spec["overrides"]]


def lifted(plan, results: Path) -> list[str]:
    """The interventions whose verdict (i) is shown at the plan's budget."""
    runs, _, ratios = gather(results, plan, plan["budget"])
    judged = judge(plan, runs, ratios) if not runs.empty else pd.DataFrame(columns=[
        "intervention", "verdict of", "verdict"])
    shown = set(judged[judged["verdict of"].str.startswith("(i)")
                       & (judged.verdict == "shown")].intervention)
    return [name for name, spec in plan["interventions"].items() if spec["label"] in shown]


def train(results: Path, follow_up: bool = False) -> int:
    """Every intervention's sweep (at the follow-up budget: those that lifted plain-56), one after
    the other; the first failing one's exit code."""
    plan = load_plan()
    names = lifted(plan, results) if follow_up else list(plan["interventions"])
    if follow_up and not names:
        print(f"interventions: none lifted {plan['baseline']} at the {plan['budget']} budget "
              f"(verdict (i)): nothing to train at {plan['follow_up']['budget']}")
    for name in names:
        words = sweep_words(plan, name, results, follow_up)
        print(f"interventions: {name}: python -m src.sweep {' '.join(words)}", flush=True)
        code = subprocess.call([sys.executable, "-m", "src.sweep", *words])
        if code:
            return code
    return 0


# --- the runs, read ------------------------------------------------------------------------------

def gather(results: Path, plan: dict, budget: str):
    """(runs, curves, step ratios) of the baseline, the reference and every intervention at
    `budget`, each run labelled as the figure and tables name it: plain-56, ResNet-56,
    plain-56, warm-up ..."""
    shipped = load_runs(results / budget)
    sources = [(shipped, [plan["baseline"], plan["reference"]], None)]
    for name, spec in plan["interventions"].items():
        folder = results / FOLDER / name / budget
        if (folder / "runs").is_dir():
            sources.append((load_runs(folder), [plan["baseline"]], spec["label"]))
    runs, curves, ratios = [], [], []
    for found, names, label in sources:
        if found.empty:
            continue
        keep = found.runs.name.isin(names)
        relabel = (lambda frame: frame.assign(name=label)) if label else (lambda frame: frame)
        runs.append(relabel(found.runs[keep]))
        curves.append(relabel(found.curves[found.curves.name.isin(names)]))
        gradients = found.side(read_gradient_table, "gradients.csv")
        if not gradients.empty:
            steps = effective_steps(gradients[gradients.name.isin(names)], found.curves)
            ratios.append(relabel(seed_ratios(steps.rename(columns={"iteration": "moment"}),
                                              "effective_step")))
    if not runs:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    order = [plan["baseline"], *(s["label"] for s in plan["interventions"].values()),
             plan["reference"]]
    runs, curves = pd.concat(runs, ignore_index=True), pd.concat(curves, ignore_index=True)
    ratios = pd.concat(ratios, ignore_index=True).rename(columns={"moment": "iteration"}) \
        if ratios else pd.DataFrame(columns=["name", "seed", "iteration", "first_over_last"])
    for frame in (runs, curves, ratios):
        frame["order"] = frame.name.map(order.index)
    return runs, curves, ratios


def first_row_ratios(ratios) -> pd.DataFrame:
    """Each run's effective-step ratio at its first logged row after initialisation."""
    trained = ratios[ratios.iteration > 0]
    return trained[trained.iteration == trained.groupby(["name", "seed"]).iteration.transform(
        "min")]


# --- the rule --------------------------------------------------------------------------------------

def judge(plan, runs, ratios) -> pd.DataFrame:
    """The three verdicts of the rule for every intervention with runs (conf/interventions.yaml)."""
    runs = runs[~runs.scouting]  # as the claims: the runs that chose a budget are not judged
    judged = ratios.set_index(["name", "seed"]).index.isin(runs.set_index(["name", "seed"]).index)
    base, ref = plan["baseline"], plan["reference"]
    first = first_row_ratios(ratios[judged]).assign(log10=lambda f: np.log10(f.first_over_last))
    rows = []
    for spec in plan["interventions"].values():
        label = spec["label"]
        if not (runs.name == label).any():
            continue
        comparisons = [
            ("(i) lifts plain-56", f"{base} above {label}", stats(runs, base, "train_error"),
             stats(runs, label, "train_error")),
            ("(ii) against ResNet-56", f"{label} above {ref}", stats(runs, label, "train_error"),
             stats(runs, ref, "train_error")),
            ("(iii) holds the early step up", f"{label} above {base}, log10 of the "
             "effective-step ratio at the first row", stats(first, label, "log10"),
             stats(first, base, "log10"))]
        for claim, comparison, higher, lower in comparisons:
            difference, threshold, found = verdict(higher[0] - lower[0], [higher[1], lower[1]])
            if min(higher[2], lower[2]) == 0:
                threshold, found = "-", "not decided: a side has no " + (
                    "runs with gradients.csv" if claim.startswith("(iii)") else "judged runs")
            if claim.startswith("(ii)"):
                found = {"shown": "shown worse than ResNet-56",
                         "not shown at this budget": "not shown worse than ResNet-56"}.get(
                    found, found)
            rows.append({"intervention": label, "verdict of": claim, "comparison": comparison,
                         "higher": fmt(*higher), "lower": fmt(*lower),
                         "difference": difference, "threshold": threshold,
                         "verdict": found})
    return pd.DataFrame(rows)


# --- the figure ------------------------------------------------------------------------------------

def palette(plan) -> dict:
    """The figures' colours: plain-56 and ResNet-56 as in every figure, each intervention its
    own hue (plotting.INTERVENTION_COLOURS), in the plan's order."""
    colours = {plan["baseline"]: plotting.colour("plain", 56),
               plan["reference"]: plotting.colour("ResNet", 56)}
    for spec, hue in zip(plan["interventions"].values(), plotting.INTERVENTION_COLOURS):
        colours[spec["label"]] = hue
    return colours


def figure(plan, runs, curves, ratios, judged, out: Path) -> bool:
    """Training error (left) and the effective-step ratio (right) against iterations: the
    baseline, each intervention and ResNet-56, every seed thin under the mean."""
    colours = palette(plan)
    names = [n for n in colours if (runs.name == n).any()]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, frame, y in [(axes[0], curves, "train_error"), (axes[1], ratios, "first_over_last")]:
        plotting.lines(ax, frame.assign(label=frame.name), y, colours, names,
                       geometric=y == "first_over_last", linewidth=2)  # a ratio: geometric
    seeds = runs.groupby("name").seed.nunique()
    scouts = runs[runs.scouting].groupby("name").seed.apply(
        lambda s: f"; seed {', '.join(map(str, sorted(s)))} scouting, not judged")
    plotting.error_axes(axes[0], "training error (running, per logged interval)", 100)
    axes[0].legend(handles=[plt.Line2D([], [], color=colours[name], linewidth=2,
                                       label=f"{name} ({seeds[name]} seed"
                                             f"{'s' if seeds[name] > 1 else ''}"
                                             f"{scouts.get(name, '')})")
                            for name in names], fontsize=8, loc="lower left")
    axes[1].axhline(1, color="grey", linewidth=0.8, linestyle=":")
    axes[1].set(yscale="log", xlabel="iterations", title="effective step, first third of the "
                "convolutions over the last third",
                ylabel="lr |dL/dW| / |W|: first third / last third")
    axes[1].xaxis.set_major_formatter(plt.matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    lifts = judged[judged["verdict of"].str.startswith("(i)")]
    said = "; ".join(f"{r.intervention.removeprefix(plan['baseline'] + ', ')}: {r.verdict}"
                     for r in lifts.itertuples())
    return plotting.finish(fig, f"Interventions on every kernel's step: do they lift "
                           f"{plan['baseline']}? (i) {said}", runs, out)


# --- the README ------------------------------------------------------------------------------------

def per_seed_lines(plan, runs) -> list[str]:
    """Each network's final training error by seed, the scouting seeds named (shown, not
    judged)."""
    table = runs.pivot_table(index="name", columns="seed", values="train_error")
    table = table.loc[[n for n in palette(plan) if n in table.index]]
    table.columns = [f"seed {s}" for s in table.columns]
    scouts = [f"{run.name} seed {run.seed}" for run in runs[runs.scouting].itertuples()]
    return ["Final training error per seed, %" + (
        f" (shown, not judged: {', '.join(scouts)}, which chose the budget's length)"
        if scouts else "") + ":", "", markdown(table, floatfmt=".2f")]


def compute_lines(plan, runs) -> list[str]:
    mine = runs[runs.name.isin([s["label"] for s in plan["interventions"].values()])]
    if mine.empty:
        return []
    machines = sorted(set(mine.machines.sum()))
    return [f"- compute of the interventions: {mine.wall_seconds.sum() / 3600:.2f} h of wall time "
            f"over {len(mine)} run{'s' * (len(mine) != 1)}"
            + (f", on {'; '.join(machines)}" if machines else ""),
            f"- code: commit {', '.join(sorted(set(mine.commits.sum()) - {'unknown'}))}"]


def readme_lines(plan, runs, judged, follow_up=None, waiting=()) -> list[str]:
    """results/interventions/README.md: the interventions, the rule, the verdicts at the plan's
    budget, `follow_up` = (runs, judged) at the follow-up budget where any finished, and the
    `waiting` ones there (`unfinished`)."""
    listed = [f"- **{spec['label']}** (`{' '.join(spec['overrides'])}`): {spec['what']}. "
              f"Source: {spec['source']}." for spec in plan["interventions"].values()]
    later = plan["follow_up"]["budget"]
    lines = [
        "# Why plain-56 fails, put to a test", "",
        f"Made by `make interventions` (python -m experiments.interventions) from the runs in "
        f"`{FOLDER}/<name>/<budget>/runs/` and the shipped {plan['baseline']} and "
        f"{plan['reference']} of `<budget>/runs/`; the interventions and the rule are "
        f"`conf/interventions.yaml`, written before the runs; docs/interventions.md says more.", "",
        "![figure_interventions.png](figure_interventions.png)", "",
        f"Budget `{plan['budget']}`: {runs.iterations.max():,} iterations (the paper: 64,000; "
        "the nets are early in training, far from their final errors). Every intervention is an "
        "ordinary run's config options on plain-56, same seeds as the baseline:", "", *listed, "",
        "## The rule, fixed before the runs", "",
        f"Judged on the {plan['rule']['judged_on']}; **shown** when a difference of means exceeds "
        f"{SHOWN_AT} x the larger seed std of the two sides (the claims' rule).", "",
        *[f"- {line}" for line in plan["rule"]["verdicts"]], "",
        "## Verdicts", "", printed(judged), "",
        *per_seed_lines(plan, runs), "",
        *compute_lines(plan, runs), ""]
    if follow_up is not None or waiting:
        lines += [f"## At the `{later}` budget", ""]
    if follow_up is not None:
        long_runs, long_judged = follow_up
        lines += [
            f"The interventions that lifted plain-56 at `{plan['budget']}` (verdict (i)), "
            f"{plan['follow_up']['seeds']} seed at least, beside the shipped {plan['baseline']} "
            f"and {plan['reference']} of `{later}/runs/` "
            f"({long_runs.iterations.max():,} iterations):", "",
            f"![figure_interventions_{later}.png](figure_interventions_{later}.png)", "",
            printed(long_judged), "",
            *per_seed_lines(plan, long_runs), "",
            *compute_lines(plan, long_runs), ""]
    return lines + ([*waiting_lines(plan, waiting), ""] if waiting else [])


def verdict_line(plan, label: str, rows: pd.DataFrame, where: str = "") -> str:
    """One intervention's three verdicts as the rule says them, with the final errors."""
    lift, against, step = (rows.set_index("verdict of").loc[k] for k in (
        "(i) lifts plain-56", "(ii) against ResNet-56", "(iii) holds the early step up"))
    return (f"- {label}{where}: final training error {lift['lower']} against {lift['higher']} for "
            f"{plan['baseline']} and {against['lower']} for {plan['reference']}: (i) lifts "
            f"plain-56 **{lift['verdict']}**; (ii) **{against['verdict']}**; (iii) its early "
            f"layers' step raised (first logged row): **{step['verdict']}**.")


def glance_lines(plan, judged, follow_up=None, waiting=()) -> list[str]:
    """The project README's lines: each intervention's verdicts as the rule says them, then what
    they decide about the explanation, from the interventions that did hold the early step up
    (verdict (iii) shown), and only where the rule decided it; then the follow-up budget's
    verdicts (`follow_up`: its judged table), or its runs still training (`waiting`: label,
    status, iteration, of)."""
    lines, engaged = [], []
    for label, rows in judged.groupby("intervention", sort=False):
        lines.append(verdict_line(plan, label, rows))
        verdicts = rows.set_index("verdict of")
        if verdicts.loc["(iii) holds the early step up", "verdict"] == "shown":
            engaged.append((label, verdicts.loc["(i) lifts plain-56"],
                            verdicts.loc["(ii) against ResNet-56"]))
    if engaged and all(a["verdict"] == "shown worse than ResNet-56" for _, _, a in engaged):
        lifted = [(label, lift) for label, lift, _ in engaged if lift["verdict"] == "shown"]
        gap = engaged[0][1]["difference"] + engaged[0][2]["difference"]  # plain-56 - ResNet-56
        closed = "; ".join(f"{label} closed {100 * lift['difference'] / gap:.0f}% of the "
                           f"{gap:.1f} points between {plan['baseline']} and {plan['reference']}"
                           for label, lift in lifted)
        these = "this intervention" if len(engaged) == 1 else "these interventions"
        lines += ["", f"Where the early layers' effective step was held up ((iii) shown: "
                  f"{', '.join(label for label, _, _ in engaged)}), {plan['baseline']} still "
                  f"trained worse than {plan['reference']} ((ii) shown)" + (
                      f", though better than without ((i) shown; {closed})" if lifted else "")
                  + f": at this budget, {these} removed "
                  + ("part of the deficit, not all of it" if lifted else
                     "none of the deficit the rule can see")
                  + ". The interventions act on every layer, not on the early ones alone: "
                  "this does not tell whether it is the early layers' step that matters."]
    later = plan["follow_up"]["budget"]
    if follow_up is not None and not follow_up.empty or waiting:
        lines += ["", f"At the `{later}` budget (`make interventions-long`: hours per seed on 2 "
                  f"cores; the interventions that passed (i), {plan['follow_up']['seeds']} seed at "
                  "least):", ""]
    if follow_up is not None:
        lines += [verdict_line(plan, label, rows, f" ({later})")
                  for label, rows in follow_up.groupby("intervention", sort=False)]
    return lines + waiting_lines(plan, waiting)


def waiting_lines(plan, waiting) -> list[str]:
    """One line per follow-up run still training or parked: where it is, and what the rule can
    make of it once it finishes (one seed a side: only "not decided")."""
    seeds = plan["follow_up"]["seeds"]
    decides = ("judged by the same rule once it finishes" if seeds > 1 else
               "once it finishes, its final error is set beside the baseline's seeds; with one "
               "seed the rule can only call it not decided")
    return [f"- {label}: {status} at iteration {iteration:,} of {of:,}; {decides}."
            for label, status, iteration, of in waiting]


def unfinished(results: Path, plan: dict) -> list[tuple]:
    """(label, status, iteration, of) of each parked run of the interventions at the follow-up
    budget (experiments.runs.load_runs' progress)."""
    found = []
    for spec_name, spec in plan["interventions"].items():
        folder = results / FOLDER / spec_name / plan["follow_up"]["budget"]
        if (folder / "runs").is_dir():
            found += [(spec["label"], *state) for state in load_runs(folder).progress.values()]
    return found


def draw(results: Path) -> int:
    plan = load_plan()
    folder = results / FOLDER
    labels = [s["label"] for s in plan["interventions"].values()]
    drawn = {}
    for budget in (plan["budget"], plan["follow_up"]["budget"]):
        runs, curves, ratios = gather(results, plan, budget)
        if runs.empty or not runs.name.isin(labels).any():
            continue
        sns.set_theme(style="whitegrid", context="notebook")
        judged = judge(plan, runs, ratios)
        name = "figure_interventions" + ("" if budget == plan["budget"] else f"_{budget}")
        figure(plan, runs, curves, ratios, judged, folder / f"{name}.png")
        drawn[budget] = (runs, judged)
    if plan["budget"] not in drawn:
        print(f"{folder}: no finished intervention runs (make interventions); nothing written")
        return 0
    runs, judged = drawn[plan["budget"]]
    later, waiting = drawn.get(plan["follow_up"]["budget"]), unfinished(results, plan)
    write_text(folder / "README.md", "\n".join(readme_lines(plan, runs, judged, later, waiting)))
    if folder.resolve() == (ROOT / "results" / FOLDER).resolve():  # the shipped ones
        write_findings(ROOT / "README.md", FOLDER, glance_lines(
            plan, judged, later[1] if later else None, waiting))
    written = [f"figure_interventions{'' if b == plan['budget'] else '_' + b}.png" for b in drawn]
    print(f"{folder}: wrote {', '.join(written)}, README.md")
    return 0


def main(argv=sys.argv[1:]):
    train_them = argv[:1] in (["train"], ["train-long"])
    folders = argv[1:] if train_them else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if len(folders) > 1 or any(a.startswith("-") for a in folders):
        print(f"error: {' '.join(argv)} is not allowed: [train] [RESULTS], one results folder "
              "(default results)", file=sys.stderr)
        return 2
    results = Path(folders[0]) if folders else Path("results")
    return train(results, argv[0] == "train-long") if train_them else draw(results)


if __name__ == "__main__":
    sys.exit(main())
