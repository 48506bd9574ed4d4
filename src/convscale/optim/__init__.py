"""Optimization helpers: adaptive gradient clipping."""

from .agc import adaptive_clip_grad_, agc_parameters, attach_agc, unitwise_norm

__all__ = ["adaptive_clip_grad_", "agc_parameters", "attach_agc", "unitwise_norm"]
