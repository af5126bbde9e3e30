"""`make reproduce-cifar`: plan, run and account for the paper's CIFAR-10 sweep.

    python -m src.sweep [budget=quick] [seeds=5] [launcher=joblib] [depth=20,56]
                        [shortcut=none,identity] [block=preact] [any other run override]

The networks of each budget are a few grids (GRIDS). `seeds=N` asks for at least N seeds of every
network; `depth=`, `shortcut=` or `block=` replace the budget's grids by the one they name. Prints
the plan (runs, budget, estimated wall time from a measured step rate), runs each grid as a Hydra
multirun (finished runs are skipped, interrupted ones resume), then lists the runs that did not
finish and exits non-zero if there are any.
"""
import os
import signal
import subprocess
import sys
from itertools import product
from pathlib import Path

from hydra.errors import HydraException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

from src.bench import bare_step
from src.run import CONF, compose, run_name
from src.config import ConfigError, check_config
from src.rundir import config_changes, damage, holder, read_summary
from src.train import duration

DEFAULTS = {"budget": "paper", "seeds": "1", "launcher": "basic", "results_dir": "results"}
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
    "smoke": [{"depth": "20,56", **PLAIN_AND_RESNET}],
}
LAUNCHERS = ("basic", "joblib", "submitit_local", "slurm")
EVAL_COST = 1 / 3  # a test image costs about a third of a training image (forward only)


def parse(argv):
    """key=value words: the sweep's own keys, the grid keys, and everything else passed on to each
    run. Returns (options, grids, passed)."""
    options, named, passed = dict(DEFAULTS), {}, []
    for word in argv:
        key, sep, value = word.partition("=")
        if not sep:
            raise SystemExit(f"error: {word!r} is not key=value (see python -m src.sweep --help)")
        if key in DEFAULTS:
            options[key] = value
        elif key in GRID_KEYS:
            named[key] = value
        else:
            passed.append(word)
    if options["launcher"] not in LAUNCHERS:
        raise SystemExit(f"error: launcher={options['launcher']!r} is not allowed: choose one of "
                         f"{', '.join(LAUNCHERS)}")
    budgets = sorted(p.stem for p in (CONF / "budget").glob("*.yaml"))
    if options["budget"] not in budgets:
        raise SystemExit(f"error: budget={options['budget']!r} is not allowed: choose one of "
                         f"{', '.join(budgets)}")
    if not options["seeds"].isdigit() or int(options["seeds"]) < 1:
        raise SystemExit(f"error: seeds={options['seeds']!r} is not allowed: a whole number >= 1")
    grids = GRIDS.get(options["budget"], GRIDS["paper"])
    if named:
        grids = [{"depth": grids[0]["depth"], **PLAIN_AND_RESNET, **named}]
    seeds = int(options["seeds"])
    return options, [{**g, "seeds": max(seeds, g.get("seeds", 1))} for g in grids], passed


def expand(grid: dict):
    """(depth, shortcut, block, seed) of every run of a grid."""
    return product(grid["depth"].split(","), grid["shortcut"].split(","),
                   grid["block"].split(","), range(grid.get("seeds", 1)))


def run_names(budget: str) -> list[str]:
    """The run folders a budget's own sweep plans, in order (none for an unknown budget)."""
    names = {run_name(block, shortcut, depth, seed): None for grid in GRIDS.get(budget, [])
             for depth, shortcut, block, seed in expand(grid)}
    return list(names)


def hydra_message(e: Exception, overrides) -> str:
    """Hydra's or OmegaConf's own words for a bad override, on one line."""
    lines = [line.strip() for part in (e, e.__cause__) if part for line in str(part).splitlines()
             if line.strip() and not line.strip().startswith("See https")]
    if isinstance(e, OverrideParseException):
        lines.insert(0, f"cannot parse the overrides {' '.join(overrides)}")
    return ": ".join(lines[:2])


def launcher(options) -> list[str]:
    return [] if options["launcher"] == "basic" else [f"hydra/launcher={options['launcher']}"]


