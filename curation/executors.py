"""Where the per-dataset and per-chunk work of a curation run executes.

``make_executor("local")`` (the default) runs tasks on a process pool of this machine (spawn
context: workers start clean, with no database connection or TileDB handle inherited from the
driver); ``workers=1`` runs them in the calling thread, without any process.
``make_executor("ray")`` runs them as Ray tasks, on a local Ray instance or on the cluster at
``ray_address`` (install Ray with ``pip install 'cellregistry[distributed]'``).

Every executor has the same interface: :meth:`TaskExecutor.map` yields the results in the
order of the items, lazily, with a bounded number of tasks in flight, so a driver that merges or
writes results as they come holds only a few of them at a time. Database writes stay in the
driver: the functions shipped to an executor must be importable module-level functions that use
no Django model.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import logging
import multiprocessing
import os
import signal
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

from registry.errors import RegistryError

T = TypeVar("T")
R = TypeVar("R")

#: the kinds :func:`make_executor` knows
EXECUTOR_KINDS = ("local", "ray")
RAY_INSTALL_HINT = "pip install 'cellregistry[distributed]'"


class ExecutorError(RegistryError, ValueError):
    """An executor that cannot be made (unknown kind, bad number of workers)."""


class RayNotInstalledError(ExecutorError):
    """``--executor ray`` without Ray installed."""


class TaskExecutor(ABC):
    """Runs a function over items; results come back in input order.

    Use as a context manager (or call :meth:`close`) to release the workers.
    """

    #: how many tasks run at the same time
    workers: int

    @abstractmethod
    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn(item)`` for every item, in the order of ``items``.

        Lazy: items are submitted as results are consumed, at most ``2 * workers`` in flight.
        An exception of a task is raised when its result is reached; the tasks still in flight
        are then cancelled.

        Args:
            fn: a module-level function (it is pickled by reference for the workers).
            items: its arguments, each picklable.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the workers (idempotent)."""

    def abort(self) -> None:
        """Release the workers without waiting for running tasks (after an error or an
        interruption); by default the same as :meth:`close`."""
        self.close()

    def __enter__(self) -> TaskExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:  # failing or interrupted (KeyboardInterrupt, SIGTERM): no worker is left behind
            self.abort()

    @property
    def max_in_flight(self) -> int:
        """Tasks submitted ahead of the consumer."""
        return max(2 * self.workers, 1)


class InThreadExecutor(TaskExecutor):
    """Runs every task in the calling thread (``workers=1``): no process, no pickling."""

    workers = 1

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """See :meth:`TaskExecutor.map`."""
        return (fn(item) for item in items)

    def close(self) -> None:
        """Nothing to release."""


def _windowed(
    submit: Callable[[T], Any],
    result: Callable[[Any], R],
    cancel: Callable[[Any], None],
    items: Iterable[T],
    window: int,
) -> Iterator[R]:
    """Submit ``items`` keeping at most ``window`` handles in flight; yield results in order."""
    pending: deque[Any] = deque()
    try:
        for item in items:
            pending.append(submit(item))
            if len(pending) >= window:
                yield result(pending.popleft())
        while pending:
            yield result(pending.popleft())
    finally:
        for handle in pending:  # an error or a consumer that stopped early
            cancel(handle)


#: prctl option: the signal a process gets when its parent dies (linux/prctl.h)
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: ask the kernel to SIGKILL this worker when its parent dies, however
    the parent dies (SIGKILL included), so no worker outlives an interrupted run. Linux only;
    elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes that die with this process (see
    :func:`_die_with_parent`); use :func:`terminate_pool` to stop it at once."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )


