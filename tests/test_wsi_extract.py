"""Patch feature extraction: patch reader, encoders, features files, resume, CLI."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import openslide
import pytest
import torch
from PIL import Image

from survmamba_lite.cli import main as survmamba_main
from survmamba_lite.data.features_h5 import read_features_h5
from survmamba_lite.data.wsi.encoders import NORMALISATIONS, build_encoder
from survmamba_lite.data.wsi.extract import PatchDataset, extract_slide_features, resolve_device
from survmamba_lite.data.wsi.synthetic import Ellipse, write_synthetic_slide
from survmamba_lite.data.wsi.tiling import read_coords_h5, tile_slide

WSI_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "wsi"
CMU = WSI_DIR / "cmu-1-small-region.svs"
TCGA = WSI_DIR / "tcga-cr-7395-01a-01-ts1.svs"


def need_real_slides():
    if not (CMU.is_file() and TCGA.is_file()):
        pytest.skip(f"real slides not found under {WSI_DIR} (public OpenSlide/TCGA test slides)")


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    """A 0.25 um/px slide (patches read from level 1) with a blob: 20x grid, 512-px regions."""
    root = tmp_path_factory.mktemp("ex")
    slide = write_synthetic_slide(root / "slides" / "syn40.tiff", width=2600, height=1800, mpp=0.25,
                                  blobs=[Ellipse(1300, 900, 1100, 700)], levels=3)
    r = tile_slide(slide, root / "tiles", region_size=512, patch_size=256, progress=False, overview=False)
    assert (r.patch_size_level0, r.read_level, r.read_size) == (512, 1, 256)
    return r


@pytest.fixture(scope="module")
def few_patches(tmp_path_factory):
    """A tiny 20x slide that is all tissue: 2 x 3 = 6 patches (for EfficientNet on CPU)."""
    root = tmp_path_factory.mktemp("few")
    slide = write_synthetic_slide(root / "tiny.tiff", width=3 * 256 + 40, height=2 * 256 + 30, mpp=0.5,
                                  blobs=[Ellipse(400, 280, 2000, 2000)], levels=1)
    r = tile_slide(slide, root / "tiles", region_size=512, patch_size=256, progress=False, overview=False)
    assert r.n_patches == 6
    return r


def _reference_patch(slide_path, x, y, level, read_size, size) -> np.ndarray:
    """Slow twin of the patch reader, written out step by step."""
    s = openslide.OpenSlide(str(slide_path))
    rgba = np.asarray(s.read_region((int(x), int(y)), level, (read_size, read_size))).astype(np.float64)
    s.close()
    a = rgba[..., 3:] / 255.0
    rgb = np.clip(np.rint(rgba[..., :3] * a + 255.0 * (1 - a)), 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR))


def test_patch_reader_matches_step_by_step_read(tiled):
    ds = PatchDataset(tiled.slide_path, tiled.coords, tiled.read_level, tiled.read_size, 64)
    for i in (0, len(ds) // 2, len(ds) - 1):
        got = ds[i]
        assert got.dtype == torch.uint8 and got.shape == (3, 64, 64)
        ref = _reference_patch(tiled.slide_path, *tiled.coords[i], tiled.read_level, tiled.read_size, 64)
        np.testing.assert_array_equal(got.permute(1, 2, 0).numpy(), ref)
    ds.close()


def test_patch_reader_pads_outside_slide_with_white(tiled):
    ds = PatchDataset(tiled.slide_path, np.array([[2600 - 100, 0]]), 0, 200, 200)
    patch = ds[0].permute(1, 2, 0).numpy()
    assert (patch[:, 100:] == 255).all(), "area beyond the slide must read as white glass"


def test_random_projection_features_against_numpy(tiled, tmp_path):
    res = extract_slide_features(tiled.coords_path, tmp_path, encoder="random-projection", batch_size=7,
                                 device="cpu", progress=False)
    sf = read_features_h5(res.features_path)
    assert sf.features.shape == (tiled.n_patches, 64) and res.feature_dim == 64
    enc = build_encoder("random-projection")
    w = enc.backbone.weight.numpy().astype(np.float64)
    for i in (0, tiled.n_patches - 1):
        img = _reference_patch(tiled.slide_path, *tiled.coords[i], tiled.read_level, tiled.read_size, 32)
        x = img.astype(np.float64).transpose(2, 0, 1) / 255.0  # (3, 32, 32), 'unit' normalisation
        pooled = x.reshape(3, 8, 4, 8, 4).mean(axis=(2, 4)).reshape(-1)  # 4 x 4 average pool, C-major
        np.testing.assert_allclose(sf.features[i], pooled @ w, rtol=1e-5, atol=1e-5)


def test_features_file_contract_and_resume(tiled, tmp_path):
    out = tmp_path / "features"
    res = extract_slide_features(tiled.coords_path, out, encoder="random-projection", device="cpu", progress=False)
    assert not res.skipped and res.features_path == out / "syn40.h5"
    sf = read_features_h5(res.features_path)  # validates shapes, finiteness, required attributes
    np.testing.assert_array_equal(sf.coords, tiled.coords)
    np.testing.assert_array_equal(sf.region, tiled.region)
    assert sf.n_regions == tiled.n_regions
    a = sf.attrs
    assert (a["slide_id"], a["patch_size"], a["region_size"], a["magnification"], a["encoder"]) == \
        ("syn40", 512, 1024, 20.0, "random-projection")
    assert a["mpp"] == 0.25 and a["normalisation"] == "unit" and a["read_level"] == 1
    stamp = os.stat(res.features_path).st_mtime_ns
    again = extract_slide_features(tiled.coords_path, out, encoder="random-projection", device="cpu",
                                   progress=False)
    assert again.skipped and os.stat(res.features_path).st_mtime_ns == stamp
    redo = extract_slide_features(tiled.coords_path, out, encoder="random-projection", device="cpu",
                                  overwrite=True, progress=False)
    assert not redo.skipped
    np.testing.assert_array_equal(read_features_h5(redo.features_path).features, sf.features)


def test_moved_slide_found_by_slide_dir_or_named(tiled, tmp_path):
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "syn40.tiff").write_bytes(Path(tiled.slide_path).read_bytes())
    grid = read_coords_h5(tiled.coords_path)
    grid.slide_path = str(tmp_path / "gone" / "syn40.tiff")
    from survmamba_lite.data.wsi.extract import locate_slide
    assert locate_slide(grid, slide_dir=moved) == moved / "syn40.tiff"
    assert locate_slide(grid, slide_path=moved / "syn40.tiff") == moved / "syn40.tiff"
    with pytest.raises(FileNotFoundError, match="--slide PATH or --slide-dir"):
        locate_slide(grid)


def test_wrong_slide_for_coords_is_refused(tiled, tmp_path):
    other = write_synthetic_slide(tmp_path / "other.tiff", width=900, height=700, mpp=0.25, levels=2)
    with pytest.raises(ValueError, match="tile this slide again"):
        extract_slide_features(tiled.coords_path, tmp_path / "f", encoder="random-projection", slide_path=other,
                               device="cpu", progress=False)


def test_efficientnet_lite0_features(few_patches, tmp_path):
    enc = build_encoder("efficientnet-lite0")
    assert (enc.input_size, enc.feature_dim, enc.normalisation) == (224, 1280, "inception")
    assert not any(p.requires_grad for p in enc.parameters())
    a = extract_slide_features(few_patches.coords_path, tmp_path / "a", encoder=enc, batch_size=4, device="cpu",
                               progress=False)
    feats = read_features_h5(a.features_path).features
    assert feats.shape == (6, 1280) and np.isfinite(feats).all()
    assert feats.std(axis=0).max() > 0 and (feats >= 0).all()  # ReLU6 before the pooling
    b = extract_slide_features(few_patches.coords_path, tmp_path / "b", encoder=enc, batch_size=6, device="cpu",
                               progress=False)
    np.testing.assert_allclose(read_features_h5(b.features_path).features, feats, rtol=1e-4, atol=1e-5)
    # independent path: the package's own forward (its pooling, no channels-last) gives the
    # same ImageNet logits as its classifier applied to our pooled features
    ds = PatchDataset(few_patches.slide_path, few_patches.coords, 0, 256, 224)
    images = torch.stack([ds[i] for i in range(3)])
    ds.close()
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALISATIONS["inception"])
    x = (images.float() / 255 - mean) / std
    net = enc.backbone.net
    with torch.inference_mode():
        logits_ref = net(x.contiguous())
        logits_ours = net._fc(torch.from_numpy(feats[:3]))
    print("max |logit diff|", float((logits_ref - logits_ours).abs().max()))
    torch.testing.assert_close(logits_ours, logits_ref, rtol=1e-3, atol=1e-3)


def test_encoder_registry_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("resnet-99")
    with pytest.raises(ValueError, match="--weights"):
        build_encoder("ctranspath")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        build_encoder("torchscript", tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a TorchScript model"):
        build_encoder("ctranspath", junk)


class _TinyEncoder(torch.nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=4)
        self.fc = torch.nn.Linear(8, dim)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script
def test_torchscript_and_ctranspath_files(tmp_path):
    torch.manual_seed(0)
    for dim in (768, 10):
        torch.jit.script(_TinyEncoder(dim).eval()).save(str(tmp_path / f"enc{dim}.pt"))
    enc = build_encoder("torchscript", tmp_path / "enc10.pt", input_size=64, normalisation="unit")
    assert (enc.feature_dim, enc.input_size) == (10, 64)
    out = enc(torch.full((2, 3, 64, 64), 128, dtype=torch.uint8))
    assert out.shape == (2, 10)
    ct = build_encoder("ctranspath", tmp_path / "enc768.pt")
    assert (ct.feature_dim, ct.input_size, ct.normalisation) == (768, 224, "imagenet")
    with pytest.raises(ValueError, match="768"):
        build_encoder("ctranspath", tmp_path / "enc10.pt")
    with pytest.raises(ValueError, match=r"expects \(B, 3, 224, 224\)"):
        ct(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_torch_export_archive(tmp_path):
    torch.manual_seed(0)
    model = _TinyEncoder(12).eval()
    ep = torch.export.export(model, (torch.randn(2, 3, 64, 64),),
                             dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(ep, str(tmp_path / "enc.pt2"))
    enc = build_encoder("torchscript", tmp_path / "enc.pt2", input_size=64, normalisation="unit")
    images = torch.randint(0, 256, (5, 3, 64, 64), dtype=torch.uint8)
    with torch.inference_mode():
        ref = model(images.float() / 255)
    torch.testing.assert_close(enc(images), ref)
    assert enc.feature_dim == 12


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_cli_extract_many_resume_and_errors(tiled, few_patches, tmp_path, capsys):
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    for r in (tiled, few_patches):
        (tiles / r.coords_path.name).write_bytes(r.coords_path.read_bytes())
    out = tmp_path / "features"
    args = ["extract", str(tiles), "--out", str(out), "--encoder", "random-projection", "--device", "cpu",
            "--quiet", "--batch-size", "5"]
    assert survmamba_main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["syn40.h5", "tiny.h5"]
    assert capsys.readouterr().out.count("features in") == 2
    assert survmamba_main(args) == 0
    assert capsys.readouterr().out.count("skipped") == 2
    assert survmamba_main(["extract", str(tiles), "--out", str(out), "--slide", "x.svs", "--quiet"]) == 2
    assert "--slide-dir" in capsys.readouterr().err
    assert survmamba_main(["extract", str(tmp_path / "none.coords.h5"), "--out", str(out), "--encoder",
                           "random-projection", "--quiet"]) == 2
    assert "survmamba tile" in capsys.readouterr().err


@pytest.mark.realdata
def test_real_cmu_extract_efficientnet(tmp_path):
    need_real_slides()
    r = tile_slide(CMU, tmp_path / "tiles", progress=False, overview=False)
    res = extract_slide_features(r.coords_path, tmp_path / "features", batch_size=32, device="cpu",
                                 progress=False)
    sf = read_features_h5(res.features_path)
    print(f"cmu: {res.n_patches} patches, {res.patches_per_second:.1f} patches/s")
    assert sf.features.shape == (r.n_patches, 1280) and np.isfinite(sf.features).all()
    assert sf.attrs["slide_id"] == "cmu-1-small-region" and sf.attrs["encoder"] == "efficientnet-lite0"


@pytest.mark.realdata
def test_real_tcga_extract_with_explicit_resolution(tmp_path):
    need_real_slides()
    r = tile_slide(TCGA, tmp_path / "tiles", base_magnification=40, region_size=1024, progress=False,
                   overview=False)
    res = extract_slide_features(r.coords_path, tmp_path / "features", encoder="random-projection",
                                 device="cpu", progress=False)
    sf = read_features_h5(res.features_path)
    assert sf.features.shape == (r.n_patches, 64) and sf.attrs["mpp_source"] == "user-base-magnification"
    assert sf.attrs["read_level"] == 1 and sf.attrs["patch_size"] == 512


@pytest.mark.realdata
@pytest.mark.slow
def test_real_tcga_extract_efficientnet(tmp_path):
    need_real_slides()
    r = tile_slide(TCGA, tmp_path / "tiles", base_magnification=20, progress=False, overview=False)
    res = extract_slide_features(r.coords_path, tmp_path / "features", batch_size=32, progress=False)
    sf = read_features_h5(res.features_path)
    assert sf.features.shape == (r.n_patches, 1280) and np.isfinite(sf.features).all()


@pytest.mark.gpu
def test_cuda_matches_cpu(few_patches, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    enc = build_encoder("efficientnet-lite0")
    cpu = extract_slide_features(few_patches.coords_path, tmp_path / "cpu", encoder=enc, device="cpu",
                                 progress=False)
    gpu = extract_slide_features(few_patches.coords_path, tmp_path / "gpu", encoder=enc, device="cuda",
                                 precision="fp32", workers=2, progress=False)
    assert gpu.device.startswith("cuda")
    np.testing.assert_allclose(read_features_h5(gpu.features_path).features,
                               read_features_h5(cpu.features_path).features, rtol=1e-2, atol=1e-2)
