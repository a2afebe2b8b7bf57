"""Knowledge distillation: a small classifier (the student) trained on a frozen teacher's soft targets
beside the labels (Hinton, Vinyals and Dean 2015), configured by ``[distill]``::

    [distill]
    teacher = "saved_models/esc10_yamnet-cv"   # a run folder, a CV folder, a .keras file, or
                                               # { model = "NAME", weights = "PATH", options... }
    temperature = 2.0
    alpha = 0.5                  # share of the soft-target loss; the labels' cross-entropy keeps the rest
    teacher_input = "augmented"  # or "clean": what the teacher hears (see .model)
    unlabelled = ["prepared/esc50-other"]   # audio only the teacher labels
    unlabelled_ratio = 1.0

The pieces, in the order a run meets them:

* :mod:`.settings`: the [distill] table checked at load (a CTC student is refused: out of scope);
* :mod:`.teachers`: which teacher the files describe, its classes matched to the data's by name, and
  the teacher of each split (a CV student's fold learns from the teacher's same fold; no teacher that
  saw the student's test part);
* :mod:`.model`: the training model (student and frozen teacher on the very batch the student trains
  on) and the loss;
* :mod:`.unlabelled`: unlabelled audio as batches between the labelled ones;
* :mod:`.plan`: the classifier's fit turned into a distillation fit, and the teacher's cost per epoch.

A distilled run is a normal run folder whose ``best.keras`` is the student alone: ``evaluate``,
``export`` (float32 and int8 TFLite), ``predict`` and fold ensembles take it unchanged.
"""
