"""The finished runs of a budget folder, as one typed value that every figure, table and claim
reads: a row per run, its curves, and any per-run CSV (responses.csv, gradients.csv, an
analysis's) on demand, through the reader its owner defines.

A run folder that is damaged, not finished or without its curve is left out with one line; a side
file that is damaged leaves its run out of what that file feeds, with one line, and nothing else.
"""
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from omegaconf import OmegaConf

from src.budgets import Budget, BudgetError
from src.checkpoint import comparable, defaults
from src.networks import Network
from src.park import PARKED
from src.rundir import damage
from src.runfiles import WEIGHTS, DamagedFile, read_summary


@dataclass
class Runs:
    """The finished runs of one budget folder."""
    folder: Path
    runs: pd.DataFrame  # a row per run: net (family), depth, seed, name, label, folder, block,
    #                     original (the original-form net a pre-activation one is compared with)
    curves: pd.DataFrame  # a row per run and logged iteration (metrics.csv)
    plan: list = field(default_factory=list)  # the run folders the budget's sweep plans
    left_out: str = ""  # what the budget's grids leave out, and why
    progress: dict = field(default_factory=dict)  # folder -> (status, iteration, of) if parked
    tables: dict = field(default_factory=dict)  # reader -> its frame, read once

    @property
    def empty(self) -> bool:
        return self.runs.empty

    def side(self, reader, name: str) -> pd.DataFrame:
        """Every run's `name` (read by `reader(run_dir)`, which raises DamagedFile), a row per
        row of it with the run's columns; runs without the file are absent, damaged ones named."""
        if reader not in self.tables:
            frames = []
            for run in self.runs.itertuples():
                run_dir = self.folder / "runs" / run.folder
                if not (run_dir / name).exists():
                    continue
                try:
                    frame = reader(run_dir)
                except DamagedFile as e:
                    print(f"warning: {run.folder}/{e}: left out of what it feeds; recompute it "
                          "(docs/runs.md)", file=sys.stderr)
                    continue
                frames.append(frame.assign(**{k: getattr(run, k) for k in RUN_KEYS}))
            self.tables[reader] = pd.concat(frames, ignore_index=True) if frames else \
                pd.DataFrame(columns=RUN_KEYS)
        return self.tables[reader]

    def missing(self) -> list[str]:
        """The runs the budget's sweep plans that are not finished here, each with its progress
        where it has made some ("none-32-s0 (parked at 4,200 of 16,000)")."""
        finished = set(self.runs.folder) if not self.runs.empty else set()
        return [name + (" ({} at {:,} of {:,})".format(*self.progress[name])
                        if name in self.progress else "")
                for name in self.plan if name not in finished]


RUN_KEYS = ["net", "depth", "seed", "name", "folder", "label", "milestone"]


def recipe(config: dict) -> str:
    """A short hash of a run's training recipe: its train.* values but the budget's length
    (iterations, milestones) and its batch norm, as the run's config fingerprint holds them,
    where they differ from conf/config.yaml's defaults (a key at its default or at null counts
    as absent: an option added since leaves every run's hash as it was)."""
    flat = comparable(OmegaConf.create(config))
    keys = {k: v for k, v in flat.items() if v is not None and v != defaults().get(k) and (
        k in ("batch_norm", "batch_norm_group")
        or k.startswith("train.") and k not in ("train.iterations", "train.milestones"))}
    return recipe_hash(keys)


def recipe_hash(keys: dict) -> str:
    return hashlib.sha1(json.dumps(keys, sort_keys=True, default=str).encode()).hexdigest()[:7]


DEFAULT_RECIPE = recipe_hash({})  # every key of the recipe at conf/config.yaml's default


def segment_commits(summary) -> list[str]:
    """The code of each segment, the start then each resume; `unknown` for the segments of a run
    resumed before runs recorded one per segment (only its last process's commit was kept)."""
    return summary.commits or ["unknown"] * len(summary.resumed_at) + [summary.commit]


def load_runs(budget_dir: Path) -> Runs:
    budget_dir = Path(budget_dir)
    try:
        budget = Budget.load(budget_dir.name)
        plan, scouting, left_out = budget.folders(), budget.scouting, budget.left_out
    except BudgetError:  # a folder of runs of no budget file (results_dir=...): nothing planned
        plan, scouting, left_out = [], [], ""
    curves, runs, progress = [], [], {}
    for summary_path in sorted(budget_dir.glob("runs/*/summary.json")):
        run_dir = summary_path.parent
        problem = damage(run_dir)
        if problem:
            print(f"warning: skipped {run_dir.name}: damaged ({problem}); rerun it to repair it",
                  file=sys.stderr)
            continue
        summary = read_summary(run_dir)
        metrics = run_dir / "metrics.csv"
        if summary.status != "finished" or not metrics.exists():
            print(f"skipped {run_dir.name}: {summary.status}, not finished")
            if summary.status == PARKED:  # its checkpoint in git: any clone resumes it
                progress[run_dir.name] = (summary.status, summary.iterations,
                                          summary.config["train"]["iterations"])
            continue
        c = summary.config
        network = Network.of(c)
        run = {"net": network.family, "depth": c["depth"], "seed": c["seed"],
               "name": network.label, "folder": run_dir.name, "block": network.block,
               # a pre-activation net: the original-form net it is compared with (claim (d))
               "original": network.original.label if network.original else None}
        runs.append({**run, "parameters": summary.parameters,
                     "train_error": summary.train_error, "test_error": summary.test_error,
                     "iterations": summary.iterations, "wall_seconds": summary.wall_seconds,
                     "warmup_ended_at": summary.warmup_ended_at,
                     "milestone": c["train"]["milestones"][0] * summary.iterations,
                     "weights": WEIGHTS if (run_dir / WEIGHTS).exists() else "-",
                     "cpu": summary.hardware["cpu"], "gpus": ", ".join(summary.hardware["gpus"]),
                     "commits": segment_commits(summary), "recipe": recipe(c),
                     "machines": [m for m in summary.machines if m != "unknown"],
                     "budget": c["budget"]["name"],
                     "batch_size": c["train"]["batch_size"], "lr": c["train"]["lr"],
                     "precision": c["train"]["precision"],
                     "milestones": ", ".join(f"{m:.0%}" for m in c["train"]["milestones"])})
        curves.append(pd.read_csv(metrics).assign(**run))
    if not runs:
        return Runs(budget_dir, pd.DataFrame(), pd.DataFrame(), plan, left_out, progress)
    runs = pd.DataFrame(runs)
    runs["scouting"] = runs.folder.isin(scouting)  # left out of the verdicts
    n = runs.groupby("name").seed.transform("nunique")
    runs["label"] = runs.name + " (n=" + n.astype(str) + ")"
    curves = pd.concat(curves, ignore_index=True)
    curves["label"] = curves.name.map(runs.drop_duplicates("name").set_index("name").label)
    return Runs(budget_dir, runs, curves, plan, left_out, progress)
