//! Set-up: partners and customers created by the operator, imports of whole hierarchies,
//! credit lines, forced suspension and remarks.
//!
//! Invariant: account creation is all or nothing. A creation adopts the new account into its
//! parent, then spawns it (or disowns it again), on its own task to the end, so no parent is
//! left listing a child that was never created.

use std::sync::atomic::Ordering;

use super::intents::{Intent, Steps};
use super::{invalid, Engine, EngineResult, Error};
use crate::domain::access;
use crate::domain::account::{
    require_change, AdoptChild, Details, DisownChild, GrantCredit, SetRemark, SetSuspension, UsageOf,
    ZERO_CREDIT_CHANGE,
};
use crate::domain::{
    Account, AccountKind, Action, Caller, CreditLine, Money, Profile, Rejection, Role, Timestamp, Uin,
};
use crate::world::World;

/// A partner kind the operator can create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartnerKind {
    Distributor,
    Reseller,
    /// A second-level reseller; its parent is a distributor.
    SecondLevelReseller,
}

/// A new partner.
#[derive(Clone, Debug, Default)]
pub struct NewPartner {
    /// Assigned by the engine when absent.
    pub uin: Option<Uin>,
    /// The distributor of a second-level reseller.
    pub parent: Option<Uin>,
    pub name: Option<String>,
}

/// A new customer.
#[derive(Clone, Debug)]
pub struct NewCustomer {
    pub uin: Option<Uin>,
    /// Its reseller or second-level reseller.
    pub parent: Uin,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// The longest remark kept (of a customer, or of an allocation), in characters.
pub const REMARK_MAX: usize = 256;

impl Engine {
    /// Creates a distributor, a reseller, or a second-level reseller under a distributor.
    pub async fn create_partner(
        &self,
        caller: Caller,
        kind: PartnerKind,
        partner: NewPartner,
    ) -> EngineResult<Uin> {
        self.admit(caller, Action::CreatePartner)?;
        access::operator_only(caller, "create partners")?;
        let profile = profile(partner.name, None);
        match kind {
            PartnerKind::Distributor | PartnerKind::Reseller => {
                if let Some(parent) = partner.parent {
                    return Err(invalid("ParentUin", format!("a {kind:?} has no parent, got {parent}")));
                }
                let credit = Default::default();
                let role = if kind == PartnerKind::Distributor {
                    Role::Distributor { credit }
                } else {
                    Role::Reseller { credit }
                };
                self.create(partner.uin, role, profile, None).await
            }
            PartnerKind::SecondLevelReseller => {
                let Some(distributor) = partner.parent else {
                    return Err(invalid("ParentUin", "a second-level reseller needs its distributor".into()));
                };
                let role = Role::SecondLevelReseller { distributor, pool: Default::default() };
                self.create(partner.uin, role, profile, Some((distributor, AccountKind::SecondLevelReseller)))
                    .await
            }
        }
    }

    /// Creates a customer under a reseller or a second-level reseller.
    pub async fn create_customer(&self, caller: Caller, customer: NewCustomer) -> EngineResult<Uin> {
        self.admit(caller, Action::CreateClient)?;
        access::operator_only(caller, "create customers")?;
        // The charged partner is replaced by the one the parent names when it adopts the
        // customer.
        let role = Role::customer(customer.parent, customer.parent, Default::default());
        let profile = profile(customer.name, customer.email);
        self.create(customer.uin, role, profile, Some((customer.parent, AccountKind::Customer))).await
    }

    async fn create(
        &self,
        uin: Option<Uin>,
        role: Role,
        profile: Option<Profile>,
        parent: Option<(Uin, AccountKind)>,
    ) -> EngineResult<Uin> {
        let uin = match uin {
            Some(uin) if self.runtime.contains(uin) => return Err(Rejection::UinTaken(uin).into()),
            Some(uin) => uin,
            None => self.fresh_uin(),
        };
        let created = self.clock.now();
        // A customer copies its partner's trial-voucher priority switch: no switch may run
        // between that read and the customer's registration.
        let switching = match role {
            Role::Customer { .. } => Some(self.switching.clone().read_owned().await),
            _ => None,
        };
        // Adopt, then spawn (or disown): run to the end even if the caller stops waiting or
        // the process stops, so no parent is left listing a child that was never created.
        self.durably(Intent::Create { uin, role, profile, parent, created }, switching).await?.uin()
    }

