"""One worker of a `mmzoo train --strategy multiworker` cluster; tests/test_multiworker.py starts two of them.

    TF_CONFIG=... python multiworker_train.py WEIGHTS.npz [mmzoo train arguments...]

Runs the command's own training function (what `mmzoo train` runs) and saves the trained backbone's weights to
WEIGHTS.npz, so the test can check that every worker ends with the same model.
"""

import sys

import numpy as np

import mmzoo
from mmzoo import cli

weights_path, argv = sys.argv[1], sys.argv[2:]
args = cli.build_parser().parse_args(["train", "--strategy", "multiworker", *argv])
model = cli.run_training(args)
np.savez(weights_path, *[np.asarray(w.numpy()) for w in mmzoo.get_backbone(model).weights])
