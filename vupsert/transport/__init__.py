"""The HTTP conversation with the index: client, answers, retries, pacing."""
