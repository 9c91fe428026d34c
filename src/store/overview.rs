//! Figures for the dashboard.

use super::{Result, Store};

#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub users: i64,
    pub tokens: i64,
    pub resources: i64,
    pub admins: i64,
}

impl Store {
    pub async fn overview(&self) -> Result<Overview> {
        self.read(|conn| {
            Ok(conn.query_row(
                "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM tokens),
                        (SELECT COUNT(*) FROM resources), (SELECT COUNT(*) FROM admins)",
                [],
                |row| {
                    Ok(Overview {
                        users: row.get(0)?,
                        tokens: row.get(1)?,
                        resources: row.get(2)?,
                        admins: row.get(3)?,
                    })
                },
            )?)
        })
        .await
    }
}
