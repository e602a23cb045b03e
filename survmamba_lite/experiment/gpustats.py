"""GPU utilisation of a training run, sampled in the background.

:class:`UtilizationSampler` polls ``torch.cuda.utilization(device)`` (NVML through
``pynvml``, the ``nvidia-ml-py`` package; the percentage of the last sample period in
which a kernel ran on the GPU, whoever launched it) every ``interval`` seconds in a
daemon thread. :meth:`UtilizationSampler.take` returns the mean since the previous call,
so a trainer records one number per epoch without touching the GPU's stream. On a CPU
device, or without ``pynvml``, every value is None (and :attr:`note` says why).

>>> s = UtilizationSampler(torch.device("cpu"))
>>> s = s.start()
>>> s.take(), s.note
(None, 'device cpu: no GPU')
>>> s.stop()
"""
from __future__ import annotations

import threading

import torch

__all__ = ["UtilizationSampler"]


class UtilizationSampler:
    """Mean GPU utilisation (%) per period; see the module docstring.

    Args:
        device: the training device.
        interval: seconds between samples.
    """

    def __init__(self, device: torch.device, interval: float = 0.5) -> None:
        self.device, self.interval = device, float(interval)
        self.note: str | None = None
        self._samples: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if device.type != "cuda":
            self.note = f"device {device}: no GPU"
        else:
            try:
                torch.cuda.utilization(device)
            except Exception as err:          # pynvml missing or NVML refused: utilisation is not recorded
                self.note = f"torch.cuda.utilization unavailable ({type(err).__name__}: {err})"

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                value = float(torch.cuda.utilization(self.device))
            except Exception:
                continue
            with self._lock:
                self._samples.append(value)

    def start(self) -> "UtilizationSampler":
        """Start sampling (a no-op without a usable GPU)."""
        if self.note is None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gpu-utilization", daemon=True)
            self._thread.start()
        return self

    def take(self) -> float | None:
        """Mean utilisation (%) of the samples since the last call; None when there are none."""
        with self._lock:
            samples, self._samples = self._samples, []
        return sum(samples) / len(samples) if samples else None

    def stop(self) -> None:
        """Stop the sampling thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.interval + 1)
            self._thread = None
