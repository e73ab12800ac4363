# pragma version ~=0.4.3
# pragma nonreentrancy off
"""
@title motet validation: disputes, validators and slashing
@custom:contract-name Validation
@license MIT
@notice An ERC-8004-shaped validation registry with bonded disputes.
        A caller whose check of a paid answer says "cheat" opens a
        dispute with the agent's signed EIP-712 receipt (checked here
        against the agent's payout address), the model the answer claims
        (GGUF sha256), a URI of the evidence and exactly `BOND` wei. The
        agent's stake is held in the registry until the dispute ends. The
        evidence URI is logged (`DisputeOpened`), not stored: only its
        keccak256 is kept; `draw` can take the URI again (motet's client
        passes it) to log it in the validators' ERC-8004 requests.

        In a later block, anyone calls `draw`: `VALIDATORS_PER_DISPUTE`
        validators are drawn without replacement, weighted by their
        stake, among the registered validators that declare the model,
        excluding the agent's owner and payout and the challenger. The
        seed is the hash of the block the dispute was opened in, which
        nobody knows when the dispute is sent. (A production chain
        should draw from a verifiable random beacon instead: a block
        producer can withhold a block whose hash it dislikes.) Past 256
        blocks that hash is gone; the draw then cancels the dispute and
        refunds the bond (anyone, the agent included, can draw from the
        next block on). With fewer eligible validators than needed, the
        draw cancels and refunds too.

        The drawn validators commit `keccak256(abi_encode(dispute_id,
        verdict, salt, validator))` within `COMMIT_WINDOW`, then reveal
        (once all committed, or after the commit window) within
        `REVEAL_WINDOW`. A strict majority of the drawn validators
        revealing CHEAT decides a cheat; anything else (consistent,
        inconclusive, silence) is "not cheat". `resolve` (anyone, after
        the reveal window or once all revealed) settles:

        - cheat: the registry slashes `SLASH_BPS` of the agent's stake to
          this contract; the challenger is credited its bond plus
          `REWARD_BPS` of the slashed amount; each validator that revealed
          CHEAT is credited `VALIDATOR_FEE` from the rest; the rest is sunk.
        - not cheat: the bond is forfeited; each validator that revealed
          CONSISTENT is credited `VALIDATOR_FEE` from it; the rest is sunk.
        - a drawn validator that did not reveal loses `NO_REVEAL_BPS` of
          its validator stake, one that revealed against the outcome
          `MINORITY_BPS`; both go to the sink. INCONCLUSIVE is never paid
          nor penalized.

        Payments are pulled (`withdraw`). The sink (`sunk`) is never paid
        out. Invariant: this contract's balance equals the credited
        balances, plus validator stakes, plus the bonds of open disputes,
        plus `sunk`.
"""


# @dev The shared receipt checks (same module as the Reputation contract).
from motet.trust import receipts


# @dev An agent's record in the registry (AgentRegistry.Agent).
struct Agent:
    payout: address
    token: address
    price: uint256
    stake: uint256
    unbonding: uint256
    unbonding_until: uint256
    active: bool


# @dev What this contract asks of the agent registry.
interface AgentRegistry:
    def agents(agent_id: uint256) -> Agent: view
    def ownerOf(token_id: uint256) -> address: view
    def UNBONDING_DELAY() -> uint256: view
    def hold(agent_id: uint256): nonpayable
    def release(agent_id: uint256): nonpayable
    def slash(agent_id: uint256, amount: uint256) -> uint256: nonpayable


# @dev Most registered validators (every draw reads them all).
MAX_VALIDATORS: constant(uint256) = 64


# @dev Most models one validator may declare.
MAX_MODELS: constant(uint256) = 16


# @dev Most validators one dispute may draw.
MAX_DRAWN: constant(uint256) = 9


# @dev Longest evidence URI (a `data:` URI carries the whole evidence);
# it travels in calldata and logs, never in storage.
MAX_EVIDENCE_URI: constant(uint256) = 65536


# @dev Basis points: 10,000 is 100 %.
BPS: constant(uint256) = 10_000


# @dev Verdicts, as motet.trust.Verdict numbers them.
CONSISTENT: constant(uint8) = 1
CHEAT: constant(uint8) = 2
INCONCLUSIVE: constant(uint8) = 3


# @dev A dispute's status (`Dispute.status`).
DRAWING: constant(uint8) = 1
VOTING: constant(uint8) = 2
RESOLVED: constant(uint8) = 3
CANCELLED: constant(uint8) = 4


# @dev Why a draw cancelled a dispute (`DisputeCancelled.reason`).
CANCEL_TOO_FEW_VALIDATORS: constant(uint8) = 1
CANCEL_DRAW_EXPIRED: constant(uint8) = 2


