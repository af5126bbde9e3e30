"""The config schema of a run, and every check of its values.

conf/config.yaml holds the values and their documentation; the dataclasses below are its schema
(registered in Hydra's ConfigStore as `schema`, first in its defaults list), so OmegaConf itself
rejects a wrong type or an unknown key, on the command line or in a budget file, before anything
runs. `check_config` then checks what types cannot say: ranges, choices and relations.
"""
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src.data import TRAIN_SIZE, TEST_SIZE, VALIDATION_SIZE
from src import machine
from src.budgets import CONF, budget_names
from src.models import BATCH_NORMS
from src.networks import Network, check_choice, run_name
from src.steps import warmup_enabled

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
KERNEL_NORMS = ("free", "held")
LARGEST = 2**31 - 1  # every count fits TensorFlow's int32 (and a seed numpy's uint32)


class ConfigError(Exception):
    """A value the user gave is not allowed; the message names it and what is."""


@dataclass
class BudgetKeys:
    name: str = MISSING  # the budget file that set train.iterations and .milestones, log.*, data.*
    grids: List[Dict[str, Any]] = field(default_factory=list)  # its sweep's networks (src.budgets)
    scouting: List[str] = field(default_factory=list)  # its runs that chose its length
    left_out: str = ""  # what its grids leave out, and why (its README says so)


@dataclass
class TrainKeys:
    batch_size: int = MISSING
    lr: float = MISSING
    milestones: List[float] = MISSING
    momentum: float = MISSING
    weight_decay: float = MISSING
    iterations: int = MISSING
    warmup: Any = MISSING  # auto, true or false (OmegaConf has no union of str and bool)
    warmup_lr: float = MISSING
    warmup_until_error: float = MISSING
    warmup_iterations: Any = MISSING  # auto or a whole number
    kernel_norm: str = MISSING
    precision: str = MISSING
    jit_compile: bool = MISSING
    steps_per_call: int = MISSING
    tf32: bool = MISSING
    deterministic: bool = MISSING


@dataclass
class DataKeys:
    dir: Optional[str] = None
    download: bool = MISSING
    train_examples: Optional[int] = None
    test_examples: Optional[int] = None
    validation: bool = MISSING


@dataclass
class LogKeys:
    every: int = MISSING
    test_every: int = MISSING


@dataclass
class CheckpointKeys:
    every: Any = MISSING  # auto or a whole number


@dataclass
class Config:
    depth: int = MISSING
    shortcut: str = MISSING
    block: str = MISSING
    batch_norm: str = MISSING
    batch_norm_group: Optional[int] = None
    seed: int = MISSING
    threads: Optional[int] = None
    train: TrainKeys = field(default_factory=TrainKeys)
    data: DataKeys = field(default_factory=DataKeys)
    log: LogKeys = field(default_factory=LogKeys)
    checkpoint: CheckpointKeys = field(default_factory=CheckpointKeys)
    budget: BudgetKeys = field(default_factory=BudgetKeys)
    results_dir: str = MISSING
    run_dir: str = MISSING
    overwrite: bool = MISSING


ConfigStore.instance().store(name="schema", node=Config)


def register_resolvers() -> None:
    """`${run_name:...}`, which conf/config.yaml uses to name a run's folder."""
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)


def compose(*overrides: str) -> DictConfig:
    """The config a run with these overrides gets, without running it (sweep, bench, tests)."""
    register_resolvers()
    with hydra.initialize_config_dir(str(CONF), version_base="1.3"):
        return hydra.compose("config", overrides=list(overrides))


def smaller_budgets(seconds_per_iteration: float, iterations: int) -> str:
    """What the budgets shorter than `iterations` that train on all the data (not smoke's slice)
    would take at this speed, longest first: the second half of the CPU guard's line."""
    files = {name: OmegaConf.load(CONF / "budget" / f"{name}.yaml") for name in budget_names()}
    shorter = sorted(((int(f.train.iterations), name) for name, f in files.items()
                      if f.data.train_examples is None), reverse=True)
    options = [f"budget={name} ~{duration(seconds_per_iteration * n)}"
               for n, name in shorter if n < iterations]
    return f"; {', '.join(options)} for a whole run" if options else ""


def documented_keys() -> list[tuple[str, str]]:
    """(key, what it is) of every key conf/config.yaml documents, in its order: its own comments,
    the one place they are written (a comment on the lines after a key continues it)."""
    keys, section = [], ""
    for line in (CONF / "config.yaml").read_text().splitlines():
        if line.startswith("hydra:"):
            break
        entry = re.match(r"^(\s*)(?:- )?([a-z_0-9]+):\s*([^#]*?)\s*(?:#\s*(.*))?$", line)
        follow = re.match(r"^\s+#\s*(.*)$", line)
        if follow and keys:
            key, text = keys[-1]
            keys[-1] = (key, f"{text} {follow.group(1)}")
        elif entry:
            indent, name, default, text = entry.groups()
            if not indent:
                section = name if not default else ""
            if default or name == "budget":
                key = f"{section}.{name}" if indent and section and section != "defaults" else name
                keys.append((key, text or ""))
    return keys


def duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    return (f"{days}d " if days else "") + time.strftime("%H:%M:%S", time.gmtime(rest))


