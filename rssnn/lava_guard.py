"""Running Lava graphs so that no worker outlives the command, whatever ends it.

Lava 0.10 forks one OS process per process model and, left alone, leaves them running when the
parent is stopped by a signal (SIGTERM from ``timeout``, ``kill`` or a job scheduler; SIGHUP from
a closed terminal), hangs when a worker dies (lava #178), and its ``stop()`` may block. Here:

* :func:`cleanup_on_exit` turns SIGTERM and SIGHUP into a :class:`Terminated` exception in the
  parent (a ``KeyboardInterrupt``, so every cleanup path that handles Ctrl-C handles these too)
  and terminates every child process on the way out;
* forked workers (:func:`install_worker_guard`) ignore Ctrl-C, which the terminal sends to the
  whole process group (the parent stops them in order), take SIGTERM/SIGHUP by default, and
  exit on their own when the parent disappears, even by SIGKILL;
* :func:`run_steps` runs a graph in chunks under a watchdog and detects dead workers, with the
  parent's objects frozen for the garbage collector while its workers are forked and run.

Lava is imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rssnn.errors import UserError
from rssnn.signals import exit_signals_raise

ORPHAN_POLL_S = 0.5  # how often a worker checks that its parent is still alive


LAVA_RUNTIME_MODULE = "lava.magma.runtime.message_infrastructure.multiprocessing"


def import_lava_runtime() -> None:
    """Import Lava's multiprocessing module, whatever fixed the start method before.

    That module calls ``multiprocessing.set_start_method('fork')`` on import and raises if any
    start method is already fixed, which tqdm's locks and numba's parallel launcher do as soon as
    they run. Lava needs 'fork'; where 'fork' (Linux's default) is already fixed, it is unfixed
    for the import, which changes nothing. Any other fixed method is a clear error. Called by
    every module that imports Lava's runtime (``lava_procs``, export verification), so importing
    the numpy core never imports Lava.
    """
    if LAVA_RUNTIME_MODULE in sys.modules:
        return
    method = multiprocessing.get_start_method(allow_none=True)
    if method not in (None, "fork"):
        raise UserError(
            f"Lava runs its processes with the 'fork' start method, but '{method}' is already set "
            "in this interpreter; import rssnn.lava_procs before setting it, or do not set it"
        )
    if method == "fork":
        multiprocessing.set_start_method(None, force=True)  # Lava sets 'fork' again at once
    __import__(LAVA_RUNTIME_MODULE)


_guard_installed = False
# Threads whose Lava run was abandoned (run_steps' failure path). Lava may still be forking
# workers from such a thread while the cleanup runs; a worker forked after the children were
# listed would otherwise run on, and multiprocessing's exit handler would wait for it forever
# (seen under load). A worker forked by an abandoned thread exits at once instead.
_abandoned_threads: list[threading.Thread] = []


# Set just before each fork, in the forking thread: the pid of the process that forks, and
# that thread's signal mask before the stop signals were blocked for the fork.
# * A worker compares its parent with this pid, not with getppid() read after the fork, which
#   is already 1 (or a subreaper) when the parent was killed between the fork and the hook.
#   Such a worker watched the wrong parent forever and kept the command's pipes open (seen
#   once in CI, under load).
# * Until its hook has given it the worker dispositions, a child runs the parent's Python
#   handlers: a SIGTERM from terminate_children() then raised Terminated inside the after-fork
#   hooks (a traceback on stderr) and the child lived on until killed (measured: 2 of 3
#   SIGTERMs sent as Lava starts its workers). The stop signals stay blocked across the fork
#   and are delivered, pending, once the child's own dispositions are in place.
_fork_state = threading.local()
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _before_fork() -> None:
    _fork_state.pid = os.getpid()
    _fork_state.mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)


def _after_fork_in_parent() -> None:
    signal.pthread_sigmask(signal.SIG_SETMASK, _fork_state.mask)


def _in_forked_worker() -> None:
    # threading's own after-fork hook ran first (registered at its import): current_thread()
    # is the object of the thread that forked
    if threading.current_thread() in _abandoned_threads:
        os._exit(1)
    parent = _fork_state.pid
    if os.getppid() != parent:
        os._exit(1)  # the parent died while forking us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, _fork_state.mask)  # a pending SIGTERM acts now

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_POLL_S)
        os._exit(1)  # the parent is gone (even by SIGKILL): nobody will read our results

    threading.Thread(target=watch_parent, name="rssnn-orphan-watch", daemon=True).start()


def install_worker_guard() -> None:
    """Give every process forked from now on (Lava's workers) the worker behaviour above."""
    global _guard_installed
    if not _guard_installed:
        os.register_at_fork(
            before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_in_forked_worker
        )
        _guard_installed = True


def terminate_children(timeout: float = 2.0) -> int:
    """Terminate every child process still alive (Lava's runtime workers); returns how many.

    A worker takes SIGTERM by default (:func:`install_worker_guard`) and dies at once; one that
    has not within ``timeout`` is killed.

    Lava's ``SystemProcess.join`` takes no timeout, so we wait on ``is_alive`` ourselves; a
    process object Lava already closed raises ValueError, and is skipped.
    """

    def alive(child: Any) -> bool:
        try:
            return child.is_alive()
        except ValueError:  # "process object is closed"
            return False

    handled: list[Any] = []
    for _ in range(5):  # again, for a worker whose start was under way when the list was taken
        try:
            children = [c for c in multiprocessing.active_children() if c not in handled]
        except ValueError:
            children = []
        if not children:
            break
        handled += children
        for child in children:
            if alive(child):
                child.terminate()
        deadline = time.monotonic() + timeout
        while any(alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        for child in children:
            if alive(child):
                child.kill()
    try:
        multiprocessing.active_children()  # reaps the finished ones
    except ValueError:
        pass
    return len(handled)


@contextmanager
def cleanup_on_exit() -> Iterator[None]:
    """Lava work inside: signals end it cleanly and no child process survives it."""
    install_worker_guard()
    with exit_signals_raise():
        try:
            yield
        finally:
            terminate_children()


def _failed_worker(proc: Any) -> str | None:
    """The exception of a Lava worker process that died, if any.

    A process model that raises ends its worker, but Lava 0.10 does not notice: the run hangs
    (lava #178). Lava's ``SystemProcess`` keeps the exception; reading it through the runtime's
    private message infrastructure is the only way in this (final) Lava release.
    """
    infra = getattr(getattr(proc, "runtime", None), "_messaging_infrastructure", None)
    for actor in getattr(infra, "actors", None) or []:
        try:
            dead = not actor.is_alive()
        except ValueError:
            continue
        if dead and actor.exception:
            exc = actor.exception
            return str(exc[0]).strip().splitlines()[0] if str(exc[0]).strip() else repr(exc[0])
    return None


def _runtime_initialised(proc: Any) -> bool:
    """Whether Lava finished building the runtime of ``proc``'s graph (workers forked, channels
    and shared memory made). Read from Lava 0.10's private flag, as :func:`_failed_worker` does."""
    return bool(getattr(getattr(proc, "runtime", None), "_is_initialized", False))


def stop(proc: Any, timeout: float = 30.0) -> None:
    """Stop the runtime (bounded in time, once), then make sure no worker process survives.

    A runtime still being built (a signal or error while Lava forks its workers) is not asked
    to stop: its ``stop()`` then blocked for the whole ``timeout`` in every trial (5 s of each
    Ctrl-C during start-up, measured with ``python -m lava_procs.run``) and ended with the
    workers terminated below all the same. Either way the shared-memory manager dies with the
    workers, and Python's resource tracker unlinks its segments at exit (with a warning).
    """
    if getattr(proc, "runtime", None) is not None and not _runtime_initialised(proc):
        proc._rssnn_stopped = True
    if getattr(proc, "runtime", None) is not None and not getattr(proc, "_rssnn_stopped", False):
        proc._rssnn_stopped = True

        def quiet_stop() -> None:
            try:
                proc.stop()
            except Exception:
                # Lava 0.10's stop fails when its runtime was still starting (AttributeError:
                # 'SharedMemoryManager' object has no attribute 'shutdown'); the workers are
                # terminated below either way, and a traceback on Ctrl-C helps nobody.
                pass

        stopper = threading.Thread(target=quiet_stop, daemon=True)
        stopper.start()
        stopper.join(timeout)
    terminate_children()


def run_steps(
    proc: Any,
    total: int,
    run_cfg: Any,
    chunk: int = 32,
    watchdog_s: float = 120.0,
    after_chunk: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Run ``total`` steps of the graph holding ``proc`` in chunks, under a watchdog.

    ``after_chunk(done, k)`` runs after each chunk of ``k`` steps that started at step ``done``
    (to read sinks, advance a progress bar). On any failure (an error inside Lava, no progress
    within ``watchdog_s``, Ctrl-C, SIGTERM) the runtime is stopped and leftover worker processes
    are terminated before the error goes up. The caller stops the runtime after success.
    """
    from lava.magma.core.run_conditions import RunSteps

    install_worker_guard()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    worker: threading.Thread | None = None
    # Every worker is a fork of this process. A collection in a worker writes to the header of
    # every object it inherited, so each page of the parent's heap it walks becomes the worker's
    # own copy. Measured on the default model's clean + perturbed pair (26 workers, 36 with the
    # monitor), 12 images: peaks of 2.3 and 3.3 GB (PSS of the tree) in 2 of 14 runs, 0.5-1.1 GB
    # otherwise; frozen, never above 1.1 GB in 14 runs (benchmarks/lava_throughput.py).
    # gc.freeze (Python 3.7+) moves the objects that exist now out of every collection.
    gc.collect()
    gc.freeze()
    try:
        done = 0
        while done < total:
            k = min(chunk, total - done)
            errors: list[BaseException] = []

            def step(k=k, errors=errors) -> None:
                try:
                    proc.run(condition=RunSteps(num_steps=k), run_cfg=run_cfg)
                except BaseException as exc:  # re-raised in the caller's thread
                    errors.append(exc)

            # Lava's run() blocks without a timeout; a thread lets the watchdog see a hang.
            worker = threading.Thread(target=step, daemon=True)
            worker.start()
            deadline = time.monotonic() + watchdog_s
            while worker.is_alive() and time.monotonic() < deadline:
                worker.join(0.2)
                failure = _failed_worker(proc)
                if failure:
                    raise UserError(f"a Lava process failed at step {done}: {failure}")
            if worker.is_alive():
                raise UserError(
                    f"Lava made no progress for {watchdog_s:g} s at step {done} of "
                    f"{total}; run stopped (raise --watchdog if the machine is slow)"
                )
            if errors:
                raise errors[0]
            if done == 0:
                timings["compile_and_first_chunk_s"] = time.perf_counter() - t0
            if after_chunk is not None:
                after_chunk(done, k)
            done += k
    except BaseException:
        if worker is not None and worker.is_alive():
            _abandoned_threads[:] = [t for t in _abandoned_threads if t.is_alive()] + [worker]
        # a healthy runtime stops in 0.2-0.3 s (measured, the default model); one that does not
        # within 2 s is blocked, and its workers are terminated all the same
        stop(proc, timeout=2.0)
        raise
    finally:
        gc.unfreeze()  # the parent collects its own objects again
    timings["run_s"] = time.perf_counter() - t0
    return timings
