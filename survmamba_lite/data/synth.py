r"""Synthetic cohorts with a planted, multi-grained, multi-modal hazard.

``make_synthetic_cohort("BLCA", "tiny", seed=0, out=DIR)`` writes a cohort folder in the
layout of :mod:`survmamba_lite.data.layout` with the paper's patient count for that
cohort (BRCA 869, BLCA 359, COADREAD 296, UCEC 480, LUAD 453). The *scale* changes
bag sizes, feature width and gene counts, never the number of patients:

=======  ===========  ==============  =====  =====  ====  ====
scale    regions R    patches/region  F      G      Fn    J
=======  ===========  ==============  =====  =====  ====  ====
tiny     2-4          4-16            32     60     10    4
course   4-12         8-32            64     400    48    8
paper    8-40         32-256          768    1577   352   45
=======  ===========  ==============  =====  =====  ====  ====

Generative model
----------------
Everything below is drawn from ``numpy.random.default_rng`` streams derived from the
seed, so a seed gives the same CSV bytes and the same HDF5 arrays on every run.

**Genomic hierarchy** (shared by all cohorts of a scale and seed). ``J`` processes, named
after KEGG level-2 classes; process ``j`` holds :math:`K_j \ge 1` functions (at paper scale
the 352 functions are spread over the 45 classes exactly as in the public KEGG table;
otherwise :math:`K_j - 1` is multinomial with Dirichlet weights). A function has between
the scale's minimum and maximum number of genes (log-uniform) drawn without replacement
from a skewed gene popularity, so functions overlap and some genes belong to none.

**Histology** of patient :math:`i` (``R_i`` regions, ``P_{ir}`` patches in region ``r``).
Orthonormal directions in :math:`\mathbb{R}^F`: tumour :math:`u_T`, cell density
:math:`u_D`, ``q = 4`` tissue-nuisance directions :math:`W` and a stain direction
:math:`u_S`.

.. math::

   \pi_i &\sim \mathrm{Beta}(2, 2), \qquad z_{ir} \sim \mathrm{Bernoulli}(\pi_i)
          \quad \text{(region } r \text{ is tumour)}\\
   d_i &\sim \mathcal N(0, 1), \qquad c_{irp} = d_i + 0.5\,\epsilon_{irp}
          \quad \text{(patch cell density)}\\
   x_{irp} &= 2\,z_{ir} u_T + c_{irp} u_D + W \eta_{ir} + o_{is} u_S + \sigma_x \varepsilon_{irp},
          \quad \eta_{ir} \sim \mathcal N(0, I_q),\ o_{is} \sim \mathcal N(0, 1),\
          \varepsilon_{irp} \sim \mathcal N(0, I_F)

with :math:`\sigma_x = 1` (``o_is`` is one offset per slide ``s``). Two histology scores:
the **region-level** tumour fraction :math:`h^{R}_i = (\bar z_i - 0.5) / 0.25` with
:math:`\bar z_i = \frac{1}{R_i}\sum_r z_{ir}`, and the **patch-level** tumour cellularity
:math:`h^{P}_i` = mean of :math:`c_{irp}` over the patches of tumour regions (0 when no
region is tumour).

**Transcriptomics.** Process activities :math:`q_{ij} \sim \mathcal N(0,1)`, function
activities :math:`f_{ik} = \rho\, q_{i,j(k)} + \sqrt{1-\rho^2}\,\nu_{ik}` with
:math:`\nu_{ik} \sim \mathcal N(0,1)`, :math:`\rho = 0.7`. Gene ``g`` in :math:`m_g \ge 1`
functions: :math:`x_{ig} = \mu_g + \sigma_g(\lambda \sum_{k \ni g} f_{ik}/\sqrt{m_g} +
\sqrt{1-\lambda^2}\,\epsilon_{ig})`, :math:`\lambda = 0.8`; a gene in no function is
:math:`\mu_g + \sigma_g \epsilon_{ig}`; :math:`\mu_g \sim U(2, 10)`,
:math:`\sigma_g \sim U(0.5, 2)` (a log2-expression-like scale). Scores: the
**process-level** :math:`g^{S}_i = q_{i,j^\star}` of process "Cell growth and death",
the **function-level** :math:`g^{F}_i = \nu_{i,k^\star}` (the part of the first function of
"Signal transduction" that its process does not explain), and the **cross-modal**
interaction :math:`g^{\times}_i = h^{R}_i \cdot q_{i,j^\times}` with process "Immune system".

**Hazard.** The planted log-hazard (written as ``true_risk``) is

.. math::

   \eta_i = 0.6\,h^R_i + 0.5\,h^P_i + 0.6\,g^S_i + 0.5\,g^F_i + 0.5\,g^{\times}_i,

and event times are Weibull with shape 1.3 and a per-cohort scale ``b`` (months) with an
unobserved frailty :math:`\xi_i \sim \mathcal N(0, 0.5^2)` (the irreducible noise):
:math:`T_i = b\,(E_i\, e^{-(\eta_i + \xi_i)})^{1/1.3}`, :math:`E_i \sim \mathrm{Exp}(1)`.

**Censoring.** Administrative (staggered entry, study closes):
:math:`A_i \sim U(12, 200)` months; random loss to follow-up :math:`L_i = \theta E'_i`,
:math:`E'_i \sim \mathrm{Exp}(1)`, with :math:`\theta` set by bisection so that the
censored fraction is the cohort's target (BRCA, COADREAD, UCEC 0.70, LUAD 0.60,
BLCA 0.55: the real TCGA fractions, capped at 0.70). Observed
:math:`Y_i = \min(T_i, A_i, L_i)` (rounded to 0.01 month, at least 0.01),
``event`` :math:`= 1[T_i \le \min(A_i, L_i)]`.

Files: the layout's files, ``synthetic_truth.csv`` (``true_risk`` and each score),
``synthetic_regions.csv`` (where the histology signal sits: one row per region of each slide,
``case_id, slide_id, region, n_patches, tumour`` with ``region`` the index stored in that
slide's ``features/<slide_id>.h5`` and ``tumour`` = :math:`z_{ir}`; the patches of a tumour
region carry the shift :math:`2u_T` and, through :math:`h^P_i`, the cellularity signal) and a
``synthetic`` block in ``manifest.yaml`` naming the planted process/function. The region
record is read off the draws above; it adds no draw, so a seed gives the same data with or
without it.

>>> import tempfile
>>> root = make_synthetic_cohort("COADREAD", "tiny", seed=1, out=Path(tempfile.mkdtemp()) / "c")
>>> truth = pd.read_csv(root / "synthetic_truth.csv")
>>> len(truth), sorted(p.name for p in root.iterdir())[:4]
(296, ['.survmamba-outputs.json', 'clinical.csv', 'features', 'hierarchy.tsv'])
"""
from __future__ import annotations