    fn fresh_uin(&self) -> Uin {
        loop {
            let uin = Uin(self.next_uin.fetch_add(1, Ordering::Relaxed));
            if !self.runtime.contains(uin) {
                return uin;
            }
        }
    }

    /// Creates all accounts of a world in one step, or none if any is invalid or taken.
    /// Parents must be in the same world.
    pub async fn import(&self, caller: Caller, world: &World) -> EngineResult<usize> {
        access::operator_only(caller, "import hierarchies")?;
        let accounts =
            world.to_accounts(self.clock.now()).map_err(|error| invalid("world", error.to_string()))?;
        let count = accounts.len();
        self.runtime.spawn(accounts).await??;
        if let Some(max) = self.runtime.uins().iter().map(|uin| uin.0).max() {
            self.next_uin.fetch_max(max + 1, Ordering::Relaxed);
        }
        Ok(count)
    }

    /// Raises (positive) or reduces (negative) a distributor's or reseller's credit line. A
    /// reduction cannot take its available credit below zero.
    pub async fn grant_credit(&self, caller: Caller, partner: Uin, delta: Money) -> EngineResult<CreditLine> {
        self.admit(caller, Action::GrantPartnerCredit)?;
        access::operator_only(caller, "change credit lines")?;
        require_change(delta, ZERO_CREDIT_CHANGE)?;
        let record = self.record_info(caller, None);
        self.ask(partner, GrantCredit { delta, record }).await
    }

    /// ForceQN: suspend (`true`, type 2) or restore (`false`, type 0) a customer.
    pub async fn set_suspension(&self, caller: Caller, customer: Uin, suspended: bool) -> EngineResult<()> {
        self.admit(caller, Action::ForceQN)?;
        self.ask(customer, SetSuspension { caller, suspended }).await
    }

    /// ModifyClientRemark.
    pub async fn set_remark(&self, caller: Caller, customer: Uin, remark: String) -> EngineResult<()> {
        self.admit(caller, Action::ModifyClientRemark)?;
        check_remark(&remark)?;
        self.ask(customer, SetRemark { caller, remark: remark.into_boxed_str() }).await
    }
}

pub(super) fn check_remark(remark: &str) -> Result<(), Error> {
    if remark.chars().count() > REMARK_MAX {
        return Err(invalid("Remark", format!("has more than {REMARK_MAX} characters")));
    }
    Ok(())
}

fn profile(name: Option<String>, email: Option<String>) -> Option<Profile> {
    if name.is_none() && email.is_none() {
        return None;
    }
    Some(Profile {
        name: name.map(String::into_boxed_str),
        email: email.map(String::into_boxed_str),
        remark: None,
    })
}

/// The steps of a creation: adopted by its parent (a customer then copies its charged
/// partner's trial-voucher switch), then spawned, or disowned again if the UIN was taken.
pub(super) async fn create_steps(
    steps: &Steps,
    uin: Uin,
    mut role: Role,
    profile: Option<Profile>,
    parent: Option<(Uin, AccountKind)>,
    created: Timestamp,
) -> EngineResult<Uin> {
    if let Some((parent, child_kind)) = parent {
        let charged = steps.ask(parent, AdoptChild { child: uin, child_kind }).await?;
        if let Role::Customer { charged: slot, trial_first, .. } = &mut role {
            *slot = charged;
            // The charged partner's trial-voucher priority switch.
            let details = Details { now: created, vouchers: false, usage: UsageOf::None };
            *trial_first = steps.ask(charged, details).await?.trial_first;
        }
    }
    let mut account = Account::new(uin, role, created);
    if let Some(profile) = profile {
        account.set_profile(profile);
    }
    if let Err(rejection) = steps.spawn(vec![account]).await? {
        if let Some((parent, _)) = parent {
            steps.ask(parent, DisownChild { child: uin }).await?;
        }
        return Err(rejection.into());
    }
    Ok(uin)
}
