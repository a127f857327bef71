"""Instance retrieval: the revisited Oxford/Paris protocol (:mod:`.revisited`), data (:mod:`.data`),
the mini set from ``skimage.data`` (:mod:`.mini_set`) and the evaluation of a backbone
(:mod:`.evaluate`; the command: ``python -m dinov2.run.eval.retrieval``)."""

from dinov2.eval.retrieval.revisited import (
    SETTINGS,
    compute_ap,
    compute_map,
    evaluate_revisited,
    setting_gnd,
)

__all__ = ["SETTINGS", "compute_ap", "compute_map", "evaluate_revisited", "setting_gnd"]
