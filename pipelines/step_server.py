"""What the server that forks a run's step processes preloads (`pipelines.definitions.STEP_PROCESSES`):
the code location, imported with the cycle collector off and frozen after (`pipelines.heap`), so each
step process starts with the imports done and its collections walk only what the step makes."""

from pipelines.heap import imports_uncollected

with imports_uncollected():
    import pipelines.definitions  # noqa: F401 - imported for the forked processes to inherit
