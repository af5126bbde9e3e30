"""`make reproduce-cifar`: plan, run and account for the paper's CIFAR-10 sweep.

    python -m src.sweep [budget=quick] [seeds=5] [jobs=auto|N] [launcher=joblib]
                        [depth=20,56] [shortcut=none,identity] [block=preact] [run overrides]

The networks of each budget are a few grids (`budget.grids` in conf/budget/<name>.yaml). `seeds=N` asks for at least N seeds of every
network; `depth=`, `shortcut=` or `block=` replace the budget's grids by the one they name. Prints
the plan (runs, budget, estimated wall time from measured step rates), trains every run that is
not finished (interrupted ones resume), then lists the runs that did not finish and exits non-zero
if there are any.

On this machine (launcher=basic) the runs are packed: `jobs` runs at once, each a process of its
own on cores/jobs threads. Small CIFAR convolutions do not keep two cores busy, so one run per
core trains more images per second in all than one run on every core. jobs=auto measures both on
the smallest network for about half a minute and takes the faster; on a GPU machine it measures 2, 3
and 4 runs sharing the GPU against one alone and takes the most that still add 10% each and fit
its free memory (a CIFAR run leaves a modern GPU mostly idle).
When nothing is left to start and one run remains with minutes to go, it is resumed on every core.
The other launchers run each grid as a Hydra multirun and place the runs themselves.
"""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from src import STOP_SIGNALS, Stopped, configure_tensorflow, stops_raise

configure_tensorflow()  # before anything that imports TensorFlow

from hydra.errors import HydraException, OverrideParseException  # noqa: E402
from omegaconf.errors import OmegaConfBaseException  # noqa: E402

from src import machine  # noqa: E402
from src.bench import bare_step, gpu_packing, packing_gain  # noqa: E402
from src.config import (ConfigError, check_config, compose, duration,  # noqa: E402
                        smaller_budgets)
from src.budgets import GRID_KEYS, Budget, BudgetError, expand, grid_overrides  # noqa: E402
from src.data import TEST_SIZE  # noqa: E402
from src.networks import Network  # noqa: E402
from src.rundir import config_changes, damage, holder  # noqa: E402
from src.runfiles import read_summary  # noqa: E402

TAIL_SECONDS = 120  # a packed sweep's last run with more left than this is resumed on every core
DEFAULTS = {"budget": "paper", "seeds": "1", "jobs": "auto", "launcher": "basic",
            "results_dir": "results"}
LAUNCHERS = ("basic", "joblib", "submitit_local", "slurm")
EVAL_COST = 1 / 3  # a test image costs about a third of a training image (forward only)


