//! Finding notifier implementations by their `type` name.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::BuildError;
use crate::notifier::{Notifier, NotifierFactory};
use crate::table::Table;

/// The notifier types a program knows, by `type` name.
///
/// An ordinary value, never global state: each test builds its own.
#[derive(Debug, Clone)]
pub struct Registry {
    factories: BTreeMap<&'static str, NotifierFactory>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry with the core's built-in types ([`Registry::with_builtin`]).
    pub fn new() -> Self {
        Self::empty().with_builtin()
    }

    /// Adds the core's built-in types: `console`, `exec`, `file`. The one list of them.
    pub fn with_builtin(self) -> Self {
        self.with(crate::console::FACTORY)
            .with(crate::exec::FACTORY)
            .with(crate::file::FACTORY)
    }

    /// A registry with no types at all.
    pub fn empty() -> Self {
        Self {
            factories: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a type.
    pub fn with(mut self, factory: NotifierFactory) -> Self {
        self.factories.insert(factory.kind, factory);
        self
    }

    /// Adds every type registered with [`submit_notifier!`](crate::submit_notifier) by a linked crate.
    pub fn with_linked(mut self) -> Self {
        for f in inventory::iter::<NotifierFactory> {
            self.factories.insert(f.kind, *f);
        }
        self
    }

    /// The factory for `kind`.
    pub fn get(&self, kind: &str) -> Option<&NotifierFactory> {
        self.factories.get(kind)
    }

    /// The known type names, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.factories.keys().copied().collect()
    }

    /// Builds a notifier of type `kind` from `table`.
    ///
    /// # Errors
    /// A [`BuildError`] if the type is unknown or the factory rejects the table.
    pub fn build(&self, kind: &str, table: &Table) -> Result<Arc<dyn Notifier>, BuildError> {
        let f = self
            .get(kind)
            .ok_or_else(|| BuildError::key("type", format!("unknown notifier type {kind:?}")))?;
        (f.build)(table)
    }
}
