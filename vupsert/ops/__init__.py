"""The commands that keep an index in step: sync, verify, delete, export."""
