# pragma version ~=0.4.3
"""
@title motet deployer
@custom:contract-name Deployer
@license MIT
@notice Creates one agent registry together with the payment channels and
        the validation contract bound to it, in one transaction, and names
        that validation contract as the registry's slasher.

        Every party on a chain finds the same contracts without sharing
        files (docs/protocol.md, "Where the contracts live"): this contract
        and the blueprints it creates from live at CREATE2 addresses of the
        standard deterministic-deployment proxy, and `deploy` creates with
        CREATE2 too, so the three addresses follow from the code and the
        settings alone.

        Wiring: the registry's `ownable` owner (the only account that may
        call `set_validation`, once) is this contract, which calls it only
        in `deploy`, with the validation contract it has just created for
        that registry. No one else can name a slasher, and calling `deploy`
        first (say, to front-run motet) creates exactly the contracts motet
        would have created, at the same addresses.
"""


# @dev What this contract asks of the agent registry.
interface AgentRegistry:
    def set_validation(validation: address): nonpayable


# @dev The blueprints (ERC-5202) of the three contracts.
REGISTRY_BLUEPRINT: public(immutable(address))
CHANNELS_BLUEPRINT: public(immutable(address))
VALIDATION_BLUEPRINT: public(immutable(address))


# @dev The contracts' names and version, from which with the arguments of
# `deploy` their CREATE2 salts are made.
REGISTRY_NAME: constant(bytes32) = keccak256("motet/AgentRegistry/1")
CHANNELS_NAME: constant(bytes32) = keccak256("motet/PaymentChannels/1")
VALIDATION_NAME: constant(bytes32) = keccak256("motet/Validation/1")


# @dev Emitted once per `deploy`.
event Deployed:
    registry: indexed(address)
    channels: indexed(address)
    validation: indexed(address)


@deploy
def __init__(registry_blueprint: address, channels_blueprint: address, validation_blueprint: address):
    """
    @dev Binds the three blueprints.
    @param registry_blueprint The AgentRegistry blueprint.
    @param channels_blueprint The PaymentChannels blueprint.
    @param validation_blueprint The Validation blueprint.
    """
    assert registry_blueprint.is_contract, "deployer: registry blueprint is not a contract"
    assert channels_blueprint.is_contract, "deployer: channels blueprint is not a contract"
    assert validation_blueprint.is_contract, "deployer: validation blueprint is not a contract"
    REGISTRY_BLUEPRINT = registry_blueprint
    CHANNELS_BLUEPRINT = channels_blueprint
    VALIDATION_BLUEPRINT = validation_blueprint


@external
def deploy(
    unbonding_delay: uint256,
    challenge_period: uint256,
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
) -> address:
    """
    @dev Creates the registry (`unbonding_delay`), the channels paying its
         agents (`challenge_period`) and the validation contract (the
         dispute settings, motet.settings.DisputeSettings), and names the
         validation contract in the registry.
    @notice Anyone can call it; the same arguments always give the same
            three addresses, so a second call with them reverts. Each salt
            is `keccak256(name ++ keccak256(abi_encode(arguments)))`: the
            registry's address depends on every argument, not only on its
            own, so that other settings never collide with it.
    @return address The registry.
    """
    settings: bytes32 = keccak256(
        abi_encode(
            unbonding_delay,
            challenge_period,
            bond,
            slash_bps,
            reward_bps,
            validator_fee,
            validators_per_dispute,
            no_reveal_bps,
            minority_bps,
            min_validator_stake,
            commit_window,
            reveal_window,
        )
    )
    registry: address = create_from_blueprint(
        REGISTRY_BLUEPRINT, unbonding_delay, salt=keccak256(concat(REGISTRY_NAME, settings))
    )
    channels: address = create_from_blueprint(
        CHANNELS_BLUEPRINT, challenge_period, registry, salt=keccak256(concat(CHANNELS_NAME, settings))
    )
    validation: address = create_from_blueprint(
        VALIDATION_BLUEPRINT,
        registry,
        channels,
        bond,
        slash_bps,
        reward_bps,
        validator_fee,
        validators_per_dispute,
        no_reveal_bps,
        minority_bps,
        min_validator_stake,
        commit_window,
        reveal_window,
        salt=keccak256(concat(VALIDATION_NAME, settings)),
    )
    extcall AgentRegistry(registry).set_validation(validation)
    log Deployed(registry=registry, channels=channels, validation=validation)
    return registry
