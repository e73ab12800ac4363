# pragma version ~=0.4.3
# pragma nonreentrancy off
"""
@title motet reputation registry
@custom:contract-name Reputation
@license MIT
@notice A reputation registry shaped after ERC-8004 where only a caller
        who really paid an agent can rate it, weighted by what it paid.

        Feedback is tied to one paid call: it carries the agent's signed
        receipt for that call (EIP-712, signed by the agent's payout
        address, checked here with `motet.trust.receipts`). The receipt's
        channel in `CHANNELS` must be paid by the caller (see below), pay
        the agent's payout in the agent's price asset, and have a redeemed
        amount above zero: money that really reached the agent on chain.

        One feedback per paid call (channel, seq), ever. Its weight is the
        receipt's price, capped by what the channel redeemed and has not
        yet weighed earlier feedback: the sum of the weights given through
        one channel never exceeds what it paid the agent on chain.

        Whose feedback it is: the channel's payer, whose money paid. On a
        channel opened under a delegation the payer is the delegator; its
        session key (which made the calls) may submit the feedback on the
        delegator's behalf while the delegation is not revoked, and the
        feedback is recorded under the delegator either way. An agent's
        owner cannot rate its own agent, as payer or as session key.

        What this does not stop: a payer that is the agent in disguise (a
        second address of its owner) gets its payment back as the agent's
        income, so payment-weighted feedback costs it only gas and channel
        capital. Readers should weigh feedback by clients they trust, as
        ERC-8004 advises, and read the validation record beside it.
"""


# @dev The receipt check shared with the validation contract.
from motet.trust import receipts


# @dev An agent's record as `AgentRegistry.agents(id)` returns it.
struct Agent:
    payout: address
    token: address
    price: uint256
    stake: uint256
    unbonding: uint256
    unbonding_until: uint256
    active: bool


# @dev A channel as `PaymentChannels.channels(id)` returns it.
struct Channel:
    payer: address
    payee: address
    token: address
    deposit: uint256
    redeemed: uint256
    closes_at: uint256
    settled: bool


# @dev A registered delegation as `PaymentChannels.delegations(id)` returns it.
struct DelegationState:
    delegator: address
    session_key: address
    asset: address
    cap: uint256
    valid_after: uint256
    expiry: uint256
    spent: uint256


interface AgentRegistry:
    def agents(agent_id: uint256) -> Agent: view
    def ownerOf(token_id: uint256) -> address: view


interface PaymentChannels:
    def channels(channel_id: uint256) -> Channel: view
    def channel_delegation(channel_id: uint256) -> bytes32: view
    def delegations(delegation_id: bytes32) -> DelegationState: view
    def revoked(delegator: address, delegation_id: bytes32) -> bool: view


# @dev Longest feedback URI accepted (it is only logged, never stored).
MAX_URI: constant(uint256) = 2048


# @dev Highest score: scores run from 0 to 100, as ERC-8004's.
MAX_SCORE: constant(uint8) = 100


# @dev `summary` gives the weighted average score in hundredths.
SCORE_DECIMALS: public(constant(uint8)) = 2


# @dev One feedback, as `readFeedback` and `feedback` return it.
struct Feedback:
    score: uint8
    tag: bytes32
    weight: uint256
    channel_id: uint256
    seq: uint64


# @dev An agent's totals over all its feedback.
struct Totals:
    count: uint256
    weight: uint256
    weighted_scores: uint256


# @dev What `summary` returns: the number of feedbacks, their total
# weight (in the agent's price asset) and the weighted average score in
# hundredths (0 to 10000), rounded down; 0 without feedback.
struct Summary:
    count: uint256
    weight: uint256
    score: uint256


# @dev The agent registry (ERC-8004 identity registry) agents live in.
REGISTRY: public(immutable(address))


# @dev The payment channels whose redeemed amounts prove payment, and
# whose address is the receipts' EIP-712 `verifyingContract`.
CHANNELS: public(immutable(address))


# @dev A feedback lives in three slots (`feedback` unpacks):
#   _packed[agent][client][index]   weight (bits 0-127) | seq (128-191) | score (192-199)
#   _tag[agent][client][index]      tag
#   _channel[agent][client][index]  channel id
# A weight fits in 128 bits: it never exceeds a channel's redeemed amount, which the channels contract
# keeps below 2**128.
_packed: HashMap[uint256, HashMap[address, HashMap[uint64, uint256]]]
_tag: HashMap[uint256, HashMap[address, HashMap[uint64, bytes32]]]
_channel: HashMap[uint256, HashMap[address, HashMap[uint64, uint256]]]


