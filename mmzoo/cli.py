"""The `mmzoo` command line. `mmzoo list` shows the registered recipes."""

import argparse
import sys

from mmzoo.recipes import describe_recipe, get_recipe, list_models


def _list(args):
    rows = [("recipe", "image tower", "text tower", "fusion", "description")]
    for name in list_models():
        recipe = get_recipe(name)
        rows.append((name, recipe["image_tower"], recipe["text_tower"], recipe["fusion"], describe_recipe(name)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="mmzoo", description="Multimodal (image + text) model zoo for Keras.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    listing = commands.add_parser("list", help="list the registered recipes with their towers and fusion")
    listing.set_defaults(run=_list)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
