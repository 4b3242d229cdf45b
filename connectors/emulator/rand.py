"""The generator's random source: one seeded stream, with draws cheap enough for 100,000 people."""

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class SandboxRandom(random.Random):
    """``random.Random`` plus ``pick`` and ``below``, which spend one float per draw.

    The stock ``choice``/``randrange`` reject-sample bits for exact uniformity; fake data does not
    need that, and the generator makes millions of draws. Not for anything secret (fake data only).
    """

    def pick(self, options: Sequence[T]) -> T:
        return options[int(self.random() * len(options))]

    def below(self, bound: int) -> int:
        return int(self.random() * bound)
