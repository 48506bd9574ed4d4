"""Other libraries' noise kept out of the user's terminal: torchao's failed loads of CUDA kernels it cannot use on
this machine, torch's ``_pytree`` deprecation notes, inductor's and the exporters' ``UserWarning``\\ s. They read like
errors and are not the user's to act on. convscale's own warnings still show; ``--verbose`` shows everything."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

__all__ = ["LIBRARIES", "quiet_libraries"]

#: the libraries whose warnings and log lines below ERROR are kept quiet
LIBRARIES = ("torch", "torchao", "onnx", "onnxscript", "onnxruntime", "openvino", "nncf")
_LOGGERS = ("torchao", "torch", "onnxscript", "nncf", "openvino")


@contextlib.contextmanager
def quiet_libraries(verbose: bool = False) -> Iterator[None]:
    """Within the block, warnings raised from :data:`LIBRARIES`' modules are ignored and their loggers say only
    errors (both restored after); with ``verbose``, nothing changes."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=rf"^({'|'.join(LIBRARIES)})(\.|$)")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
