"""Dagster wiring of contact-sync: assets, resources, the job, its schedule and the CLI."""

import logging

# httpx logs every request URL at INFO; query strings can carry people's emails (ClickFunnels lookups
# by email), so only its warnings reach the run logs. Our HTTP layer logs what people need.
logging.getLogger("httpx").setLevel(logging.WARNING)
