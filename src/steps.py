"""The paper's recipe as compiled steps: the network of a config, SGD with momentum on the
paper's schedule (with its warm-up), one training step that keeps the interval's sums on the
device, and the test step. src.train runs them; src.bench times them.
"""
import keras
import tensorflow as tf
from omegaconf import DictConfig

from src.data import Draw, augment
from src.models import normalised_kernels, resnet
from src.networks import PREACT_PAPER, UNITS

# The warm-up (paper 4.2, 110 layers) ends once the training error, averaged over this many
# batches (6,400 images at batch 128: about +-0.5 points of noise), is below
# train.warmup_until_error. One batch alone is too noisy: at 80% its error has a std of 3.5 points,
# and a ResNet-110 whose warm-up ended on one lucky batch at iteration 51 had not recovered from
# lr 0.1 after 1,000 iterations (79% training error, quick budget; the paper's footnote says it
# starts converging at 0.1 after several epochs).
WARMUP_WINDOW = 50
# The nets of the pre-activation paper (its units and its bottleneck baselines) warm up for a
# fixed length instead (its appendix, arXiv:1603.05027: every CIFAR run at lr 0.01 for the first
# 400 iterations, then 0.1).
PREACT_WARMUP_ITERATIONS = 400


# --- configuration -------------------------------------------------------------------------

def build_model(cfg: DictConfig):
    """The network a run's config describes."""
    return resnet(cfg.depth, cfg.shortcut, cfg.train.weight_decay, cfg.block, cfg.batch_norm,
                  batch_norm_group=cfg.get("batch_norm_group"))  # runs before it have none


def warmup_enabled(cfg: DictConfig) -> bool:
    """Paper section 4.2: the 110-layer (and deeper) nets warm up at lr 0.01; the pre-activation
    paper's appendix: every net of that paper does."""
    if cfg.train.warmup == "auto":
        return cfg.depth >= 110 or fixed_warmup(cfg)
    return bool(cfg.train.warmup)


def fixed_warmup(cfg: DictConfig) -> bool:
    """A net of the pre-activation paper: its units, and its bottleneck baseline."""
    return UNITS[cfg.block].paper == PREACT_PAPER


def warmup_iterations(cfg: DictConfig) -> int:
    """The fixed length of the warm-up (train.warmup_iterations; auto: the pre-activation
    paper's 400 for its nets), or 0: until the error rule."""
    fixed = cfg.train.get("warmup_iterations", "auto")  # runs before the key have none
    if fixed != "auto":
        return int(fixed)
    return PREACT_WARMUP_ITERATIONS if fixed_warmup(cfg) else 0


def held_kernels(model, cfg: DictConfig) -> list:
    """(kernel, its norm now) of every convolution that BN normalises, where train.kernel_norm
    is held (the norm the step scales it back to, taken from the freshly built network); [] where
    it is free. BN makes the function blind to a kernel's scale, so holding it changes only the
    size of the steps: lr x |gradient| / |kernel|, which a growing kernel shrinks."""
    if cfg.train.get("kernel_norm", "free") == "free":
        return []
    return [(kernel, float(tf.norm(kernel))) for kernel in normalised_kernels(model)]


# --- the schedule ----------------------------------------------------------------------------

class PaperSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """lr, divided by 10 at each milestone (fractions of the budget: 32k and 48k of 64k in the
    paper); while `warming_up` is set, the warm-up lr instead (paper, 110 layers)."""

    def __init__(self, lr, iterations, milestones, warmup_lr, warming_up=False):
        self.lr, self.warmup_lr = float(lr), float(warmup_lr)
        self.iterations, self.milestones = iterations, list(milestones)
        # At least 1: a milestone never falls on the first step (train.iterations=1).
        self.boundaries = [max(1, round(m * iterations)) for m in milestones]
        self.warming_up = tf.Variable(bool(warming_up), trainable=False, name="warming_up")

    def __call__(self, step):
        drops = tf.add_n([tf.cast(step >= b, tf.float32) for b in self.boundaries] + [0.0])
        scheduled = self.lr * tf.pow(0.1, drops)
        return tf.where(self.warming_up, self.warmup_lr, scheduled)

    def get_config(self):
        """Its constructor's arguments, as Keras' optimizer.get_config() serialises a schedule."""
        return {"lr": self.lr, "iterations": self.iterations, "milestones": self.milestones,
                "warmup_lr": self.warmup_lr, "warming_up": bool(self.warming_up.numpy())}


# --- the steps ---------------------------------------------------------------------------------

def count_wrong(logits, labels):
    return tf.reduce_sum(tf.cast(tf.argmax(logits, -1, tf.int32) != labels, tf.float32))


def make_optimizer(cfg: DictConfig) -> tuple[keras.optimizers.Optimizer, PaperSchedule]:
    """SGD with momentum on the paper's schedule (weight decay is in the model's L2 losses).

    The names are fixed: a checkpoint keys the optimizer's variables by their paths, which start
    with its name, and Keras would name a process's second optimizer sgd_1 (a multirun's second
    run), whose checkpoint a fresh process could not resume."""
    t = cfg.train
    schedule = PaperSchedule(t.lr, t.iterations, t.milestones, t.warmup_lr, warmup_enabled(cfg))
    optimizer = keras.optimizers.SGD(schedule, momentum=t.momentum, name="sgd")
    if t.precision == "mixed_float16":  # float16 gradients underflow without loss scaling
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name="loss_scale_optimizer")
    return optimizer, schedule


