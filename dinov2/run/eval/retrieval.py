"""Retrieval launcher: ``python dinov2/run/eval/retrieval.py`` = ``python -m dinov2.eval.retrieval``."""

from dinov2.eval.retrieval.run import main

if __name__ == "__main__":
    raise SystemExit(main())
