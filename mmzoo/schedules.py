"""Learning-rate schedules by name, shared by `mmzoo.train`, object pretraining and the command line."""

SCHEDULES = ("cosine", "constant")


def learning_rate_schedule(learning_rate, schedule, steps_per_epoch, epochs):
    """`learning_rate` under `schedule`: ``"cosine"`` decays it to 0 over `epochs` of `steps_per_epoch` steps,
    ``"constant"`` keeps it (as does an unknown number of steps: None or negative)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r}: expected one of {', '.join(SCHEDULES)}")
    if schedule == "constant" or not steps_per_epoch or steps_per_epoch < 0:
        return learning_rate
    import keras

    # Keyed on the optimizer's step count, which the backup restores: a resumed run continues the same curve.
    return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps_per_epoch)
