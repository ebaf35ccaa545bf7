"""Word and character error rates, with an edit distance of our own (no jiwer dependency).

Both are corpus rates, as jiwer and the speech literature compute them: the edits (substitutions, deletions,
insertions) summed over every pair, over the reference words (or characters) summed over every reference. So a
long transcript weighs more than a short one, and the rate can exceed 1 (a hypothesis with many insertions).
Transcripts are normalised first (`mmzoo.transcription.characters.normalize_texts`: lower case, punctuation
gone), the same normalisation the training labels went through; characters count spaces between words.
"""

import numpy as np

from mmzoo.transcription.characters import normalize_transcripts


def edit_distance(reference, hypothesis):
    """Levenshtein distance between two sequences (str, lists of words, ...): the fewest substitutions,
    deletions and insertions that turn `reference` into `hypothesis`. O(len(reference) * len(hypothesis)) time,
    one row of memory."""
    reference, hypothesis = list(reference), list(hypothesis)
    if not reference or not hypothesis:
        return len(reference) + len(hypothesis)
    previous = list(range(len(hypothesis) + 1))
    for i, wanted in enumerate(reference, start=1):
        current = [i]
        for j, given in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1,                        # delete `wanted`
                               current[j - 1] + 1,                     # insert `given`
                               previous[j - 1] + (wanted != given)))   # substitute (or keep)
        previous = current
    return previous[-1]


def _pairs(references, hypotheses):
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError(f"`references` and `hypotheses` must have the same length. Received: {len(references)} "
                         f"references, {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("No transcripts to compare. Received: 0 references")
    return normalize_transcripts(references), normalize_transcripts(hypotheses)


def _rate(pairs, split):
    edits = sum(edit_distance(split(reference), split(hypothesis)) for reference, hypothesis in pairs)
    total = sum(len(split(reference)) for reference, _ in pairs)
    if total == 0:
        raise ValueError("Every reference is empty once normalised: an error rate over 0 words is undefined.")
    return edits / total


def word_error_rate(references, hypotheses):
    """Corpus WER: word edits over reference words (both lists of str, normalised first)."""
    return _rate(list(zip(*_pairs(references, hypotheses))), str.split)


def character_error_rate(references, hypotheses):
    """Corpus CER: character edits over reference characters, spaces between words included."""
    return _rate(list(zip(*_pairs(references, hypotheses))), list)


def evaluate_transcripts(references, hypotheses):
    """`{"wer", "cer", "exact_match", "examples"}`: the corpus rates and the fraction of transcripts right word for
    word, after normalisation."""
    references, hypotheses = _pairs(references, hypotheses)
    pairs = list(zip(references, hypotheses))
    return {"wer": _rate(pairs, str.split), "cer": _rate(pairs, list),
            "exact_match": float(np.mean([reference.split() == hypothesis.split() for reference, hypothesis in pairs])),
            "examples": len(pairs)}
