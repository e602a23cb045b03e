"""Baselines of Table 1: forward/backward, padding invariance, and each building block
checked against an independent reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torch import nn

from conftest import TINY_BINS, TINY_WSI_DIM, build_tiny_bags, build_tiny_hierarchy
from survmamba_lite import baselines
from survmamba_lite.baselines.common import (Attention, GatedAttentionPool, KroneckerFusion, flatten_bag,
                                             process_level_hierarchy)
from survmamba_lite.baselines.survpath import PathwayPatchAttention
from survmamba_lite.baselines.transmil import square_bag
from survmamba_lite.data.bag import GenomicHierarchy, collate_bags
from survmamba_lite.registry import ModelInputs, accepted_options, build_model, get_model_spec, list_models

BASELINES = [spec.name for spec in baselines.model_specs()]
TINY_OPTIONS = {"dim": 16, "heads": 2, "fusion_dim": 4, "fn_hidden": 8, "ot_iters": 50, "k_sample": 2}


def tiny_model(name: str) -> nn.Module:
    allowed = accepted_options(get_model_spec(name))
    options = {k: v for k, v in TINY_OPTIONS.items() if k in allowed}
    inputs = ModelInputs(n_bins=TINY_BINS, wsi_dim=TINY_WSI_DIM, hierarchy=build_tiny_hierarchy())
    return build_model(name, inputs, **options)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_all_table1_baselines_are_registered():
    assert BASELINES == ["snn", "snntrans", "abmil", "clam-sb", "clam-mb", "transmil", "abmil-cat", "abmil-kp",
                         "clam-mb-cat", "clam-mb-kp", "transmil-cat", "transmil-kp", "mcat", "motcat",
                         "survpath"]


SHIFT_INVARIANT = ("its gradient is zero by construction: it adds the same amount to every score that a softmax "
                   "over instances (or keys) normalises, and a softmax is unchanged by such a shift")


def zero_gradient_by_construction(model: nn.Module) -> dict[str, tuple[slice, str]]:
    """Parameter entries whose gradient is zero in exact arithmetic, whatever the data, with the reason.

    ``{parameter name: (the entries, reason)}``. Two cases occur among the registry's models:

    * the bias of the score layer ``w`` of a :class:`GatedAttentionPool` (ABMIL, CLAM, the Cat/KP
      fusions, MCAT and MOTCat pool with it): ``a_k = softmax_k(w^T h_k + b)`` does not depend on ``b``;
    * the key half of the bias of an :class:`Attention`'s joint key/value projection:
      ``q . (W_k x_j + b_k) = q . W_k x_j + q . b_k``, the last term the same for every key ``j``.

    Rounding may leave such a gradient a tiny non-zero value or exactly zero; the test requires it
    to stay at rounding level (and everything else to get a real gradient).
    """
    found: dict[str, tuple[slice, str]] = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, GatedAttentionPool) and module.w.bias is not None:
            found[f"{prefix}w.bias"] = (slice(None), "attention-score bias before a softmax over instances; " + SHIFT_INVARIANT)
        if isinstance(module, Attention) and module.kv.bias is not None:
            dim = module.kv.out_features // 2
            found[f"{prefix}kv.bias"] = (slice(0, dim), "key bias of softmax attention; " + SHIFT_INVARIANT)
    return found


@pytest.mark.parametrize("name", [spec.name for spec in list_models()])
def test_forward_backward(name):
    """Every registry model: finite logits, and every parameter gets a gradient except the entries
    that :func:`zero_gradient_by_construction` names with their reason (which must stay at zero)."""
    torch.manual_seed(0)
    model = tiny_model(name).train()
    batch = collate_bags(build_tiny_bags([(3, 11), (2, 4)]))
    aux = None
    if get_model_spec(name).auxiliary_loss is not None:                    # the hook the spec declares
        logits, aux = model.forward_train(batch)
    else:
        logits = model(batch)
    assert logits.shape == (2, TINY_BINS) and torch.isfinite(logits).all()
    loss = (logits * torch.randn_like(logits)).sum()
    observed = {int(b) for b, e in zip(batch.time_bin, batch.event) if e > 0}
    if aux is not None:
        assert aux.ndim == 0 and torch.isfinite(aux) and aux > 0
        loss = loss + aux
    loss.backward()
    params = dict(model.named_parameters())
    largest = max(float(p.grad.abs().max()) for p in params.values() if p.grad is not None)
    by_construction = zero_gradient_by_construction(model)
    assert set(by_construction) <= set(params), sorted(set(by_construction) - set(params))
    # instance classifiers of classes without an observed death in the batch get no signal
    idle = tuple(f"instance_classifiers.{c}." for c in range(TINY_BINS) if c not in observed)
    dead, not_zero = [], []
    for n, p in params.items():
        if n.startswith(idle):
            continue
        grad = torch.zeros_like(p) if p.grad is None else p.grad
        rest = torch.ones_like(p, dtype=torch.bool)
        if n in by_construction:
            entries, reason = by_construction[n]
            rest[entries] = False
            # zero in exact arithmetic: float32 rounding leaves at most ~1e-7 of the largest gradient
            if float(grad[entries].abs().max()) > 1e-5 * largest:
                not_zero.append(f"{n}[{entries}] ({reason}): {float(grad[entries].abs().max()):.3g}")
        if rest.any() and not torch.any(grad[rest] != 0):
            dead.append(n)
    assert not not_zero, f"{name}: gradient that should vanish by construction does not: {not_zero}"
    assert not dead, f"{name}: parameters without gradient: {dead}"
    print(f"[params] {name}: {n_params(model):,} parameters at tiny width (dim=16, F={TINY_WSI_DIM}, G=12)")


@pytest.mark.parametrize("name", BASELINES)
def test_padding_invariance(name):
    """A patient alone gives the same logits as inside a padded batch with a bigger patient."""
    # SurvPath's classifier has D/4 = 4 hidden ReLU units at the tiny width: with seed 0 all four
    # are negative for both patients (constant logits), so it gets another draw.
    torch.manual_seed(1 if name == "survpath" else 0)
    model = tiny_model(name).double().eval()
    small, big = build_tiny_bags([(2, 3), (4, 13)], seed=3)
    for bag in (small, big):
        bag.features, bag.rna = bag.features.double(), bag.rna.double()
    with torch.no_grad():
        alone = model(collate_bags([small]))
        first = model(collate_bags([small, big]))
        last = model(collate_bags([big, small]))
        big_alone = model(collate_bags([big]))
    for got in (first[:1], last[1:]):
        diff = (got - alone).abs().max().item()
        print(f"{name}: max |padded - alone| = {diff:.2e}")
        assert diff < 1e-10
    assert torch.allclose(first[1:], big_alone, atol=1e-10, rtol=0)
    assert not torch.allclose(alone, big_alone)       # the two patients are told apart


# --- building blocks against references -------------------------------------------------------

def test_flatten_bag_matches_per_patient_lists():
    bags = build_tiny_bags([(3, 7), (1, 2), (2, 5)], seed=1)
    batch = collate_bags(bags)
    x, mask = flatten_bag(batch.patches, batch.patch_mask)
    assert x.shape[1] == 7
    for i, bag in enumerate(bags):
        # reference: stable sort of the flat list by region id = region-major order of group_patches
        order = torch.argsort(bag.region, stable=True)
        n = bag.features.shape[0]
        assert torch.equal(x[i, :n], bag.features[order]) and mask[i, :n].all() and not mask[i, n:].any()
        assert torch.all(x[i, n:] == 0)


def test_gated_attention_against_hand_computation():
    torch.manual_seed(0)
    pool = GatedAttentionPool(5, 3, n_branches=2)
    h, mask = torch.randn(2, 4, 5), torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]).bool()
    z, a = pool(h, mask)
    for i in range(2):
        hi = h[i, mask[i]]
        s = pool.w(torch.tanh(pool.v[0](hi)) * torch.sigmoid(pool.u[0](hi)))          # (n, 2)
        ref_a = torch.exp(s) / torch.exp(s).sum(0)
        assert torch.allclose(a[i, :, : len(hi)], ref_a.T, atol=1e-6)
        assert torch.allclose(z[i], ref_a.T @ hi, atol=1e-6)
    assert torch.all(a[0, :, 3] == 0)


def test_attention_matches_torch_multihead_attention():
    torch.manual_seed(0)
    ours = Attention(8, heads=2).eval()
    ref = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q.weight, ours.kv.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q.bias, ours.kv.bias]))
        ref.out_proj.weight.copy_(ours.out.weight)
        ref.out_proj.bias.copy_(ours.out.bias)
    q, kv = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    keep = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]).bool()
    expected, _ = ref(q, kv, kv, key_padding_mask=~keep, need_weights=False)
    diff = (ours(q, kv, keep) - expected).abs().max().item()
    print(f"Attention vs nn.MultiheadAttention: max diff {diff:.2e}")
    assert diff < 1e-5


def test_kronecker_fusion_is_the_kron_of_the_augmented_vectors():
    torch.manual_seed(0)
    fuse = KroneckerFusion(3, 2, 4, dropout=0.0)
    a, b = torch.randn(5, 3), torch.randn(5, 2)
    one = torch.ones(1)
    ref = torch.stack([fuse.fc(torch.kron(torch.cat([a[i], one]), torch.cat([b[i], one]))) for i in range(5)])
    assert torch.allclose(fuse(a, b), ref, atol=1e-6)


def test_square_bag_matches_transmil_squaring():
    """Reference: TransMIL's own recipe for one bag, h <- cat(h, h[:add]) reshaped to side x side."""
    torch.manual_seed(0)
    lengths = [3, 10, 1, 5]
    h = torch.randn(len(lengths), max(lengths), 4)
    mask = torch.arange(max(lengths)) < torch.tensor(lengths).unsqueeze(1)
    grid, gmask = square_bag(h, mask)
    big = int(math.isqrt(grid.shape[1]))
    assert big == 4
    grid = grid.view(len(lengths), big, big, 4)
    gmask = gmask.view(len(lengths), big, big)
    for i, n in enumerate(lengths):
        side = math.ceil(math.sqrt(n))
        seq = h[i, :n]
        ref = torch.cat([seq, seq[: side * side - n]]).view(side, side, 4)
        assert torch.equal(grid[i, :side, :side], ref)
        assert gmask[i, :side, :side].all() and gmask[i].sum() == side * side
        assert torch.all(grid[i][~gmask[i]] == 0)


