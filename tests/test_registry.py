"""The model registry: names, Table 1 rows, options from signatures, and its error messages."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import build_tiny_hierarchy
from survmamba_lite import registry
from survmamba_lite.registry import (ModelInputs, ModelSpec, accepted_options, build_model, factory_from_class,
                                     get_model_spec, list_models, register_model)

# row labels exactly as printed in the paper's Table 1 (SurvMamba's own row is registered from the model package)
TABLE1_ROWS = {
    "snn": "SNN", "snntrans": "SNNTrans", "abmil": "ABMIL", "clam-sb": "CLAM-SB", "clam-mb": "CLAM-MB",
    "transmil": "TransMIL", "abmil-cat": "ABMIL (Cat)", "abmil-kp": "ABMIL (KP)", "clam-mb-cat": "CLAM-MB (Cat)",
    "clam-mb-kp": "CLAM-MB (KP)", "transmil-cat": "TransMIL (Cat)", "transmil-kp": "TransMIL (KP)",
    "mcat": "MCAT", "motcat": "MOTCat", "survpath": "SurvPath",
}
# the modality columns of Table 1 (G. = genomic = rna, H. = histology = wsi)
GENOMIC_ONLY, HISTOLOGY_ONLY = {"snn", "snntrans"}, {"abmil", "clam-sb", "clam-mb", "transmil"}


@pytest.fixture
def inputs():
    return ModelInputs(n_bins=4, wsi_dim=6, hierarchy=build_tiny_hierarchy())


@pytest.fixture
def fresh_registry(monkeypatch):
    """An isolated copy of the package's registry (the original is restored after the test)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return registry


def test_specs_carry_table1_rows_and_modalities():
    specs = {s.name: s for s in list_models()}
    for name, row in TABLE1_ROWS.items():
        spec = specs[name]
        assert spec.table1_row == row
        expected = ("rna",) if name in GENOMIC_ONLY else ("wsi",) if name in HISTOLOGY_ONLY else ("wsi", "rna")
        assert spec.modalities == expected
        assert spec.reference and spec.description
    assert [s.name for s in list_models()][: len(TABLE1_ROWS)] == list(TABLE1_ROWS)


def test_built_models_declare_the_spec_modalities(inputs):
    for name in TABLE1_ROWS:
        model = build_model(name, inputs, dim=8, **({"heads": 2} if "heads" in accepted_options(
            get_model_spec(name)) else {}))
        assert isinstance(model, nn.Module) and tuple(model.modalities) == get_model_spec(name).modalities


def test_unknown_name_lists_models_and_suggests():
    with pytest.raises(ValueError) as err:
        get_model_spec("abmil_kp")
    msg = str(err.value)
    assert "unknown model 'abmil_kp'" in msg and "Did you mean 'abmil-kp'" in msg
    assert all(name in msg for name in TABLE1_ROWS)
    with pytest.raises(ValueError, match="Registered models"):
        build_model("resnet", ModelInputs(4))


def test_missing_modality_says_what_to_provide(inputs):
    with pytest.raises(ValueError, match=r"'snn' reads transcriptomics .*hierarchy is None.*RNA table"):
        build_model("snn", ModelInputs(n_bins=4, wsi_dim=6))
    with pytest.raises(ValueError, match=r"'abmil' reads histology .*wsi_dim is None.*features/<slide_id>.h5"):
        build_model("abmil", ModelInputs(n_bins=4, hierarchy=inputs.hierarchy))
    with pytest.raises(ValueError, match="wsi_dim is None"):
        build_model("survpath", ModelInputs(n_bins=4, hierarchy=inputs.hierarchy))


def test_unknown_option_is_named_with_accepted_options(inputs):
    with pytest.raises(ValueError) as err:
        build_model("abmil", inputs, dmi=8)
    msg = str(err.value)
    assert "'dmi' (did you mean 'dim'?)" in msg and "dim=512" in msg and "dropout=0.25" in msg
    # the fusion kind is fixed by the registry name, not an option
    with pytest.raises(ValueError, match="'fusion'"):
        build_model("abmil-kp", inputs, fusion="cat")


def test_accepted_options_come_from_the_constructor_signature():
    assert accepted_options(get_model_spec("abmil")) == {"dim": 512, "dropout": 0.25}
    assert accepted_options(get_model_spec("transmil-kp")) == {
        "dim": 512, "fusion_dim": 32, "heads": 8, "dropout": 0.25, "attn_dropout": 0.1, "kp_gates": True}
    assert accepted_options(get_model_spec("motcat"))["ot_tau"] == 0.5


