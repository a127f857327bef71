"""``python -m dinov2.eval.retrieval``: see :mod:`dinov2.eval.retrieval.run`."""

from dinov2.eval.retrieval.run import main

raise SystemExit(main())
