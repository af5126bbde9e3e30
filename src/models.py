"""The CIFAR-10 networks of the paper (section 4.2): one body, four units (the paper's, its
pre-activation form, and the bottleneck of both), four shortcut options.

Plain and residual networks are built by the same code and differ only in the shortcut, so the
comparison is controlled by construction.
"""
import sys
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers, ops

from src.networks import UNITS, Network, blocks_per_stage, check_choice

BATCH_NORMS = ("fused", "keras")
STAGE_FILTERS = (16, 32, 64)  # feature maps 32x32, 16x16, 8x8 (paper section 4.2)
WEIGHT_DECAY = 1e-4  # paper 4.2, Caffe-style: + 1e-4 * w on every parameter's gradient


class BatchNorm(layers.Layer):
    """Batch normalization on TensorFlow's fused kernel (FusedBatchNormV3): one pass forward and
    one backward, where Keras' own layer runs a dozen element-wise ops (+40% images/s for the
    whole network on a 2-core CPU, `make bench`). Same variables as keras.layers.BatchNormalization.

    Training normalises with the batch statistics and updates the moving ones with `momentum`;
    inference uses the moving ones. The moving variance averages the *unbiased* batch variance
    (m / (m - 1) times the biased one, m = images x positions), as Caffe and PyTorch do and as the
    kernel computes it; Keras' layer averages the biased one. The kernel raises epsilon to at least
    1.001e-5 (cuDNN's minimum), so the paper's Caffe value 1e-5 becomes 1.001e-5: a relative change
    of 1e-8 in the scale of a channel with unit variance, and only ever visible for channels whose
    variance is near zero.

    With `group` (images), training normalises each group of that many images of the batch with
    its own statistics, as the paper's two GPUs did with 64 of its 128 (arXiv:1512.03385, 4.2),
    and the moving statistics average the groups' (each of Caffe's GPUs kept its own).
    """

    def __init__(self, momentum=0.9, epsilon=1e-5, regularizer=None, group=None, **kwargs):
        super().__init__(**kwargs)
        self.momentum, self.epsilon, self.group = momentum, epsilon, group
        self.regularizer = keras.regularizers.get(regularizer)

    def build(self, input_shape):
        shape = (input_shape[-1],)
        # float32 even under a mixed policy: the kernel takes float32 scale, offset and statistics.
        for name, init, trainable in [("gamma", "ones", True), ("beta", "zeros", True),
                                      ("moving_mean", "zeros", False),
                                      ("moving_variance", "ones", False)]:
            setattr(self, name, self.add_weight(
                shape=shape, name=name, initializer=init, trainable=trainable, autocast=False,
                regularizer=self.regularizer if trainable else None))

    def call(self, x, training=False):
        if training and self.group:
            return self.grouped(x)
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, self.gamma.value, self.beta.value, self.moving_mean.value,
            self.moving_variance.value, epsilon=self.epsilon, is_training=bool(training),
            exponential_avg_factor=1 - self.momentum if training else 1.0)
        if training:  # mean and variance are the updated moving averages
            self.moving_mean.assign(mean)
            self.moving_variance.assign(variance)
        return y

    def grouped(self, x):
        """Training on groups of `group` images: each normalised with its own statistics."""
        outputs, means, variances = [], [], []
        for part in tf.split(x, x.shape[0] // self.group):  # a training batch's size is fixed
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                part, self.gamma.value, self.beta.value, self.moving_mean.value,
                self.moving_variance.value, epsilon=self.epsilon, is_training=True,
                exponential_avg_factor=1.0)  # the group's own mean and unbiased variance
            outputs.append(y), means.append(mean), variances.append(variance)
        f = 1 - self.momentum
        self.moving_mean.assign((1 - f) * self.moving_mean + f * tf.add_n(means) / len(means))
        self.moving_variance.assign((1 - f) * self.moving_variance
                                    + f * tf.add_n(variances) / len(variances))
        return tf.concat(outputs, 0)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon,
                "group": self.group, "regularizer": keras.regularizers.serialize(self.regularizer)}


