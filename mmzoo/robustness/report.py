"""How a classifier holds up with an input missing or noisy: `evaluate_robustness` and its `RobustnessReport`.

For each input of the model: the accuracy with that input absent, and the accuracy under each noise of its kind
(mmzoo/robustness/noise.py) at levels 0 ... 1. Two summaries per input follow MultiBench (Liang et al., 2021,
"MultiBench: Multiscale Benchmarks for Multimodal Representation Learning", its eval_scripts/robustness.py):

- relative robustness: the area under accuracy against noise level over [0, 1] (trapezoids), for the mean curve
  over that input's noises; 1.0 would be a perfect model that no noise affects;
- effective robustness, given a reference model (late fusion of the same towers): the sum over levels of
  `acc(l) - (acc_ref(l) - acc_ref(0) + acc(0))`, i.e. how much accuracy the model keeps beyond what the
  reference keeps, once the reference's curve is shifted to start at the model's clean accuracy. Positive: it
  degrades more slowly than late fusion. (MultiBench then max-min normalises across the methods it compares;
  with one model there is nothing to normalise against, so the raw sum is reported.)

An input is absent through its presence flag when the model takes flags (`model.takes_presence`); a model that
does not gets a placeholder instead (black pixels, an empty string), and the report says so.
"""

import dataclasses

import numpy as np

from mmzoo.robustness.noise import NOISE

DEFAULT_LEVELS = tuple(round(0.1 * i, 1) for i in range(11))


@dataclasses.dataclass
class RobustnessReport:
    """What `evaluate_robustness` measured. `curves[input][noise]` are accuracies at `levels`; `mean_curves`
    their mean over the input's noises; `relative[input]` / `effective[input]` as the module says (`effective`
    is empty without a reference)."""

    model_name: str
    num_examples: int
    levels: tuple
    all_present: float
    absent: dict
    absent_by: str
    curves: dict
    mean_curves: dict
    relative: dict
    effective: dict
    reference_name: str = None

    def table(self):
        """The report as text: accuracies, then one row per input and noise over the levels."""
        lines = [f"Robustness of {self.model_name} on {self.num_examples} examples",
                 f"  all inputs present: {self.all_present:.4f}"]
        for name, accuracy in self.absent.items():
            lines.append(f"  {name} absent ({self.absent_by}): {accuracy:.4f}")
        header = "  input  noise            " + " ".join(f"{level:>5.1f}" for level in self.levels)
        lines += ["", "Accuracy against noise level:", header]
        for name, curves in self.curves.items():
            for noise, curve in {**curves, "mean": self.mean_curves[name]}.items():
                lines.append(f"  {name:<6} {noise:<16} " + " ".join(f"{a:5.3f}" for a in curve))
        lines += ["", "Relative robustness (area under the mean curve): "
                  + ", ".join(f"{name} {value:.4f}" for name, value in self.relative.items())]
        if self.effective:
            lines.append(f"Effective robustness against {self.reference_name}: "
                         + ", ".join(f"{name} {value:+.4f}" for name, value in self.effective.items()))
        return "\n".join(lines)

    def plot(self, path):
        """Writes a PNG of accuracy against noise level, one panel per input, one line per noise."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(1, len(self.curves), figsize=(5 * len(self.curves), 4), squeeze=False)
        for axis, (name, curves) in zip(axes[0], self.curves.items()):
            for noise, curve in curves.items():
                axis.plot(self.levels, curve, marker="o", label=noise)
            axis.plot(self.levels, self.mean_curves[name], color="black", linewidth=2, label="mean")
            axis.axhline(self.absent[name], color="grey", linestyle="--", label=f"{name} absent")
            axis.set(title=f"{self.model_name}: noisy {name}", xlabel="noise level", ylabel="accuracy", ylim=(0, 1))
            axis.legend(fontsize="small")
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return path


def relative_robustness(levels, curve):
    """Area under `curve` (accuracies at `levels`) by trapezoids."""
    levels, curve = np.asarray(levels, float), np.asarray(curve, float)
    return float(np.sum((curve[1:] + curve[:-1]) * np.diff(levels) / 2))


def effective_robustness(curve, reference_curve):
    """MultiBench's effective robustness: `sum_l acc(l) - (ref(l) - ref(0) + acc(0))`, both at the same levels."""
    curve, reference = np.asarray(curve, float), np.asarray(reference_curve, float)
    if curve.shape != reference.shape:
        raise ValueError(f"The curves must be at the same levels. Received: {curve.shape} and {reference.shape}")
    return float(np.sum(curve - (reference - reference[0] + curve[0])))
