"""vupsert: bulk-load JSONL/CSV text into an Upstash Vector index."""

__version__ = "0.1.0"
