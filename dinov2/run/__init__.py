"""The experiment layer: one experiment YAML → the four methods' runs → every stage → the report.

:mod:`.experiment` (methods and their paths), :mod:`.methods` (experiment + method → training
config), the stage runners (:mod:`.pretrain`, :mod:`.evaluate` and the commands of :mod:`.eval`,
:mod:`.reference`, :mod:`.sweep`), :mod:`.pipeline` (the stages in order), :mod:`.report`,
:mod:`.multiseed` and :mod:`.submit` (slurm). The engine below (``dinov2/*``,
``neighbor2neighbor/``, ``utils/``) never imports this package (docs/architecture.md).
"""
