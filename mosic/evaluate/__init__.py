"""Dense-feature evaluation: linear probe, (over)clustering, Hummingbird retrieval and video segmentation."""