import contextlib
import os
import shlex
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from survmamba_lite.data.features_h5 import SlideFeatures, write_features_h5
from survmamba_lite.data.kegg import write_hierarchy_tsv
from survmamba_lite.data.layout import (FEATURES_DIR, FORMAT_VERSION, TRUTH, make_folds, write_clinical,
                                        write_folds, write_manifest, write_rna)
from survmamba_lite.errors import UserError
from survmamba_lite.utils.outputs import COHORT, check_out_dir, discard_dir, publish_dir, staging_dir

__all__ = ["SynthScale", "SCALES", "COHORTS", "CohortSpec", "make_synthetic_cohort", "synthetic_hierarchy",
           "REGION_TRUTH"]


@dataclass(frozen=True)
class SynthScale:
    """Sizes of one synthetic scale (see the module table)."""

    name: str
    regions: tuple[int, int]
    patches: tuple[int, int]
    feature_dim: int
    n_genes: int
    n_functions: int
    n_processes: int
    function_size: tuple[int, int]


SCALES = {
    "tiny": SynthScale("tiny", (2, 4), (4, 16), 32, 60, 10, 4, (3, 12)),
    "course": SynthScale("course", (4, 12), (8, 32), 64, 400, 48, 8, (4, 40)),
    "paper": SynthScale("paper", (8, 40), (32, 256), 768, 1577, 352, 45, (5, 150)),
}


@dataclass(frozen=True)
class CohortSpec:
    """A paper cohort: patient count, TCGA projects, target censored fraction, Weibull scale."""

    n_cases: int
    projects: tuple[str, ...]
    censored: float
    weibull_scale: float


COHORTS = {
    "BRCA": CohortSpec(869, ("TCGA-BRCA",), 0.70, 150.0),
    "BLCA": CohortSpec(359, ("TCGA-BLCA",), 0.55, 60.0),
    "COADREAD": CohortSpec(296, ("TCGA-COAD", "TCGA-READ"), 0.70, 110.0),
    "UCEC": CohortSpec(480, ("TCGA-UCEC",), 0.70, 140.0),
    "LUAD": CohortSpec(453, ("TCGA-LUAD",), 0.60, 70.0),
}

