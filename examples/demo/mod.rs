//! The fixed demo schema the client tests and benches drive (see README).

mod migrations;

use goforward::access::{Action, Policy, Rule};
use goforward::sea_orm_migration::MigrationTrait;
use goforward::{Context, Plugin};

/// Creates `profiles`, `todos` and `messages` and registers their policies.
pub struct Demo;

#[async_trait::async_trait]
impl Plugin for Demo {
    fn name(&self) -> &str {
        "demo"
    }

    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(migrations::CreateDemoSchema)]
    }

    async fn start(&self, ctx: &Context) -> goforward::Result<()> {
        let policies = ctx.access().policies();
        // Anyone (anon too) reads profiles; a user inserts and updates only their own row.
        policies.set_table(
            "profiles",
            Policy::deny_all()
                .with(Action::Select, Rule::Public)
                .with(Action::Insert, Rule::Owner("id".into()))
                .with(Action::Update, Rule::Owner("id".into())),
        );
        // Signed-in users see and change only their own todos; anon nothing.
        policies.set_table("todos", Policy::owner("user_id"));
        // Signed-in users read every message and write only their own.
        policies.set_table(
            "messages",
            Policy::owner("user_id").with(Action::Select, Rule::Authenticated),
        );
        Ok(())
    }
}
