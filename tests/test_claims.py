"""The claims engine on its own: the rule, the comparisons, the lines and Table 6, from frames of
final errors (pure pandas: no figure is drawn and matplotlib is not imported)."""
import subprocess
import sys

import numpy as np
import pandas as pd

from experiments.claims import (SHOWN_AT, claim_lines, claims, fmt, glance,
                                preactivation_table, table6, trend, verdict)
from src.networks import SHORTCUTS, UNITS, Network


def network(label: str) -> Network:
    """The network a label names, through the one identity (pre-act ResNet-110, ...)."""
    depth = int(label.rsplit("-", 1)[1])
    return next(n for n in (Network(b, s, depth) for b in UNITS for s in SHORTCUTS)
                if n.label == label)


def finals(errors: dict, test_offset=3.0) -> pd.DataFrame:
    """A frame of finished runs: {"plain-20": [train errors per seed], ...}, with the columns
    experiments.runs gives them."""
    rows = []
    for name, values in errors.items():
        net = network(name)
        for seed, error in enumerate(values):
            rows.append({"name": name, "net": net.family, "depth": net.depth, "seed": seed,
                         "block": net.block, "original": net.original and net.original.label,
                         "train_error": error, "test_error": error + test_offset,
                         "parameters": 270_000, "scouting": False})
    return pd.DataFrame(rows)


def test_the_rule_needs_a_spread_on_both_sides_and_a_difference_beyond_it():
    assert verdict(5.0, [1.0, np.nan]) == (5.0, "-", "not decided: a side with one seed")
    assert verdict(2.1, [1.0, 0.5]) == (2.1, f"{SHOWN_AT * 1.0:.2f}", "shown")
    assert verdict(1.9, [1.0, 0.5])[2] == "not shown at this budget"
    # as printed, a difference and the threshold it passes never look equal
    assert verdict(0.0512, [0.0235, 0.01]) == (0.051, "0.047", "shown")
    assert verdict(0.05001, [0.025004]) == (0.05001, "0.050008", "shown")


def test_the_claims_are_judged_comparison_by_comparison():
    runs = finals({"plain-20": [7.0, 7.2, 7.1], "plain-56": [40.0, 44.0, 42.0],
                   "ResNet-20": [6.0, 6.4, 6.2], "ResNet-56": [4.0, 6.5, 5.0]})
    judged = claims(runs, pd.DataFrame())
    by = judged.set_index(["claim", "metric"]).verdict
    assert by["(a) plain: training error rises with depth", "train_error"] == "shown"
    assert by["(b) shortcuts shrink the depth penalty", "train_error"] == "shown"
    # ResNet-56 ends 1.03 below ResNet-20 with a std of 1.25: within the rule's 2.5
    assert by["(c) ResNets: deeper is better", "train_error"] == "not shown at this budget"
    assert judged.difference.tolist()[0] == round(42.0 - 7.1, 2)
    lines = claim_lines(judged, "long")
    assert lines[0].startswith("- (a) plain: training error rises with depth: **shown** (shown "
                               "in 1 of 1 comparisons).")
    assert "(c) ResNets: deeper is better: **not shown** (shown in 0 of 2" in lines[2]
    assert lines[2].endswith(").")  # a budget README says why below the claims, once
    assert claim_lines(judged, "long", note=False)[2].endswith(
        "). This length does not test the paper's claim, made after 64,000 iterations.")
    assert all(line.endswith(").") for line in claim_lines(judged, "paper"))
    assert "the paper budget on a GPU" in lines[-1]
    assert "paper budget on a GPU" not in " ".join(claim_lines(judged, "paper"))


def test_a_one_seed_side_is_never_shown_and_the_claim_says_where_it_is_decided():
    runs = finals({"plain-20": [7.0], "plain-44": [20.0, 22.0], "plain-56": [40.0, 41.0],
                   "plain-32": [10.0, 10.5]})
    judged = claims(runs, pd.DataFrame())
    assert (judged.verdict == "not decided: a side with one seed").sum() == 2  # 20-32, 20-56
    assert "**shown where decided** (shown in 2 of 4 comparisons, 2 not decided" in \
        claim_lines(judged, "quick")[0]


def test_a_side_is_written_mean_sd_n_and_a_side_without_runs_as_a_dash():
    assert fmt(5.0, 0.25, 2) == "5.00 ± 0.25 (n=2)" and fmt(5.0, np.nan, 1) == "5.00 (n=1)"
    assert fmt(np.nan, np.nan, 0) == "-"


