"""The command-line faces of the tool: each module parses options, calls the library, prints.

`root` holds the `collector` group, the one list of subcommands and `main()` (the console
script); `common` the shared `-i`, `--state`, exit codes and the one-line user error. No
logic that is not about the command line lives here.
"""

from collector.cli.root import cli, main

__all__ = ["cli", "main"]
