"""`mmzoo list`: the registered recipes with their towers, fusion and parameter count."""

import json
import os


LIST_IMAGE_SIZE = 32  # the towers are convolutional: their parameter count does not depend on the image size


LIST_KINDS = ("image", "text", "audio")  # the tower columns of `mmzoo list`


def _recipe_towers_by_kind(recipe):
    """{kind: the recipe's towers of that input kind, joined by '+', or '-'} from `towers` or the two-input
    shorthand `image_tower`/`text_tower`."""
    from mmzoo.towers import get_tower

    towers = recipe.get("towers") or {"image": recipe.get("image_tower"), "text": recipe.get("text_tower")}
    names = [spec.get("tower") if isinstance(spec, dict) else spec for spec in towers.values()]
    by_kind = {kind: [] for kind in LIST_KINDS}
    for name in filter(None, names):
        by_kind.setdefault(get_tower(name).kind, []).append(name)
    return {kind: "+".join(found) or "-" for kind, found in by_kind.items()}


def list_command(args):
    from mmzoo.recipes import describe_recipe, get_recipe, list_models

    names = list_models()
    counts = _parameter_counts(names) if args.params else {}
    header = ("recipe", "image tower", "text tower", "audio tower", "fusion") + (("params",) if args.params else ())
    rows = [header]
    for name in names:
        recipe = get_recipe(name)
        towers = _recipe_towers_by_kind(recipe)
        row = (name, *(towers[kind] for kind in LIST_KINDS), str(recipe.get("fusion") or "-"))
        rows.append(row + ((f"{counts[name]:,}",) if args.params else ()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        cells = [cell.rjust(width) if j == 5 else cell.ljust(width) for j, (cell, width) in enumerate(zip(row, widths))]
        print("  ".join(cells) + "  " + ("description" if i == 0 else describe_recipe(row[0])))
    if args.params:
        from mmzoo.data import bundled

        print(f"\nparams: trainable and non-trainable, built for {bundled.VQA_NUM_CLASSES} classes and a "
              f"{bundled.VQA_VOCABULARY_SIZE}-word vocabulary (the bundled {bundled.VQA}); the image towers' counts do "
              "not depend on the image size.")
    return 0


def _parameter_counts(names):
    """{recipe: number of parameters}, building each distinct image tower only once.

    Building ten ResNet50 graphs would take a minute on a small CPU. Each image tower is built once for its
    parameter count and output shape (remembered in a cache file, so later listings skip even that); every recipe
    is then built around a parameter-free stand-in with that output shape (so its fusion sees the real feature
    width), and the two counts are added.
    """
    import mmzoo.towers.image as image_towers
    from mmzoo.recipes import build_model, get_recipe

    cache_path, version, towers = _tower_count_cache()
    known = len(towers)
    real_builder = image_towers.build_image_tower

    def stand_in(tower, *, image_size, output, name, **kwargs):
        if tower not in towers or kwargs.get("weights") is not None:
            real = real_builder(tower, image_size=image_size, output="tokens", name=name, **kwargs)
            towers[tower] = [real.count_params(), list(real.output.shape[1:])]
        return _parameter_free_tower(image_size, *towers[tower][1], tokens=output == "tokens", name=name)

    from mmzoo.data import bundled

    vocabulary = [f"word{i}" for i in range(bundled.VQA_VOCABULARY_SIZE)]
    counts = {}
    image_towers.build_image_tower = stand_in
    try:
        for name in names:
            model = build_model(name, num_classes=bundled.VQA_NUM_CLASSES, vocabulary=vocabulary,
                                image_size=LIST_IMAGE_SIZE)
            image = _recipe_towers_by_kind(get_recipe(name))["image"]
            counts[name] = model.count_params() + sum(towers[tower][0] for tower in image.split("+") if tower != "-")
    finally:
        image_towers.build_image_tower = real_builder
    if len(towers) > known:
        _write_json(cache_path, {version: towers})
    return counts


def _parameter_free_tower(image_size, steps, width, *, tokens, name):
    """pixels -> (batch, width) or (batch, steps, width) zeros-and-means, without a single weight."""
    import keras

    pixels = keras.Input((image_size, image_size, 3))
    x = keras.layers.GlobalAveragePooling2D()(pixels)  # (batch, 3) -> (batch, width), no weights
    x = keras.layers.Reshape((3, 1))(x)
    x = keras.layers.ZeroPadding1D((0, width - 3))(x)
    x = keras.layers.Reshape((width,))(x)
    if tokens:
        x = keras.layers.RepeatVector(steps)(x)
    return keras.Model(pixels, x, name=name)


def _tower_count_cache():
    """(cache file, key of this mmzoo/Keras/tower source, {tower: [parameters, tokens output shape]} cached)."""
    import hashlib

    import keras

    import mmzoo
    import mmzoo.towers.image

    cache_path = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mmzoo", "tower_parameters.json")
    with open(mmzoo.towers.image.__file__, "rb") as f:  # edited towers are counted again
        source = hashlib.sha1(f.read()).hexdigest()[:12]
    version = f"mmzoo {mmzoo.__version__}, keras {keras.__version__}, towers {source}, {LIST_IMAGE_SIZE} px"
    cache = _read_json(cache_path)
    return cache_path, version, dict(cache.get(version, {})) if isinstance(cache, dict) else {}


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _write_json(path, value):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(value, f)
        os.replace(path + ".tmp", path)
    except OSError:
        pass  # a read-only home: count again next time
