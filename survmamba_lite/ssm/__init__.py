"""State-space layers: discretisation (Eq. 2), recurrent and convolutional forms (Eq. 3-4) and
Mamba's selective scan with interchangeable backends (``ref``, ``parallel``, ``mamba_ssm``), and the
Bi-Mamba block of Algorithm 1.

Shape letters (the glossary is :mod:`survmamba_lite.shapes`): ``B`` batch, ``E`` expanded width (channels),
``L`` length, ``N`` state size, ``Q`` chunk length of the chunked scan.
"""
from .discretize import simplified, ssm_convolution, ssm_kernel, ssm_recurrence, zoh, zoh_diagonal
from .scan import BACKENDS, available_backends, selective_scan, selective_scan_ref
from .bimamba import BiMamba, MambaBranch, reverse_within_length

__all__ = [
    "BiMamba",
    "MambaBranch",
    "reverse_within_length",
    "BACKENDS",
    "available_backends",
    "selective_scan",
    "selective_scan_ref",
    "simplified",
    "ssm_convolution",
    "ssm_kernel",
    "ssm_recurrence",
    "zoh",
    "zoh_diagonal",
]
