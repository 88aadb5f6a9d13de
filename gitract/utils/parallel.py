"""Per-scan stages in parallel: joblib on one machine, Dask on a cluster.

``ParallelConfig`` says where work runs; :func:`map_scans` applies a function to every
item (one scan each) and returns the results in input order, so what a stage computes
never depends on how many workers computed it. :func:`parallel_session` starts what the
backend needs for a whole run: nothing for joblib; a ``dask.distributed`` client
connected to ``scheduler`` (or to a ``LocalCluster`` it starts when no address is given).
A scheduler's address is checked when the config is (:func:`address_problem`) and
reached with a short timeout before a run writes anything (:func:`scheduler_problem`).
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from gitract.utils.progress import progress_bar

__all__ = ["ParallelConfig", "address_problem", "map_scans", "parallel_session",
           "scheduler_problem"]

BACKENDS = ("joblib", "dask")
#: Seconds to wait for a Dask scheduler to answer (a TCP connect, then the client's).
CONNECT_TIMEOUT = 5.0

_ADDRESS = re.compile(r"^(?:(?P<protocol>tcp|tls|ws|wss|ucx)://)?"
                      r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9._-]*):(?P<port>\d{1,5})$")


def address_problem(address: str) -> str | None:
    """Why ``address`` is not a Dask scheduler address (``tcp://host:8786``, ``tls://``,
    ``ws://``, ``wss://``, ``ucx://`` or a bare ``host:port``), or None when it is one.

    Examples
    --------
    >>> address_problem("tcp://10.0.0.5:8786") is None
    True
    >>> address_problem("tcp://")
    "expected a scheduler address like tcp://host:8786, got 'tcp://'"
    """
    match = _ADDRESS.match(address) if isinstance(address, str) else None
    if match is None or not 0 < int(match["port"]) < 65536:
        return f"expected a scheduler address like tcp://host:8786, got {address!r}"
    return None


def scheduler_problem(address: str, *, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """Why the Dask scheduler at ``address`` cannot be reached (a malformed address, no
    answer within ``timeout`` seconds, a refused connection, an unknown host), or None.
    ``ucx://`` addresses are only checked for their form."""
    problem = address_problem(address)
    if problem is not None:
        return problem
    match = _ADDRESS.match(address)
    if match["protocol"] == "ucx":
        return None
    host = match["host"].strip("[]")
    try:
        with socket.create_connection((host, int(match["port"])), timeout=timeout):
            return None
    except socket.gaierror as exc:
        return f"cannot reach the Dask scheduler at {address}: unknown host ({exc.strerror})"
    except TimeoutError:
        return f"cannot reach the Dask scheduler at {address}: no answer within {timeout:g} s"
    except OSError as exc:
        return f"cannot reach the Dask scheduler at {address}: {exc.strerror or exc}"


@dataclass(frozen=True)
class ParallelConfig:
    """Where per-scan stages run.

    Attributes
    ----------
    backend : {"joblib", "dask"}
    n_jobs : int
        joblib workers (processes; 1 runs in this process). With Dask, the workers of a
        ``LocalCluster`` started for the run.
    scheduler : str or None
        Address of a running Dask scheduler (``tcp://host:8786``); None starts a
        ``LocalCluster``.
    """

    backend: str = "joblib"
    n_jobs: int = 1
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"parallel.backend must be one of {BACKENDS}, got {self.backend!r}")
        if isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, int) or self.n_jobs < 1:
            raise ValueError(f"parallel.n_jobs must be a positive int, got {self.n_jobs!r}")
        if self.scheduler is not None:
            problem = address_problem(self.scheduler)
            if problem is not None:
                raise ValueError(f"parallel.scheduler: {problem}")

    @property
    def serial(self) -> bool:
        return self.backend == "joblib" and self.n_jobs == 1


def map_scans(fn: Callable[..., Any], items: Iterable[Any], *,
              parallel: ParallelConfig = ParallelConfig(), desc: str | None = None,
              **kwargs) -> list[Any]:
    """``[fn(item, **kwargs) for item in items]``, in parallel where configured.

    Items should be small (a scan's source, not its pixels): each worker reads its own
    scan. Results come back in input order. ``desc`` names the progress bar drawn while
    :func:`gitract.utils.progress.progress_bars` is on.
    """
    items = list(items)
    bar = (lambda it: progress_bar(it, desc=desc, total=len(items))) if desc else (lambda it: it)
    if parallel.serial or len(items) <= 1:
        return [fn(item, **kwargs) for item in bar(items)]
    from joblib import Parallel, delayed, parallel_config

    # Results as a generator (in input order) so the bar moves as scans finish.
    if parallel.backend == "dask":
        with parallel_config(backend="dask"):
            return list(bar(Parallel(return_as="generator")(
                delayed(fn)(item, **kwargs) for item in items)))
    # One thread per worker inside (torch, BLAS): the workers are the parallelism.
    with parallel_config(backend="loky", inner_max_num_threads=1):
        return list(bar(Parallel(n_jobs=parallel.n_jobs, return_as="generator")(
            delayed(fn)(item, **kwargs) for item in items)))


@contextlib.contextmanager
def parallel_session(parallel: ParallelConfig) -> Iterator[Any]:
    """What the backend needs for the duration of a run (a Dask client, or nothing)."""
    if parallel.backend != "dask":
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - dask is a declared dependency
        raise RuntimeError("parallel.backend 'dask' needs dask.distributed "
                           "(pip install 'dask[distributed]')") from exc
    if parallel.scheduler:
        with Client(parallel.scheduler, timeout=f"{CONNECT_TIMEOUT:g}s") as client:
            yield client
        return
    with LocalCluster(n_workers=parallel.n_jobs, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def chunk(items: Sequence[Any], n: int) -> list[list[Any]]:
    """``items`` cut into ``n`` nearly equal consecutive runs (order kept)."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(list(items[start:end]))
        start = end
    return out