def test_process_level_tokens_cover_the_process_genes():
    h = build_tiny_hierarchy()
    p = process_level_hierarchy(h)
    assert p.n_functions == h.n_processes == 2
    assert p.function_genes == ((0, 1, 2, 3, 4, 5, 6), (7, 8, 9, 10, 11))


def test_survpath_attention_matches_dense_masked_attention():
    """Slow twin: full attention over [pathways; patches] with the paper's block mask."""
    torch.manual_seed(0)
    att = PathwayPatchAttention(8, heads=2).eval()
    n_p, p, h = 3, torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]).bool()
    p_out, h_out = att(p, h, mask)
    assert att.qkv.bias is None and not hasattr(att, "out")        # SurvPath: no qkv bias, no output projection
    x = torch.cat([p, h], 1)
    q, k, v = att.qkv(x).chunk(3, -1)
    for i in range(2):
        allowed = torch.zeros(8, 8, dtype=torch.bool)
        allowed[:n_p, :n_p] = True                       # pathway -> pathway
        allowed[:n_p, n_p:] = mask[i]                    # pathway -> patch (real ones)
        allowed[n_p:, :n_p] = True                       # patch -> pathway; no patch -> patch
        outs = []
        for head in range(2):
            sl = slice(4 * head, 4 * head + 4)
            s = q[i, :, sl] @ k[i, :, sl].T / 2.0
            outs.append(s.masked_fill(~allowed, -math.inf).softmax(-1) @ v[i, :, sl])
        ref = torch.cat(outs, -1)
        n = int(mask[i].sum())
        assert torch.allclose(p_out[i], ref[:n_p], atol=1e-5)
        assert torch.allclose(h_out[i, :n], ref[n_p:n_p + n], atol=1e-5)
    # no patch -> patch: changing one patch leaves the other patches' outputs unchanged
    h2 = h.clone()
    h2[0, 0] += 1.0
    _, h_out2 = att(p, h2, mask)
    assert torch.allclose(h_out2[0, 1:], h_out[0, 1:], atol=1e-6)


