"""seqrec's split as RecBole atomic files, read back through RecBole's `benchmark_filename`.

One row per seqrec window, in seqrec's order: `user_id:token`, `item_id_list:token_seq` (the
window's inputs with the padding removed, oldest first) and `item_id:token` (its target), in
`NAME.train.inter`, `NAME.valid.inter` and `NAME.test.inter`. RecBole then skips its own
augmentation and splitting (`SequentialDataset._change_feat_format` returns early and
`Dataset.build` cuts the concatenated rows at the files' sizes) and takes each list's length
as the history length (`_benchmark_presets`). Tokens are seqrec's own ids written as decimal
strings; RecBole maps them to its ids (1.., 0 is `[PAD]`) with `pandas.factorize` in order of
first appearance, and `field2id_token` maps them back.

`NAME.item` lists every item id `0 .. n_items - 1`, so RecBole's catalogue is seqrec's even
where an item occurs in no window (an item whose only train play is a user's first event, or
whose other plays were dropped as unseen), and full ranking is over the same items (RecBole's
adds its `[PAD]` row, which it scores -inf).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqrec.data.windows import Split, Windows

FILES = {"train": "train", "val": "valid", "test": "test"}  # seqrec part -> RecBole suffix
HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
CHUNK = 50_000  # windows gathered at a time (bounds memory at 1M windows x L)


def part_samples(w: Windows, lo: int = 0, hi: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Windows `lo:hi` as (user int64[n], history int64[n, L-1] left-padded with -1,
    history length int64[n], target int64[n])."""
    hi = len(w) if hi is None else hi
    items, users = w.gather(np.arange(lo, hi))
    pads = np.zeros(hi - lo, np.int64) if w.pads is None else w.pads[lo:hi].astype(np.int64)
    history = items[:, :-1].copy()
    history[np.arange(history.shape[1]) < pads[:, None]] = -1
    return users[:, -1], history, history.shape[1] - pads, items[:, -1]


def write_part(w: Windows, path: Path) -> int:
    """Write one part's windows as a RecBole `.inter` file; returns the number of rows."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(HEADER)
        for lo in range(0, len(w), CHUNK):
            user, history, length, target = part_samples(w, lo, min(lo + CHUNK, len(w)))
            width = history.shape[1]
            lines = []
            for u, h, n, t in zip(user.tolist(), history.tolist(), length.tolist(),
                                  target.tolist(), strict=True):
                lines.append(f"{u}\t{' '.join(map(str, h[width - n:]))}\t{t}\n")
            f.write("".join(lines))
    tmp.replace(path)
    return len(w)


def write_atomic(split: Split, folder: Path, name: str = "peers") -> dict[str, int]:
    """Write `split` as `folder/name/name.{train,valid,test}.inter` and `name.item`.

    Returns the rows written per RecBole file. RecBole's `data_path` is then `folder` and
    its `dataset` `name`.
    """
    out = Path(folder) / name
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for part, suffix in FILES.items():
        rows[suffix] = write_part(split.part(part), out / f"{name}.{suffix}.inter")
    (out / f"{name}.item").write_text(
        "item_id:token\n" + "".join(f"{i}\n" for i in range(split.n_items)), encoding="utf-8")
    return rows


def compare_samples(split: Split, dump: dict[str, np.ndarray]) -> dict[str, dict]:
    """Row by row, do the samples RecBole loaded (`recbole_run.py dump`) equal seqrec's?

    For each part: the number of rows, and how many rows differ in user, target, history
    length or history items (RecBole's right-padded list against seqrec's window without its
    left padding). All counts 0 means both tools see exactly the same samples in the same
    order.
    """
    out = {}
    for part, suffix in FILES.items():
        w = split.part(part)
        user, history, length, target = part_samples(w)
        r_hist = dump[f"{suffix}_history"]
        r_len = dump[f"{suffix}_length"]
        rows = {"seqrec": len(w), "recbole": int(r_len.shape[0])}
        if rows["seqrec"] != rows["recbole"]:
            out[part] = {"rows": rows, "equal": False}
            continue
        width = history.shape[1]
        # seqrec's history right-aligned with -1 padding -> left-aligned like RecBole's
        aligned = np.full((len(w), max(width, r_hist.shape[1])), -1, np.int64)
        slot = np.arange(width)
        src = (slot[None, :] + (width - length)[:, None]).clip(max=width - 1)
        vals = np.take_along_axis(history, src, 1)
        aligned[:, :width] = np.where(slot[None, :] < length[:, None], vals, -1)
        r_full = np.full_like(aligned, -1)
        r_full[:, : r_hist.shape[1]] = r_hist
        diff = {"user": int(np.count_nonzero(user != dump[f"{suffix}_user"])),
                "target": int(np.count_nonzero(target != dump[f"{suffix}_target"])),
                "length": int(np.count_nonzero(length != r_len)),
                "history": int(np.count_nonzero((aligned != r_full).any(1)))}
        out[part] = {"rows": rows, "differ": diff, "equal": not any(diff.values())}
    return out
