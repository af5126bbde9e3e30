"""A budget, defined once: its file conf/budget/<name>.yaml sets the runs' length, logging and data
slices, the networks its sweep trains (`budget.grids`), the runs that chose its length
(`budget.scouting`) and what its grids leave out and why (`budget.left_out`). A leaf module
(OmegaConf, no TensorFlow), read by the config check, the sweep and `make figures`.
"""
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from omegaconf import OmegaConf

from src.networks import Network

CONF = Path(__file__).resolve().parent.parent / "conf"
GRID_KEYS = ("depth", "shortcut", "block")


class BudgetError(Exception):
    """A budget name or file that cannot be used; the message names it and what is allowed."""


def budget_names() -> list[str]:
    return sorted(p.stem for p in (CONF / "budget").glob("*.yaml"))


@dataclass(frozen=True)
class Budget:
    name: str
    grids: list  # of {depth: "20,56", shortcut: "none,identity", block: original, seeds: 3}
    scouting: list  # run folders left out of the claims
    left_out: str = ""  # what the grids leave out, and why: a sentence for the budget's README

    @classmethod
    def load(cls, name: str) -> "Budget":
        path = CONF / "budget" / f"{name}.yaml"
        if not path.exists():
            raise BudgetError(f"budget={name!r} is not allowed: choose one of "
                              f"{', '.join(budget_names())}")
        file = OmegaConf.load(path)
        budget = OmegaConf.to_container(file.get("budget", {}))
        grids = budget.get("grids") or []
        if not grids or any(not set(GRID_KEYS) <= set(g) for g in grids):
            raise BudgetError(f"{path.relative_to(CONF.parent)} has no budget.grids (each grid "
                              f"names {', '.join(GRID_KEYS)}): its sweep would not know which "
                              "networks to train")
        return cls(name, grids, budget.get("scouting") or [], budget.get("left_out") or "")

    def runs(self) -> list[tuple[Network, int]]:
        """(network, seed) of every run the budget's sweep plans, once each, in order."""
        return list(dict.fromkeys(point for grid in self.grids for point in expand(grid)))

    def folders(self) -> list[str]:
        return [network.folder(seed) for network, seed in self.runs()]


def expand(grid: dict) -> list[tuple[Network, int]]:
    """(network, seed) of every run of a grid."""
    return [(Network(block, shortcut, int(depth)), seed) for depth, shortcut, block, seed in
            product(str(grid["depth"]).split(","), grid["shortcut"].split(","),
                    grid["block"].split(","), range(int(grid.get("seeds", 1))))]


def grid_overrides(grid: dict) -> list[str]:
    """A grid as the words of one Hydra multirun (the sweep's other launchers)."""
    return [f"seed={','.join(map(str, range(int(grid.get('seeds', 1)))))}",
            *(f"{key}={grid[key]}" for key in GRID_KEYS)]
