"""The classifier on top of the frozen features: model selection, calibration, storage,
prediction.

    model        the trained models: TrainedModel (the shared interface and storage), SvmModel,
                 RidgeModel; the cross-validation a training returns
    svm          the kernel SVM: kernels, libsvm's one-vs-one scores in NumPy, the fits
    ridge        the ridge model that replaces the SVM from LINEAR_ABOVE photos
    calibration  temperature and margin weight, fitted on out-of-fold scores
    selection    `train`: cross-validation, successive halving, reuse after a small change

Why a precomputed kernel: features are L2-normalised, so both the linear and the RBF kernel
are functions of one Gram matrix G = X Xᵀ (for unit vectors |x - y|² = 2 - 2 x·y). It is
computed once and every candidate (kernel, C) in every cross-validation fold reuses it, which
keeps a re-train of a 1,000-photo project well under a second.

Why not `SVC(probability=True)` or `CalibratedClassifierCV`: the first is deprecated, and
both would force a pickle on disk. Probabilities here come from a two-parameter calibration
(temperature, and the weight of the continuous one-vs-one margins beside the votes) fitted on
the out-of-fold SVM scores of the same cross-validation that picks the hyper-parameters, so
they are calibrated on photos the SVM did not see. The model is then stored as plain arrays
(support vectors, dual coefficients, intercepts, temperature) in an .npz read with
`allow_pickle=False`, and prediction is a few lines of NumPy.

The tunables (CANDIDATES, REUSE_ABOVE, LINEAR_ABOVE, RIDGE_PENALTIES...) are not re-exported
here: they are read in the module that defines them, which is the one to patch.
"""

from duetml.classifier.calibration import fit_calibration, fit_temperature, softmax
from duetml.classifier.model import (
    MODEL_FORMAT,
    CrossValidation,
    EarlierCrossValidation,
    RidgeModel,
    StepCallback,
    SvmModel,
    TrainedModel,
    normalise,
)
from duetml.classifier.ridge import RIDGE_CROSS, RIDGE_GRAM
from duetml.classifier.selection import PreviousChoice, train
from duetml.classifier.svm import (
    RBF_GAMMA,
    class_pairs,
    class_scores,
    kernel,
    ovr_scores,
    pair_margins,
    svm_pair_scores,
)

__all__ = [
    "MODEL_FORMAT",
    "RBF_GAMMA",
    "RIDGE_CROSS",
    "RIDGE_GRAM",
    "CrossValidation",
    "EarlierCrossValidation",
    "PreviousChoice",
    "RidgeModel",
    "StepCallback",
    "SvmModel",
    "TrainedModel",
    "class_pairs",
    "class_scores",
    "fit_calibration",
    "fit_temperature",
    "kernel",
    "normalise",
    "ovr_scores",
    "pair_margins",
    "softmax",
    "svm_pair_scores",
    "train",
]
