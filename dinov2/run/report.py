"""Results table and figures of an experiment: ``python -m dinov2.run.report --experiment FILE``.

Same as ``python -m dinov2.eval.report`` (see there): ``<run_dir>/report/results.md`` (one row per
method, printed), ``accuracy.png`` and ``noise_grid.png`` (clean / noisy / denoised val images).
"""

import sys

from dinov2.eval.report import main

if __name__ == "__main__":
    sys.exit(main())