def whole(value) -> bool:
    """A whole number, as a key typed Any (auto or a number) may hold one: not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _fail(key: str, value, allowed: str):
    raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def check_config(cfg: DictConfig) -> None:
    """Every value's range and the relations between values, checked before anything is built or
    written (types are the schema's job)."""
    check_resolvable(cfg)
    check_ranges(cfg)


def check_resolvable(cfg: DictConfig) -> None:
    """Every interpolation resolves to a value of its key's type: an environment variable can
    still give a typed key a wrong value (TFDS_DOWNLOAD=maybe) or none at all."""
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as e:
        reason = re.sub(r"^While dereferencing interpolation '.*?': |^.*? raised while "
                        r"resolving interpolation: ", "", str(e).splitlines()[0])
        value = getattr(e, "value", None)
        if value is None and e.full_key:  # an interpolation that cannot be resolved: as typed
            value = OmegaConf.select(cfg, e.full_key, throw_on_resolution_failure=False)
            value = cfg._get_node(e.full_key)._value() if value is None else value
        raise ConfigError(f"{e.full_key}={value!r} is not allowed: {reason}") from None


def check_ranges(cfg: DictConfig) -> None:
    """The choices, ranges and relations that types cannot say."""
    try:
        Network.of(cfg).check()
        check_choice("batch_norm", cfg.batch_norm, BATCH_NORMS)
        check_choice("train.precision", cfg.train.precision, PRECISIONS)
        check_choice("train.kernel_norm", cfg.train.kernel_norm, KERNEL_NORMS)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    t, d = cfg.train, cfg.data
    if cfg.depth > LARGEST:
        _fail("depth", cfg.depth, f"at most {LARGEST}")
    if cfg.threads is not None and not 0 < cfg.threads <= 1024:
        _fail("threads", cfg.threads, "null (TensorFlow's default: every core) or from 1 to 1024")
    group = cfg.batch_norm_group
    if group is not None and (cfg.batch_norm != "fused" or not 2 <= group < t.batch_size
                              or t.batch_size % group):
        _fail("batch_norm_group", group, f"null (the whole batch) or, with batch_norm=fused, a "
              f"divisor of train.batch_size={t.batch_size} from 2 to {t.batch_size // 2} (64: "
              "the paper's two GPUs)")
    if not 0 <= cfg.seed <= LARGEST:
        _fail("seed", cfg.seed, f"a whole number from 0 to {LARGEST}")
    for key, value in [("train.batch_size", t.batch_size), ("train.iterations", t.iterations),
                       ("train.steps_per_call", t.steps_per_call),
                       ("log.every", cfg.log.every), ("log.test_every", cfg.log.test_every)]:
        if not 0 < value <= LARGEST:
            _fail(key, value, f"a whole number from 1 to {LARGEST}")
    every = cfg.checkpoint.every
    if every != "auto" and not (whole(every) and 0 < every <= LARGEST):
        _fail("checkpoint.every", every, f"auto or a whole number from 1 to {LARGEST}")
    if not str(cfg.results_dir).strip():
        _fail("results_dir", cfg.results_dir, "name a folder (the default is results)")
    if t.iterations % cfg.log.test_every or cfg.log.test_every % cfg.log.every:
        raise ConfigError(f"log.every={cfg.log.every}, log.test_every={cfg.log.test_every} are not "
                          f"allowed: log.every must divide log.test_every, which must divide "
                          f"train.iterations={t.iterations}")
    ranges = {"lr": (lambda v: v > 0, "a finite number > 0"),
              "warmup_lr": (lambda v: v > 0, "a finite number > 0"),
              "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
              "weight_decay": (lambda v: v >= 0, "a finite number >= 0"),
              "warmup_until_error": (lambda v: 0 < v <= 100, "a percentage in (0, 100]")}
    for key, (ok, allowed) in ranges.items():
        if not (math.isfinite(t[key]) and ok(t[key])):
            _fail(f"train.{key}", t[key], allowed)
    if list(t.milestones) != sorted(t.milestones) or not all(0 < m < 1 for m in t.milestones):
        _fail("train.milestones", list(t.milestones),
              "increasing fractions of train.iterations between 0 and 1")
    if t.warmup not in ("auto", True, False):
        _fail("train.warmup", t.warmup, "auto, true or false")
    fixed = t.warmup_iterations
    if fixed != "auto" and not (whole(fixed) and 0 < fixed < t.iterations):
        _fail("train.warmup_iterations", fixed, f"auto or a whole number of iterations from 1 to "
              f"train.iterations - 1 = {t.iterations - 1}")
    if fixed != "auto" and not warmup_enabled(cfg):
        _fail("train.warmup_iterations", fixed, "auto while the warm-up is off for this net "
              f"(train.warmup={t.warmup}); add train.warmup=true to warm up for {fixed} iterations")
    if t.precision == "mixed_float16" and not machine.gpus():
        _fail("train.precision", t.precision, "float16 needs a GPU (measured 35x slower than "
              "float32 on a CPU); use float32 or mixed_bfloat16")
    train_size = TRAIN_SIZE - VALIDATION_SIZE if d.validation else TRAIN_SIZE
    evaluated, split = (VALIDATION_SIZE, "validation") if d.validation else (TEST_SIZE, "test")
    if d.train_examples is not None and not t.batch_size <= d.train_examples <= train_size:
        _fail("data.train_examples", d.train_examples, f"null (all) or from "
              f"train.batch_size={t.batch_size} to the {train_size:,} training images")
    if d.test_examples is not None and not 0 < d.test_examples <= evaluated:
        _fail("data.test_examples", d.test_examples,
              f"null (all) or from 1 to the {evaluated:,} images of the {split} split")
