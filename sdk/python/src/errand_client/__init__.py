"""errand_client: the Python client and worker library of the errand jobs server.

>>> from errand_client import ErrandClient
>>> client = ErrandClient("http://127.0.0.1:7878")
>>> job = client.enqueue("send_email", {"to": "a@b.c"}, queue="mail", max_attempts=5)
>>> client.result(job.id, timeout=30)
"""

from .aio import AsyncErrandClient
from .client import ErrandClient
from .errors import (
    ApiError,
    BadRequest,
    Conflict,
    ErrandError,
    Forbidden,
    JobFailed,
    LeaseLost,
    NotFound,
    PayloadTooLarge,
    Timeout,
    Unavailable,
    ValidationError,
    WaitTimeout,
)
from .models import BatchResult, ClaimedJob, EnqueuedJob, Job, SettleResult
from .spec import JobSpec
from .worker import (
    AsyncJobContext,
    AsyncWorker,
    JobContext,
    JobError,
    NonRetryableError,
    Worker,
    WorkerOptions,
)

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "AsyncErrandClient",
    "AsyncJobContext",
    "AsyncWorker",
    "BadRequest",
    "BatchResult",
    "ClaimedJob",
    "Conflict",
    "EnqueuedJob",
    "ErrandClient",
    "ErrandError",
    "Forbidden",
    "Job",
    "JobContext",
    "JobError",
    "JobFailed",
    "JobSpec",
    "LeaseLost",
    "NonRetryableError",
    "NotFound",
    "PayloadTooLarge",
    "SettleResult",
    "Timeout",
    "Unavailable",
    "ValidationError",
    "WaitTimeout",
    "Worker",
    "WorkerOptions",
]
