"""The summaries' documents (``--json``), made from their dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field

import vupsert
from vupsert.errors import UsageError
from vupsert.outcomes import NOT_REPORTED, reported


def test_a_new_summary_field_is_a_key_of_its_document_with_nothing_else_to_change() -> None:
    @dataclass
    class Wider(vupsert.Summary):
        records_sideways: int = 0
        scratch: str = field(default="", metadata=NOT_REPORTED)

        @property
        @reported()
        def records_upright(self) -> int:
            return self.records_read - self.records_sideways

    document = Wider(records_read=5, records_sideways=2, scratch="x").as_dict()
    assert (document["records_sideways"], document["records_upright"]) == (2, 3)
    assert set(document) - {"records_sideways", "records_upright"} == set(
        vupsert.Summary().as_dict()
    )


def test_documents_hold_plain_json_values() -> None:
    summary = vupsert.Summary(records_read=7, records_upserted=7, elapsed_s=2.345678)
    summary.error = UsageError("stdin has no column 'id'", hint="not in the document")
    document = summary.as_dict()
    assert document["elapsed_s"] == 2.346 and document["records_per_s"] == 3.0
    assert document["error"] == "stdin has no column 'id'"
    verify = vupsert.VerifySummary(problems=[vupsert.Problem("missing", "a", "docs.jsonl:3")])
    assert verify.as_dict()["problems"] == [{"kind": "missing", "id": "a", "where": "docs.jsonl:3"}]
    deleted = vupsert.DeleteSummary()
    deleted.skipped("ids.txt:2", "invalid UTF-8")
    assert "first_without_id" not in deleted.as_dict()
    assert deleted.as_dict()["lines_without_id"] == 1
