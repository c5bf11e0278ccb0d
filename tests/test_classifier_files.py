"""Model files saved by earlier duetml still load, and predict what they predicted then.

The files in tests/fixtures/models were written by duetml at commit 648f22c (see make.py
there), before the ridge model had a type of its own: its weights were stored in the SVM's
`dual_coef` slot. A project trained then must keep predicting after an upgrade.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from duetml.classifier import TrainedModel

FILES = Path(__file__).parent / "fixtures" / "models"


@pytest.mark.parametrize(
    ("name", "kernel", "classes"),
    [("svm-rbf-3", "rbf", 3), ("svm-linear-2", "linear", 2), ("ridge-3", "ridge", 3)],
)
def test_a_model_saved_by_earlier_duetml_loads_and_predicts_the_same(
    name: str, kernel: str, classes: int, tmp_path: Path
) -> None:
    expected = np.load(FILES / "expected.npz")
    model = TrainedModel.load(FILES / f"{name}.npz")
    assert model.kernel == kernel and len(model.categories) == classes
    assert model.meta["fingerprint"] == name and model.backbone == "efficientnet_lite0"
    assert model.extras["oof_probabilities"].shape == (12 * classes, classes)
    probabilities = model.predict_proba(expected["features"])
    assert np.allclose(probabilities, expected[name], rtol=0, atol=1e-12)
    # Saved again by this duetml and read back: the same model.
    model.save(tmp_path / "again.npz")
    again = TrainedModel.load(tmp_path / "again.npz")
    assert type(again) is type(model) and again.kernel == kernel
    assert np.allclose(again.predict_proba(expected["features"]), expected[name], atol=1e-12)


def test_a_ridge_file_whose_weights_do_not_fit_its_categories_is_refused(tmp_path: Path) -> None:
    from dataclasses import replace

    from duetml.classifier import RidgeModel
    from duetml.errors import ModelFileError

    model = TrainedModel.load(FILES / "ridge-3.npz")
    assert isinstance(model, RidgeModel)
    replace(model, weights=model.weights[:2]).save(tmp_path / "short.npz")
    with pytest.raises(ModelFileError, match="damaged or not a duetml model"):
        TrainedModel.load(tmp_path / "short.npz")
