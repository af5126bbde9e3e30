"""`make bench`: how fast this code trains, side by side in one process.

For each depth: (1) a bare compiled training step on in-memory tensors, the ceiling; (2) the real
trainer end to end (tfds data, augmentation, logging, checkpoints) and its ratio to (1); both
with the fused and with Keras' batch norm, in interleaved rounds (the median is kept, and the
spread between rounds shown); (3) the input pipeline alone (the uint8 draws: the augmentation
is in the step, in (1) and (2)); (4) precision and XLA variants of
(1) and (2); (5) achieved FLOP/s against the CPU's peak; (6) the sweep's packing: the bare step
in one process on every core against one process per core, each on one thread, all at once;
(7) where PyTorch is installed, the same step in PyTorch (src.torch_reference), the reference the
trainer is held against. Printed as a table, each line with the CPU's vector extensions and
oneDNN, and written to results/bench/bench.csv. `--profile DEPTH`: the time per kind of op of one
step, TensorFlow's profiler beside PyTorch's.

    python -m src.bench [--depths 20 56 110] [--steps 15] [--rounds 2] [data.dir=... overrides]
    python -m src.bench --profile 56
"""
import argparse
import contextlib
import functools
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from src import configure_tensorflow

configure_tensorflow()  # before anything that imports TensorFlow

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

from src import data as cifar  # noqa: E402
from src.budgets import Budget  # noqa: E402
from src.models import gradient_norms, resnet  # noqa: E402
from src.networks import Network  # noqa: E402
from src.config import compose  # noqa: E402
from src import machine  # noqa: E402
from src.runfiles import machine_phrase, provenance, write_text  # noqa: E402
from src.steps import Interval, build_model, make_optimizer, make_train_step  # noqa: E402
from src.process import use_threads  # noqa: E402
from src.train import train  # noqa: E402