class ZeroPadShortcut(layers.Layer):
    """Option A: subsample by 2 and zero-pad the new channels; no parameters.

    x[:, ::2, ::2] and the channel padding are computed as one stride-2 1x1 convolution with a
    fixed 0/1 kernel (input channel c -> output channel c + pad): the same numbers exactly, in one
    oneDNN op, 3x faster forward and backward on a CPU than a strided slice and a pad."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters

    def call(self, x):
        channels = x.shape[-1]
        select = np.eye(channels, self.filters, k=(self.filters - channels) // 2)[None, None]
        return tf.nn.conv2d(x, ops.cast(select, x.dtype), strides=2, padding="VALID")


def coupled_l2(weight_decay):
    """Caffe's decay adds weight_decay * w to the gradient: the Keras penalty with half of it.

    Every trainable parameter is decayed: kernels, BN's gamma and beta, the classifier's bias.
    The paper states weight decay 0.0001 with no exception (section 4.2), Caffe applies a
    solver's weight_decay to every learnable blob unless a layer sets its decay_mult to 0 (the
    CIFAR prototxts were not released), and the reimplementations that reproduced the paper's
    CIFAR numbers, fb.resnet.torch and akamaster/pytorch_resnet_cifar10, decay every parameter
    (SGD's weight_decay over model.parameters())."""
    return keras.regularizers.L2(weight_decay / 2)


def msra_normal():
    """The paper's initialisation (its reference [13], He et al. 2015, "Delving Deep into
    Rectifiers"): a zero-mean Gaussian, not truncated, with std sqrt(2 / n), n = fan_in = k x k x
    input channels. fan_in is Caffe's MSRAFiller default (the paper trained in Caffe) and what
    akamaster's PyTorch CIFAR ResNets use (kaiming_normal_); fb.resnet.torch takes fan_out, which
    differs only where a convolution changes the channel count. Keras' "he_normal" is a normal
    truncated at 2 std and rescaled: no tail beyond 2.27 of its std, unlike the paper's."""
    return keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal")


@dataclass(frozen=True)
class Layers:
    """The layer makers of one network, with its weight decay and its kind of batch norm."""
    weight_decay: float = WEIGHT_DECAY
    batch_norm: str = "fused"
    batch_norm_group: int | None = None  # images per BN group in training; None: the batch

    def bn(self, x, name):
        """BN with epsilon 1e-5 (Caffe's default) and moving averages with momentum 0.9, the
        Torch/PyTorch convention (moving = 0.9 moving + 0.1 batch) of the reimplementations that
        reach the paper's numbers; Caffe's default moving_average_fraction is 0.999, and the
        paper states none. Training normalises with batch statistics, so the momentum leaves the
        training curves alone and sets only the statistics the test error is measured with."""
        decay = coupled_l2(self.weight_decay)
        if self.batch_norm == "fused":
            layer = BatchNorm(momentum=0.9, epsilon=1e-5, regularizer=decay,
                              group=self.batch_norm_group, name=f"{name}_bn")
        else:
            layer = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, gamma_regularizer=decay,
                                              beta_regularizer=decay, name=f"{name}_bn")
        return layer(x)

    def conv(self, x, filters, stride=1, kernel=3, name=None):
        """A bias-free convolution with the paper's initialisation, padded as Caffe pads it.

        Caffe pads (kernel - 1) / 2 pixels on *every* side, so output pixel i of a stride-2 3x3
        convolution is centred on input pixel 2i: the pixel that option A's shortcut x[::2, ::2]
        and option B's strided 1x1 projection take. TensorFlow's padding="same" on an even-sized
        map pads 0 before and 1 after, which centres it on 2i + 1 and shifts the residual branch
        one pixel against its own shortcut; so stride-2 convolutions pad explicitly, then
        convolve "valid".
        """
        padding = "same"
        if stride > 1 and kernel > 1:
            x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
            padding = "valid"
        return layers.Conv2D(
            filters, kernel, strides=stride, padding=padding, use_bias=False,
            kernel_initializer=msra_normal(), kernel_regularizer=coupled_l2(self.weight_decay),
            name=f"{name}_conv",
        )(x)

    def conv_bn(self, x, filters, stride=1, kernel=3, name=None):
        return self.bn(self.conv(x, filters, stride, kernel, name), name)

    def shortcut(self, y, x, stride, option, name):
        """y + the shortcut of x (options A, B, C of the paper's section 3.3); y for plain nets."""
        if option == "none":
            return y
        filters = y.shape[-1]
        grows = stride != 1 or x.shape[-1] != filters
        if option == "all_projection" or (grows and option == "projection"):
            x = self.conv_bn(x, filters, stride, kernel=1, name=f"{name}_proj")
        elif grows:
            x = ZeroPadShortcut(filters, name=f"{name}_pad")(x)
        return layers.Add(name=f"{name}_add")([y, x])