# @dev ERC-8004 responses (0..100) and tags of each verdict.
RESPONSE_CONSISTENT: constant(uint8) = 100
RESPONSE_CHEAT: constant(uint8) = 0
RESPONSE_INCONCLUSIVE: constant(uint8) = 50
TAG_CONSISTENT: constant(bytes32) = 0x636f6e73697374656e7400000000000000000000000000000000000000000000
TAG_CHEAT: constant(bytes32) = 0x6368656174000000000000000000000000000000000000000000000000000000
TAG_INCONCLUSIVE: constant(bytes32) = 0x696e636f6e636c75736976650000000000000000000000000000000000000000


# @dev A registered validator. `leaving_at` is 0 while it can be drawn,
# else the time from which `leave` returns its stake; `assigned` counts
# the unresolved disputes it was drawn for.
struct Validator:
    stake: uint256
    leaving_at: uint256
    assigned: uint256
    listed: bool


# @dev A dispute. The deadlines are 0 until the draw; `outcome` is 0
# until resolved, then CHEAT or CONSISTENT ("not cheat").
struct Dispute:
    agent_id: uint256
    challenger: address
    model: bytes32
    request_hash: bytes32
    response_hash: bytes32
    receipt_digest: bytes32
    bond: uint256
    opened_block: uint256
    status: uint8
    commit_deadline: uint256
    reveal_deadline: uint256
    commits: uint256
    reveals: uint256
    cheat_votes: uint256
    outcome: uint8
    slashed: uint256
    evidence_hash: bytes32


# @dev A drawn validator's vote: its commitment, then its verdict (0
# until revealed).
struct Vote:
    commitment: bytes32
    verdict: uint8


# @dev An agent's validation record: disputes opened and not cancelled,
# decided as cheats, decided as not cheats.
struct Record:
    disputes: uint256
    cheats: uint256
    rejected: uint256


# @dev ERC-8004: the state of one validation request (one drawn
# validator of one dispute).
struct ValidationStatus:
    validator: address
    agent_id: uint256
    response: uint8
    response_hash: bytes32
    tag: bytes32
    last_update: uint256


# @dev A running count and sum of ERC-8004 responses.
struct Tally:
    count: uint256
    total: uint256


# @dev The agent registry whose stake this contract holds and slashes.
REGISTRY: public(immutable(AgentRegistry))


# @dev The PaymentChannels contract of the receipts' EIP-712 domain.
CHANNELS: public(immutable(address))


# @dev The published economics (docs/trust.md); wei, basis points, seconds.
BOND: public(immutable(uint256))
SLASH_BPS: public(immutable(uint256))
REWARD_BPS: public(immutable(uint256))
VALIDATOR_FEE: public(immutable(uint256))
VALIDATORS_PER_DISPUTE: public(immutable(uint256))
NO_REVEAL_BPS: public(immutable(uint256))
MINORITY_BPS: public(immutable(uint256))
MIN_VALIDATOR_STAKE: public(immutable(uint256))
COMMIT_WINDOW: public(immutable(uint256))
REVEAL_WINDOW: public(immutable(uint256))


# @dev Seconds between `request_leave` and `leave`: both windows.
LEAVE_DELAY: public(immutable(uint256))


# @dev Registered validators by address.
validators: public(HashMap[address, Validator])


# @dev The validators that can be drawn (listed, not leaving).
_pool: DynArray[address, MAX_VALIDATORS]


# @dev The models (GGUF sha256) each validator declares, as a list and a set.
_models: HashMap[address, DynArray[bytes32, MAX_MODELS]]
_declares: HashMap[address, HashMap[bytes32, bool]]


# @dev Disputes by id; ids run from 1.
disputes: public(HashMap[uint256, Dispute])
dispute_count: public(uint256)


# @dev The dispute of each receipt (by EIP-712 digest); 0 for none.
# A cancelled dispute frees its receipt.
disputed: public(HashMap[bytes32, uint256])


# @dev Each dispute's drawn validators and votes.
_drawn: HashMap[uint256, DynArray[address, MAX_DRAWN]]
votes: public(HashMap[uint256, HashMap[address, Vote]])


# @dev Each agent's validation record (read with `record`).
_records: HashMap[uint256, Record]


# @dev ERC-8004 validation requests by request hash, and the response
# tallies per agent, validator (zero address: all) and tag (zero: all).
_statuses: HashMap[bytes32, ValidationStatus]
_tallies: HashMap[uint256, HashMap[address, HashMap[bytes32, Tally]]]


# @dev Credited, withdrawable wei per address (pull payments).
balances: public(HashMap[address, uint256])


# @dev Wei sent to the neutral sink: never paid out.
sunk: public(uint256)


