"""`make bench`: how fast this code trains, side by side in one process.

For each depth: (1) a bare compiled training step on in-memory tensors, the ceiling; (2) the real
trainer end to end (tfds data, augmentation, logging, checkpoints) and its ratio to (1); (3) the
input pipeline alone; (4) precision and XLA variants of (1); (5) achieved FLOP/s against the
CPU's peak. Printed as a table and written to results/bench/bench.csv.

    python -m src.bench [--depths 20 56 110] [--steps 15] [data.dir=... other run overrides]
"""
import argparse
import contextlib
import io
import os
import re
import tempfile
import time
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf

import src  # noqa: F401  (quiet TensorFlow start-up)
from src import data as cifar
from src.models import resnet
from src.run import compose
from src.train import hardware, make_optimizer, make_train_step, train, versions, write_text


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


def peak_flops() -> tuple[float, str]:
    """fp32 peak of this CPU: cores x clock x FMA lanes; an assumption, stated with the result."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    mhz = [float(m) for m in re.findall(r"cpu MHz\s*:\s*([\d.]+)", cpuinfo)]
    flags = set(re.search(r"flags\s*:(.*)", cpuinfo).group(1).split()) if cpuinfo else set()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    ghz = (max(mhz) if mhz else 2000.0) / 1000
    cores = os.cpu_count()
    # 2 FMA pipes per core, each FMA = 2 FLOPs on every fp32 lane.
    peak = cores * ghz * 1e9 * 2 * 2 * lanes
    return peak, f"{cores} cores x {ghz:.2f} GHz x 2 FMA pipes x {lanes} fp32 lanes x 2"


def bare_step(depth, precision="float32", jit=False, steps=15, batch_size=128, cfg=None):
    """images/s of the compiled training step alone, on random in-memory tensors."""
    keras.mixed_precision.set_global_policy(precision)
    cfg = cfg or compose(f"depth={depth}")
    model = resnet(depth, "identity")
    optimizer, _ = make_optimizer(cfg)
    step = make_train_step(model, optimizer, jit)
    images = tf.random.normal((batch_size, 32, 32, 3))
    labels = tf.random.uniform((batch_size,), 0, 10, tf.int32)
    for _ in range(3):  # trace, compile, warm the oneDNN primitive cache
        float(step(images, labels)[0])
    start = time.perf_counter()
    for _ in range(steps):
        loss, _ = step(images, labels)
        float(loss)  # the trainer also reads the loss every step
    rate = steps * batch_size / (time.perf_counter() - start)
    keras.mixed_precision.set_global_policy("float32")
    return rate, model


def trainer(depth, overrides, steps):
    """images/s of the real trainer between its logged rows (evaluation excluded, checkpoints in)."""
    every = steps
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        cfg = compose(f"depth={depth}", "budget=smoke", f"train.iterations={4 * every}",
                      f"budget.log_every={every}", f"budget.test_every={4 * every}",
                      "budget.train_examples=null", f"results_dir={tmp}", *overrides)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument("--steps", type=int, default=15, help="timed steps per measurement")
    parser.add_argument("--out", default="results/bench/bench.csv")
    args, overrides = parser.parse_known_args()
    gpu = bool(tf.config.list_physical_devices("GPU"))
    precisions = ["float32", "mixed_bfloat16"] + (["mixed_float16"] if gpu else [])
    peak, peak_how = peak_flops()
    input_rate = pipeline(overrides)
    rows = []
    for depth in args.depths:
        for precision in precisions:
            for jit in (False, True):
                rate, model = bare_step(depth, precision, jit, args.steps)
                rows.append({"depth": depth, "what": "bare step", "precision": precision,
                             "xla": jit, "images_per_second": rate,
                             "flops_fraction_of_peak": rate * training_flops(model) / peak})
                print(f"depth {depth:>4} bare step {precision:>15} xla={jit!s:<5} "
                      f"{rate:7.1f} img/s", flush=True)
        fp32 = rows[-2 * len(precisions)]["images_per_second"]
        for precision in precisions[:2]:
            rate = trainer(depth, [*overrides, f"train.precision={precision}"], args.steps)
            bare = next(r["images_per_second"] for r in rows if r["depth"] == depth
                        and r["what"] == "bare step" and r["precision"] == precision
                        and not r["xla"])
            rows.append({"depth": depth, "what": "trainer", "precision": precision, "xla": False,
                         "images_per_second": rate, "trainer_over_bare": rate / bare,
                         "over_fp32_bare": rate / fp32})
        rows.append({"depth": depth, "what": "input pipeline", "images_per_second": input_rate,
                     "pipeline_over_bare": input_rate / fp32})
    table = pd.DataFrame(rows)
    hw = hardware()
    for key, value in {**hw, **versions(), "peak_flops": peak, "peak_assumed": peak_how}.items():
        table[key] = str(value)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, table.to_csv(index=False))
    shown = [c for c in ["depth", "what", "precision", "xla", "images_per_second",
                         "trainer_over_bare", "pipeline_over_bare", "flops_fraction_of_peak"]
             if c in table]
    print(f"\n{hw['cpu']}, {hw['cpu_count']} cores, GPUs: {hw['gpus'] or 'none'}; "
          f"peak {peak / 1e9:.0f} GFLOP/s assumed ({peak_how})")
    print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
