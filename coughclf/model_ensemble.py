"""``coughclf evaluate CV_A CV_B ...``: the ensemble of different models' CV folders, evaluated fold by fold.

The members are checked and combined by :mod:`coughclf.ensemble` (:func:`~coughclf.ensemble.check_members`,
:func:`~coughclf.ensemble.combine_models`); this writes the ensemble as a CV folder of its own and
evaluates each fold as ``coughclf evaluate`` does. A module apart because it uses :mod:`coughclf.cv`,
which uses fold ensembles.

Example::

    from coughclf.model_ensemble import evaluate_model_ensemble
    summary = evaluate_model_ensemble(["saved_models/esc10_yamnet-cv-A", "saved_models/esc10-cv-B"])
    print(summary["metrics"]["accuracy"]["mean"])
"""

from pathlib import Path

from coughclf.ensemble import ENSEMBLE_FILE, FOLDS_FILE, check_members, combine_models, ensemble_clip
from coughclf.files import read_json


def _ensemble_config(members):
    """The config of the ensemble's folder: the first member's, named after all of them, reading
    whole clips of the ensemble's length (windows and shorter clips are cut inside the model now)."""
    import tomllib

    from coughclf.config import config_from_dict

    first = members[0]
    raw = tomllib.loads((Path(first["cv_dir"]) / "config.toml").read_text(encoding="utf-8"))
    for key in ("windows", "window_seconds", "random_windows"):
        raw["data"].pop(key, None)
    raw["data"]["clip_seconds"] = ensemble_clip(members) / first["sample_rate"]
    raw["name"] = "ensemble-" + "-".join(member["config"]["name"] for member in members)
    return config_from_dict(raw, str(Path(first["cv_dir"]) / "config.toml"))


def evaluate_model_ensemble(cv_dirs, out_dir=None, *, group_by=None, make_plots=True):
    """Evaluate the ensemble of the models of ``cv_dirs`` (CV folders of the same folds) fold by fold.

    Fold ``i``'s test clips are scored by :func:`combine_models` of every member's ``fold-i``
    model. ``out_dir`` (default ``saved_models/ensemble-{names}-{timestamp}``) is written as a CV
    folder: ``fold-{i}/best.keras`` is fold ``i``'s ensemble, with its metrics and predictions as
    ``coughclf evaluate`` writes them, ``summary.json`` the mean and standard deviation over folds,
    ``ensemble.json`` the members. So ``predict``, ``export`` and ``evaluate --data`` take
    ``out_dir`` as one model: its fold ensemble, i.e. every member's every fold, averaged.

    Returns the summary, as :func:`coughclf.cv.cross_validate`'s.
    """
    import shutil
    import time

    from coughclf.config import dump_config
    from coughclf.console import report
    from coughclf.cv import DONE_MARKER, summarize
    from coughclf.evaluate import evaluate
    from coughclf.files import atomic_path, write_json
    from coughclf.model_files import load_model_file
    from coughclf.runs import claim_run_dir, default_run_folder

    members = check_members([Path(cv_dir) for cv_dir in cv_dirs])
    config = _ensemble_config(members)
    out_dir = Path(out_dir) if out_dir else default_run_folder(config, f"-{time.strftime('%Y%m%d-%H%M%S')}")
    claim_run_dir(config, out_dir)
    shutil.copyfile(Path(members[0]["cv_dir"]) / FOLDS_FILE, out_dir / FOLDS_FILE)
    write_json(out_dir / ENSEMBLE_FILE, {"members": [{"cv_dir": member["cv_dir"], "model": member["model"],
                                                      "window_samples": member["window_samples"],
                                                      "window_starts": member["starts"]} for member in members]})
    results = []
    for index in range(members[0]["folds"]):
        fold_dir = out_dir / f"fold-{index}"
        runs = [Path(member["runs"][index]) for member in members]
        report(f"fold {index + 1}/{members[0]['folds']}: the ensemble of {', '.join(map(str, runs))}")
        model = combine_models([(load_model_file(run / "best.keras"), member["starts"])
                                for run, member in zip(runs, members)], ensemble_clip(members))
        with atomic_path(fold_dir / "best.keras", suffix=".keras") as temporary:
            model.save(temporary)
        dump_config(config, fold_dir / "config.toml")
        shutil.copyfile(runs[0] / "split.json", fold_dir / "split.json")
        write_json(fold_dir / "training.json", {"classes": members[0]["labels"],
                                                "cache": read_json(runs[0] / "training.json").get("cache")})
        results.append(evaluate(fold_dir, make_plots=make_plots, group_by=group_by))
        write_json(fold_dir / DONE_MARKER, results[-1])
    return summarize(config, out_dir, results)
