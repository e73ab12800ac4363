# pragma version ~=0.4.3
# pragma nonreentrancy off
"""
@title motet agent registry
@custom:contract-name AgentRegistry
@license MIT
@notice An identity registry shaped after ERC-8004: every agent is an
        ERC-721 token (snekmate's audited implementation) whose owner
        controls it. Each agent records an `agentURI` pointing to its
        registration file (a `data:` URI or https), a payout address, a
        price per call in an asset, the keccak256 hashes of its capability
        names and a stake in the native coin. Capability hashes are emitted
        as indexed event topics so that clients can search by capability
        from the logs. Stake leaves only after an unbonding delay.
"""

from snekmate.auth import ownable
initializes: ownable

from snekmate.tokens import erc721
initializes: erc721[ownable := ownable]

exports: (
    erc721.balanceOf,
    erc721.ownerOf,
    erc721.approve,
    erc721.getApproved,
    erc721.setApprovalForAll,
    erc721.isApprovedForAll,
    erc721.transferFrom,
    erc721.safeTransferFrom,
    erc721.name,
    erc721.symbol,
    erc721.totalSupply,
)


# @dev Longest agentURI accepted (a `data:` URI carries the whole
# registration file on chains where storage is free).
MAX_URI: constant(uint256) = 8192

# @dev Most capabilities one agent may declare.
MAX_CAPABILITIES: constant(uint256) = 16


struct Agent:
    payout: address
    token: address
    price: uint256
    stake: uint256
    unbonding: uint256
    unbonding_until: uint256
    active: bool


event AgentRegistered:
    agent_id: indexed(uint256)
    owner: indexed(address)
    payout: address
    token: address
    price: uint256
    agent_uri: String[MAX_URI]


event AgentUpdated:
    agent_id: indexed(uint256)
    payout: address
    token: address
    price: uint256
    agent_uri: String[MAX_URI]


event CapabilityAdded:
    agent_id: indexed(uint256)
    capability: indexed(bytes32)


event CapabilityRemoved:
    agent_id: indexed(uint256)
    capability: indexed(bytes32)


event AgentActivated:
    agent_id: indexed(uint256)
    active: bool


event StakeChanged:
    agent_id: indexed(uint256)
    stake: uint256
    unbonding: uint256
    unbonding_until: uint256


# @dev Seconds between `request_unstake` and the earliest `withdraw_stake`;
# longer than any dispute window.
UNBONDING_DELAY: public(immutable(uint256))

agents: public(HashMap[uint256, Agent])
agent_count: public(uint256)
_uris: HashMap[uint256, String[MAX_URI]]
_capabilities: HashMap[uint256, DynArray[bytes32, MAX_CAPABILITIES]]


@deploy
def __init__(unbonding_delay: uint256):
    """
    @dev Sets the unbonding delay and the ERC-721 metadata.
    @param unbonding_delay Seconds stake stays bonded after a request.
    """
    assert unbonding_delay > 0, "registry: unbonding delay is zero"
    UNBONDING_DELAY = unbonding_delay
    ownable.__init__()
    erc721.__init__("motet agents", "AGENT", "", "motet-registry", "1")


@external
@payable
@nonreentrant
def register(
    agent_uri: String[MAX_URI],
    payout: address,
    token: address,
    price: uint256,
    capabilities: DynArray[bytes32, MAX_CAPABILITIES],
) -> uint256:
    """
    @dev Registers a new agent owned by `msg.sender`; `msg.value` is its
         first stake.
    @param agent_uri Where its registration file is (data: or https).
    @param payout The address its payment channels pay.
    @param token The asset of its price (zero address: native coin).
    @param price Price per call in the asset's smallest unit.
    @param capabilities keccak256 of each capability name.
    @return uint256 The new agent id.
    """
    self._check(agent_uri, payout, capabilities)
    agent_id: uint256 = self.agent_count + 1
    self.agent_count = agent_id
    erc721._mint(msg.sender, agent_id)
    self.agents[agent_id] = Agent(
        payout=payout,
        token=token,
        price=price,
        stake=msg.value,
        unbonding=0,
        unbonding_until=0,
        active=True,
    )
    self._uris[agent_id] = agent_uri
    log AgentRegistered(
        agent_id=agent_id, owner=msg.sender, payout=payout, token=token, price=price, agent_uri=agent_uri
    )
    self._set_capabilities(agent_id, capabilities)
    if msg.value > 0:
        log StakeChanged(agent_id=agent_id, stake=msg.value, unbonding=0, unbonding_until=0)
    return agent_id


@external
@nonreentrant
def update(
    agent_id: uint256,
    agent_uri: String[MAX_URI],
    payout: address,
    token: address,
    price: uint256,
    capabilities: DynArray[bytes32, MAX_CAPABILITIES],
):
    """
    @dev Replaces an agent's URI, payout, price and capabilities.
         Only the agent's owner (or an approved operator) can.
    """
    self._only_owner(agent_id)
    self._check(agent_uri, payout, capabilities)
    agent: Agent = self.agents[agent_id]
    agent.payout = payout
    agent.token = token
    agent.price = price
    self.agents[agent_id] = agent
    self._uris[agent_id] = agent_uri
    log AgentUpdated(agent_id=agent_id, payout=payout, token=token, price=price, agent_uri=agent_uri)
    for old: bytes32 in self._capabilities[agent_id]:
        log CapabilityRemoved(agent_id=agent_id, capability=old)
    self._set_capabilities(agent_id, capabilities)


