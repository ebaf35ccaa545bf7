"""What the commands do when a flag is not given: `mmzoo train` with no arguments is the main job."""

# The main job: what `mmzoo train` runs without arguments.
DEFAULT_RECIPE = "coord_cnn_gru_glimpse"
DEFAULT_DATASET = "mmzoo_shapes/vqa"
DEFAULT_EPOCHS = "auto"  # mmzoo.run_length.auto_epochs: 25 for the bundled data's 10,000 training examples
DEFAULT_BATCH_SIZE = 64
DEFAULT_IMAGE_SIZE = 64
DEFAULT_LEARNING_RATE = 3e-3
DEFAULT_SCHEDULE = "cosine"
DEFAULT_SEED = 0
DEFAULT_PRETRAIN_RECIPE = "small_cnn_bilstm_attention"
DEFAULT_PRETRAIN_DATASET = "mmzoo_shapes/captions"
DEFAULT_STUDENT_RECIPE = "small_cnn_lstm_concat"
DEFAULT_CAPTION_RECIPE = "small_cnn_gru_captioner"
DEFAULT_CAPTION_DATASET = "mmzoo_shapes/captions"
# --epochs auto for captioning: the classifier's rule counts labelled examples, not caption tokens; 10 epochs is
# what the bundled captions' recipes were tuned with.
CAPTION_AUTO_EPOCHS = 10
DEFAULT_TRANSCRIBE_RECIPE = "mel_crnn_ctc"
DEFAULT_TRANSCRIBE_DATASET = "mmzoo_shapes/spoken_captions"
# 16, not 64: CTC needs updates more than large batches; the same 4 epochs take twice the steps of 32 for ~1.5x its
# CPU time (docs/transcription.md, on the spoken captions: test WER 11 % with 64; 0.46 / 0.61 / 32.7 % on seeds
# 0 / 1 / 2 with 32; 0.15 / 0.05 / 1.5 % with 16).
TRANSCRIBE_BATCH_SIZE = 16
