"""Point tracking: the tracker contract, the default LK tracker, the opt-in CoTracker3 adapter, the synthetic
data's ground-truth tracker, TAP-Vid metrics.

Only the contract and the metrics are imported here (numpy only); trackers are built with
:func:`make_tracker`, which imports OpenCV or torch when a tracker is chosen.
"""

from mosic.tracking.base import (
    TRACKERS,
    BatchTracker,
    SourceTracker,
    Tracker,
    TrackResult,
    check_clip,
    make_tracker,
)
from mosic.tracking.metrics import TAPVID_THRESHOLDS, tapvid_metrics

__all__ = [
    "TRACKERS",
    "TAPVID_THRESHOLDS",
    "TrackResult",
    "Tracker",
    "BatchTracker",
    "SourceTracker",
    "check_clip",
    "make_tracker",
    "tapvid_metrics",
]
