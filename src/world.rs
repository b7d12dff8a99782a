//! Worlds: a whole hierarchy with its credit, as a file or generated, for bulk import.
//!
//! A world file is JSON: four lists (distributors, second-level resellers, resellers,
//! customers), each entry with its UIN, its parent where it has one, an optional name, and
//! its credit as a decimal string (a partner's credit line, a second-level reseller's pool,
//! a customer's allocated total). Importing a world restores a state; it is not a series of
//! allocations, so it writes no allocation history.
//!
//! Invariant: [`World::to_accounts`] accepts a world only if every parent is in it with the
//! right kind, every UIN is unique, every amount is valid money, and no partner has given
//! more than it has: it is all or nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::{
    Account, AccountKind, CustomerCredit, Money, PartnerCredit, PoolCredit, Profile, Role, Timestamp, Uin,
};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    #[serde(default)]
    pub distributors: Vec<PartnerEntry>,
    #[serde(default)]
    pub second_level_resellers: Vec<SubAgentEntry>,
    #[serde(default)]
    pub resellers: Vec<PartnerEntry>,
    #[serde(default)]
    pub customers: Vec<CustomerEntry>,
}

/// A distributor or a reseller, with its credit line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerEntry {
    pub uin: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub credit: Decimal,
}

/// A second-level reseller, with the pool its distributor gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubAgentEntry {
    pub uin: u64,
    pub distributor: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub credit: Decimal,
}

/// A customer of a reseller or second-level reseller, with its allocated credit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerEntry {
    pub uin: u64,
    pub parent: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub credit: Decimal,
}

/// Why a world cannot be imported.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    #[error("UIN {0} appears more than once")]
    DuplicateUin(u64),
    #[error("{kind} {uin}: parent {parent} is not {expected} of this world")]
    BadParent { kind: &'static str, uin: u64, parent: u64, expected: &'static str },
    #[error("UIN {uin}: credit {credit} is not valid: {reason}")]
    BadCredit { uin: u64, credit: Decimal, reason: String },
    #[error("UIN {uin} gives {given} but has only {total}")]
    OverAllocated { uin: u64, given: Money, total: Money },
}

/// Why a world file cannot be read or written, and which file.
///
/// Each message carries the underlying error's own text, and the underlying error is a
/// field rather than a `source`: a caller printing the whole chain (`{:#}` in anyhow) would
/// otherwise print it twice.
#[derive(Debug, thiserror::Error)]
pub enum WorldFileError {
    #[error("reading {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{}: not a world file: {error}", path.display())]
    NotAWorld { path: PathBuf, error: serde_json::Error },
    /// Serializing the world failed (which a world of valid entries never does).
    #[error("{error}")]
    Encode { error: serde_json::Error },
    #[error("writing {}: {error}", path.display())]
    Write { path: PathBuf, error: std::io::Error },
}

/// The shape of a generated world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorldSpec {
    pub distributors: usize,
    pub sub_agents_per_distributor: usize,
    pub resellers: usize,
    pub customers: usize,
    /// Each customer's allocated credit.
    pub customer_credit: Money,
    /// All customers under the first reseller, which every purchase then charges.
    pub hot_partner: bool,
    /// Names for every account (off by default: generated worlds are for load).
    pub names: bool,
    pub seed: u64,
}

impl Default for WorldSpec {
    /// The world of `partner-credit load`: 10 distributors with 10 second-level resellers
    /// each, 100 resellers, 100,000 customers, half under resellers and half under
    /// second-level resellers.
    fn default() -> WorldSpec {
        WorldSpec {
            distributors: 10,
            sub_agents_per_distributor: 10,
            resellers: 100,
            customers: 100_000,
            customer_credit: Money::from_units(1000),
            hot_partner: false,
            names: false,
            seed: 1,
        }
    }
}

pub const DISTRIBUTOR_UIN_BASE: u64 = 1_000_000;
pub const SUB_AGENT_UIN_BASE: u64 = 2_000_000;
pub const RESELLER_UIN_BASE: u64 = 3_000_000;
pub const CUSTOMER_UIN_BASE: u64 = 10_000_000;

impl World {
    /// Reads a world file.
    pub fn load(path: &Path) -> Result<World, WorldFileError> {
        let text = std::fs::read(path).map_err(|error| WorldFileError::Read { path: path.into(), error })?;
        serde_json::from_slice(&text).map_err(|error| WorldFileError::NotAWorld { path: path.into(), error })
    }

    /// Writes a world file.
    pub fn save(&self, path: &Path) -> Result<(), WorldFileError> {
        let text = serde_json::to_vec(self).map_err(|error| WorldFileError::Encode { error })?;
        std::fs::write(path, text).map_err(|error| WorldFileError::Write { path: path.into(), error })
    }

