//! Column helpers shared by the migrations, so every table spells ids,
//! references and timestamps the same way.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema;

/// A UUIDv7 primary key stored as text.
pub fn id<T: IntoIden>(col: T) -> ColumnDef {
    schema::string_len(col, 36).primary_key().take()
}

/// A required reference to another table's id.
pub fn reference<T: IntoIden>(col: T) -> ColumnDef {
    schema::string_len(col, 36)
}

/// An optional reference to another table's id.
pub fn reference_null<T: IntoIden>(col: T) -> ColumnDef {
    schema::string_len_null(col, 36)
}

/// A UTC timestamp.
pub fn ts<T: IntoIden>(col: T) -> ColumnDef {
    schema::timestamp_with_time_zone(col)
}

/// An optional UTC timestamp.
pub fn ts_null<T: IntoIden>(col: T) -> ColumnDef {
    schema::timestamp_with_time_zone_null(col)
}

/// Create an index with a conventional name.
pub fn index<T: IntoTableRef>(table: T, name: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for c in cols {
        stmt.col(Alias::new(*c));
    }
    stmt.take()
}

/// Create a unique index with a conventional name.
pub fn unique<T: IntoTableRef>(
    table: T,
    name: &str,
    cols: &[&'static str],
) -> IndexCreateStatement {
    let mut stmt = index(table, name, cols);
    stmt.unique();
    stmt
}