def refuse(message: str):
    """A value the sweep does not take: one line, exit code 2 (make then draws no figures)."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def parse(argv):
    """key=value words: the sweep's own keys, the grid keys, and everything else passed on to each
    run. Returns (options, grids, passed)."""
    options, named, passed = dict(DEFAULTS), {}, []
    for word in argv:
        key, sep, value = word.partition("=")
        if not sep:
            refuse(f"error: {word!r} is not key=value (see python -m src.sweep --help)")
        if key in DEFAULTS:
            options[key] = value
        elif key in GRID_KEYS:
            named[key] = value
        else:
            passed.append(word)
    if options["launcher"] not in LAUNCHERS:
        refuse(f"error: launcher={options['launcher']!r} is not allowed: choose one of "
                         f"{', '.join(LAUNCHERS)}")
    if not options["seeds"].isdigit() or int(options["seeds"]) < 1:
        refuse(f"error: seeds={options['seeds']!r} is not allowed: a whole number >= 1")
    if options["jobs"] != "auto" and not (options["jobs"].isdigit() and
                                          1 <= int(options["jobs"]) <= 64):
        refuse(f"error: jobs={options['jobs']!r} is not allowed: auto or a whole "
                         "number from 1 to 64 (runs at once on this machine)")
    try:
        grids = Budget.load(options["budget"]).grids
    except BudgetError as e:
        refuse(f"error: {e}")
    if named:  # the first grid's depths, plain and ResNet, unless named
        grids = [{"depth": grids[0]["depth"], "shortcut": "none,identity", "block": "original",
                  **named}]
    seeds = int(options["seeds"])
    return options, [{**g, "seeds": max(seeds, g.get("seeds", 1))} for g in grids], passed


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
        for network, seed in expand(grid):
            try:
                cfg = compose(*run_words(network, seed, options, passed), *launcher(options))
                check_config(cfg)
            except ConfigError as e:
                refuse(f"error: {e}")
            except (HydraException, OmegaConfBaseException) as e:  # a type, key or syntax error
                refuse(f"error: {hydra_message(e, passed)}")
            runs.setdefault(cfg.run_dir, cfg)
    return list(runs.values())


def status(run_dir: str, cfg=None) -> tuple[str, int]:
    """(status, iterations done) of a run, from its folder: new, running, interrupted, failed,
    parked, finished; "damaged" where its summary or metrics cannot be read. Given the run's planned
    `cfg` (the plan and the final account, not the progress lines): "running elsewhere" where
    another process holds the folder's lock, "conflict" where the folder holds a run with another
    config (the run will refuse it)."""
    elsewhere = cfg is not None and holder(run_dir)
    if damage(run_dir):  # the run repairs what it can when it starts
        return ("running elsewhere" if elsewhere else "damaged"), 0
    summary = read_summary(run_dir)
    if elsewhere:
        return "running elsewhere", summary.iterations if summary else 0
    if not summary:
        return "new", 0
    if cfg is not None and config_changes(cfg, run_dir):
        return "conflict", 0
    return summary.status, summary.iterations


def packing(options, pending, seconds: float) -> tuple[int, int | None, float]:
    """(runs at once, threads per run, images/s of the sweep over those of one run on every core)
    on this machine: as the user says (the gain then unmeasured, taken as 1), or jobs=auto: one
    run per core if that measured faster than one run on every core (on the smallest net); on a
    GPU, as many runs sharing it as measured faster and fit its memory (bench.gpu_packing); for a
    sweep of `seconds` long enough that the half-minute measurement can pay for itself."""
    cores = os.cpu_count() or 1
    if options["launcher"] != "basic":
        return 1, None, 1.0  # the launcher places the runs
    if options["jobs"] != "auto":
        jobs = int(options["jobs"])
        return jobs, (max(1, cores // jobs) if jobs > 1 else None), 1.0
    if len(pending) < 2 or seconds < 300:
        return 1, None, 1.0
    depth = min(cfg.depth for cfg in pending)
    if machine.gpus():  # several runs share the GPU where that measured faster
        jobs, gain, why = gpu_packing(depth, max(cfg.depth for cfg in pending))
        print(f"packing: {jobs} run{'s' if jobs > 1 else ''} at once on the GPU, "
              f"{gain:.2f}x the images/s of one alone (ResNet-{depth}, measured now; next: "
              f"{why})", flush=True)
        return jobs, None, gain
    if cores < 2:
        return 1, None, 1.0
    gain = packing_gain(depth, cores)
    print(f"packing: {cores} runs at once on 1 thread each train {gain:.2f}x the images/s of one "
          f"run on {cores} threads (ResNet-{depth}, measured now): "
          + (f"{cores} runs at a time" if gain > 1 else "one run at a time"), flush=True)
    return (cores, 1, gain) if gain > 1 else (1, None, 1.0)


def plan(runs) -> tuple[dict[str, float], list]:
    """Print the runs and the estimated wall time on this machine, from measured step rates;
    return each run's estimated seconds to go, one run at a time, and the runs not finished."""
    rates, estimates, pending = {}, {}, []
    print(f"plan: {len(runs)} runs, budget {runs[0].budget.name} "
          f"({runs[0].train.iterations} iterations each)", flush=True)
    for cfg in runs:
        state, done = status(cfg.run_dir, cfg)
        if state != "finished":  # a conflict is started too: the run says why it refuses
            pending.append(cfg)
        left = 0 if state in ("finished", "conflict") else cfg.train.iterations - done
        size = (cfg.block, cfg.depth)  # plain and option A cost the same: one timing for both
        if left and size not in rates:
            rates[size] = bare_step(cfg.depth, cfg.train.precision, cfg.train.jit_compile,
                                    steps=3, cfg=cfg)[0]
        tests = left // cfg.log.test_every * (cfg.data.test_examples or TEST_SIZE)
        seconds = (left * cfg.train.batch_size + tests * EVAL_COST) / rates[size] if left else 0
        estimates[cfg.run_dir] = seconds
        print(f"  {Path(cfg.run_dir).name:<24} {state:<11} {done:>6} done, "
              f"~{duration(seconds)} to go")
    total = sum(estimates.values())
    print(f"estimated wall time on this machine: ~{duration(total)} run one after another"
          + ("; the paper budget is GPU work (README.md)" if total > 86400 else ""), flush=True)
    if total > 3600 and not machine.gpus():
        iterations = runs[0].train.iterations
        print(f"note: ~{duration(total)} on this CPU (no GPU)"
              + smaller_budgets(total / iterations, iterations).replace("a whole run",
                                                                        "the same runs"),
              flush=True)
    return estimates, pending


