"""``coughclf models``: list the architectures, their inputs and parameter counts."""

from coughclf.console import result

HELP = ("list the model zoo with inputs, parameter counts (report vs Keras) and the checkpoint formats "
        "weights= reads, or summarise one model")
EXAMPLE = "coughclf models --json   |   coughclf models cough_crnn"


def add_arguments(parser):
    parser.add_argument("name", nargs="?", help="print this model's Keras summary (default: list all)")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")


def _input_spec(model):
    return [{"name": tensor.name, "shape": list(tensor.shape[1:]), "dtype": str(tensor.dtype)}
            for tensor in model.inputs]


def describe(name):
    """One model's entry: task, report, default options, inputs and parameter counts."""
    import keras

    from coughclf.models import build, spec
    from coughclf.models.common import trainable_params

    model_spec = spec(name)
    model = build(name)
    entry = {
        "name": name,
        "task": model_spec.task,
        "report": model_spec.report,
        "inputs": _input_spec(model),
        "defaults": model_spec.defaults,
        "trainable_params": trainable_params(model),
        "report_params": model_spec.report_params,
        "param_difference": model_spec.param_difference,
        "difference_reason": model_spec.difference_reason,
        # build(name, weights=PATH) reads these checkpoint formats (coughclf.models.checkpoints.FORMATS); [] for none.
        "weight_formats": list(model_spec.weight_formats),
    }
    keras.backend.clear_session()
    return entry


def run(args):
    import json

    from tqdm import tqdm

    from coughclf.models import available, build, spec

    if args.name:
        spec(args.name)  # a clear error for an unknown name before building anything
        build(args.name).summary(print_fn=lambda text: result(text, end=""))
        return 0
    entries = [describe(name) for name in tqdm(available(), desc="building models", unit="model",
                                              disable=None, leave=False)]
    if args.json:
        result(json.dumps(entries, indent=2, default=list))
        return 0
    result(f"{'model':<24} {'task':<15} {'input':<18} {'params':>12} {'report':>12}  difference")
    for entry in entries:
        shape = "+".join("x".join(str(d) for d in item["shape"]) for item in entry["inputs"])
        difference = (f"{entry['param_difference']:+,} ({entry['difference_reason']})"
                      if entry["param_difference"] else "")
        result(f"{entry['name']:<24} {entry['task']:<15} {shape:<18} {entry['trainable_params']:>12,} "
              f"{entry['report_params']:>12,}  {difference}")
    return 0
