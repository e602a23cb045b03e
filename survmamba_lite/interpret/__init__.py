"""Interpretation: what SurvMamba looks at.

* :mod:`~survmamba_lite.interpret.hidden_attention`: the hidden-attention matrices of the
  selective scan and of a Bi-Mamba block, tested against the scan;
* :mod:`~survmamba_lite.interpret.rollout`: patch/region and function/process importance of
  one patient, rolled out through HIM's two levels and IFM to the fused feature;
* :mod:`~survmamba_lite.interpret.attribution`: integrated gradients and gradient x input on
  patch features and genes, the baseline the rollout is compared with;
* :mod:`~survmamba_lite.interpret.checks`: the model-randomisation sanity check and the
  planted-signal overlap on synthetic cohorts;
* :mod:`~survmamba_lite.interpret.explain`: ``survmamba explain`` on a run directory.
"""
from .hidden_attention import (BlockAttention, BranchInputs, bimamba_attention, block_mixing, branch_inputs,
                               reverse_matrix_within_length, scan_matrix)

__all__ = ["BlockAttention", "BranchInputs", "bimamba_attention", "block_mixing", "branch_inputs",
           "reverse_matrix_within_length", "scan_matrix"]
