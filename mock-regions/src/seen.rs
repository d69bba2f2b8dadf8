//! What model-carrying requests carried, so a test can check what a proxy
//! sent upstream (after rewriting `model`, say).

use std::collections::BTreeMap;

use bytes::Bytes;

/// Kept for every request to a model-carrying route once its body is read,
/// whether the model was served or refused.
#[derive(Default)]
pub(crate) struct Seen {
    last_model: Option<String>,
    last_body: Option<Bytes>,
    per_model: BTreeMap<String, u64>,
}

impl Seen {
    /// `model` is the name as received, `None` when the body named none; those
    /// are counted under "".
    pub fn record(&mut self, model: Option<&str>, body: &Bytes) {
        let name = model.unwrap_or_default();
        // Looked up before inserting so a name seen before costs no allocation.
        match self.per_model.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                self.per_model.insert(name.to_string(), 1);
            }
        }
        self.last_model = model.map(str::to_string);
        // A cheap reference-counted clone of the body already read.
        self.last_body = Some(body.clone());
    }

    pub fn last_model(&self) -> Option<String> {
        self.last_model.clone()
    }

    pub fn last_body(&self) -> Option<Bytes> {
        self.last_body.clone()
    }

    pub fn per_model(&self) -> BTreeMap<String, u64> {
        self.per_model.clone()
    }
}