class Interval:
    """The running sums of the current logging interval, as variables beside the model: the
    compiled step adds to them, and Python reads them (a device-to-host copy, which makes the host
    wait for the device) only to write a row, a live line or a checkpoint. Beside them, the
    training error of each of the last WARMUP_WINDOW batches, which the warm-up rule reads."""

    FLOATS = ("loss_sum", "wrong", "seen", "lr")  # lr: the one the last step used

    def __init__(self):
        self.sums = {k: tf.Variable(0.0, trainable=False, name=k) for k in self.FLOATS}
        self.warmup_ended_at = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.recent_errors = tf.Variable(tf.fill([WARMUP_WINDOW], 100.0), trainable=False)

    def read(self) -> dict:
        values = {k: float(v.numpy()) for k, v in self.sums.items()}
        return values | {"warmup_ended_at": int(self.warmup_ended_at.numpy()),
                         "recent_errors": self.recent_errors.numpy().tolist()}

    def restore(self, state: dict) -> None:
        """The sums of a checkpoint's state (zero if absent), and its recent errors if any."""
        for k, v in self.sums.items():
            v.assign(state.get(k, 0.0))
        if "recent_errors" in state:
            self.recent_errors.assign(state["recent_errors"])

    def reset(self) -> None:
        """A new logging interval (the recent errors run on across intervals)."""
        for v in self.sums.values():
            v.assign(0.0)


def make_train_step(model, optimizer, schedule: PaperSchedule, interval: Interval, mean,
                    warmup_until_error=0.0, warmup_iterations=0, jit_compile=False, held=(),
                    steps_per_call=1):
    """One SGD step on a batch, compiled, that returns nothing: it adds the batch's loss, wrong
    predictions and size to `interval`, so the loop never waits for the device between steps.
    It takes the batch as src.data draws it (uint8 images, crop corners, flips) and augments it
    on the device, with the training set's per-pixel `mean` (a tensor there).

    optimizer.iterations is the one step counter (the schedule reads it): every batch counts, also
    one whose float16 gradients overflowed and that Keras' loss-scale optimizer skipped without
    counting it, which would move every later milestone. The warm-up (paper, 110 layers) ends at
    the first step after which the mean training error of the last WARMUP_WINDOW batches is below
    `warmup_until_error` percent, or, given `warmup_iterations`, after that many steps. Each
    (kernel, norm) of `held` is scaled back to that norm after the step (held_kernels).

    With steps_per_call > 1 the function takes a stack of draws (k x batch x ...) and takes a
    step on each in turn in one call (a loop in the graph, as Keras' steps_per_execution): one
    Python dispatch per k steps, where a fast device waits on the host."""
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer.build(model.trainable_variables)
    sums = interval.sums

    def train_step(draw: Draw, labels):
        step = tf.identity(optimizer.iterations)
        sums["lr"].assign(tf.cast(optimizer.learning_rate, tf.float32))
        with tf.GradientTape() as tape:
            logits = model(augment(draw, mean), training=True)
            loss = cross_entropy(labels, logits)
            scaled = optimizer.scale_loss(loss + tf.add_n(model.losses))
        optimizer.apply_gradients(zip(tape.gradient(scaled, model.trainable_variables),
                                      model.trainable_variables))
        for kernel, norm in held:
            kernel.assign(kernel * (norm / tf.norm(kernel)))
        optimizer.iterations.assign(step + 1)
        wrong, seen = count_wrong(logits, labels), tf.cast(tf.size(labels), tf.float32)
        sums["loss_sum"].assign_add(loss * seen)
        sums["wrong"].assign_add(wrong)
        sums["seen"].assign_add(seen)
        interval.recent_errors.scatter_nd_update([[step % WARMUP_WINDOW]], [100 * wrong / seen])
        if warmup_iterations:
            over = step + 1 >= warmup_iterations
        else:
            window_full = step + 1 >= WARMUP_WINDOW  # the warm-up starts at step 0
            over = tf.logical_and(
                window_full, tf.reduce_mean(interval.recent_errors) < warmup_until_error)
        ends = tf.logical_and(schedule.warming_up, over)
        schedule.warming_up.assign(tf.logical_and(schedule.warming_up, tf.logical_not(ends)))
        interval.warmup_ended_at.assign(tf.where(ends, step + 1, interval.warmup_ended_at))

    if steps_per_call == 1:
        return tf.function(train_step, jit_compile=jit_compile)

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def train_steps(draws: Draw, labels):
        for i in tf.range(tf.shape(labels)[0]):
            train_step(Draw(*(t[i] for t in draws)), labels[i])

    return train_steps


def make_test_step(model, jit_compile=False):
    """The summed loss and the wrong predictions of a test batch, compiled (no Python control
    flow to convert; AutoGraph would also warn on a multirun's second run, whose step closes over
    another model)."""
    @tf.function(jit_compile=jit_compile, autograph=False)
    def test_step(images, labels):
        logits = model(images, training=False)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(labels, logits, True))
        return loss, count_wrong(logits, labels)
    return test_step


def evaluate(test_step, test_batches) -> tuple[float, float]:
    """(mean loss, error in %) over the test set (or its slice)."""
    loss = wrong = 0.0
    n = 0
    for images, labels in test_batches:
        batch_loss, batch_wrong = test_step(images, labels)
        loss, wrong, n = loss + batch_loss, wrong + batch_wrong, n + len(labels)
    return float(loss) / n, 100 * float(wrong) / n
