"""Your own teacher and student: any callable (input_shape, n_classes, **options) -> nn.Module.

sweetspot passes the dataset's input shape (here 1 x 8 x 8) and number of classes, and the config
section's other keys as options (``width``, ``hidden``)."""

from torch import nn


def small_cnn(input_shape, n_classes, width=16):
    """Two 3 x 3 convolutions and a linear classifier: a teacher with more capacity than it needs."""
    channels, height, width_px = input_shape
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * width * height * width_px, n_classes),
    )


def tiny_student(input_shape, n_classes, hidden=32):
    """One hidden layer: a student much smaller than its teacher."""
    features = 1
    for size in input_shape:
        features *= size
    return nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
