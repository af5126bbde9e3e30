"""The paper's claims as these runs decide them, Table 6 and the pre-activation paper's Table 3:
pure pandas, no plotting.

Every verdict follows one rule, fixed before the runs: a difference of means is "shown" when it
exceeds SHOWN_AT times the larger seed std of the networks compared. A network with one seed has
no spread, so a comparison with a one-seed side is "not decided", never "shown".
"""
import numpy as np
import pandas as pd

from experiments.paper import (PLAIN_TEST_ERROR, PLAIN_TRAIN_ERROR, PREACT_TEST_ERROR,
                              RESNET_TEST_ERROR, RESNET_TEST_ERROR_MEAN)
from src.networks import UNITS

SHOWN_AT = 2
PLURAL = {"plain": "plain nets", "ResNet": "ResNets"}


def stats(runs, name, column) -> tuple[float, float, int]:
    values = runs[runs.name == name][column]
    return values.mean(), values.std(), len(values)  # std is NaN for one seed


def fmt(mean, std, n) -> str:
    """mean ± std (n), or "-" for a side with no runs."""
    if n == 0:
        return "-"
    return f"{mean:.2f}" + ("" if np.isnan(std) else f" ± {std:.2f}") + f" (n={n})"


def verdict(difference, stds) -> tuple[float, str, str]:
    """(difference, threshold, verdict) of one comparison under the SHOWN_AT rule, the difference
    rounded and the threshold written to 2 decimals, or to as many more as it takes for the two
    to differ as printed (0.052 against 0.047, not 0.05 against 0.05)."""
    if any(np.isnan(s) for s in stds):
        return round(difference, 2), "-", "not decided: a side with one seed"
    threshold = SHOWN_AT * max(stds)
    decimals = next((d for d in range(2, 7) if round(difference, d) != round(threshold, d)), 6)
    return (round(difference, decimals), f"{threshold:.{decimals}f}",
            "shown" if difference > threshold else "not shown at this budget")


def markdown(table: pd.DataFrame, **options) -> str:
    """A table as markdown, a missing number written "-" (not "nan")."""
    return table.astype(object).where(table.notna(), None).to_markdown(missingval="-", **options)


def printed(judged: pd.DataFrame) -> str:
    """A table of verdicts as markdown, each difference to as many decimals as its threshold."""
    def decimals(threshold):
        return len(threshold.split(".")[1]) if "." in threshold else 2
    return judged.assign(difference=[f"{d:.{decimals(t)}f}" for d, t in zip(
        judged.difference, judged.threshold)]).to_markdown(index=False, disable_numparse=True)


def judged_final(runs, net):
    """Final training error of `net` per depth, mean and std over the seeds the claims judge."""
    return runs[(runs.net == net) & ~runs.scouting].groupby("depth").train_error.agg(
        ["mean", "std"])


def trend(runs, net) -> str:
    """A title's finding: how the deepest `net` ends in training error against its shallowest,
    on the seeds the claims judge (scouting runs left out) and qualified by the claims' rule."""
    final = judged_final(runs, net)
    if len(final) < 2:
        return f"{PLURAL[net]}: depth not judged yet (scouting seeds left out)"
    (shallow, a), (deep, b) = final.iloc[[0, -1]].iterrows()
    found = verdict(abs(b["mean"] - a["mean"]), [a["std"], b["std"]])[2]
    scouted = ", scouting seeds left out" if runs[runs.net == net].scouting.any() else ""
    if found == "shown":  # a direction only where the rule shows one
        said = f"{deep} layers train {'worse' if b['mean'] > a['mean'] else 'better'} than {shallow}"
    elif found == "not shown at this budget":
        said = f"{deep} vs {shallow} layers: no difference shown (within the seeds' spread)"
    else:
        said = f"{deep} vs {shallow} layers: not decided (a side with one seed)"
    return f"{PLURAL[net]}{scouted}: {said}"


def preactivation_pairs(runs) -> list[tuple[str, str]]:
    """(pre-act ResNet-110, ResNet-110), (pre-act bottleneck ResNet-B-164, bottleneck
    ResNet-B-164): each pre-activation net with the original-form net of its unit, shortcut and
    depth, where both ran; by depth."""
    if runs.empty:
        return []
    both = runs[runs.original.notna() & runs.original.isin(runs.name)].sort_values(["depth",
                                                                                    "name"])
    return list(dict.fromkeys(zip(both.name, both.original)))