def original_block(nn: Layers, x, filters, stride, shortcut, name, first=False):
    """The paper's unit: conv-BN-ReLU-conv-BN, the shortcut added before the final ReLU."""
    y = nn.conv_bn(x, filters, stride, name=f"{name}_1")
    y = nn.conv_bn(layers.ReLU(name=f"{name}_relu1")(y), filters, name=f"{name}_2")
    return layers.ReLU(name=f"{name}_relu2")(nn.shortcut(y, x, stride, shortcut, name))


def preact_block(nn: Layers, x, filters, stride, shortcut, name, first=False):
    """The pre-activation unit (He et al. 2016, "Identity Mappings in Deep Residual Networks"):
    BN-ReLU-conv-BN-ReLU-conv, the shortcut added with nothing after it. The first unit follows
    the stem's conv-BN-ReLU, which serves as its pre-activation (that paper's appendix)."""
    y = x if first else layers.ReLU(name=f"{name}_relu1")(nn.bn(x, f"{name}_1"))
    y = nn.conv(y, filters, stride, name=f"{name}_1")
    y = layers.ReLU(name=f"{name}_relu2")(nn.bn(y, f"{name}_2"))
    y = nn.conv(y, filters, name=f"{name}_2")
    return nn.shortcut(y, x, stride, shortcut, name)


def bottleneck_block(nn: Layers, x, filters, stride, shortcut, name, first=False):
    """The original unit with a bottleneck (the pre-activation paper's ResNet-164 and -1001
    baselines): conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN to 4 x `filters` channels, the shortcut
    added before the final ReLU. The stride is the first 1x1's, as in the authors' code
    (KaimingHe/resnet-1k-layers)."""
    y = nn.conv_bn(x, filters, stride, kernel=1, name=f"{name}_1")
    y = nn.conv_bn(layers.ReLU(name=f"{name}_relu1")(y), filters, name=f"{name}_2")
    y = nn.conv_bn(layers.ReLU(name=f"{name}_relu2")(y), 4 * filters, kernel=1, name=f"{name}_3")
    return layers.ReLU(name=f"{name}_relu3")(nn.shortcut(y, x, stride, shortcut, name))


def preact_bottleneck_block(nn: Layers, x, filters, stride, shortcut, name, first=False):
    """The pre-activation bottleneck unit of ResNet-164 and -1001 (arXiv:1603.05027, as in its
    authors' code, KaimingHe/resnet-1k-layers): (BN-ReLU-conv) x 3, 1x1 reducing to `filters`,
    3x3, 1x1 restoring 4 x `filters`, nothing after the addition. Where the width or the size
    changes, the shortcut is a bare 1x1 projection of the same pre-activated input as the branch
    (their "common BN, ReLU"); elsewhere the identity of the unit's input. The first unit takes
    the stem's conv-BN-ReLU as that common pre-activation."""
    grows = stride != 1 or x.shape[-1] != 4 * filters
    y = x if first else layers.ReLU(name=f"{name}_relu1")(nn.bn(x, f"{name}_1"))
    shortcut_input = y if grows else x
    y = nn.conv(y, filters, stride, kernel=1, name=f"{name}_1")
    y = nn.conv(layers.ReLU(name=f"{name}_relu2")(nn.bn(y, f"{name}_2")), filters, name=f"{name}_2")
    y = nn.conv(layers.ReLU(name=f"{name}_relu3")(nn.bn(y, f"{name}_3")), 4 * filters, kernel=1,
                name=f"{name}_3")
    if grows:
        shortcut_input = nn.conv(shortcut_input, 4 * filters, stride, kernel=1,
                                 name=f"{name}_proj")
    return layers.Add(name=f"{name}_add")([y, shortcut_input])


