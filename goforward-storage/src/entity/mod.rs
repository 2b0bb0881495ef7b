//! sea-orm entities of the storage tables.

pub mod bucket;
pub mod object;
pub mod object_version;
