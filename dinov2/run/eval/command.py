"""The one factory of the evaluation commands (linear probe, kNN, retrieval).

Each command (``python -m dinov2.run.eval.{linear,knn,retrieval}``) is an :class:`EvalCommand`:
its own flags, the settings that determine its results and the function that evaluates one frozen
backbone. The factory builds all three the same way:

- the parser: the official arguments (``--config-file``, ``--pretrained-weights``,
  ``--output-dir``, ``--opts``), the shared flags of :func:`shared_flags`, the command's flags,
  ``--overwrite``, ``--method`` and ``--experiment FILE [key=value ...]``. A flag that mirrors an
  experiment key (:class:`Flag` ``key``) takes its default from ``configs/defaults.yaml``, so the
  flags and the YAML cannot disagree;
- :func:`experiment_runs`: with ``--experiment``, one set of arguments per evaluated export (paths
  from :func:`dinov2.run.eval.checkpoints.method_eval_args`), every mirrored flag set to the
  experiment's value of its key;
- :meth:`EvalCommand.main`: skip finished evaluations, refuse results of other settings
  (:func:`dinov2.eval.setup.prepare_output`), build the backbone on ``--device``, evaluate, print
  one summary per run. Each command's ``main`` wraps it in :func:`utils.cli.command` (an input
  error is one line on stderr and exit code 2, a runtime failure exit code 1).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from dinov2.eval.setup import get_args_parser, prepare_output, setup_and_build_model
from dinov2.run.eval.checkpoints import method_eval_args
from utils.config import DefaultsHelpFormatter, add_experiment_args, default_value, load_experiment
from utils.runtime import resolve_device


@dataclass(frozen=True)
class Flag:
    """A command-line flag (``argparse.add_argument(name, **options)``).

    ``key``: the experiment key it mirrors. Its default is the key's value in
    ``configs/defaults.yaml`` unless ``yaml_default`` is False (a path derived from ``output_root``,
    or a key outside ``eval``); an ``--experiment`` run takes the experiment's value of the key.
    """

    name: str
    key: str | None = None
    yaml_default: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.options.get("dest", self.name.removeprefix("--").replace("-", "_"))

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        options = dict(self.options)
        if self.key is not None and self.yaml_default:
            options["default"] = default_value(self.key)
        parser.add_argument(self.name, **options)


def flag(name: str, key: str | None = None, yaml_default: bool = True, **options: Any) -> Flag:
    return Flag(name, key, yaml_default, options)


def shared_flags(batch_size_key: str = "eval.batch_size") -> tuple[Flag, ...]:
    """Flags of every evaluation command (the linear probe's batch size is its own key)."""
    return (
        flag("--batch-size", batch_size_key, type=int, help="batch size"),
        flag("--num-workers", "eval.num_workers", type=int, help="data-loading processes"),
        flag("--resize-size", "eval.resize_size", type=int, help="Resize before the centre crop"),
        flag("--crop-size", "eval.crop_size", type=int, help="centre crop side in pixels"),
        flag("--device", "eval.device", help="auto | cpu | cuda | cuda:N"),
    )


def dataset_flags() -> tuple[Flag, ...]:
    """``--train-dataset`` / ``--val-dataset`` (DINOv2 dataset strings) of the classification
    evaluations; with ``--experiment`` they come from the method's evaluation root."""
    return (
        flag(
            "--train-dataset",
            dest="train_dataset_str",
            help="dataset string of the training split, e.g. ImageNet:split=TRAIN:root=…",
        ),
        flag(
            "--val-dataset",
            dest="val_dataset_str",
            help="dataset string of the validation split, e.g. ImageNet:split=VAL:root=…",
        ),
    )


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value


@dataclass(frozen=True)
class EvalCommand:
    """One evaluation command.

    ``evaluate(args, backbone, autocast_dtype, device) -> results`` runs it on a built backbone;
    ``summary(args, results)`` is what the command prints per run. ``required``: flags without
    which an evaluation without ``--experiment`` cannot run. ``per_method(cfg, method)``: values
    that depend on the evaluated method (retrieval: its denoiser); ``prepare(cfg)``: work before
    an experiment's runs (retrieval: build the mini set).
    """

    name: str  # the stage name of the recorded settings
    description: str
    results_name: str
    settings_keys: tuple[str, ...]
    flags: tuple[Flag, ...]
    required: tuple[str, ...]
    evaluate: Callable[[argparse.Namespace, torch.nn.Module, torch.dtype, torch.device], dict]
    summary: Callable[[argparse.Namespace, dict], str]
    per_method: Callable[[DictConfig, str], dict] | None = None
    prepare: Callable[[DictConfig], None] | None = None

    def get_args_parser(self) -> argparse.ArgumentParser:
        parser = get_args_parser(description=self.description)
        parser.formatter_class = DefaultsHelpFormatter
        for f in self.flags:
            f.add_to(parser)
        parser.add_argument(
            "--overwrite", action="store_true", help="redo an evaluation whose results exist"
        )
        parser.add_argument(
            "--method", action="append", help="with --experiment: methods to evaluate (default all)"
        )
        add_experiment_args(parser)
        return parser

    def dest_of(self, name: str) -> str:
        """The namespace attribute of the flag ``name``."""
        found = [f.dest for f in self.flags if f.name == name]
        return found[0] if found else name.removeprefix("--").replace("-", "_")

    def run_one(self, args: argparse.Namespace, device: torch.device) -> dict:
        """One evaluation from explicit arguments."""
        for name in self.required:
            if not getattr(args, self.dest_of(name), None):
                raise ValueError(f"{name} is required (or pass --experiment FILE)")
        model, autocast_dtype = setup_and_build_model(args, device)
        return self.evaluate(args, model, autocast_dtype, device)

    def main(self, argv: Sequence[str] | None = None) -> int:
        parser = self.get_args_parser()
        args = parser.parse_args(argv)
        given = [
            n for n in ("--pretrained-weights", *self.required) if getattr(args, self.dest_of(n))
        ]
        if not args.experiment and not given:
            parser.error(
                "nothing to evaluate: pass --experiment FILE, or --config-file, "
                f"{', '.join(dict.fromkeys(('--pretrained-weights', *self.required)))}"
            )
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        for run in experiment_runs(self, args) if args.experiment else [args]:
            # before anything is written: a device this machine lacks is an input error
            device = resolve_device(run.device, "eval.device" if args.experiment else "--device")
            if prepare_output(
                run, self.name, self.results_name, self.settings_keys, args.overwrite
            ):
                continue
            print(self.summary(run, self.run_one(run, device)))
        return 0


def experiment_runs(command: EvalCommand, args: argparse.Namespace) -> list[argparse.Namespace]:
    """The arguments of every evaluation of ``--experiment``: the evaluated export's paths, then
    each mirrored flag's key from the experiment, then the method's own values."""
    cfg = load_experiment(args.experiment, args.overrides)
    if command.prepare is not None:
        command.prepare(cfg)
    runs = []
    for target in method_eval_args(cfg, args.method):
        run = argparse.Namespace(**vars(args))
        vars(run).update({k: v for k, v in target.items() if k in vars(args) and k != "method"})
        run.output_dir = str(target["eval_dir"])
        vars(run).update(
            {f.dest: _plain(OmegaConf.select(cfg, f.key)) for f in command.flags if f.key}
        )
        if command.per_method is not None:
            vars(run).update(command.per_method(cfg, target["method"]))
        runs.append(run)
    return runs