# @dev Emitted when a validator registers, tops up or declares new models.
event ValidatorRegistered:
    validator: indexed(address)
    stake: uint256
    models: DynArray[bytes32, MAX_MODELS]


# @dev Emitted when a validator stops being drawn; it can `leave` at `leaving_at`.
event ValidatorLeaving:
    validator: indexed(address)
    leaving_at: uint256


# @dev Emitted when a validator leaves with its stake (credited).
event ValidatorLeft:
    validator: indexed(address)
    stake: uint256


# @dev Emitted when a dispute is opened (the draw follows in a later block).
event DisputeOpened:
    dispute_id: indexed(uint256)
    agent_id: indexed(uint256)
    challenger: indexed(address)
    model: bytes32
    request_hash: bytes32
    response_hash: bytes32
    bond: uint256
    evidence_uri: String[MAX_EVIDENCE_URI]


# @dev Emitted when a dispute's validators are drawn from `seed`.
event ValidatorsDrawn:
    dispute_id: indexed(uint256)
    validators: DynArray[address, MAX_DRAWN]
    seed: bytes32
    commit_deadline: uint256
    reveal_deadline: uint256


# @dev ERC-8004: a validation request to one drawn validator.
event ValidationRequest:
    validatorAddress: indexed(address)
    agentId: indexed(uint256)
    requestUri: String[MAX_EVIDENCE_URI]
    requestHash: indexed(bytes32)


# @dev Emitted when a drawn validator commits.
event VerdictCommitted:
    dispute_id: indexed(uint256)
    validator: indexed(address)


# @dev ERC-8004: a validator's response (its revealed verdict: 100
# consistent, 0 cheat, 50 inconclusive; `responseHash` is its commitment).
event ValidationResponse:
    validatorAddress: indexed(address)
    agentId: indexed(uint256)
    requestHash: indexed(bytes32)
    response: uint8
    responseUri: String[8]
    responseHash: bytes32
    tag: bytes32


# @dev Emitted when a draw cancels a dispute and refunds its bond.
event DisputeCancelled:
    dispute_id: indexed(uint256)
    agent_id: indexed(uint256)
    reason: uint8


# @dev Emitted when a validator loses part of its stake (to the sink).
event ValidatorPenalized:
    dispute_id: indexed(uint256)
    validator: indexed(address)
    amount: uint256
    stake_left: uint256


# @dev Emitted when a dispute is decided.
event DisputeResolved:
    dispute_id: indexed(uint256)
    agent_id: indexed(uint256)
    outcome: uint8
    cheat_votes: uint256
    slashed: uint256
    challenger_paid: uint256
    fees: uint256
    sunk: uint256


# @dev Emitted when an address's withdrawable balance grows.
event Credited:
    account: indexed(address)
    amount: uint256
    balance: uint256


# @dev Emitted when an address withdraws its balance.
event Withdrawn:
    account: indexed(address)
    amount: uint256


@deploy
def __init__(
    registry: address,
    channels: address,
    bond: uint256,
    slash_bps: uint256,
    reward_bps: uint256,
    validator_fee: uint256,
    validators_per_dispute: uint256,
    no_reveal_bps: uint256,
    minority_bps: uint256,
    min_validator_stake: uint256,
    commit_window: uint256,
    reveal_window: uint256,
):
    """
    @dev Sets the registry, the receipts' channels contract and the
         published economics (motet.settings.DisputeSettings).
    @notice The registry's unbonding delay must outlast both windows, so
            that stake cannot leave between a cheat and its dispute.
    @param registry The AgentRegistry (it must name this contract with
           `set_validation` before disputes can hold its stake).
    @param channels The PaymentChannels contract receipts are bound to.
    @param bond Wei a challenger posts, exactly.
    @param slash_bps Share of the agent's stake a cheat loses.
    @param reward_bps Share of the slashed amount the challenger gets.
    @param validator_fee Wei per validator whose verdict matches the outcome.
    @param validators_per_dispute Validators drawn per dispute (1..9).
    @param no_reveal_bps Share of its stake a non-revealing validator loses.
    @param minority_bps Share of its stake a validator revealing against
           the outcome loses.
    @param min_validator_stake Least stake a validator needs to be drawn.
    @param commit_window Seconds to commit after the draw.
    @param reveal_window Seconds to reveal after the commit window.
    """
    assert registry.is_contract, "validation: registry is not a contract"
    assert channels.is_contract, "validation: channels is not a contract"
    assert slash_bps <= BPS and reward_bps <= BPS, "validation: a share above 100 %"
    assert no_reveal_bps <= BPS and minority_bps <= BPS, "validation: a share above 100 %"
    assert validators_per_dispute > 0, "validation: no validators per dispute"
    assert validators_per_dispute <= MAX_DRAWN, "validation: too many validators per dispute"
    assert commit_window > 0 and reveal_window > 0, "validation: a window is zero"
    assert commit_window <= convert(max_value(uint32), uint256), "validation: commit window too long"
    assert reveal_window <= convert(max_value(uint32), uint256), "validation: reveal window too long"
    assert min_validator_stake > 0, "validation: minimum validator stake is zero"
    assert staticcall AgentRegistry(registry).UNBONDING_DELAY() > commit_window + reveal_window, "validation: unbonding delay does not outlast the windows"
    REGISTRY = AgentRegistry(registry)
    CHANNELS = channels
    BOND = bond
    SLASH_BPS = slash_bps
    REWARD_BPS = reward_bps
    VALIDATOR_FEE = validator_fee
    VALIDATORS_PER_DISPUTE = validators_per_dispute
    NO_REVEAL_BPS = no_reveal_bps
    MINORITY_BPS = minority_bps
    MIN_VALIDATOR_STAKE = min_validator_stake
    COMMIT_WINDOW = commit_window
    REVEAL_WINDOW = reveal_window
    LEAVE_DELAY = commit_window + reveal_window


