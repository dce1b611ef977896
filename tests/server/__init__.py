"""Tests of the local Upstash-compatible server (``vupsert.server``)."""
