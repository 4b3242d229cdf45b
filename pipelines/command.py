"""The ``contact-sync`` script's entry point: the command line, imported with the cycle collector off
and its heap frozen after (`pipelines.heap`), which takes about a quarter off the command's start."""

from pipelines.heap import imports_uncollected


def main() -> int:
    """Import the command line out of the collector's way, then run it (`pipelines.cli.main`)."""
    with imports_uncollected():
        from pipelines.cli import main as run_command
    return run_command()
