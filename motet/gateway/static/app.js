// The gateway's signing page: the browser wallet (EIP-1193, window.ethereum) signs a Delegation and a TaskOrder
// with eth_signTypedData_v4; the gateway checks them, runs the task and streams its progress here.
// No build step: plain ES modules, amounts as BigInt wei.

const $ = (selector) => document.querySelector(selector);
const GWEI = 10n ** 9n;

const state = { config: null, account: null, delegation: null };

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    headers: { "Content-Type": "application/json" },
    ...options,
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${path} answered ${response.status}`);
  return body;
}

function toWei(gwei) {
  const text = String(gwei).trim();
  if (!/^\d+(\.\d{1,9})?$/.test(text)) throw new Error(`"${text}" is not an amount in gwei`);
  const [whole, fraction = ""] = text.split(".");
  return BigInt(whole) * GWEI + BigInt(fraction.padEnd(9, "0"));
}

function formatGwei(wei) {
  const value = BigInt(wei);
  const whole = value / GWEI;
  const fraction = (value % GWEI).toString().padStart(9, "0").replace(/0+$/, "");
  return `${whole.toLocaleString("en")}${fraction ? "." + fraction : ""} gwei`;
}

function short(hex) {
  return hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex;
}

function relative(seconds, now) {
  const delta = seconds - now;
  const minutes = Math.round(Math.abs(delta) / 60);
  const span = minutes >= 90 ? `${Math.round(minutes / 60)} h` : `${minutes} min`;
  return delta >= 0 ? `in ${span}` : `${span} ago`;
}

function nonce() {
  return (BigInt(Date.now()) * 1000000n + BigInt(Math.floor(Math.random() * 1e6))).toString();
}

function typedData(primaryType, message) {
  const { config } = state;
  return {
    types: {
      EIP712Domain: [
        { name: "name", type: "string" },
        { name: "version", type: "string" },
        { name: "chainId", type: "uint256" },
        { name: "verifyingContract", type: "address" },
      ],
      [primaryType]: config.types[primaryType],
    },
    primaryType,
    domain: config.domain,
    message,
  };
}

async function signTyped(data) {
  return window.ethereum.request({
    method: "eth_signTypedData_v4",
    params: [state.account, JSON.stringify(data)],
  });
}

function selectedWorkflow() {
  return state.config.workflows.find((w) => w.name === $("#workflow").value);
}

// -- rendering -----------------------------------------------------------------------------------------

function renderConfig() {
  const { config } = state;
  $("#network").textContent =
    `chain ${config.chainId} · channels ${short(config.contract)} · session key ${config.sessionKey}`;
  const select = $("#workflow");
  select.replaceChildren(
    ...config.workflows.map((w) => new Option(`${w.name} (worst case ${formatGwei(w.worstCase)})`, w.name)),
  );
  const capabilities = [...new Set(config.workflows.flatMap((w) => w.capabilities))].sort();
  $("#capabilities").replaceChildren(
    ...capabilities.map((name) => {
      const label = document.createElement("label");
      const box = Object.assign(document.createElement("input"), { type: "checkbox", value: name, checked: true });
      label.append(box, name);
      return label;
    }),
  );
  renderWorkflow();
}

function renderWorkflow() {
  const workflow = selectedWorkflow();
  if (!workflow) return;
  $("#plan").textContent = workflow.nodes
    .map((n) => `${n.id}: ${n.capability}${n.after.length ? ` after ${n.after.join(", ")}` : ""}`)
    .join("\n");
  $("#inputs").replaceChildren(
    ...workflow.inputs.map((field) => {
      const label = document.createElement("label");
      const area = Object.assign(document.createElement("textarea"), { name: `input-${field.name}`, required: true });
      label.append(`${field.name}${field.description ? ` — ${field.description}` : ""}`, area);
      return label;
    }),
  );
  const worst = BigInt(workflow.worstCase);
  if (!$("#budget").value) $("#budget").value = (worst / GWEI).toString();
  if (!$("#cap").value) $("#cap").value = ((worst * 5n) / GWEI).toString();
}

async function renderAccount() {
  const info = await api(`/api/accounts/${state.account}`);
  $("#account").hidden = false;
  $("#address").textContent = state.account;
  $("#balance").textContent = formatGwei(info.balance);
  const rows = info.delegations.map((d) => {
    const row = document.createElement("tr");
    row.dataset.delegation = d.id;
    for (const text of [short(d.id), formatGwei(d.cap), formatGwei(d.spent), relative(d.expiry, info.now), d.status]) {
      row.append(Object.assign(document.createElement("td"), { textContent: text }));
    }
    const cell = document.createElement("td");
    if (!d.revoked && d.expiry > info.now) {
      const button = Object.assign(document.createElement("button"), { type: "button", className: "revoke", textContent: "Revoke" });
      button.addEventListener(
        "click",
        guard(async () => {
          await sendFromWallet({ function: "revoke", delegation: d.id }, `revoking delegation ${short(d.id)}`);
          $("#tx-status").textContent +=
            " No new channel opens under it; money already placed in channels stays payable to those agents.";
        }),
      );
      cell.append(button);
    }
    row.append(cell);
    return row;
  });
  $("#delegations tbody").replaceChildren(...rows);
  $("#delegations").hidden = rows.length === 0;
  return info;
}

// -- transactions the wallet sends: deposit, withdraw, revoke ---------------------------------------------

async function sendFromWallet(call, what) {
  showError("");
  const status = $("#tx-status");
  const tx = await api("/api/calls", { method: "POST", body: JSON.stringify(call) });
  status.textContent = `${what}: confirm the transaction in your wallet…`;
  const hash = await window.ethereum.request({
    method: "eth_sendTransaction",
    params: [{ from: state.account, to: tx.to, data: tx.data, value: tx.value }],
  });
  status.textContent = `${what}: transaction ${short(hash)} sent, waiting for it to be mined…`;
  for (let waited = 0; ; waited += 1) {
    const mined = await api(`/api/transactions/${hash}`);
    if (mined.status === "success") break;
    if (mined.status === "reverted") throw new Error(`${what}: transaction ${hash} reverted on chain`);
    if (waited >= 300) throw new Error(`${what}: transaction ${hash} is not mined after 5 minutes; check your wallet`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  status.textContent = `${what}: done in transaction ${short(hash)}.`;
  await renderAccount();
}

async function moveFunds(event) {
  event.preventDefault();
  const action = event.submitter ? event.submitter.value : "deposit";
  const amount = toWei($("#amount").value);
  const what = `${action === "deposit" ? "depositing" : "withdrawing"} ${formatGwei(amount)}`;
  await sendFromWallet({ function: action, amount: amount.toString() }, what);
}

// -- the three steps ------------------------------------------------------------------------------------

async function connect() {
  showError("");
  if (!window.ethereum) {
    showError("No browser wallet found: install one (it provides window.ethereum) and reload this page.");
    return;
  }
  const [account] = await window.ethereum.request({ method: "eth_requestAccounts" });
  await ensureChain();
  state.account = account;
  await renderAccount();
  $("#funds-form").hidden = false;
  $("#connect").textContent = "Connected";
  $("#step-delegation").classList.remove("locked");
  $("#sign-delegation").disabled = false;
  previewDelegation();
}

// Signatures are bound to the chain: ask the wallet to switch to the gateway's (EIP-3326), adding it first
// (EIP-3085) when the wallet does not know it and the gateway names an RPC URL for it.
async function ensureChain() {
  const want = BigInt(state.config.chainId);
  const active = async () => BigInt(await window.ethereum.request({ method: "eth_chainId" }));
  let have = await active();
  if (have === want) return;
  const wrong = (why) =>
    new Error(`Your wallet is on chain ${have}, the gateway on chain ${want}${why}. Signatures are bound to the chain: switch networks in the wallet, then connect again.`);
  const chainId = `0x${want.toString(16)}`;
  try {
    await window.ethereum.request({ method: "wallet_switchEthereumChain", params: [{ chainId }] });
  } catch (error) {
    if (error.code !== 4902) throw wrong(` (the switch failed: ${error.message})`);
    if (!state.config.rpcUrl) {
      throw wrong(": your wallet does not know it, and this gateway's chain is in-process (embedded), out of any wallet's reach; start the gateway with --chain anvil");
    }
    await window.ethereum.request({
      method: "wallet_addEthereumChain",
      params: [{
        chainId,
        chainName: `motet chain ${want}`,
        rpcUrls: [state.config.rpcUrl],
        nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
      }],
    });
  }
  have = await active();
  if (have !== want) throw wrong("");
}

// A wallet that changes account or network mid-way invalidates what the page shows: connect again.
function walletChanged() {
  if (!state.account) return;
  state.account = null;
  state.delegation = null;
  $("#connect").textContent = "Connect wallet";
  for (const step of ["#step-delegation", "#step-order"]) $(step).classList.add("locked");
  $("#sign-delegation").disabled = true;
  $("#run").disabled = true;
  $("#funds-form").hidden = true;
  showError("Your wallet changed its account or network: connect again.");
}

function delegationMessage() {
  const { config } = state;
  const hours = Number($("#hours").value);
  const capabilities = [...document.querySelectorAll("#capabilities input:checked")].map((box) => box.value);
  if (capabilities.length === 0) throw new Error("Choose at least one capability the delegation may pay for.");
  return {
    delegator: state.account,
    sessionKey: config.sessionKey,
    asset: config.asset,
    cap: toWei($("#cap").value).toString(),
    validAfter: String(config.now - 60),
    expiry: String(config.now + hours * 3600),
    capabilities,
    nonce: nonce(),
  };
}

function previewDelegation() {
  try {
    const message = delegationMessage();
    $("#delegation-preview").textContent = JSON.stringify(message, null, 2);
    explainDelegation(message);
  } catch (error) {
    $("#delegation-preview").textContent = error.message;
    $("#delegation-meaning").replaceChildren();
  }
}

// What the signature allows, in words: the rules the channels contract enforces (docs/gateway.md).
function explainDelegation(message) {
  const hours = Math.round((Number(message.expiry) - state.config.now) / 360) / 10;
  const capabilities = message.capabilities.includes("*") ? "any capability" : message.capabilities.join(", ");
  const lines = [
    `The session key ${short(message.sessionKey)} may place up to ${formatGwei(message.cap)} of your balance in ` +
      "payment channels, in total over all of them. The cap counts money placed in channels, not only what " +
      "is paid: what a channel holds unspent comes back to your balance when it settles.",
    `Only agents registered for ${capabilities} can be paid, never the session key itself.`,
    `For ${hours} h from now (until ${new Date(Number(message.expiry) * 1000).toLocaleString()}). ` +
      "After that, or once you revoke it, no channel opens and none is topped up; money already placed in " +
      "a channel stays payable to that agent for the work it delivered.",
  ];
  $("#delegation-meaning").replaceChildren(
    ...lines.map((text) => Object.assign(document.createElement("li"), { textContent: text })),
  );
}

async function signDelegation(event) {
  event.preventDefault();
  showError("");
  state.config = await api("/api/config"); // fresh chain time for the window
  const data = typedData("Delegation", delegationMessage());
  $("#delegation-preview").textContent = JSON.stringify(data.message, null, 2);
  $("#delegation-status").textContent = "waiting for your wallet…";
  const signature = await signTyped(data);
  $("#delegation-status").textContent = "registering the delegation on chain…";
  const registered = await api("/api/delegations", {
    method: "POST",
    body: JSON.stringify({ typedData: data, signature }),
  });
  state.delegation = { typedData: data, signature, id: registered.id };
  $("#delegation-status").innerHTML = "";
  $("#delegation-status").append(
    "Delegation ",
    Object.assign(document.createElement("code"), { id: "delegation-id", textContent: registered.id }),
    registered.tx ? ` registered (transaction ${short(registered.tx)}).` : " already registered.",
  );
  await renderAccount();
  $("#step-order").classList.remove("locked");
  $("#run").disabled = false;
}

function orderMessage() {
  const workflow = selectedWorkflow();
  const inputs = {};
  for (const field of workflow.inputs) {
    inputs[field.name] = document.querySelector(`[name="input-${field.name}"]`).value;
  }
  const deadline = state.config.now + Number($("#minutes").value) * 60;
  const expiry = Number(state.delegation.typedData.message.expiry);
  if (deadline > expiry) {
    throw new Error(
      `The deadline is after the delegation's expiry (${relative(expiry, state.config.now)}): ` +
        "no channel opens under an expired delegation. Choose an earlier deadline, or sign a new delegation.",
    );
  }
  return {
    delegation: state.delegation.id,
    workflow: workflow.name,
    goal: "",
    inputs: JSON.stringify(inputs),
    budget: toWei($("#budget").value).toString(),
    deadline: String(deadline),
    nonce: nonce(),
  };
}