def terminate_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: queued tasks are dropped and running workers are killed (their results
    are not wanted: the caller is failing or being interrupted)."""
    processes = list(getattr(pool, "_processes", {}).values())  # not public: no other way
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=5)


class LocalProcessExecutor(TaskExecutor):
    """A process pool on this machine (spawn context; workers die with this process)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = process_pool(workers)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """See :meth:`TaskExecutor.map`."""
        if self._pool is None:
            raise ExecutorError("This executor is closed: make a new one with make_executor().")
        pool = self._pool
        return _windowed(
            lambda item: pool.submit(fn, item),
            Future.result,
            Future.cancel,
            items,
            self.max_in_flight,
        )

    def close(self) -> None:
        """Shut the pool down (waits for running tasks, drops queued ones)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abort(self) -> None:
        """Kill the workers now (an error or an interruption: running tasks are not waited
        for)."""
        if self._pool is not None:
            terminate_pool(self._pool)
            self._pool = None


class RayExecutor(TaskExecutor):
    """Ray tasks, on a local Ray instance (no address) or on a running cluster.

    Args:
        ray: the imported ``ray`` module.
        workers: CPUs of a local instance (ignored with an address: the cluster has its own);
            also bounds the tasks in flight.
        address: a cluster address (``ray://host:10001``, ``auto``, ``host:6379``) or None for
            a new local instance.

    The workers of a cluster need the same ``cellregistry`` installed (functions are shipped
    by reference to their module). If Ray is already initialised in this process, that
    instance is used and left running.
    """

    def __init__(self, ray: Any, workers: int, address: str | None) -> None:
        self._ray = ray
        self.workers = workers
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            options: dict[str, Any] = {
                "address": address or None,
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.WARNING,
            }
            if not address:  # a cluster brings its own resources; Ray refuses num_cpus then
                options["num_cpus"] = workers
            try:
                ray.init(**options)
            except Exception as exc:  # noqa: BLE001 - Ray raises several kinds; name the target
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise ExecutorError(
                    f"Cannot start or join {where}: {exc}. Check the address (ray://host:10001) "
                    "or run with --executor local."
                ) from exc
        self._apply = ray.remote(_apply)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """See :meth:`TaskExecutor.map`."""
        ray = self._ray
        function = ray.put(fn)  # shipped once, not with every task
        return _windowed(
            lambda item: self._apply.remote(function, item),
            ray.get,
            lambda ref: ray.cancel(ref),
            items,
            self.max_in_flight,
        )

    def close(self) -> None:
        """Shut down the local Ray instance this executor started (a cluster stays up)."""
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_ray = False


def _apply(fn: Callable[[T], R], item: T) -> R:
    """The Ray task: ``fn(item)`` (any callable, builtins included)."""
    return fn(item)


def _import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise RayNotInstalledError(
            f"The ray executor needs Ray, which is not installed: {RAY_INSTALL_HINT} "
            "(or run with --executor local)."
        ) from exc


def check_executor(kind: str) -> None:
    """Refuse an executor that cannot be made, before any work starts: an unknown kind, or Ray
    when it is not installed.

    Raises:
        ExecutorError, RayNotInstalledError: naming the kind and what to do.
    """
    if kind not in EXECUTOR_KINDS:
        raise ExecutorError(
            f"Unknown executor {kind!r}: choose one of {', '.join(EXECUTOR_KINDS)} "
            "(local: processes on this machine; ray: a Ray instance or cluster)."
        )
    if kind == "ray":
        _import_ray()


def make_executor(
    kind: str = "local", workers: int | None = None, ray_address: str | None = None
) -> TaskExecutor:
    """The executor of a curation run.

    Args:
        kind: ``"local"`` (process pool on this machine) or ``"ray"``.
        workers: parallel tasks (default: the CPU count); ``local`` with 1 runs in the
            calling thread.
        ray_address: the Ray cluster to join (``ray`` only; default: start a local instance).

    Raises:
        ExecutorError: unknown kind or fewer than one worker.
        RayNotInstalledError: ``ray`` without Ray installed.
    """
    check_executor(kind)
    if workers is not None and workers < 1:
        raise ExecutorError(f"workers must be at least 1 (got {workers}).")
    n = workers or os.cpu_count() or 1
    if kind == "ray":
        return RayExecutor(_import_ray(), n, ray_address)
    if ray_address:
        raise ExecutorError(f"ray_address {ray_address!r} needs the ray executor (--executor ray).")
    return InThreadExecutor() if n == 1 else LocalProcessExecutor(n)
