"""SurvMamba: every Table 3 variant trains, batches equal single patients, runs are reproducible."""
from __future__ import annotations


import pytest
import torch

from survmamba_lite import SurvMamba, SurvMambaConfig
from survmamba_lite.data import collate_bags
from survmamba_lite.model.encoders import FunctionEncoder, group_functions
from survmamba_lite.model.him import compact, masked_mean
from survmamba_lite.model.ifm import InteractionFusionMamba, resample_to_length
from survmamba_lite.registry import ModelInputs, build_model
from survmamba_lite.survival import nll_loss
from survmamba_lite.experiment.complexity import count_flops, count_parameters

from conftest import TINY_BINS, TINY_WSI_DIM, build_tiny_bags, build_tiny_hierarchy

VARIANTS = "ABCDEF"


def make_config(variant="F", modalities=("wsi", "rna"), **kw):
    kw = dict(dim=8, d_state=4, expand=2, d_conv=3, dropout=0.0, scan_backend="parallel", genomic_hidden=5) | kw
    return SurvMambaConfig(n_bins=TINY_BINS, wsi_dim=TINY_WSI_DIM, hierarchy=build_tiny_hierarchy(),
                           modalities=modalities, variant=variant, **kw)


CASES = [("F", ("wsi", "rna"), {}), ("F", ("wsi", "rna"), {"ifm_align": "interpolate"}),
         ("F", ("wsi", "rna"), {"bidirectional": False})]
CASES += [(v, ("wsi", "rna"), {}) for v in "ABCDE"]
CASES += [(v, m, {}) for v in "ABC" for m in (("rna",), ("wsi",))]


@pytest.mark.parametrize("variant,modalities,kw", CASES)
def test_forward_backward_every_variant(variant, modalities, kw):
    torch.manual_seed(0)
    model = SurvMamba(make_config(variant, modalities, **kw))
    batch = collate_bags(build_tiny_bags([(3, 11), (2, 4), (1, 1)]))
    logits = model(batch)
    assert logits.shape == (3, TINY_BINS) and torch.isfinite(logits).all()
    nll_loss(logits, batch.time_bin, batch.event).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"variant {variant} {modalities}: no/invalid gradient for {missing}"


@pytest.mark.parametrize("variant,kw", [(v, {}) for v in VARIANTS] + [("F", {"ifm_align": "interpolate"}),
                                                                      ("F", {"bidirectional": False})])
def test_patient_alone_equals_patient_in_batch(variant, kw):
    torch.manual_seed(0)
    model = SurvMamba(make_config(variant, **kw)).double().eval()
    bags = build_tiny_bags([(2, 3), (4, 13), (1, 2)])
    for b in bags:
        b.features, b.rna = b.features.double(), b.rna.double()
    batched = model(collate_bags(bags))
    for i, b in enumerate(bags):
        alone = model(collate_bags([b]))[0]
        assert (batched[i] - alone).abs().max() < 1e-9, f"variant {variant} patient {i}"


def test_seeded_cpu_runs_are_bit_identical():
    def run():
        torch.manual_seed(123)
        model = SurvMamba(make_config("F", dropout=0.1))
        opt = torch.optim.RAdam(model.parameters(), lr=2e-4, weight_decay=5e-3)
        batch = collate_bags(build_tiny_bags([(3, 7), (2, 5)]))
        for _ in range(2):
            opt.zero_grad()
            nll_loss(model(batch), batch.time_bin, batch.event).backward()
            opt.step()
        return [p.detach().clone() for p in model.parameters()] + [model(batch).detach()]
    a, b = run(), run()
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_variant_structure_and_alpha():
    full = SurvMamba(make_config("F"))
    assert full.alpha is not None and abs(full.alpha.item() - 0.5) < 1e-12
    assert isinstance(full.fuse_fine, InteractionFusionMamba) and isinstance(full.fuse_coarse, InteractionFusionMamba)
    a = SurvMamba(make_config("A"))
    assert a.alpha is None and a.fuse_coarse is None and not a.him["wsi"].grouped
    d, e = SurvMamba(make_config("D")), SurvMamba(make_config("E"))
    assert isinstance(d.fuse_fine, InteractionFusionMamba) and not isinstance(d.fuse_coarse, InteractionFusionMamba)
    assert isinstance(e.fuse_coarse, InteractionFusionMamba) and not isinstance(e.fuse_fine, InteractionFusionMamba)
    uni = SurvMamba(make_config("F", bidirectional=False))
    assert count_parameters(uni) < count_parameters(full)


