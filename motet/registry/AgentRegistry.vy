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

        Slashing (docs/trust.md): the ownable owner names the validation
        contract once (`set_validation`). Only that contract can `hold` an
        agent's stake while a dispute on it is open (`withdraw_stake`
        refuses while any hold remains), `release` it, and `slash` it on a
        decided dispute; the slashed value is sent to the validation
        contract, which pays the challenger, the validators and the sink.
"""


# @dev We import and initialise the `ownable` module, which
# the `erc721` module uses.
from snekmate.auth import ownable
initializes: ownable


# @dev We import and initialise snekmate's `erc721` module:
# every agent is one of its tokens.
from snekmate.tokens import erc721
initializes: erc721[ownable := ownable]


# @dev The ERC-721 functions this contract exposes. Permit,
# minting and burning are not exported: agents are minted only
# by `register`, and a signature never takes control of one.
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


# @dev Only the interfaces this contract really exports: snekmate's own list
# also names ERC-721 Enumerable and ERC-4494 permit, which are not exported
# here (permit would let a signature take control of an agent).
_INTERFACES: constant(bytes4[3]) = [
    0x01FFC9A7,  # ERC-165
    0x80AC58CD,  # ERC-721
    0x5B5E139F,  # ERC-721 Metadata
]


# @dev An agent's record. `token` is the asset of its price (the zero
# address for the native coin); `unbonding` is the part of `stake` that
# can be withdrawn from `unbonding_until` on.
struct Agent:
    payout: address
    token: address
    price: uint256
    stake: uint256
    unbonding: uint256
    unbonding_until: uint256
    active: bool


# @dev Seconds between `request_unstake` and the earliest `withdraw_stake`;
# longer than any dispute window.
UNBONDING_DELAY: public(immutable(uint256))


# @dev Returns an agent's record by id (all zero for an unknown id).
agents: public(HashMap[uint256, Agent])


# @dev Returns how many agents were ever registered; ids run from 1.
agent_count: public(uint256)


# @dev Each agent's registration file URI (read with `tokenURI`).
_uris: HashMap[uint256, String[MAX_URI]]


# @dev Each agent's capability hashes (read with `capabilities`).
_capabilities: HashMap[uint256, DynArray[bytes32, MAX_CAPABILITIES]]


# @dev The validation contract: the only address that can hold, release
# and slash stake. Set once by the ownable owner (`set_validation`).
validation: public(address)


# @dev Open disputes per agent; its stake cannot be withdrawn while > 0.
holds: public(HashMap[uint256, uint256])


# @dev How many times each agent was slashed.
slash_count: public(HashMap[uint256, uint256])


# @dev How much of each agent's stake was slashed, in total.
slashed_total: public(HashMap[uint256, uint256])


# @dev Emitted when `register` creates an agent.
event AgentRegistered:
    agent_id: indexed(uint256)
    owner: indexed(address)
    payout: address
    token: address
    price: uint256
    agent_uri: String[MAX_URI]


# @dev Emitted when `update` replaces an agent's URI, payout or price.
event AgentUpdated:
    agent_id: indexed(uint256)
    payout: address
    token: address
    price: uint256
    agent_uri: String[MAX_URI]


# @dev Emitted once per capability an agent declares; the hash is a
# topic, so clients can search the logs by capability.
event CapabilityAdded:
    agent_id: indexed(uint256)
    capability: indexed(bytes32)


# @dev Emitted once per capability an `update` drops or replaces.
event CapabilityRemoved:
    agent_id: indexed(uint256)
    capability: indexed(bytes32)


# @dev Emitted when an agent is deactivated or reactivated.
event AgentActivated:
    agent_id: indexed(uint256)
    active: bool


# @dev Emitted whenever an agent's stake, the part unbonding or the
# end of its unbonding changes.
event StakeChanged:
    agent_id: indexed(uint256)
    stake: uint256
    unbonding: uint256
    unbonding_until: uint256


# @dev Emitted when the owner names the validation contract (once).
event ValidationSet:
    validation: indexed(address)


# @dev Emitted when a dispute starts (`holds` grows) or ends (`holds`
# shrinks) holding an agent's stake.
event StakeHeld:
    agent_id: indexed(uint256)
    holds: uint256


# @dev Emitted when the validation contract slashes an agent: `amount`
# left its stake, `stake_left` remains. A `StakeChanged` follows.
event Slashed:
    agent_id: indexed(uint256)
    amount: uint256
    stake_left: uint256


@deploy
def __init__(unbonding_delay: uint256):
    """
    @dev Sets the unbonding delay and the ERC-721 metadata
         ("motet agents", "AGENT"; EIP-712 domain "motet-registry", "1").
    @notice The deployer becomes the `ownable` owner, which grants no
            power over agents.
    @param unbonding_delay Seconds stake stays bonded after a request.
           Must be positive.
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
    @notice The URI must be non-empty, the payout non-zero, and the
            capabilities at least one, each non-zero and distinct.
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
    @notice Only the agent's owner (or an approved operator) can. The
            new values are checked as in `register`; the stake and the
            active flag are left as they are.
    @param agent_id The agent.
    @param agent_uri Where its registration file is (data: or https).
    @param payout The address its payment channels pay.
    @param token The asset of its price (zero address: native coin).
    @param price Price per call in the asset's smallest unit.
    @param capabilities keccak256 of each capability name; they replace
           the old list.
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
    @dev Deactivates (or reactivates) an agent.
    @notice Only its owner (or an approved operator) can, and only to
            change the state.
    @param agent_id The agent.
    @param active The new state.
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
    @dev Adds `msg.value` to an agent's stake.
    @notice Only its owner (or an approved operator) can; the value must
            be positive.
    @param agent_id The agent.
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
         `UNBONDING_DELAY` seconds later.
    @notice A new request adds to what is unbonding and restarts the
            delay. Only the owner (or an approved operator) can.
    @param agent_id The agent.
    @param amount How much more to unbond; at most the stake not yet
           unbonding.
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
    @notice The owner is paid even when an approved operator calls, so that
            an approval to manage the agent is never a claim on its stake.
    @param agent_id The agent.
    @return uint256 The amount withdrawn.
    """
    self._only_owner(agent_id)
    owner: address = erc721._owner_of(agent_id)
    agent: Agent = self.agents[agent_id]
    assert agent.unbonding > 0, "registry: nothing is unbonding"
    assert self.holds[agent_id] == 0, "registry: stake is held by an open dispute"
    assert block.timestamp >= agent.unbonding_until, "registry: stake is still unbonding"
    amount: uint256 = agent.unbonding
    agent.stake -= amount
    agent.unbonding = 0
    agent.unbonding_until = 0
    self.agents[agent_id] = agent
    log StakeChanged(agent_id=agent_id, stake=agent.stake, unbonding=0, unbonding_until=0)
    raw_call(owner, b"", value=amount)
    return amount


@external
def set_validation(validation: address):
    """
    @dev Names the validation contract, once.
    @notice Only the ownable owner (the deployer) can, and only while
            none is set: the slasher can never be replaced afterwards.
    @param validation The validation contract.
    """
    ownable._check_owner()
    assert self.validation == empty(address), "registry: validation contract already set"
    assert validation.is_contract, "registry: validation is not a contract"
    self.validation = validation
    log ValidationSet(validation=validation)


@external
@nonreentrant
def hold(agent_id: uint256):
    """
    @dev Holds an agent's stake for one more open dispute.
    @notice Only the validation contract can. `withdraw_stake` refuses
            while any hold remains.
    @param agent_id The agent.
    """
    self._only_validation()
    assert self.agents[agent_id].payout != empty(address), "registry: unknown agent"
    holds: uint256 = self.holds[agent_id] + 1
    self.holds[agent_id] = holds
    log StakeHeld(agent_id=agent_id, holds=holds)


@external
@nonreentrant
def release(agent_id: uint256):
    """
    @dev Releases one hold on an agent's stake (a dispute ended).
    @notice Only the validation contract can.
    @param agent_id The agent.
    """
    self._only_validation()
    assert self.holds[agent_id] > 0, "registry: stake is not held"
    holds: uint256 = self.holds[agent_id] - 1
    self.holds[agent_id] = holds
    log StakeHeld(agent_id=agent_id, holds=holds)


@external
@nonreentrant
def slash(agent_id: uint256, amount: uint256) -> uint256:
    """
    @dev Takes up to `amount` of an agent's stake and sends it to the
         validation contract.
    @notice Only the validation contract can, and only while it holds
            the stake (a dispute on the agent is open). The part
            unbonding shrinks so that it never exceeds the stake left.
    @param agent_id The agent.
    @param amount How much to take; at most the stake.
    @return uint256 The amount taken.
    """
    self._only_validation()
    assert self.holds[agent_id] > 0, "registry: no open dispute holds the stake"
    agent: Agent = self.agents[agent_id]
    taken: uint256 = min(amount, agent.stake)
    agent.stake -= taken
    agent.unbonding = min(agent.unbonding, agent.stake)
    if agent.unbonding == 0:
        agent.unbonding_until = 0
    self.agents[agent_id] = agent
    self.slash_count[agent_id] += 1
    self.slashed_total[agent_id] += taken
    log Slashed(agent_id=agent_id, amount=taken, stake_left=agent.stake)
    log StakeChanged(
        agent_id=agent_id, stake=agent.stake, unbonding=agent.unbonding, unbonding_until=agent.unbonding_until
    )
    if taken > 0:
        raw_call(msg.sender, b"", value=taken)
    return taken


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    """
    @dev ERC-165: whether this contract implements `interface_id`.
    @param interface_id The 4-byte interface identifier.
    @return bool True for ERC-165, ERC-721 and ERC-721 Metadata.
    """
    return interface_id in _INTERFACES


@external
@view
def tokenURI(agent_id: uint256) -> String[MAX_URI]:
    """
    @dev The agent's registration file URI (ERC-8004 `agentURI`).
    @notice Reverts for an id that was never minted.
    @param agent_id The agent.
    @return String The URI.
    """
    erc721._require_minted(agent_id)
    return self._uris[agent_id]


@external
@view
def capabilities(agent_id: uint256) -> DynArray[bytes32, MAX_CAPABILITIES]:
    """
    @dev The capability hashes an agent declares.
    @param agent_id The agent.
    @return DynArray The keccak256 hashes of its capability names
            (empty for an unknown id).
    """
    return self._capabilities[agent_id]


@external
@view
def payee_for(agent_id: uint256, capability: bytes32) -> address:
    """
    @dev The address a payment channel to this agent for this capability
         pays: its payout when the agent is active and declares the
         capability, otherwise the zero address. The channels contract
         asks it before a session key opens a delegated channel.
    @param agent_id The agent.
    @param capability keccak256 of the capability name.
    @return address The payout, or the zero address.
    """
    agent: Agent = self.agents[agent_id]
    if not agent.active or capability not in self._capabilities[agent_id]:
        return empty(address)
    return agent.payout


@internal
@view
def _only_validation():
    """
    @dev Reverts unless `msg.sender` is the validation contract.
    """
    assert msg.sender == self.validation, "registry: caller is not the validation contract"


@internal
def _only_owner(agent_id: uint256):
    """
    @dev Reverts unless the agent exists and `msg.sender` is its owner
         or an approved operator.
    @param agent_id The agent.
    """
    assert self.agents[agent_id].payout != empty(address), "registry: unknown agent"
    assert erc721._is_approved_or_owner(msg.sender, agent_id), "registry: caller is not the agent owner"


@internal
@pure
def _check(agent_uri: String[MAX_URI], payout: address, capabilities: DynArray[bytes32, MAX_CAPABILITIES]):
    """
    @dev Reverts unless the URI is non-empty, the payout non-zero and
         the capabilities at least one, each non-zero and distinct.
    @param agent_uri The registration file URI.
    @param payout The payout address.
    @param capabilities The capability hashes.
    """
    assert len(agent_uri) > 0, "registry: agent URI is empty"
    assert payout != empty(address), "registry: payout is the zero address"
    assert len(capabilities) > 0, "registry: no capabilities"
    for i: uint256 in range(len(capabilities), bound=MAX_CAPABILITIES):
        assert capabilities[i] != empty(bytes32), "registry: empty capability hash"
        for j: uint256 in range(i, bound=MAX_CAPABILITIES):
            assert capabilities[j] != capabilities[i], "registry: duplicate capability"


@internal
def _set_capabilities(agent_id: uint256, capabilities: DynArray[bytes32, MAX_CAPABILITIES]):
    """
    @dev Stores an agent's capabilities and logs `CapabilityAdded` for each.
    @param agent_id The agent.
    @param capabilities The capability hashes (already checked).
    """
    self._capabilities[agent_id] = capabilities
    for capability: bytes32 in capabilities:
        log CapabilityAdded(agent_id=agent_id, capability=capability)
