"""Whether and how long to pretrain the image tower on object annotations before the answers."""

from mmzoo.training.errors import OptionError


AUTO_OBJECT_EPOCHS = 4  # what object_epochs="auto" means where object pretraining is possible


def resolve_object_epochs(object_epochs, model, data, *, data_dir=None, multi_worker=False, from_pretrained=False):
    """How many epochs of object pretraining to run: `object_epochs` checked, with ``"auto"`` resolved.

    ``"auto"`` means `AUTO_OBJECT_EPOCHS` where it is possible — TFDS data with object annotations, an image tower
    that gives a square token grid, not multi-worker — unless the towers come pretrained (`from_pretrained`); else
    0. A positive number where it is not possible is an `OptionError` saying why.
    """
    from mmzoo.data.objects import has_object_annotations
    from mmzoo.trainers.objects import grid_size

    if object_epochs == 0:
        return 0
    reasons = []
    if data.tfds_name is None:
        reasons.append(f"{data.name} has no object annotations (they come from TFDS data)")
    elif not has_object_annotations(data.tfds_name, data_dir=data_dir):
        reasons.append(f"{data.tfds_name} has no `objects` feature with boxes and class labels")
    try:
        grid_size(model)
    except ValueError:
        reasons.append(f"recipe {model.name}'s image tower gives no square token grid (its fusion pools the image)")
    if multi_worker:
        reasons.append("it is not supported with a multi-worker strategy")
    if reasons:
        if object_epochs == "auto":
            return 0
        raise OptionError("object_epochs", object_epochs,
                          f"object pretraining is not possible here: {'; '.join(reasons)}")
    if object_epochs == "auto":
        return 0 if from_pretrained else AUTO_OBJECT_EPOCHS
    return object_epochs
