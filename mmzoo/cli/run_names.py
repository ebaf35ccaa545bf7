"""Where a run writes by default: runs/<name> and saved_models/<name>, named after the recipe and the data."""

import os
import re

from mmzoo.cli.defaults import DEFAULT_DATASET


def run_name(args):
    """The default output and export folders' name: the recipe, and for data other than the default the data
    too, so that the same recipe on other data neither resumes the other run's backup nor becomes a new version
    of the model served for the other data."""
    if args.dataset == DEFAULT_DATASET:
        return args.recipe
    data = os.path.splitext(os.path.basename(args.dataset))[0] if is_data_file(args.dataset) else args.dataset
    return f"{args.recipe}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', data).strip('_.')}"


def is_data_file(dataset):
    return dataset.lower().endswith((".csv", ".jsonl"))


def export_dir(args, default_name):
    """--export, --no-export or the default saved_models/<default_name>."""
    if args.no_export:
        return None
    return args.export or os.path.join("saved_models", default_name)
