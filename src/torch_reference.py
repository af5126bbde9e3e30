"""The reference `make bench` holds the trainer against: the same network and step in PyTorch.

    python -m src.torch_reference DEPTH [--steps 15] [--threads N] [--profile]

The paper's CIFAR ResNet (option A shortcuts: stride-2 subsampling, zero-padded channels) with
PyTorch's own layers, channels-last, float32, batch 128, SGD with momentum 0.9 and weight decay
1e-4, on random in-memory tensors: the counterpart of src.bench's bare step. Prints its images/s,
or with --profile PyTorch's profiler's time per op over a few steps. PyTorch is an optional
dependency of the benchmark alone (`pip install torch`), never of the suite: this module is run
as a process of its own, so that TensorFlow's and PyTorch's thread pools never share one.
"""
import argparse
import sys
import time

import torch
from torch import nn
from torch.nn import functional


class Unit(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the option A shortcut, then ReLU (the paper's unit)."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.pad = c_out - c_in
        self.stride = stride

    def forward(self, x):
        out = functional.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.pad:
            shortcut = functional.pad(shortcut, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return functional.relu(out + shortcut)


def resnet(depth: int) -> nn.Module:
    n = (depth - 2) // 6
    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    c_in = 16
    for stage, width in enumerate((16, 32, 64)):
        for k in range(n):
            layers.append(Unit(c_in, width, 2 if stage and k == 0 else 1))
            c_in = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def training_step(depth: int, batch_size: int = 128):
    model = resnet(depth).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    images = torch.randn(batch_size, 3, 32, 32).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch_size,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return step


def rate(depth: int, steps: int, batch_size: int = 128) -> float:
    """images/s of the step, after 3 warm-up steps."""
    step = training_step(depth, batch_size)
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - start)


def profile(depth: int, steps: int) -> None:
    step = training_step(depth)
    for _ in range(3):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def main(argv=sys.argv[1:]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("depth", type=int)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.profile:
        profile(args.depth, args.steps)
    else:
        print(f"{rate(args.depth, args.steps):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