def step_times(grids, estimates: dict, gain: float) -> list[str]:
    """The wall time of each grid of the plan (a budget's steps, each whole before the next), as
    its runs will train (packed where `gain` > 1), and the time until it is whole."""
    if len(grids) < 2:
        return []
    left = {Path(run_dir).name: seconds / gain for run_dir, seconds in estimates.items()}
    lines, seen, total = [], set(), 0.0
    for k, grid in enumerate(grids, 1):
        new = [network.folder(seed) for network, seed in expand(grid)
               if network.folder(seed) not in seen]
        seen |= set(new)
        seconds = sum(left.get(name, 0.0) for name in new)
        total += seconds
        named = " ".join(f"{key}={grid[key]}" for key in GRID_KEYS)
        todo = sum(left.get(name, 0.0) > 0 for name in new)
        lines.append(f"  step {k} ({named}, {grid.get('seeds', 1)} seed(s)): {todo} of "
                     f"{len(new)} new runs to train, "
                     f"~{duration(seconds)} {'packed' if gain > 1 else 'one at a time'}, whole "
                     f"after ~{duration(total)}")
    return lines


def run_words(network, seed, options, passed) -> list[str]:
    """The command line of one planned run."""
    return [f"budget={options['budget']}", *network.overrides(seed),
            f"results_dir={options['results_dir']}", *passed]


def prefixed(stream, name: str) -> None:
    """Copy a packed run's output line by line, each line led by the run's name."""
    for line in stream:
        print(f"{name:<22}| {line}", end="", flush=True)


class Sweep:
    """The runs of a sweep as processes of this machine, `jobs` at a time on `threads` each (None:
    every core); a signal to the sweep is passed on to every running one (each checkpoints and
    stops) and starts nothing more."""

    def __init__(self, jobs: int, threads: int | None, estimates: dict, iterations: dict,
                 speedup: float, runs: list):
        self.jobs, self.threads, self.estimates, self.iterations, self.speedup = (
            jobs, threads, estimates, iterations, speedup)
        self.runs = runs  # the planned runs' configs, for the account at the end
        self.running, self.stop = {}, []
        self.env = {**os.environ, "SRC_SWEEP_PID": str(os.getpid())}
        if jobs > 1:  # runs that share a GPU take the memory each needs, not all of it
            self.env[machine.GROWTH] = "true"

    def pass_on(self, signum, _):
        self.stop.append(signum)
        for child in self.running.values():
            if child.poll() is None:
                child.send_signal(signum)

    def seconds_left(self, run_dir: str) -> float:
        """A run's estimate for what it still has to do, one run at a time on every core."""
        state, done = status(run_dir)
        return 0.0 if state == "finished" else \
            self.estimates.get(run_dir, 0.0) * (1 - done / max(self.iterations[run_dir], 1))

    def left(self) -> str:
        """The remaining time of the whole sweep, over the runs that train at once."""
        return duration(sum(map(self.seconds_left, self.estimates)) / self.speedup)

    def start(self, words: list[str], name: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "src.run", *words,
                   *([f"threads={self.threads}"] if self.threads else [])]
        if self.jobs == 1:  # the run's own progress, live on a terminal
            return subprocess.Popen(command, env=self.env)
        child = subprocess.Popen(command, env=self.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=prefixed, args=(child.stdout, name), daemon=True).start()
        return child

    def reap(self) -> None:
        for name, child in list(self.running.items()):
            if child.poll() is not None:
                del self.running[name]
                print(f"sweep: {name} ended (exit {child.returncode}); ~{self.left()} of the "
                      "sweep left", flush=True)

    def alone(self, name: str, words: list[str]) -> None:
        """The last run of a packed sweep, on its share of the cores while the others idle: stop it
        (it checkpoints) and resume it on every core, if it has long enough left to pay for that."""
        self.threads = None  # decided once: nothing is left to start, a restart is on every core
        run_dir = next((d for d in self.estimates if Path(d).name == name), None)
        if run_dir is None or self.seconds_left(run_dir) < TAIL_SECONDS:
            return
        child = self.running[name]
        child.send_signal(signal.SIGTERM)
        child.wait()
        state, done = status(run_dir)
        if self.stop or state == "finished":  # stopped meanwhile (checkpointed), or just done
            return
        print(f"sweep: {name} is the last run: resumed on every core ({done} iterations done)",
              flush=True)
        self.running[name] = self.start(words, name)
        if self.stop:  # a signal between the check and the start
            self.running[name].send_signal(self.stop[0])

    def run(self, todo: list[tuple[str, list[str]]]) -> None:
        words_of = dict(todo)
        for k, (name, words) in enumerate(todo, 1):
            while len(self.running) >= self.jobs and not self.stop:
                time.sleep(0.2)
                self.reap()
            if self.stop:
                break
            print(f"sweep: run {k} of {len(todo)}: {name}; ~{self.left()} of the sweep left",
                  flush=True)
            self.running[name] = self.start(words, name)
        while self.running:
            time.sleep(0.2)
            self.reap()
            if len(self.running) == 1 and self.threads and not self.stop:
                name = next(iter(self.running))
                self.alone(name, words_of[name])


