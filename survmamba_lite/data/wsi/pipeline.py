"""Streaming feature extraction: reader processes -> encoder -> HDF5 writer, all at once.

::

    reader processes (W)           main process                          writer thread
    ---------------------          ------------------------------------  -------------------
    block of a slide:              uint8 block (pinned) --copy stream-->  features of a slide
    one read_region, cut,          staging batch on the GPU (B, S, S, 3)  complete -> HDF5,
    resize (uint8, S x S)   --->   normalise + encode (bf16, NHWC)  --->  written atomically
                                   features -> pinned host (B, F)

* **Readers.** ``W`` ``DataLoader`` worker processes, each with its own OpenSlide handles,
  read blocks of neighbouring patches (:mod:`.blocks`) and return them as uint8; blocks come
  back as soon as they are read (``in_order=False``), blocks of several slides at once.
* **Transfer.** A pinning thread copies each block into page-locked memory; the main
  process copies it to the GPU on a separate stream (``non_blocking``) into one of two
  staging batches of ``B`` patches, so the copy of batch ``k + 1`` overlaps the encoder on
  batch ``k``. Only uint8 crosses the bus; ``/ 255``, mean and std are applied on the GPU
  (:class:`~.encoders.FrozenPatchEncoder`).
* **Encoder.** In the chosen precision (:func:`precision_context`: ``bf16``/``fp16``
  autocast, ``tf32`` or strict ``fp32``), channels-last for convolutional encoders.
  Batches mix slides: only the very last batch of a run is partial.
* **Writer.** Features return to pinned host memory without blocking; when all patches of
  a slide are in, a writer thread writes ``<slide_id>.h5`` atomically (temporary file
  renamed into place) while the GPU goes on with the next slides.

A slide is written only when complete, so an interrupted run leaves finished slides
whole and no partial file: rerunning skips the finished ones and redoes the rest. A slide
whose blocks cannot be read is reported and dropped; the other slides go on.

The run records where its time went (:class:`PipelineStats`): waiting for blocks (the
readers are the bound), GPU time of copies and of the encoder (CUDA events), writing.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from survmamba_lite.data.wsi.blocks import BlockDataset, BlockItem, SlideSpec, plan_blocks
from survmamba_lite.data.wsi.encoders import FrozenPatchEncoder

__all__ = ["PRECISIONS", "precision_context", "default_precision", "default_batch_size", "SlideJob",
           "PipelineStats", "streaming_bound", "run_pipeline"]

log = logging.getLogger(__name__)

#: ``--precision`` choices: strict float32, TF32 matmuls/convolutions, bf16 or fp16 autocast
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")


def default_precision(device: torch.device) -> str:
    """``bf16`` on a GPU that has it (Ampere and later), else ``fp16`` on CUDA; ``fp32`` on a CPU."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def default_batch_size(device: torch.device) -> int:
    """256 patches on a GPU with at least 16 GB, 64 on a smaller one, 32 on a CPU."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        return 256 if total >= 16 * 2 ** 30 else 64
    return 32


@contextlib.contextmanager
def precision_context(device: torch.device, precision: str) -> Iterator[None]:
    """Run the encoder in ``precision`` on ``device`` (flags restored afterwards).

    ``fp32`` turns TF32 off for CUDA matmuls and cuDNN convolutions (cuDNN convolutions use
    TF32 by default); ``tf32`` turns it on; ``bf16``/``fp16`` autocast (fp16 on CUDA only),
    without autocast's cast cache (which a CUDA graph capture must not use; the encoder's
    weights need no grad, so the cache would hold nothing anyway).
    On CUDA, cuDNN picks its convolution algorithms by timing them (``cudnn.benchmark``):
    batches have one shape, so that is done once.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}: choose one of {list(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("--precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    if precision == "tf32" and device.type != "cuda":
        raise ValueError("--precision tf32 exists on CUDA devices only; use fp32 or bf16 on the CPU")
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = device.type == "cuda" or saved[2]
    try:
        if precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            with torch.autocast(device.type, dtype=dtype, cache_enabled=False):
                yield
        else:
            yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = saved


@dataclass
class SlideJob:
    """One slide to extract.

    Attributes:
        slide_id: the output's name; ``out_path``: ``<features>/<slide_id>.h5``.
        spec: reading geometry and coords (:class:`~.blocks.SlideSpec`).
        region: ``(P,)`` region index of each patch; ``region_l0``: region side (level-0 px).
        write: ``write(features (P, F) float32) -> None`` writes the file (atomically).
    """

    slide_id: str
    out_path: Path
    spec: SlideSpec
    region: np.ndarray
    region_l0: int
    write: Callable[[np.ndarray], None]

    @property
    def n_patches(self) -> int:
        return int(self.spec.coords.shape[0])


@dataclass
class PipelineStats:
    """Where a run's time went (seconds unless said otherwise).

    ``wait_seconds``: the main process waiting for blocks from the readers (high: reading
    bounds the run); ``copy_gpu_seconds`` and ``encode_gpu_seconds``: GPU time of the
    host-to-device copies and of the encoder (CUDA events; 0 on a CPU, where
    ``encode_seconds`` is the encoder's wall time); ``write_seconds``: the writer thread;
    ``gpu_busy_fraction``: encoder GPU time over the wall time.
    """

    wall_seconds: float = 0.0
    patches: int = 0
    batches: int = 0
    blocks: int = 0
    wait_seconds: float = 0.0
    encode_seconds: float = 0.0
    copy_gpu_seconds: float = 0.0
    encode_gpu_seconds: float = 0.0
    write_seconds: float = 0.0
    first_block_seconds: float = float("nan")
    per_slide_seconds: dict = field(default_factory=dict)

    @property
    def patches_per_second(self) -> float:
        return self.patches / self.wall_seconds if self.wall_seconds > 0 else float("nan")

    @property
    def gpu_busy_fraction(self) -> float:
        return self.encode_gpu_seconds / self.wall_seconds if self.wall_seconds > 0 else float("nan")

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "per_slide_seconds"}
        d.update(patches_per_second=self.patches_per_second, gpu_busy_fraction=self.gpu_busy_fraction)
        return d


def streaming_bound(stats: Mapping[str, float]) -> str:
    """What bounds a streaming run on a GPU, read from where its main process spent the wall time.

    ``encoder`` when the GPU ran the encoder at least 70% of the wall time; otherwise
    ``decode`` (waiting for the readers' blocks) or ``launch`` (the host's own time in the
    encoder call, launching its kernels), whichever took longer. ``stats``: the fields of
    :class:`PipelineStats` (``wall_seconds``, ``wait_seconds``, ``encode_seconds``,
    ``encode_gpu_seconds``), e.g. its :meth:`~PipelineStats.as_dict` as a benchmark stores it.

    >>> streaming_bound(dict(wall_seconds=8.2, wait_seconds=3.7, encode_seconds=4.0, encode_gpu_seconds=0.8))
    'launch'
    >>> streaming_bound(dict(wall_seconds=5.2, wait_seconds=3.5, encode_seconds=0.9, encode_gpu_seconds=3.0))
    'decode'
    >>> streaming_bound(dict(wall_seconds=5.0, wait_seconds=0.5, encode_seconds=1.0, encode_gpu_seconds=4.0))
    'encoder'
    """
    wall = stats["wall_seconds"]
    if wall > 0 and stats["encode_gpu_seconds"] / wall >= 0.7:
        return "encoder"
    return "decode" if stats["wait_seconds"] >= stats["encode_seconds"] else "launch"


class _SlideState:
    """Features of one slide as they arrive."""

    def __init__(self, job: SlideJob):
        self.job = job
        self.features: np.ndarray | None = None
        self.done = 0
        self.failed = ""
        self.started = float("nan")
        self.finished = float("nan")


class _Batcher:
    """Staging batches of ``B`` patches on the device, filled block by block.

    On CUDA, two staging buffers alternate: copies run on their own stream and wait for the
    encoder to have released the buffer; the encoder waits for the copies.
    """

    def __init__(self, device: torch.device, batch_size: int, size: int):
        self.device, self.b = device, batch_size
        self.cuda = device.type == "cuda"
        n_buffers = 2 if self.cuda else 1
        self.buffers = [torch.empty((batch_size, size, size, 3), dtype=torch.uint8, device=device)
                        for _ in range(n_buffers)]
        self.current = 0
        self.fill = 0
        self.owner = np.zeros((batch_size, 2), np.int64)  # (job, patch index) of each row
        self.copy_events: list = []  # (start, end) CUDA events around each copy of this batch
        if self.cuda:
            self.copy_stream = torch.cuda.Stream(device)
            self.released = [torch.cuda.Event() for _ in range(n_buffers)]  # the encoder is done with it
            for ev in self.released:
                ev.record(torch.cuda.current_stream(device))

    def add(self, pixels: torch.Tensor, job: int, first: int, lo: int, hi: int) -> None:
        """Copy rows ``lo:hi`` of a block (patch indices ``first + lo ...``) into the batch.

        Args:
            pixels: ``(n, S, S, 3)`` uint8 block (pinned on CUDA).
        """
        n = hi - lo
        buf = self.buffers[self.current]
        if self.cuda:
            with torch.cuda.stream(self.copy_stream):
                if self.fill == 0:
                    self.copy_stream.wait_event(self.released[self.current])
                pair = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                pair[0].record(self.copy_stream)
                buf[self.fill:self.fill + n].copy_(pixels[lo:hi], non_blocking=True)
                pair[1].record(self.copy_stream)
                self.copy_events.append(pair)
        else:
            buf[self.fill:self.fill + n].copy_(pixels[lo:hi])
        self.owner[self.fill:self.fill + n, 0] = job
        self.owner[self.fill:self.fill + n, 1] = np.arange(first + lo, first + hi)
        self.fill += n

    def take(self) -> tuple[torch.Tensor, np.ndarray, int, list]:
        """The filled batch ``(B', 3, S, S)`` (channels-last memory), its owners, buffer id and
        the ``(start, end)`` CUDA events of its copies (empty on a CPU)."""
        buf, idx, events = self.buffers[self.current], self.current, self.copy_events
        self.copy_events = []
        if self.cuda:
            copied = torch.cuda.Event()
            copied.record(self.copy_stream)
            torch.cuda.current_stream(self.device).wait_event(copied)
        batch = buf[:self.fill].permute(0, 3, 1, 2)
        owners = self.owner[:self.fill].copy()
        self.fill = 0
        self.current = (self.current + 1) % len(self.buffers)
        return batch, owners, idx, events


class _GraphedEncoder:
    """The encoder replayed from CUDA graphs: one graph per staging buffer, full batches only.

    A frozen encoder on batches of one shape is the plain case for CUDA graphs. EfficientNet-
    Lite0's forward pass is about a hundred small kernels whose launches from Python cost the
    main process more time than the GPU spends running them (the profiles in
    ``benchmarks/results/profiles/``), time the readers then miss. A graph launches them all
    at once. Each of the staging buffers (:class:`_Batcher`) gets its own graph, captured on
    its first full batch after three eager warm-up passes on a side stream (cuDNN's algorithm
    search and TorchScript's profiling runs happen there, not inside the capture); the
    partial last batch of a run is encoded eagerly. A replay runs the kernels the eager pass
    chose for that shape, so the features of an ``nn.Module`` encoder do not change; a
    TorchScript encoder's executor optimises its graph over its first calls, so its features
    may differ at float rounding level between runs, graphs or not (both tested on the GPU).
    """

    def __init__(self, encoder: FrozenPatchEncoder, device: torch.device, precision: str):
        self.encoder, self.device, self.precision = encoder, device, precision
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}

    def __call__(self, batch: torch.Tensor, buffer_id: int, full: bool) -> torch.Tensor:
        """Features ``(B, F)`` of ``batch: (B, 3, S, S)`` uint8, a view of staging buffer ``buffer_id``."""
        if not full:
            with precision_context(self.device, self.precision):
                return self.encoder(batch)
        if buffer_id not in self.graphs:
            self.graphs[buffer_id] = self._capture(batch)
        graph, out = self.graphs[buffer_id]
        graph.replay()
        return out

    def _capture(self, batch: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), precision_context(self.device, self.precision):
            for _ in range(3):
                self.encoder(batch)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread-local capture: the DataLoader's pinning thread allocates page-locked memory while
        # this thread captures, which a global capture would count as an error
        with torch.cuda.graph(graph, capture_error_mode="thread_local"), precision_context(self.device, self.precision):
            out = self.encoder(batch)
        return graph, out


def _blocks_for(jobs: Sequence[SlideJob], band_rows: int) -> np.ndarray:
    parts = []
    for j, job in enumerate(jobs):
        ranges = plan_blocks(job.spec.coords, job.region, job.region_l0, job.spec.patch_l0, band_rows)
        parts.append(np.concatenate([np.full((len(ranges), 1), j, np.int64), ranges], axis=1))
    return np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)