# @dev Masks that unpack `_packed`.
_MASK_128: constant(uint256) = 2**128 - 1
_MASK_64: constant(uint256) = 2**64 - 1


# @dev agent -> client -> its last feedback index (0: none).
_last_index: HashMap[uint256, HashMap[address, uint64]]


# @dev agent -> its totals.
_totals: HashMap[uint256, Totals]


# @dev channel -> seq -> whether that paid call was rated.
rated: public(HashMap[uint256, HashMap[uint64, bool]])


# @dev channel -> the part of its redeemed amount that already weighs feedback.
weight_used: public(HashMap[uint256, uint256])


# @dev Emitted for each feedback (ERC-8004's `NewFeedback`, with the
# paid call it is tied to and its weight).
event NewFeedback:
    agent_id: indexed(uint256)
    client: indexed(address)
    feedback_index: uint64
    score: uint8
    tag: indexed(bytes32)
    weight: uint256
    channel_id: uint256
    seq: uint64
    request_hash: bytes32
    feedback_uri: String[MAX_URI]


@deploy
def __init__(registry: address, channels: address):
    """
    @dev Binds the registry of agents and the channels that prove payment.
    @param registry The AgentRegistry.
    @param channels The PaymentChannels (the receipts' verifying contract).
    """
    assert registry != empty(address), "reputation: registry is the zero address"
    assert channels != empty(address), "reputation: channels is the zero address"
    REGISTRY = registry
    CHANNELS = channels


@external
def give_feedback(
    agent_id: uint256,
    receipt: receipts.Receipt,
    signature: Bytes[65],
    score: uint8,
    tag: bytes32,
    feedback_uri: String[MAX_URI],
) -> uint64:
    """
    @dev Rates one paid call of an agent.
    @notice Reverts unless: the score is at most 100; the agent exists;
            the receipt is signed by the agent's payout; its channel
            exists, pays the agent's payout in the agent's price asset
            and is paid by the caller (or, for a delegated channel, the
            caller is its unrevoked session key); neither the payer nor
            the caller is the agent's owner; the call was not rated before; and the weight
            (the receipt's price, capped by what the channel redeemed and
            has not yet weighed) is above zero.
    @param agent_id The agent.
    @param receipt The agent's receipt for the call.
    @param signature The receipt's 65-byte signature (r, s, v).
    @param score 0 to 100.
    @param tag A free dimension (ERC-8004's tag1), zero for none.
    @param feedback_uri Where the details are (logged, not stored).
    @return uint64 The feedback's index among the payer's feedback to
            this agent (from 1).
    """
    assert score <= MAX_SCORE, "reputation: score is above 100"
    agent: Agent = staticcall AgentRegistry(REGISTRY).agents(agent_id)
    assert agent.payout != empty(address), "reputation: unknown agent"
    channel: Channel = staticcall PaymentChannels(CHANNELS).channels(receipt.channel_id)
    assert channel.payer != empty(address), "reputation: unknown channel"
    digest: bytes32 = receipts.digest(receipts.domain_separator(CHANNELS), receipt)
    assert receipts.signer(digest, signature) == agent.payout, "reputation: receipt not signed by the agent's payout"
    assert channel.payee == agent.payout, "reputation: the channel does not pay this agent"
    assert channel.token == agent.token, "reputation: the channel is not in the agent's price asset"
    if msg.sender != channel.payer:
        assert self._speaks_for_payer(receipt.channel_id, channel.payer), "reputation: only the channel's payer can rate its calls"
    owner: address = staticcall AgentRegistry(REGISTRY).ownerOf(agent_id)
    assert channel.payer != owner and msg.sender != owner, "reputation: an agent's owner cannot rate it"
    assert not self.rated[receipt.channel_id][receipt.seq], "reputation: this call was already rated"
    assert channel.redeemed > 0, "reputation: nothing was redeemed on this channel"
    assert receipt.price > 0, "reputation: a free call carries no weight"
    used: uint256 = self.weight_used[receipt.channel_id]
    assert used < channel.redeemed, "reputation: the channel's redeemed amount already weighs earlier feedback"
    weight: uint256 = min(receipt.price, channel.redeemed - used)

    self.rated[receipt.channel_id][receipt.seq] = True
    self.weight_used[receipt.channel_id] = used + weight
    index: uint64 = self._last_index[agent_id][channel.payer] + 1
    self._last_index[agent_id][channel.payer] = index
    self._packed[agent_id][channel.payer][index] = (
        weight | (convert(receipt.seq, uint256) << 128) | (convert(score, uint256) << 192)
    )
    if tag != empty(bytes32):
        self._tag[agent_id][channel.payer][index] = tag
    self._channel[agent_id][channel.payer][index] = receipt.channel_id
    totals: Totals = self._totals[agent_id]
    self._totals[agent_id] = Totals(
        count=totals.count + 1,
        weight=totals.weight + weight,
        weighted_scores=totals.weighted_scores + convert(score, uint256) * weight,
    )
    log NewFeedback(
        agent_id=agent_id,
        client=channel.payer,
        feedback_index=index,
        score=score,
        tag=tag,
        weight=weight,
        channel_id=receipt.channel_id,
        seq=receipt.seq,
        request_hash=receipt.request_hash,
        feedback_uri=feedback_uri,
    )
    return index


