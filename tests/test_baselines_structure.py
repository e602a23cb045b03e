"""Each baseline pinned to the code of its original: the parameter count of a stated
configuration computed from the original's layer list, and its attention pattern or loss
weighting.

Configuration everywhere: the tiny hierarchy of conftest (12 genes; 5 functions of 3, 4, 2,
4, 2 genes; 2 processes of 7 and 5 genes), T = 4 time bins, patch features F = 1024 (the
ResNet-50 features of the originals), every other width at the original's default.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import TINY_BINS, TINY_WSI_DIM, build_tiny_bags, build_tiny_hierarchy
from survmamba_lite import baselines
from survmamba_lite.baselines.common import GatedKroneckerFusion, GroupSNN, gene_family_hierarchy
from survmamba_lite.baselines.transmil import NystromAttention, moore_penrose_pinv
from survmamba_lite.data.bag import collate_bags
from survmamba_lite.experiment.config import ExperimentConfig
from survmamba_lite.registry import ModelInputs, build_model

T, F_IN = 4, 1024
G = 12
FUNCTION_SIZES = (3, 4, 2, 4, 2)
PROCESS_SIZES = (7, 5)


def lin(i: int, o: int) -> int:
    """nn.Linear(i, o) with bias."""
    return i * o + o


def ln(d: int) -> int:
    """nn.LayerNorm(d)."""
    return 2 * d


def snn_block(i: int, o: int) -> int:
    """SNN_Block(dim1, dim2): Linear + ELU + AlphaDropout."""
    return lin(i, o)


def sig_networks(sizes, hidden=(256, 256)) -> int:
    """MCAT/MOTCat/SurvPath per-group networks: [SNN_Block(K_f, 256), SNN_Block(256, 256)] each."""
    return sum(snn_block(k, hidden[0]) + snn_block(hidden[0], hidden[1]) for k in sizes)


def attn_net_gated(L: int, D: int, n_classes: int = 1) -> int:
    """Attn_Net_Gated(L, D, n_classes): attention_a Linear(L, D), attention_b Linear(L, D), attention_c Linear(D, n)."""
    return 2 * lin(L, D) + lin(D, n_classes)


def multihead_attention(d: int) -> int:
    """nn.MultiheadAttention(d, heads): in_proj (3d x d + 3d) and out_proj Linear(d, d)."""
    return 3 * d * d + 3 * d + lin(d, d)


def transformer_encoder_layer(d: int, ff: int) -> int:
    """nn.TransformerEncoderLayer(d, nhead, ff): self-attention, Linear(d, ff), Linear(ff, d), two LayerNorms."""
    return multihead_attention(d) + lin(d, ff) + lin(ff, d) + 2 * ln(d)


def bilinear_fusion(d1: int, d2: int, r1: int = 32, r2: int = 32, mmhid: int = 256, gated: bool = True) -> int:
    """MCAT/PORPOISE BilinearFusion(dim1, dim2, scale_dim1, scale_dim2, mmhid), skip=0, use_bilinear=0,
    with the reduced widths r = dim // scale_dim (256 // 8 = 32 in the originals)."""
    gates = lin(d1 + d2, r1) + lin(d1 + d2, r2) if gated else 0
    return (lin(d1, r1) + lin(d2, r2) + gates + lin(r1, r1) + lin(r2, r2)
            + lin((r1 + 1) * (r2 + 1), 256) + lin(256, mmhid))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(name: str, **options) -> nn.Module:
    return build_model(name, ModelInputs(n_bins=T, wsi_dim=F_IN, hierarchy=build_tiny_hierarchy()), **options)


# --- parameter counts from the originals' layer lists ------------------------------------------