def test_clam_mb_logits_are_per_branch_classifiers():
    torch.manual_seed(0)
    model = tiny_model("clam-mb").eval()
    batch = collate_bags(build_tiny_bags([(2, 5), (1, 3)]))
    x, mask = flatten_bag(batch.patches, batch.patch_mask)
    _, z, a = model.encoder.attend(x, mask)
    assert z.shape == (2, TINY_BINS, 16) and a.shape == (2, TINY_BINS, 5)
    ref = torch.stack([torch.stack([z[i, t] @ model.head_weight[t] + model.head_bias[t] for t in range(TINY_BINS)])
                       for i in range(2)])
    assert torch.allclose(model(batch), ref, atol=1e-6)


@pytest.mark.parametrize("name", ["clam-sb", "clam-mb"])
def test_clam_instance_loss_by_hand(name):
    torch.manual_seed(0)
    model = tiny_model(name).eval()
    bags = build_tiny_bags([(2, 9), (1, 3), (1, 5)])
    bags[2].event, bags[2].time_bin = 1, 3                   # patients 0 and 2 died, patient 1 censored
    batch = collate_bags(bags)
    x, mask = flatten_bag(batch.patches, batch.patch_mask)
    h, _, a = model.encoder.attend(x, mask)
    ref = []
    for i, k in ((0, 2), (2, 2)):
        y = int(batch.time_bin[i])
        att = a[i, y if name == "clam-mb" else 0, : int(mask[i].sum())].tolist()
        ranked = sorted(range(len(att)), key=lambda j: -att[j])
        logits = model.instance_classifiers[y](h[i, ranked[:k] + ranked[-k:]])
        logp = logits.log_softmax(-1)
        ref.append(-(logp[:k, 1].sum() + logp[k:, 0].sum()) / (2 * k))
    expected = torch.stack(ref).mean()
    assert torch.allclose(model.instance_loss(batch), expected, atol=1e-6)
    assert torch.allclose(model.forward_train(batch)[1], (1 - 0.7) * expected, atol=1e-6)
    batch.event.zero_()
    assert model.instance_loss(batch).item() == 0.0