async function run(event) {
  event.preventDefault();
  showError("");
  state.config = await api("/api/config");
  const data = typedData("TaskOrder", orderMessage());
  $("#order-preview").textContent = JSON.stringify(data.message, null, 2);
  const signature = await signTyped(data);
  $("#run").disabled = true;
  const accepted = await api("/api/orders", {
    method: "POST",
    body: JSON.stringify({
      delegation: { typedData: state.delegation.typedData, signature: state.delegation.signature },
      order: { typedData: data, signature },
    }),
  });
  follow(accepted);
}

function progressRow(node) {
  let row = document.querySelector(`#progress tr[data-node="${node}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.node = node;
    for (let i = 0; i < 5; i += 1) row.append(document.createElement("td"));
    row.cells[0].textContent = node;
    $("#progress tbody").append(row);
  }
  return row;
}

function follow(accepted) {
  $("#step-progress").hidden = false;
  $("#run-status").textContent = `order ${accepted.id} accepted: running…`;
  const events = new EventSource(accepted.events);
  const on = (name, handler) => events.addEventListener(name, (e) => handler(JSON.parse(e.data)));
  on("node_started", (e) => {
    const row = progressRow(e.node);
    row.cells[1].textContent = e.capability;
    row.cells[2].textContent = e.agent;
    row.cells[4].textContent = "running";
  });
  on("token", (e) => {
    $("#tokens").textContent += e.text;
  });
  on("failover", (e) => {
    const row = progressRow(e.node);
    row.cells[4].textContent = `failed over: ${e.problem}`;
  });
  on("node_done", (e) => {
    const row = progressRow(e.node);
    row.cells[2].textContent = e.agent;
    row.cells[3].textContent = formatGwei(e.price);
    row.cells[4].textContent = "done";
    row.cells[4].className = "done";
  });
  on("run_done", (e) => {
    $("#run-status").textContent = `finished: spent ${formatGwei(e.spent)} of ${formatGwei(e.budget)}; settling…`;
  });
  on("result", (result) => {
    events.close();
    $("#run-status").textContent = "done";
    $("#run-status").className = "done";
    showResult(result);
    renderAccount();
  });
  on("failed", (result) => {
    events.close();
    $("#run-status").textContent = "failed";
    $("#run-status").className = "failed";
    showError(`The run failed: ${result.error}`);
    showResult(result);
  });
  events.onerror = () => {
    if (events.readyState === EventSource.CLOSED) return;
    // The stream ended without a result (gateway restarted): the order's state is still kept.
    events.close();
    api(`/api/orders/${accepted.id}`).then(showResult, (error) => showError(error.message));
  };
}

function showResult(result) {
  $("#result").hidden = false;
  const outputs = result.outputs || {};
  $("#outputs").replaceChildren(
    ...Object.entries(outputs).map(([node, output]) => {
      const block = document.createElement("div");
      block.append(
        Object.assign(document.createElement("h3"), { textContent: node }),
        Object.assign(document.createElement("pre"), {
          className: "output",
          textContent: Object.values(output).length === 1 ? String(Object.values(output)[0]) : JSON.stringify(output, null, 2),
        }),
      );
      return block;
    }),
  );
  $("#receipts tbody").replaceChildren(
    ...(result.receipts || []).map((r) => {
      const row = document.createElement("tr");
      for (const text of [r.node, r.agent, short(r.request_hash), short(r.response_hash)]) {
        row.append(Object.assign(document.createElement("td"), { textContent: text }));
      }
      return row;
    }),
  );
  const settlement = result.settlement;
  const items = settlement
    ? [
        ["paid", formatGwei(settlement.paid)],
        ["paid calls", String(settlement.paidCalls)],
        ["gas", settlement.gasUsed.toLocaleString("en")],
        ["transactions", settlement.txs.join("\n")],
      ]
    : [["settlement", "nothing was owed"]];
  $("#settlement").replaceChildren(
    ...items.flatMap(([term, value]) => [
      Object.assign(document.createElement("dt"), { textContent: term }),
      Object.assign(document.createElement("dd"), { textContent: value, className: term.replace(" ", "-") }),
    ]),
  );
}

// -- wiring ---------------------------------------------------------------------------------------------

function guard(handler) {
  return (event) =>
    Promise.resolve(handler(event)).catch((error) => {
      showError(error.message || String(error));
      $("#delegation-status").textContent = "";
      $("#tx-status").textContent = "";
      if (state.delegation) $("#run").disabled = false;
    });
}

async function start() {
  state.config = await api("/api/config");
  renderConfig();
  $("#connect").addEventListener("click", guard(connect));
  $("#delegation-form").addEventListener("submit", guard(signDelegation));
  $("#delegation-form").addEventListener("input", previewDelegation);
  $("#order-form").addEventListener("submit", guard(run));
  $("#funds-form").addEventListener("submit", guard(moveFunds));
  if (window.ethereum && window.ethereum.on) {
    window.ethereum.on("accountsChanged", walletChanged);
    window.ethereum.on("chainChanged", walletChanged);
  }
  $("#workflow").addEventListener("change", renderWorkflow);
  document.body.dataset.ready = "true";
}

start().catch((error) => showError(`The gateway did not answer: ${error.message}`));
