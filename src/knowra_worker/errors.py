"""Every error the service reports, classified once.

    KnowraError                      code, message safe to show, retryable flag, HTTP status
    ├── PermanentError               never retried: the input itself is at fault
    │   ├── FileNotFound             FILE_NOT_FOUND      (400 at submission, else task failed)
    │   ├── PathNotAllowed           PATH_NOT_ALLOWED    (403)
    │   ├── UnsupportedFormat        UNSUPPORTED_FORMAT
    │   ├── CorruptFile              CORRUPT_FILE
    │   ├── EncryptedFile            ENCRYPTED_FILE
    │   ├── EmptyDocument            EMPTY_DOCUMENT
    │   ├── FileTooLarge             FILE_TOO_LARGE
    │   ├── LimitExceeded            LIMIT_EXCEEDED      (document too big, or time limit)
    │   └── WorkerCrashed            WORKER_CRASHED      (its worker died on every attempt)
    ├── TransientError               retried with backoff: storage or broker trouble
    │   ├── StoreUnavailable         STORE_UNAVAILABLE
    │   └── SourceIOError            SOURCE_IO_ERROR
    └── request errors (API only)
        ├── TaskNotFound             TASK_NOT_FOUND      (404)
        ├── TaskConflict             TASK_CONFLICT       (409)
        ├── InvalidTransition        INVALID_TRANSITION  (409)
        ├── GenerationChanged        GENERATION_CHANGED  (409: a re-run replaced the chunks)
        └── Unauthorized             UNAUTHORIZED        (401)

`InternalError` (INTERNAL_ERROR) wraps anything unexpected so that the caller sees a code
and a short message, never a stack trace.
"""

from __future__ import annotations


class KnowraError(Exception):
    code = "INTERNAL_ERROR"
    retryable = False
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class InternalError(KnowraError):
    code = "INTERNAL_ERROR"


class PermanentError(KnowraError):
    retryable = False
    http_status = 400


class FileNotFound(PermanentError):
    code = "FILE_NOT_FOUND"


class PathNotAllowed(PermanentError):
    code = "PATH_NOT_ALLOWED"
    http_status = 403


class UnsupportedFormat(PermanentError):
    code = "UNSUPPORTED_FORMAT"


class CorruptFile(PermanentError):
    code = "CORRUPT_FILE"


class EncryptedFile(PermanentError):
    code = "ENCRYPTED_FILE"


class EmptyDocument(PermanentError):
    code = "EMPTY_DOCUMENT"


class FileTooLarge(PermanentError):
    code = "FILE_TOO_LARGE"
    http_status = 413


class LimitExceeded(PermanentError):
    code = "LIMIT_EXCEEDED"


class WorkerCrashed(PermanentError):
    code = "WORKER_CRASHED"


class TransientError(KnowraError):
    retryable = True
    http_status = 503


class StoreUnavailable(TransientError):
    code = "STORE_UNAVAILABLE"


class SourceIOError(TransientError):
    code = "SOURCE_IO_ERROR"


class TaskNotFound(KnowraError):
    code = "TASK_NOT_FOUND"
    http_status = 404


class TaskConflict(KnowraError):
    code = "TASK_CONFLICT"
    http_status = 409


class InvalidTransition(KnowraError):
    code = "INVALID_TRANSITION"
    http_status = 409


class GenerationChanged(KnowraError):
    code = "GENERATION_CHANGED"
    http_status = 409


class Unauthorized(KnowraError):
    code = "UNAUTHORIZED"
    http_status = 401
