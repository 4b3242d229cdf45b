"""A local emulator of the five APIs contact-sync talks to, for tests, the demo and the sandbox.

ClickFunnels, ClickSend, Zoho CRM and Zoho Bigin are served as the Maton gateway shows them (at the
root, one key, one shared rate budget); Linkflow under ``/linkflow`` with its own token auth. The data
is generated deterministically with a known truth about which records are the same person. See
README.md in this folder for behaviour, knobs, admin paths and known deviations.
"""

from connectors.emulator.dataset import Dataset
from connectors.emulator.emulator import Emulator, running_emulator, serve
from connectors.emulator.faults import FaultConfig
from connectors.emulator.generate import generate_dataset
from connectors.emulator.identifiers import JUNK_EMAILS, JUNK_PHONES
from connectors.emulator.mutate import MutationSummary
from connectors.emulator.state import WriteRecord

__all__ = [
    "JUNK_EMAILS",
    "JUNK_PHONES",
    "Dataset",
    "Emulator",
    "FaultConfig",
    "MutationSummary",
    "WriteRecord",
    "generate_dataset",
    "running_emulator",
    "serve",
]
