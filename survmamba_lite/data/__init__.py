"""Data layer: the patient bag contract, cohort layout, synthetic cohorts, KEGG, TCGA, slides."""
from survmamba_lite.data.bag import GenomicHierarchy, PatientBag, SurvivalBatch, collate_bags, group_patches

__all__ = ["GenomicHierarchy", "PatientBag", "SurvivalBatch", "collate_bags", "group_patches"]
