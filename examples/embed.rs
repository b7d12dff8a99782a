//! Embedding the engine: import a generated world, make a purchase, read the books.
//! Run with `cargo run --release --example embed`.

use partner_credit::{Caller, Engine, EngineConfig, Money, PurchaseId, PurchaseRequest, World, WorldSpec};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::start(EngineConfig::default());
    let world = World::generate(&WorldSpec { customers: 1_000, ..WorldSpec::default() });
    engine.import(Caller::Operator, &world).await?;

    let customer = world.customer_uins()[0];
    let request = PurchaseRequest::new(PurchaseId::new("order-1")?, customer, Money::parse("12.50")?);
    let receipt = engine.purchase(Caller::Uin(customer), request).await?;
    println!("charged partner {}; the customer has {} left", receipt.charged, receipt.customer_available);

    let audit = engine.audit().await?;
    println!("books balance: {}", audit.ok());
    Ok(())
}
