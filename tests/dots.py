"""Images of bright dots at known sub-pixel positions, and their measured centres (augmentation and loader tests)."""

import numpy as np


def blob_frames(points: np.ndarray, height: int, width: int, sigma: float = 2.0) -> np.ndarray:
    """uint8 [T, H, W, 3]: one Gaussian dot per frame centred on points[t] = (x, y), pixel centres at integers."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for x, y in points:
        g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
        frames.append(np.repeat((255 * g).round().astype(np.uint8)[..., None], 3, axis=-1))
    return np.stack(frames)


def dot_centre(image: np.ndarray, near: np.ndarray, radius: float) -> np.ndarray:
    """Intensity centroid (x, y) of a grey image [H, W] within `radius` of `near`."""
    h, w = image.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    weight = image * (((xx - near[0]) ** 2 + (yy - near[1]) ** 2) <= radius**2)
    return np.array([(weight * xx).sum(), (weight * yy).sum()]) / weight.sum()
