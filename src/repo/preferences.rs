//! This location's placement preferences (its groups, its preferred-content
//! expression) and the repository-wide numcopies: read from and written to
//! the node records of the replicated state, so every location knows every
//! other's (issue 13).

use std::time::{SystemTime, UNIX_EPOCH};

use super::Repo;
use crate::error::{Error, Result};
use crate::model::{self, NumCopiesSetting, Preferences, MAX_GROUPS, MAX_NUMCOPIES};

impl Repo {
    /// The numcopies in force ([`model::numcopies`] over every known node
    /// record): 1 unless some location set it.
    pub fn numcopies(&self) -> Result<u32> {
        Ok(model::numcopies(&self.store().nodes()?))
    }

    /// Sets the repository-wide numcopies, as of now by this machine's
    /// clock (the latest setting anywhere wins).
    pub fn set_numcopies(&mut self, copies: u32) -> Result<()> {
        if !(1..=MAX_NUMCOPIES).contains(&copies) {
            return Err(Error::BadNumCopies(copies));
        }
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.update_preferences(|p| p.numcopies = Some(NumCopiesSetting { copies, at_ms }))
    }

    /// Puts this location in `group`; false if it was already.
    pub fn add_group(&mut self, group: &str) -> Result<bool> {
        check_group(group)?;
        let groups = self.preferences()?.groups;
        if groups.contains(group) {
            return Ok(false);
        }
        if groups.len() >= MAX_GROUPS {
            return Err(Error::TooManyGroups);
        }
        self.update_preferences(|p| {
            p.groups.insert(group.to_owned());
        })?;
        Ok(true)
    }

    /// Takes this location out of `group`; false if it was not in it.
    pub fn remove_group(&mut self, group: &str) -> Result<bool> {
        check_group(group)?;
        let mut removed = false;
        self.update_preferences(|p: &mut Preferences| removed = p.groups.remove(group))?;
        Ok(removed)
    }
}

fn check_group(group: &str) -> Result<()> {
    if model::preferred::is_group_name(group) {
        Ok(())
    } else {
        Err(Error::BadGroup(group.to_owned()))
    }
}
