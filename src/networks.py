"""The identity of a network of the study: its unit, its shortcut and its depth, and the one
place where each unit and shortcut is registered with the name a reader sees.

A leaf module (no TensorFlow): the config check, the sweep, the run folders' names and every
figure and claim take a network's name, family and depth from here. A unit or a shortcut that
src/models.py builds but that is not registered here is refused by the config check.
"""
from dataclasses import dataclass

# Each residual unit: the prefix of its family's name, and its weighted layers (depth = 3 stages x
# n units x layers per unit + the first convolution and the classifier).
UNITS = {"original": ("", 2),  # the paper's two-layer unit
         "preact": ("pre-act ", 2)}  # BN-ReLU-conv twice (He et al. 2016)
# Each shortcut option (the paper's section 3.3): the family a reader sees.
SHORTCUTS = {"none": "plain", "identity": "ResNet", "projection": "ResNet-B",
             "all_projection": "ResNet-C"}


def check_choice(key, value, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not allowed: choose one of {', '.join(allowed)}")
    return value


def blocks_per_stage(depth, block: str = "original") -> int:
    """n in depth = 3 x layers-per-unit x n + 2; the only place depth becomes a network size."""
    per_unit = 3 * UNITS[check_choice("block", block, tuple(UNITS))][1]
    if (isinstance(depth, bool) or not isinstance(depth, int) or depth < per_unit + 2
            or (depth - 2) % per_unit):
        examples = ", ".join(str(per_unit * n + 2) for n in (1, 2, 3, 5, 7, 9, 18, 200))
        raise ValueError(f"depth={depth!r} is not allowed: depth must be {per_unit}n+2 with "
                         f"n >= 1 ({examples}, ...)")
    return (depth - 2) // per_unit


@dataclass(frozen=True)
class Network:
    """One network of the study, as the config names it: block=original shortcut=none depth=56."""
    block: str
    shortcut: str
    depth: int

    @classmethod
    def of(cls, config) -> "Network":
        """The network of a run's config (a DictConfig or the dict of a summary.json)."""
        return cls(config.get("block", "original"), config["shortcut"], config["depth"])

    def check(self) -> "Network":
        """ValueError naming the value where the unit, shortcut or depth is not allowed."""
        blocks_per_stage(self.depth, self.block)
        check_choice("shortcut", self.shortcut, tuple(SHORTCUTS))
        return self

    @property
    def family(self) -> str:
        """plain, ResNet, ResNet-B, pre-act ResNet, ...: what figures average seeds within."""
        return UNITS[self.block][0] + SHORTCUTS[self.shortcut]

    @property
    def label(self) -> str:
        """plain-56, pre-act ResNet-110."""
        return f"{self.family}-{self.depth}"

    def folder(self, seed: int) -> str:
        """The run folder's name: identity-56-s0, none-20-s2 (plain), preact-identity-110-s0."""
        return f"{'' if self.block == 'original' else f'{self.block}-'}{self.shortcut}-" \
               f"{self.depth}-s{seed}"

    def overrides(self, seed: int) -> list[str]:
        """The command-line words of a run of this network: every launch path uses them."""
        return [f"depth={self.depth}", f"shortcut={self.shortcut}", f"block={self.block}",
                f"seed={seed}"]


def run_name(block, shortcut, depth, seed) -> str:
    """`${run_name:${block},${shortcut},${depth},${seed}}` in conf/config.yaml."""
    return Network(block, shortcut, depth).folder(seed)
