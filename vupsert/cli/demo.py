"""``vupsert demo``: load the bundled samples into a local index and query it.

Nothing here is special-cased: it starts the same local server as ``vupsert serve``, runs
the same pipeline as ``vupsert upsert`` and the same query as ``vupsert query``, and
prints the command line of each.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Callable
from pathlib import Path

import orjson
from rich.console import Console

from vupsert_server import LocalServer, ServerConfig

from ..config import Secret
from ..config.settings import MappingOptions, Settings
from ..errors import ExitStatus, UsageError
from ..outcomes import QueryResult
from ..records import Rejection
from ..run import Run
from .display import ConsoleEvents, Terminal, hits_table, plural

QUESTION = "how long should coffee beans rest after roasting"
TOP_K = 3
QUERY = shlex.join(
    ["vupsert", "query", QUESTION, "-n", "articles", "--top-k", str(TOP_K), "--include-data"]
)
"""The command the demo's query is: what it prints, and what it runs."""


def find_samples(folder: Path) -> tuple[Path, Path]:
    articles, products = folder / "articles.jsonl", folder / "products.csv"
    if not articles.exists() or not products.exists():
        raise UsageError(
            f"No samples in {folder}: expected articles.jsonl and products.csv.",
            hint="Run the demo from the project's folder, or pass the samples folder.",
        )
    return articles, products


def run_demo(
    folder: Path,
    console: Terminal,
    out: Console,
    *,
    describe: Callable[[Settings], str],
    query: Callable[..., QueryResult],
) -> ExitStatus:
    """Run the demo; ``describe`` gives the command line of each run, to print as it is;
    ``query`` is :func:`vupsert.query`."""
    articles, products = find_samples(folder)
    worst = ExitStatus.SUCCESS
    with LocalServer(ServerConfig(port=0)) as server:
        out.print(f"local index at {server.url}")
        jobs: list[tuple[str, Path, MappingOptions]] = [
            ("articles", articles, MappingOptions()),
            ("products", products, MappingOptions(data_field="description")),
        ]
        for namespace, path, mapping in jobs:
            settings = Settings(
                url=server.url,
                token=Secret(server.token),
                inputs=(str(path),),
                namespace=namespace,
                mapping=mapping,
            )
            out.print(f"\n{describe(settings)}", style="bold", markup=False, soft_wrap=True)
            summary = Run(settings, events=ConsoleEvents(console)).execute()
            worst = max(worst, summary.exit_status)
            stored = len(server.records(namespace))
            out.print(f"the index now holds {plural(stored, 'record')} in namespace {namespace!r}")
        bad = folder / "bad-records.jsonl"
        if bad.exists():
            with tempfile.TemporaryDirectory() as tmp:
                rejects = Path(tmp) / "rejects.jsonl"
                settings = Settings(
                    url=server.url,
                    token=Secret(server.token),
                    inputs=(str(bad),),
                    namespace="bad",
                    rejects=rejects,
                )
                out.print(f"\n{describe(settings)}", style="bold", markup=False, soft_wrap=True)
                # Rejections are the point of this step, not a failure of the demo.
                Run(settings, events=_Listed(console)).execute()
                out.print("each record not upserted is in the rejects file, with its reason:")
                for line in rejects.read_bytes().splitlines():
                    info = orjson.loads(line)["_vupsert"]
                    out.print(f"  {info['source']}: {info['reason']}", markup=False, soft_wrap=True)
        out.print(f"\n{QUERY}", style="bold", markup=False, soft_wrap=True)
        found = query(
            QUESTION,
            url=server.url,
            token=server.token,
            namespace="articles",
            top_k=TOP_K,
            include_data=True,
        )
        out.print(hits_table(found, out.width))
    return worst


class _Listed(ConsoleEvents):
    """A run whose rejections the demo lists afterwards, from the rejects file: each is
    said once, there, rather than the first ten as they settle and then all of them."""

    def rejected(self, rejections: list[Rejection]) -> None:
        pass
