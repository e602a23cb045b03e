"""``survmamba import-features``: CLAM and TRIDENT files (written as those tools write them) into a cohort."""
from __future__ import annotations

import json
import zipfile

import h5py
import numpy as np
import pytest
import torch
import yaml

import clam_trident_fixtures as fx
from survmamba_lite.cli import main
from survmamba_lite.data.features_h5 import read_features_h5
from survmamba_lite.data.features_import import assign_regions, import_features
from survmamba_lite.data.features_sources import load_pt_array
from survmamba_lite.data.layout import load_cohort, validate_cohort
from survmamba_lite.errors import UserError

CASES = {f"TCGA-AA-{i:04d}": [f"TCGA-AA-{i:04d}-01Z-00-DX1.ABC{i}"] for i in range(6)}
CASES["TCGA-AA-0001"].append("TCGA-AA-0001-01Z-00-DX2.DEF1")          # a case with two slides
SLIDES = [s for v in CASES.values() for s in v]


def trident_job(tmp_path, *, src_mag=20, n=30, dtype=np.float16, saveas="h5", d=16, skip=(), legacy=False):
    """A TRIDENT job folder with every slide of CASES (uni_v1, float16 by default)."""
    job = tmp_path / "trident_job"
    for k, sid in enumerate(SLIDES):
        if sid in skip:
            continue
        ps0 = 256 * src_mag // 20
        cp = fx.trident_coords(job, sid, fx.grid_coords(n + k, step=ps0), patch_size=256, src_mag=src_mag,
                               target_mag=20, legacy=legacy)
        fx.trident_features(cp, fx.features(n + k, d, seed=k, dtype=dtype), saveas=saveas)
    return job / "20x_256px_0px_overlap"


def cohort(tmp_path, cases=CASES):
    root = tmp_path / "cohort"
    fx.write_clinical(root, cases)
    return root


# --------------------------------------------------------------------------- the fixtures are the tools' files
def test_fixtures_look_like_the_tools_output(tmp_path):
    coords_dir = trident_job(tmp_path)
    with h5py.File(coords_dir / "features_uni_v1" / f"{SLIDES[0]}.h5") as f:
        assert list(f) == ["coords", "features"] and f["features"].dtype == np.float16
        assert f["features"].chunks == (1, 16) and f["features"].maxshape == (None, 16)
        assert f["coords"].dtype == np.int64 and f["coords"].chunks == (1, 2)
        assert dict(f["features"].attrs)["encoder"] == "uni_v1"
        assert f["coords"].attrs["patch_size_level0"] == 256 and f["coords"].attrs["level0_width"] == 20000
    fx.clam_patches(tmp_path / "patches", "s", fx.grid_coords(40), patch_size=256)
    fx.clam_features(tmp_path / "feats", "s", fx.features(40, 8, dtype=np.float32), fx.grid_coords(40), batch_size=16)
    with h5py.File(tmp_path / "feats" / "h5_files" / "s.h5") as f:
        assert f["coords"].dtype == np.int32 and f["features"].chunks == (32, 8) and len(f["features"].attrs) == 0
    with h5py.File(tmp_path / "patches" / "s.h5") as f:
        assert f["coords"].dtype == np.int64 and f["coords"].chunks == (1, 2)
        assert list(f["coords"].attrs["downsample"]) == [1.0, 1.0]