# The units src.networks registers.
BLOCKS = {"original": original_block, "preact": preact_block, "bottleneck": bottleneck_block,
          "preact_bottleneck": preact_bottleneck_block}
assert BLOCKS.keys() == UNITS.keys(), "a unit built here must be registered in src/networks.py"


def resnet(depth: int, shortcut: str = "identity", weight_decay: float = WEIGHT_DECAY,
           block: str = "original", batch_norm: str = "fused", classes: int = 10,
           batch_norm_group: int | None = None) -> keras.Model:
    """A CIFAR network of 3 stages (feature maps 32, 16, 8) of n units each: 6n+2 layers of
    two-layer units, 9n+2 of bottleneck ones; shortcut="none" gives the plain network."""
    n = blocks_per_stage(depth, block)
    Network(block, shortcut, depth).check()
    unit = BLOCKS[block]
    nn = Layers(weight_decay, check_choice("batch_norm", batch_norm, BATCH_NORMS),
                batch_norm_group)
    # Keras walks the layer graph recursively; ResNet-1202 is ~4000 layers deep.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * depth + 1000))
    inputs = keras.Input((32, 32, 3), name="image")
    x = layers.ReLU(name="stem_relu")(nn.conv_bn(inputs, STAGE_FILTERS[0], name="stem"))
    for stage, filters in enumerate(STAGE_FILTERS):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            x = unit(nn, x, filters, stride, shortcut, f"stage{stage + 1}_block{i + 1}",
                     first=stage == 0 and i == 0)
    if UNITS[block].original:  # pre-activation: the last unit's sum is activated once
        x = layers.ReLU(name="final_relu")(nn.bn(x, "final"))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    # The paper does not say how its classifier starts. Its kernel gets the convolutions' MSRA
    # Gaussian (n = its inputs), as in akamaster's PyTorch CIFAR ResNets, which reproduce Table 6;
    # its bias starts at zero, as in fb.resnet.torch and under Caffe's default (constant) filler.
    outputs = layers.Dense(
        classes, kernel_initializer=msra_normal(), kernel_regularizer=coupled_l2(weight_decay),
        bias_regularizer=coupled_l2(weight_decay), dtype="float32", name="logits"
    )(x)
    name = "plain" if shortcut == "none" else f"resnet_{shortcut}"
    prefix = "" if block == "original" else f"{block}_"
    return keras.Model(inputs, outputs, name=f"{prefix}{name}{depth}")


def convolutions(model: keras.Model) -> list:
    """Every convolution of the network (3x3 and 1x1 projections), in network order."""
    return [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]