def _sinkhorn_scaling(cost, a, b, eps, n_iters=2000):
    """Reference: plain Sinkhorn-Knopp matrix scaling, balanced, float64 numpy."""
    k = np.exp(-cost / eps)
    u, v = np.ones_like(a), np.ones_like(b)
    for _ in range(n_iters):
        u = a / (k @ v)
        v = b / (k.T @ u)
    return u[:, None] * k * v[None, :]


def test_sinkhorn_balanced_matches_matrix_scaling():
    rng = np.random.default_rng(0)
    cost = rng.random((4, 6))
    a, b = rng.random(4) + 0.1, rng.random(6) + 0.1
    a, b = a / a.sum(), b / b.sum()
    ours = baselines.sinkhorn_log(torch.tensor(cost)[None], torch.tensor(a)[None], torch.tensor(b)[None],
                                  eps=0.1, n_iters=500)[0].numpy()
    ref = _sinkhorn_scaling(cost, a, b, 0.1)
    print(f"balanced Sinkhorn: max |ours - scaling| = {np.abs(ours - ref).max():.2e}")
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    np.testing.assert_allclose(ours.sum(1), a, atol=1e-10)


def test_sinkhorn_unbalanced_minimises_the_primal():
    """Reference: the unbalanced primal objective minimised directly by scipy (L-BFGS on log pi)."""
    rng = np.random.default_rng(1)
    cost = rng.random((3, 4))
    a, b = np.full(3, 1 / 3), np.array([0.1, 0.2, 0.3, 0.4])
    eps, tau = 0.2, 0.5

    def kl(p, q):
        return np.sum(p * np.log(p / q) - p + q)

    def objective(log_pi):
        pi = np.exp(log_pi).reshape(3, 4)
        return (np.sum(cost * pi) + eps * kl(pi, np.outer(a, b)) + tau * kl(pi.sum(1), a)
                + tau * kl(pi.sum(0), b))

    best = minimize(objective, np.log(np.outer(a, b)).ravel(), method="L-BFGS-B", tol=1e-14,
                    options={"maxiter": 5000}).x
    ref = np.exp(best).reshape(3, 4)
    ours = baselines.sinkhorn_log(torch.tensor(cost)[None], torch.tensor(a)[None], torch.tensor(b)[None],
                                  eps=eps, tau=tau, n_iters=1000)[0].numpy()
    print(f"unbalanced Sinkhorn: max |ours - scipy| = {np.abs(ours - ref).max():.2e}")
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    assert objective(np.log(ours).ravel()) <= objective(best) + 1e-10
    assert not np.allclose(ours.sum(1), a, atol=1e-3)          # marginals are relaxed, not enforced


