"""Run benchmark jobs in forked children, several at a time, yielding results as they finish.

Every job runs in its own forked process, so its peak RSS is its own and a crash becomes an error
result instead of stopping the grid.  Fork (not spawn) keeps the per-job start cheap (imports take
5-15 s here).  It is safe because the parent never runs torch ops: a parent whose OpenMP pool is
alive would deadlock its children, so library callers that already trained something call the job
function directly.  `workers` > 1 suits machines with spare cores (one torch thread per job).
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection, wait
from typing import Callable, Iterable, Iterator, TypeVar

Job = TypeVar("Job")


def _child(fn: Callable[[Job], dict], job: Job, conn: Connection) -> None:
    conn.send(fn(job))
    conn.close()


def run_forked(fn: Callable[[Job], dict], jobs: Iterable[Job], workers: int = 1,
               on_death: Callable[[Job, str], dict] | None = None) -> Iterator[tuple[Job, dict]]:
    """(job, fn(job)) for every job, each computed in a forked child, at most `workers` at once.

    A child that dies without sending a result yields ``on_death(job, reason)`` (default: a dict with
    only an ``error`` field), so callers always get one result per job.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    ctx = multiprocessing.get_context("fork")
    pending, running = iter(jobs), {}
    while True:
        while len(running) < workers and (job := next(pending, None)) is not None:
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(fn, job, send))
            proc.start()
            send.close()
            running[recv] = (job, proc)
        if not running:
            return
        for recv in wait(list(running)):
            job, proc = running.pop(recv)
            try:
                result = recv.recv()
            except EOFError:
                result = None
            proc.join()
            reason = f"the job's process exited with code {proc.exitcode}"
            if result is None:
                result = on_death(job, reason + " without a result") if on_death else {"error": reason + " without a result"}
            elif proc.exitcode not in (0, None) and "error" not in result:
                result["error"] = reason
            yield job, result