def training_flops(model) -> float:
    """FLOPs of one training image: 2 per multiply-add, forward + backward ~ 3x forward."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            h, w, c_out = layer.output.shape[1:]
            k_h, k_w, c_in, _ = layer.kernel.shape
            macs += h * w * c_out * k_h * k_w * c_in
        elif isinstance(layer, keras.layers.Dense):
            macs += layer.kernel.shape[0] * layer.kernel.shape[1]
    return 3 * 2 * macs


@functools.cache
def network_flops(network: Network) -> float:
    """training_flops of a network, built once per process (the budgets share most of theirs)."""
    flops = training_flops(resnet(network.depth, network.shortcut, block=network.block))
    keras.backend.clear_session()
    return flops


def this_machine() -> str:
    """The CPU, its vector extensions and oneDNN, GPUs: the line every figure here is read with."""
    return machine_phrase(provenance({}, 0).hardware)


def peak_flops() -> tuple[float, str]:
    """fp32 peak of this CPU: cores x clock x FMA lanes; an assumption, stated with the result."""
    cpuinfo = machine.CPUINFO.read_text() if machine.CPUINFO.exists() else ""
    mhz = [float(m) for m in re.findall(r"cpu MHz\s*:\s*([\d.]+)", cpuinfo)]
    flags = machine.cpu_flags()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    ghz = (max(mhz) if mhz else 2000.0) / 1000
    cores = os.cpu_count()
    # 2 FMA pipes per core, each FMA = 2 FLOPs on every fp32 lane.
    peak = cores * ghz * 1e9 * 2 * 2 * lanes
    return peak, f"{cores} cores x {ghz:.2f} GHz x 2 FMA pipes x {lanes} fp32 lanes x 2"


def bare_training(depth, cfg=None, batch_norm="fused", jit=False):
    """(the compiled training step of a ResNet of `depth` with `batch_norm` (or of the network
    `cfg` names, its batch norm, BN groups and batch size included) on one fixed random draw,
    augmented in the step, as a function that returns when the device is done; the model; the
    (draw, mean, labels) it trains on): what every timing here times."""
    cfg = cfg or compose(f"depth={depth}", f"batch_norm={batch_norm}")
    model = build_model(cfg)
    optimizer, schedule = make_optimizer(cfg)
    interval = Interval()
    mean = tf.fill((32, 32, 3), 0.47)  # about CIFAR-10's
    step = make_train_step(model, optimizer, schedule, interval, mean, jit_compile=jit)
    draw = cifar.random_draw(cfg.train.batch_size)
    labels = tf.random.uniform((cfg.train.batch_size,), 0, 10, tf.int32)

    def run_step(wait=True):
        step(draw, labels)
        if wait:
            interval.read()  # a device-to-host copy: the host waits for the device
    return run_step, model, (draw, mean, labels)


def bare_step(depth, precision="float32", jit=False, steps=15, cfg=None, batch_norm="fused"):
    """images/s of the compiled training step alone, on random in-memory tensors."""
    keras.mixed_precision.set_global_policy(precision)
    step, model, (_, _, labels) = bare_training(depth, cfg, batch_norm, jit)
    for _ in range(3):  # trace, compile, warm the oneDNN primitive cache
        step()
    start = time.perf_counter()
    for _ in range(steps - 1):
        step(wait=False)
    step()  # the last one waits for the device, as the trainer does once per row
    rate = steps * len(labels) / (time.perf_counter() - start)
    keras.mixed_precision.set_global_policy("float32")
    return rate, model


def gradient_cost(depth, repeats=5) -> float:
    """The time of one measurement of the backward signal (gradients.csv, at every row) over the
    time of one training step, same network, same batch of 128."""
    step, model, (draw, mean, labels) = bare_training(depth)
    images = cifar.augment(draw, mean)
    measure = gradient_norms(model)
    seconds = []
    for run in (step, lambda: measure(images, labels, 0)):
        run(), run()  # trace and warm up
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        seconds.append(time.perf_counter() - start)
    return seconds[1] / seconds[0]


def timed_rate(depth, seconds, start_at) -> tuple[float, int]:
    """(images/s of the bare step (batch 128) over `seconds`, from the wall-clock time `start_at`
    on, so that processes started together measure the same moment; the peak GPU memory it took,
    in bytes, 0 without a GPU)."""
    step, _, _ = bare_training(depth)
    while True:  # trace and warm up until the start
        step()
        if time.time() >= start_at:
            break
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    rate = steps * 128 / (time.perf_counter() - start)
    real_gpu = tf.config.list_physical_devices("GPU")
    return rate, tf.config.experimental.get_memory_info("GPU:0")["peak"] if real_gpu else 0


def packed_rates(depth: int, jobs: int, threads: int | None, seconds=6.0,
                 memory: list | None = None) -> list[float]:
    """images/s of each of `jobs` processes training the bare step at once, `threads` threads
    each (None: TensorFlow's default, every core), measured over the same `seconds`; each one's
    peak GPU memory appended to `memory` where given. On a GPU they share it, each taking the
    memory it needs (TF_FORCE_GPU_ALLOW_GROWTH), as packed runs do."""
    start_at = time.time() + 12  # time to import TensorFlow and build the network
    workers, rates = [], []
    env = {**os.environ, machine.GROWTH: "true"}
    try:
        for _ in range(jobs):
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "src.bench", "--rate-of", str(depth), "--seconds",
                 str(seconds), "--start-at", str(start_at),
                 *(["--threads", str(threads)] if threads else [])],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env))
        for worker in workers:
            out, _ = worker.communicate(timeout=300)
            if worker.returncode:
                raise RuntimeError(f"the packing measurement failed (exit {worker.returncode})")
            rate, peak = out.split()[-2:]
            rates.append(float(rate))
            if memory is not None:
                memory.append(int(peak))
    finally:  # a signal or a failure: no worker left behind
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return rates


def packing_gain(depth: int, jobs: int) -> float:
    """Images/s of `jobs` one-thread processes at once over one process on every core."""
    return sum(packed_rates(depth, jobs, 1)) / packed_rates(depth, 1, None)[0]


GPU_PACKING = (2, 3, 4)  # runs per GPU tried, in order
GPU_PACKING_STEP = 1.1  # each more run on the GPU must add 10% to the images/s of them all
GPU_MEMORY_MARGIN = 0.8  # of the free memory, for the runs' measured peaks
GPU_CONTEXT_BYTES = 2**29  # a process's CUDA context, which TensorFlow's peak leaves out


def gpu_packing(depth: int, deepest: int | None = None) -> tuple[int, float, str]:
    """(runs at once on the GPU, their images/s over one run alone, why no more): more runs
    while each adds GPU_PACKING_STEP and the free memory holds them. Rates of the `depth` net;
    memory of one run of the `deepest` net, from the `depth` net's measured peak scaled by depth
    (activations grow with it) and a CUDA context."""
    peaks = []
    alone = packed_rates(depth, 1, None, memory=peaks)[0]
    free = machine.gpu_free_bytes()
    need = peaks[0] * (deepest or depth) / depth + GPU_CONTEXT_BYTES
    fits = len(GPU_PACKING) + 1 if not free or not peaks[0] else \
        int(GPU_MEMORY_MARGIN * free // need)
    jobs, gain, why = 1, 1.0, f"{max(GPU_PACKING)} runs is the most tried"
    for k in GPU_PACKING:
        if k > fits:
            why = f"{k} runs would not fit in its free memory ({need / 2**20:.0f} MiB each)"
            break
        together = sum(packed_rates(depth, k, None)) / alone
        if together < gain * GPU_PACKING_STEP:
            why = f"{k} runs gave {together:.2f}x, under {GPU_PACKING_STEP:g}x the last"
            break
        jobs, gain = k, together
    return jobs, gain, why


# Each op of the profiled step by what it does, the first pattern that matches its type wins.
OP_KINDS = [("convolution backward, input", r"Conv2DBackpropInput"),
            ("convolution backward, filter", r"Conv2DBackpropFilter"),
            ("convolution forward", r"Conv2D"),
            ("batch norm backward", r"FusedBatchNormGrad"),
            ("batch norm forward", r"FusedBatchNorm"),
            ("ReLU forward and backward", r"Relu"),
            ("shortcut and gradient sums (slice, pad, add)", r"Slice|Pad|AddV2|AddN"),
            ("optimizer, loss and the rest", r".")]
WRAPPERS = ("Process", "StartRegion", "StopRegion", "Record")  # the executor's, not ops


def op_profile(depth: int, steps: int = 5) -> pd.DataFrame:
    """TensorFlow's profiler on `steps` bare training steps: the time of each kind of op
    (OP_KINDS) per step, summed over the threads that ran them, and its share of all op time."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    step, _, _ = bare_training(depth)
    for _ in range(3):
        step()
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            step()
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(next(Path(logdir).rglob("*.xplane.pb")).read_bytes())
    host = next(plane for plane in space.planes if plane.name == "/host:CPU")
    seconds = {}
    for line in host.lines:
        if not line.name.startswith("tf_Compute"):
            continue
        for event in line.events:
            name = host.event_metadata[event.metadata_id].name
            op = name.rsplit(":", 1)[-1] if ":" in name else name.rsplit("::", 1)[-1]
            if op not in WRAPPERS:
                seconds[op] = seconds.get(op, 0.0) + event.duration_ps / 1e12 / steps
    ops = pd.DataFrame({"op": list(seconds), "ms_per_step": [1e3 * v for v in seconds.values()]})
    ops["kind"] = [next(kind for kind, pattern in OP_KINDS if re.search(pattern, op))
                   for op in ops.op]
    table = ops.groupby("kind", sort=False).agg(ms_per_step=("ms_per_step", "sum"),
                                               ops=("op", lambda v: " ".join(sorted(v)[:4])))
    table = table.reindex([k for k, _ in OP_KINDS]).dropna(subset=["ms_per_step"])
    table["share"] = table.ms_per_step / table.ms_per_step.sum()
    return table.reset_index()


def has_pytorch() -> bool:
    """Whether PyTorch, the benchmark's optional reference, is installed (without importing it)."""
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def pytorch_rate(depth: int, steps: int) -> float | None:
    """images/s of the same step in PyTorch (src.torch_reference, its own process, the same
    threads), or None where PyTorch is not installed."""
    if not has_pytorch():
        return None
    out = subprocess.run([sys.executable, "-m", "src.torch_reference", str(depth), "--steps",
                          str(steps)], capture_output=True, text=True, timeout=600)
    return float(out.stdout.split()[-1]) if out.returncode == 0 else None


def trainer(depth, overrides, steps):
    """images/s of the real trainer between its logged rows (evaluation excluded, checkpoints in),
    over rows of 2 x `steps` iterations: shorter ones put more noise than signal into the ratio
    to the bare step on a shared machine."""
    every = 2 * steps
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        cfg = compose(f"depth={depth}", "budget=smoke", f"train.iterations={4 * every}",
                      f"log.every={every}", f"log.test_every={4 * every}",
                      "data.train_examples=null", f"results_dir={tmp}", *overrides)
        train(cfg)
        rows = pd.read_csv(Path(cfg.run_dir) / "metrics.csv")
    return rows.images_per_second.iloc[1:].mean()  # the first interval includes tracing


def pipeline(overrides, batches=300):
    cfg = compose(*overrides)
    data = cifar.load(cfg.data.dir, cfg.data.download)
    stream = iter(cifar.train_batches(data, 128, 0))
    next(stream)
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches * 128 / (time.perf_counter() - start)


STEPS_PER_CALL = 1  # the trainer's default is 10: this row times one step per call against it
CALLS = f"trainer, {STEPS_PER_CALL} step per call"


def precisions_to_time(gpu: bool, extensions: list[str]) -> list[str]:
    """The precisions make bench times: float32; bfloat16 on a GPU and on CPUs with bfloat16
    arithmetic (AVX-512 BF16, AMX; elsewhere TensorFlow emulates it: 24 images/s against
    float32's 300 at ResNet-20 on a 2-core AVX2 EPYC, eleven minutes per trainer row); float16
    on a GPU. `extensions`: machine.vector_extensions()'s names."""
    bfloat16_units = {machine.EXTENSIONS["avx512_bf16"], machine.EXTENSIONS["amx_tile"]}
    native_bfloat16 = gpu or bool(bfloat16_units & set(extensions))
    return (["float32"] + (["mixed_bfloat16"] if native_bfloat16 else [])
            + (["mixed_float16"] if gpu else []))


def measure_all(args, overrides) -> list[dict]:
    """Every measurement of the table, depth by depth, printed as it is taken."""
    gpu = bool(machine.gpus())
    precisions = precisions_to_time(gpu, machine.vector_extensions())
    peak, _ = peak_flops()
    input_rate = pipeline(overrides)
    rows = []

    def measure(depth, what, precision="float32", batch_norm="fused", xla=False):
        if what == "PyTorch step":
            rate, flops = pytorch_rate(depth, args.steps), float("nan")
            if rate is None:
                return
        elif what == "bare step":
            rate, model = bare_step(depth, precision, xla, args.steps, batch_norm=batch_norm)
            flops = rate * training_flops(model) / peak
        else:
            per_call = [f"train.steps_per_call={STEPS_PER_CALL}"] if what == CALLS else []
            rate = trainer(depth, [*overrides, f"train.precision={precision}",
                                   f"batch_norm={batch_norm}", *per_call], args.steps)
            flops = float("nan")
        rows.append({"depth": depth, "what": what, "precision": precision,
                     "batch_norm": batch_norm, "xla": xla, "images_per_second": rate,
                     "flops_fraction_of_peak": flops})
        print(f"depth {depth:>4} {what:<9} {precision:>15} {batch_norm:>5} BN xla={xla!s:<5} "
              f"{rate:7.1f} img/s", flush=True)

    for depth in args.depths:
        # The comparison the defaults rest on, in interleaved rounds (the order flipped every
        # round) so that a shared machine's drift falls on both sides; the median is kept.
        for round_ in range(args.rounds):
            for batch_norm in ("fused", "keras")[::1 if round_ % 2 == 0 else -1]:
                measure(depth, "bare step", batch_norm=batch_norm)
                measure(depth, "trainer", batch_norm=batch_norm)
            measure(depth, CALLS)  # train.steps_per_call: the same training, fewer dispatches
            measure(depth, "PyTorch step")  # the reference, where PyTorch is installed
        for precision in precisions[1:]:
            measure(depth, "bare step", precision)
            measure(depth, "trainer", precision)
        measure(depth, "bare step", xla=True)
        rows.append({"depth": depth, "what": "input pipeline", "images_per_second": input_rate})
        cost = gradient_cost(depth)
        rows.append({"depth": depth, "what": "gradient measurement", "steps": cost})
        print(f"depth {depth:>4} backward-signal measurement: {cost:.2f} steps' time per row, "
              f"{100 * cost / 50:.1f}% of a quick-budget run (a row every 50 iterations)",
              flush=True)
        if os.cpu_count() > 1 and not gpu:  # the sweep's packing, measured as the sweep does
            jobs = os.cpu_count()
            for what, rates in [("1 process", packed_rates(depth, 1, None)),
                                (f"{jobs} packed", packed_rates(depth, jobs, 1))]:
                rows.append({"depth": depth, "what": what, "images_per_second": sum(rates)})
                print(f"depth {depth:>4} {what:<9} {sum(rates):7.1f} img/s in all "
                      f"({' + '.join(f'{r:.0f}' for r in rates)})", flush=True)
    return rows


def tabulate(rows: list[dict]) -> pd.DataFrame:
    """The median of each measurement, its spread, and the ratios within this one run: to the
    bare step of the same variant, to the float32 fused bare step, fused over Keras BN."""
    key = ["depth", "what", "precision", "batch_norm", "xla"]
    table = pd.DataFrame(rows).groupby(key, sort=False, dropna=False).agg(
        images_per_second=("images_per_second", "median"),
        measured=("images_per_second", "size"),
        spread=("images_per_second", lambda v: (v.max() - v.min()) / v.median()),
        flops_fraction_of_peak=("flops_fraction_of_peak", "median"),
        steps=("steps", "median")).reset_index()
    key = ["depth", "precision", "batch_norm", "xla"]
    bare = table[table.what == "bare step"].set_index(key).images_per_second
    reference = table[(table.what == "bare step") & (table.precision == "float32")
                      & (table.batch_norm == "fused") & ~table.xla.astype(bool)]
    reference = reference.set_index("depth").images_per_second
    table["trainer_over_bare"] = [r.images_per_second / bare.get(tuple(r[k] for k in key), np.nan)
                                  if r.what == "trainer" else np.nan for _, r in table.iterrows()]
    table["over_fp32_fused_bare"] = table.images_per_second / table.depth.map(reference)
    pytorch = table[table.what == "PyTorch step"].set_index("depth").images_per_second
    table["over_pytorch"] = table.images_per_second / table.depth.map(pytorch)
    trainers = table[(table.what == "trainer") & (table.precision == "float32")]
    by_bn = trainers.set_index(["depth", "batch_norm"]).images_per_second
    table["fused_over_keras_trainer"] = table.depth.map(
        lambda d: by_bn.get((d, "fused"), np.nan) / by_bn.get((d, "keras"), np.nan))
    return table


GPU_TFLOPS = (2, 10)  # sustained TFLOP/s assumed for small CIFAR convolutions on one GPU


def budget_cost(name: str, seeds: int = 1) -> pd.DataFrame:
    """A budget's training compute, counted, not timed: training FLOPs per image
    (training_flops) x its iterations x 128 images, per network of its sweep
    (conf/budget/<name>.yaml, the pre-activation nets included) x its runs (at least `seeds`, as
    the sweep's seeds=), and ResNet-1202 (the paper's Figure 6, not in any sweep) once; the test
    evaluations (a third of a training image per test image, ~3% of a run) left out. The one
    computation behind every GPU number in docs/speed.md and the README."""
    budget = Budget.load(name)
    cfg = compose(f"budget={name}")
    images = cfg.train.iterations * cfg.train.batch_size
    runs = pd.Series([network for network, seed in budget.runs()]).value_counts(sort=False)
    rows = []
    for network, n in [*((net, max(k, seeds)) for net, k in runs.items()),
                       (Network("original", "identity", 1202), 1)]:
        flops = network_flops(network)
        rows.append({"network": network.label, "in the sweep": network in runs.index,
                     "GFLOP per image": flops / 1e9, "PFLOP per run": flops * images / 1e15,
                     "runs": n, "PFLOP": flops * images * n / 1e15})
    table = pd.DataFrame(rows)
    for tflops in GPU_TFLOPS:
        table[f"GPU-hours at {tflops} TFLOP/s"] = table.PFLOP * 1e15 / (tflops * 1e12) / 3600
    return table


def in_the_sweep(table: pd.DataFrame) -> pd.Series:
    """A budget_cost table summed over the networks of the budget's sweep (ResNet-1202 out)."""
    return table[table["in the sweep"]].sum(numeric_only=True)


def print_cost(name: str, seeds: int) -> None:
    table = budget_cost(name, seeds)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    sweep = in_the_sweep(table)
    hours = "-".join(f"{sweep[f'GPU-hours at {t} TFLOP/s']:.3g}" for t in sorted(GPU_TFLOPS)[::-1])
    print(f"budget {name}: its sweep ({sweep.runs:.0f} runs of {table['in the sweep'].sum()} "
          f"networks) {sweep.PFLOP:.3g} PFLOP, {hours} GPU-hours at {max(GPU_TFLOPS)} to "
          f"{min(GPU_TFLOPS)} TFLOP/s sustained (an assumption, not a measurement)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost", metavar="BUDGET",
                        help="a budget's FLOPs and GPU-hours, counted (no timing)")
    parser.add_argument("--seeds", type=int, default=1, help="at least this many seeds per "
                        "network for --cost, as the sweep's seeds=")
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument("--steps", type=int, default=15, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved rounds of the float32 fused vs Keras batch-norm runs")
    parser.add_argument("--out", default="results/bench/bench.csv")
    parser.add_argument("--profile", type=int, metavar="DEPTH",
                        help="TensorFlow's (and PyTorch's, where installed) time per op of one "
                        "training step of a ResNet of DEPTH layers")
    parser.add_argument("--rate-of", type=int, help=argparse.SUPPRESS)  # a packing worker's depth
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=6.0, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args()
    if args.cost:
        print_cost(args.cost, args.seeds)
        return
    if args.profile:
        print(f"{this_machine()}\nTensorFlow, ResNet-{args.profile}, the bare step, per op:")
        print(op_profile(args.profile).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        if has_pytorch():
            print("PyTorch, the same step (src.torch_reference), per op:", flush=True)
            subprocess.run([sys.executable, "-m", "src.torch_reference", str(args.profile),
                            "--profile", "--steps", "5"])
        return
    if args.rate_of:  # one worker of packed_rates
        use_threads(args.threads)
        print(*timed_rate(args.rate_of, args.seconds, args.start_at))
        return
    tf.get_logger().setLevel("ERROR")  # each trainer run traces its own functions anew
    table = tabulate(measure_all(args, overrides))
    peak, peak_how = peak_flops()
    this = provenance({}, 0)
    hw = this.hardware
    for k, value in {**hw, **this.versions, "peak_flops": peak,
                     "peak_assumed": peak_how}.items():
        table[k] = str(value)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, table.to_csv(index=False))
    shown = ["depth", "what", "precision", "batch_norm", "xla", "images_per_second", "measured",
             "spread", "trainer_over_bare", "over_fp32_fused_bare", "over_pytorch",
             "flops_fraction_of_peak", "steps"]
    print(f"\n{this_machine()}; peak {peak / 1e9:.0f} GFLOP/s assumed ({peak_how})")
    print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.3g}", na_rep=""))
    for depth, ratio in table.groupby("depth").fused_over_keras_trainer.first().items():
        print(f"ResNet-{depth}: trainer with fused batch norm {ratio:.2f}x the trainer with "
              "Keras' batch norm")
    by_what = table.set_index(["depth", "what"]).images_per_second
    fp32_fused = table[(table.precision == "float32") & (table.batch_norm == "fused")
                       & ~table.xla.astype(bool)].set_index(["depth", "what"]).over_pytorch
    for depth in args.depths:
        if (depth, "trainer") in fp32_fused.index and not np.isnan(fp32_fused[depth, "trainer"]):
            print(f"ResNet-{depth}: the trainer {fp32_fused[depth, 'trainer']:.2f}x, the bare step "
                  f"{fp32_fused[depth, 'bare step']:.2f}x the images/s of PyTorch's channels-last "
                  "step (src.torch_reference), float32, same cores")
    jobs = os.cpu_count()
    for depth in args.depths:
        if (depth, "1 process") in by_what.index:
            print(f"ResNet-{depth}: {jobs} packed one-thread processes "
                  f"{by_what[depth, f'{jobs} packed'] / by_what[depth, '1 process']:.2f}x the "
                  f"images/s of one process on all {jobs} cores (the sweep's jobs=auto)")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
