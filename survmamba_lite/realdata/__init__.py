r"""Real-data check: the genomic rows of Table 1 on public TCGA tables, and real slides
through the slide pipeline.

What :func:`main` (``python -m survmamba_lite.realdata``, ``survmamba realdata``) does, start to end:

1. **Import** the public tables with the project's own import code
   (:func:`~survmamba_lite.data.tcga.import_xena`,
   :func:`~survmamba_lite.data.tcga.import_porpoise`) and the KEGG hierarchy built from
   ``kegg/kegg352_pathway_class_genes.tsv``
   (:func:`~survmamba_lite.data.kegg.hierarchy_from_kegg_table`), each cohort with the
   5-fold splits published with its table (:data:`COHORTS`).
2. **Cross-validate** on those folds the deep genomic models through the experiments layer
   (:func:`~survmamba_lite.experiment.run_cv`: SNN, SNNTrans, genomic-only SurvMamba with
   bidirectional and with forward-only Mamba), and the penalised Cox reference
   :class:`~survmamba_lite.baselines.cox.PCACoxReference`, on the same folds and the same
   fold-fitted gene z-scores.
3. **Summarise** each (cohort, model) run in ``runs/<cohort>__<model>.json``: the five
   fold c-indices, their mean and sample standard deviation, a 95% bootstrap interval of
   the fold mean (patients resampled within each validation fold) and the pooled
   out-of-fold c-index with its 95% bootstrap interval; then rebuild
   ``genomic_table.csv``/``.md`` from every run file, with the paper's Table 1 numbers
   (:data:`PAPER_TABLE1`) beside ours.
4. **Slides**: tile the two real slides, extract EfficientNet-Lite0 features and draw the
   patch grid and a feature map (the first three principal components of the 1280-d
   patch features as RGB, :func:`~survmamba_lite.data.wsi.preview.feature_pca_rgb`) into
   ``slides.json`` and PNGs.

The Cox reference, decided before any fold was looked at: per-gene z-score fitted on the
training fold, PCA fitted on the training fold, the first ``n_components = 32``
components (each scaled to unit training variance), and lifelines' ``CoxPHFitter`` with a
fixed ridge penalty ``penalizer = 0.1`` (``l1_ratio = 0``). No value was tuned.

Modules: :mod:`.catalogue` (cohorts, models, the paper's numbers), :mod:`.cohorts`
(imports), :mod:`.runs` (one cross-validation and its record), :mod:`.tables` (the tables
from the run files), :mod:`.inner` (inner validation), :mod:`.slides`, :mod:`.command`
(``python -m survmamba_lite.realdata``, ``survmamba realdata``). The statistics are
:func:`~survmamba_lite.survival.fold_mean_bootstrap_ci` and
:func:`~survmamba_lite.survival.bootstrap_ci`. Every name is importable from here.

>>> from survmamba_lite.realdata import COHORTS, PAPER_TABLE1
>>> [c.key for c in COHORTS.values()]
['coadread', 'blca', 'blca-porpoise', 'luad', 'brca']
>>> PAPER_TABLE1["SNN"]["BLCA"]
(0.61, 0.038)
"""
from survmamba_lite.baselines.cox import PCACoxReference, run_cox_cv
from survmamba_lite.data.wsi.preview import draw_feature_map, feature_pca_rgb
from survmamba_lite.realdata.catalogue import (COHORTS, DEFAULT_COHORTS, DEFAULT_MODELS, MODELS, PAPER_MODELS, PAPER_VARIANTS,
                                               PAPER_TABLE1, PAPER_WIDTH_DIR, SETTINGS, SLIDES, ModelRun, RealCohort,
                                               with_width)
from survmamba_lite.realdata.cohorts import build_hierarchy, cohort_summary, import_cohort, write_cohort_summaries
from survmamba_lite.realdata.command import build_parser, main
from survmamba_lite.realdata.runs import run_genomic_check, run_model_cv, summarise_predictions
from survmamba_lite.realdata.slides import run_slide_check
from survmamba_lite.realdata.training import training_template
from survmamba_lite.realdata.tables import (genomic_table, genomic_table_markdown, paired_differences,
                                            paired_differences_markdown, run_records, write_genomic_table)
from survmamba_lite.survival import fold_mean_bootstrap_ci

__all__ = ["RealCohort", "COHORTS", "DEFAULT_COHORTS", "ModelRun", "MODELS", "PAPER_MODELS", "PAPER_VARIANTS", "DEFAULT_MODELS",
           "PAPER_TABLE1", "SLIDES", "PCACoxReference", "import_cohort", "build_hierarchy", "run_cox_cv",
           "run_model_cv", "summarise_predictions", "fold_mean_bootstrap_ci", "genomic_table", "write_genomic_table",
           "run_genomic_check", "run_records", "paired_differences", "paired_differences_markdown", "with_width", "SETTINGS",
           "PAPER_WIDTH_DIR", "cohort_summary", "write_cohort_summaries", "feature_pca_rgb", "draw_feature_map",
           "run_slide_check", "genomic_table_markdown", "build_parser", "main", "training_template"]
