"""Training: named recipes (config.py), the device and process group (runtime.py), one stage's
epochs (loop.py), checkpoints (checkpoint.py), scoring whole images (evaluation.py), and a run of
the paper's stages (run.py). No click: the command line is in mammotools.cli."""

from mammotools.train.config import RECIPES, TrainConfig, make_config, read_config
from mammotools.train.evaluate import EvaluationSummary, evaluate_run, scored_identity
from mammotools.train.loop import Reporter, StageResult
from mammotools.train.run import RunSummary, final_model, run_normalization, stage_log, stage_window, train_run
from mammotools.train.runtime import Runtime, start_runtime, stop_runtime

__all__ = [
    "RECIPES",
    "EvaluationSummary",
    "Reporter",
    "RunSummary",
    "Runtime",
    "StageResult",
    "TrainConfig",
    "evaluate_run",
    "final_model",
    "make_config",
    "read_config",
    "run_normalization",
    "scored_identity",
    "stage_log",
    "stage_window",
    "start_runtime",
    "stop_runtime",
    "train_run",
]
