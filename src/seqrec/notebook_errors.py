"""seqrec's own errors in a notebook: their one sentence, not a 60-line traceback.

A user's mistake (a wrong `DATA_PATH`, a folder, an unknown setting) stops seqrec with one
sentence naming the setting and what to change; in a notebook that sentence used to sit at the
bottom of a traceback through the package's internals. `short_errors` registers an IPython
handler that shows, for

- a `ValueError` or `OSError` raised inside seqrec (its last frame is in the package): the
  sentence alone;
- a full disk (`ENOSPC`, wherever raised): what to do about Drive's trash and CHECKPOINT_DIR
  (`seqrec.preflight.disk_full_advice`);
- the stop button (`KeyboardInterrupt`): that nothing is lost and how to continue;

and the usual traceback for everything else (a bug is worth its traceback), or for everything
with `debug=True` (the config cell's `DEBUG`). The cell still fails, so *Run all* stops there.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from seqrec.preflight import disk_full_advice, is_disk_full, on_drive

PACKAGE = Path(__file__).resolve().parent
HANDLED = (ValueError, OSError, KeyboardInterrupt)
DEBUG_HINT = "(DEBUG = True in the config cell shows the traceback)"
STOPPED = ("Stopped: finished runs are kept and the run that was training resumes from its "
           "last checkpoint; run all again to continue")


def raised_by_seqrec(tb: TracebackType | None) -> bool:
    """Whether the innermost frame of `tb` is in the seqrec package."""
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    if last is None:
        return False
    return Path(last.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE)


def short_message(exc: BaseException, out_dir: str | None = None) -> str | None:
    """The one sentence to show for `exc`, or None for a full traceback (see the module
    docstring). `out_dir`: the output folder (says whether a full disk is Drive)."""
    if isinstance(exc, KeyboardInterrupt):
        return STOPPED
    if is_disk_full(exc):
        where = getattr(exc, "filename", None) or out_dir
        return (f"No space left writing {where}: " if where else "No space left: ") + \
            disk_full_advice(on_drive(where) or on_drive(out_dir))
    if isinstance(exc, (ValueError, OSError)) and raised_by_seqrec(exc.__traceback__):
        return str(exc)
    return None


def short_errors(debug: bool = False, out_dir: str | None = None, shell=None) -> bool:  # noqa: ANN001
    """Show seqrec's errors as their sentence in this IPython session (see the module
    docstring); `debug` keeps every traceback. Returns whether a handler was installed (False
    outside IPython, where Python's own tracebacks stay)."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False
    if debug:
        shell.set_custom_exc((), None)
        return False

    def handler(self, etype, value, tb, tb_offset=None):  # noqa: ANN001, ANN202
        message = short_message(value, out_dir)
        if message is None:
            self.showtraceback((etype, value, tb), tb_offset=tb_offset)
            return None
        text = f"{message} {DEBUG_HINT}"
        try:  # the error's own type names it ("DataError: ...")
            shown = OSError(text) if is_disk_full(value) else type(value)(text)
        except Exception:  # noqa: BLE001 - a type whose constructor wants more than a message
            shown = RuntimeError(text)
        show = getattr(self, "_showtraceback", None)
        if show is None:  # an IPython without the hook: its own short form (one more line)
            self.showtraceback((type(shown), shown, None), exception_only=True)
        else:  # the error alone: no "An exception has occurred, use %tb ..." header
            show(type(shown), shown, self.InteractiveTB.get_exception_only(type(shown), shown))
        return None

    shell.set_custom_exc(HANDLED, handler)
    return True
