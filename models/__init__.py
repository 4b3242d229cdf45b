"""Everything the pipeline knows about the data, and nothing about HTTP or Dagster.

Five packages, each allowed to import only the ones above it in this list:

- ``models.warehouse``: the database (engine, schema, migrations, the raw-record store with its cursors,
  per-stream locks). Imports nothing of ours.
- ``models.normalise``: what a source record holds and its normal forms (layouts, field values, emails
  and phones, countries, record keys). Imports ``warehouse``.
- ``models.mappings``: the user's mappings file (golden fields beyond the built-in ones): its schema
  and checks, value conversion, the accounts' field lists. Imports ``warehouse`` and ``normalise``.
- ``models.identity``: records into golden contacts (linking, stable ids, survivorship, the full and
  incremental canonical builds, activity, the canonical checks). Imports ``warehouse``, ``normalise``
  and ``mappings``.
- ``models.push``: reverse sync as data (field maps, the plan, the ledger, undo). Imports all of the
  above.

``tests/models/test_layers.py`` holds the packages to this order.
"""
