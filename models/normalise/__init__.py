"""From raw payloads to comparable values: the rules for one record, applied in bulk.

Owns where each source object keeps its fields (``layouts``), how single values are read
(``field_values``: text, names, source times; ``countries``), the normal forms used for matching
(``identifiers``: emails and E.164 phones, with ``phone_fastpath`` for bulk digits), the golden fields
pulled from payloads (``fields``), the contact points identity resolution takes (``contact_points``),
and which id and modified time identify a raw record (``raw_keys``).

Entry points: ``fields.extract_frame`` (and ``extract_fields`` for one record), ``contact_points``,
``identifiers.normalise_emails`` / ``normalise_phones``, ``raw_keys.identify``. Imports
``models.warehouse`` only (for the raw-row types).
"""
