"""Your own data: a callable returning (x, y), or (x_train, y_train, x_test, y_test).

Here scikit-learn's bundled 8 x 8 digits (no download), as the N x H x W uint8 images a loader of
your own might return; sweetspot carves the validation and test splits, stratified and seeded."""

import numpy as np
from sklearn.datasets import load_digits


def digits_images():
    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)  # N x 8 x 8, 0..255
    return images, bunch.target