def test_table6_puts_the_papers_numbers_beside_the_runs():
    table = table6(finals({"plain-56": [40.0, 42.0], "ResNet-56": [5.0]}))
    row = table.iloc[0]
    assert row["depth"] == 56 and row["paper ResNet (%, Table 6; best of 5 at 110)"] == 6.97
    assert row["ResNet test error (%)"] == "8.00 (n=1)"
    assert row["ResNet minus paper (its mean where given)"] == 1.03
    resnet110 = table6(finals({"ResNet-110": [4.0, 4.2]})).iloc[0]  # test errors 7.0 and 7.2
    assert resnet110["paper ResNet (%, Table 6; best of 5 at 110)"] == 6.43
    assert resnet110["paper ResNet mean (%, Table 6)"] == "6.61 ± 0.16 (n=5)"
    assert resnet110["ResNet minus paper (its mean where given)"] == round(7.1 - 6.61, 2)
    assert row["plain test error (%)"] == "44.00 ± 1.41 (n=2)"


def test_a_titles_depth_finding_follows_the_claims_rule_on_the_judged_seeds():
    def runs(resnet20, resnet56, scouts=()):
        return pd.DataFrame([{"net": "ResNet", "depth": d, "train_error": e,
                              "scouting": (d, e) in scouts}
                             for d, errors in ((20, resnet20), (56, resnet56)) for e in errors])
    assert trend(runs([6.0, 6.2], [4.0, 4.1]), "ResNet") == "ResNets: 56 layers train better than 20"
    # no direction where the rule shows none
    assert trend(runs([6.0, 7.0], [5.9, 6.5]), "ResNet") == (
        "ResNets: 56 vs 20 layers: no difference shown (within the seeds' spread)")
    # a scouting seed of 4.3% would make the means say "better": judged, one seed is left
    title = trend(runs([6.3, 5.7, 6.2], [4.3, 6.4], scouts={(20, 6.3), (56, 4.3)}), "ResNet")
    assert title == ("ResNets, scouting seeds left out: 56 vs 20 layers: not decided (a side "
                     "with one seed)")


def test_the_claims_import_no_plotting():
    probe = subprocess.run([sys.executable, "-c", "import sys, experiments.claims; "
                            "print('matplotlib' in sys.modules)"], capture_output=True, text=True)
    assert probe.stdout.strip() == "False", probe.stderr


def test_pre_activation_nets_are_compared_with_the_original_form_of_their_own_unit():
    """Claim (d) and the pre-activation table pair each pre-act net with the original form of
    its unit at its depth (from src.networks), never by a name typed in the claims."""
    runs = finals({"ResNet-110": [30.0, 31.0], "pre-act ResNet-110": [20.0, 20.5],
                   "bottleneck ResNet-B-164": [40.0, 42.0],
                   "pre-act bottleneck ResNet-B-164": [25.0, 26.0],
                   "pre-act ResNet-56": [22.0]})  # no ResNet-56: nothing to compare it with
    judged = claims(runs, pd.DataFrame())
    d = judged[judged.claim.str.startswith("(d)")]
    assert d.comparison.tolist() == ["ResNet-110 above pre-act ResNet-110",
                                     "bottleneck ResNet-B-164 above pre-act bottleneck ResNet-B-164"]
    assert d.verdict.tolist() == ["shown", "shown"]
    table = preactivation_table(runs).set_index("network (original unit)")
    assert table.loc["bottleneck ResNet-B-164", "paper original (%)"] == 5.93
    assert table.loc["bottleneck ResNet-B-164", "paper pre-act (%)"] == 5.46
    assert table.loc["ResNet-110", "paper pre-act (%)"] == 6.37
    assert table.loc["ResNet-110", "pre-act test error (%)"] == "23.25 ± 0.35 (n=2)"
    assert pd.isna(table.loc["ResNet-56", "original unit test error (%)"])  # not run: missing
    assert table.loc["ResNet-56", "pre-act test error (%)"] == "25.00 (n=1)"


def test_the_glance_table_states_the_plain_penalty_at_each_depth():
    runs = finals({"plain-20": [7.0, 7.2], "plain-56": [40.0, 44.0], "ResNet-20": [6.0, 6.4],
                   "ResNet-56": [5.0], "ResNet-110": [4.5]})
    table = glance(runs).set_index("layers")
    assert table["plain minus ResNet, train (points)"].to_dict() == {20: "0.9", 56: "37.0",
                                                                 110: "-"}
    assert table.loc[56, "ResNet: train / test error (%)"] == "5.0 (1) / 8.0 (1)"
