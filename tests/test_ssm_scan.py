"""Selective scan: ref vs parallel (outputs and gradients), vs an independent numpy twin,
stability for long sequences, the Δ = 0 identity step, and errors."""
from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from survmamba_lite.ssm import available_backends, selective_scan
from survmamba_lite.ssm import scan as scan_module
from survmamba_lite.ssm.chunked_scan import carry_scan

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(Bn=2, E=5, N=3, L=11, dtype=torch.float64, seed=0, bc="variable", delta_scale=1.0,
                with_D=True, with_z=True, with_bias=True, nonneg_delta=True):
    """Random inputs; ``delta`` is |N(0,1)|·scale (raw ``delta`` may be negative only before a
    softplus, so ``nonneg_delta=False`` also exercises growing, ``Ā > 1`` steps)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    if bc == "variable":
        B, C = r(Bn, N, L), r(Bn, N, L)
    elif bc == "fixed":
        B, C = r(E, N), r(E, N)
    elif bc == "grouped":
        B, C = r(Bn, 1 if E == 1 else E, N, L), r(Bn, 1, N, L)
    else:  # mixed: fixed B, variable C
        B, C = r(E, N), r(Bn, N, L)
    x = {
        "u": r(Bn, E, L),
        "delta": (r(Bn, E, L).abs() if nonneg_delta else r(Bn, E, L)) * delta_scale,
        "A": -torch.rand(E, N, generator=g, dtype=torch.float64) * 2 - 0.05,
        "B": B,
        "C": C,
        "D": r(E) if with_D else None,
        "z": r(Bn, E, L) if with_z else None,
        "delta_bias": r(E) * 0.5 if with_bias else None,
    }
    return {k: (v.to(dtype).requires_grad_() if v is not None else None) for k, v in x.items()}


def run(backend, x, delta_softplus, return_last_state, **private):
    args = [x[k] for k in NAMES]
    if private:
        return scan_module._selective_scan_parallel(*args, delta_softplus, return_last_state, **private)
    return selective_scan(*args, delta_softplus=delta_softplus, return_last_state=return_last_state,
                          backend=backend)


def outputs_and_grads(backend, x, delta_softplus, return_last_state, seed=1, **private):
    out = run(backend, x, delta_softplus, return_last_state, **private)
    outs = out if isinstance(out, tuple) else (out,)
    g = torch.Generator().manual_seed(seed)
    loss = sum((o.double() * torch.randn(o.shape, generator=g, dtype=torch.float64)).sum() for o in outs)
    leaves = [x[k] for k in NAMES if x[k] is not None]
    grads = torch.autograd.grad(loss, leaves)
    return [o.detach() for o in outs], dict(zip([k for k in NAMES if x[k] is not None], grads))


def assert_close(name, actual, expected, atol, rtol=0.0):
    diff = (actual.double() - expected.double()).abs()
    bound = atol + rtol * expected.double().abs()
    assert torch.isfinite(actual).all(), f"{name}: non-finite values"
    assert (diff <= bound).all(), f"{name}: max abs diff {diff.max().item():.3e} (atol {atol}, rtol {rtol})"


def compare(x, delta_softplus, return_last_state, atol, rtol=0.0, **private):
    out_r, g_r = outputs_and_grads("ref", x, delta_softplus, return_last_state)
    out_p, g_p = outputs_and_grads("parallel", x, delta_softplus, return_last_state, **private)
    for i, (a, b) in enumerate(zip(out_p, out_r)):
        assert a.dtype == b.dtype
        assert_close(["y", "last_state"][i], a, b, atol, rtol)
    assert g_p.keys() == g_r.keys()
    for k in g_r:
        assert_close(f"grad {k}", g_p[k], g_r[k], atol, rtol)


OPTIONALS = list(itertools.product([False, True], repeat=5))


@pytest.mark.parametrize("with_D,with_z,with_bias,softplus,last", OPTIONALS)
def test_parallel_matches_ref_all_options_float64(with_D, with_z, with_bias, softplus, last):
    for L in (1, 7, 37):
        x = make_inputs(L=L, with_D=with_D, with_z=with_z, with_bias=with_bias, seed=L, nonneg_delta=False)
        compare(x, softplus, last, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("bc", ["variable", "fixed", "grouped", "mixed"])
@pytest.mark.parametrize("L", [1, 2, 16, 17, 63, 130])
def test_parallel_matches_ref_shapes_float64(bc, L):
    x = make_inputs(L=L, bc=bc, seed=L + 100)
    compare(x, True, True, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("chunk_size,carry", [(1, "loop"), (3, "loop"), (5, "doubling"), (8, "doubling"),
                                              (64, "loop"), (200, "loop")])
def test_parallel_chunk_sizes_and_carries(chunk_size, carry):
    """Any chunk size (dividing L or not, larger than L) and both carry methods agree with ref."""
    x = make_inputs(L=45, seed=3)
    compare(x, True, True, atol=1e-10, rtol=1e-10, chunk_size=chunk_size, carry=carry)


@pytest.mark.parametrize("softplus,last", [(True, True), (False, False), (True, False)])
@pytest.mark.parametrize("bc", ["variable", "fixed"])
def test_parallel_matches_ref_float32(softplus, last, bc):
    for L in (1, 29, 300):
        x = make_inputs(L=L, dtype=torch.float32, bc=bc, seed=L, delta_scale=0.5, with_bias=softplus)
        compare(x, softplus, last, atol=2e-4, rtol=2e-4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_long_sequence_large_delta_is_stable(dtype):
    """L = 5000 with Δ up to ~40: products of decays underflow to 0, nothing overflows."""
    x = make_inputs(Bn=1, E=3, N=4, L=5000, dtype=dtype, seed=7, delta_scale=20.0, with_bias=False)
    total = (torch.nn.functional.softplus(x["delta"].double()).sum(-1, keepdim=True)
             * x["A"].double().abs().unsqueeze(0)).max()
    assert total > 1e5  # exp(+total) would overflow any dtype: a naive cumulative-sum scan fails here
    tol = 1e-9 if dtype == torch.float64 else 2e-3
    compare(x, True, True, atol=tol, rtol=tol)


def test_no_grad_path_equals_grad_path():
    """The forward keeps states only when gradients are needed; both paths give the same numbers."""
    x = make_inputs(L=50, dtype=torch.float32, seed=11)
    y_grad, last_grad = run("parallel", x, True, True)
    with torch.no_grad():
        y_plain, last_plain = run("parallel", x, True, True)
    assert torch.equal(y_grad.detach(), y_plain) and torch.equal(last_grad.detach(), last_plain)


def test_parallel_gradcheck():
    """Hand-written backward against finite differences (independent of ref)."""
    x = make_inputs(Bn=1, E=2, N=2, L=6, seed=5)
    keys = [k for k in NAMES if x[k] is not None]

    def f(*tensors):
        kw = dict(zip(keys, tensors))
        y, last = scan_module._selective_scan_parallel(*[kw.get(k) for k in NAMES], True, True,
                                                       chunk_size=4)
        return y, last

    assert torch.autograd.gradcheck(f, [x[k] for k in keys])


# --------------------------------------------------------------------------- numpy twin
def numpy_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """Per-step float64 numpy version of the mamba-ssm reference formula (B, C variable)."""
    u, delta, A, B, C = (np.asarray(v, dtype=np.float64) for v in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + np.asarray(delta_bias)[:, None]
    if delta_softplus:
        delta = np.log1p(np.exp(-np.abs(delta))) + np.maximum(delta, 0.0)
    Bn, E, L = u.shape
    h = np.zeros((Bn, E, A.shape[1]))
    y = np.zeros((Bn, E, L))
    for t in range(L):
        for b in range(Bn):
            h[b] = np.exp(delta[b, :, t, None] * A) * h[b] + delta[b, :, t, None] * B[b, None, :, t] * u[b, :, t, None]
            y[b, :, t] = h[b] @ C[b, :, t]
    if D is not None:
        y = y + np.asarray(D)[None, :, None] * u
    if z is not None:
        z = np.asarray(z)
        y = y * z / (1.0 + np.exp(-z))
    return y, h


@pytest.mark.parametrize("backend", ["ref", "parallel"])
@pytest.mark.parametrize("softplus", [False, True])
def test_against_numpy_twin(backend, softplus):
    x = make_inputs(L=23, seed=21)
    y, last = run(backend, x, softplus, True)
    args = [None if x[k] is None else x[k].detach().numpy() for k in NAMES]
    y_np, last_np = numpy_selective_scan(*args, softplus)
    assert_close("y", y.detach(), torch.from_numpy(y_np), 1e-12, 1e-12)
    assert_close("last_state", last.detach(), torch.from_numpy(last_np), 1e-12, 1e-12)


@settings(max_examples=25, deadline=None)
@given(
    Bn=st.integers(1, 2), E=st.integers(1, 4), N=st.integers(1, 4), L=st.integers(1, 40),
    chunk=st.integers(1, 12), carry=st.sampled_from(["loop", "doubling"]),
    bc=st.sampled_from(["variable", "fixed", "grouped", "mixed"]), softplus=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_property_parallel_equals_ref(Bn, E, N, L, chunk, carry, bc, softplus, seed):
    x = make_inputs(Bn=Bn, E=E, N=N, L=L, bc=bc, seed=seed)
    compare(x, softplus, True, atol=1e-9, rtol=1e-9, chunk_size=chunk, carry=carry)


# --------------------------------------------------------------------------- Δ = 0
@pytest.mark.parametrize("backend", ["ref", "parallel"])
def test_zero_delta_is_identity_step(backend):
    """Inserting Δ = 0 steps leaves the state untouched: the other outputs and the last state
    equal those of the sequence without them, and y at an inserted step is C_t·h_{t-1}."""
    x = make_inputs(Bn=2, E=4, N=3, L=30, seed=9, with_D=False, with_z=False, with_bias=False)
    keep = torch.ones(30, dtype=torch.bool)
    keep[[0, 5, 6, 7, 18, 29]] = False
    with torch.no_grad():
        x["delta"][..., ~keep] = 0.0
        x["u"][..., ~keep] = 123.0  # ignored: Δ u = 0
    y, last = run(backend, x, False, True)
    short = {k: v for k, v in x.items()}
    for k in ("u", "delta"):
        short[k] = x[k][..., keep]
    for k in ("B", "C"):
        short[k] = x[k][..., keep]
    y_s, last_s = run(backend, short, False, True)
    assert_close("y at kept steps", y[..., keep], y_s, 1e-12)
    assert_close("last_state", last, last_s, 1e-12)
    assert_close("y at a leading zero step", y[..., 0], torch.zeros_like(y[..., 0]), 0.0)
    # step 5 follows kept step 4: y_5 = C_5 · h_4
    _, h4 = run(backend, {**x, **{k: x[k][..., :5] for k in ("u", "delta", "B", "C")}}, False, True)
    assert_close("y at step 5", y[..., 5], torch.einsum("ben,bn->be", h4, x["C"][..., 5]), 1e-12)


# --------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("backend", ["ref", "parallel"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_compute_in_float32(backend, dtype):
    x = make_inputs(L=20, dtype=dtype, seed=2)
    y, last = run(backend, x, True, True)
    assert y.dtype == dtype and last.dtype == torch.float32
    x32 = {k: None if v is None else v.detach().float() for k, v in x.items()}
    y32, last32 = run("ref", x32, True, True)
    assert_close("last_state", last.detach(), last32, 1e-5, 1e-5)
    assert_close("y", y.detach().float(), y32.to(dtype).float(), 0.0)


# --------------------------------------------------------------------------- carry helper
def test_carry_scan_methods_agree_with_explicit_loop():
    g = torch.Generator().manual_seed(4)
    dec = torch.rand(2, 3, 13, 4, generator=g, dtype=torch.float64)
    loc = torch.randn(2, 3, 13, 4, generator=g, dtype=torch.float64)
    init = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    state, expected = init.clone(), []
    for c in range(13):
        expected.append(state)
        state = dec[..., c, :] * state + loc[..., c, :]
    expected = torch.stack(expected, dim=-2)
    for method in ("loop", "doubling"):
        ent, fin = carry_scan(dec, loc, init=init, method=method)
        assert_close(f"entering ({method})", ent, expected, 1e-13)
        assert_close(f"final ({method})", fin, state, 1e-13)


# --------------------------------------------------------------------------- errors and backends
def test_unknown_backend_lists_valid_ones():
    x = make_inputs()
    with pytest.raises(ValueError, match="auto, ref, parallel, mamba_ssm"):
        run("fast", x, False, False)


def test_mamba_ssm_backend_on_cpu_raises_clearly():
    x = make_inputs(dtype=torch.float32)
    with pytest.raises(RuntimeError, match="mamba_ssm") as info:
        run("mamba_ssm", x, True, False)
    msg = str(info.value)
    assert "backend='parallel'" in msg and ("CUDA" in msg or "import" in msg)


def test_mamba_ssm_backend_needs_cuda_even_when_importable(monkeypatch):
    called = []
    monkeypatch.setattr(scan_module, "_mamba_selective_scan_fn", lambda: (lambda *a: called.append(a), None))
    x = make_inputs(dtype=torch.float32)
    with pytest.raises(RuntimeError, match="only on CUDA tensors"):
        run("mamba_ssm", x, True, False)
    assert not called


def test_auto_picks_parallel_on_cpu_and_logs_once(caplog, monkeypatch):
    monkeypatch.setattr(scan_module, "_logged_choices", set())
    x = make_inputs()
    with caplog.at_level(logging.INFO, logger="survmamba_lite.ssm"):
        y_auto = run("auto", x, True, False)
        run("auto", x, True, False)
    records = [r for r in caplog.records if r.name == "survmamba_lite.ssm"]
    assert len(records) == 1 and "'parallel'" in records[0].getMessage()
    assert torch.equal(y_auto, run("parallel", x, True, False))
    assert available_backends("cpu") == ["ref", "parallel"]


@pytest.mark.parametrize(
    "key,shape,match",
    [
        ("u", (2, 5), "u must be"),
        ("delta", (2, 5, 10), "delta must have the shape"),
        ("A", (4, 3), "A must be"),
        ("B", (2, 4, 11), "input-dependent B"),
        ("C", (5, 4), "time-invariant C"),
        ("B", (2, 2, 3, 11), "grouped B"),
        ("D", (4,), "D must have shape"),
        ("z", (2, 5, 10), "z must have shape"),
        ("delta_bias", (5, 1), "delta_bias must have shape"),
    ],
)
@pytest.mark.parametrize("backend", ["ref", "parallel", "auto"])
def test_wrong_shapes_raise(key, shape, match, backend):
    x = make_inputs()
    x[key] = torch.zeros(shape, dtype=torch.float64)
    with pytest.raises(ValueError, match=match):
        run(backend, x, False, False)


def test_benchmark_loop_baseline_computes_the_same_scan():
    """The per-step loop timed in benchmarks/scan_benchmark.py is the same computation."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "scan_benchmark.py"
    spec = importlib.util.spec_from_file_location("scan_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    u, delta, A, B, C = bench.make_inputs(2, 6, 4, 33, "cpu", seed=3)
    y_loop = bench.loop_scan(u, delta, A, B, C)
    y_ref = selective_scan(u, delta, A, B, C, backend="ref")
    assert_close("loop vs ref", y_loop, y_ref, 1e-5, 1e-5)
