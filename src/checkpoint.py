"""A run's checkpoint: `checkpoint.npz` (last) and `checkpoint.prev.npz` (the one before), and
the fingerprint of the config that a checkpoint and a run folder are compared by.
"""
import functools
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from src.runfiles import set_aside, write_temporary

# Keys of the configs of older runs that repeated train.iterations and .milestones, log.* and the
# data slices under budget.*: not compared, so those runs still count as finished and resume.
LEGACY_KEYS = tuple(f"budget.{key}" for key in ("iterations", "milestones", "log_every",
                                                "test_every", "train_examples", "test_examples"))
# Config keys that do not change what a run computes: a folder may be resumed with other values.
RESUMABLE_KEYS = ("results_dir", "run_dir", "overwrite", "data.dir", "data.download",
                  "checkpoint.every", "threads", "train.steps_per_call", "budget.grids",
                  "budget.scouting", "budget.left_out")
CONFIG = Path(__file__).resolve().parent.parent / "conf/config.yaml"


def comparable(cfg: DictConfig) -> dict:
    """The config as a flat dict of what determines a run's results."""
    flat = pd.json_normalize(OmegaConf.to_container(cfg, resolve=True), sep=".").iloc[0]
    return {k: v for k, v in flat.to_dict().items() if k not in RESUMABLE_KEYS + LEGACY_KEYS}


@functools.cache
def defaults() -> dict:
    """conf/config.yaml's own value of each key that has one there (flat; not those a budget or
    an interpolation sets): what a run whose config predates a key ran with."""
    raw = OmegaConf.to_container(OmegaConf.load(CONFIG), resolve=False)
    raw.pop("defaults", None), raw.pop("hydra", None)
    flat = pd.json_normalize(raw, sep=".").iloc[0].to_dict()
    return {k: v for k, v in flat.items() if not (isinstance(v, str) and ("${" in v or v == "???"))}


def changes(saved: dict, asked: dict) -> dict[str, tuple]:
    """{key: (saved, asked)} where two fingerprints (`comparable`) differ. A key the saved one
    lacks, added to the config after that run, counts as conf/config.yaml's default value: the
    run trained with what the key now says by default. A key the asked one lacks (gone from the
    config) is not compared."""
    def before(k):
        return saved[k] if k in saved else defaults().get(k)
    return {k: (before(k), asked[k]) for k in sorted(saved.keys() | asked.keys())
            if k in asked and before(k) != asked[k]}



class Checkpoint:
    """`checkpoint.npz` (last) and `checkpoint.prev.npz` (the one before), each complete, with
    every variable of the model and the optimizer keyed by its path ("stem_bn/moving_mean"), the
    loop's state, and the fingerprint of the run's config (`comparable`).

    Which checkpoint wins on resume: 1. the last one if it loads, holds exactly this network's and
    optimizer's variables and carries this run's fingerprint; 2. else the previous one, the
    unusable last one being kept aside as checkpoint.corrupt-<time>.npz
    (checkpoint.prev.corrupt-<time>.npz for the previous one); 3. else a fresh start.
    """

    def __init__(self, run_dir: Path, cfg: DictConfig | None = None):
        self.last = run_dir / "checkpoint.npz"
        self.prev = run_dir / "checkpoint.prev.npz"
        self.fingerprint = None if cfg is None else json.loads(
            json.dumps(comparable(cfg), default=str, sort_keys=True))

    def exists(self) -> bool:
        return self.last.exists() or self.prev.exists()

    @staticmethod
    def variables(model, optimizer) -> dict:
        named = {f"model/{v.path}": v for v in model.weights}
        named |= {f"optimizer/{v.path}": v for v in optimizer.variables}
        assert len(named) == len(model.weights) + len(optimizer.variables), "duplicate paths"
        return named

    def save(self, model, optimizer, state: dict) -> None:
        arrays = {k: v.numpy() for k, v in self.variables(model, optimizer).items()}
        arrays["state"] = np.array(json.dumps(state))
        arrays["fingerprint"] = np.array(json.dumps(self.fingerprint, sort_keys=True))
        tmp = write_temporary(self.last, lambda f: np.savez(f, **arrays), "wb")
        # The old last becomes prev before the new one takes its place: at every moment at least
        # one complete checkpoint exists, and load() falls back to prev if last is missing.
        if self.last.exists():
            os.replace(self.last, self.prev)
        os.replace(tmp, self.last)

    def load(self, model, optimizer, before: int | None = None):
        """Restore into model and optimizer; return the saved state dict, or None for a fresh start.
        A checkpoint at iteration `before` or later is passed over, kept as it is: the curve it
        would continue has lost rows before it (a finished run whose last row was torn)."""
        named = self.variables(model, optimizer)
        for path in (self.last, self.prev):
            if not path.exists():
                continue
            try:
                with np.load(path) as f:
                    state = json.loads(str(f["state"]))
                    values = {k: f[k] for k in named if k in f.files}
                    fingerprint = json.loads(str(f["fingerprint"])) if "fingerprint" in f else None
                    if fingerprint is not None:
                        fingerprint = {k: v for k, v in fingerprint.items() if k not in LEGACY_KEYS}
            except Exception as e:  # a torn or corrupted zip fails in many ways
                reason = f"damaged: {type(e).__name__}"
            else:
                missing = [k for k in named if k not in values]
                reshaped = [k for k in values if values[k].shape != tuple(named[k].shape)]
                other = list(changes(fingerprint or {}, self.fingerprint))
                if missing or reshaped:
                    reason = (f"it has no {missing[0]}" if missing else f"its {reshaped[0]} has "
                              f"shape {values[reshaped[0]].shape}") + \
                        ": written for another network or by an older version"
                elif fingerprint is None:
                    reason = "it has no config fingerprint: written by an older version"
                elif other:
                    reason = (f"written for another config: {other[0]}="
                              f"{fingerprint.get(other[0])!r}, this run has "
                              f"{self.fingerprint.get(other[0])!r}")
                elif before is not None and state["iteration"] >= before:
                    print(f"warning: {path.name} (iteration {state['iteration']:,}) is past the "
                          "last row of metrics.csv that survived: not used", file=sys.stderr)
                    continue  # kept as it is: a good checkpoint of this run
                else:
                    for k, variable in named.items():
                        variable.assign(values[k])
                    return state
            aside = set_aside(path)
            print(f"warning: {path.name} cannot be used ({reason}); kept as {aside.name}, "
                  "falling back to the previous checkpoint", file=sys.stderr)
        return None