@external
@payable
def __default__():
    """
    @dev Receives slashed stake from the registry; refuses anyone else.
    """
    assert msg.sender == REGISTRY.address, "validation: only the registry sends value"


@external
@payable
@nonreentrant
def register_validator(models: DynArray[bytes32, MAX_MODELS]):
    """
    @dev Registers `msg.sender` as a validator (or tops up its stake
         with `msg.value` and replaces its models).
    @notice Its stake must reach `MIN_VALIDATOR_STAKE`; at most
            `MAX_VALIDATORS` validators are listed; a leaving validator
            cannot come back before it left.
    @param models The GGUF sha256 of each model it can run (1..16).
    """
    assert len(models) > 0, "validation: no models"
    info: Validator = self.validators[msg.sender]
    assert info.leaving_at == 0, "validation: validator is leaving"
    if not info.listed:
        assert len(self._pool) < MAX_VALIDATORS, "validation: the validator list is full"
        self._pool.append(msg.sender)
        info.listed = True
    info.stake += msg.value
    assert info.stake >= MIN_VALIDATOR_STAKE, "validation: stake below the minimum"
    self.validators[msg.sender] = info
    for old: bytes32 in self._models[msg.sender]:
        self._declares[msg.sender][old] = False
    for model: bytes32 in models:
        assert model != empty(bytes32), "validation: empty model"
        self._declares[msg.sender][model] = True
    self._models[msg.sender] = models
    log ValidatorRegistered(validator=msg.sender, stake=info.stake, models=models)


@external
@nonreentrant
def request_leave():
    """
    @dev Stops `msg.sender` from being drawn; `leave` returns its stake
         `LEAVE_DELAY` seconds later, once no dispute it was drawn for
         is unresolved.
    """
    info: Validator = self.validators[msg.sender]
    assert info.leaving_at == 0, "validation: validator is leaving"
    assert info.listed, "validation: not a validator"
    info.leaving_at = block.timestamp + LEAVE_DELAY
    self.validators[msg.sender] = info
    self._unlist(msg.sender)
    log ValidatorLeaving(validator=msg.sender, leaving_at=info.leaving_at)


@external
@nonreentrant
def leave() -> uint256:
    """
    @dev Credits a leaving validator's stake to its balance (`withdraw`).
    @notice Only after the delay, and never while a dispute it was
            drawn for is unresolved (its stake answers for its vote).
    @return uint256 The stake credited.
    """
    info: Validator = self.validators[msg.sender]
    assert info.leaving_at != 0, "validation: validator is not leaving"
    assert block.timestamp >= info.leaving_at, "validation: validator cannot leave yet"
    assert info.assigned == 0, "validation: validator is drawn for an unresolved dispute"
    for old: bytes32 in self._models[msg.sender]:
        self._declares[msg.sender][old] = False
    self._models[msg.sender] = []
    self.validators[msg.sender] = empty(Validator)
    log ValidatorLeft(validator=msg.sender, stake=info.stake)
    self._credit(msg.sender, info.stake)
    return info.stake