def test_sinkhorn_zero_mass_columns_are_exactly_ignored():
    rng = np.random.default_rng(2)
    cost = torch.tensor(rng.random((1, 3, 5)))
    a = torch.full((1, 3), 1 / 3, dtype=torch.float64)
    b = torch.tensor([[0.25, 0.25, 0.5, 0.0, 0.0]], dtype=torch.float64)
    for tau in (None, 0.5):
        full = baselines.sinkhorn_log(cost, a, b, eps=0.1, tau=tau)
        cut = baselines.sinkhorn_log(cost[:, :, :3], a, b[:, :3], eps=0.1, tau=tau)
        assert torch.all(full[:, :, 3:] == 0)
        assert torch.allclose(full[:, :, :3], cut, atol=1e-14)


def test_motcat_balanced_transport_rows_are_averages():
    torch.manual_seed(0)
    model = build_model("motcat", ModelInputs(TINY_BINS, TINY_WSI_DIM, build_tiny_hierarchy()), dim=8, heads=2,
                        ot_tau=None, ot_iters=300).double().eval()
    g, h = torch.randn(2, 2, 8, dtype=torch.float64), torch.randn(2, 5, 8, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]).bool()
    plan = model.transport_plan(g, h, mask)
    torch.testing.assert_close(plan.sum(2), torch.full((2, 2), 0.5, dtype=torch.float64))
    torch.testing.assert_close(plan.sum(1)[1, :3], torch.full((3,), 1 / 3, dtype=torch.float64))
    assert torch.all(plan[1, :, 3:] == 0)