# --------------------------------------------------------------------------- TRIDENT
@pytest.mark.parametrize("src_mag", [20, 40])
def test_trident_float16_to_float32_with_regions(tmp_path, src_mag):
    """A 40x slide: patches of 512 level-0 px (256 at 20x), regions of 8192 level-0 px (4096 at 20x)."""
    src = trident_job(tmp_path, src_mag=src_mag, n=400)
    root = cohort(tmp_path)
    report = import_features(src / "features_uni_v1", root)
    assert len(report.slides) == len(SLIDES) and report.encoder == "uni_v1" and report.width == 16
    sf = read_features_h5(root / "features" / f"{SLIDES[0]}.h5")
    with h5py.File(src / "features_uni_v1" / f"{SLIDES[0]}.h5") as f:
        raw = f["features"][()]
    assert sf.features.dtype == np.float32 and np.array_equal(sf.features, raw.astype(np.float32))
    scale = src_mag // 20
    assert sf.attrs["patch_size"] == 256 * scale and sf.attrs["region_size"] == 4096 * scale
    assert sf.attrs["level0_magnification"] == src_mag and sf.attrs["magnification"] == 20
    # 20 patches of 256 px (at 20x) per row, 16 per region side: regions are 16 x 16 patches
    col, row = np.arange(400) % 20, np.arange(400) // 20
    expected_cell = (row // 16) * 2 + (col // 16)
    _, expected = np.unique(expected_cell, return_inverse=True)
    assert np.array_equal(sf.region, expected) and sf.n_regions == 4
    man = yaml.safe_load((root / "manifest.yaml").read_text())
    assert man["modalities"] == ["wsi"] and man["features"]["slides"] == "all" and man["n_folds"] == 5
    assert validate_cohort(root).n_slides == len(SLIDES)


def test_trident_pt_reads_coordinates_from_patches(tmp_path):
    src = trident_job(tmp_path, saveas="pt")
    root = cohort(tmp_path)
    report = import_features(src / "features_uni_v1", root)
    assert {s.format for s in report.slides} == {"trident-pt"}
    sf = read_features_h5(root / "features" / f"{SLIDES[2]}.h5")
    assert np.array_equal(sf.coords, fx.grid_coords(32)) and sf.features.dtype == np.float32


def test_numpy_one_pickles_load(tmp_path):
    """TRIDENT's .pt under NumPy 1.x names numpy.core.multiarray._reconstruct (2.x: numpy._core)."""
    p = tmp_path / "a.pt"
    torch.save(np.arange(6, dtype=np.float16).reshape(3, 2), p)
    with zipfile.ZipFile(p) as z:
        items = {n: z.read(n) for n in z.namelist()}
    key = next(n for n in items if n.endswith("data.pkl"))
    assert b"numpy._core.multiarray" in items[key]
    items[key] = items[key].replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    with zipfile.ZipFile(p, "w") as z:
        for n, b in items.items():
            z.writestr(n, b)
    assert load_pt_array(p).tolist() == [[0, 1], [2, 3], [4, 5]]
    torch.save({"x": 1, "f": print}, tmp_path / "b.pt")
    with pytest.raises(ValueError, match="not loaded, for safety"):
        load_pt_array(tmp_path / "b.pt")


def test_empty_slides_and_missing_files_are_listed(tmp_path, capsys):
    src = trident_job(tmp_path, skip=(SLIDES[3], SLIDES[4]), legacy=True)
    cp = fx.trident_coords(tmp_path / "trident_job", SLIDES[3], [], legacy=True)     # (0,) coords, old release
    fx.trident_features(cp, None, embedding_dim=None)                                 # features (0,)
    root = cohort(tmp_path)
    assert main(["import-features", str(src / "features_uni_v1"), "--cohort-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"1 slide(s) of clinical.csv with no source file, left out of the bags: {SLIDES[4]}" in out
    assert f"no patch (empty slide), left out of the bags: {SLIDES[3]}" in out
    assert "2 case(s) have no imported slide" in out and "does not validate yet" in out
    man = yaml.safe_load((root / "manifest.yaml").read_text())
    assert man["features"]["missing"] == sorted([SLIDES[3], SLIDES[4]])
    for flag in ("--strict",):
        rc = main(["import-features", str(src / "features_uni_v1"), "--cohort-dir", str(root), flag, "--overwrite"])
        err = capsys.readouterr().err
        assert rc == 2 and f"slide {SLIDES[4]} (case TCGA-AA-0003): no" in err


def test_summary_table_and_two_slide_case(tmp_path, capsys):
    src = trident_job(tmp_path)
    root = cohort(tmp_path)
    assert main(["import-features", str(src / "features_uni_v1"), "--cohort-dir", str(root)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.split()[:1] == ["slide"])
    assert header.split() == ["slide", "case_id", "patches", "regions", "source", "format", "mag", "patch_l0"]
    assert f"{SLIDES[2]}.h5 trident-h5" in " ".join(out.split())
    c = load_cohort(root)
    assert c.slide_ids("TCGA-AA-0001") == CASES["TCGA-AA-0001"]


def test_slides_first_is_recorded_and_used(tmp_path):
    src = trident_job(tmp_path)
    root = cohort(tmp_path)
    report = import_features(src / "features_uni_v1", root, slides="first")
    assert len(report.slides) == len(CASES)
    assert not (root / "features" / "TCGA-AA-0001-01Z-00-DX2.DEF1.h5").exists()
    c = load_cohort(root)
    assert c.manifest["features"]["slides"] == "first" and c.slide_ids("TCGA-AA-0001") == [CASES["TCGA-AA-0001"][0]]


# --------------------------------------------------------------------------- CLAM
def clam_run(tmp_path, *, n=25, patch_level=0, downsample=(1.0, 1.0), pt=False):
    for k, sid in enumerate(SLIDES):
        step = 256 * int(downsample[0])
        c = fx.grid_coords(n + k, step=step, x0=1000, y0=37)            # CLAM's grid starts at the contour box
        fx.clam_patches(tmp_path / "clam" / "patches", sid, c, patch_level=patch_level, downsample=downsample)
        fx.clam_features(tmp_path / "clam" / "feats", sid, fx.features(n + k, 8, seed=k, dtype=np.float32), c)
    return tmp_path / "clam"


@pytest.mark.parametrize("kind", ["h5_files", "pt_files"])
def test_clam_with_patches_dir_and_magnification(tmp_path, kind):
    clam = clam_run(tmp_path)
    root = cohort(tmp_path)
    with pytest.raises(UserError) as err:
        import_features(clam / "feats" / kind, root, patches_dir=clam / "patches")
    lines = str(err.value).splitlines()
    assert len(lines) == 1 + len(SLIDES) and "nothing was written" in lines[0]
    assert lines[1].strip().startswith(f"slide {SLIDES[0]}: the level-0 (scan) magnification is unknown")
    assert "--magnification 20 or 40" in lines[1] and not (root / "features").exists()
    report = import_features(clam / "feats" / kind, root, patches_dir=clam / "patches", magnification=20,
                             encoder="resnet50_trunc")
    assert report.encoder == "resnet50_trunc" and {s.format for s in report.slides} == {f"clam-{kind[:2]}"}
    sf = read_features_h5(root / "features" / f"{SLIDES[0]}.h5")
    assert np.array_equal(sf.coords, fx.grid_coords(25, x0=1000, y0=37))
    # the region holds the patch centre: x + 128 in [0, 4096) -> column 0; patches from x = 3968 on -> column 1
    assert np.array_equal(sf.region, assign_regions(sf.coords, 256, 4096))
    assert sf.region[(sf.coords[:, 0] + 128) // 4096 == 1].min() > 0


def test_clam_h5_without_patches_needs_the_patch_size(tmp_path):
    clam = clam_run(tmp_path)
    root = cohort(tmp_path)
    with pytest.raises(UserError, match="the patch size is unknown.*--patch-size-level0 N"):
        import_features(clam / "feats" / "h5_files", root, magnification=40)
    report = import_features(clam / "feats" / "h5_files", root, magnification=40, patch_size_level0=512)
    sf = read_features_h5(root / "features" / f"{SLIDES[0]}.h5")
    assert sf.attrs["region_size"] == 8192 and sf.attrs["patch_size"] == 512 and report.width == 8


def test_clam_40x_at_level_1(tmp_path):
    """patch_level 1 of a 40x scan (downsample ~4): patch_size 256 covers 1024 level-0 px, read at 10x."""
    clam = clam_run(tmp_path, patch_level=1, downsample=(4.000345, 4.000128))
    root = cohort(tmp_path)
    import_features(clam / "feats" / "h5_files", root, patches_dir=clam / "patches", magnification=40)
    sf = read_features_h5(root / "features" / f"{SLIDES[0]}.h5")
    assert sf.attrs["patch_size"] == 1024 and sf.attrs["magnification"] == 10 and sf.attrs["region_size"] == 8192


def test_magnification_table_per_slide(tmp_path):
    clam = clam_run(tmp_path)
    root = cohort(tmp_path)
    table = tmp_path / "mag.csv"
    table.write_text("slide_id,magnification\n" + "".join(f"{s}.svs,{40 if i % 2 else 20}\n"
                                                          for i, s in enumerate(SLIDES)))
    assert main(["import-features", str(clam / "feats" / "h5_files"), "--cohort-dir", str(root), "--patches-dir",
                 str(clam / "patches"), "--magnification", str(table)]) == 0
    sizes = [read_features_h5(root / "features" / f"{s}.h5").attrs["region_size"] for s in SLIDES[:2]]
    assert sizes == [4096, 8192]


# --------------------------------------------------------------------------- refusals: one line per slide
def test_each_refusal_names_the_slide_and_the_fix(tmp_path):
    src = trident_job(tmp_path)
    feats = src / "features_uni_v1"

    def rewrite(sid, **changes):
        with h5py.File(feats / f"{sid}.h5", "a") as f:
            for key, fn in changes.items():
                data = fn(f[key][()])
                attrs = dict(f[key].attrs)
                del f[key]
                d = f.create_dataset(key, data=data, maxshape=(None,) + data.shape[1:], chunks=(1,) + data.shape[1:])
                d.attrs.update(attrs)

    rewrite(SLIDES[0], coords=lambda c: c[:-1])                                           # length
    rewrite(SLIDES[1], features=lambda x: np.concatenate([x, x], 1))                      # width
    rewrite(SLIDES[2], features=lambda x: np.where(np.arange(len(x))[:, None] == 3, np.float16(np.inf), x))
    rewrite(SLIDES[3], coords=lambda c: np.concatenate([c[:-1], c[:1]]))                  # duplicate
    with h5py.File(feats / f"{SLIDES[4]}.h5", "a") as f:
        f["features"].attrs["name"] = "TCGA-ZZ-9999-01Z-00-DX1"                          # another slide's file
        f["coords"].attrs["level0_magnification"] = "None"                                # unknown (TRIDENT 'None')
    with h5py.File(feats / f"{SLIDES[5]}.h5", "a") as f:
        f["coords"].attrs["level0_magnification"] = "None"
    root = cohort(tmp_path)
    with pytest.raises(UserError) as err:
        import_features(feats, root)
    lines = [line.strip() for line in str(err.value).splitlines()[1:]]
    expect = {SLIDES[0]: ("29 coordinates", "but 30 feature rows", "re-extract"),
              SLIDES[1]: ("feature width 32 differs from the other slides' 16", "same encoder"),
              SLIDES[2]: ("1 of 32 feature rows hold NaN or Inf (float16 overflow?)", "re-extract this slide"),
              SLIDES[3]: ("repeat another patch's coordinates (e.g. (0, 0))", "re-extract this slide into a new file"),
              SLIDES[4]: ("says it holds slide 'TCGA-ZZ-9999-01Z-00-DX1'", "rename the file"),
              SLIDES[5]: ("level-0 (scan) magnification is unknown", "give --magnification")}
    assert len(lines) == len(expect)
    for sid, parts in expect.items():
        line = next(x for x in lines if x.startswith(f"slide {sid}:"))
        assert all(p in line for p in parts), line
    assert not (root / "features").exists() and not any(p.name.startswith(".") for p in root.iterdir())


def test_format_flag_that_contradicts_the_file(tmp_path):
    src = trident_job(tmp_path)
    with pytest.raises(UserError, match="carries TRIDENT's attributes.*use --format trident"):
        import_features(src / "features_uni_v1", cohort(tmp_path), fmt="clam", magnification=20)


def test_flag_that_contradicts_a_file_is_refused(tmp_path):
    src = trident_job(tmp_path, src_mag=40)
    with pytest.raises(UserError, match="--magnification says 20x but its file says level-0 magnification 40x"):
        import_features(src / "features_uni_v1", cohort(tmp_path), magnification=20)


def test_folders_that_are_not_a_feature_folder(tmp_path):
    clam = clam_run(tmp_path)
    with pytest.raises(UserError, match="looks like CLAM's feature folder; give SRC as .*h5_files"):
        import_features(clam / "feats", cohort(tmp_path))
    src = trident_job(tmp_path)
    with pytest.raises(UserError, match="looks like a TRIDENT job folder.*features_uni_v1"):
        import_features(src, cohort(tmp_path))
    with pytest.raises(UserError, match="holds TRIDENT's patch files.*features_uni_v1"):
        import_features(src / "patches", cohort(tmp_path))


# --------------------------------------------------------------------------- existing features/ (marker rule)
def test_existing_features_need_overwrite(tmp_path):
    src = trident_job(tmp_path)
    root = cohort(tmp_path)
    import_features(src / "features_uni_v1", root)
    marker = json.loads((root / "features" / ".survmamba-outputs.json").read_text())
    assert marker["kind"] == "imported-features"
    with pytest.raises(UserError, match="holds 7 feature file.*add --overwrite"):
        import_features(src / "features_uni_v1", root)
    before = read_features_h5(root / "features" / f"{SLIDES[0]}.h5").features
    report = import_features(src / "features_uni_v1", root, overwrite=True, slides="first")
    assert len(report.slides) == len(CASES) and len(list((root / "features").glob("*.h5"))) == len(CASES)
    assert np.array_equal(before, read_features_h5(root / "features" / f"{SLIDES[0]}.h5").features)
    (root / "features" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="did not write \\(notes.txt\\).*nothing was deleted"):
        import_features(src / "features_uni_v1", root, overwrite=True)
    other = cohort(tmp_path / "b")
    (other / "features").mkdir()
    (other / "features" / "x.h5").write_bytes(b"someone's file")
    with pytest.raises(UserError, match="was not written by survmamba"):
        import_features(src / "features_uni_v1", other, overwrite=True)
    assert (other / "features" / "x.h5").read_bytes() == b"someone's file"


def test_synthetic_cohort_features_are_replaced_in_place(tmp_path):
    """A cohort folder survmamba wrote (its marker covers features/) accepts --overwrite."""
    from small_cohorts import synthetic_subset
    from survmamba_lite.data.features_export import export_features

    root = synthetic_subset(tmp_path / "c", cohort="COADREAD", seed=1, n_cases=12, n_folds=3)
    exp = export_features(root, "trident", tmp_path / "exp")
    with pytest.raises(UserError, match="add --overwrite"):
        import_features(exp.features_dir, root)
    report = import_features(exp.features_dir, root, overwrite=True)
    assert "validates" in report.validation and not (root / "features" / ".survmamba-outputs.json").exists()
    man = yaml.safe_load((root / "manifest.yaml").read_text())
    assert man["modalities"] == ["wsi", "rna"] and man["features"]["encoder"] == "synthetic-tiny"


def test_fast_chunk_reader_equals_h5py(tmp_path, monkeypatch):
    """read_dataset gathers one-row (TRIDENT) and 32-row (CLAM, partial last chunk) chunks; others fall back."""
    from survmamba_lite.data.features_sources import read_dataset

    x = fx.features(1000, 12, seed=5)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        for name, chunks, kw in (("one", (1, 12), {}), ("clam", (32, 12), {}), ("gzip", (1, 12), {"compression": "gzip"}),
                                 ("big", (1, 12), {"dtype": ">f4"})):
            d = f.create_dataset(name, shape=(0, 12), maxshape=(None, 12), chunks=chunks, dtype=kw.pop("dtype", x.dtype),
                                 **kw)
            for s in range(0, 1000, 300):                         # appended in batches, as the tools do
                d.resize(min(s + 300, 1000), axis=0)
                d[s:s + 300] = x[s:s + 300]
    with h5py.File(tmp_path / "a.h5") as f:
        expected = {name: f[name][()] for name in f}
        calls = []
        original = h5py.Dataset.__getitem__
        monkeypatch.setattr(h5py.Dataset, "__getitem__", lambda d, key: calls.append(d.name) or original(d, key))
        for name in ("one", "clam", "gzip", "big"):
            got = read_dataset(f[name])
            assert got.shape == (1000, 12) and np.array_equal(got, expected[name]), name
    assert calls == ["/gzip"]                                     # only the compressed one took h5py's path


def test_pt_files_in_a_renamed_folder_need_the_format(tmp_path):
    clam = clam_run(tmp_path)
    renamed = tmp_path / "my_features"
    import shutil

    shutil.copytree(clam / "feats" / "pt_files", renamed)
    root = cohort(tmp_path)
    with pytest.raises(UserError, match="holds no coordinates and its format cannot be told.*--format clam"):
        import_features(renamed, root, magnification=20)
    report = import_features(renamed, root, patches_dir=clam / "patches", magnification=20)   # told by patches/
    assert {s.format for s in report.slides} == {"clam-pt"}
