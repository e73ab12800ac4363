"""The agent registry: on-chain identities, prices, capabilities and stakes, with a local search index.

Example:
    >>> from motet.chain import Chain
    >>> registry = Registry(Chain.embedded())
    >>> agent_id = registry.register("data:,{}", ["summarize"], price=100, stake=10**18)
    >>> registry.get(agent_id).bonded_stake
    1000000000000000000
"""

from motet.chain import NATIVE_ASSET
from motet.registry._capabilities import (
    MAX_CAPABILITIES,
    MAX_CAPABILITY_NAME,
    capability_hash,
    capability_hashes,
    validate_capability_name,
)
from motet.registry._client import MAX_URI_BYTES, Registry
from motet.registry._record import AgentRecord

__all__ = [
    "MAX_CAPABILITIES",
    "MAX_CAPABILITY_NAME",
    "MAX_URI_BYTES",
    "NATIVE_ASSET",
    "AgentRecord",
    "Registry",
    "capability_hash",
    "capability_hashes",
    "validate_capability_name",
]