    /// Generates a world in which every partner's credit covers exactly what its customers
    /// hold, so purchases are refused only when a customer runs out.
    pub fn generate(spec: &WorldSpec) -> World {
        let mut rng = SmallRng::seed_from_u64(spec.seed);
        let name = |prefix: &str, index: usize| spec.names.then(|| format!("{prefix}-{index}"));
        let credit = spec.customer_credit.as_decimal();
        let sub_agent_count = spec.distributors * spec.sub_agents_per_distributor;
        let mut reseller_credit = vec![Decimal::ZERO; spec.resellers];
        let mut pool_credit = vec![Decimal::ZERO; sub_agent_count];
        let mut customers = Vec::with_capacity(spec.customers);
        for index in 0..spec.customers {
            let under_reseller = spec.hot_partner || sub_agent_count == 0 || index % 2 == 0;
            let parent = if spec.hot_partner {
                reseller_credit[0] += credit;
                RESELLER_UIN_BASE
            } else if under_reseller {
                let reseller = rng.gen_range(0..spec.resellers.max(1));
                reseller_credit[reseller] += credit;
                RESELLER_UIN_BASE + reseller as u64
            } else {
                let sub_agent = rng.gen_range(0..sub_agent_count);
                pool_credit[sub_agent] += credit;
                SUB_AGENT_UIN_BASE + sub_agent as u64
            };
            customers.push(CustomerEntry {
                uin: CUSTOMER_UIN_BASE + index as u64,
                parent,
                name: name("customer", index),
                credit,
            });
        }
        let second_level_resellers = (0..sub_agent_count)
            .map(|index| SubAgentEntry {
                uin: SUB_AGENT_UIN_BASE + index as u64,
                distributor: DISTRIBUTOR_UIN_BASE + (index / spec.sub_agents_per_distributor) as u64,
                name: name("sub-agent", index),
                credit: pool_credit[index],
            })
            .collect::<Vec<_>>();
        let distributors = (0..spec.distributors)
            .map(|index| PartnerEntry {
                uin: DISTRIBUTOR_UIN_BASE + index as u64,
                name: name("distributor", index),
                credit: second_level_resellers
                    .iter()
                    .filter(|sub_agent| sub_agent.distributor == DISTRIBUTOR_UIN_BASE + index as u64)
                    .map(|sub_agent| sub_agent.credit)
                    .sum(),
            })
            .collect();
        let resellers = (0..spec.resellers)
            .map(|index| PartnerEntry {
                uin: RESELLER_UIN_BASE + index as u64,
                name: name("reseller", index),
                credit: reseller_credit[index],
            })
            .collect();
        World { distributors, second_level_resellers, resellers, customers }
    }

    pub fn customer_uins(&self) -> Vec<Uin> {
        self.customers.iter().map(|customer| Uin(customer.uin)).collect()
    }

