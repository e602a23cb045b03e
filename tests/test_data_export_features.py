"""``survmamba export-features``: the tools' layouts, and import(export(cohort)) == cohort."""
from __future__ import annotations

import shlex
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import clam_trident_fixtures as fx
from small_cohorts import synthetic_subset
from survmamba_lite.cli import main
from survmamba_lite.data.features_export import export_features
from survmamba_lite.data.features_h5 import read_features_h5
from survmamba_lite.data.features_import import import_features, read_magnification_table
from survmamba_lite.data.layout import load_cohort, write_manifest
from survmamba_lite.errors import UserError

CASES = {f"TCGA-BB-{i:04d}": [f"TCGA-BB-{i:04d}-01Z-00-DX1"] for i in range(6)}
CASES["TCGA-BB-0002"].append("TCGA-BB-0002-01Z-00-DX2")
SLIDES = [s for v in CASES.values() for s in v]
CORE = ("slide_id", "patch_size", "region_size", "magnification", "encoder")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A cohort imported from TRIDENT files of 40x scans (float16 UNI features)."""
    tmp = tmp_path_factory.mktemp("imported")
    for k, sid in enumerate(SLIDES):
        cp = fx.trident_coords(tmp / "job", sid, fx.grid_coords(300 + 7 * k, step=512), src_mag=40)
        fx.trident_features(cp, fx.features(300 + 7 * k, 24, seed=k))
    root = tmp / "cohort"
    fx.write_clinical(root, CASES)
    import_features(tmp / "job" / "20x_256px_0px_overlap" / "features_uni_v1", root)
    return root


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Thirty cases of the synthetic BLCA (four with two slides), features as `synth` writes them."""
    return synthetic_subset(tmp_path_factory.mktemp("synthetic") / "blca30")


def copy_without_features(root, dest):
    shutil.copytree(root, dest, ignore=shutil.ignore_patterns("features", ".survmamba-outputs.json"))
    return dest


def assert_same_features(a_root, b_root):
    a, b = load_cohort(a_root), load_cohort(b_root)
    assert a.case_ids == b.case_ids
    for c in a.case_ids:
        assert a.slide_ids(c) == b.slide_ids(c)
        for s in a.slide_ids(c):
            x, y = read_features_h5(a.feature_path(s)), read_features_h5(b.feature_path(s))
            assert np.array_equal(x.features, y.features) and y.features.dtype == np.float32
            assert np.array_equal(x.coords, y.coords) and np.array_equal(x.region, y.region)
            assert {k: x.attrs[k] for k in CORE} == {k: y.attrs[k] for k in CORE}


@pytest.mark.parametrize("fmt", ["clam-h5", "clam-pt", "trident"])
@pytest.mark.parametrize("which", ["imported", "synthetic"])
def test_round_trip(fmt, which, request, tmp_path):
    root = request.getfixturevalue(which)
    report = export_features(root, fmt, tmp_path / "export")
    back = copy_without_features(root, tmp_path / "back")
    kw = {}
    if fmt.startswith("clam"):
        enc = load_cohort(root).manifest["features"]["encoder"]
        mag, pmag = read_magnification_table(report.out / "slides.csv")
        kw = dict(patches_dir=report.patches_dir, magnification=mag, patch_magnification=pmag, encoder=enc)
    imported = import_features(report.features_dir, back, overwrite=False, **kw)
    assert not imported.missing and "validates" in imported.validation
    assert_same_features(root, back)


def test_printed_command_imports_it_back(imported, tmp_path, capsys):
    assert main(["export-features", str(imported), "--format", "clam-pt", "--out", str(tmp_path / "e")]) == 0
    command = capsys.readouterr().out.splitlines()[-1].split("import them back with: ")[1]
    argv = shlex.split(command)[1:]
    back = copy_without_features(imported, tmp_path / "back")
    argv[argv.index("COHORT")] = str(back)
    assert main(argv) == 0
    assert_same_features(imported, back)
    slides = pd.read_csv(tmp_path / "e" / "slides.csv")
    assert list(slides.columns[:4]) == ["slide_id", "case_id", "magnification", "patch_size_level0"]
    assert set(slides["magnification"]) == {40.0} and set(slides["patch_size_level0"]) == {512}


def _layout(path):
    """Dataset names (file order), dtype, chunks, maxshape and attribute names of an HDF5 file."""
    with h5py.File(path) as f:
        return [(k, f[k].dtype.str, f[k].chunks, f[k].maxshape, sorted(f[k].attrs)) for k in f]


def test_exported_files_look_like_the_tools(imported, tmp_path):
    sid = SLIDES[0]
    n = read_features_h5(load_cohort(imported).feature_path(sid)).features.shape[0]
    coords, feats = fx.grid_coords(n, step=512), fx.features(n, 24, dtype=np.float32)
    # CLAM
    e = export_features(imported, "clam-h5", tmp_path / "clam")
    fx.clam_patches(tmp_path / "ref" / "patches", sid, coords, level_dim=(1000, 1000))
    h5, pt = fx.clam_features(tmp_path / "ref" / "feats", sid, feats, coords)
    assert _layout(e.features_dir / f"{sid}.h5") == _layout(h5)
    assert _layout(e.patches_dir / f"{sid}.h5") == _layout(tmp_path / "ref" / "patches" / f"{sid}.h5")
    e = export_features(imported, "clam-pt", tmp_path / "clampt")
    ours, theirs = torch.load(e.features_dir / f"{sid}.pt"), torch.load(pt)
    assert type(ours) is type(theirs) and ours.dtype == theirs.dtype == torch.float32
    # TRIDENT (features stored as the cohort holds them: float32)
    e = export_features(imported, "trident", tmp_path / "trident")
    cp = fx.trident_coords(tmp_path / "tref", sid, coords, src_mag=40)
    ref = fx.trident_features(cp, feats, encoder="uni_v1")
    assert _layout(e.features_dir / f"{sid}.h5") == _layout(ref)
    assert _layout(e.patches_dir / f"{sid}_patches.h5") == _layout(cp)
    assert e.features_dir.name == "features_uni_v1" and e.features_dir.parent.name == "20x_256px_0px_overlap"


def test_out_folder_rules(imported, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("x")
    with pytest.raises(UserError, match="not empty and is not a feature export folder"):
        export_features(imported, "clam-h5", out)
    export_features(imported, "clam-h5", tmp_path / "e")
    with pytest.raises(UserError, match="add --overwrite"):
        export_features(imported, "trident", tmp_path / "e")
    export_features(imported, "trident", tmp_path / "e", overwrite=True)
    assert not (tmp_path / "e" / "h5_files").exists() and (tmp_path / "e" / "slides.csv").is_file()


def test_export_follows_the_slide_rule(imported, tmp_path):
    first = copy_without_features(imported, tmp_path / "first")
    src = tmp_path / "src"
    export_features(imported, "trident", src)
    man = yaml.safe_load((first / "manifest.yaml").read_text())
    man.pop("features")
    write_manifest(first, man)
    job = next(src.glob("*x_*px_0px_overlap"))
    import_features(job / "features_uni_v1", first, slides="first")
    report = export_features(first, "clam-h5", tmp_path / "e")
    assert len(report.slides) == len(CASES) and "--slides first" in report.import_command
