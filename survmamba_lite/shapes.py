r"""The one glossary of shape letters: every tensor argument in the package is documented
with these letters (``x: (B, L, D)``), and each letter has one meaning.

Letters are grouped by where they appear; the last column is the paper's symbol where the
paper names the quantity (Sec. 3, Eq. 1-4 and Algorithm 1-2 of SurvMamba).

=====  ===============================================================  ==============================
letter meaning                                                          paper
=====  ===============================================================  ==============================
B      patients in a batch                                              --
L      tokens of a sequence (a scan's length)                           M (length of x in Eq. 4)
Lq     query tokens of an attention                                     --
Lk     key / value tokens of an attention                               --
D      model width (token width)                                        512-d tokens (Sec. 4.1)
E      expanded width of a Mamba block (channels of the scan)           --
N      state size of the SSM                                            N (h(t) in R^N, Eq. 1)
Gb     groups of channels sharing one B and C (``mamba_ssm`` ngroups)   --
U      input channels of a time-invariant SSM (``B: (N, U)``)           --
W      kernel width of the depthwise convolution (``d_conv``)           --
Q      chunk length of the chunked scan                                 --
nC     chunks of the chunked scan (``ceil(L / Q)``)                     --
R      regions of a slide                                               M (regions R_m)
P      patches per region (padded)                                      N (patches P_mn)
F      patch-feature width of the frozen encoder                        768 (CTransPath)
G      genes of the RNA vector                                          --
Fn     genomic functions (KEGG pathways)                                F_jk (352 functions)
J      biological processes (KEGG classes)                              J (processes S_j)
K      functions per process (padded)                                   K_j
S      groups of a HIM level: regions (histology) or processes (RNA)    M or J
Gt     genomic tokens of a co-attention baseline (processes, families)  --
H      hidden width of a per-function SNN                               --
Sq     side of TransMIL's square token grid (``Sq * Sq >= L``)          --
Px     side in pixels of a square patch image (an encoder's input)      256 x 256 patches
T      discrete time bins (hazard logits per patient)                   --
=====  ===============================================================  ==============================

Survival metrics work on patients, not batches: ``n`` patients, ``n_times`` times of a
survival-curve grid (``surv: (n, n_times)``). The paper's own symbols that are *not* shape
letters keep their meaning in formulas: :math:`T_l` is the token sequence of layer ``l``
(Algorithm 1), :math:`\Delta, A, B, C` the SSM's parameters (Eq. 1-2).

>>> len(GLOSSARY) == len({letter for letter, _, _ in GLOSSARY})      # one meaning per letter
True
>>> meaning("T"), meaning("Q")
('discrete time bins (hazard logits per patient)', 'chunk length of the chunked scan')
"""
from __future__ import annotations

__all__ = ["GLOSSARY", "meaning"]


def _table(doc: str) -> tuple[tuple[str, str, str], ...]:
    lines = doc.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=====  ")]
    rows = []
    for line in lines[rules[1] + 1:rules[2]]:                          # between the 2nd and 3rd rule
        rows.append((line[:7].strip(), line[7:72].strip(), line[72:].strip()))
    return tuple(rows)


#: ``(letter, meaning, paper symbol)`` rows of the table above, in its order
GLOSSARY: tuple[tuple[str, str, str], ...] = _table(__doc__)


def meaning(letter: str) -> str:
    """What shape letter ``letter`` means (a KeyError names the known letters)."""
    for row in GLOSSARY:
        if row[0] == letter:
            return row[1]
    raise KeyError(f"{letter!r} is not a shape letter of survmamba_lite.shapes; known: "
                   f"{', '.join(r[0] for r in GLOSSARY)}")