@external
@view
def summary(agent_id: uint256) -> Summary:
    """
    @dev An agent's reputation: how many feedbacks, their total weight,
         and the weighted average score in hundredths.
    @param agent_id The agent.
    @return Summary count, weight (in the agent's price asset) and score
            (sum of score x weight x 100 over the total weight, rounded
            down; 0 without feedback).
    """
    totals: Totals = self._totals[agent_id]
    if totals.weight == 0:
        return Summary(count=totals.count, weight=0, score=0)
    return Summary(count=totals.count, weight=totals.weight, score=totals.weighted_scores * 100 // totals.weight)


@external
@view
def totals(agent_id: uint256) -> Totals:
    """
    @dev An agent's raw totals: count, total weight, and the sum of
         score x weight (the weighted average, exactly, is their ratio).
    @param agent_id The agent.
    @return Totals The totals.
    """
    return self._totals[agent_id]


@external
@view
def feedback(agent_id: uint256, client: address, index: uint64) -> Feedback:
    """
    @dev One feedback of a client (payer) to an agent, with its weight and
         the paid call it rates; all zero when there is none.
    @param agent_id The agent.
    @param client The payer.
    @param index From 1 to `getLastIndex(agent_id, client)`.
    @return Feedback The feedback.
    """
    return self._load(agent_id, client, index)


@external
@view
def readFeedback(agentId: uint256, clientAddress: address, index: uint64) -> (uint8, bytes32, bytes32, bool):
    """
    @dev ERC-8004's `readFeedback`: score, tag1, tag2 (always zero here)
         and whether it was revoked (feedback here is never revoked).
    @param agentId The agent.
    @param clientAddress The payer.
    @param index From 1 to `getLastIndex(agentId, clientAddress)`.
    @return The score, tag1, tag2 and revoked flag.
    """
    found: Feedback = self._load(agentId, clientAddress, index)
    return found.score, found.tag, empty(bytes32), False


@external
@view
def getLastIndex(agentId: uint256, clientAddress: address) -> uint64:
    """
    @dev ERC-8004's `getLastIndex`: how many feedbacks a client gave an
         agent (indexes run from 1).
    @param agentId The agent.
    @param clientAddress The payer.
    @return uint64 The last index, 0 for none.
    """
    return self._last_index[agentId][clientAddress]


@external
@view
def getIdentityRegistry() -> address:
    """
    @dev ERC-8004's `getIdentityRegistry`: the agent registry.
    @return address The AgentRegistry.
    """
    return REGISTRY


@internal
@view
def _speaks_for_payer(channel_id: uint256, payer: address) -> bool:
    """
    @dev Whether the caller may rate a channel's calls for its payer: the
         session key of the delegation the channel was opened under,
         while the delegator has not revoked it.
    @param channel_id The channel.
    @param payer The channel's payer (the delegator of a delegated channel).
    @return bool True when the caller speaks for the payer.
    """
    delegation_id: bytes32 = staticcall PaymentChannels(CHANNELS).channel_delegation(channel_id)
    if delegation_id == empty(bytes32):
        return False
    state: DelegationState = staticcall PaymentChannels(CHANNELS).delegations(delegation_id)
    if msg.sender != state.session_key or state.delegator != payer:
        return False
    return not staticcall PaymentChannels(CHANNELS).revoked(payer, delegation_id)


@internal
@view
def _load(agent_id: uint256, client: address, index: uint64) -> Feedback:
    """
    @dev Unpacks a feedback from its three storage slots.
    @param agent_id The agent.
    @param client The payer.
    @param index The feedback's index.
    @return Feedback Its fields (all zero when there is none).
    """
    packed: uint256 = self._packed[agent_id][client][index]
    return Feedback(
        score=convert(packed >> 192, uint8),
        tag=self._tag[agent_id][client][index],
        weight=packed & _MASK_128,
        channel_id=self._channel[agent_id][client][index],
        seq=convert((packed >> 128) & _MASK_64, uint64),
    )
