"""The four compared methods of an experiment and where their inputs and outputs live.

Every path derives from the experiment YAML (``data.*_root``, ``pretrain.runs_dir``), so the
pretraining, evaluation and report stages agree without a path being typed twice.

| method         | pretrained on           | evaluated on  | starts from                         |
| -------------- | ----------------------- | ------------- | ----------------------------------- |
| ``dinov2``     | noisy images            | noisy val     | scratch                             |
| ``n2n_dinov2`` | denoised images         | denoised val  | scratch                             |
| ``nc``         | noisy images            | noisy val     | ``n2n_dinov2`` at the switch epoch, |
|                |                         |               | fresh schedule                      |
| ``nct``        | noisy + paired denoised | noisy val     | as ``nc``, plus the                 |
|                |                         |               | teacher-anchored regularizer        |

N2N + DINOv2 needs the denoiser at inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from utils.load_noise import noisy_tree_source

METHODS = ("dinov2", "n2n_dinov2", "nc", "nct")
METHOD_LABELS = {
    "dinov2": "DINOv2",
    "n2n_dinov2": "N2N + DINOv2",
    "nc": "DINOv2 w/ NC",
    "nct": "DINOv2 w/ NCT",
    "random_init": "random init (untrained)",
    "random_init_denoised": "random init, denoised data",
    "pixels": "raw pixels",
    "pixels_denoised": "raw pixels, denoised data",
}
# Reference rows of every table (python -m dinov2.run.reference): the dinov2 method's architecture
# and seed, untrained, and raw pixels; each on the noisy data and on the denoised data (the N2N +
# DINOv2 row's).
REFERENCE_METHODS = ("random_init", "random_init_denoised", "pixels", "pixels_denoised")
EVALUATED = (*REFERENCE_METHODS, *METHODS)
# The reference each method's "gain over random init" is measured against (its evaluation data).
RANDOM_INIT_OF = {
    "n2n_dinov2": "random_init_denoised",
    "dinov2": "random_init",
    "nc": "random_init",
    "nct": "random_init",
}
DONE_MARKER = ".complete"


@dataclass(frozen=True)
class MethodPaths:
    """Folders of one method of one experiment."""

    method: str
    run_dir: (
        Path  # the training output dir (checkpoints, eval/training_<it>/teacher_checkpoint.pth)
    )
    train_root: Path  # ImageFolder root the method pretrains on
    paired_root: Path | None  # denoised counterpart of train_root (NCT only)
    eval_root: Path  # ImageFolder root whose train/val splits the method is evaluated on
    eval_dir: Path  # evaluation outputs (results_eval_linear.json, results_eval_knn.json, ...)
    branch_from: (
        Path | None
    )  # run dir of the method whose switch-epoch checkpoint this one starts from
    # noise.at_load on a noisy method: train_root/eval_root are the clean root, indexed into
    # `extra` (a folder of ours), and `load_noise` holds the dataset-string options of the noise
    extra: Path | None = None  # index folder of train_root/eval_root; None: ROOT/extra
    load_noise: str = ""

    def dataset_string(self, split: str = "TRAIN") -> str:
        """The dataset string of the method's data (``train_root``, which is also ``eval_root``)."""
        return dataset_string(self.train_root, split, self.extra, self.load_noise)


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    return method


def method_paths(cfg: DictConfig, method: str) -> MethodPaths:
    """Folders of a compared method or of a reference row (both variants of a reference share one
    run)."""
    if method not in EVALUATED:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(EVALUATED)}")
    runs = Path(cfg.pretrain.runs_dir)
    noisy, load_noise = noisy_tree_source(cfg, cfg.data.noisy_root)  # noise.at_load: the clean root
    denoised = Path(cfg.data.denoised_root)
    on_denoised = method in ("n2n_dinov2", "random_init_denoised", "pixels_denoised")
    at_load = load_noise is not None and not on_denoised
    return MethodPaths(
        method=method,
        run_dir=runs / method.removesuffix("_denoised"),
        train_root=denoised if on_denoised else noisy,
        paired_root=denoised if method == "nct" else None,
        eval_root=denoised if on_denoised else noisy,
        eval_dir=Path(cfg.run_dir) / "eval" / method,
        branch_from=runs / "n2n_dinov2" if method in ("nc", "nct") else None,
        extra=clean_index_dir(cfg) if at_load else None,
        load_noise=load_noise.dataset_options() if at_load else "",
    )


def clean_index_dir(cfg: DictConfig) -> Path:
    """Where the clean root is indexed: a folder of ours (the user's clean tree is never
    written)."""
    return Path(cfg.output_root) / "data" / f"{cfg.data.name}_index"


def dataset_string(
    root: Path, split: str = "TRAIN", extra: Path | None = None, options: str = ""
) -> str:
    """The DINOv2 dataset string of an ImageFolder root indexed by ``process_metadata.py`` (into
    ``extra``, default ``root/extra``), followed by further ``options`` (``:key=value...``)."""
    extra = root / "extra" if extra is None else extra
    return f"ImageNet:split={split.upper()}:root={root}:extra={extra}{options}"
