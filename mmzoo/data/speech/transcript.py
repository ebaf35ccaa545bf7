"""What is spoken for a text: its words, lower-cased, in order, and where the pauses go.

The spoken configs assemble each utterance from this token list and keep it as the transcript, so a test can
check that the speech says the written text word for word. Punctuation is not spoken; a comma becomes a longer
pause, a full stop or question mark ends the utterance.
"""

from __future__ import annotations

import re

__all__ = ["PAUSES", "spoken_tokens", "transcript"]

PAUSES = (",", ";", ":", ".", "?", "!")
_TOKEN = re.compile(r"[a-z]+|[,;:.?!]")


def spoken_tokens(text: str) -> list[str]:
    """The words of `text` (lower-cased, letters only) with its punctuation marks kept as pause tokens."""
    return _TOKEN.findall(str(text).lower())


def transcript(text: str) -> list[str]:
    """The words of `text` that are spoken, in order: ``"Is there a red circle?"`` -> ``[is, there, a, red, circle]``."""
    return [token for token in spoken_tokens(text) if token not in PAUSES]
