"""Identity resolution: source records into golden contacts, with stable ids and their history.

Owns linking on shared identifiers with the junk guards (``linking``), ids that survive runs and the
merges and splits between them (``contact_ids``), resolving everything or only a neighbourhood
(``resolution``, ``identity_store``), per-field survivorship with lineage (``survivorship``; our own
reverse-sync writes discounted by ``own_writes``), the warehouse builds (``canonical`` in full,
``canonical_incremental`` from the changes, both through the shared ``phases``), unified activity
(``activity``), the invariants checked after each build (``checks``), and reading a contact's whole
story back for ``contact-sync show`` and the UI (``lookup``).

Entry points: ``canonical.build_canonical``, ``canonical_incremental.build_canonical_incremental``,
``activity.build_activity``, the three functions of ``checks``, ``lookup.find_contacts`` /
``lookup.contact_story``. Imports ``models.warehouse`` and
``models.normalise``; never ``models.push`` (it reads the ledger table through
``models.warehouse.tables``).
"""
