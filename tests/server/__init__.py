"""Tests of the local Upstash-compatible server (``vupsert_server``)."""
