"""`init`: a new model that starts from the towers and fusion of one saved by `mmzoo pretrain`."""

from mmzoo.training.errors import OptionError


def pretrained_vocabulary(pretrained, path):
    """The vocabulary of `pretrained`'s text inputs (they share one, as `build_classifier` builds them)."""
    vectorizers = list(getattr(pretrained, "vectorizers", {}).values())
    if not vectorizers:
        raise OptionError("init", path, "expected a pretrained classifier with a text input (as `mmzoo pretrain` "
                          "saves), whose vocabulary the new model takes")
    return vectorizers[0].get_vocabulary(include_special_tokens=False)


def copy_pretrained(source, target, path):
    """Copy every weighted backbone layer but the head from `source` into `target`, by name; their names."""
    import mmzoo

    source_backbone, target_backbone = mmzoo.get_backbone(source), mmzoo.get_backbone(target)
    copied = []
    for layer in source_backbone.layers:
        if not layer.weights or layer.name == "head":
            continue
        try:
            twin = target_backbone.get_layer(layer.name)
        except ValueError:
            raise OptionError("init", path, f"the model has a layer '{layer.name}' that recipe {target.name} lacks; "
                              "pretrain the same recipe") from None
        if [w.shape for w in twin.weights] != [w.shape for w in layer.weights]:
            raise OptionError("init", path, f"layer '{layer.name}' has other shapes than in recipe {target.name} "
                              "(different image size or recipe options?)")
        twin.set_weights(layer.get_weights())
        copied.append(layer.name)
    return copied