@external
@payable
@nonreentrant
def open_dispute(
    agent_id: uint256,
    receipt: receipts.Receipt,
    signature: Bytes[65],
    model: bytes32,
    evidence_uri: String[MAX_EVIDENCE_URI],
) -> uint256:
    """
    @dev Opens a dispute over one receipt of an agent, with `msg.value`
         as the bond, and holds the agent's stake.
    @notice The receipt must be signed (EIP-712, low s) by the agent's
            payout address; a receipt can be disputed once (unless its
            dispute is cancelled). Call `draw` in a later block.
    @param agent_id The agent.
    @param receipt The receipt's fields.
    @param signature The agent's 65-byte signature of the receipt.
    @param model The GGUF sha256 of the model the answer claims.
    @param evidence_uri Where the evidence is (request, answer, profile).
    @return uint256 The dispute id.
    """
    assert msg.value == BOND, "validation: the bond is not exactly BOND"
    assert model != empty(bytes32), "validation: empty model"
    assert len(evidence_uri) > 0, "validation: evidence URI is empty"
    agent: Agent = staticcall REGISTRY.agents(agent_id)
    assert agent.payout != empty(address), "validation: unknown agent"
    digest: bytes32 = receipts.digest(receipts.domain_separator(CHANNELS), receipt)
    signer: address = receipts.signer(digest, signature)
    assert signer != empty(address), "validation: malformed receipt signature"
    assert signer == agent.payout, "validation: receipt not signed by the agent's payout"
    assert self.disputed[digest] == 0, "validation: receipt already disputed"
    dispute_id: uint256 = self.dispute_count + 1
    self.dispute_count = dispute_id
    self.disputed[digest] = dispute_id
    self.disputes[dispute_id] = Dispute(
        agent_id=agent_id,
        challenger=msg.sender,
        model=model,
        request_hash=receipt.request_hash,
        response_hash=receipt.response_hash,
        receipt_digest=digest,
        bond=msg.value,
        opened_block=block.number,
        status=DRAWING,
        commit_deadline=0,
        reveal_deadline=0,
        commits=0,
        reveals=0,
        cheat_votes=0,
        outcome=0,
        slashed=0,
        evidence_hash=keccak256(evidence_uri),
    )
    self._records[agent_id].disputes += 1
    log DisputeOpened(
        dispute_id=dispute_id,
        agent_id=agent_id,
        challenger=msg.sender,
        model=model,
        request_hash=receipt.request_hash,
        response_hash=receipt.response_hash,
        bond=msg.value,
        evidence_uri=evidence_uri,
    )
    extcall REGISTRY.hold(agent_id)
    return dispute_id


@external
@nonreentrant
def draw(dispute_id: uint256, evidence_uri: String[MAX_EVIDENCE_URI] = "") -> DynArray[address, MAX_DRAWN]:
    """
    @dev Draws a dispute's validators, in a later block than the
         dispute's, from that block's hash, and logs one ERC-8004
         `ValidationRequest` per validator with the evidence URI.
    @notice Anyone can call it. It cancels the dispute and refunds the
            bond instead when fewer than `VALIDATORS_PER_DISPUTE`
            validators are eligible, or when more than 256 blocks passed
            (the seed's hash is no longer readable).
    @param dispute_id The dispute.
    @param evidence_uri The dispute's evidence URI, as `DisputeOpened`
           logged it (its keccak256 must match), for the requests'
           `requestUri`; empty (the default) logs an empty `requestUri`.
    @return DynArray The drawn validators (empty when cancelled).
    """
    dispute: Dispute = self.disputes[dispute_id]
    assert dispute.status == DRAWING, "validation: dispute is not waiting for its draw"
    assert len(evidence_uri) == 0 or keccak256(evidence_uri) == dispute.evidence_hash, "validation: not the dispute's evidence URI"
    assert block.number > dispute.opened_block, "validation: draw in a later block than the dispute's"
    if block.number - dispute.opened_block > 256:
        self._cancel(dispute_id, dispute, CANCEL_DRAW_EXPIRED)
        return []
    seed: bytes32 = blockhash(dispute.opened_block)
    owner: address = staticcall REGISTRY.ownerOf(dispute.agent_id)
    payout: address = (staticcall REGISTRY.agents(dispute.agent_id)).payout

    candidates: DynArray[address, MAX_VALIDATORS] = []
    weights: DynArray[uint256, MAX_VALIDATORS] = []
    total: uint256 = 0
    for validator: address in self._pool:
        if validator == owner or validator == payout or validator == dispute.challenger:
            continue
        if not self._declares[validator][dispute.model]:
            continue
        stake: uint256 = self.validators[validator].stake
        if stake < MIN_VALIDATOR_STAKE:
            continue
        candidates.append(validator)
        weights.append(stake)
        total += stake
    if len(candidates) < VALIDATORS_PER_DISPUTE:
        self._cancel(dispute_id, dispute, CANCEL_TOO_FEW_VALIDATORS)
        return []

    drawn: DynArray[address, MAX_DRAWN] = []
    for i: uint256 in range(VALIDATORS_PER_DISPUTE, bound=MAX_DRAWN):
        point: uint256 = convert(keccak256(abi_encode(seed, dispute_id, i)), uint256) % total
        chosen: uint256 = 0
        cumulative: uint256 = 0
        for j: uint256 in range(len(candidates), bound=MAX_VALIDATORS):
            cumulative += weights[j]
            if point < cumulative:
                chosen = j
                break
        validator: address = candidates[chosen]
        total -= weights[chosen]
        weights[chosen] = 0
        drawn.append(validator)
        self.validators[validator].assigned += 1
        request_hash: bytes32 = self._request_hash(dispute_id, validator)
        self._statuses[request_hash] = ValidationStatus(
            validator=validator,
            agent_id=dispute.agent_id,
            response=0,
            response_hash=empty(bytes32),
            tag=empty(bytes32),
            last_update=block.timestamp,
        )
        log ValidationRequest(
            validatorAddress=validator, agentId=dispute.agent_id, requestUri=evidence_uri, requestHash=request_hash
        )

    commit_deadline: uint256 = block.timestamp + COMMIT_WINDOW
    reveal_deadline: uint256 = commit_deadline + REVEAL_WINDOW
    self._drawn[dispute_id] = drawn
    self.disputes[dispute_id].status = VOTING
    self.disputes[dispute_id].commit_deadline = commit_deadline
    self.disputes[dispute_id].reveal_deadline = reveal_deadline
    log ValidatorsDrawn(
        dispute_id=dispute_id,
        validators=drawn,
        seed=seed,
        commit_deadline=commit_deadline,
        reveal_deadline=reveal_deadline,
    )
    return drawn


