"""Progress display for long fits: a live status line on a terminal, nothing elsewhere.

The library reports what it is doing through ``logging`` (logger ``"convexrelu"`` and
its children: sampling, solving, pursuit rounds, ...). :class:`StatusLine` listens to
those records for the duration of a ``with`` block and redraws one line on ``stderr``
with a spinner, the elapsed time and the latest message. It is silent (draws nothing,
starts no thread) when the stream is not a terminal, so pipes, files and CI logs stay
clean. :func:`log_to_stream` is the plain alternative used by ``verbose=True``: it
prints the same records as ordinary lines.

Both attach a handler only inside their ``with`` block and restore the logger as they
found it: no global state is left behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from typing import IO, Iterator

__all__ = ["StatusLine", "log_to_stream", "stream_is_terminal"]

LIBRARY_LOGGER = "convexrelu"
_SPINNER = "|/-\\"


def stream_is_terminal(stream: IO[str] | None) -> bool:
    """Whether ``stream`` is an interactive terminal that understands ``\\r``."""
    if stream is None:
        return False
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


class _StatusHandler(logging.Handler):
    def __init__(self, status: "StatusLine"):
        super().__init__(level=logging.INFO)
        self._status = status

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._status.set(record.getMessage())
        except Exception:  # pragma: no cover - never let display break a fit
            self.handleError(record)


class StatusLine:
    """A live one-line status (spinner, elapsed seconds, latest library message).

    Parameters
    ----------
    label : str
        Fixed text shown before the message, e.g. ``"fitting"``.
    stream : text stream, default ``sys.stderr``
    enabled : bool or None, default None
        None: on exactly when ``stream`` is a terminal.
    interval : float, default 0.2
        Seconds between redraws.
    logger_name : str, default "convexrelu"
        Logger whose INFO records update the message.

    Examples
    --------
    >>> with StatusLine("fitting") as status:      # doctest: +SKIP
    ...     status.set("sampling patterns")
    ...     model.fit(X, y)                        # its log records show up live
    """

    def __init__(
        self,
        label: str = "",
        *,
        stream: IO[str] | None = None,
        enabled: bool | None = None,
        interval: float = 0.2,
        logger_name: str = LIBRARY_LOGGER,
    ):
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.enabled = stream_is_terminal(self.stream) if enabled is None else bool(enabled)
        self.interval = float(interval)
        self.logger_name = logger_name
        self._text = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handler: _StatusHandler | None = None
        self._saved_level: int | None = None
        self._start = 0.0
        self._frame = 0

    # ------------------------------------------------------------------ API
    def set(self, text: str) -> None:
        """Replace the message shown after the label."""
        with self._lock:
            self._text = " ".join(str(text).split())

    def __enter__(self) -> "StatusLine":
        if not self.enabled:
            return self
        self._start = time.perf_counter()
        logger = logging.getLogger(self.logger_name)
        self._handler = _StatusHandler(self)
        logger.addHandler(self._handler)
        self._saved_level = logger.level
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="convexrelu-status", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if not self.enabled:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        logger = logging.getLogger(self.logger_name)
        if self._handler is not None:
            logger.removeHandler(self._handler)
            self._handler = None
        if self._saved_level is not None:
            logger.setLevel(self._saved_level)
            self._saved_level = None
        self._write("\r\x1b[K")

    # ------------------------------------------------------------------ drawing
    def render(self) -> str:
        """The current line (without the carriage return), cut to the terminal width."""
        with self._lock:
            text = self._text
        elapsed = time.perf_counter() - self._start if self._start else 0.0
        spin = _SPINNER[self._frame % len(_SPINNER)]
        line = f"{spin} {self.label} {elapsed:6.1f}s"
        if text:
            line += f"  {text}"
        width = shutil.get_terminal_size((80, 20)).columns
        return line[: max(width - 1, 10)]

    def _run(self) -> None:
        self._draw()
        while not self._stop.wait(self.interval):
            self._draw()

    def _draw(self) -> None:
        self._frame += 1
        self._write("\r" + self.render() + "\x1b[K")

    def _write(self, s: str) -> None:
        try:
            self.stream.write(s)
            self.stream.flush()
        except (OSError, ValueError):  # pragma: no cover - closed terminal
            pass


@contextmanager
def log_to_stream(verbose: int | bool, stream: IO[str] | None = None, logger_name: str = LIBRARY_LOGGER) -> Iterator[None]:
    """Print the library's log records as lines while the block runs (``verbose`` > 0).

    ``verbose`` >= 1 shows INFO records, >= 2 DEBUG records; 0/False does nothing.
    The handler and level are removed/restored on exit.
    """
    level = 0 if not verbose else (logging.DEBUG if int(verbose) >= 2 else logging.INFO)
    if not level:
        yield
        return
    logger = logging.getLogger(logger_name)
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("[convexrelu] %(message)s"))
    saved = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)
