"""``python -m dinov2.run.train``: same as ``python dinov2/run/train/train.py``."""

import sys

from dinov2.run.train.train import main

sys.exit(main())
