"""Command line: ``eyesim estimate | sweep | plot | prune``; bad input gives one line on stderr and exit code 2."""

from eyesim.cli.main import main