def test_snn_is_the_small_snn_of_mcat_and_porpoise():
    """models/model_genomic.py SNN(model_size_omic='small'): hidden [256, 256, 256, 256], classifier."""
    expected = snn_block(G, 256) + 3 * snn_block(256, 256) + lin(256, T)
    model = build("snn")
    assert n_params(model) == expected
    blocks = list(model.encoder.net)
    assert len(blocks) == 4 and all(isinstance(b[1], nn.ELU) and isinstance(b[2], nn.AlphaDropout) for b in blocks)
    assert all(b[2].p == 0.25 for b in blocks)
    assert isinstance(build("snn", activation="selu").encoder.net[0][1], nn.SELU)   # Klambauer's activation


def test_survpath_count_from_model_survpath():
    """models/model_SurvPath.py: sig_networks, wsi_projection_net Linear(F, 256), MMAttentionLayer
    (LayerNorm(256) + to_qkv Linear(256, 3 * 128, bias=False), residual=False, no to_out),
    FeedForward(128) = LayerNorm(128) + Linear(128, 128) + Linear(128, 128), LayerNorm(128),
    to_logits Linear(256, 64) + Linear(64, T)."""
    d, e = 256, 128
    expected = (sig_networks(FUNCTION_SIZES) + lin(F_IN, d) + ln(d) + d * 3 * e
                + ln(e) + 2 * lin(e, e) + ln(e) + lin(d, d // 4) + lin(d // 4, T))
    assert n_params(build("survpath")) == expected


def _mcat_like(coattention: int, sizes=PROCESS_SIZES, fusion: str = "cat") -> int:
    """models/model_coattn.py MCAT_Surv (small): wsi_net Linear(F, 256), sig_networks, co-attention,
    two 2-layer transformers (d 256, 8 heads, FF 512), two Attn_Net_Gated(256, 256), two rho
    Linear(256, 256), fusion (cat: Linear(512, 256) + Linear(256, 256)), classifier Linear(256, T)."""
    d = 256
    fuse = lin(2 * d, d) + lin(d, d) if fusion == "cat" else bilinear_fusion(d, d)
    return (lin(F_IN, d) + sig_networks(sizes) + coattention + 2 * 2 * transformer_encoder_layer(d, 2 * d)
            + 2 * attn_net_gated(d, d) + 2 * lin(d, d) + fuse + lin(d, T))


def test_mcat_count_from_model_coattn():
    model = build("mcat")
    assert n_params(model) == _mcat_like(multihead_attention(256))
    assert model.coattn.heads == 1                   # MultiheadAttention(embed_dim=256, num_heads=1): genomic queries
    assert len(model.path_layers) == len(model.omic_layers) == 2
    assert n_params(build("mcat", fusion="kp")) == _mcat_like(multihead_attention(256), fusion="kp")


def test_mcat_gene_family_tokens():
    """MCAT's six-family tokens from a signatures.csv-style table (families over the tiny genes)."""
    families = {"Tumor Suppressor Genes": ["g0", "g1", "g99"], "Oncogenes": ["g2", "g3", "g4"],
                "Protein Kinases": ["g5"], "Cell Differentiation Markers": ["g6", "g7"],
                "Transcription Factors": ["g8", "g9", "g10"], "Cytokines and Growth Factors": ["g11", "g0"]}
    model = build("mcat", genomic_tokens="family", gene_families=families)
    sizes = (2, 3, 1, 2, 3, 2)
    assert n_params(model) == _mcat_like(multihead_attention(256), sizes=sizes)
    batch = collate_bags(build_tiny_bags([(2, 5)], wsi_dim=F_IN))
    assert model.genomic(batch.rna).shape == (1, 6, 256)                     # one token per family
    h = gene_family_hierarchy(build_tiny_hierarchy(), families)
    assert h.function_ids == tuple(families) and h.function_genes[0] == (0, 1)


def test_motcat_count_from_model_motcat():
    """models/model_motcat.py MOTCAT_Surv: MCAT's layers with the co-attention replaced by the
    parameter-free OT_Attn_assem."""
    assert n_params(build("motcat")) == _mcat_like(0)


def test_clam_counts_from_model_clam():
    """models/model_clam.py (small, embed_dim F): fc Linear(F, 512), Attn_Net_Gated(512, 256, 1 or T),
    SB: classifiers Linear(512, T); MB: T x Linear(512, 1); T instance classifiers Linear(512, 2)."""
    base = lin(F_IN, 512) + T * lin(512, 2)
    assert n_params(build("clam-sb")) == base + attn_net_gated(512, 256, 1) + lin(512, T)
    assert n_params(build("clam-mb")) == base + attn_net_gated(512, 256, T) + T * lin(512, 1)


def test_transmil_count_from_transmil_py():
    """models/TransMIL.py: _fc1 Linear(F, 512), cls_token, two TransLayer (LayerNorm + NystromAttention:
    to_qkv Linear(512, 3 * 512, bias=False), to_out Linear(512, 512), res_conv Conv2d(8, 8, (33, 1),
    groups=8, bias=False)), PPEG (depth-wise 7, 5, 3 convolutions with bias), LayerNorm, _fc2 Linear(512, T)."""
    d = 512
    nystrom = d * 3 * d + lin(d, d) + 8 * 33
    ppeg = sum(d * k * k + d for k in (7, 5, 3))
    expected = lin(F_IN, d) + d + 2 * (ln(d) + nystrom) + ppeg + ln(d) + lin(d, T)
    assert n_params(build("transmil")) == expected
    exact = build("transmil", attention="exact")
    assert n_params(exact) == expected - 2 * (nystrom - (multihead_attention(d)))


def test_late_fusion_kp_is_gated_bilinear_fusion():
    """The KP rows fuse with PORPOISE's BilinearFusion (gates on, each reduced to 32, 33 x 33 -> 256 -> D);
    the Cat rows with Linear(2D, D). The rest of the model is shared, so the difference is exact."""
    for mil in ("abmil", "clam-mb", "transmil"):
        kp, cat = build(f"{mil}-kp"), build(f"{mil}-cat")
        d_wsi = kp.wsi_encoder.out_dim
        assert n_params(kp) - n_params(cat) == bilinear_fusion(d_wsi, 512, mmhid=512) - lin(
            d_wsi + 512, 512), mil
        assert len(kp.rna_encoder.net) == 2                                   # PORPOISE's omic branch: 2 x SNN
    ungated = build("abmil-kp", kp_gates=False)
    assert n_params(build("abmil-kp")) - n_params(ungated) == lin(1024, 32) * 2


def test_group_snn_count_is_per_group_two_blocks():
    h = build_tiny_hierarchy()
    assert n_params(GroupSNN(h, dim=256, hidden=256)) == sig_networks(FUNCTION_SIZES)


# --- attention patterns and loss weighting -----------------------------------------------------

def test_survpath_patch_tokens_carry_no_residual():
    """Without residuals, a patch token's output depends on its own features only through its query:
    two identical patches give identical outputs, however different the others are."""
    torch.manual_seed(0)
    model = build("survpath").double().eval()
    bag = build_tiny_bags([(1, 6)], wsi_dim=F_IN, seed=2)[0]
    bag.features, bag.rna = bag.features.double(), bag.rna.double()
    bag.features[3] = bag.features[0]
    batch = collate_bags([bag])
    outs = {}
    model.norm_out.register_forward_hook(lambda m, i, o: outs.setdefault("y", o))
    model(batch)
    y = outs["y"][0]                                                           # (Np + L, D/2)
    n_p = build_tiny_hierarchy().n_functions
    x_rows = torch.where((batch.patches[0][batch.patch_mask[0]] == bag.features[0]).all(-1))[0]
    assert x_rows.numel() == 2
    torch.testing.assert_close(y[n_p + x_rows[0]], y[n_p + x_rows[1]])
    assert y.shape[-1] == 128


def test_motcat_normalises_features_and_outputs_pi_transpose_h():
    torch.manual_seed(0)
    model = build_model("motcat", ModelInputs(TINY_BINS, TINY_WSI_DIM, build_tiny_hierarchy()), dim=8, heads=2,
                        fn_hidden=8).double().eval()
    g, h = torch.randn(1, 2, 8, dtype=torch.float64), torch.randn(1, 5, 8, dtype=torch.float64)
    mask = torch.ones(1, 5, dtype=torch.bool)
    plan = model.transport_plan(g, h, mask)
    # normalize_feature: adding a constant to every feature of a token leaves the plan unchanged
    shifted = h + torch.tensor([3.0, -1.0, 0.0, 7.0, 2.0], dtype=torch.float64)[None, :, None]
    torch.testing.assert_close(model.transport_plan(g, shifted, mask), plan)
    # the plan is Sinkhorn on the max-scaled squared distances of the shifted tokens
    gn, hn = g - g.amin(-1, keepdim=True), h - h.amin(-1, keepdim=True)
    cost = torch.cdist(gn, hn) ** 2
    ref = baselines.sinkhorn_log(cost / cost.max(), torch.full((1, 2), 0.5, dtype=torch.float64),
                                 torch.full((1, 5), 0.2, dtype=torch.float64), 0.1, 0.5, 100)
    torch.testing.assert_close(plan, ref)
    torch.testing.assert_close(model.coattend(g, h, mask), plan @ h)           # pi^T H, no rescaling


def test_clam_loss_is_0_7_bag_plus_0_3_instance_from_one_forward():
    """core_utils.py train_loop_clam: bag_weight * loss + (1 - bag_weight) * instance_loss, bag_weight 0.7,
    both from one forward pass (the auxiliary-loss hook); through the trainer's own step loss."""
    from survmamba_lite.baselines.common import flatten_bag
    from survmamba_lite.experiment.step import EagerTrainStep
    from survmamba_lite.survival import nll_loss

    for name in ("clam-sb", "clam-mb"):
        torch.manual_seed(0)
        model = build(name, k_sample=2, dropout=0.0).train()
        bags = build_tiny_bags([(2, 9), (1, 4)], wsi_dim=F_IN)
        bags[0].event, bags[0].time_bin = 1, 2
        bags[1].event = 0
        batch = collate_bags(bags)
        calls = []
        model.encoder.instance.register_forward_hook(lambda m, i, o: calls.append(1))
        loss = EagerTrainStep(model, None, alpha=0.0, auxiliary=True).loss(batch)
        assert len(calls) == 1, name                                           # one encoder pass for both terms
        logits = model(batch)
        with torch.no_grad():                                                  # the instance loss by hand
            x, mask = flatten_bag(batch.patches, batch.patch_mask)
            h, _, a = model.encoder.attend(x, mask)
            att = a[0, 2 if name == "clam-mb" else 0, :9]
            order = torch.argsort(att, descending=True)
            picked = torch.cat([order[:2], order[-2:]])
            inst = F.cross_entropy(model.instance_classifiers[2](h[0, picked]), torch.tensor([1, 1, 0, 0]))
            expected = 0.7 * nll_loss(logits, batch.time_bin, batch.event, alpha=0.0) + 0.3 * inst
        print(f"{name}: loss {loss.item():.6f}, 0.7 bag + 0.3 instance {expected.item():.6f}")
        torch.testing.assert_close(loss.detach(), expected)
        assert model.survival_loss_weight == 0.7 and inst > 0


def test_nystrom_attention_matches_a_loop_reference():
    """Slow twin: landmarks as explicit segment means (front zero padding), the three softmaxes,
    the pseudo-inverse and the value convolution written out per head."""
    torch.manual_seed(0)
    att = NystromAttention(8, heads=2, dim_head=4, landmarks=3, pinv_iters=6, kernel=5, dropout=0.0).double()
    x = torch.randn(1, 7, 8, dtype=torch.float64)
    got = att(x)
    xp = torch.cat([torch.zeros(1, 2, 8, dtype=torch.float64), x], 1)         # 9 = 3 landmarks x 3
    q, k, v = att.to_qkv(xp)[0].chunk(3, -1)
    heads = []
    for hd in range(2):
        sl = slice(4 * hd, 4 * hd + 4)
        qh, kh, vh = q[:, sl] / 2.0, k[:, sl], v[:, sl]
        ql = torch.stack([qh[3 * j:3 * j + 3].mean(0) for j in range(3)])
        kl = torch.stack([kh[3 * j:3 * j + 3].mean(0) for j in range(3)])
        a1, a2, a3 = (qh @ kl.T).softmax(-1), (ql @ kl.T).softmax(-1), (ql @ kh.T).softmax(-1)
        heads.append((a1, a2, a3, vh))
    a2_all = torch.stack([h_[1] for h_ in heads])                             # pinv scaled over all heads
    pinv = moore_penrose_pinv(a2_all.unsqueeze(0), 6)[0]
    outs = []
    for hd, (a1, _, a3, vh) in enumerate(heads):
        conv = F.conv1d(vh.T.unsqueeze(0), att.res_conv.weight[hd, 0].T.unsqueeze(0).expand(4, 1, 5),
                        padding=2, groups=4)[0].T
        outs.append(a1 @ pinv[hd] @ (a3 @ vh) + conv)
    ref = att.to_out(torch.cat(outs, -1))[-7:]
    diff = (got[0] - ref).abs().max().item()
    print(f"Nystrom attention vs loop reference: max diff {diff:.2e}")
    assert diff < 1e-10


def test_nystrom_with_every_token_a_landmark_is_softmax_attention():
    """n <= m: the three factors are exact attention once the pseudo-inverse has converged."""
    torch.manual_seed(0)
    att = NystromAttention(8, heads=2, dim_head=4, landmarks=6, pinv_iters=40, dropout=0.0).double()
    nn.init.zeros_(att.res_conv.weight)
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    q, k, v = att.to_qkv(x)[0].chunk(3, -1)
    outs = [((q[:, s] @ k[:, s].T) / 2.0).softmax(-1) @ v[:, s] for s in (slice(0, 4), slice(4, 8))]
    ref = att.to_out(torch.cat(outs, -1))
    diff = (att(x)[0] - ref).abs().max().item()
    print(f"Nystrom (n <= m) vs softmax attention: max diff {diff:.2e}")
    assert diff < 1e-8


def test_pinv_iteration_converges_to_the_inverse():
    a = torch.softmax(torch.randn(2, 5, 5, dtype=torch.float64), -1)
    torch.testing.assert_close(moore_penrose_pinv(a, 40), torch.linalg.inv(a), atol=1e-8, rtol=1e-6)


def test_gated_kronecker_fusion_by_hand():
    torch.manual_seed(0)
    fuse = GatedKroneckerFusion(6, 4, 3, 2, 5, hidden=7, dropout=0.0)
    a, b = torch.randn(2, 6), torch.randn(2, 4)
    ab = torch.cat([a, b], -1)
    o_a = torch.relu(fuse.o_a[0](torch.sigmoid(fuse.z_a(ab)) * torch.relu(fuse.h_a[0](a))))
    o_b = torch.relu(fuse.o_b[0](torch.sigmoid(fuse.z_b(ab)) * torch.relu(fuse.h_b[0](b))))
    one = torch.ones(1)
    kron = torch.stack([torch.kron(torch.cat([o_a[i], one]), torch.cat([o_b[i], one])) for i in range(2)])
    ref = torch.relu(fuse.encoder2[0](torch.relu(fuse.encoder1[0](kron))))
    torch.testing.assert_close(fuse(a, b), ref)


def test_experiment_config_accepts_the_new_options():
    ExperimentConfig("transmil", "c", "o", model_options={"attention": "exact"})
    ExperimentConfig("clam-sb", "c", "o", model_options={"bag_weight": 0.7})


def test_square_bag_under_static_shapes_reads_no_mask_and_keeps_full_bags_equal():
    """A captured step may not read the mask on the host: the grid side then comes from the
    padded length. A bag without padding (genomic tokens) gets the same grid either way; a
    padded bag gets a larger grid whose extra cells are masked zeros."""
    from survmamba_lite.baselines.transmil import square_bag

    h = torch.randn(1, 7, 3)
    full = torch.ones(1, 7, dtype=torch.bool)
    g0, m0 = square_bag(h, full)
    g1, m1 = square_bag(h, full, static=True)
    assert torch.equal(g0, g1) and torch.equal(m0, m1) and g0.shape == (1, 9, 3)

    part = torch.tensor([[True] * 4 + [False] * 3])
    g2, m2 = square_bag(h, part)                               # side 2: a 2 x 2 grid
    g3, m3 = square_bag(h, part, static=True)                  # side from L = 7: a 3 x 3 grid
    assert g2.shape == (1, 4, 3) and g3.shape == (1, 9, 3)
    real = m3[0].nonzero().flatten()
    assert int(m3.sum()) == 4 and torch.equal(g3[0, real], g2[0]) and float(g3[0, ~m3[0]].abs().sum()) == 0.0


# the models of the paper grid trained with CUDA graphs (benchmarks/fullscale.py, the real-data rerun)
GRAPHED = ["snn", "snntrans", "abmil", "abmil-kp", "transmil", "transmil-kp", "mcat", "motcat", "survpath"]


@pytest.mark.parametrize("name", GRAPHED)
def test_a_captured_step_has_no_shape_that_depends_on_data(name):
    """CUDA graph capture fails at any operation whose output shape depends on tensor values
    (a boolean-mask index calls nonzero, which waits for the GPU). Fake tensors carry shapes but
    no values, so such an operation raises here, on a CPU: forward and backward of one training
    step inside static_shapes(model), as GraphedTrainStep records it."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from survmamba_lite.model.him import static_shapes

    inputs = ModelInputs(TINY_BINS, TINY_WSI_DIM, build_tiny_hierarchy())
    options = {"dim": 8} if name in ("snn", "abmil", "abmil-kp") else {"dim": 8, "heads": 2}
    model = build_model(name, inputs, **options).train()
    batch = collate_bags(build_tiny_bags([(3, 4)]))
    with static_shapes(model), FakeTensorMode(allow_non_fake_inputs=True):
        model(batch).sum().backward()


def test_the_check_catches_a_mask_read_on_the_host():
    from torch._subclasses.fake_tensor import DynamicOutputShapeException, FakeTensorMode

    x, mask = torch.randn(5, 3), torch.tensor([True, False, True, True, False])
    with pytest.raises(DynamicOutputShapeException), FakeTensorMode(allow_non_fake_inputs=True):
        x[mask].sum()


def test_snntrans_gives_the_same_risks_with_static_shapes():
    """Genomic tokens fill TransMIL's square (repetition), so the static path, which runs every
    patient's full grid, equals the eager one, which runs the masked cells only."""
    from survmamba_lite.model.him import static_shapes

    torch.manual_seed(0)
    model = build_model("snntrans", ModelInputs(TINY_BINS, TINY_WSI_DIM, build_tiny_hierarchy()),
                        dim=8, heads=2).eval()
    batch = collate_bags(build_tiny_bags([(1, 2), (2, 3)], wsi=False))
    eager = model(batch)
    with static_shapes(model):
        static = model(batch)
    assert not model.encoder.static_shapes                                   # back to trimming afterwards
    torch.testing.assert_close(static, eager, rtol=1e-5, atol=1e-6)
