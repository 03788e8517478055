"""Input normalisations of the registered architectures (mean, std on [0, 1] inputs), torch-free
so the architecture registry can describe every network without importing one."""

#: The paper-1 convention: inputs rescaled to [-1, 1].
SYMMETRIC = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: EfficientNet-Lite's ``(255·x − 127) / 128`` written as a per-channel mean/std.
LITE_NORMALIZATION = ((127 / 255,) * 3, (128 / 255,) * 3)
