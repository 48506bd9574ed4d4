"""One trial of a search: the candidate measured whole against the base (in rounds, with its spread) before anything
trains, dropped when measured over the budget, else trained by a proxy run whose score after every epoch goes to the
study's pruner, which may stop it there. Everything the trial learns is kept on it (Optuna's user attributes), so
that the study alone holds the search.

The pruner is Optuna's successive halving: a trial goes on past an epoch of its rungs (1, 3, 9, ... epochs) only if
its score there is in the best third of the trials that reached it. The score is the search's objective — the proxy
top-1, or EfficientNetV2's reward — so the pruner stops what the objective would not choose. Optuna's pruners read a
study of one objective; the stage search's study has two (top-1 and measured latency, for NSGA-II), so its pruner is
shown the trials' scores through :class:`_ScoreView`, the same values on the same trials.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .latency import Setting
from .measure import measure_against_base
from .proxy import Candidate, ProxyRun, proxy_train
from .study import STOPS, CandidateFailed, first_line, optuna

__all__ = ["Trialist", "pruner"]


def pruner():
    """Successive halving: rungs at 1, 3, 9, ... epochs, the best third going on."""
    return optuna().pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)


@dataclass
class Trialist:
    """What every trial of one search shares: the base to measure against, the measurement's setting, the proxy
    run, where runs go, the budget (a ratio to the base's measured time; None: no budget) and the score."""

    base: Candidate
    setting: Setting
    proxy: ProxyRun
    runs: Path
    base_ms: float
    budget: float | None
    score: Callable[[float, dict[str, Any]], float]  # (top-1, the trial's figures) -> the objective's value
    min_time: float = 0.3
    log: Callable[[str], Any] = print

    def measure(self, trial, cand: Candidate) -> dict[str, Any]:
        """The candidate's measured latency against the base, kept on the trial (a retried trial keeps its own)."""
        from ..arch import read_arch

        known = trial.user_attrs
        if "measured_ratio" not in known:
            if cand.label == self.base.label:
                figures = {"measured_ms": round(self.base_ms, 3), "measured_ratio": 1.0}
            else:
                _, got = measure_against_base(
                    (read_arch(self.base.arch)[1], self.base.res), {cand.label: (read_arch(cand.arch)[1], cand.res)},
                    self.setting, min_time=self.min_time,
                )  # fmt: skip
                m = got[cand.label]
                figures = m.row() | {"measured_ms": round(m.ratio * self.base_ms, 3)}  # on the base's first measure
            for key, value in ({"label": cand.label, "res": cand.res, **cand.figures} | figures).items():
                trial.set_user_attr(key, value)
        return dict(trial.user_attrs)

    def run(self, trial, cand: Candidate) -> dict[str, Any]:
        """Measure, drop when over the budget, train with the pruner; the trial's figures with its ``top1``."""
        opt = optuna()
        started = time.process_time()
        figures = self.measure(trial, cand)
        if self.budget is not None and float(figures["measured_ratio"]) > self.budget * (1 + 1e-9):
            trial.set_user_attr("dropped", "measured over the budget")
            self._spent(trial, started)
            self.log(f"  trial {trial.number} {cand.label}: measured {figures['measured_ratio']:.3f}x the base's "
                     f"time, over the budget ({self.budget:.3f}x): dropped, not trained")  # fmt: skip
            raise opt.TrialPruned("measured over the budget")

        def after_epoch(row: dict[str, Any]) -> None:
            epoch, top1 = int(row["epoch"]), float(row["val_top1"])
            trial.set_user_attr("epochs", epoch)
            trial.set_user_attr("top1_last", top1)
            if epoch >= self.proxy.epochs:
                return  # the last epoch is trained already: stopping now saves nothing, the trial completes
            if _should_prune(trial, self.score(top1, figures), epoch):
                trial.set_user_attr("pruned_at", epoch)
                raise opt.TrialPruned(f"top-1 {top1:.2f} after epoch {epoch}")

        try:
            result = proxy_train(cand.arch, cand.res, self.proxy, str(self.runs), f"{cand.label}.seed{self.proxy.seed}",
                                 after_epoch=after_epoch)  # fmt: skip
        except STOPS:
            raise  # a signal (TrainingStopped is a RuntimeError too): the engine queues the trial again
        except RuntimeError as e:  # the network does not train (a defect of that candidate): failed, counted
            self._spent(trial, started)
            trial.set_user_attr("error", first_line(e)[:300])
            self.log(f"  trial {trial.number} {cand.label}: failed to train ({trial.user_attrs['error'][:120]})")
            raise CandidateFailed(cand.label) from None
        except opt.TrialPruned:
            self._spent(trial, started)
            self.log(f"  trial {trial.number} {cand.label}: pruned after epoch {trial.user_attrs.get('epochs')} "
                     f"(top-1 {trial.user_attrs.get('top1_last', 0.0):.2f})")  # fmt: skip
            raise
        trial.set_user_attr("top1", result["top1"])
        trial.set_user_attr("train_s", result["train_s"])
        self._spent(trial, started)
        self.log(f"  trial {trial.number} {cand.label}: top-1 {result['top1']:.2f}% after {self.proxy.epochs} "
                 f"epochs, {figures['measured_ms']:.3f} ms measured")  # fmt: skip
        return figures | result

    def confirm(self, cand: Candidate, seed: int) -> float:
        """The candidate's top-1 at full length with another seed (no pruning)."""
        result = proxy_train(cand.arch, cand.res, replace(self.proxy, seed=seed), str(self.runs),
                             f"{cand.label}.seed{seed}")  # fmt: skip
        return float(result["top1"])

    @staticmethod
    def _spent(trial, started: float) -> None:
        trial.set_user_attr("cpu_s", round(time.process_time() - started + trial.user_attrs.get("cpu_s", 0.0), 1))


def _should_prune(trial, value: float, epoch: int) -> bool:
    """Report ``value`` at ``epoch`` and ask the study's pruner (see the module for a study of two objectives)."""
    study = trial.study
    if len(study.directions) == 1:
        trial.report(value, epoch)
        return trial.should_prune()
    trial.storage.set_trial_intermediate_value(trial._trial_id, epoch, value)
    return study.pruner.prune(_ScoreView(study), trial.storage.get_trial(trial._trial_id))


class _ScoreView:
    """A study of two objectives as its pruner needs to see it: one direction, maximize (the score is the search's
    objective), and the same trials and storage."""

    def __init__(self, study) -> None:
        self._study, self._storage = study, study._storage
        self.direction = optuna().study.StudyDirection.MAXIMIZE

    def get_trials(self, deepcopy: bool = True, states=None):
        return self._study.get_trials(deepcopy=deepcopy, states=states)
