"""The HTTP conversation with the index: the client, what its answers mean, the one retry
rule, the pacing every request shares, and when 429s mean a quota used up."""

from ._answers import Answer, Kind, deleted, embedding_models, fatal_hint
from ._client import Client
from ._pacing import OPENING_LIMIT, Throttle
from ._quota import QuotaSpent, QuotaWatch, quota_error
from ._retry import AT_START, Caller, RetryPolicy, Stopped, Tries, index_info

__all__ = [
    "AT_START",
    "OPENING_LIMIT",
    "Answer",
    "Caller",
    "Client",
    "Kind",
    "QuotaSpent",
    "QuotaWatch",
    "RetryPolicy",
    "Stopped",
    "Throttle",
    "Tries",
    "deleted",
    "embedding_models",
    "fatal_hint",
    "index_info",
    "quota_error",
]
