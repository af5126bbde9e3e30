"""The networks of each budget's sweep, and the names of their run folders: a leaf module (no
TensorFlow), read by the sweep and by `make figures` (which lists what is still to run)."""
from itertools import product

GRID_KEYS = ("depth", "shortcut", "block")
# The networks of each budget's sweep, grid after grid: Figure 6's plain nets (20-56, and 110
# at the paper budget) and ResNets (20-110), the pre-activation ResNets beside the original ones,
# and three seeds where the claims are made (20 vs 56 layers, plain and ResNet). A network listed
# twice runs once; the extra seeds come last, so a sweep cut short has every network once.
PLAIN_AND_RESNET = {"shortcut": "none,identity", "block": "original"}
GRIDS = {
    "paper": [{"depth": "20,32,44,56,110", **PLAIN_AND_RESNET},
              {"depth": "56,110", "shortcut": "identity", "block": "preact"}],
    "quick": [{"depth": "20,56", **PLAIN_AND_RESNET},
              {"depth": "32,44", **PLAIN_AND_RESNET},
              {"depth": "110", "shortcut": "identity", "block": "original"},
              {"depth": "56,110", "shortcut": "identity", "block": "preact"},
              {"depth": "20,56", **PLAIN_AND_RESNET, "seeds": 3}],
    # The long budget: the scouting pair (conf/budget/long.yaml) first, then the ResNet seeds
    # the claims are judged on, the plain pair with seed 0, then with seed 1 (their gap is large:
    # two seeds). Then, step by step, each whole before the next so that a sweep cut short stops
    # at a complete set: 1. a third judged seed on each side of the claims; 2. the other depths
    # of Figure 6; 3. ResNet-110; 4. a fourth judged ResNet seed; 5. second seeds of the other
    # depths and the pre-activation ResNet-110, as time allows.
    "long": [{"depth": "20,56", "shortcut": "identity", "block": "original"},
             {"depth": "20,56", "shortcut": "identity", "block": "original", "seeds": 3},
             {"depth": "20,56", "shortcut": "none", "block": "original"},
             {"depth": "20,56", "shortcut": "none", "block": "original", "seeds": 2},
             {"depth": "20,56", **PLAIN_AND_RESNET, "seeds": 3},
             {"depth": "20,56", "shortcut": "identity", "block": "original", "seeds": 4},
             {"depth": "32,44", **PLAIN_AND_RESNET},
             {"depth": "110", "shortcut": "identity", "block": "original"},
             {"depth": "20,56", "shortcut": "identity", "block": "original", "seeds": 5},
             {"depth": "32,44", **PLAIN_AND_RESNET, "seeds": 2},
             {"depth": "110", "shortcut": "identity", "block": "preact"}],
    "smoke": [{"depth": "20,56", **PLAIN_AND_RESNET}],
}


# The runs that chose a budget's length (conf/budget/long.yaml): drawn with the others, but the
# claims are judged on the seeds that played no part in the choice.
SCOUTING = {"long": ["identity-20-s0", "identity-56-s0"]}


def run_name(block, shortcut, depth, seed) -> str:
    """A run folder's name: identity-56-s0, none-20-s2 (plain), preact-identity-110-s0."""
    return f"{'' if block == 'original' else f'{block}-'}{shortcut}-{depth}-s{seed}"


def expand(grid: dict):
    """(depth, shortcut, block, seed) of every run of a grid."""
    return product(grid["depth"].split(","), grid["shortcut"].split(","),
                   grid["block"].split(","), range(grid.get("seeds", 1)))


def run_names(budget: str) -> list[str]:
    """The run folders a budget's own sweep plans, in order (none for an unknown budget)."""
    names = {run_name(block, shortcut, depth, seed): None for grid in GRIDS.get(budget, [])
             for depth, shortcut, block, seed in expand(grid)}
    return list(names)