def test_motcat_transport_plan_is_computed_in_float32_under_bf16_autocast():
    """The cost |g_i - h_j|^2 = |g|^2 + |h|^2 - 2 g.h cancels: in bf16 (8 bits of mantissa) it is
    mostly rounding noise and Sinkhorn turns it into an arbitrary plan (MOTCat at D = 256 in bf16
    stopped learning). The plan is computed in float32 whatever the autocast."""
    torch.manual_seed(0)
    model = build_model("motcat", ModelInputs(TINY_BINS, TINY_WSI_DIM, build_tiny_hierarchy()), dim=256, heads=2,
                        ot_iters=100).eval()
    g, h = torch.randn(1, 6, 256) * 3, torch.randn(1, 300, 256) * 3
    g, h = g + 0.05 * torch.randn(1, 6, 256), h
    mask = torch.ones(1, 300, dtype=torch.bool)
    reference = model.transport_plan(g, h, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model.transport_plan(g.bfloat16(), h.bfloat16(), mask)
    assert mixed.dtype == torch.float32
    # only the bf16 rounding of the inputs themselves remains
    assert (mixed - reference).abs().max() / reference.abs().max() < 0.05


def test_coattention_transformers_are_initialised_as_torch_multihead_attention():
    """MCAT/MOTCat use nn.MultiheadAttention (co-attention) and nn.TransformerEncoderLayer, whose
    attention starts with zero in-projection and output biases: at initialisation a zero input
    gives a zero attention output (nn.Linear's default biases would give a constant)."""
    torch.manual_seed(0)
    for name in ("mcat", "motcat"):
        model = build_model(name, ModelInputs(TINY_BINS, TINY_WSI_DIM, build_tiny_hierarchy()), dim=16, heads=2)
        attentions = [layer.attn for layer in [*model.path_layers, *model.omic_layers]]
        attentions += [model.coattn] if name == "mcat" else []
        for attn in attentions:
            assert attn.out(torch.zeros(16)).abs().max() == 0
            with torch.no_grad():
                assert float(attn(torch.zeros(1, 3, 16), torch.zeros(1, 4, 16)).abs().max()) == 0.0
    reference = nn.MultiheadAttention(16, 2)
    ours = Attention(16, heads=2, init="mha")
    # Xavier-uniform over the joint (3D, D) in-projection: the same bound as torch's
    bound = math.sqrt(6 / (16 + 3 * 16))
    w_in = torch.cat([ours.q.weight, ours.kv.weight])
    assert w_in.abs().max() <= bound and w_in.abs().max() > 0.9 * bound
    assert reference.in_proj_weight.abs().max() <= bound
    with pytest.raises(ValueError, match="init must be one of"):
        Attention(16, heads=2, init="zeros")


def test_motcat_path_transformer_keeps_patients_apart_with_many_genomic_tokens():
    """MOTCat's co-attended tokens pi^T H carry the plan's row mass (~1/N of the bag mean): with
    N = 45 genomic tokens their norm is ~1/100 of a patch token's. The path transformer must still
    pass on how two patients' bags differ, as torch's zero-bias attention does; with nn.Linear's
    default attention biases a constant swamped them (relative difference ~0.01, and MOTCat's
    histology branch did not learn at the paper's scale)."""
    n_tokens = 45
    hierarchy = GenomicHierarchy(genes=tuple(f"g{i}" for i in range(2 * n_tokens)),
                                 function_ids=tuple(f"f{k}" for k in range(n_tokens)),
                                 function_names=tuple(f"function {k}" for k in range(n_tokens)),
                                 function_genes=tuple((2 * k, 2 * k + 1) for k in range(n_tokens)),
                                 function_process=(0,) * n_tokens, process_names=("p",))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 64, 64, generator=gen)                                 # (B, R, P, F)
    shifted = x.clone()
    shifted[..., 0] += 2.0                                                       # a second patient's bag
    mask = torch.ones(1, 4, 64, dtype=torch.bool)
    rna = torch.randn(1, 2 * n_tokens, generator=gen)
    for seed in range(3):
        torch.manual_seed(seed)
        model = build_model("motcat", ModelInputs(TINY_BINS, 64, hierarchy), genomic_tokens="function").eval()
        outputs = []
        with torch.no_grad():
            g = model.genomic(rna)                                               # (1, 45, 256)
            for bag in (x, shifted):
                flat, flat_mask = flatten_bag(bag, mask)
                hc = model.coattend(g, model.patches(flat), flat_mask)           # (1, 45, 256)
                assert hc.norm(dim=-1).mean() < 0.05 * model.patches(flat).norm(dim=-1).mean()
                for layer in model.path_layers:
                    hc = layer(hc)
                outputs.append(hc)
        relative = float((outputs[0] - outputs[1]).norm() / outputs[0].norm())
        print(f"seed {seed}: relative difference of the two patients' path tokens {relative:.3f}")
        assert relative > 0.1


def test_missing_modality_and_gene_mismatch_are_clear_errors():
    model = tiny_model("snn")
    no_rna = collate_bags(build_tiny_bags([(1, 2)], rna=False))
    with pytest.raises(ValueError, match="needs transcriptomics"):
        model(no_rna)
    wrong = collate_bags(build_tiny_bags([(1, 2)], n_genes=7))
    with pytest.raises(ValueError, match="7 genes .* hierarchy of 12"):
        model(wrong)
    with pytest.raises(ValueError, match="needs histology"):
        tiny_model("abmil")(collate_bags(build_tiny_bags([(1, 2)], wsi=False)))


def test_fusion_has_one_spelling_and_the_old_one_builds_the_same_model():
    """MCAT and the late fusions say ``"cat"``; a saved config saying ``"concat"`` builds the same model."""
    h = build_tiny_hierarchy()
    inputs = ModelInputs(n_bins=TINY_BINS, wsi_dim=TINY_WSI_DIM, hierarchy=h)
    opts = {"dim": 16, "heads": 2, "fn_hidden": 8}
    torch.manual_seed(0)
    new = build_model("mcat", inputs, fusion="cat", **opts)
    torch.manual_seed(0)
    old = build_model("mcat", inputs, fusion="concat", **opts)
    assert new.fusion == old.fusion == "cat"
    for (k, a), (_, b) in zip(new.state_dict().items(), old.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    with pytest.raises(ValueError, match="unknown fusion 'sum'.*'cat', 'kp'"):
        build_model("mcat", inputs, fusion="sum", **opts)
