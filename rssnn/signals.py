"""How the commands take Ctrl-C, SIGTERM and SIGHUP: as an exception, or later.

* :func:`exit_signals_raise` turns SIGTERM and SIGHUP into :class:`Terminated`, a
  ``KeyboardInterrupt``, so every cleanup path that handles Ctrl-C handles them too;
* :func:`deferred_signals` holds those signals back across native code that must not see a
  Python exception appear under it. numba's dispatcher, interrupted by a handler that raises,
  returns a result with the exception still set: ``SystemError: CPUDispatcher(...) returned a
  result with an exception set``, and in training a segmentation fault after it (measured:
  70 of 100 signals landing in the DLIF kernels). The signal is re-raised once the call returns.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """The command received SIGTERM or SIGHUP; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def exit_signals_raise() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` (main thread only)."""
    if not _in_main_thread():
        yield
        return
    saved = {s: signal.signal(s, _raise_terminated) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Inside, Ctrl-C, SIGTERM and SIGHUP are only recorded; on the way out the first one is
    raised again, so the handler that was in force acts on it then (main thread only: signal
    handlers run there, elsewhere this does nothing)."""
    if not _in_main_thread():
        yield
        return
    caught: list[int] = []
    saved = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])
