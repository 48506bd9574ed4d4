"""``convscale search scaling|stages``: the command line of the two searches."""

from __future__ import annotations

import argparse
import contextlib

__all__ = ["add_search"]


def add_search(sub, bounded) -> None:
    """Add ``search`` with its two subcommands to the CLI's subparsers; ``bounded`` is the CLI's range-checked type."""
    p = sub.add_parser("search", help="shape a network for this device and data: compound scaling or stage search")
    kinds = p.add_subparsers(dest="search", metavar="KIND", required=True)
    s = kinds.add_parser("scaling", help="EfficientNet's (alpha, beta, gamma) grid search under a constraint")
    s.add_argument("--base", default="efficientnet_b0", help="an MBConv-family model to scale [efficientnet_b0]")
    s.add_argument(
        "--constraint", choices=("gmacs", "latency", "train-step"), default="gmacs",
        help="gmacs: alpha*beta^2*gamma^2 ~ target; latency / train-step: a budget of target x the base's time, "
        "predicted on this device to prune, measured to decide",
    )  # fmt: skip
    s.add_argument("--target", type=bounded(float, 1.01, 100), default=2.0, help="cost x the base's [2.0]")
    s.add_argument("--step", type=bounded(float, 0.01, 1), default=0.05, help="grid step [0.05]")
    s.add_argument(
        "--tolerance", type=bounded(float, 0.001, 0.99), default=0.05, help="of the target (latency: below it) [0.05]"
    )
    s.add_argument("--phi", type=bounded(int, 0, 10), default=3, help="step 2: the family phi = 1..K [3]")
    s.add_argument("--max-candidates", type=bounded(int, 1, 1000), default=6, help="proxy-trained grid points [6]")
    s.set_defaults(func=_cmd_scaling)
    t = kinds.add_parser("stages", help="EfficientNetV2's per-stage block/expansion/kernel/depth search")
    t.add_argument("--base", default="efficientnetv2_b0", help="an MBConv-family model [efficientnetv2_b0]")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--budget-step-ms", type=bounded(float, 0.001, 1e7), help="training-step budget (default: "
                        "the base's measured step)")  # fmt: skip
    budget.add_argument("--budget-ms", type=bounded(float, 0.001, 1e7), help="forward (inference) budget instead")
    t.add_argument("--trials", type=bounded(int, 1, 10000), default=12, help="networks NSGA-II samples, the base "
                   "first [12]")  # fmt: skip
    t.add_argument("--stages", help="comma-separated stage indices that may change (default: all)")
    t.add_argument("--seed", type=bounded(int, 0, 2**31), default=0, help="NSGA-II's [0]")
    t.set_defaults(func=_cmd_stages)
    for q, objective in ((s, "accuracy"), (t, "reward")):
        q.add_argument(
            "--objective", choices=("accuracy", "reward"), default=objective,
            help="accuracy: the most accurate inside the measured budget; reward: EfficientNetV2's A*S^w*P^v "
            f"[{objective}]",
        )  # fmt: skip
        q.add_argument("--seeds", type=bounded(int, 1, 100), default=1, help="proxy runs confirming each survivor [1]")
        q.add_argument("--res", type=bounded(int, 32, 1024), default=64, help="the base's image size [64]")
        q.add_argument("--batch", type=bounded(int, 1, 4096), help="latency batch [scaling 1, stages 16]")
        q.add_argument("--data", default="synthetic-shapes", help="proxy data: synthetic-shapes or a folder")
        q.add_argument("--proxy-epochs", type=bounded(int, 1, 1000), default=3, help="the most epochs a trial trains "
                       "(the pruner stops laggards sooner) [3]")  # fmt: skip
        q.add_argument("--proxy-batch", type=bounded(int, 1, 4096), default=64, help="proxy batch size [64]")
        q.add_argument("--table", help="latency table file (default: this machine's in ~/.cache/convscale)")
        q.add_argument("--min-time", type=bounded(float, 0.001, 60.0), default=0.2, help="least seconds each "
                       "timing of a part runs; a whole network's 1.5x (shorter: faster and noisier) [0.2]")  # fmt: skip
        q.add_argument("--out", required=True, help="folder for the results and, by default, the study (OUT/study.db): "
                       "a rerun resumes it, more processes with the same --out work on it")  # fmt: skip
        q.add_argument("--storage", help="the study's database URL instead of OUT/study.db (postgresql://..., "
                       "mysql://...): any number of workers on any machines")  # fmt: skip
        q.add_argument("--study", default="search", help="the study's name in the database [search]")


@contextlib.contextmanager
def _resumable(out: str):
    """A search stopped by Ctrl-C or SIGTERM (in a proxy run, which saves first, or between them) says in one line
    that the same command continues it — finished candidates kept, the interrupted proxy run resumed."""
    from ..train import TrainingStopped
    from ..utils.stopping import Stopped, StopRequested

    try:
        yield
    except TrainingStopped as e:
        if e.exit_code not in (130, 143):
            raise  # not a signal (non-finite steps): the run's own line
        word = str(e).split(";")[0]
        raise Stopped(f"{word}; run the same command again to continue the search in {out}", e.exit_code) from None
    except StopRequested as e:
        raise Stopped(f"{e.word}; run the same command again to continue the search in {out}", e.exit_code) from None


def _common(args: argparse.Namespace):
    from .latency import LatencyTable
    from .proxy import ProxyRun
    from .study import optuna

    optuna()  # without the search extra: one line naming it, before anything runs
    proxy = ProxyRun(data=args.data, epochs=args.proxy_epochs, batch_size=args.proxy_batch)
    return proxy, LatencyTable(args.table, min_time=args.min_time)


def _cmd_scaling(args: argparse.Namespace) -> None:
    from .compound import ScalingSearch, search_scaling

    s = ScalingSearch(
        args.base, args.res, args.constraint, args.target, args.step, args.tolerance, args.phi, args.max_candidates,
        args.batch or 1, args.objective, args.seeds,
    )  # fmt: skip
    proxy, table = _common(args)
    with _resumable(args.out):
        search_scaling(s, args.out, proxy, table=table, storage=args.storage, study=args.study)


def _cmd_stages(args: argparse.Namespace) -> None:
    from .stages import StageSearch, search_stages

    stages = None
    if args.stages:
        try:
            stages = tuple(int(x) for x in args.stages.split(","))
        except ValueError:
            raise ValueError(f"--stages takes comma-separated stage indices, got {args.stages!r}") from None
    mode, budget = ("eval", args.budget_ms) if args.budget_ms is not None else ("train", args.budget_step_ms)
    s = StageSearch(
        args.base, args.res, budget, mode, args.batch or 16, args.trials, stages, args.seed,
        objective=args.objective, seeds=args.seeds,
    )  # fmt: skip
    proxy, table = _common(args)
    with _resumable(args.out):
        search_stages(s, args.out, proxy, table=table, storage=args.storage, study=args.study)
