"""The HTTP conversation with the index: the client, what its answers mean, the one retry
rule, and the pacing every request shares."""

from ._answers import Answer, Kind, deleted, embedding_models, fatal_hint
from ._client import Client
from ._pacing import OPENING_LIMIT, Throttle
from ._retry import Caller, RetryPolicy, Tries, ride_out

__all__ = [
    "OPENING_LIMIT",
    "Answer",
    "Caller",
    "Client",
    "Kind",
    "RetryPolicy",
    "Throttle",
    "Tries",
    "deleted",
    "embedding_models",
    "fatal_hint",
    "ride_out",
]
