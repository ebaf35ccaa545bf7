"""Speech transcription: a transcriber (an audio tower's time tokens -> per-token character logits) trained with a
replica-safe CTC loss, greedy and beam-search decoding inside the graph, SavedModel export that takes waveforms or
WAV files and returns the transcript, word and character error rates, data and a training call.

    transcriber = mmzoo.build_model("mel_crnn_ctc", vocabulary=characters, sample_rate=8000, num_samples=80000)
    transcriber.compile()                                   # CTCLoss, fused Adam
    transcriber.fit(pack_dataset(transcriber, batches))     # batches of {"audio": float32 waveforms, "text": str}
    transcriber.transcribe(waveforms, strategy="beam")      # {"transcript", "token_ids", "length", ...}
    mmzoo.export_model(transcriber, "saved_models/transcriber")

See docs/transcription.md.
"""

import importlib

_PUBLIC = {
    "BlankPadding": "mmzoo.transcription.model",
    "CTCLoss": "mmzoo.transcription.loss",
    "LabelEncoder": "mmzoo.transcription.characters",
    "SpeechTranscriber": "mmzoo.transcription.model",
    "TokenLengths": "mmzoo.transcription.model",
    "build_transcriber": "mmzoo.transcription.model",
    "character_error_rate": "mmzoo.transcription.metrics",
    "character_vocabulary": "mmzoo.transcription.characters",
    "decode_logits": "mmzoo.transcription.decoding",
    "edit_distance": "mmzoo.transcription.metrics",
    "evaluate_transcripts": "mmzoo.transcription.metrics",
    "export_transcriber": "mmzoo.transcription.export",
    "load_transcriber": "mmzoo.transcription.training",
    "normalize_transcript": "mmzoo.transcription.characters",
    "pack_dataset": "mmzoo.transcription.data",
    "train_transcriber": "mmzoo.transcription.training",
    "transcribe": "mmzoo.transcription.decoding",
    "transcription_dataset": "mmzoo.transcription.data",
    "word_error_rate": "mmzoo.transcription.metrics",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmzoo.transcription' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
