"""Shaping a network for this device and data: a latency model measured here, EfficientNet's compound-scaling grid
search and an EfficientNetV2-style stage search, each candidate checked by a short proxy training run."""
