"""The command line: options in, the library called, exceptions out as exit statuses and
messages. The only package that imports Typer.

``app`` the commands, ``options`` the options they share, ``serve`` the local index's
command, ``errors`` where exceptions become messages and exit statuses, ``display`` what
the user sees, ``help`` how ``--help`` reads, ``environment`` where it all reads and
writes, ``demo`` the demo.
"""

from .app import Environment, main

__all__ = ["Environment", "main"]
