//! Model-based property test: random sequences of set-up, allocation, repossession, pool
//! allocation, credit-line changes, suspension, purchases, reservations, commits, cancels and
//! expiry, issued in batches whose operations run concurrently from separate tasks.
//!
//! The reference model is plain maps of the PRODUCT.md section 2 counters. After every batch:
//! - the engine's state equals the model's after applying every acknowledged operation (each
//!   acknowledged operation's effect is a fixed change of counters, so the order inside a
//!   batch does not matter);
//! - every answer was possible in some order: a refusal for lack of credit only if the other
//!   operations of the batch could have consumed enough, an acceptance only if the credit
//!   could have been there;
//! - the audit holds: nothing negative, customers' used equals partners' used, what partners
//!   allocated equals what their children hold.
//!
//! At the end every open reservation expires and nothing stays reserved.
//!
//! Shrunk failures are kept in proptest-regressions/properties.txt and replayed first.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use partner_credit::domain::Role;
use partner_credit::engine::{NewCustomer, NewPartner, PartnerKind};
use partner_credit::{Caller, Engine, EngineConfig, Error, ManualClock, Money, QuotaTable, RuntimeKind, Uin};
use proptest::prelude::*;

const D: Uin = Uin(1);
const SUB_AGENTS: [Uin; 2] = [Uin(2), Uin(3)];
const RESELLERS: [Uin; 2] = [Uin(4), Uin(5)];
/// Customers and their parents: three under R4, one under R5, two under S2, one under S3.
const CUSTOMERS: [(Uin, Uin); 7] = [
    (Uin(10), Uin(4)),
    (Uin(11), Uin(4)),
    (Uin(12), Uin(4)),
    (Uin(13), Uin(5)),
    (Uin(14), Uin(2)),
    (Uin(15), Uin(2)),
    (Uin(16), Uin(3)),
];
const CHARGEABLE: [Uin; 3] = [Uin(1), Uin(4), Uin(5)];

#[derive(Clone, Debug)]
enum Op {
    Grant {
        partner: usize,
        cents: i64,
    },
    Allocate {
        customer: usize,
        cents: i64,
    },
    AllocatePool {
        sub_agent: usize,
        cents: i64,
    },
    Suspend {
        customer: usize,
        suspended: bool,
    },
    Purchase {
        customer: usize,
        cents: i64,
    },
    Reserve {
        customer: usize,
        cents: i64,
        timeout_ms: i64,
    },
    Commit {
        reservation: usize,
    },
    Cancel {
        reservation: usize,
    },
    /// Moves the clock and releases what is due; always alone in its batch.
    Advance {
        ms: i64,
    },
    /// Creates a customer under one of the resellers or second-level resellers.
    CreateCustomer {
        parent: usize,
    },
}

/// The partners customers can be created under.
const PARENTS: [Uin; 4] = [Uin(4), Uin(5), Uin(2), Uin(3)];