def test_model_a_sees_all_fine_tokens_as_one_sequence():
    """In model A the order of regions matters (one causal sequence); in B regions are independent."""
    torch.manual_seed(0)
    bags = build_tiny_bags([(3, 9)])
    for variant, should_change in (("A", True), ("B", False)):
        torch.manual_seed(0)
        model = SurvMamba(make_config(variant, modalities=("wsi",), bidirectional=False)).double().eval()
        bag = bags[0]
        bag.features = bag.features.double()
        first = model.encode(collate_bags([bag]))["wsi"]
        # perturb the patches of the first region (lowest region id, first in the flattened sequence):
        # with a causal scan only a single long sequence lets them reach the later regions' tokens
        head = bag.region == bag.region.min()
        feats = bag.features.clone()
        feats[head] += torch.randn_like(feats[head])
        bag2 = type(bag)(bag.case_id, feats, bag.region, bag.rna, bag.time, bag.event, bag.time_bin)
        second = model.encode(collate_bags([bag2]))["wsi"]
        n_head = int(head.sum())
        changed = (first.fine[0, n_head:] - second.fine[0, n_head:]).abs().max() > 1e-8
        assert bool(changed) == should_change, variant


def test_config_errors_and_round_trip():
    with pytest.raises(ValueError, match="Table 3"):
        make_config("G")
    with pytest.raises(ValueError, match="IFM"):
        make_config("F", modalities=("rna",))
    with pytest.raises(ValueError, match="ifm_align"):
        make_config("F", ifm_align="attention")
    with pytest.raises(ValueError, match="hierarchy"):
        SurvMambaConfig(modalities=("rna",), variant="C")
    c = make_config("D", bidirectional=False)
    assert SurvMambaConfig.from_dict(c.to_dict()) == c


def test_missing_modality_in_batch_is_a_clear_error():
    model = SurvMamba(make_config("F"))
    batch = collate_bags(build_tiny_bags([(2, 3)], wsi=False))
    with pytest.raises(ValueError, match="without slide features"):
        model(batch)


def test_registry_builds_survmamba_variants():
    inputs = ModelInputs(n_bins=TINY_BINS, wsi_dim=TINY_WSI_DIM, hierarchy=build_tiny_hierarchy())
    m = build_model("survmamba", inputs, variant="E", bidirectional=False, dim=8, d_state=4)
    assert m.config.variant == "E" and not m.config.bidirectional
    g = build_model("survmamba-rna", inputs, dim=8, d_state=4)
    assert g.modalities == ("rna",) and g.config.variant == "C"
    with pytest.raises(ValueError, match="does not accept"):
        build_model("survmamba", inputs, varient="F")


def test_function_encoder_equals_per_function_mlps():
    h = build_tiny_hierarchy()
    torch.manual_seed(0)
    enc = FunctionEncoder(h, dim=3, hidden=4, dropout=0.0).double().eval()
    rna = torch.randn(2, h.n_genes, dtype=torch.float64)
    got = enc(rna)
    start = 0
    for f, genes in enumerate(h.function_genes):
        w = enc.w1[start:start + len(genes)]                       # this function's (K_f, hidden) weights
        start += len(genes)
        hid = torch.nn.functional.elu(rna[:, list(genes)] @ w + enc.b1[f])
        assert torch.allclose(got[:, f], enc.out(hid), atol=1e-12)
    assert enc.w1.shape[0] == sum(len(g) for g in h.function_genes)   # no padded parameters


def test_grouping_helpers():
    h = build_tiny_hierarchy()
    tokens = torch.randn(2, h.n_functions, 3)
    grouped, mask = group_functions(tokens, h)
    assert grouped.shape == (2, h.n_processes, 3, 3) and mask.sum() == h.n_functions
    flat, fmask = compact(grouped, mask.expand(2, -1, -1))
    assert torch.equal(flat[fmask.expand(2, -1)].view(2, -1, 3), tokens)  # processes are contiguous here
    assert torch.allclose(masked_mean(grouped, mask.expand(2, -1, -1), 2)[:, 1], tokens[:, 3:].mean(1))