def gradient_norms(model: keras.Model):
    """The paper's backward signal, measured: a function of (images, labels, iteration) that
    returns, for every convolution in network order, as rows of gradients.csv, the norm of the
    cross-entropy's gradient (no weight decay) on that batch with respect to

    - the convolution's output (`output_gradient_norm`). BN after it makes this scale as
      1 / the kernel's norm: the same function with the kernel times c gets it divided by c;
    - the output of the BN that normalises that output (`bn_output_gradient_norm`), which no
      rescaling of the kernel changes; the convolution's own output where no BN follows it (the
      last convolution of a pre-activation unit);
    - its kernel (`kernel_gradient_norm`), beside the kernel's own norm (`kernel_norm`): their
      ratio times lr is the layer's effective step (docs/runs.md).

    BN normalises with the batch's statistics, as in training, and its moving statistics are
    left as they were: the measurement changes nothing in the network."""
    convs, after = convolutions(model), normalised_outputs(model)
    normalised = [after[conv.name] for conv in convs]
    probe = keras.Model(model.inputs, [model.outputs[0], *[c.output for c in convs],
                                       *[b.output for b in normalised]])
    kernels = [c.kernel for c in convs]
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(autograph=False)
    def norms(images, labels):
        kept = [tf.identity(v) for v in model.non_trainable_variables]
        with tf.GradientTape() as tape:
            logits, *outputs = probe(images, training=True)
            loss = cross_entropy(labels, logits)
        grads = tape.gradient(loss, [*outputs, *kernels])
        for v, value in zip(model.non_trainable_variables, kept):
            v.assign(value)
        return tf.stack([tf.norm(tf.cast(g, tf.float32)) for g in [*grads, *kernels]])

    def rows(images, labels, iteration: int) -> list[dict]:
        values = norms(images, labels).numpy().reshape(4, len(convs))
        return [{"iteration": iteration, "index": i + 1, "layer": conv.name.removesuffix("_conv"),
                 "output_gradient_norm": float(values[0, i]),
                 "kernel_gradient_norm": float(values[2, i]),
                 "bn_output_gradient_norm": float(values[1, i]), "kernel_norm": float(values[3, i])}
                for i, conv in enumerate(convs)]

    return rows


def normalised_outputs(model: keras.Model) -> dict:
    """For each convolution, by name, the BN layer that normalises its output, or the
    convolution itself where no BN reads its output (the last conv of a pre-activation unit)."""
    readers = {}
    for layer in model.layers[1:]:  # after the input layer
        for tensor in keras.tree.flatten(layer.input):
            readers.setdefault(id(tensor), []).append(layer)
    return {conv.name: next((r for r in readers.get(id(conv.output), [])
                             if isinstance(r, (BatchNorm, layers.BatchNormalization))), conv)
            for conv in convolutions(model)}


def normalised_kernels(model: keras.Model) -> list:
    """The kernel of every convolution whose output a BN normalises (every one of the original
    units' nets; not the last of a pre-activation unit): the function is blind to its scale."""
    after = normalised_outputs(model)
    return [conv.kernel for conv in convolutions(model) if after[conv.name] is not conv]


def trainable_parameters(model: keras.Model) -> int:
    return sum(int(w.numpy().size) for w in model.trainable_weights)


def responses(model: keras.Model, batches) -> pd.DataFrame:
    """Figure 7's layer responses: for each 3x3 convolution, in network order, the std of its
    output after BN and before any ReLU or addition (the conv's own output where no BN follows
    it, as in a pre-activation unit's last conv), over `batches` of images in inference mode.

    The std is taken per channel, over images and positions, then averaged over the channels: BN
    normalises each channel on its own, and a channel's std is what its scale gamma sets; the std
    of all channels pooled would also count the spread of the channel means (the offsets beta),
    which is no response at all. Returns a frame with columns layer, index (1 = the stem), std.
    """
    after = normalised_outputs(model)
    picked = [after[conv.name] for conv in convolutions(model) if conv.kernel_size == (3, 3)]
    probe = keras.Model(model.inputs[0], [layer.output for layer in picked])

    @tf.function(autograph=False)
    def moments(images):
        outputs = [tf.cast(o, tf.float32) for o in probe(images, training=False)]
        return [(tf.reduce_sum(o, [0, 1, 2]), tf.reduce_sum(o * o, [0, 1, 2]),
                 tf.cast(tf.reduce_prod(tf.shape(o)[:3]), tf.float32)) for o in outputs]

    totals = None
    for images, _ in batches:
        batch = [[np.float64(v.numpy()) for v in m] for m in moments(images)]
        totals = batch if totals is None else [[a + b for a, b in zip(t, m)]
                                               for t, m in zip(totals, batch)]
    stds = [np.sqrt(np.maximum(sq / n - (s / n) ** 2, 0)).mean() for s, sq, n in totals]
    return pd.DataFrame({"layer": [layer.name for layer in picked],
                         "index": range(1, len(picked) + 1), "std": stds})
