"""The agent's tab on disk: a tab written before idempotency keys were bound to their request still opens, and
its old deliveries still answer their keys."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from motet.agents._tab import Tab

OLD_SCHEMA = """
CREATE TABLE deliveries (
    chain_id INTEGER NOT NULL, contract TEXT NOT NULL, channel TEXT NOT NULL, seq INTEGER NOT NULL,
    price TEXT NOT NULL, total TEXT NOT NULL, receipt TEXT NOT NULL, delivered_at REAL NOT NULL,
    idempotency_key TEXT, answer TEXT NOT NULL, PRIMARY KEY (chain_id, contract, channel, seq)
);
"""


def test_a_tab_from_before_bound_keys_opens_and_answers(tmp_path: Path) -> None:
    path = tmp_path / "tab.sqlite"
    old = sqlite3.connect(path)
    old.executescript(OLD_SCHEMA)
    answer = {"output": {"echo": "hi"}, "receipt": {}}
    old.execute(
        "INSERT INTO deliveries VALUES (1, '0xC', '0x7', 1, '5', '5', '{}', 0, 'k', ?)", (json.dumps(answer),)
    )
    old.commit()
    old.close()
    tab = Tab(path, 1, "0xC")
    assert tab.answer(7, "k") == (None, answer)  # unbound: any request under the key gets it, as before
    tab.record(7, 2, 5, 10, "k2", "0xabc", answer)
    assert tab.answer(7, "k2") == ("0xabc", answer)
    assert tab.last(7) == (2, 10)
    tab.close()
