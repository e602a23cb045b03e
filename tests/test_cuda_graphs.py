"""CUDA-graph training steps: padding to buckets changes nothing; a graphed step trains as an eager one.

The padding tests run on the CPU. The graph tests need CUDA (marked ``gpu``): with dropout 0 a
graphed run and an eager run of the same steps end with the same parameters (float32, 1e-4
relative), alternating buckets included, and the warm-up before recording leaves no trace.
"""
from __future__ import annotations

import pytest
import torch

from survmamba_lite import SurvMamba, SurvMambaConfig
from survmamba_lite.data import collate_bags
from survmamba_lite.experiment.step import GraphedTrainStep, bucket_size, capturable_optimizer, pad_batch
from survmamba_lite.model.him import static_shapes
from survmamba_lite.survival import nll_loss

from conftest import TINY_BINS, TINY_WSI_DIM, build_tiny_bags, build_tiny_hierarchy


def make_model(backend="parallel", seed=0, **kw):
    torch.manual_seed(seed)
    cfg = SurvMambaConfig(n_bins=TINY_BINS, wsi_dim=TINY_WSI_DIM, hierarchy=build_tiny_hierarchy(), dim=16,
                          d_state=4, dropout=0.0, variant="F", scan_backend=backend, **kw)
    return SurvMamba(cfg)


@pytest.mark.parametrize("variant", ["A", "C", "F"])
def test_padding_to_a_bucket_and_static_shapes_change_no_output(variant):
    torch.manual_seed(0)
    cfg = SurvMambaConfig(n_bins=TINY_BINS, wsi_dim=TINY_WSI_DIM, hierarchy=build_tiny_hierarchy(), dim=8,
                          d_state=4, dropout=0.0, variant=variant, scan_backend="parallel")
    model = SurvMamba(cfg).double().eval()
    bags = build_tiny_bags([(3, 11)])
    for b in bags:
        b.features, b.rna = b.features.double(), b.rna.double()
    batch = collate_bags(bags)
    ref = model(batch)
    r, p = batch.patches.shape[1:3]
    padded = pad_batch(batch, bucket_size(r, None, 8), bucket_size(p, (16, 32)))
    assert padded.patches.shape[1:3] == (8, 16)
    with static_shapes(model):
        out = model(padded)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    assert not any(getattr(m, "static_shapes", False) for m in model.modules())     # back to trimming


def test_pad_batch_refuses_to_shrink():
    batch = collate_bags(build_tiny_bags([(3, 11)]))
    with pytest.raises(ValueError, match="cannot pad"):
        pad_batch(batch, 2, 32)


def loss_fn(logits, batch):
    return nll_loss(logits, batch.time_bin, batch.event)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_graphed_steps_train_like_eager_steps(precision):
    from survmamba_lite.ssm import available_backends
    from survmamba_lite.utils.precision import autocast

    backend = "mamba_ssm" if "mamba_ssm" in available_backends("cuda") else "parallel"
    batches = [collate_bags(build_tiny_bags([(3, 40)], seed=s)) for s in range(3)]
    batches.append(collate_bags(build_tiny_bags([(6, 100)], seed=7)))         # a second bucket
    order = [0, 3, 1, 3, 2, 0]

    eager = make_model(backend).cuda().train()
    opt_e = capturable_optimizer("radam", eager.parameters(), lr=1e-3)
    for i in order:
        b = batches[i]
        padded = pad_batch(b, bucket_size(b.patches.shape[1], None, 8),
                           bucket_size(b.patches.shape[2], (16, 32, 64, 96, 128))).to("cuda")
        opt_e.zero_grad(set_to_none=True)
        with static_shapes(eager), autocast(precision, "cuda", cache_enabled=False):
            logits = eager(padded)
        loss_fn(logits.float(), padded).backward()
        opt_e.step()

    graphed = make_model(backend).cuda().train()
    opt_g = capturable_optimizer("radam", graphed.parameters(), lr=1e-3)
    step = GraphedTrainStep(graphed, opt_g, precision=precision, patch_buckets=(16, 32, 64, 96, 128),
                            n_bins=TINY_BINS)                               # its loss: the NLL (alpha 0)
    losses = [float(step(batches[i])) for i in order]
    assert len(step.graphs) == 2 and all(torch.isfinite(torch.tensor(losses)))
    tol = 1e-4 if precision == "fp32" else 2e-2
    for (name, pe), pg in zip(eager.named_parameters(), graphed.parameters()):
        scale = pe.detach().abs().max().clamp_min(1e-3)
        assert (pe.detach() - pg.detach()).abs().max() / scale < tol, name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_graphed_step_checks_inputs_on_the_host():
    model = make_model().cuda()
    step = GraphedTrainStep(model, capturable_optimizer("adam", model.parameters()), n_bins=TINY_BINS)
    batch = collate_bags(build_tiny_bags([(2, 5)]))
    batch.event[0] = 2.0
    with pytest.raises(ValueError, match="event must be 0"):
        step(batch)
    with pytest.raises(ValueError, match="capturable"):
        GraphedTrainStep(model, torch.optim.Adam(model.parameters()))


def test_config_refuses_cuda_graphs_where_they_cannot_run():
    from survmamba_lite.experiment.config import ExperimentConfig

    with pytest.raises(ValueError, match="grad_accum = 1"):
        ExperimentConfig(model="abmil", cohort_dir="c", out_dir="o", cuda_graphs=True, grad_accum=4)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        ExperimentConfig(model="abmil", cohort_dir="c", out_dir="o", cuda_graphs=True, device="cpu")
    for clam in ("clam-sb", "clam-mb"):
        with pytest.raises(ValueError, match=f"'{clam}' cannot be trained with cuda_graphs: its instance"):
            ExperimentConfig(model=clam, cohort_dir="c", out_dir="o", cuda_graphs=True)
    ExperimentConfig(model="clam-mb-kp", cohort_dir="c", out_dir="o", cuda_graphs=True)   # no instance loss


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cross_validation_with_cuda_graphs(tmp_path, precision):
    """`survmamba cv --cuda-graphs`: a graphed fold trains to the same place as an eager one (dropout 0)."""
    from survmamba_lite.data.synth import make_synthetic_cohort
    from survmamba_lite.experiment.config import ExperimentConfig
    from survmamba_lite.experiment.cv import run_cv

    cohort = make_synthetic_cohort("BLCA", "tiny", seed=0, out=tmp_path / "cohort")
    results = {}
    for graphs in (False, True):
        cfg = ExperimentConfig(model="survmamba", cohort_dir=str(cohort), out_dir=str(tmp_path / f"run_{graphs}"),
                               model_options={"dim": 16, "d_state": 4, "dropout": 0.0}, folds=(0,), epochs=2,
                               lr=1e-3, device="cuda", precision=precision, cuda_graphs=graphs, max_cases=40)
        results[graphs] = run_cv(cfg, progress=False).summary["c_index"]["values"][0]
    print(results)
    assert results[True] is not None and abs(results[True] - results[False]) < 0.05
