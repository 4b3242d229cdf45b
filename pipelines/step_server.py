"""What the server that forks a run's step processes preloads (`pipelines.definitions.STEP_PROCESSES`):
the code location, imported with the cycle collector off and frozen after (`pipelines.heap`), so each
step process starts with the imports done and its collections walk only what the step makes.

The tables the steps build on first use are built here too, once, instead of in every step process
of every run (`pipelines.first_use`: pypinyin's dictionaries, 0.16 s to import and 0.07 s more to
set up its word segmentation, and the country names of every language phonenumbers ships, 0.12 s,
in both the canonical step and reverse sync). The code location's jobs are resolved here once (each
step looks its job up, 17 ms the first time in a process), and the warehouse's newest migration is
read (25 ms, for each step to tell its warehouse current, `models.warehouse.db.migrate`). And the
run's Dagster instance is opened once here, with its storages' migration scripts kept
(`pipelines.instance_warmup`), so a step process opens it in about 40 ms rather than 0.4 s.
"""

from pipelines.heap import imports_uncollected

with imports_uncollected():
    import pipelines.definitions  # imported for the forked processes to inherit, and used below
    from models.warehouse.db import newest_revisions
    from pipelines.first_use import build_first_use_tables
    from pipelines.instance_warmup import open_instance_once, remember_dagster_scripts

    build_first_use_tables()
    pipelines.definitions.defs.get_repository_def().get_all_jobs()
    newest_revisions()
    remember_dagster_scripts()
    open_instance_once()
