"""Data layer: the patient bag contract, cohort layout, synthetic cohorts, KEGG, TCGA, slides."""
from survmamba_lite.data.bag import GenomicHierarchy, PatientBag, SurvivalBatch, collate_bags, group_patches
from survmamba_lite.data.dataset import CohortDataset, FoldPreprocessing, RNANormalizer, fold_datasets
from survmamba_lite.data.kegg import build_genomic_hierarchy, read_hierarchy_tsv
from survmamba_lite.data.layout import Cohort, CohortError, load_cohort, make_folds, validate_cohort
from survmamba_lite.data.synth import make_synthetic_cohort

__all__ = ["GenomicHierarchy", "PatientBag", "SurvivalBatch", "collate_bags", "group_patches",
           "Cohort", "CohortError", "load_cohort", "validate_cohort", "make_folds",
           "CohortDataset", "RNANormalizer", "FoldPreprocessing", "fold_datasets",
           "build_genomic_hierarchy", "read_hierarchy_tsv", "make_synthetic_cohort"]
