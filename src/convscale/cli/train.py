"""``convscale train``: every config key a flag, a recipe, resume."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add"]


def _cmd_train(args: argparse.Namespace) -> None:
    from ..train import TrainingStopped, fit, load_config

    if args._res is not None:
        raise ValueError(
            "train has two image sizes: --train-res (training) and --test-res (evaluation); --res is the image size of "
            "eval, predict, export and deploy"
        )
    overrides = {k: getattr(args, k) for k in _train_flags() if getattr(args, k, None) is not None}
    if args.resume is not None and args.config is not None:
        raise ValueError(
            "--config does not go with --resume: a resumed run keeps its own config (flags may change "
            "what is safe to change)"
        )
    if args.restartable and args.resume is not None:
        raise ValueError("--restartable continues its own --out/--name run when it has a checkpoint; drop --resume")
    try:
        if args.resume is not None:
            result = fit(resume=args.resume, changes=overrides)
        elif args.restartable:
            result = fit(load_config(args.config, **overrides), restart=True)
        else:
            cfg = load_config(args.config, **overrides)
            if args.check:
                import yaml

                print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
                return
            result = fit(cfg)
    except TrainingStopped as e:
        print(f"convscale: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 reports
    m = result.metrics
    best = max((v for k, v in m.items() if k.endswith("_top1") and not k.startswith("train")), default=None)
    line = f"done: {result.run_dir}" + (f"  (best val top-1 of the last epoch {best:.2f}%)" if best is not None else "")
    if m.get("skipped_total"):
        line += f"; {m['skipped_total']} training files skipped, listed in {result.run_dir / 'skipped.txt'}"
    print(line)


def _train_flags() -> dict[str, type]:
    """Every TrainConfig key is a flag of `convscale train` (``batch_size`` -> ``--batch-size``): name -> type."""
    from ..runs.settings import TrainConfig

    kinds = {"int": int, "float": float, "str": str, "bool": bool}
    return {key: kinds[str(f.type).split(" |")[0]] for key, f in TrainConfig.flat_fields()}


def add(sub) -> None:
    from ..runs.settings import TrainConfig, field_help, list_recipes

    p = sub.add_parser(
        "train",
        help="train a model on synthetic-shapes (default) or an ImageFolder (train/ and val/)",
        description="Train; with no arguments, the default small model on the built-in synthetic-shapes dataset. "
        "Settings come from the defaults, then --config recipe.yaml, then these flags.",
    )
    p.add_argument(
        "--config",
        "--recipe",
        dest="config",
        help=f"a shipped recipe by name ({', '.join(list_recipes())}) or a YAML file of config keys; flags override "
        "it, and its learning rate and warm-up adapt to your batch size and epochs",
    )
    p.add_argument("--check", action="store_true", help="validate the configuration, print it, and exit")
    p.add_argument("--resume", help="a run folder to continue exactly where it stopped, with its own config")
    p.add_argument(
        "--restartable",
        action="store_true",
        help="the same command may run again after a failure (torchrun --max-restarts, a requeued Slurm job): "
        "continue the run --out/--name from its checkpoint when it has one, else start it there",
    )
    p.add_argument("--res", dest="_res", help=argparse.SUPPRESS)  # the other commands' image size: refused by name
    docs, defaults = field_help(), {key: f.default for key, f in TrainConfig.flat_fields()}
    for flag, kind in _train_flags().items():
        name = "--" + flag.replace("_", "-")
        text = docs[flag] + (f" [{defaults[flag]}]" if defaults[flag] is not None else "")
        if flag == "pretrained":  # --pretrained alone: the default tag
            p.add_argument(name, dest=flag, nargs="?", const=True, metavar="TAG", help=text)
        elif kind is bool:
            p.add_argument(name, dest=flag, action=argparse.BooleanOptionalAction, help=text)
        else:
            p.add_argument(name, dest=flag, type=kind, help=text, metavar=kind.__name__.upper())
    p.set_defaults(func=_cmd_train)
