"""The papers' published CIFAR-10 numbers: the only numbers in this suite typed in by hand.

Source: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", arXiv:1512.03385,
Table 6 (ResNet test error, option A, 64k iterations) and Figure 6 (plain nets: read off the plot,
approximate). Parameters are Table 6's, in millions.
"""
RESNET_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}  # %, Table 6
# Table 6 gives one run per depth except at 110 layers: "6.43 (6.61±0.16)", the best of 5 runs
# and their mean and std.
RESNET_TEST_ERROR_MEAN = {110: (6.61, 0.16, 5)}  # %: mean, std, runs
PLAIN_TEST_ERROR = {20: 9.7, 32: 10.0, 44: 11.3, 56: 13.2}  # %, approximate, Figure 6 (left)
PLAIN_TRAIN_ERROR = {20: 1.5, 32: 1.0, 44: 3.0, 56: 6.0}  # %, approximate, Figure 6 (left)
# He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", arXiv:1603.05027, Table 3
# (CIFAR-10 test error, %), by the unit (src.networks.UNITS) and depth: the original and the
# pre-activation form of the basic unit at 110 layers and of the bottleneck at 164 and 1001.
PREACT_TEST_ERROR = {("original", 110): 6.61, ("preact", 110): 6.37,
                     ("bottleneck", 164): 5.93, ("preact_bottleneck", 164): 5.46,
                     ("bottleneck", 1001): 7.61, ("preact_bottleneck", 1001): 4.92}
PREACT_PARAMETERS_M = {164: 1.7, 1001: 10.2}  # that paper's Table 3 (bottleneck nets)
PARAMETERS_M = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4}  # Table 6