fn op() -> impl Strategy<Value = Op> {
    // Indexes into the customers that exist when the batch starts, modulo their number.
    let customer = 0..64usize;
    prop_oneof![
        1 => (0..CHARGEABLE.len(), -20_000i64..40_000).prop_map(|(partner, cents)| Op::Grant { partner, cents }),
        1 => (customer.clone(), -8_000i64..15_000).prop_map(|(customer, cents)| Op::Allocate { customer, cents }),
        1 => (0..SUB_AGENTS.len(), -10_000i64..20_000).prop_map(|(sub_agent, cents)| Op::AllocatePool { sub_agent, cents }),
        1 => (customer.clone(), any::<bool>()).prop_map(|(customer, suspended)| Op::Suspend { customer, suspended }),
        4 => (customer.clone(), 1i64..6_000).prop_map(|(customer, cents)| Op::Purchase { customer, cents }),
        3 => (customer, 1i64..6_000, 1i64..3_000).prop_map(|(customer, cents, timeout_ms)| Op::Reserve { customer, cents, timeout_ms }),
        2 => (0usize..64).prop_map(|reservation| Op::Commit { reservation }),
        1 => (0usize..64).prop_map(|reservation| Op::Cancel { reservation }),
        1 => (0..PARENTS.len()).prop_map(|parent| Op::CreateCustomer { parent }),
        1 => (1i64..2_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn batches() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(prop::collection::vec(op(), 1..6), 1..25)
}

/// A credit counter that an operation needs and may consume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Resource {
    CustomerAvailable(Uin),
    PartnerAvailable(Uin),
    /// A partner's allocable credit, or a second-level reseller's pool remaining.
    Allocable(Uin),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReservationState {
    Open,
    Committed,
    Cancelled,
    Expired,
}

#[derive(Clone, Debug)]
struct Reservation {
    id: String,
    customer: Uin,
    charged: Uin,
    amount: Money,
    deadline: i64,
    state: ReservationState,
}

/// The reference model: the counters of every account, and the reservations.
#[derive(Clone, Debug, Default)]
struct Model {
    /// total, allocated, used, reserved
    partners: HashMap<Uin, [Money; 4]>,
    /// pool total, pool allocated
    pools: HashMap<Uin, [Money; 2]>,
    /// total, used, reserved
    customers: HashMap<Uin, [Money; 3]>,
    suspended: HashMap<Uin, bool>,
    /// Customers whose suspension was set both ways in the last batch: the last writer wins,
    /// so either value is right, and the model adopts the engine's.
    suspension_raced: Vec<Uin>,
    reservations: Vec<Reservation>,
    /// Every customer with its parent, in creation order; operations pick one by index.
    customer_list: Vec<(Uin, Uin)>,
    now: i64,
}

/// The partner a customer of `parent` is charged through.
fn charged_of(parent: Uin) -> Uin {
    if SUB_AGENTS.contains(&parent) {
        D
    } else {
        parent
    }
}

impl Model {
    /// The customer an operation's index names, and its parent.
    fn customer(&self, index: usize) -> (Uin, Uin) {
        self.customer_list[index % self.customer_list.len()]
    }

    fn value(&self, resource: Resource) -> Money {
        match resource {
            Resource::CustomerAvailable(uin) => {
                let [total, used, reserved] = self.customers[&uin];
                total - used - reserved
            }
            Resource::PartnerAvailable(uin) => {
                let [total, _, used, reserved] = self.partners[&uin];
                total - used - reserved
            }
            Resource::Allocable(uin) => match self.partners.get(&uin) {
                Some([total, allocated, ..]) => *total - *allocated,
                None => {
                    let [total, allocated] = self.pools[&uin];
                    total - allocated
                }
            },
        }
    }
}

/// What an operation needs (checked and consumed; an empty name: consumed, never checked)
/// and what it may give back, in the model's state at the start of its batch.
struct Needs {
    needs: Vec<(Resource, Money, &'static str)>,
    gives: Vec<(Resource, Money)>,
}

fn money(cents: i64) -> Money {
    Money::from_cents(cents)
}

fn needs(op: &Op, model: &Model) -> Needs {
    use Resource::*;
    let mut result = Needs { needs: Vec::new(), gives: Vec::new() };
    match *op {
        Op::Grant { partner, cents } => {
            let uin = CHARGEABLE[partner];
            if cents < 0 {
                result.needs.push((PartnerAvailable(uin), money(-cents), "OverRepossessable"));
                // A reduction takes allocable credit too, but is never refused for it (it may
                // go negative): consumed, not checked.
                result.needs.push((Allocable(uin), money(-cents), ""));
            } else {
                result.gives.push((PartnerAvailable(uin), money(cents)));
                result.gives.push((Allocable(uin), money(cents)));
            }
        }
        Op::Allocate { customer, cents } => {
            let (uin, parent) = model.customer(customer);
            if cents > 0 {
                result.needs.push((Allocable(parent), money(cents), "OverAllocable"));
                result.gives.push((CustomerAvailable(uin), money(cents)));
            } else if cents < 0 {
                result.needs.push((CustomerAvailable(uin), money(-cents), "OverRepossessable"));
                result.gives.push((Allocable(parent), money(-cents)));
            }
        }
        Op::AllocatePool { sub_agent, cents } => {
            let uin = SUB_AGENTS[sub_agent];
            if cents > 0 {
                result.needs.push((Allocable(D), money(cents), "OverAllocable"));
                result.gives.push((Allocable(uin), money(cents)));
            } else if cents < 0 {
                result.needs.push((Allocable(uin), money(-cents), "OverRepossessable"));
                result.gives.push((Allocable(D), money(-cents)));
            }
        }
        Op::Purchase { customer, cents } | Op::Reserve { customer, cents, .. } => {
            let (uin, parent) = model.customer(customer);
            result.needs.push((CustomerAvailable(uin), money(cents), "InsufficientCustomerCredit"));
            result.needs.push((
                PartnerAvailable(charged_of(parent)),
                money(cents),
                "InsufficientPartnerCredit",
            ));
            // A hold undone after the partner refused gives the customer's credit back.
            result.gives.push((CustomerAvailable(uin), money(cents)));
        }
        Op::Cancel { reservation } | Op::Commit { reservation } => {
            if let Some(reservation) = model.reservations.get(reservation) {
                if matches!(op, Op::Cancel { .. }) {
                    result.gives.push((CustomerAvailable(reservation.customer), reservation.amount));
                    result
                        .gives
                        .push((PartnerAvailable(charged_of(reservation.customer)), reservation.amount));
                }
            }
        }
        Op::Suspend { .. } | Op::CreateCustomer { .. } | Op::Advance { .. } => {}
    }
    result
}

async fn set_up(engine: &Engine) -> Model {
    let partner = |uin: Uin, parent| NewPartner { uin: Some(uin), parent, name: None };
    engine.create_partner(OP, PartnerKind::Distributor, partner(D, None)).await.unwrap();
    for sub_agent in SUB_AGENTS {
        engine
            .create_partner(OP, PartnerKind::SecondLevelReseller, partner(sub_agent, Some(D)))
            .await
            .unwrap();
    }
    for reseller in RESELLERS {
        engine.create_partner(OP, PartnerKind::Reseller, partner(reseller, None)).await.unwrap();
    }
    for (uin, parent) in CUSTOMERS {
        engine
            .create_customer(OP, NewCustomer { uin: Some(uin), parent, name: None, email: None })
            .await
            .unwrap();
    }
    let mut model = Model { now: START.0, ..Model::default() };
    for uin in CHARGEABLE {
        model.partners.insert(uin, [Money::ZERO; 4]);
    }
    for uin in SUB_AGENTS {
        model.pools.insert(uin, [Money::ZERO; 2]);
    }
    for (uin, parent) in CUSTOMERS {
        model.customers.insert(uin, [Money::ZERO; 3]);
        model.suspended.insert(uin, false);
        model.customer_list.push((uin, parent));
    }
    model
}

/// Runs one operation against the engine; answers the outcome's name, the deadline of an
/// acknowledged reservation, and the purchase id used.
async fn run(
    engine: Arc<Engine>,
    op: Op,
    target: (Uin, Uin),
    reservation_id: Option<String>,
    batch: usize,
    index: usize,
) -> (Op, String, Option<i64>, String) {
    let name = |result: Result<(), Error>| match result {
        Ok(()) => "Ok".to_string(),
        Err(Error::Rejected(rejection)) => rejection.name().to_string(),
        Err(Error::Failed(failure)) => panic!("the engine failed: {failure}"),
    };
    let id = format!("b{batch}-{index}");
    let mut deadline = None;
    let outcome = match op {
        Op::Grant { partner, cents } => {
            name(engine.grant_credit(OP, CHARGEABLE[partner], money(cents)).await.map(drop))
        }
        Op::Allocate { cents, .. } => {
            let (uin, parent) = target;
            name(
                engine.allocate_customer_credit(Caller::Uin(parent), uin, money(cents), None).await.map(drop),
            )
        }
        Op::AllocatePool { sub_agent, cents } => name(
            engine.allocate_credit_pool(Caller::Uin(D), SUB_AGENTS[sub_agent], money(cents)).await.map(drop),
        ),
        Op::Suspend { suspended, .. } => {
            let (uin, parent) = target;
            name(engine.set_suspension(Caller::Uin(parent), uin, suspended).await)
        }
        Op::Purchase { cents, .. } => {
            let uin = target.0;
            name(
                engine
                    .purchase(Caller::Uin(uin), request(&id, uin, &money(cents).to_string()))
                    .await
                    .map(drop),
            )
        }
        Op::Reserve { cents, timeout_ms, .. } => {
            let uin = target.0;
            let result =
                engine.reserve(OP, request(&id, uin, &money(cents).to_string()), Some(timeout_ms)).await;
            if let Ok(receipt) = &result {
                deadline = Some(receipt.deadline.0);
            }
            name(result.map(drop))
        }
        Op::Commit { .. } | Op::Cancel { .. } => match reservation_id {
            None => "NoReservation".to_string(),
            Some(id) if matches!(op, Op::Commit { .. }) => name(engine.commit(OP, pid(&id)).await),
            Some(id) => name(engine.cancel(OP, pid(&id)).await),
        },
        Op::CreateCustomer { parent } => {
            let customer = NewCustomer {
                uin: Some(new_customer_uin(batch, index)),
                parent: PARENTS[parent],
                name: None,
                email: None,
            };
            name(engine.create_customer(OP, customer).await.map(drop))
        }
        Op::Advance { .. } => unreachable!("advances run alone"),
    };
    (op, outcome, deadline, id)
}

fn check_case(kind: RuntimeKind, batches: Vec<Vec<Op>>) -> Result<(), TestCaseError> {
    check_case_with(kind, EngineConfig::default(), batches)
}

fn check_case_with(
    kind: RuntimeKind,
    config: EngineConfig,
    batches: Vec<Vec<Op>>,
) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // The model is of the credit rules; rate limits have their own tests (rate_limits.rs).
    let config = EngineConfig { quotas: QuotaTable::unlimited(), ..config };
    runtime.block_on(async move {
        let (engine, clock) = engine_with(kind, config);
        let engine = Arc::new(engine);
        let mut model = set_up(&engine).await;
        for (batch_index, batch) in batches.into_iter().enumerate() {
            if let Some(Op::Advance { ms }) = batch.iter().find(|op| matches!(op, Op::Advance { .. })) {
                advance(&engine, &clock, &mut model, *ms).await;
            } else {
                run_batch(&engine, &mut model, batch_index, batch).await?;
            }
            compare(&engine, &mut model).await?;
        }
        // Let every reservation expire: nothing may stay reserved.
        advance(&engine, &clock, &mut model, 3_001).await;
        compare(&engine, &mut model).await?;
        let audit = engine.audit().await.unwrap();
        prop_assert!(audit.customer_reserved.is_zero() && audit.partner_reserved.is_zero(), "{audit:?}");
        Ok(())
    })
}

fn new_customer_uin(batch: usize, index: usize) -> Uin {
    Uin(1_000 + (batch * 10 + index) as u64)
}

async fn advance(engine: &Engine, clock: &ManualClock, model: &mut Model, ms: i64) {
    clock.advance_ms(ms);
    model.now += ms;
    engine.expire_due().await.unwrap();
    for reservation in &mut model.reservations {
        if reservation.state == ReservationState::Open && reservation.deadline <= model.now {
            reservation.state = ReservationState::Expired;
            release(&mut model.customers, &mut model.partners, reservation);
        }
    }
}

fn release(
    customers: &mut HashMap<Uin, [Money; 3]>,
    partners: &mut HashMap<Uin, [Money; 4]>,
    reservation: &Reservation,
) {
    customers.get_mut(&reservation.customer).unwrap()[2] -= reservation.amount;
    partners.get_mut(&reservation.charged).unwrap()[3] -= reservation.amount;
}

async fn run_batch(
    engine: &Arc<Engine>,
    model: &mut Model,
    batch_index: usize,
    batch: Vec<Op>,
) -> Result<(), TestCaseError> {
    let all_needs: Vec<Needs> = batch.iter().map(|op| needs(op, model)).collect();
    let tasks: Vec<_> = batch
        .into_iter()
        .enumerate()
        .map(|(index, op)| {
            let reservation_id = match op {
                Op::Commit { reservation } | Op::Cancel { reservation } => {
                    model.reservations.get(reservation).map(|r| r.id.clone())
                }
                _ => None,
            };
            let target = match op {
                Op::Allocate { customer, .. }
                | Op::Suspend { customer, .. }
                | Op::Purchase { customer, .. }
                | Op::Reserve { customer, .. } => model.customer(customer),
                _ => (Uin(0), Uin(0)),
            };
            tokio::spawn(run(engine.clone(), op, target, reservation_id, batch_index, index))
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let toggled: Vec<Uin> = results
        .iter()
        .filter_map(|(op, ..)| match op {
            Op::Suspend { customer, .. } => Some(model.customer(*customer).0),
            _ => None,
        })
        .collect();
    let start = model.clone();
    // Is each answer possible in some order of the batch?
    for (index, (op, outcome, ..)) in results.iter().enumerate() {
        let others =
            all_needs.iter().enumerate().filter(|(other, _)| *other != index).map(|(_, needs)| needs);
        let mut lowest: HashMap<Resource, Money> = HashMap::new();
        let mut highest: HashMap<Resource, Money> = HashMap::new();
        for needs in others {
            for (resource, amount, _) in &needs.needs {
                *lowest.entry(*resource).or_default() += *amount;
            }
            for (resource, amount) in &needs.gives {
                *highest.entry(*resource).or_default() += *amount;
            }
        }
        let own = &all_needs[index];
        let label = format!("batch {batch_index}: {op:?} answered {outcome}");
        if outcome == "Ok" {
            for (resource, amount, _) in own.needs.iter().filter(|(_, _, name)| !name.is_empty()) {
                let most = start.value(*resource) + highest.get(resource).copied().unwrap_or_default();
                prop_assert!(most >= *amount, "{label}: {resource:?} could be at most {most}");
            }
        } else if let Some((resource, amount, _)) =
            own.needs.iter().find(|(_, _, name)| *name == outcome.as_str())
        {
            let least = start.value(*resource) - lowest.get(resource).copied().unwrap_or_default();
            prop_assert!(least < *amount, "{label}: {resource:?} was at least {least}");
        } else {
            let expected = match op {
                Op::Purchase { customer, .. } | Op::Reserve { customer, .. } => {
                    let uin = start.customer(*customer).0;
                    outcome == "Suspended" && (start.suspended[&uin] || toggled.contains(&uin))
                }
                Op::Commit { reservation } | Op::Cancel { reservation } => {
                    let Some(state) = start.reservations.get(*reservation).map(|r| r.state) else {
                        prop_assert_eq!(outcome.as_str(), "NoReservation");
                        continue;
                    };
                    let commit = matches!(op, Op::Commit { .. });
                    let contested = results.iter().enumerate().any(|(other, (other_op, ..))| {
                        other != index
                            && matches!(other_op, Op::Commit { reservation: r } | Op::Cancel { reservation: r } if r == reservation)
                    });
                    match (state, outcome.as_str()) {
                        // Another request for the same reservation was settling it.
                        (_, "PurchaseInProgress") => contested,
                        (ReservationState::Expired, "ReservationExpired") => true,
                        (ReservationState::Committed, "AlreadyCommitted") => !commit,
                        (ReservationState::Cancelled, "AlreadyCancelled") => commit,
                        // The other of a commit and a cancel in the same batch won.
                        (ReservationState::Open, "AlreadyCommitted") => !commit,
                        (ReservationState::Open, "AlreadyCancelled") => commit,
                        _ => false,
                    }
                }
                // Zero-cent allocations and credit changes are refused as changing nothing.
                Op::Allocate { cents: 0, .. }
                | Op::AllocatePool { cents: 0, .. }
                | Op::Grant { cents: 0, .. } => outcome == "InvalidAmount",
                _ => false,
            };
            prop_assert!(expected, "{label}: not a possible answer");
        }
    }
    let mut set_to: HashMap<Uin, Vec<bool>> = HashMap::new();
    for (op, outcome, ..) in &results {
        if let (Op::Suspend { customer, suspended }, "Ok") = (op, outcome.as_str()) {
            set_to.entry(model.customer(*customer).0).or_default().push(*suspended);
        }
    }
    model.suspension_raced = set_to
        .into_iter()
        .filter(|(_, values)| values.contains(&true) && values.contains(&false))
        .map(|(uin, _)| uin)
        .collect();
    // Apply every acknowledged operation to the model.
    for (index, (op, outcome, deadline, id)) in results.into_iter().enumerate() {
        if outcome == "Ok" {
            let target = match op {
                Op::Allocate { customer, .. }
                | Op::Suspend { customer, .. }
                | Op::Purchase { customer, .. }
                | Op::Reserve { customer, .. } => start.customer(customer),
                Op::CreateCustomer { parent } => (new_customer_uin(batch_index, index), PARENTS[parent]),
                _ => (Uin(0), Uin(0)),
            };
            apply(model, &op, target, deadline, id)?;
        }
    }
    Ok(())
}

fn apply(
    model: &mut Model,
    op: &Op,
    target: (Uin, Uin),
    deadline: Option<i64>,
    id: String,
) -> Result<(), TestCaseError> {
    let (uin, parent) = target;
    match *op {
        Op::Grant { partner, cents } => {
            model.partners.get_mut(&CHARGEABLE[partner]).unwrap()[0] += money(cents)
        }
        Op::Allocate { cents, .. } => {
            model.customers.get_mut(&uin).unwrap()[0] += money(cents);
            match model.partners.get_mut(&parent) {
                Some(counters) => counters[1] += money(cents),
                None => model.pools.get_mut(&parent).unwrap()[1] += money(cents),
            }
        }
        Op::AllocatePool { sub_agent, cents } => {
            model.pools.get_mut(&SUB_AGENTS[sub_agent]).unwrap()[0] += money(cents);
            model.partners.get_mut(&D).unwrap()[1] += money(cents);
        }
        Op::Suspend { suspended, .. } => {
            model.suspended.insert(uin, suspended);
        }
        Op::CreateCustomer { .. } => {
            model.customers.insert(uin, [Money::ZERO; 3]);
            model.suspended.insert(uin, false);
            model.customer_list.push((uin, parent));
        }
        Op::Purchase { cents, .. } => {
            model.customers.get_mut(&uin).unwrap()[1] += money(cents);
            model.partners.get_mut(&charged_of(parent)).unwrap()[2] += money(cents);
        }
        Op::Reserve { cents, .. } => {
            model.customers.get_mut(&uin).unwrap()[2] += money(cents);
            model.partners.get_mut(&charged_of(parent)).unwrap()[3] += money(cents);
            let deadline = deadline.expect("a reservation has a deadline");
            model.reservations.push(Reservation {
                id,
                customer: uin,
                charged: charged_of(parent),
                amount: money(cents),
                deadline,
                state: ReservationState::Open,
            });
        }
        Op::Commit { reservation } | Op::Cancel { reservation } => {
            let commit = matches!(op, Op::Commit { .. });
            let entry = model.reservations[reservation].clone();
            match (entry.state, commit) {
                (ReservationState::Open, true) => {
                    let customer = model.customers.get_mut(&entry.customer).unwrap();
                    customer[2] -= entry.amount;
                    customer[1] += entry.amount;
                    let partner = model.partners.get_mut(&entry.charged).unwrap();
                    partner[3] -= entry.amount;
                    partner[2] += entry.amount;
                    model.reservations[reservation].state = ReservationState::Committed;
                }
                (ReservationState::Open, false) => {
                    release(&mut model.customers, &mut model.partners, &entry);
                    model.reservations[reservation].state = ReservationState::Cancelled;
                }
                // Idempotent repeats change nothing.
                (ReservationState::Committed, true) | (ReservationState::Cancelled, false) => {}
                (state, _) => prop_assert!(false, "{op:?} succeeded on a reservation in state {state:?}"),
            }
        }
        Op::Advance { .. } => unreachable!(),
    }
    Ok(())
}

async fn compare(engine: &Engine, model: &mut Model) -> Result<(), TestCaseError> {
    let audit = engine.audit().await.unwrap();
    prop_assert!(audit.ok(), "audit: {:?}", audit.violations);
    for view in engine.all_accounts().await.unwrap() {
        match view.role {
            Role::Distributor { credit } | Role::Reseller { credit } => {
                let [total, allocated, used, reserved] = model.partners[&view.uin];
                prop_assert_eq!(
                    (credit.total, credit.allocated, credit.used, credit.reserved),
                    (total, allocated, used, reserved),
                    "partner {}",
                    view.uin
                );
            }
            Role::SecondLevelReseller { pool, .. } => {
                let [total, allocated] = model.pools[&view.uin];
                prop_assert_eq!((pool.total, pool.allocated), (total, allocated), "pool {}", view.uin);
            }
            Role::Customer { credit, suspended, .. } => {
                let [total, used, reserved] = model.customers[&view.uin];
                prop_assert_eq!(
                    (credit.total, credit.used, credit.reserved),
                    (total, used, reserved),
                    "customer {}",
                    view.uin
                );
                if model.suspension_raced.contains(&view.uin) {
                    model.suspended.insert(view.uin, suspended);
                }
                prop_assert_eq!(suspended, model.suspended[&view.uin], "suspension of {}", view.uin);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn sharded_matches_the_model(batches in batches()) {
        check_case(RuntimeKind::Sharded, batches)?;
    }

    /// Every chargeable partner's credit split into slices: the same model must hold.
    #[test]
    fn sharded_with_escrow_matches_the_model(batches in batches()) {
        let config = EngineConfig { escrow_partners: CHARGEABLE.to_vec(), ..EngineConfig::default() };
        check_case_with(RuntimeKind::Sharded, config, batches)?;
    }

    #[test]
    fn actix_matches_the_model(batches in batches()) {
        check_case(RuntimeKind::Actix, batches)?;
    }
}
