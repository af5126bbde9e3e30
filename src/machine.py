"""This machine as a run records it: its CPU's vector extensions, and oneDNN, the kernel library
that TensorFlow's CPU convolutions run in where it is on. A leaf module (no TensorFlow import).

TensorFlow 2.21 turns oneDNN on by default only on x86 CPUs with AVX-512 VNNI or BF16, or AMX.
On an AVX2 CPU (most laptops and desktops, and some of this project's machines) it leaves it off
and runs its convolutions as Eigen matrix products: the trainer measured 1.4-1.9x (ResNet-20)
and 1.8-2.0x (ResNet-56) slower than with oneDNN's jit:avx2 kernels on a 2-core AVX2 EPYC
(docs/speed.md). The suite therefore turns it on wherever TensorFlow would leave it off, unless
the user set it.
"""
import os
import platform
from pathlib import Path

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"  # TensorFlow's switch: 1 on, 0 off, unset its CPU-based default
SIMULATED = "SRC_DEVICES"  # the tests' stand-in for the device probe: cpu | gpu
MAX_ISA = "ONEDNN_MAX_CPU_ISA"  # oneDNN's own: its kernels use no extension past this one (AVX2, ...)
CPUINFO = Path("/proc/cpuinfo")
# The /proc/cpuinfo flags that decide which kernels oneDNN and Eigen can use, by their usual names.
EXTENSIONS = {"avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI",
              "avx512_bf16": "AVX-512 BF16", "amx_tile": "AMX"}


def use_onednn() -> None:
    """Set TF_ENABLE_ONEDNN_OPTS=1 on x86 where the user has not set it; before TensorFlow's
    import, which reads it once. Other architectures keep TensorFlow's own choice."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault(ONEDNN, "1")


def gpus() -> list[str]:
    """The GPUs TensorFlow sees, by name: the one device probe of the suite (the CPU-speed note,
    the sweep's packing and plan, float16, summary.json). SRC_DEVICES=cpu or =gpu, which the
    tests set, pretends none or one, so that either branch runs on any machine."""
    simulated = os.environ.get(SIMULATED)
    if simulated in ("cpu", "gpu"):
        return ["simulated GPU"] if simulated == "gpu" else []
    import tensorflow as tf
    return [tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]


GROWTH = "TF_FORCE_GPU_ALLOW_GROWTH"  # TensorFlow's: take GPU memory as needed, not all of it


def gpu_free_bytes() -> int | None:
    """The free memory of the first GPU, from nvidia-smi (without TensorFlow, which would take
    the memory itself); None where it cannot say."""
    import subprocess
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip() or "0"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,"
                              "nounits", f"--id={first}"], capture_output=True, text=True,
                             timeout=30)
        return int(out.stdout.split()[0]) * 2**20 if out.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def cpu_flags() -> set[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them ("flags" on x86, "Features" on Arm);
    empty where it cannot be read."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return set()
    return next((set(line.split(":", 1)[1].split()) for line in text.splitlines()
                 if line.startswith(("flags", "Features"))), set())


def vector_extensions() -> list[str]:
    """The CPU's vector extensions among EXTENSIONS, e.g. ["AVX2", "FMA"]."""
    flags = cpu_flags()
    return [name for flag, name in EXTENSIONS.items() if flag in flags]


def onednn_state() -> dict:
    """Whether TensorFlow runs oneDNN in this process, and TF_ENABLE_ONEDNN_OPTS as it was read
    (None: unset, TensorFlow's default). Imports TensorFlow."""
    from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own answer
    state = {"on": bool(_pywrap_util_port.IsMklEnabled()), ONEDNN: os.environ.get(ONEDNN)}
    if os.environ.get(MAX_ISA):  # oneDNN held to fewer extensions than the CPU has
        state[MAX_ISA] = os.environ[MAX_ISA]
    return state
