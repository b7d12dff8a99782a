//! The operator's set-up: partners, customers and credit lines (the engine's own actions).
//!
//! - `CreatePartner` {`Kind`: `Distributor` | `Reseller` | `SubAgent`, `ParentUin` (SubAgent
//!   only), `Uin`?, `Name`?} -> {`Uin`};
//! - `CreateClient` {`ParentUin`, `Uin`?, `Name`, `Email`?} -> {`Uin`};
//! - `GrantPartnerCredit` {`PartnerUin`, `Credit` (an increment)} -> {`TotalCredit`,
//!   `RemainingCredit`}.
//!
//! `Name` and `Email` are 1 to 256 characters. Which caller may create what, and which UINs
//! are free, is the engine's to decide.

use serde_json::json;

use super::{text, Answer, Context};
use crate::api::errors::ApiError;
use crate::api::params::Params;
use crate::api::{money, uin};
use crate::domain::{Caller, Money, Uin};
use crate::engine::{NewCustomer, NewPartner, PartnerKind};

pub fn read_partner(params: &mut Params, _: &Context) -> Result<(PartnerKind, NewPartner), ApiError> {
    let kind = match params.required_string("Kind")?.as_str() {
        "Distributor" => PartnerKind::Distributor,
        "Reseller" => PartnerKind::Reseller,
        "SubAgent" => PartnerKind::SecondLevelReseller,
        other => {
            return Err(ApiError::value(
                "Kind",
                format!("{other:?} is not Distributor, Reseller or SubAgent"),
            ))
        }
    };
    let partner =
        NewPartner { parent: params.uin("ParentUin")?, uin: params.uin("Uin")?, name: text(params, "Name")? };
    Ok((kind, partner))
}

pub async fn create_partner(
    context: &Context<'_>,
    caller: Caller,
    (kind, partner): (PartnerKind, NewPartner),
) -> Answer {
    let created =
        context.engine.create_partner(caller, kind, partner).await.map_err(|error| context.refused(error))?;
    Ok(json!({ "Uin": uin(created) }))
}

pub fn read_client(params: &mut Params, _: &Context) -> Result<NewCustomer, ApiError> {
    Ok(NewCustomer {
        parent: params.required_uin("ParentUin")?,
        uin: params.uin("Uin")?,
        name: Some(text(params, "Name")?.ok_or_else(|| ApiError::missing("Name"))?),
        email: text(params, "Email")?,
    })
}

pub async fn create_client(context: &Context<'_>, caller: Caller, customer: NewCustomer) -> Answer {
    let created =
        context.engine.create_customer(caller, customer).await.map_err(|error| context.refused(error))?;
    Ok(json!({ "Uin": uin(created) }))
}

pub fn read_grant(params: &mut Params, _: &Context) -> Result<(Uin, Money), ApiError> {
    Ok((params.required_uin("PartnerUin")?, params.required_money("Credit")?))
}

pub async fn grant_credit(context: &Context<'_>, caller: Caller, (partner, credit): (Uin, Money)) -> Answer {
    let line =
        context.engine.grant_credit(caller, partner, credit).await.map_err(|error| context.refused(error))?;
    Ok(json!({ "TotalCredit": money(line.total), "RemainingCredit": money(line.available) }))
}