#: KEGG level-2 classes and their pathway counts in the public 352-pathway table.
KEGG_CLASS_COUNTS = (
    ("Cell growth and death", 8), ("Immune system", 21), ("Signal transduction", 26),
    ("Carbohydrate metabolism", 14), ("Replication and repair", 7), ("Transcription", 3),
    ("Cell motility", 1), ("Lipid metabolism", 14), ("Endocrine system", 23),
    ("Cancer: specific types", 17), ("Glycan biosynthesis and metabolism", 14), ("Amino acid metabolism", 13),
    ("Infectious disease: viral", 12), ("Metabolism of cofactors and vitamins", 12),
    ("Infectious disease: bacterial", 11), ("Cancer: overview", 11), ("Nervous system", 10),
    ("Digestive system", 10), ("Endocrine and metabolic disease", 8), ("Immune disease", 8),
    ("Global and overview maps", 8), ("Folding, sorting and degradation", 7), ("Transport and catabolism", 7),
    ("Cardiovascular disease", 7), ("Neurodegenerative disease", 7), ("Infectious disease: parasitic", 6),
    ("Information processing in viruses", 6), ("Metabolism of other amino acids", 6), ("Translation", 5),
    ("Substance dependence", 5), ("Excretory system", 5), ("Signaling molecules and interaction", 5),
    ("Cellular community - eukaryotes", 5), ("Sensory system", 4), ("Drug resistance: antineoplastic", 4),
    ("Energy metabolism", 3), ("Environmental adaptation", 3), ("Xenobiotics biodegradation and metabolism", 3),
    ("Circulatory system", 3), ("Aging", 2), ("Biosynthesis of other secondary metabolites", 2),
    ("Nucleotide metabolism", 2), ("Development and regeneration", 2),
    ("Metabolism of terpenoids and polyketides", 1), ("Membrane transport", 1),
)
PLANTED_PROCESS, INTERACTION_PROCESS, FUNCTION_PROCESS = "Cell growth and death", "Immune system", "Signal transduction"

BETA = {"h_region": 0.6, "h_patch": 0.5, "g_process": 0.6, "g_function": 0.5, "x_interaction": 0.5}
NOISE = {"frailty_sd": 0.5, "patch_noise_sd": 1.0, "density_noise_sd": 0.5, "gene_noise_share": 0.36,
         "function_process_corr": 0.7}
WEIBULL_SHAPE = 1.3
ADMIN_CENSOR = (12.0, 200.0)
TUMOUR_SHIFT = 2.0
N_NUISANCE = 4
PATCH_SIZE, REGION_SIZE, REGION_GRID = 256, 4096, 16
#: per-region record of the planted histology signal (see the module docstring)
REGION_TRUTH = "synthetic_regions.csv"


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def _cohort_code(cohort: str) -> int:
    return zlib.crc32(cohort.encode()) & 0xFFFF


# --------------------------------------------------------------------------- hierarchy
def synthetic_hierarchy(scale: SynthScale, seed: int) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """The synthetic hierarchy of a scale and seed.

    Returns:
        the hierarchy frame (``function_id, function_name, process, genes``), the ``G``
        gene names, and the ``(Fn, G)`` 0/1 membership matrix.
    """
    rng = _rng(seed, 0x51)
    J, Fn, G = scale.n_processes, scale.n_functions, scale.n_genes
    if scale.name == "paper":
        names = [c for c, _ in KEGG_CLASS_COUNTS]
        counts = np.array([n for _, n in KEGG_CLASS_COUNTS])
    else:
        names = [c for c, _ in KEGG_CLASS_COUNTS[:J]]
        counts = 1 + rng.multinomial(Fn - J, rng.dirichlet(np.ones(J)))
    genes = [f"SYNG{g + 1:04d}" for g in range(G)]
    popularity = 1.0 / (np.arange(G) + 10.0) ** 0.8
    popularity = popularity[rng.permutation(G)]
    popularity /= popularity.sum()
    lo, hi = scale.function_size
    member = np.zeros((Fn, G), dtype=np.int8)
    rows, k = [], 0
    for pname, n_f in zip(names, counts):
        for m in range(int(n_f)):
            size = int(np.clip(round(float(np.exp(rng.uniform(np.log(lo), np.log(hi))))), lo, min(hi, G)))
            idx = np.sort(rng.choice(G, size=size, replace=False, p=popularity))
            member[k, idx] = 1
            rows.append((f"syn{k + 1:05d}", f"{pname} / function {m + 1}", pname,
                         ",".join(genes[g] for g in idx)))
            k += 1
    return pd.DataFrame(rows, columns=["function_id", "function_name", "process", "genes"]), genes, member


