"""The CIFAR-10 networks of the paper (section 4.2): one body, one block, four shortcut options.

Plain and residual networks are built by the same code and differ only in the shortcut, so the
comparison is controlled by construction (PROTOCOL.md, "Networks").
"""
import sys

import keras
from keras import layers, ops

SHORTCUTS = ("none", "identity", "projection", "all_projection")
STAGE_FILTERS = (16, 32, 64)  # feature maps 32x32, 16x16, 8x8 (paper section 4.2)
WEIGHT_DECAY = 1e-4  # paper 4.2, Caffe-style: + 1e-4 * w on each kernel's gradient


def blocks_per_stage(depth) -> int:
    """n in depth = 6n + 2; the only place depth is turned into a network size."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"depth={depth!r} is not allowed: depth must be 6n+2 with n >= 1 "
            "(8, 14, 20, 32, 44, 56, 110, 1202, ...)"
        )
    return (depth - 2) // 6


def check_shortcut(shortcut) -> str:
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut={shortcut!r} is not allowed: choose one of {', '.join(SHORTCUTS)}")
    return shortcut


class ZeroPadShortcut(layers.Layer):
    """Option A: subsample by 2 and zero-pad the new channels; no parameters."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters

    def call(self, x):
        x = x[:, ::2, ::2, :]
        extra = self.filters - x.shape[-1]
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])


def coupled_l2(weight_decay):
    """Caffe's decay adds weight_decay * w to the gradient: the Keras penalty with half of it."""
    return keras.regularizers.L2(weight_decay / 2)


def conv_bn(x, filters, stride=1, kernel=3, name=None, weight_decay=WEIGHT_DECAY):
    x = layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False,
        kernel_initializer="he_normal", kernel_regularizer=coupled_l2(weight_decay),
        name=f"{name}_conv",
    )(x)
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)


def block(x, filters, stride, shortcut, name, weight_decay=WEIGHT_DECAY):
    """Two 3x3 conv-BN layers; the shortcut (if any) is added before the final ReLU."""
    y = conv_bn(x, filters, stride, name=f"{name}_1", weight_decay=weight_decay)
    y = conv_bn(layers.ReLU(name=f"{name}_relu1")(y), filters, name=f"{name}_2",
                weight_decay=weight_decay)
    if shortcut != "none":
        grows = stride != 1 or x.shape[-1] != filters
        if shortcut == "all_projection" or (grows and shortcut == "projection"):
            x = conv_bn(x, filters, stride, kernel=1, name=f"{name}_proj",
                        weight_decay=weight_decay)
        elif grows:
            x = ZeroPadShortcut(filters, name=f"{name}_pad")(x)
        y = layers.Add(name=f"{name}_add")([y, x])
    return layers.ReLU(name=f"{name}_relu2")(y)


def resnet(depth: int, shortcut: str = "identity", weight_decay: float = WEIGHT_DECAY,
           classes: int = 10) -> keras.Model:
    """A 6n+2-layer CIFAR network; shortcut="none" gives the plain network of the same depth."""
    n = blocks_per_stage(depth)
    check_shortcut(shortcut)
    # Keras walks the layer graph recursively; ResNet-1202 is ~4000 layers deep.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * depth + 1000))
    inputs = keras.Input((32, 32, 3), name="image")
    x = conv_bn(inputs, STAGE_FILTERS[0], name="stem", weight_decay=weight_decay)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, filters in enumerate(STAGE_FILTERS):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            x = block(x, filters, stride, shortcut, f"stage{stage + 1}_block{i + 1}", weight_decay)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(
        classes, kernel_regularizer=coupled_l2(weight_decay), dtype="float32", name="logits"
    )(x)
    name = "plain" if shortcut == "none" else f"resnet_{shortcut}"
    return keras.Model(inputs, outputs, name=f"{name}{depth}")


def trainable_parameters(model: keras.Model) -> int:
    return sum(int(w.numpy().size) for w in model.trainable_weights)