@torch.inference_mode()
def run_pipeline(jobs: Sequence[SlideJob], encoder: FrozenPatchEncoder, *, device: torch.device, workers: int,
                 batch_size: int, precision: str, band_rows: int = 4, prefetch: int = 2, progress: bool = True,
                 cuda_graphs: bool = False, on_done: Callable[[SlideJob, float], None] | None = None,
                 on_fail: Callable[[SlideJob, str], None] | None = None) -> PipelineStats:
    """Extract the features of every job with ``workers`` reader processes (module doc).

    Args:
        jobs: the slides, each written through its ``write`` when complete.
        encoder: the frozen encoder (moved to ``device``).
        device: where the encoder runs.
        workers: reader processes (>= 1).
        batch_size: patches per encoder call ``B``.
        precision: one of :data:`PRECISIONS`.
        band_rows: patch rows per block (:func:`~.blocks.plan_blocks`).
        prefetch: blocks each reader keeps ready.
        progress: a tqdm bar in patches/s.
        cuda_graphs: on CUDA, replay the encoder's full batches from CUDA graphs
            (:class:`_GraphedEncoder`); ignored on a CPU. Off by default: on the H100 benchmark
            the readers bound both encoders, and graphs saved host time without raising the
            end-to-end rate (``benchmarks/results/wsi_throughput_graphs_cuda.json``).
        on_done: called with ``(job, seconds)`` once a slide's file is written.
        on_fail: called with ``(job, message)`` when a slide cannot be read or written.

    Returns:
        the run's :class:`PipelineStats`.
    """
    from tqdm import tqdm

    if workers < 1:
        raise ValueError(f"--workers {workers}: the streaming path needs at least one reader process")
    if batch_size < 1:
        raise ValueError(f"--batch-size {batch_size}: must be >= 1")
    stats = PipelineStats()
    start = time.perf_counter()
    states = [_SlideState(j) for j in jobs]
    blocks = _blocks_for(jobs, band_rows)
    total = sum(j.n_patches for j in jobs)
    if total == 0:
        return stats
    encoder = encoder.to(device).eval()
    cuda = device.type == "cuda"
    dataset = BlockDataset([j.spec for j in jobs], blocks)
    loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers, collate_fn=BlockDataset.collate,
                        pin_memory=cuda, prefetch_factor=prefetch,
                        in_order=False, persistent_workers=False)
    batcher = _Batcher(device, batch_size, encoder.input_size)
    graphed = _GraphedEncoder(encoder, device, precision) if cuda and cuda_graphs else None
    inflight: deque = deque()   # (features on host, owners, CUDA events or None)
    writes: list[tuple[Future, _SlideState]] = []
    write_lock = threading.Lock()
    bar = tqdm(total=total, desc="extract", unit=" patches", disable=not progress, smoothing=0.05)

    def write(state: _SlideState, feats: np.ndarray) -> None:
        t0 = time.perf_counter()
        state.job.write(feats)
        state.finished = time.perf_counter()
        with write_lock:
            stats.write_seconds += state.finished - t0

    def finish(state: _SlideState) -> None:
        feats, state.features = state.features, None
        writes.append((writer.submit(write, state, feats), state))

    def fail(state: _SlideState, message: str) -> None:
        if not state.failed:
            state.failed, state.features = message, None
            if on_fail is not None:
                on_fail(state.job, message)             # the caller reports it (once)
            else:
                log.error("%s", message)

    def drain(block: bool) -> None:
        """Scatter finished batches into their slides; ``block``: wait for all in flight."""
        while inflight and (block or len(inflight) > 2 or inflight[0][2] is None or inflight[0][2][0][1].query()):
            host, owners, events = inflight.popleft()
            if events is not None:
                (enc_start, enc_end), copies = events
                enc_end.synchronize()
                stats.encode_gpu_seconds += enc_start.elapsed_time(enc_end) / 1000.0
                stats.copy_gpu_seconds += sum(a.elapsed_time(b) for a, b in copies) / 1000.0
            feats = host.numpy()
            for j in np.unique(owners[:, 0]):
                rows = owners[:, 0] == j
                state = states[j]
                if state.failed:
                    continue
                if state.features is None:
                    state.features = np.empty((state.job.n_patches, feats.shape[1]), np.float32)
                state.features[owners[rows, 1]] = feats[rows]
                state.done += int(rows.sum())
                if state.done == state.job.n_patches:
                    finish(state)
            bar.update(len(owners))
            stats.patches += len(owners)

    def encode() -> None:
        batch, owners, buf_id, copy_events = batcher.take()
        t0 = time.perf_counter()
        events = None
        if cuda:
            span = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            events = (span, copy_events)
            span[0].record()
        if graphed is not None:
            feats = graphed(batch, buf_id, full=len(owners) == batch_size)
        else:
            with precision_context(device, precision):
                feats = encoder(batch)
        host = torch.empty(feats.shape, dtype=torch.float32, pin_memory=cuda)
        host.copy_(feats, non_blocking=cuda)
        if cuda:
            batcher.released[buf_id].record()
            span[1].record()
        stats.encode_seconds += time.perf_counter() - t0
        stats.batches += 1
        inflight.append((host, owners, events))
        drain(block=False)

    writer = ThreadPoolExecutor(1, thread_name_prefix="features-writer")
    try:
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            try:
                item: BlockItem = next(it)
            except StopIteration:
                break
            stats.wait_seconds += time.perf_counter() - t0
            if stats.blocks == 0:
                stats.first_block_seconds = time.perf_counter() - start
            stats.blocks += 1
            state = states[item.job]
            if item.error:
                fail(state, item.error)
            if state.failed:
                bar.update(item.stop - item.start)
                continue
            if np.isnan(state.started):
                state.started = time.perf_counter()
            n, lo = item.stop - item.start, 0
            while lo < n:
                hi = min(n, lo + batch_size - batcher.fill)
                batcher.add(item.pixels, item.job, item.start, lo, hi)
                lo = hi
                if batcher.fill == batch_size:
                    encode()
        if batcher.fill:
            encode()
        drain(block=True)
    finally:
        writer.shutdown(wait=True)
        bar.close()
    for fut, state in writes:
        err = fut.exception()
        if err is not None:
            fail(state, f"{state.job.out_path}: writing failed ({err})")
        else:
            seconds = state.finished - state.started
            stats.per_slide_seconds[state.job.slide_id] = seconds
            if on_done is not None:
                on_done(state.job, seconds)
    for state in states:
        if not state.failed and state.done != state.job.n_patches:
            fail(state, f"{state.job.slide_id}: only {state.done} of {state.job.n_patches} patches came back")
    if cuda:
        torch.cuda.synchronize(device)
    stats.wall_seconds = time.perf_counter() - start
    return stats