# --------------------------------------------------------------------------- histology
def _directions(scale: SynthScale, seed: int) -> np.ndarray:
    """``(F, 3 + N_NUISANCE)`` orthonormal columns: u_T, u_D, u_S, W."""
    rng = _rng(seed, 0xD1)
    q, _ = np.linalg.qr(rng.standard_normal((scale.feature_dim, 3 + N_NUISANCE)))
    return q.astype(np.float32)


def _patient_bag(rng: np.random.Generator, scale: SynthScale, dirs: np.ndarray):
    """Draw one patient's patches.

    Returns (features, region, coords, h_region, h_patch, split, z) with ``split`` the first
    region of the second slide (``R`` for one slide) and ``z: (R,)`` the tumour flags.
    """
    u_t, u_d, u_s, w = dirs[:, 0], dirs[:, 1], dirs[:, 2], dirs[:, 3:]
    n_r = int(rng.integers(scale.regions[0], scale.regions[1] + 1))
    n_p = rng.integers(scale.patches[0], scale.patches[1] + 1, size=n_r)
    pi = rng.beta(2.0, 2.0)
    z = (rng.random(n_r) < pi).astype(np.float32)                      # (R,) tumour regions
    d = rng.standard_normal()
    region = np.repeat(np.arange(n_r), n_p)                             # (n,)
    n = region.size
    c = (d + NOISE["density_noise_sd"] * rng.standard_normal(n)).astype(np.float32)  # (n,) density
    eta = rng.standard_normal((n_r, N_NUISANCE)).astype(np.float32)    # (R, q)
    eps = rng.standard_normal((n, scale.feature_dim), dtype=np.float32)
    x = (TUMOUR_SHIFT * z[region, None] * u_t + c[:, None] * u_d + (eta @ w.T)[region]
         + NOISE["patch_noise_sd"] * eps)                               # (n, F)
    cells = np.concatenate([np.sort(rng.choice(REGION_GRID ** 2, size=int(p), replace=False)) for p in n_p])
    coords = np.stack([(region % 8) * REGION_SIZE + (cells % REGION_GRID) * PATCH_SIZE,
                       (region // 8) * REGION_SIZE + (cells // REGION_GRID) * PATCH_SIZE], 1).astype(np.int64)
    h_region = (z.mean() - 0.5) / 0.25
    in_tumour = z[region] > 0
    h_patch = float(c[in_tumour].mean()) if in_tumour.any() else 0.0
    n_slides = 2 if (n_r >= 2 and rng.random() < 0.1) else 1
    split = int(rng.integers(1, n_r)) if n_slides == 2 else n_r
    offsets = rng.standard_normal(n_slides).astype(np.float32)
    x += np.where(region < split, offsets[0], offsets[-1])[:, None] * u_s
    return x.astype(np.float32), region, coords, float(h_region), h_patch, split, z


def _write_slides(root: Path, case_id: str, x, region, coords, split, encoder: str) -> list[str]:
    slides = []
    for s, mask in enumerate([region < split, region >= split]):
        if not mask.any():
            continue
        sid = f"{case_id}-01Z-00-DX{s + 1}"
        reg = region[mask] - (0 if s == 0 else split)
        write_features_h5(root / FEATURES_DIR / f"{sid}.h5", SlideFeatures(
            features=x[mask], coords=coords[mask], region=reg.astype(np.int64),
            attrs=dict(slide_id=sid, patch_size=PATCH_SIZE, region_size=REGION_SIZE, magnification=20.0,
                       encoder=encoder, mpp=0.5, source="synthetic")))
        slides.append(sid)
    return slides


# --------------------------------------------------------------------------- survival
def _censor_scale(t: np.ndarray, admin: np.ndarray, e2: np.ndarray, target: float) -> float:
    """Bisection (in log space) for the loss-to-follow-up scale giving ``target`` censoring."""
    def frac(theta: float) -> float:
        return float(np.mean(t > np.minimum(admin, theta * e2)))
    lo, hi = np.log(1e-2), np.log(1e6)
    if frac(np.exp(hi)) >= target:      # administrative censoring alone reaches the target
        return float("inf")
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if frac(np.exp(mid)) > target:
            lo = mid
        else:
            hi = mid
    return float(np.exp(hi))


def make_synthetic_cohort(cohort: str, scale: str = "tiny", seed: int = 0, out: str | os.PathLike = ".",
                          *, n_folds: int = 5, command: str | None = None) -> Path:
    """Write a synthetic cohort folder (see the module docstring for the model).

    Args:
        cohort: one of :data:`COHORTS` (``BRCA, BLCA, COADREAD, UCEC, LUAD``).
        scale: ``tiny``, ``course`` or ``paper``.
        seed: the seed; same seed, same files.
        out: the folder to create (must be empty or absent). The cohort is written into a
            staging folder beside it and renamed into place when complete, so ``out`` holds
            a whole cohort or nothing.
        n_folds: stratified cross-validation folds written to ``splits/``.
        command: the command line recorded in the manifest (default: the equivalent
            ``survmamba synth`` call).

    Returns:
        the cohort folder.
    """
    key = cohort.upper()
    if key not in COHORTS:
        raise UserError(f"unknown cohort {cohort!r}; choose one of {sorted(COHORTS)}")
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}; choose one of {list(SCALES)}")
    spec = COHORTS[key]
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise UserError(f"--seed {seed!r}: the seed must be an integer >= 0")
    seed = int(seed)
    if isinstance(n_folds, bool) or int(n_folds) != n_folds or not 2 <= n_folds <= spec.n_cases:
        raise UserError(f"--n-folds {n_folds!r}: the number of cross-validation folds must be an integer from 2 to "
                        f"the {spec.n_cases} cases of {key} (5 is usual)")
    n_folds = int(n_folds)
    final = Path(out)
    check_out_dir(final, COHORT)             # new or empty; refused otherwise, before anything is written
    if command is None:
        command = shlex.join(["survmamba", "synth", "--cohort", key, "--scale", scale, "--seed", str(seed),
                              "--out", str(final)])
    root = staging_dir(final, COHORT)        # written whole, then renamed onto `final`
    try:
        _write_cohort(root, key, scale, seed, n_folds, command)
    except BaseException:
        with contextlib.suppress(Exception):
            discard_dir(root, COHORT)
        raise
    return publish_dir(root, final)


def _write_cohort(root: Path, key: str, scale: str, seed: int, n_folds: int, command: str) -> None:
    spec, sc = COHORTS[key], SCALES[scale]
    (root / FEATURES_DIR).mkdir(parents=True, exist_ok=True)
    code = _cohort_code(key)
    encoder = f"synthetic-{scale}"

    table, genes, member = synthetic_hierarchy(sc, seed)
    process_of = table["process"].to_numpy()
    processes = list(dict.fromkeys(process_of))
    j_star, j_int = processes.index(PLANTED_PROCESS), processes.index(INTERACTION_PROCESS)
    k_star = int(np.flatnonzero(process_of == FUNCTION_PROCESS)[0])
    dirs = _directions(sc, seed)

    # histology, one patient at a time (bags written as they are drawn)
    n = spec.n_cases
    case_ids = [f"SYN-{key}-{i + 1:04d}" for i in range(n)]
    h_region, h_patch, slide_ids, n_patches = np.zeros(n), np.zeros(n), [], 0
    region_rows: list[tuple[str, str, int, int, int]] = []
    for i, cid in enumerate(case_ids):
        x, region, coords, hr, hp, split, z = _patient_bag(_rng(seed, code, 1, i), sc, dirs)
        h_region[i], h_patch[i] = hr, hp
        slides = _write_slides(root, cid, x, region, coords, split, encoder)
        slide_ids.append(";".join(slides))
        n_patches += region.size
        counts = np.bincount(region, minlength=z.size)
        for r in range(z.size):                                   # slide 2 (if any) starts at `split`
            s = 0 if r < split else 1
            region_rows.append((cid, slides[s], r - (0 if s == 0 else split), int(counts[r]), int(z[r])))

    # transcriptomics
    rng = _rng(seed, code, 2)
    rho, lam = NOISE["function_process_corr"], 0.8
    q = rng.standard_normal((n, sc.n_processes))                                     # (N, J)
    nu = rng.standard_normal((n, sc.n_functions))                                    # (N, Fn)
    f = rho * q[:, [processes.index(p) for p in process_of]] + np.sqrt(1 - rho ** 2) * nu
    m_g = member.sum(0)                                                              # (G,)
    signal = (f @ member) / np.sqrt(np.maximum(m_g, 1))                              # (N, G)
    noise = rng.standard_normal((n, sc.n_genes))
    grng = _rng(seed, 0x6E)
    mu, sd = grng.uniform(2, 10, sc.n_genes), grng.uniform(0.5, 2, sc.n_genes)
    z = np.where(m_g > 0, lam * signal + np.sqrt(1 - lam ** 2) * noise, noise)
    expr = mu + sd * z
    g_process, g_function = q[:, j_star], nu[:, k_star]
    x_interaction = h_region * q[:, j_int]

    # hazard and times
    eta = (BETA["h_region"] * h_region + BETA["h_patch"] * h_patch + BETA["g_process"] * g_process
           + BETA["g_function"] * g_function + BETA["x_interaction"] * x_interaction)
    frailty = NOISE["frailty_sd"] * rng.standard_normal(n)
    t_event = spec.weibull_scale * (rng.exponential(size=n) * np.exp(-(eta + frailty))) ** (1 / WEIBULL_SHAPE)
    admin = rng.uniform(*ADMIN_CENSOR, size=n)
    e2 = rng.exponential(size=n)
    theta = _censor_scale(t_event, admin, e2, spec.censored)
    censor = np.minimum(admin, theta * e2)
    observed = np.maximum(np.round(np.minimum(t_event, censor), 2), 0.01)
    event = (t_event <= censor).astype(int)

    clinical = pd.DataFrame({"case_id": case_ids, "slide_id": slide_ids, "survival_months": observed,
                             "event": event})
    write_clinical(root, clinical)
    write_rna(root, pd.DataFrame(expr, index=pd.Index(case_ids, name="case_id"), columns=genes))
    write_hierarchy_tsv(table, root / "hierarchy.tsv")
    folds = make_folds(clinical, n_folds, seed)
    write_folds(root, folds)
    truth = pd.DataFrame({"case_id": case_ids, "true_risk": eta, "h_region": h_region, "h_patch": h_patch,
                          "g_process": g_process, "g_function": g_function, "x_interaction": x_interaction,
                          "frailty": frailty, "event_time": t_event, "censor_time": censor})
    truth.to_csv(root / TRUTH, index=False, float_format="%.6g", lineterminator="\n")
    pd.DataFrame(region_rows, columns=["case_id", "slide_id", "region", "n_patches", "tumour"]).to_csv(
        root / REGION_TRUTH, index=False, lineterminator="\n")
    write_manifest(root, {
        "format_version": FORMAT_VERSION,
        "name": f"synthetic-{key.lower()}-{scale}-seed{seed}",
        "cohort": key,
        "source": "synthetic",
        "n_cases": n,
        "n_folds": n_folds,
        "modalities": ["wsi", "rna"],
        "features": {"encoder": encoder, "width": sc.feature_dim, "n_slides": sum(len(s.split(";")) for s in slide_ids),
                     "n_patches": int(n_patches), "patch_size": PATCH_SIZE, "region_size": REGION_SIZE,
                     "magnification": 20.0},
        "rna": {"n_genes": sc.n_genes, "units": "synthetic log2-like expression"},
        "hierarchy": {"min_genes": 1, "n_functions": int(len(table)), "n_processes": len(processes),
                      "mapping": "process = KEGG-like level-2 class (synthetic gene sets)"},
        "event_definition": "event = 1: death observed; 0: censored",
        "censored_fraction": round(float(1 - event.mean()), 4),
        "synthetic": {
            "scale": scale, "seed": seed, "model": "survmamba_lite.data.synth (see its docstring)",
            "beta": dict(BETA), "noise": dict(NOISE), "weibull_shape": WEIBULL_SHAPE,
            "weibull_scale_months": spec.weibull_scale, "censored_target": spec.censored,
            "loss_to_followup_scale_months": None if not np.isfinite(theta) else round(theta, 4),
            "admin_censoring_months": list(ADMIN_CENSOR),
            "planted_process": PLANTED_PROCESS, "interaction_process": INTERACTION_PROCESS,
            "planted_function": {"id": str(table["function_id"].iat[k_star]),
                                 "name": str(table["function_name"].iat[k_star])},
            "truth_file": TRUTH,
            "region_truth_file": REGION_TRUTH,
        },
        "created_by": command,
    })