@external
@nonreentrant
def commit(dispute_id: uint256, commitment: bytes32):
    """
    @dev Commits a drawn validator's hidden verdict.
    @notice `commitment` is keccak256(abi_encode(dispute_id, verdict
            (uint8), salt (bytes32), validator)). Once per validator,
            before the commit deadline.
    @param dispute_id The dispute.
    @param commitment The commitment.
    """
    dispute: Dispute = self.disputes[dispute_id]
    assert dispute.status == VOTING, "validation: dispute is not in its voting phase"
    assert msg.sender in self._drawn[dispute_id], "validation: caller was not drawn for this dispute"
    assert block.timestamp < dispute.commit_deadline, "validation: commit window is over"
    assert commitment != empty(bytes32), "validation: empty commitment"
    assert self.votes[dispute_id][msg.sender].commitment == empty(bytes32), "validation: already committed"
    self.votes[dispute_id][msg.sender].commitment = commitment
    self.disputes[dispute_id].commits = dispute.commits + 1
    log VerdictCommitted(dispute_id=dispute_id, validator=msg.sender)


@external
@nonreentrant
def reveal(dispute_id: uint256, verdict: uint8, salt: bytes32):
    """
    @dev Reveals a committed verdict: 1 consistent, 2 cheat, 3 inconclusive.
    @notice Allowed once every drawn validator committed or the commit
            window is over, and before the reveal deadline; the verdict
            and salt must match the commitment.
    @param dispute_id The dispute.
    @param verdict The verdict.
    @param salt The salt of the commitment.
    """
    dispute: Dispute = self.disputes[dispute_id]
    assert dispute.status == VOTING, "validation: dispute is not in its voting phase"
    assert verdict >= CONSISTENT and verdict <= INCONCLUSIVE, "validation: verdict is not 1, 2 or 3"
    vote: Vote = self.votes[dispute_id][msg.sender]
    assert vote.commitment != empty(bytes32), "validation: no commitment to reveal"
    assert vote.verdict == 0, "validation: already revealed"
    assert block.timestamp < dispute.reveal_deadline, "validation: reveal window is over"
    all_committed: bool = dispute.commits == len(self._drawn[dispute_id])
    assert all_committed or block.timestamp >= dispute.commit_deadline, "validation: commit window still open"
    assert self._commitment(dispute_id, verdict, salt, msg.sender) == vote.commitment, "validation: reveal does not match the commitment"
    self.votes[dispute_id][msg.sender].verdict = verdict
    self.disputes[dispute_id].reveals = dispute.reveals + 1
    if verdict == CHEAT:
        self.disputes[dispute_id].cheat_votes = dispute.cheat_votes + 1

    response: uint8 = RESPONSE_CONSISTENT
    tag: bytes32 = TAG_CONSISTENT
    if verdict == CHEAT:
        response = RESPONSE_CHEAT
        tag = TAG_CHEAT
    elif verdict == INCONCLUSIVE:
        response = RESPONSE_INCONCLUSIVE
        tag = TAG_INCONCLUSIVE
    request_hash: bytes32 = self._request_hash(dispute_id, msg.sender)
    self._statuses[request_hash] = ValidationStatus(
        validator=msg.sender,
        agent_id=dispute.agent_id,
        response=response,
        response_hash=vote.commitment,
        tag=tag,
        last_update=block.timestamp,
    )
    for who: address in [empty(address), msg.sender]:
        for key: bytes32 in [empty(bytes32), tag]:
            tally: Tally = self._tallies[dispute.agent_id][who][key]
            tally.count += 1
            tally.total += convert(response, uint256)
            self._tallies[dispute.agent_id][who][key] = tally
    log ValidationResponse(
        validatorAddress=msg.sender,
        agentId=dispute.agent_id,
        requestHash=request_hash,
        response=response,
        responseUri="",
        responseHash=vote.commitment,
        tag=tag,
    )


