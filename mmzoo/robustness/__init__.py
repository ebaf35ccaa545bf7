"""Robustness to missing and noisy inputs (docs/robustness.md).

    report = mmzoo.robustness.evaluate_robustness(model, test_ds, reference=late_fusion_model)
    print(report.table()); report.plot("robustness.png")

`noise.py` holds the seeded noises per kind of input, `report.py` the report and MultiBench's two summaries,
`evaluate.py` the evaluation.
"""

from mmzoo.robustness.evaluate import accuracy, evaluate_robustness
from mmzoo.robustness.noise import IMAGE_NOISE, NOISE, TEXT_NOISE
from mmzoo.robustness.report import (DEFAULT_LEVELS, RobustnessReport, effective_robustness,
                                     relative_robustness)

__all__ = ["evaluate_robustness", "accuracy", "RobustnessReport", "relative_robustness", "effective_robustness",
           "DEFAULT_LEVELS", "NOISE", "IMAGE_NOISE", "TEXT_NOISE"]
