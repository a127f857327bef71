"""DINOv2 pretraining.

- :mod:`.ssl_meta_arch` — ``SSLMetaArch``: student/EMA teacher, loss composition, extra-loss hook;
- :mod:`.targets` — batch/output records and ``compute_teacher_targets`` (reusable by extra losses);
- :mod:`.model_builder` — backbones from the ``student`` config section;
- :mod:`.schedules` — per-iteration lr/wd/momentum/teacher-temperature schedules;
- :mod:`.data` — dataset + augmentation + masks as a resumable, position-seeded stream;
- :mod:`.checkpointing` — atomic checkpoints, pruning, resume, teacher exports;
- :mod:`.parallel` — DDP / FSDP2 wrapping and full-state checkpoints;
- :mod:`.train` — the loop (``do_train``) and its entry point (``main``).
- :mod:`.branching` — a run branching off another run's checkpoint (restart / continue): NC/NCT;
- :mod:`.anchor` — ``AnchorRegularizer``: the NCT teacher-anchored loss of ``SSLMetaArch``.

The four methods' training configs come from the experiment layer (:mod:`dinov2.run.methods`).
"""