def planned_runs(options, grids, passed):
    """The resolved config of every planned run, once each (this also validates every value)."""
    runs = {}
    for grid in grids:
        for depth, shortcut, block, seed in expand(grid):
            try:
                cfg = compose(f"budget={options['budget']}", f"depth={depth}",
                              f"shortcut={shortcut}", f"block={block}", f"seed={seed}",
                              f"results_dir={options['results_dir']}", *launcher(options),
                              *passed)
                check_config(cfg)
            except ConfigError as e:
                raise SystemExit(f"error: {e}") from None
            except (HydraException, OmegaConfBaseException) as e:  # a type, key or syntax error
                raise SystemExit(f"error: {hydra_message(e, passed)}") from None
            runs.setdefault(cfg.run_dir, cfg)
    return list(runs.values())


def status(cfg) -> tuple[str, int]:
    """(status, iterations done) of a planned run, from its folder; "running elsewhere" where
    another process holds the folder's lock; "damaged" where its summary or metrics cannot be read;
    "conflict" where the folder holds a run with another config (the run will refuse it)."""
    if damage(cfg.run_dir):  # the run repairs what it can when it starts
        return ("running elsewhere" if holder(cfg.run_dir) else "damaged"), 0
    summary = read_summary(cfg.run_dir)
    if holder(cfg.run_dir):
        return "running elsewhere", summary.get("iterations") or 0
    if not summary:
        return "new", 0
    if config_changes(cfg, cfg.run_dir):
        return "conflict", 0
    return summary.get("status", "unknown"), summary.get("iterations") or 0


def plan(runs) -> None:
    """Print the runs and the estimated wall time on this machine, from measured step rates."""
    rates = {}
    total = 0.0
    print(f"plan: {len(runs)} runs, budget {runs[0].budget.name} "
          f"({runs[0].train.iterations} iterations each)")
    for cfg in runs:
        state, done = status(cfg)
        left = 0 if state in ("finished", "conflict") else cfg.train.iterations - done
        if left and cfg.depth not in rates:
            rates[cfg.depth] = bare_step(cfg.depth, cfg.train.precision, cfg.train.jit_compile,
                                         steps=3, cfg=cfg)[0]
        tests = left // cfg.log.test_every * (cfg.data.test_examples or 10_000)
        seconds = (left * cfg.train.batch_size + tests * EVAL_COST) / rates[cfg.depth] if left else 0
        total += seconds
        print(f"  {Path(cfg.run_dir).name:<24} {state:<11} {done:>6} done, "
              f"~{duration(seconds)} to go")
    print(f"estimated wall time on this machine: ~{duration(total)} run one after another"
          + ("; the paper budget is GPU work (README.md)" if total > 86400 else ""), flush=True)


def main(argv=sys.argv[1:]):
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    options, grids, passed = parse(argv)
    runs = planned_runs(options, grids, passed)
    plan(runs)
    # Ctrl-C or SIGTERM: passed on to the running multirun, whose run checkpoints and stops; the
    # sweep waits for it and starts nothing more. The child stops too if the sweep dies (src.run).
    stop, child = [], None

    def pass_on(signum, _):
        stop.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, pass_on) for s in (signal.SIGTERM, signal.SIGINT)}
    env = {**os.environ, "SRC_SWEEP_PID": str(os.getpid())}
    try:
        for grid in grids:
            if stop:
                break
            seeds = ",".join(str(s) for s in range(grid["seeds"]))
            child = subprocess.Popen([sys.executable, "-m", "src.run", "-m", f"seed={seeds}",
                                      f"budget={options['budget']}", f"depth={grid['depth']}",
                                      f"shortcut={grid['shortcut']}", f"block={grid['block']}",
                                      f"results_dir={options['results_dir']}",
                                      *launcher(options), *passed],
                                     env=env)
            child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stop:
        print(f"sweep stopped by signal {stop[0]}; the running run was checkpointed: run the same "
              "command again to resume", file=sys.stderr)
        return 128 + stop[0]
    states = [(cfg, *status(cfg)) for cfg in runs]  # one read of each folder
    failed = [(cfg, state, done) for cfg, state, done in states if state != "finished"]
    for cfg, state, done in failed:
        print(f"not finished: {cfg.run_dir} ({state} at iteration {done})", file=sys.stderr)
    print(f"sweep: {len(runs) - len(failed)} of {len(runs)} runs finished")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