def main(argv=sys.argv[1:]):
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    # Ctrl-C or SIGTERM before the first run: stop at once (the packing measurement's processes
    # with it). Once runs have started: passed on to the running runs, which checkpoint and stop;
    # the sweep waits for them and starts nothing more. The runs stop too if the sweep dies.
    try:
        with stops_raise():
            sweep = run_sweep(argv)
    except Stopped as stop:
        print(f"sweep stopped by signal {stop.args[0]} before its first run: nothing was trained; "
              "run the same command again", file=sys.stderr)
        return 128 + stop.args[0]
    if sweep.stop:
        print(f"sweep stopped by signal {sweep.stop[0]}; the running runs were checkpointed: run "
              "the same command again to resume", file=sys.stderr)
        return 128 + sweep.stop[0]
    states = [(cfg, *status(cfg.run_dir, cfg)) for cfg in sweep.runs]  # one read of each folder
    failed = [(cfg, state, done) for cfg, state, done in states if state != "finished"]
    for cfg, state, done in failed:
        print(f"not finished: {cfg.run_dir} ({state} at iteration {done})", file=sys.stderr)
    print(f"sweep: {len(sweep.runs) - len(failed)} of {len(sweep.runs)} runs finished")
    return 1 if failed else 0


def run_sweep(argv) -> "Sweep":
    """Plan, measure and run the sweep (under stops_raise: a signal before the first run raises
    Stopped; once runs start, it is passed on to them); the Sweep as it ended."""
    options, grids, passed = parse(argv)
    runs = planned_runs(options, grids, passed)
    estimates, pending = plan(runs)  # one read of each folder before the runs
    jobs, threads, gain = packing(options, pending, sum(estimates.values()))
    if gain != 1:
        print(f"estimated wall time packed: ~{duration(sum(estimates.values()) / gain)}",
              flush=True)
    for line in step_times(grids, estimates, gain):
        print(line, flush=True)
    sweep = Sweep(jobs, threads, estimates, {cfg.run_dir: cfg.train.iterations for cfg in runs},
                  gain, runs)
    for s in STOP_SIGNALS:
        signal.signal(s, sweep.pass_on)
    if options["launcher"] == "basic":
        sweep.run([(Path(cfg.run_dir).name, run_words(Network.of(cfg), cfg.seed, options, passed))
                   for cfg in pending])
    else:
        sweep.run([(f"grid {k}", ["-m", f"budget={options['budget']}", *grid_overrides(grid),
                                  f"results_dir={options['results_dir']}", *launcher(options),
                                  *passed])
                   for k, grid in enumerate(grids, 1)])
    return sweep


if __name__ == "__main__":
    sys.exit(main())
