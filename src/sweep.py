"""`make reproduce-cifar`: plan, run and account for the paper's CIFAR-10 sweep.

    python -m src.sweep [budget=quick] [seeds=5] [launcher=joblib] [depth=20,56]
                        [shortcut=none,identity] [any other run override, e.g. data.dir=...]

Prints the plan (runs, budget, estimated wall time from a measured step rate), runs it as one
Hydra multirun (finished runs are skipped, interrupted ones resume), then lists the runs that did
not finish and exits non-zero if there are any.
"""
import subprocess
import sys
from itertools import product
from pathlib import Path

from src.bench import bare_step
from src.run import compose
from src.train import ConfigError, check_config, config_changes, duration, read_summary

DEFAULTS = {"budget": "paper", "seeds": "1", "launcher": "basic",
            "depth": None, "shortcut": "none,identity", "results_dir": "results"}
# Figure 6 / Table 6 depths; the short budgets show the degradation problem with 20 vs 56.
DEPTHS = {"paper": "20,32,44,56,110", "quick": "20,56", "smoke": "20,56"}
LAUNCHERS = ("basic", "joblib", "submitit_local", "submitit_slurm")
EVAL_COST = 1 / 3  # a test image costs about a third of a training image (forward only)


def parse(argv):
    """key=value words: the sweep's own keys, and everything else passed on to each run."""
    options, passed = dict(DEFAULTS), []
    for word in argv:
        key, sep, value = word.partition("=")
        if not sep:
            raise SystemExit(f"error: {word!r} is not key=value (see python -m src.sweep --help)")
        if key in DEFAULTS:
            options[key] = value
        else:
            passed.append(word)
    options["depth"] = options["depth"] or DEPTHS.get(options["budget"], DEPTHS["paper"])
    if options["launcher"] not in LAUNCHERS:
        raise SystemExit(f"error: launcher={options['launcher']!r} is not allowed: choose one of "
                         f"{', '.join(LAUNCHERS)}")
    if not options["seeds"].isdigit() or int(options["seeds"]) < 1:
        raise SystemExit(f"error: seeds={options['seeds']!r} is not allowed: a whole number >= 1")
    return options, passed


def planned_runs(options, passed):
    """The resolved config of every planned run (this also validates every value up front)."""
    runs = []
    for depth, shortcut, seed in product(options["depth"].split(","),
                                         options["shortcut"].split(","),
                                         range(int(options["seeds"]))):
        cfg = compose(f"budget={options['budget']}", f"depth={depth}", f"shortcut={shortcut}",
                     f"seed={seed}", f"results_dir={options['results_dir']}", *passed)
        try:
            check_config(cfg)
        except ConfigError as e:
            raise SystemExit(f"error: {e}") from None
        runs.append(cfg)
    return runs


def status(cfg) -> tuple[str, int]:
    """(status, iterations done) of a planned run, from its folder; "conflict" where the folder
    holds a run with another config (the run will refuse to touch it)."""
    summary = read_summary(cfg.run_dir)
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
    options, passed = parse(argv)
    runs = planned_runs(options, passed)
    plan(runs)
    launcher = [] if options["launcher"] == "basic" else [f"hydra/launcher={options['launcher']}"]
    seeds = ",".join(str(s) for s in range(int(options["seeds"])))
    subprocess.run([sys.executable, "-m", "src.run", "-m", f"budget={options['budget']}",
                    f"depth={options['depth']}", f"shortcut={options['shortcut']}",
                    f"seed={seeds}", f"results_dir={options['results_dir']}", *launcher, *passed])
    failed = [(cfg, *status(cfg)) for cfg in runs if status(cfg)[0] != "finished"]
    for cfg, state, done in failed:
        print(f"not finished: {cfg.run_dir} ({state} at iteration {done})", file=sys.stderr)
    print(f"sweep: {len(runs) - len(failed)} of {len(runs)} runs finished")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
