//! The migrations are embedded at compile time by `sqlx::migrate!`; without these lines a new
//! migration file would not trigger a rebuild and would be silently missing from the binary.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
