"""The money path under the composer: register an agent, find it, pay it per call, settle on chain."""

from motet import Chain, Registry
from motet.payments import ChannelClient

chain = Chain.embedded()  # an in-process EVM with funded dev accounts
registry = Registry(chain)
operator, user = chain.accounts[1], chain.accounts[0]
registry.register("https://example.com/agent.json", ["summarize"], price=10**12, stake=10**18, owner=operator)
(agent,) = registry.search("summarize", max_price=10**13)

payer = ChannelClient(chain, user)
channel = payer.open(agent.payout, deposit=100 * agent.price)
voucher = payer.pay(channel.channel_id, agent.price)  # off chain: one signature, no gas

payee = ChannelClient(chain, operator)
payee.receive(voucher)  # verified against the channel's state on chain
(redemption,) = payee.redeem()  # one transaction redeems every channel
print(f"agent #{agent.agent_id} paid {redemption.paid} wei for {redemption.gas_used} gas")
