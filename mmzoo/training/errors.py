"""The two ways `mmzoo.train` fails on purpose: a bad option (before any work) and a run that diverged."""


class OptionError(ValueError):
    """A bad option: names the argument, the value received and what was expected, in one line."""

    def __init__(self, argument, value, expected):
        self.argument, self.value, self.expected = argument, value, expected
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        super().__init__(f"{argument}={shown}: {expected}")


class TrainingFailed(RuntimeError):
    """Training ran but failed (the loss became NaN)."""
