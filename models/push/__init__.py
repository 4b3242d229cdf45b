"""Reverse sync as data: what each destination should hold, the diff, and the ledger of every write.

Owns which golden field goes where and how it may be written (``field_map``), the plan against what each
destination holds now (``plan``), one slice of a destination's plan read from the warehouse and made
(``planning``), the ledger every planned write is recorded in before any request and
the reads it serves (``ledger``), and the plan that undoes one run (``undo``). No HTTP:
``pipelines.reverse_sync`` and ``pipelines.undo`` send the requests.

Entry points: ``planning.plan_slice``, ``plan.plan_updates`` / ``plan.plan_creates``,
``ledger.record_plan`` / ``ledger.mark``, ``undo.plan_undo``. Imports every other ``models`` package.
"""
