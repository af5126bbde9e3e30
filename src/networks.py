"""The identity of a network of the study: its unit, its shortcut and its depth, and the one
place where each unit and shortcut is registered with the name a reader sees.

A leaf module (no TensorFlow): the config check, the sweep, the run folders' names and every
figure and claim take a network's name, family and depth from here. A unit or a shortcut that
src/models.py builds but that is not registered here is refused by the config check.
"""
from dataclasses import dataclass

@dataclass(frozen=True)
class Unit:
    """A residual unit as the study names it."""
    prefix: str  # of its family's name: "" (the paper's), "pre-act ", "bottleneck ", ...
    layers: int  # weighted layers per unit: depth = 3 stages x n units x layers + 2
    shortcuts: tuple  # the shortcut options it is built with
    depths: tuple  # its paper's CIFAR depths, named when a depth is refused
    paper: str  # the arXiv number of the paper whose CIFAR recipe it is trained with
    original: str | None = None  # a pre-activation unit: the original-form unit it is compared with


RESNET_PAPER, PREACT_PAPER = "1512.03385", "1603.05027"  # He et al. 2015, He et al. 2016


ALL_SHORTCUTS = ("none", "identity", "projection", "all_projection")
UNITS = {
    # The paper's two-layer unit, conv-BN-ReLU-conv-BN, the shortcut added before the last ReLU.
    "original": Unit("", 2, ALL_SHORTCUTS, (20, 32, 44, 56, 110, 1202), RESNET_PAPER),
    # BN-ReLU-conv twice, nothing after the addition (He et al. 2016, "Identity Mappings").
    "preact": Unit("pre-act ", 2, ALL_SHORTCUTS, (20, 32, 44, 56, 110, 1202), PREACT_PAPER,
                   "original"),
    # 1x1 reducing, 3x3, 1x1 restoring four times wider (that paper's Table 3 and appendix): the
    # width grows at every stage's first unit, where the shortcut is a projection (option B).
    "bottleneck": Unit("bottleneck ", 3, ("projection",), (164, 1001), PREACT_PAPER),
    "preact_bottleneck": Unit("pre-act bottleneck ", 3, ("projection",), (164, 1001),
                              PREACT_PAPER, "bottleneck"),
}
# Each shortcut option (the paper's section 3.3): the family a reader sees.
SHORTCUTS = {"none": "plain", "identity": "ResNet", "projection": "ResNet-B",
             "all_projection": "ResNet-C"}
assert set(ALL_SHORTCUTS) == set(SHORTCUTS)


def check_choice(key, value, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not allowed: choose one of {', '.join(allowed)}")
    return value


def blocks_per_stage(depth, block: str = "original") -> int:
    """n in depth = 3 x layers-per-unit x n + 2; the only place depth becomes a network size."""
    unit = UNITS[check_choice("block", block, tuple(UNITS))]
    per_unit = 3 * unit.layers
    if (isinstance(depth, bool) or not isinstance(depth, int) or depth < per_unit + 2
            or (depth - 2) % per_unit):
        raise ValueError(f"depth={depth!r} is not allowed: depth must be {per_unit}n+2 with "
                         f"n >= 1 for block={block} (its paper's: "
                         f"{', '.join(map(str, unit.depths))})")
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
        allowed = UNITS[self.block].shortcuts
        if self.shortcut not in allowed:
            raise ValueError(f"shortcut={self.shortcut!r} is not allowed with block={self.block}: "
                             f"choose {' or '.join(allowed)}")
        return self

    @property
    def family(self) -> str:
        """plain, ResNet, ResNet-B, pre-act ResNet, ...: what figures average seeds within."""
        return UNITS[self.block].prefix + SHORTCUTS[self.shortcut]

    @property
    def label(self) -> str:
        """plain-56, pre-act ResNet-110."""
        return f"{self.family}-{self.depth}"

    @property
    def original(self) -> "Network | None":
        """The original-form network a pre-activation one is compared with (claim (d)):
        pre-act ResNet-110 -> ResNet-110; None for an original-form network."""
        unit = UNITS[self.block].original
        return None if unit is None else Network(unit, self.shortcut, self.depth)

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
