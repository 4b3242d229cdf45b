"""Read a country as a person typed it ("United States", "中国", "us") as an ISO 3166 alpha-2 code.

Sources hold countries as free text (Zoho `Country`, `Mailing_Country`; Linkflow `country`) or as a code
(ClickSend `address_country`). The code is what phone parsing needs to read a national number, so only a
name that points at exactly one country is trusted; anything else gives no hint.
"""

import functools
import importlib.util
import re
from pathlib import Path
from typing import Any

import phonenumbers

# Names people use that the phonenumbers display-name tables do not carry.
_ALIASES = {
    "usa": "US",
    "u.s.a.": "US",
    "u.s.": "US",
    "united states of america": "US",
    "america": "US",
    "uk": "GB",
    "u.k.": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "prc": "CN",
    "p.r.c.": "CN",
    "p.r. china": "CN",
    "mainland china": "CN",
    "people's republic of china": "CN",
    "中华人民共和国": "CN",
    "中國": "CN",
    "中国大陆": "CN",
    "republic of korea": "KR",
    "russian federation": "RU",
    "uae": "AE",
}

_SPACES = re.compile(r"\s+")


def _key(name: str) -> str:
    return _SPACES.sub(" ", name).strip().casefold()


def _locale_data() -> dict[str, dict[str, Any]]:
    """phonenumbers' display names of the regions (``phonenumbers.geodata.locale.LOCALE_DATA``), read
    from that one file.

    Imported the usual way, the module first runs its package's ``__init__``, which loads the
    geocoding tables of every number prefix: 0.3 s and about 100 MiB in every process that reads
    a country (113 MiB against 16 MiB for an interpreter with phonenumbers and the names alone), for
    tables nothing here uses. The file is read as the same module without its package; where that
    layout is not there (another version, a zipped install), the usual import."""
    path = Path(phonenumbers.__file__).parent / "geodata" / "locale.py"
    spec = importlib.util.spec_from_file_location("phonenumbers.geodata.locale", path)
    if spec is not None and spec.loader is not None and path.is_file():
        module = importlib.util.module_from_spec(spec)
        module.__package__ = "phonenumbers.geodata"  # its one relative import, ``..util``, needs it
        try:
            spec.loader.exec_module(module)
            return module.LOCALE_DATA  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            pass
    from phonenumbers.geodata.locale import LOCALE_DATA

    return LOCALE_DATA


@functools.cache
def _name_table() -> dict[str, str]:
    """Every display name of every region in every language phonenumbers ships, minus ambiguous ones."""
    regions: dict[str, set[str]] = {}
    for region, names in _locale_data().items():
        for name in names.values():
            # A leading "*" points at another language's entry for the same region.
            resolved = names[name[1:]] if name.startswith("*") else name
            regions.setdefault(_key(resolved), set()).add(region)
    table = {name: next(iter(codes)) for name, codes in regions.items() if len(codes) == 1}
    for region in phonenumbers.SUPPORTED_REGIONS:
        table[region.casefold()] = region
    table.update(_ALIASES)
    return table


def country_code(name: str | None) -> str | None:
    """The ISO alpha-2 code `name` unambiguously means, else None."""
    if not name:
        return None
    return _name_table().get(_key(name))
