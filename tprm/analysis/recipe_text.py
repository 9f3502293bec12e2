"""A recipe's settings told in one paragraph: what a report opens with, generated from the
settings that made the results (a free-text description can go stale when a recipe copied
from a template is edited; this cannot)."""

from __future__ import annotations

from tprm.analysis.phase import format_density

_KNOB_WORDS = {"epochs": "dense training epochs", "batch_size": "dense batch size", "lr": "dense learning rate",
               "weight_decay": "dense weight decay", "sam_rho": "SAM rho of dense training"}
_HOTTER_WORDS = {"fewer": "fewer", "smaller": "smaller", "larger": "larger"}


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _budget(section: dict, what: str, knob: str | None = None) -> str:
    """'20 retraining epochs at lr 0.1, batch size 128' (or iterations; SAM rho when set),
    leaving out the setting `knob` varies."""
    unit = (f"{section['epochs']} {what}epochs" if section.get("epochs") is not None
            else f"{section['iterations']} {what}iterations")
    parts = [f"{name} {_num(section[key])}" for key, name in (("lr", "lr"), ("batch_size", "batch size"),
                                                               ("sam_rho", "SAM rho"))
             if key != knob and (key != "sam_rho" or section.get("sam_rho"))]
    return f"{unit} at {', '.join(parts)}" if parts else unit


def _data_and_model(s: dict) -> str:
    data = s["dataset"]
    name = {"mnist1d": "MNIST-1D", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "svhn": "SVHN"}.get(
        data["name"], data["name"])
    sizes = []
    if data["name"] == "mnist1d":
        sizes.append(f"{data['num_samples']} generated samples")
    if data.get("train_subset"):
        sizes.append(f"first {data['train_subset']} train")
    if data.get("test_subset"):
        sizes.append(f"first {data['test_subset']} test")
    model = s["model"]
    net = model.get("import") or model.get("name")
    kwargs = ", ".join(f"{k} {v}" for k, v in (model.get("kwargs") or {}).items())
    sized = f"{name} ({', '.join(sizes)})" if sizes else name
    return f"{sized}; model {net}{' (' + kwargs + ')' if kwargs else ''}."


def _temperature(s: dict, hotter: str) -> str:
    t, dense = s["temperature"], s["dense"]
    values = ", ".join(_num(v) for v in t["values"])
    seeds = len(s["dense_seeds"])
    if t["knob"] == "epochs":
        return (f"Temperature = dense training epochs: checkpoints {values} of one {dense['epochs']}-epoch "
                f"run per dense seed ({seeds} dense seed(s); {_HOTTER_WORDS[hotter]} epochs = hotter), at "
                f"lr {_num(dense['lr'])}, batch size {dense['batch_size']}.")
    return (f"Temperature = {_KNOB_WORDS.get(t['knob'], t['knob'])}: values {values} "
            f"({_HOTTER_WORDS[hotter]} = hotter); each dense model trained for "
            f"{_budget(dense, '', t['knob'])} ({seeds} dense seed(s)).")


def _pruning(s: dict) -> str:
    p = s["pruning"]
    method = (f"iterative magnitude pruning with rewinding ({p['imp_rounds']} rounds)" if p["method"] == "imp"
              else f"one-shot {p['scope']} {p['method']} pruning")
    densities = ", ".join(format_density(d) for d in s["densities"])
    return f"Load = density after {method}: {densities}."


def describe_settings(settings: dict, hotter: str) -> str:
    """One paragraph of what a recipe (as resolved settings, Recipe.to_dict()) measures."""
    retrain = settings["retrain"]
    return " ".join([
        _data_and_model(settings), _temperature(settings, hotter), _pruning(settings),
        f"Retraining: {_budget(retrain, 'retraining ')}; {len(retrain['seeds'])} retrain seeds per pruned "
        "model for LMC and CKA."])
