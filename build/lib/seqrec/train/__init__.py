"""Training, split by job: one epoch (`epoch.py`), the two-stage protocol and its state
(`stages.py`), one run from split to record (`run.py`)."""

from seqrec.train.epoch import (
    EpochResult,
    autocast,
    batch_loss,
    check_split,
    epoch_order,
    make_optimizer,
    mean_loss,
    seed_everything,
    train_epoch,
)
from seqrec.train.run import (
    CHECKPOINT_FILE,
    MODEL_FILE,
    default_factory,
    make_record,
    peak_memory_bytes,
    train_run,
)
from seqrec.train.stages import (
    EarlyStopping,
    StageState,
    TrainingDiverged,
    TrainingFailed,
    early_stopping_step,
    epochs_kept,
    stage_a_done,
)

__all__ = ["CHECKPOINT_FILE", "MODEL_FILE", "EarlyStopping", "EpochResult", "StageState",
           "TrainingDiverged", "TrainingFailed", "autocast", "batch_loss", "check_split",
           "default_factory", "early_stopping_step", "epoch_order", "epochs_kept",
           "make_optimizer", "make_record", "mean_loss", "peak_memory_bytes",
           "seed_everything", "stage_a_done", "train_epoch", "train_run"]