def test_resample_to_length_endpoints_and_identity():
    x = torch.randn(3, 6, 2)
    n = torch.tensor([6, 4, 1])
    same = resample_to_length(x, n, n, 6)
    for i, k in enumerate(n.tolist()):
        assert torch.allclose(same[i, :k], x[i, :k]) and torch.all(same[i, k:] == 0)
    up = resample_to_length(x, torch.tensor([4, 4, 4]), torch.tensor([7, 7, 7]), 7)
    assert torch.allclose(up[:, 0], x[:, 0]) and torch.allclose(up[:, 6], x[:, 3])


def test_flops_scale_linearly_with_patches():
    torch.manual_seed(0)
    model = SurvMamba(make_config("C", modalities=("wsi",))).eval()
    f1 = count_flops(model, collate_bags(build_tiny_bags([(4, 64)], rna=False)))
    f2 = count_flops(model, collate_bags(build_tiny_bags([(4, 128)], rna=False)))
    assert f1["scan"] > 0 and f1["matmul"] > 0
    assert 1.8 < f2["total"] / f1["total"] < 2.2


@pytest.mark.parametrize("align", ["pool", "interpolate"])
def test_ifm_is_symmetric_in_padding(align):
    torch.manual_seed(0)
    ifm = InteractionFusionMamba(8, 4, 2, 3, align, "ref").double().eval()
    a1, a2 = torch.randn(1, 5, 8, dtype=torch.float64), torch.randn(1, 3, 8, dtype=torch.float64)
    alone = ifm(a1, torch.ones(1, 5, dtype=torch.bool), a2, torch.ones(1, 3, dtype=torch.bool))
    p1 = torch.cat([a1, torch.randn(1, 4, 8, dtype=torch.float64)], 1)
    p2 = torch.cat([a2, torch.randn(1, 6, 8, dtype=torch.float64)], 1)
    m1 = torch.arange(9) < 5
    m2 = torch.arange(9) < 3
    padded = ifm(p1, m1.unsqueeze(0), p2, m2.unsqueeze(0))
    assert torch.allclose(alone, padded, atol=1e-10)


def test_all_variant_names_are_covered():
    """Every Table 3 variant (A-F) is in CASES, and both directions of the full model (F) are."""
    covered = {v for v, _, _ in CASES}
    assert covered == set(VARIANTS) == set("ABCDEF")
    directions = {kw.get("bidirectional", True) for v, m, kw in CASES if v == "F" and m == ("wsi", "rna")}
    assert directions == {True, False}


@pytest.mark.parametrize("variant", ["A", "F"])
def test_recompute_gives_the_same_outputs_and_gradients(variant):
    """recompute_tokens slices the fine level into groups and recomputes it in backward: same numbers."""
    bags = build_tiny_bags([(3, 11), (2, 4)])
    for b in bags:
        b.features, b.rna = b.features.double(), b.rna.double()
    batch = collate_bags(bags)
    grads, outs = [], []
    for recompute in (None, 8):            # 8 < 3 * 11 patches: sliced and recomputed
        torch.manual_seed(0)
        model = SurvMamba(make_config(variant, recompute_tokens=recompute)).double()
        out = model(batch)
        nll_loss(out, batch.time_bin, batch.event).backward()
        outs.append(out.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=1e-12)
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-7, atol=1e-10, msg=lambda m: f"{name}: {m}")


def test_bf16_autocast_on_cpu_is_close_to_fp32():
    from survmamba_lite.utils.precision import autocast

    torch.manual_seed(0)
    model = SurvMamba(make_config("F")).eval()
    batch = collate_bags(build_tiny_bags([(3, 11), (2, 4)]))
    ref = model(batch)
    with autocast("bf16", "cpu"):
        low = model(batch)
    assert low.dtype in (torch.float32, torch.bfloat16)
    assert (low.float() - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3