def preactivation_table(runs) -> pd.DataFrame:
    """Each pre-activation net, its final test error (mean +- std, n) and its original-form
    counterpart's where that ran, beside the pre-activation paper's (Table 3)."""
    rows = []
    if runs.empty:
        return pd.DataFrame(rows)
    preact = runs[runs.original.notna()].sort_values(["depth", "name"])
    for name, original in dict.fromkeys(zip(preact.name, preact.original)):
        first = runs[runs.name == name].iloc[0]
        base = UNITS[first.block].original
        ran = (runs.name == original).any()
        rows.append({"network (original unit)": original,
                     "parameters (M, pre-act)": round(first.parameters / 1e6, 2),
                     "original unit test error (%)":
                         fmt(*stats(runs, original, "test_error")) if ran else None,
                     "paper original (%)": PREACT_TEST_ERROR.get((base, first.depth), np.nan),
                     "pre-act test error (%)": fmt(*stats(runs, name, "test_error")),
                     "paper pre-act (%)": PREACT_TEST_ERROR.get((first.block, first.depth),
                                                                np.nan)})
    return pd.DataFrame(rows)


def table6(runs) -> pd.DataFrame:
    """Depth, parameters, plain and ResNet final test error (mean +- std, n), paper, difference."""
    rows = []
    for depth in sorted(runs[runs.net.isin(["plain", "ResNet"])].depth.unique()):
        cells = {}
        for net in ("plain", "ResNet"):
            mean, std, n = stats(runs, f"{net}-{depth}", "test_error")
            cells[net] = (None if n == 0 else fmt(mean, std, n)), mean
        params = runs[(runs.depth == depth) & runs.net.isin(["plain", "ResNet"])].parameters
        paper = RESNET_TEST_ERROR.get(depth, float("nan"))
        mean = RESNET_TEST_ERROR_MEAN.get(depth)
        rows.append({"depth": depth, "parameters (M)": round(params.iloc[0] / 1e6, 2),
                     "plain test error (%)": cells["plain"][0],
                     "paper plain (%, Fig. 6)": PLAIN_TEST_ERROR.get(depth, float("nan")),
                     "ResNet test error (%)": cells["ResNet"][0],
                     "paper ResNet (%, Table 6; best of 5 at 110)": paper,
                     "paper ResNet mean (%, Table 6)": fmt(*mean) if mean else None,
                     "ResNet minus paper (its mean where given)":
                         round(cells["ResNet"][1] - (mean[0] if mean else paper), 2)})
    return pd.DataFrame(rows)


def glance(runs) -> pd.DataFrame:
    """The project README's table: final training and test error of the plain and ResNet nets
    at every depth, mean ± sd over every finished seed (n), the plain penalty (plain's mean
    training error minus ResNet's, points), beside the paper's values."""
    def cell(name, column):
        mean, std, n = stats(runs, name, column)
        return "-" if n == 0 else f"{mean:.1f}" + ("" if np.isnan(std) else f" ± {std:.1f}") + \
            f" ({n})"
    def penalty(depth):
        difference = (stats(runs, f"plain-{depth}", "train_error")[0]
                      - stats(runs, f"ResNet-{depth}", "train_error")[0])
        return "-" if np.isnan(difference) else f"{difference:.1f}"
    rows = []
    for depth in sorted(runs[runs.net.isin(["plain", "ResNet"])].depth.unique()):
        paper_plain = (f"~{PLAIN_TRAIN_ERROR[depth]:g} / ~{PLAIN_TEST_ERROR[depth]:g}"
                       if depth in PLAIN_TEST_ERROR else "-")
        rows.append({"layers": depth,
                     "plain: train / test error (%)": f"{cell(f'plain-{depth}', 'train_error')} "
                                                      f"/ {cell(f'plain-{depth}', 'test_error')}",
                     "ResNet: train / test error (%)": f"{cell(f'ResNet-{depth}', 'train_error')} "
                                                       f"/ {cell(f'ResNet-{depth}', 'test_error')}",
                     "plain minus ResNet, train (points)": penalty(depth),
                     "paper, plain: train / test (read off Fig. 6)": paper_plain,
                     "paper, ResNet test (Table 6)": f"{RESNET_TEST_ERROR[depth]:g}"
                     if depth in RESNET_TEST_ERROR else "-"})
    return pd.DataFrame(rows)