    pub fn len(&self) -> usize {
        self.distributors.len()
            + self.second_level_resellers.len()
            + self.resellers.len()
            + self.customers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks the world and turns it into accounts, created at `now`.
    pub fn to_accounts(&self, now: Timestamp) -> Result<Vec<Account>, WorldError> {
        let mut accounts: Vec<Account> = Vec::with_capacity(self.len());
        let mut index_of: HashMap<u64, usize> = HashMap::with_capacity(self.len());
        let mut add = |account: Account, name: &Option<String>, accounts: &mut Vec<Account>| {
            let uin = account.uin.0;
            if index_of.insert(uin, accounts.len()).is_some() {
                return Err(WorldError::DuplicateUin(uin));
            }
            let mut account = account;
            if let Some(name) = name {
                account.set_profile(Profile { name: Some(name.as_str().into()), ..Profile::default() });
            }
            accounts.push(account);
            Ok(())
        };
        for entry in &self.distributors {
            let credit = PartnerCredit { total: money(entry.uin, entry.credit)?, ..Default::default() };
            add(Account::new(Uin(entry.uin), Role::Distributor { credit }, now), &entry.name, &mut accounts)?;
        }
        for entry in &self.resellers {
            let credit = PartnerCredit { total: money(entry.uin, entry.credit)?, ..Default::default() };
            add(Account::new(Uin(entry.uin), Role::Reseller { credit }, now), &entry.name, &mut accounts)?;
        }
        for entry in &self.second_level_resellers {
            let pool = PoolCredit { total: money(entry.uin, entry.credit)?, ..Default::default() };
            let role = Role::SecondLevelReseller { distributor: Uin(entry.distributor), pool };
            add(Account::new(Uin(entry.uin), role, now), &entry.name, &mut accounts)?;
        }
        for entry in &self.customers {
            let credit = CustomerCredit { total: money(entry.uin, entry.credit)?, ..Default::default() };
            // The charged partner is settled below, once every parent is known.
            let role = Role::customer(Uin(entry.parent), Uin(entry.parent), credit);
            add(Account::new(Uin(entry.uin), role, now), &entry.name, &mut accounts)?;
        }
        // Link children to parents, count what each parent gave, settle charged partners.
        let parent_kind = |uin: u64, accounts: &[Account]| index_of.get(&uin).map(|&i| accounts[i].kind());
        for child_index in 0..accounts.len() {
            let (parent, given, expected, child_kind) = match &accounts[child_index].role {
                Role::SecondLevelReseller { distributor, pool } => {
                    (distributor.0, pool.total, "a distributor", "second-level reseller")
                }
                Role::Customer { parent, credit, .. } => {
                    (parent.0, credit.total, "a reseller or second-level reseller", "customer")
                }
                _ => continue,
            };
            let uin = accounts[child_index].uin.0;
            let kind = parent_kind(parent, &accounts);
            let valid = match child_kind {
                "customer" => matches!(kind, Some(AccountKind::Reseller | AccountKind::SecondLevelReseller)),
                _ => kind == Some(AccountKind::Distributor),
            };
            if !valid {
                return Err(WorldError::BadParent { kind: child_kind, uin, parent, expected });
            }
            let parent_index = index_of[&parent];
            let charged = match &mut accounts[parent_index].role {
                Role::Distributor { credit } | Role::Reseller { credit } => {
                    credit.allocated += given;
                    Uin(parent)
                }
                Role::SecondLevelReseller { distributor, pool } => {
                    pool.allocated += given;
                    *distributor
                }
                Role::Customer { .. } => unreachable!("checked above"),
            };
            accounts[parent_index].add_child(Uin(uin));
            if let Role::Customer { charged: slot, .. } = &mut accounts[child_index].role {
                *slot = charged;
            }
        }
        for account in &accounts {
            let (given, total) = match &account.role {
                Role::Distributor { credit } | Role::Reseller { credit } => (credit.allocated, credit.total),
                Role::SecondLevelReseller { pool, .. } => (pool.allocated, pool.total),
                Role::Customer { .. } => continue,
            };
            if given > total {
                return Err(WorldError::OverAllocated { uin: account.uin.0, given, total });
            }
        }
        Ok(accounts)
    }
}

fn money(uin: u64, credit: Decimal) -> Result<Money, WorldError> {
    let money = Money::from_decimal(credit).map_err(|error| WorldError::BadCredit {
        uin,
        credit,
        reason: error.to_string(),
    })?;
    if money.is_negative() {
        return Err(WorldError::BadCredit { uin, credit, reason: "credit cannot be negative".into() });
    }
    Ok(money)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> World {
        World::generate(&WorldSpec {
            distributors: 2,
            sub_agents_per_distributor: 2,
            resellers: 3,
            customers: 40,
            ..WorldSpec::default()
        })
    }

    #[test]
    fn generated_world_imports_and_balances() {
        let accounts = small().to_accounts(Timestamp(0)).unwrap();
        assert_eq!(accounts.len(), 2 + 4 + 3 + 40);
        for account in &accounts {
            match &account.role {
                Role::Distributor { credit } | Role::Reseller { credit } => {
                    assert_eq!(credit.allocated, credit.total)
                }
                Role::SecondLevelReseller { pool, .. } => assert_eq!(pool.allocated, pool.total),
                Role::Customer { parent, charged, .. } => {
                    if parent.0 >= SUB_AGENT_UIN_BASE && parent.0 < RESELLER_UIN_BASE {
                        assert!(charged.0 >= DISTRIBUTOR_UIN_BASE && charged.0 < SUB_AGENT_UIN_BASE);
                    } else {
                        assert_eq!(parent, charged);
                    }
                }
            }
        }
    }

    #[test]
    fn invalid_worlds_are_refused_whole() {
        let mut world = small();
        world.customers[0].parent = DISTRIBUTOR_UIN_BASE;
        assert!(matches!(world.to_accounts(Timestamp(0)), Err(WorldError::BadParent { .. })));

        let mut world = small();
        world.customers[1].uin = world.customers[0].uin;
        assert_eq!(world.to_accounts(Timestamp(0)), Err(WorldError::DuplicateUin(world.customers[0].uin)));

        let mut world = small();
        world.resellers[0].credit = Decimal::ZERO;
        world.customers.retain(|c| c.parent == RESELLER_UIN_BASE);
        world.customers.truncate(1);
        assert!(matches!(world.to_accounts(Timestamp(0)), Err(WorldError::OverAllocated { .. })));

        let mut world = small();
        world.customers[0].credit = Decimal::new(1, 9);
        assert!(matches!(world.to_accounts(Timestamp(0)), Err(WorldError::BadCredit { .. })));
    }

    #[test]
    fn world_round_trips_through_json() {
        let world = small();
        let text = serde_json::to_string(&world).unwrap();
        assert_eq!(serde_json::from_str::<World>(&text).unwrap(), world);
    }
}
