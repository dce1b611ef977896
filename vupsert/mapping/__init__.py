"""A row becomes a record {id, data, metadata}, or a rejection: no network."""
