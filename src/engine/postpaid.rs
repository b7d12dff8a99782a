//! Frozen credit on the engine's side: ActivatePostpaid and TerminatePostpaid. The rules
//! are the domain's ([`crate::domain::account::Freeze`]).
//!
//! An index lets TerminatePostpaid, which names only the resource, find its customer:
//! `ResourceId -> customer`. An id is claimed in it before the customer is asked and released
//! if the customer refuses, so two activations of one id cannot both succeed.

use rust_decimal::Decimal;

use super::vouchers::hide_owner;
use super::{ask, check_purchase_amount, invalid, run_to_end, Engine, EngineResult, Error};
use crate::domain::access;
use crate::domain::account::{Freeze, Unfreeze};
use crate::domain::{AccountKind, Action, Caller, KindRequired, Money, Rejection, Uin};

/// The longest postpaid resource id, in characters.
pub const RESOURCE_ID_MAX: usize = 64;

impl Engine {
    /// ActivatePostpaid: freezes `amount x coefficient` (the configured default coefficient
    /// when none is given) of the customer's available credit for `resource`, rounded up to
    /// 8 decimals; answers what was frozen.
    pub async fn activate_postpaid(
        &self,
        caller: Caller,
        resource: &str,
        customer: Uin,
        amount: Money,
        coefficient: Option<Decimal>,
    ) -> EngineResult<Money> {
        self.admit(caller, Action::ActivatePostpaid)?;
        check_resource_id(resource)?;
        check_purchase_amount(amount)?;
        let coefficient = coefficient.unwrap_or(self.config.freezing_coefficient_default);
        check_coefficient(coefficient)?;
        let frozen = amount.as_decimal() * coefficient;
        let frozen = Money::from_decimal(
            frozen.round_dp_with_strategy(8, rust_decimal::RoundingStrategy::AwayFromZero),
        )
        .map_err(|error| invalid("Amount", error.to_string()))?;
        // Authorized and a customer before the id is claimed, so that nobody else learns
        // which ids are active or holds one up.
        let view = self.snapshot(customer).await?;
        if view.kind() != AccountKind::Customer {
            return Err(Rejection::WrongKind { uin: customer, required: KindRequired::Customer }.into());
        }
        access::itself_or_parent(caller, customer, view.parent())?;
        let resource: Box<str> = resource.into();
        match self.resources.entry(resource.clone()) {
            dashmap::Entry::Occupied(_) => return Err(Rejection::ResourceTaken(resource.into()).into()),
            dashmap::Entry::Vacant(entry) => {
                entry.insert(customer);
            }
        }
        let runtime = self.runtime.clone();
        let resources = self.resources.clone();
        run_to_end(async move {
            let command = Freeze { resource: resource.clone(), frozen };
            if let Err(error) = ask(&runtime, customer, command).await {
                resources.remove(&resource);
                return Err(error);
            }
            Ok(frozen)
        })
        .await
    }

    /// TerminatePostpaid: releases what the resource froze; answers the customer's available
    /// credit after.
    pub async fn terminate_postpaid(&self, caller: Caller, resource: &str) -> EngineResult<(Uin, Money)> {
        self.admit(caller, Action::TerminatePostpaid)?;
        check_resource_id(resource)?;
        let Some(customer) = self.resources.get(resource).map(|customer| *customer) else {
            return Err(Rejection::UnknownResource(resource.into()).into());
        };
        let runtime = self.runtime.clone();
        let resources = self.resources.clone();
        let resource: Box<str> = resource.into();
        run_to_end(async move {
            let available = ask(&runtime, customer, Unfreeze { caller, resource: resource.clone() })
                .await
                .map_err(|error| hide_owner(error, Rejection::UnknownResource(resource.to_string())))?;
            resources.remove_if(&resource, |_, owner| *owner == customer);
            Ok((customer, available))
        })
        .await
    }
}

fn check_resource_id(resource: &str) -> Result<(), Error> {
    let length = resource.chars().count();
    if length == 0 || length > RESOURCE_ID_MAX || resource.chars().any(char::is_control) {
        return Err(invalid(
            "ResourceId",
            format!("must be 1 to {RESOURCE_ID_MAX} characters without control characters"),
        ));
    }
    Ok(())
}

/// A freezing coefficient is from 0 to 1, with at most 8 decimals.
pub fn check_coefficient(coefficient: Decimal) -> Result<(), Error> {
    if coefficient.is_sign_negative() && !coefficient.is_zero() || coefficient > Decimal::ONE {
        return Err(invalid("FreezingCoefficient", format!("{coefficient} is outside 0 to 1")));
    }
    if coefficient.normalize().scale() > 8 {
        return Err(invalid("FreezingCoefficient", format!("{coefficient} has more than 8 decimals")));
    }
    Ok(())
}
