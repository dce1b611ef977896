"""``python -m vupsert`` and the ``vupsert`` console script."""

from __future__ import annotations

import gc


def main() -> None:
    # A run holds a batch's worth of small tuples alive, which the collector's default
    # (a pass every 700 new objects) would keep traversing. Nothing on the hot path makes
    # cycles; a pass every 10,000 still finds any others.
    gc.set_threshold(10_000, 10, 10)
    from .cli import main as cli_main

    # Everything imported so far lives as long as the process: moved out of the
    # collector's sight, it is neither traversed by the passes during a run nor at exit.
    gc.freeze()
    cli_main()


if __name__ == "__main__":
    main()
