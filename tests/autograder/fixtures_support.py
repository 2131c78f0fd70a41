"""Wrong implementations declared per chapter in ``tests/autograder/fixtures/<chapter>.py``."""

import importlib
import pkgutil
from dataclasses import dataclass, field


@dataclass
class Wrong:
    """A deliberately wrong submission: ``replace`` swaps definitions; ``fails`` must fail.

    ``shortcut``: the numbers are right but come from a library the questions forbid (e.g.
    torch.autograd for a gradient asked for by hand), so it fails only because of that rule.
    """

    fails: list
    replace: dict = field(default_factory=dict)
    shortcut: bool = False


def declared_fixtures():
    """(chapter id, why, Wrong) for every declared wrong implementation, in a stable order."""
    from tests.autograder import fixtures

    found = []
    for mod in sorted(pkgutil.iter_modules(fixtures.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{fixtures.__name__}.{mod.name}")
        for why, wrong in getattr(module, "WRONG", {}).items():
            found.append((mod.name, why, wrong))
    return found
