"""One run put together: reading, batching, sending, settling, the files it writes."""
