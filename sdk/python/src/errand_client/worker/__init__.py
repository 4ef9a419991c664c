"""Workers: a thread-pool worker for plain functions and an asyncio worker for coroutines."""

from .asyncio_worker import AsyncJobContext, AsyncWorker
from .core import JobError, NonRetryableError, WorkerOptions
from .threaded import JobContext, Worker

__all__ = [
    "AsyncJobContext",
    "AsyncWorker",
    "JobContext",
    "JobError",
    "NonRetryableError",
    "Worker",
    "WorkerOptions",
]
