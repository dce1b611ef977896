"""The command line: options in, the library called, exceptions out as exit codes."""
