"""HTTP clients for the five source APIs, and the layer they share.

Start from ``connectors.factory.build_clients(MatonConfig(...), LinkflowConfig(...))``: it returns the
five clients (``clickfunnels``, ``clicksend``, ``zoho_crm``, ``zoho_bigin``, ``linkflow``) wired to one
``RequestStats`` and, for the four Maton apps, one shared rate limiter. Each client's module docstring
says what its streams read and why. Reads yield ``paging.Page`` objects (raw records plus a cursor
that is safe to store with them); writes return ``writes.WriteResult`` per record; failures raise the
typed errors of ``connectors.errors``. Nothing here knows of Dagster, the warehouse or the models.
"""
