"""Caption metrics: exact match, corpus BLEU-4 (Papineni et al. 2002) and CIDEr-D (Vedantam et al. 2015), in plain
Python, with the conventions of the coco-caption toolkit that published captioning results use.

Every function takes `hypotheses` (one generated caption per image) and `references` (a list of reference
captions per image, one or more). Captions are compared as lower-case words without punctuation (the same
standardization as the captioners' vocabulary).
"""

import collections
import math
import re

_PUNCTUATION = re.compile(r"[^\w\s]")


def words(caption):
    """Lower-case words of a caption, punctuation removed."""
    return _PUNCTUATION.sub(" ", str(caption).lower()).split()


def _check(hypotheses, references):
    hypotheses = list(hypotheses)
    references = [[references_of] if isinstance(references_of, str) else list(references_of)
                  for references_of in references]
    if len(hypotheses) != len(references):
        raise ValueError(f"Give one list of references per hypothesis. Received: {len(hypotheses)} hypotheses and "
                         f"{len(references)} reference lists")
    if not hypotheses:
        raise ValueError("Give at least one hypothesis. Received: none")
    empty = [i for i, refs in enumerate(references) if not refs]
    if empty:
        raise ValueError(f"Every image needs at least one reference caption. Received: none for image {empty[0]}")
    return [words(h) for h in hypotheses], [[words(r) for r in refs] for refs in references]


def _ngrams(tokens, n):
    return collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def exact_match(hypotheses, references):
    """Fraction of hypotheses equal (word for word) to one of their references."""
    hypotheses, references = _check(hypotheses, references)
    return sum(any(h == r for r in refs) for h, refs in zip(hypotheses, references)) / len(hypotheses)


def bleu(hypotheses, references, max_order=4):
    """Corpus BLEU: the geometric mean of the clipped n-gram precisions (n = 1..max_order) pooled over the corpus,
    times the brevity penalty exp(1 - r/c) when the hypotheses' length c is below r, the sum over images of the
    reference length closest to each hypothesis (the shorter one on ties). 0 when any precision is 0."""
    hypotheses, references = _check(hypotheses, references)
    matches, totals = [0] * max_order, [0] * max_order
    hypothesis_length = reference_length = 0
    for hypothesis, refs in zip(hypotheses, references):
        hypothesis_length += len(hypothesis)
        reference_length += min((abs(len(r) - len(hypothesis)), len(r)) for r in refs)[1]
        for n in range(1, max_order + 1):
            counts = _ngrams(hypothesis, n)
            most = collections.Counter()
            for r in refs:
                most |= _ngrams(r, n)  # the most times each n-gram occurs in one reference
            matches[n - 1] += sum(min(count, most[gram]) for gram, count in counts.items())
            totals[n - 1] += max(len(hypothesis) - n + 1, 0)
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_order
    if hypothesis_length > reference_length:
        brevity = 1.0
    else:
        brevity = math.exp(1 - reference_length / max(hypothesis_length, 1))
    return brevity * math.exp(log_precision)


def cider_d(hypotheses, references, max_order=4, sigma=6.0):
    """Corpus CIDEr-D: the mean over images of 10 x the mean over n = 1..max_order of the mean over references
    of a clipped tf-idf cosine between hypothesis and reference n-grams, damped by a Gaussian of their length
    difference (sigma 6). Document frequencies come from the references of the images scored (coco-caption's
    "corpus" mode), so an n-gram every image's references hold weighs 0. As in coco-caption, the length compared
    is the number of bigrams (words - 1)."""
    hypotheses, references = _check(hypotheses, references)
    frequency = collections.Counter()
    for refs in references:
        frequency.update({gram for r in refs for n in range(1, max_order + 1) for gram in _ngrams(r, n)})
    log_images = math.log(len(references))

    def vectors(tokens):
        weights = [{gram: count * (log_images - math.log(max(1.0, frequency[gram])))
                    for gram, count in _ngrams(tokens, n).items()} for n in range(1, max_order + 1)]
        norms = [math.sqrt(sum(w * w for w in order.values())) for order in weights]
        return weights, norms, max(len(tokens) - 1, 0)

    scores = []
    for hypothesis, refs in zip(hypotheses, references):
        hyp, hyp_norms, hyp_length = vectors(hypothesis)
        total = [0.0] * max_order
        for r in refs:
            ref, ref_norms, ref_length = vectors(r)
            damping = math.exp(-((hyp_length - ref_length) ** 2) / (2 * sigma ** 2))
            for n in range(max_order):
                value = sum(min(w, ref[n].get(gram, 0.0)) * ref[n].get(gram, 0.0) for gram, w in hyp[n].items())
                if hyp_norms[n] and ref_norms[n]:
                    value /= hyp_norms[n] * ref_norms[n]
                total[n] += value * damping
        scores.append(10.0 * sum(total) / max_order / len(refs))
    return sum(scores) / len(scores)


def evaluate_captions(hypotheses, references):
    """{"exact_match", "bleu4", "cider_d"} of a set of generated captions against their references."""
    return {"exact_match": exact_match(hypotheses, references), "bleu4": bleu(hypotheses, references),
            "cider_d": cider_d(hypotheses, references)}