@external
@nonreentrant
def resolve(dispute_id: uint256) -> uint8:
    """
    @dev Decides a dispute and settles its money (see the contract's notice).
    @notice Anyone can call it, after the reveal deadline or as soon as
            every drawn validator revealed.
    @param dispute_id The dispute.
    @return uint8 The outcome: 2 (cheat) or 1 (not cheat).
    """
    dispute: Dispute = self.disputes[dispute_id]
    assert dispute.status == VOTING, "validation: dispute is not in its voting phase"
    drawn: DynArray[address, MAX_DRAWN] = self._drawn[dispute_id]
    assert block.timestamp >= dispute.reveal_deadline or dispute.reveals == len(drawn), "validation: reveal window still open"

    outcome: uint8 = CONSISTENT
    slashed: uint256 = 0
    challenger_paid: uint256 = 0
    pot: uint256 = dispute.bond
    if dispute.cheat_votes * 2 > len(drawn):
        outcome = CHEAT
        stake: uint256 = (staticcall REGISTRY.agents(dispute.agent_id)).stake
        slashed = extcall REGISTRY.slash(dispute.agent_id, stake * SLASH_BPS // BPS)
        reward: uint256 = slashed * REWARD_BPS // BPS
        challenger_paid = dispute.bond + reward
        pot = slashed - reward
        self._records[dispute.agent_id].cheats += 1
    else:
        self._records[dispute.agent_id].rejected += 1

    fees: uint256 = 0
    penalties: uint256 = 0
    for validator: address in drawn:
        verdict: uint8 = self.votes[dispute_id][validator].verdict
        info: Validator = self.validators[validator]
        info.assigned -= 1
        penalty: uint256 = 0
        if verdict == 0:
            penalty = info.stake * NO_REVEAL_BPS // BPS
        elif verdict == outcome:
            fee: uint256 = min(VALIDATOR_FEE, pot)
            pot -= fee
            fees += fee
            self._credit(validator, fee)
        elif verdict != INCONCLUSIVE:
            penalty = info.stake * MINORITY_BPS // BPS
        info.stake -= penalty
        penalties += penalty
        self.validators[validator] = info
        if penalty > 0:
            log ValidatorPenalized(dispute_id=dispute_id, validator=validator, amount=penalty, stake_left=info.stake)

    self.disputes[dispute_id].status = RESOLVED
    self.disputes[dispute_id].outcome = outcome
    self.disputes[dispute_id].slashed = slashed
    self.sunk += pot + penalties
    self._credit(dispute.challenger, challenger_paid)
    log DisputeResolved(
        dispute_id=dispute_id,
        agent_id=dispute.agent_id,
        outcome=outcome,
        cheat_votes=dispute.cheat_votes,
        slashed=slashed,
        challenger_paid=challenger_paid,
        fees=fees,
        sunk=pot + penalties,
    )
    extcall REGISTRY.release(dispute.agent_id)
    return outcome


@external
@nonreentrant
def withdraw() -> uint256:
    """
    @dev Sends `msg.sender` its whole credited balance.
    @return uint256 The amount sent.
    """
    amount: uint256 = self.balances[msg.sender]
    assert amount > 0, "validation: nothing to withdraw"
    self.balances[msg.sender] = 0
    log Withdrawn(account=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)
    return amount


@external
@view
def record(agent_id: uint256) -> (uint256, uint256, uint256):
    """
    @dev An agent's validation record.
    @param agent_id The agent.
    @return (uint256, uint256, uint256) Disputes opened (not cancelled),
            decided as cheats, decided as not cheats.
    """
    record: Record = self._records[agent_id]
    return record.disputes, record.cheats, record.rejected


@external
@view
def drawn(dispute_id: uint256) -> DynArray[address, MAX_DRAWN]:
    """
    @dev The validators drawn for a dispute (empty before the draw).
    @param dispute_id The dispute.
    @return DynArray Their addresses, in draw order.
    """
    return self._drawn[dispute_id]


@external
@view
def models(validator: address) -> DynArray[bytes32, MAX_MODELS]:
    """
    @dev The models (GGUF sha256) a validator declares.
    @param validator The validator.
    @return DynArray The models.
    """
    return self._models[validator]


@external
@view
def validator_list() -> DynArray[address, MAX_VALIDATORS]:
    """
    @dev The validators that can be drawn (registered and not leaving).
    @return DynArray Their addresses.
    """
    return self._pool


@external
@view
def validation_request_hash(dispute_id: uint256, validator: address) -> bytes32:
    """
    @dev The ERC-8004 request hash of one drawn validator of a dispute.
    @param dispute_id The dispute.
    @param validator The validator.
    @return bytes32 keccak256(abi_encode(this contract, dispute_id, validator)).
    """
    return self._request_hash(dispute_id, validator)


@external
@view
def getValidationStatus(requestHash: bytes32) -> (address, uint256, uint8, bytes32, bytes32, uint256):
    """
    @dev ERC-8004: a validation request's state.
    @param requestHash The request hash (`validation_request_hash`).
    @return (address, uint256, uint8, bytes32, bytes32, uint256) The
            validator, the agent, the response (0..100; 0 until revealed),
            the response hash (the commitment), the tag and the last update.
    """
    status: ValidationStatus = self._statuses[requestHash]
    return status.validator, status.agent_id, status.response, status.response_hash, status.tag, status.last_update


@external
@view
def getSummary(
    agentId: uint256, validatorAddresses: DynArray[address, MAX_VALIDATORS], tag: bytes32
) -> (uint64, uint8):
    """
    @dev ERC-8004: how many responses an agent received and their average.
    @param agentId The agent.
    @param validatorAddresses Only these validators' responses (empty: all).
    @param tag Only responses with this tag (zero: all).
    @return (uint64, uint8) The count and the average response (0..100).
    """
    count: uint256 = 0
    total: uint256 = 0
    if len(validatorAddresses) == 0:
        tally: Tally = self._tallies[agentId][empty(address)][tag]
        count = tally.count
        total = tally.total
    else:
        for validator: address in validatorAddresses:
            tally: Tally = self._tallies[agentId][validator][tag]
            count += tally.count
            total += tally.total
    if count == 0:
        return 0, 0
    return convert(count, uint64), convert(total // count, uint8)


@internal
def _cancel(dispute_id: uint256, dispute: Dispute, reason: uint8):
    """
    @dev Cancels a dispute before its draw: refunds the bond, frees the
         receipt and releases the agent's stake.
    @param dispute_id The dispute.
    @param dispute Its state.
    @param reason One of the `CANCEL_*` codes.
    """
    self.disputes[dispute_id].status = CANCELLED
    self.disputed[dispute.receipt_digest] = 0
    self._records[dispute.agent_id].disputes -= 1
    self._credit(dispute.challenger, dispute.bond)
    log DisputeCancelled(dispute_id=dispute_id, agent_id=dispute.agent_id, reason=reason)
    extcall REGISTRY.release(dispute.agent_id)


@internal
def _credit(account: address, amount: uint256):
    """
    @dev Adds to an address's withdrawable balance; nothing when zero.
    @param account Who.
    @param amount How much.
    """
    if amount == 0:
        return
    balance: uint256 = self.balances[account] + amount
    self.balances[account] = balance
    log Credited(account=account, amount=amount, balance=balance)


@internal
def _unlist(validator: address):
    """
    @dev Removes a validator from the drawable list (swap with the last).
    @param validator The validator (listed).
    """
    count: uint256 = len(self._pool)
    for i: uint256 in range(count, bound=MAX_VALIDATORS):
        if self._pool[i] == validator:
            self._pool[i] = self._pool[count - 1]
            self._pool.pop()
            break
    self.validators[validator].listed = False


@internal
@view
def _request_hash(dispute_id: uint256, validator: address) -> bytes32:
    """
    @dev The ERC-8004 request hash of one drawn validator of a dispute.
    @param dispute_id The dispute.
    @param validator The validator.
    @return bytes32 keccak256(abi_encode(this contract, dispute_id, validator)).
    """
    return keccak256(abi_encode(self, dispute_id, validator))


@internal
@pure
def _commitment(dispute_id: uint256, verdict: uint8, salt: bytes32, validator: address) -> bytes32:
    """
    @dev A validator's commitment to a verdict.
    @param dispute_id The dispute.
    @param verdict The verdict.
    @param salt Its secret salt.
    @param validator The validator.
    @return bytes32 keccak256(abi_encode(dispute_id, verdict, salt, validator)).
    """
    return keccak256(abi_encode(dispute_id, verdict, salt, validator))