def claims(runs, responses) -> pd.DataFrame:
    """Each claim of the paper that these runs can test, as a row: what is compared, the two
    sides (mean +- std, n), the difference in the claim's direction, the threshold, the verdict."""
    rows = []

    def compare(claim, table, column, better, worse):
        """The claim: network `better` has a lower `column` than network `worse`."""
        if not {better, worse} <= set(table.name):
            return
        (mb, sb, nb), (mw, sw, nw) = stats(table, better, column), stats(table, worse, column)
        difference, threshold, found = verdict(mw - mb, [sb, sw])
        rows.append({"claim": claim, "comparison": f"{worse} above {better}", "metric": column,
                     "higher": fmt(mw, sw, nw), "lower": fmt(mb, sb, nb),
                     "difference": difference, "threshold": threshold, "verdict": found})

    def depths(net):
        """Every pair of adjacent depths, and 20 vs 56; each pair once."""
        found = sorted(runs[runs.net == net].depth.unique())
        pairs = list(zip(found, found[1:])) + ([(20, 56)] if {20, 56} <= set(found) else [])
        return list(dict.fromkeys(pairs))

    for a, b in depths("plain"):
        compare("(a) plain: training error rises with depth", runs, "train_error", f"plain-{a}",
                f"plain-{b}")
    if {"plain-20", "plain-56", "ResNet-20", "ResNet-56"} <= set(runs.name):
        final = {(net, d): stats(runs, f"{net}-{d}", "train_error")
                 for net in ("plain", "ResNet") for d in (20, 56)}
        gap = {net: final[net, 56][0] - final[net, 20][0] for net in ("plain", "ResNet")}
        difference, threshold, found = verdict(gap["plain"] - gap["ResNet"],
                                               [s for _, s, _ in final.values()])
        rows.append({"claim": "(b) shortcuts shrink the depth penalty",
                     "comparison": "plain 20->56 penalty above ResNet 20->56 penalty",
                     "metric": "train_error", "higher": f"{gap['plain']:+.2f}",
                     "lower": f"{gap['ResNet']:+.2f}",
                     "difference": difference, "threshold": threshold, "verdict": found})
    for a, b in depths("ResNet"):
        for metric in ("train_error", "test_error"):
            compare("(c) ResNets: deeper is better", runs, metric, f"ResNet-{b}", f"ResNet-{a}")
    for preact, original in preactivation_pairs(runs):
        compare("(d) pre-activation trains deep nets more easily", runs, "train_error", preact,
                original)
    if not responses.empty:  # one number per run: the mean over its layers of the response std
        per_run = responses.groupby(["name", "seed"])["std"].mean().reset_index()
        for worse, better in [("plain-20", "ResNet-20"), ("plain-56", "ResNet-56"),
                              ("ResNet-20", "ResNet-56"), ("ResNet-56", "ResNet-110")]:
            compare("(e) Figure 7: ResNets respond more weakly (a layer's response std), "
                    "deeper ones more so", per_run, "std", better, worse)
    return pd.DataFrame(rows)


def judge(runs, responses) -> pd.DataFrame:
    """The claims on the seeds they are judged on: the scouting runs left out."""
    scouts = runs[runs.scouting].folder
    return claims(runs[~runs.scouting],
                  responses[~responses.folder.isin(scouts)] if not responses.empty else responses)


def claim_word(rows) -> str:
    """What the rule says of one claim's comparisons: shown, not shown, partly shown, not decided
    yet; "where decided" when some have a one-seed side."""
    decided = rows[~rows.verdict.str.startswith("not decided")]
    shown = (decided.verdict == "shown").sum()
    return ("not decided yet" if decided.empty else "partly shown" if 0 < shown < len(decided)
            else ("shown" if shown else "not shown")
            + (" where decided" if len(decided) < len(rows) else ""))


def finding(judged, claim: str) -> str | None:
    """A title's word for the claim whose name starts with `claim` ("(d)"), or None if these
    runs do not test it: a title says no more than the rule."""
    rows = judged[judged.claim.str.startswith(claim)] if not judged.empty else judged
    return claim_word(rows) if len(rows) else None


def claim_lines(judged, budget, note=True) -> list[str]:
    """One line per claim: in how many of its comparisons the rule finds it shown. A claim with
    undecided comparisons is "shown" or "not shown" only "where decided". Below the paper's budget,
    where (c) is tested: a line of its own with `note`, else at the end of (c)'s line."""
    lines = []
    for claim, rows in (judged.groupby("claim", sort=False) if not judged.empty else []):
        decided = rows[~rows.verdict.str.startswith("not decided")]
        shown = (decided.verdict == "shown").sum()
        lines.append(f"- {claim}: **{claim_word(rows)}** (shown in {shown} of {len(rows)} comparisons"
                     + (f", {len(rows) - len(decided)} not decided: a side with one seed)."
                        if len(decided) < len(rows) else ").")
                     + (" This length does not test the paper's claim, made after 64,000 "
                        "iterations."
                        if claim.startswith("(c)") and budget != "paper" and not note else ""))
    if budget != "paper" and note:
        lines.append("- (c) is the paper's Table 6, the result of the full 64k-iteration schedule; "
                     "whatever a shorter budget shows, the test of it is the paper budget on a "
                     "GPU: `make reproduce-cifar BUDGET=paper SEEDS=5` (docs/speed.md).")
    return lines
