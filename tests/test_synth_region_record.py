"""The synthetic generator's record of where the histology signal sits (synthetic_regions.csv)
adds no random draw: a seed gives the same data as before the record existed."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from survmamba_lite.data.features_h5 import read_features_h5
from survmamba_lite.data.synth import REGION_TRUTH, TUMOUR_SHIFT, _directions, SCALES, make_synthetic_cohort

#: measured with the generator before synthetic_regions.csv was added (BLCA, tiny, seed 0)
BEFORE = {
    "clinical.csv": "cedd64ec389d8bbe3b085dbdf4e193e9c637498441cb05559da77249ba9a04a5",
    "hierarchy.tsv": "ebe0c9fb778b541d94773a5433c04c874ddda34b858f1fba7128b4e0f0eb0c84",
}
BEFORE_TRUE_RISK = [-0.819277, -0.69715, 0.299217, 0.405089, 0.11754, -1.47638]
BEFORE_FIRST_FEATURES = [[-1.8497674, 0.30061316, -1.1373355, 0.7885762],
                         [-1.3046747, -0.3819645, -0.23040973, 0.55933756]]
BEFORE_FEATURE_SUM = -13118.74433455491


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_synthetic_cohort("BLCA", "tiny", seed=0, out=tmp_path_factory.mktemp("rec") / "c")


def test_same_numbers_as_before_the_record(cohort):
    for name, digest in BEFORE.items():
        assert hashlib.sha256((cohort / name).read_bytes()).hexdigest() == digest, name
    truth = pd.read_csv(cohort / "synthetic_truth.csv")
    np.testing.assert_allclose(truth["true_risk"].to_numpy()[:6], BEFORE_TRUE_RISK, rtol=1e-6)
    files = sorted((cohort / "features").glob("*.h5"))
    first = read_features_h5(files[0])
    np.testing.assert_allclose(first.features[:2, :4], BEFORE_FIRST_FEATURES, rtol=1e-6)
    total = sum(float(read_features_h5(f).features.astype(np.float64).sum()) for f in files)
    assert abs(total - BEFORE_FEATURE_SUM) < 1e-3 * len(files)


def test_region_record_matches_the_data(cohort):
    rec = pd.read_csv(cohort / REGION_TRUTH)
    assert list(rec.columns) == ["case_id", "slide_id", "region", "n_patches", "tumour"]
    truth = pd.read_csv(cohort / "synthetic_truth.csv").set_index("case_id")
    # h_region = (mean z - 0.5) / 0.25 over the patient's regions, as written in synthetic_truth.csv
    h = rec.groupby("case_id")["tumour"].mean().sub(0.5).div(0.25)
    np.testing.assert_allclose(h.loc[truth.index].to_numpy(), truth["h_region"].to_numpy(), atol=1e-5)
    # every region of every slide is listed once, with its patch count
    u_t = _directions(SCALES["tiny"], 0)[:, 0]
    gaps = []
    for sid, rows in list(rec.groupby("slide_id"))[:40]:
        sf = read_features_h5(cohort / "features" / f"{sid}.h5")
        counts = np.bincount(sf.region)
        assert sorted(rows["region"]) == list(range(len(counts)))
        np.testing.assert_array_equal(rows.sort_values("region")["n_patches"].to_numpy(), counts)
        proj = sf.features @ u_t                                      # the tumour direction
        for _, row in rows.iterrows():
            gaps.append((row["tumour"], proj[sf.region == row["region"]].mean()))
    g = np.array(gaps)
    tumour, other = g[g[:, 0] == 1, 1], g[g[:, 0] == 0, 1]
    # tumour regions sit TUMOUR_SHIFT further along u_T (up to the per-slide stain offset and noise)
    assert abs((tumour.mean() - other.mean()) - TUMOUR_SHIFT) < 0.5, (tumour.mean(), other.mean())
