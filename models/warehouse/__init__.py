"""The warehouse: where every step reads what the previous one committed and writes its own result.

Owns the SQLAlchemy schema (``tables``) and its Alembic migrations (``migrations``, applied on every
open by ``db.open_warehouse``), the raw-record store whose cursors move in the same transaction as their
rows (``store.RawStore``), and the per-stream locks that keep two syncs of one stream apart
(``locks.source_lock``).

Entry points: ``db.open_warehouse``, ``store.RawStore``, ``locks.source_lock``, the table classes.
Imports nothing of ours, so every other layer can build on it.
"""
