"""The types of the command's arguments: each a parse function that refuses a bad value in one line naming it."""

import argparse


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (`mmzoo train: error: ...`), not usage + message."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def number(convert, ok, expected, flag=None):
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    if flag:
        parse.__name__ = flag.lstrip("-")
    return parse


positive_int = number(int, lambda v: v >= 1, "a positive integer")


non_negative_int = number(int, lambda v: v >= 0, "a non-negative integer")


positive_float = number(float, lambda v: 0 < v < float("inf"), "a positive number")


def auto_or(parse):
    """`parse`, or the word 'auto' (the library decides)."""

    def parse_or_auto(text):
        if text == "auto":
            return text
        try:
            return parse(text)
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(str(error).replace("expected ", "expected 'auto' or ", 1)) from None

    parse_or_auto.__name__ = parse.__name__
    return parse_or_auto


def fraction(flag, allow_zero=False, allow_one=False):
    low, high = ("[0" if allow_zero else "(0"), ("1]" if allow_one else "1)")

    def ok(value):
        return (0 <= value if allow_zero else 0 < value) and (value <= 1 if allow_one else value < 1)

    return number(float, ok, f"a number in {low}, {high}", flag)


def choice(flag, choices):
    return number(str, lambda v: v in choices, f"one of {', '.join(choices)}", flag)


def column_names(text):
    """--image-column/--text-column: comma-separated column names; '' for none."""
    names = [name.strip() for name in text.split(",")] if text.strip() else []
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected column names separated by commas, got {text!r}")
    return names


def tower_names(text):
    """--towers: NAME=TOWER,NAME=TOWER -> {name: tower}, in the order given (the order the fusion sees)."""
    towers = {}
    for item in text.split(","):
        name, _, tower = (part.strip() for part in item.partition("="))
        if not name or not tower:
            raise argparse.ArgumentTypeError(f"expected NAME=TOWER pairs separated by commas, got {text!r}")
        if name in towers:
            raise argparse.ArgumentTypeError(f"input {name!r} is named twice in {text!r}")
        towers[name] = tower
    return towers


def named_value(text):
    """--input NAME=VALUE -> (name, value); the value may itself hold '='."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value
