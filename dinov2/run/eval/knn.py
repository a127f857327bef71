"""kNN launcher: ``python dinov2/run/eval/knn.py`` = ``python -m dinov2.eval.knn``."""

from dinov2.eval.knn import main

if __name__ == "__main__":
    raise SystemExit(main())
