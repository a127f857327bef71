"""The evaluation commands (linear probe, kNN, retrieval), built by one factory
(:mod:`.command`); :mod:`.checkpoints` chooses the teacher exports of an experiment to evaluate."""
