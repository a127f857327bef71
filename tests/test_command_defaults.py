"""Every command's flag defaults are the defaults of configs/defaults.yaml (read here with PyYAML,
independently of the commands) and ``--help`` shows them: the evaluation commands (``eval.*``), the
mini retrieval set, the noise generator; an experiment's values reach every mirrored flag."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = yaml.safe_load((REPO / "configs" / "defaults.yaml").read_text())

SHARED = {
    "batch_size": "eval.batch_size",
    "num_workers": "eval.num_workers",
    "resize_size": "eval.resize_size",
    "crop_size": "eval.crop_size",
    "device": "eval.device",
}
# command module -> {flag dest: the YAML key it mirrors}
MIRRORED = {
    "dinov2.run.eval.linear": {
        **SHARED,
        "batch_size": "eval.linear.batch_size",
        "epochs": "eval.linear.epochs",
        "epoch_length": "eval.linear.epoch_length",
        "cache_features": "eval.linear.fast",
    },
    "dinov2.run.eval.knn": {
        **SHARED,
        "nb_knn": "eval.knn.nb_knn",
        "temperature": "eval.knn.temperature",
    },
    "dinov2.run.eval.retrieval": {
        **SHARED,
        "datasets": "eval.retrieval.datasets",
        "crop_queries": "eval.retrieval.crop_queries",
    },
    "dinov2.eval.retrieval.mini_set": {"size": "eval.retrieval.mini_size"},
}
# keys of a command's YAML section without a flag default: a path derived from output_root
EXPERIMENT_ONLY = {"eval.retrieval.data_root"}


def yaml_value(key: str):
    value = DEFAULTS
    for part in key.split("."):
        value = value[part]
    return value


def section_keys(name: str) -> set[str]:
    return {f"eval.{name}.{k}" for k in DEFAULTS["eval"][name]}


@pytest.mark.parametrize("module", sorted(MIRRORED))
def test_flag_defaults_equal_the_yaml_defaults(module):
    parser = importlib.import_module(module).get_args_parser()
    for dest, key in MIRRORED[module].items():
        assert parser.get_default(dest) == yaml_value(key), f"{module} --{dest} vs {key}"


@pytest.mark.parametrize("name", ["linear", "knn", "retrieval"])
def test_every_key_of_a_commands_yaml_section_and_of_eval_has_its_flag(name):
    mirrored = set(MIRRORED[f"dinov2.run.eval.{name}"].values())
    section = section_keys(name) - EXPERIMENT_ONLY - {"eval.retrieval.mini_size"}
    assert section <= mirrored, f"eval.{name} keys without a flag: {sorted(section - mirrored)}"
    shared = {k for k in SHARED.values() if k != "eval.batch_size" or name != "linear"}
    assert shared <= mirrored
    # and no flag named like a YAML key of its command escapes the table
    parser = importlib.import_module(f"dinov2.run.eval.{name}").get_args_parser()
    leaves = {
        k.rsplit(".", 1)[1] for k in (section_keys(name) - EXPERIMENT_ONLY) | set(SHARED.values())
    }
    named_like_keys = {a.dest for a in parser._actions if a.dest in leaves}
    assert named_like_keys <= set(MIRRORED[f"dinov2.run.eval.{name}"])


@pytest.mark.parametrize("module", sorted(MIRRORED))
def test_help_shows_the_yaml_defaults(module, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # no wrapped defaults
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main(["--help"])
    assert exit_info.value.code == 0
    # one block per option: its first line starts with "  -", its help may follow on the next lines
    blocks = re.split(r"\n(?=  -)", capsys.readouterr().out)
    for dest, key in MIRRORED[module].items():
        option = "--" + (dest if dest == "nb_knn" else dest.replace("_", "-"))
        block = next((b for b in blocks if re.match(rf"\s+{option}\b", b)), None)
        assert block is not None, f"{option} missing from the help of {module}"
        text, value = " ".join(block.split()), yaml_value(key)
        assert f"(default: {value})" in text if value is not None else "(default:" not in text


def test_an_experiment_sets_every_mirrored_flag_from_its_keys(tmp_path):
    """Changing an eval key in the experiment reaches the command's arguments (no hand copy)."""
    from dinov2.run.eval.command import experiment_runs
    from dinov2.run.eval.knn import KNN
    from dinov2.run.eval.linear import LINEAR
    from dinov2.run.eval.retrieval import RETRIEVAL

    run = tmp_path / "out" / "runs" / "t" / "gauss_100" / "pretrain" / "dinov2"
    (run / "eval" / "training_5").mkdir(parents=True)
    (run / "eval" / "training_5" / "teacher_checkpoint.pth").write_bytes(b"")
    exp = tmp_path / "t.yaml"
    exp.write_text(
        f"name: t\noutput_root: {tmp_path / 'out'}\ndata: {{name: d, clean_root: /c}}\n"
        "eval: {batch_size: 7, num_workers: 3, resize_size: 40, crop_size: 36, device: cpu,\n"
        "       linear: {fast: false, epochs: 2, batch_size: 5, epoch_length: 9},\n"
        "       knn: {nb_knn: [4], temperature: 0.5},\n"
        "       retrieval: {datasets: [roxford5k], crop_queries: true, data_root: /r}}\n"
    )
    expected = {
        "batch_size": 7,
        "num_workers": 3,
        "resize_size": 40,
        "crop_size": 36,
        "device": "cpu",
        "nb_knn": [4],
        "temperature": 0.5,
        "datasets": ["roxford5k"],
        "crop_queries": True,
        "data_root": "/r",
        "noise": "gauss_100",
    }
    linear_expected = {"batch_size": 5, "cache_features": False, "epochs": 2, "epoch_length": 9}
    for command in (LINEAR, KNN, RETRIEVAL):
        args = command.get_args_parser().parse_args(["--experiment", str(exp)])
        (got,) = experiment_runs(command, args)
        assert got.output_dir == str(
            tmp_path / "out" / "runs" / "t" / "gauss_100" / "eval" / "dinov2"
        )
        assert got.pretrained_weights.endswith("training_5/teacher_checkpoint.pth")
        want = {**expected, **(linear_expected if command is LINEAR else {})}
        if command is not RETRIEVAL:
            want["noise"] = None  # classification is evaluated on the method's (noisy) eval root
        for f in command.flags:
            if f.key is not None:
                assert getattr(got, f.dest) == want[f.dest], (command.name, f.dest)


def test_the_noise_generator_without_an_experiment_uses_the_yaml_defaults(capsys, monkeypatch):
    from utils.generate_noise import _resolve_args, build_parser

    args = _resolve_args(
        build_parser().parse_args(["--src", "a", "--dst", "b", "--noise", "gauss_5"])
    )
    assert args.seed == yaml_value("noise.seed")
    assert args.workers == yaml_value("noise.workers")
    assert args.splits == yaml_value("data.splits")
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for key in ("noise.seed", "noise.workers"):
        assert f"(default: {key} = {yaml_value(key)})" in help_text
    assert f"(default: data.splits = {' '.join(yaml_value('data.splits'))})" in help_text