def test_options_reach_the_model(inputs):
    model = build_model("abmil-kp", inputs, dim=8, fusion_dim=3)
    assert model.fusion == "kp" and model.kron.encoder1[0].in_features == 16
    assert model.head.in_features == 8


def test_invalid_inputs_and_specs():
    with pytest.raises(ValueError, match="n_bins"):
        ModelInputs(n_bins=0)
    with pytest.raises(ValueError, match="lower case"):
        ModelSpec("ABMIL_KP", ("wsi",), lambda inputs: None, "d", "r")
    with pytest.raises(ValueError, match="subset"):
        ModelSpec("x", ("wsi", "dna"), lambda inputs: None, "d", "r")


class _Toy(nn.Module):
    modalities = ("rna",)

    def __init__(self, n_bins: int, hierarchy, width: int = 3):
        super().__init__()
        self.lin = nn.Linear(hierarchy.n_genes, n_bins)
        self.width = width

    def forward(self, batch):
        return self.lin(batch.rna)


def test_register_custom_model_and_duplicates(fresh_registry, inputs):
    spec = ModelSpec("toy", ("rna",), factory_from_class(_Toy), "a toy", "none")
    register_model(spec)
    register_model(spec)                                         # same spec again is harmless
    assert build_model("toy", inputs, width=5).width == 5
    assert "toy" in [s.name for s in list_models()] and "snn" in [s.name for s in list_models()]
    with pytest.raises(ValueError, match="already registered"):
        register_model(ModelSpec("toy", ("rna",), factory_from_class(_Toy), "another toy", "none"))


def test_spec_modalities_must_match_the_model(fresh_registry, inputs):
    register_model(ModelSpec("liar", ("wsi", "rna"), factory_from_class(_Toy), "claims two", "none"))
    with pytest.raises(TypeError, match="declares"):
        build_model("liar", inputs)


def test_importing_the_package_registers_baselines_then_survmamba():
    """Registration is a plain import: ``survmamba_lite/__init__`` imports the baselines, then
    SurvMamba's entries; the registry module itself imports nothing above it."""
    import ast
    from pathlib import Path

    from survmamba_lite import baselines
    from survmamba_lite.model import registry_entries

    names = [s.name for s in list_models()]
    assert names == [s.name for s in baselines.model_specs()] + [s.name for s in registry_entries.model_specs()]
    assert names[:len(TABLE1_ROWS)] == list(TABLE1_ROWS)
    tree = ast.parse(Path(registry.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in imported if m and m.startswith("survmamba_lite")} == {"survmamba_lite.data.bag"}
    assert "importlib" not in imported


def test_register_by_import_in_a_new_package(fresh_registry, monkeypatch, tmp_path):
    (tmp_path / "extra_models.py").write_text(
        "from survmamba_lite.registry import ModelSpec, factory_from_class, register_model\n"
        "from test_registry import _Toy\n"
        "register_model(ModelSpec('extra-toy', ('rna',), factory_from_class(_Toy), 'toy', 'none', 'Toy'))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "extra_models", raising=False)
    import extra_models  # noqa: F401

    names = [s.name for s in list_models()]
    assert names[-1] == "extra-toy" and "snn" in names and get_model_spec("extra-toy").table1_row == "Toy"


def test_config_factory_gives_single_modality_models_no_other_input(inputs):
    """SurvMamba's factory (a config dataclass + ``then``) passes only the inputs of its modalities."""
    rna_only = build_model("survmamba-rna", inputs, dim=8, d_state=4)
    assert rna_only.config.wsi_dim is None and rna_only.config.hierarchy is inputs.hierarchy
    assert rna_only.config.variant == "C" and build_model("survmamba", inputs, dim=8).config.variant == "F"
    assert accepted_options(get_model_spec("survmamba-rna"))["variant"] == "C"
    with pytest.raises(TypeError, match="unknown option"):
        factory_from_class(_Toy, defaults={"depth": 2})


def test_built_model_runs(inputs):
    from conftest import build_tiny_bags
    from survmamba_lite.data.bag import collate_bags
    model = build_model("snn", inputs, dim=8).eval()
    out = model(collate_bags(build_tiny_bags([(1, 2), (2, 3)])))
    assert out.shape == (2, 4) and torch.isfinite(out).all()
