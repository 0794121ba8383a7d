"""Identity of a trial: canonical JSON of the resolved spec → blake2b → trial id.

Seeds for initialisation, data order and projections are derived from parts of the spec (never
from a global RNG stream), so the same θ0 serves every d of a given seed and a rerun reproduces
a trial bit for bit on the same device.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, floats in repr form."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def content_hash(obj: Any, size: int = 16) -> str:
    return hashlib.blake2b(canonical_json(obj).encode(), digest_size=size).hexdigest()


def derive_seed(purpose: str, *parts: Any) -> int:
    """A 63-bit seed for ``purpose`` from the given spec parts."""
    digest = hashlib.blake2b(canonical_json([purpose, *parts]).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def identity_label(name: str, changed: dict[str, Any] | None) -> str:
    """How a component is shown: ``name``, or ``name[k=v,…]`` with the parameters that differ from
    their defaults (its part of the trial's identity), e.g. ``mlp[hidden=[32]]``."""
    if not changed:
        return name
    return name + "[" + ",".join(f"{k}={canonical_json(v)}" for k, v in sorted(changed.items())) + "]"
