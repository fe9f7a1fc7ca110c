"""`python -m collector.lab up|down|ctl`: the lab CLI without the main `collector` command
(an entry point only: nothing in the lab package imports the CLI)."""

from collector.cli.lab import lab_group

lab_group(prog_name="python -m collector.lab")
