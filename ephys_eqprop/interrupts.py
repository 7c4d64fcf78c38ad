"""Ctrl-C during training: stop at a safe point, never in the middle of an update.

Brian2 stops a run at the end of the current time step on the first Ctrl-C and
leaves it to the caller to notice; :meth:`CircuitNetwork.run` turns that into a
``KeyboardInterrupt``. During :meth:`Trainer.fit` an :class:`InterruptGuard`
takes over the SIGINT handler:

* inside a *critical section* (an optimizer step with its bookkeeping, a
  checkpoint being written) the interrupt is held and raised when the section
  ends, so the trainer's state is always either before or after an update;
* during a Brian2 run, the run is asked to stop at the end of its step and the
  interrupt is raised when it returns (the partial run is discarded);
* anywhere else it is raised at once. Python drops an exception raised while it runs
  a finaliser or a weak-reference callback (Brian2 runs many during garbage
  collection); the interrupt stays pending then and is raised when the next
  critical section begins, before any update.
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["InterruptGuard", "brian2_run", "stop_requested"]

_state = {"running": 0, "requested": False}


def stop_requested() -> bool:
    """Whether a Ctrl-C asked the current Brian2 run to stop (and clear the request)."""
    requested = _state["requested"]
    _state["requested"] = False
    return requested


@contextlib.contextmanager
def brian2_run():
    """Mark a Brian2 run in progress (an interrupt then stops it at the end of a step)."""
    _state["running"] += 1
    try:
        yield
    finally:
        _state["running"] -= 1


class InterruptGuard:
    """The SIGINT handler of a training run (a no-op outside the main thread)."""

    def __init__(self):
        self.depth = 0
        self.pending = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False

    def _handle(self, signum, frame):
        from brian2 import Network

        if _state["running"]:
            # stop the run at the end of its time step; raised when it returns
            _state["requested"] = True
            Network._globally_stopped = True
        # pending until the trainer has seen it (raised at once below, but Python drops
        # an exception raised inside a finaliser or weak-reference callback)
        self.pending = True
        if self.depth:
            return
        if not _state["running"]:
            raise KeyboardInterrupt

    def seen(self) -> None:
        """The trainer has caught the interrupt: nothing is pending any more."""
        self.pending = False

    def _raise_pending(self) -> None:
        if self.depth == 0 and self.pending:
            self.pending = False
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def critical(self):
        """A section an interrupt may not split: it is raised when the section ends.

        An interrupt still pending when a section begins (one Python dropped) is
        raised there, before the section changes anything.
        """
        self._raise_pending()
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            self._raise_pending()