@external
@nonreentrant
def set_active(agent_id: uint256, active: bool):
    """
    @dev Deactivates (or reactivates) an agent. Only its owner can.
    """
    self._only_owner(agent_id)
    assert self.agents[agent_id].active != active, "registry: agent already in that state"
    self.agents[agent_id].active = active
    log AgentActivated(agent_id=agent_id, active=active)


@external
@payable
@nonreentrant
def stake(agent_id: uint256):
    """
    @dev Adds `msg.value` to an agent's stake. Only its owner can.
    """
    self._only_owner(agent_id)
    assert msg.value > 0, "registry: stake is zero"
    agent: Agent = self.agents[agent_id]
    agent.stake += msg.value
    self.agents[agent_id] = agent
    log StakeChanged(
        agent_id=agent_id, stake=agent.stake, unbonding=agent.unbonding, unbonding_until=agent.unbonding_until
    )


@external
@nonreentrant
def request_unstake(agent_id: uint256, amount: uint256):
    """
    @dev Starts unbonding `amount` of the stake; it can be withdrawn
         `UNBONDING_DELAY` seconds later. A new request adds to what is
         unbonding and restarts the delay.
    """
    self._only_owner(agent_id)
    agent: Agent = self.agents[agent_id]
    assert amount > 0, "registry: unstake amount is zero"
    assert amount <= agent.stake - agent.unbonding, "registry: unstake exceeds bonded stake"
    agent.unbonding += amount
    agent.unbonding_until = block.timestamp + UNBONDING_DELAY
    self.agents[agent_id] = agent
    log StakeChanged(
        agent_id=agent_id, stake=agent.stake, unbonding=agent.unbonding, unbonding_until=agent.unbonding_until
    )


@external
@nonreentrant
def withdraw_stake(agent_id: uint256) -> uint256:
    """
    @dev Sends the unbonded stake to the agent's owner once the delay is over.
         The owner is paid even when an approved operator calls, so that an
         approval to manage the agent is never a claim on its stake.
    @return uint256 The amount withdrawn.
    """
    self._only_owner(agent_id)
    owner: address = erc721._owner_of(agent_id)
    agent: Agent = self.agents[agent_id]
    assert agent.unbonding > 0, "registry: nothing is unbonding"
    assert block.timestamp >= agent.unbonding_until, "registry: stake is still unbonding"
    amount: uint256 = agent.unbonding
    agent.stake -= amount
    agent.unbonding = 0
    agent.unbonding_until = 0
    self.agents[agent_id] = agent
    log StakeChanged(agent_id=agent_id, stake=agent.stake, unbonding=0, unbonding_until=0)
    raw_call(owner, b"", value=amount)
    return amount


# @dev Only the interfaces this contract really exports: snekmate's own list
# also names ERC-721 Enumerable and ERC-4494 permit, which are not exported
# here (permit would let a signature take control of an agent).
_INTERFACES: constant(bytes4[3]) = [
    0x01FFC9A7,  # ERC-165
    0x80AC58CD,  # ERC-721
    0x5B5E139F,  # ERC-721 Metadata
]


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    """
    @dev ERC-165: whether this contract implements `interface_id`.
    """
    return interface_id in _INTERFACES


@external
@view
def tokenURI(agent_id: uint256) -> String[MAX_URI]:
    """
    @dev The agent's registration file URI (ERC-8004 `agentURI`).
    """
    erc721._require_minted(agent_id)
    return self._uris[agent_id]


@external
@view
def capabilities(agent_id: uint256) -> DynArray[bytes32, MAX_CAPABILITIES]:
    """
    @dev The capability hashes an agent declares.
    """
    return self._capabilities[agent_id]


@internal
def _only_owner(agent_id: uint256):
    assert self.agents[agent_id].payout != empty(address), "registry: unknown agent"
    assert erc721._is_approved_or_owner(msg.sender, agent_id), "registry: caller is not the agent owner"


@internal
@pure
def _check(agent_uri: String[MAX_URI], payout: address, capabilities: DynArray[bytes32, MAX_CAPABILITIES]):
    assert len(agent_uri) > 0, "registry: agent URI is empty"
    assert payout != empty(address), "registry: payout is the zero address"
    assert len(capabilities) > 0, "registry: no capabilities"
    for i: uint256 in range(len(capabilities), bound=MAX_CAPABILITIES):
        assert capabilities[i] != empty(bytes32), "registry: empty capability hash"
        for j: uint256 in range(i, bound=MAX_CAPABILITIES):
            assert capabilities[j] != capabilities[i], "registry: duplicate capability"


@internal
def _set_capabilities(agent_id: uint256, capabilities: DynArray[bytes32, MAX_CAPABILITIES]):
    self._capabilities[agent_id] = capabilities
    for capability: bytes32 in capabilities:
        log CapabilityAdded(agent_id=agent_id, capability=capability)
