"""`python -m collector.lab up|down|ctl`: the lab CLI without the main `collector` command."""

from collector.lab.commands import lab_group

lab_group(prog_name="python -m collector.lab")
