//! Presence state of one topic, replicated on every node from the diffs on the bus.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Owner;

/// A presence change as it travels on the bus: metas joined and left, by presence key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PresenceMsg {
    pub topic: String,
    pub owner: Option<Owner>,
    #[serde(default)]
    pub joins: HashMap<String, Vec<Value>>,
    #[serde(default)]
    pub leaves: HashMap<String, Vec<Value>>,
}

/// Who is present on one topic: key → metas (each with its `phx_ref`) and their owner.
#[derive(Debug, Default)]
pub(crate) struct PresenceTable {
    entries: HashMap<String, Vec<(Owner, Value)>>,
}

fn phx_ref(meta: &Value) -> Option<&str> {
    meta.get("phx_ref").and_then(Value::as_str)
}

fn metas(map: HashMap<String, Vec<Value>>) -> Value {
    Value::Object(
        map.into_iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(k, m)| (k, json!({ "metas": m })))
            .collect(),
    )
}

impl PresenceTable {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `presence_state` payload.
    pub(crate) fn state(&self) -> Value {
        let mut out = Map::new();
        for (key, entries) in &self.entries {
            let metas: Vec<Value> = entries.iter().map(|(_, m)| m.clone()).collect();
            out.insert(key.clone(), json!({ "metas": metas }));
        }
        Value::Object(out)
    }

    /// Applies a diff; returns the `presence_diff` payload of what actually changed.
    pub(crate) fn apply(&mut self, msg: &PresenceMsg) -> Option<Value> {
        let owner = msg.owner?;
        let mut left: HashMap<String, Vec<Value>> = HashMap::new();
        for (key, metas) in &msg.leaves {
            let Some(entries) = self.entries.get_mut(key) else {
                continue;
            };
            for meta in metas {
                let Some(r) = phx_ref(meta) else { continue };
                if let Some(pos) = entries
                    .iter()
                    .position(|(o, m)| *o == owner && phx_ref(m) == Some(r))
                {
                    let (_, removed) = entries.remove(pos);
                    left.entry(key.clone()).or_default().push(removed);
                }
            }
            if entries.is_empty() {
                self.entries.remove(key);
            }
        }
        let mut joined: HashMap<String, Vec<Value>> = HashMap::new();
        for (key, metas) in &msg.joins {
            for meta in metas {
                let Some(r) = phx_ref(meta) else { continue };
                // Idempotent: an entry already known (a sync answer) changes nothing.
                let known = self
                    .entries
                    .get(key)
                    .is_some_and(|e| e.iter().any(|(o, m)| *o == owner && phx_ref(m) == Some(r)));
                if known {
                    continue;
                }
                self.entries
                    .entry(key.clone())
                    .or_default()
                    .push((owner, meta.clone()));
                joined.entry(key.clone()).or_default().push(meta.clone());
            }
        }
        if left.is_empty() && joined.is_empty() {
            return None;
        }
        Some(json!({ "joins": metas(joined), "leaves": metas(left) }))
    }

    /// Removes every entry of `node`; returns the `presence_diff` payload, if any.
    pub(crate) fn remove_node(&mut self, node: uuid::Uuid) -> Option<Value> {
        let mut left: HashMap<String, Vec<Value>> = HashMap::new();
        for (key, entries) in &mut self.entries {
            entries.retain(|(owner, meta)| {
                let gone = owner.node == node;
                if gone {
                    left.entry(key.clone()).or_default().push(meta.clone());
                }
                !gone
            });
        }
        self.entries.retain(|_, entries| !entries.is_empty());
        (!left.is_empty()).then(|| json!({ "joins": {}, "leaves": metas(left) }))
    }

    /// The entries of connections on `node`, as join messages (one per connection).
    pub(crate) fn joins_of_node(&self, topic: &str, node: uuid::Uuid) -> Vec<PresenceMsg> {
        let mut by_owner: HashMap<Owner, HashMap<String, Vec<Value>>> = HashMap::new();
        for (key, entries) in &self.entries {
            for (owner, meta) in entries.iter().filter(|(o, _)| o.node == node) {
                by_owner
                    .entry(*owner)
                    .or_default()
                    .entry(key.clone())
                    .or_default()
                    .push(meta.clone());
            }
        }
        by_owner
            .into_iter()
            .map(|(owner, joins)| PresenceMsg {
                topic: topic.to_owned(),
                owner: Some(owner),
                joins,
                leaves: HashMap::new(),
            })
            .collect()
    }

    /// Everything `owner` tracks here, as a leave diff.
    pub(crate) fn leaves_of(&self, topic: &str, owner: Owner) -> Option<PresenceMsg> {
        let mut leaves: HashMap<String, Vec<Value>> = HashMap::new();
        for (key, entries) in &self.entries {
            for (o, meta) in entries {
                if *o == owner {
                    leaves.entry(key.clone()).or_default().push(meta.clone());
                }
            }
        }
        (!leaves.is_empty()).then(|| PresenceMsg {
            topic: topic.to_owned(),
            owner: Some(owner),
            joins: HashMap::new(),
            leaves,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_then_leave_produces_diffs_and_state() {
        let owner = Owner {
            node: uuid::Uuid::nil(),
            conn: 1,
        };
        let other = Owner {
            node: uuid::Uuid::nil(),
            conn: 2,
        };
        let mut table = PresenceTable::default();
        let meta = json!({"phx_ref": "r1", "name": "a"});
        let join = PresenceMsg {
            topic: "t".into(),
            owner: Some(owner),
            joins: HashMap::from([("k".into(), vec![meta.clone()])]),
            leaves: HashMap::new(),
        };
        let diff = table.apply(&join).unwrap();
        assert_eq!(
            diff,
            json!({"joins": {"k": {"metas": [meta]}}, "leaves": {}})
        );
        assert_eq!(table.state(), json!({"k": {"metas": [meta]}}));
        // Another connection cannot remove it.
        let mut forged = table.leaves_of("t", owner).unwrap();
        forged.owner = Some(other);
        assert!(table.apply(&forged).is_none());
        let leave = table.leaves_of("t", owner).unwrap();
        let diff = table.apply(&leave).unwrap();
        assert_eq!(diff["leaves"]["k"]["metas"][0]["phx_ref"], "r1");
        assert!(table.is_empty());
        assert!(table.leaves_of("t", owner).is_none());
    }
}
