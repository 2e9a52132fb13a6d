"""Progress bars that suit where they are shown.

`tqdm.auto` draws a widget in Jupyter when ipywidgets is installed (Colab has it) and falls
back to a text bar otherwise. In a plain Jupyter kernel or `make demo` (no ipywidgets), every
redraw of a text bar becomes another line of the cell's stored output: the per-batch epoch bars
wrote about 3,600 lines into one cell and made the executed notebook 1.9 MB instead of 395 KB
(issue 22). There, `progress_bar(per_batch=True)` is switched off: the grid's bar (one step per
run) and the line kept per epoch (losses, time) still say how far a grid is. Every bar of seqrec
(the grid's, the epochs') is made here.
"""

from __future__ import annotations

import sys
import warnings

import tqdm.std as tqdm_std

with warnings.catch_warnings():
    # Without ipywidgets in a kernel, tqdm warns "IProgress not found" as it falls back to
    # text; the fallback is handled here (`text_only_kernel`), so in a newcomer's set-up cell
    # the warning is only noise. Every seqrec bar comes through this module, so this is where
    # tqdm.auto is first imported.
    warnings.filterwarnings("ignore", message="IProgress not found")
    import tqdm.auto as tqdm_auto
    import tqdm.autonotebook as tqdm_notebook


def text_only_kernel() -> bool:
    """Whether this is a Jupyter kernel where `tqdm.auto` fell back to a text bar: its
    notebook choice (`tqdm.autonotebook`, which `tqdm.auto` wraps with asyncio support) is
    the plain text bar."""
    return "ipykernel" in sys.modules and tqdm_notebook.tqdm is tqdm_std.tqdm


def progress_bar(*, per_batch: bool = False, disable: bool = False, **kwargs
                 ) -> tqdm_std.tqdm:
    """`tqdm.auto.tqdm(**kwargs)`, off for a bar redrawn per batch in a text-only kernel."""
    if per_batch and text_only_kernel():
        disable = True
    return tqdm_auto.tqdm(disable=disable, **kwargs)
