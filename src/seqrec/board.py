"""Live curves in TensorBoard: per-epoch losses and the final metrics of every run.

One folder per run, `OUT/tensorboard/<run id>/`, written with torch's `SummaryWriter` (event
files TensorBoard reads; TensorBoard is preinstalled on Colab, `pip install tensorboard`
elsewhere). Scalars, all against the epoch:
- `loss/train_a`, `loss/val` (stage a: training and validation loss after each epoch),
- `loss/train_b` (stage b, train + val),
- `test/<metric>` (e.g. `test/recall@20`), once, at the last epoch, and
  `test_<third>/<metric>` per popularity third.
A resumed run appends to the same folder (TensorBoard merges its event files). An epoch's
point is written before its checkpoint (seqrec/train/stages.py, `_finished`), so a kill between
the two makes the resumed run redo the epoch and write its point again at the same step, with
the same value on the CPU; no epoch is ever missing. Writing is off
with `RunOptions(tensorboard=False)` (`--no-tensorboard`), and silently absent when the
`tensorboard` package is not installed (the runner says so once).
"""

from __future__ import annotations

from pathlib import Path

BOARD_DIR = "tensorboard"


def available() -> bool:
    """Whether torch's SummaryWriter can be used (it needs the `tensorboard` package)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


class RunBoard:
    """The event files of one run; `epoch(row)` after every epoch, `final(record)` at the end."""

    def __init__(self, out_dir: str | Path, run_id: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(out_dir) / BOARD_DIR / run_id
        self.writer = SummaryWriter(log_dir=str(self.folder))
        self.last_epoch = 0

    def epoch(self, row: dict) -> None:
        """Log one finished epoch's history row (see seqrec/train/stages.py)."""
        step = int(row["epoch"])
        self.last_epoch = max(self.last_epoch, step)
        if row.get("train_loss") is not None:
            self.writer.add_scalar(f"loss/train_{row['stage']}", row["train_loss"], step)
        if row.get("val_loss") is not None:
            self.writer.add_scalar("loss/val", row["val_loss"], step)
        self.writer.flush()  # a Colab session may die at any moment

    def final(self, record) -> None:  # noqa: ANN001 - a RunRecord
        """Log the test metrics of a finished run, then close the files."""
        if record.ok:
            for key, value in sorted(record.metrics.items()):
                self.writer.add_scalar(f"test/{key}", value, self.last_epoch)
            for third, values in sorted((record.metrics_by_popularity or {}).items()):
                for key, value in sorted((values or {}).items()):
                    self.writer.add_scalar(f"test_{third}/{key}", value, self.last_epoch)
        self.close()

    def close(self) -> None:
        self.writer.close()
