//! Reading the read models as the API does: only tables of a model the
//! department may read, limited to the token's city when it has one, with
//! the committee's small cells suppressed.

use chrono::Utc;
use pathway_projections::{
    ProjectionError, Table, Value, models,
    runtime::{self, ReadStore},
    views::city_of,
};
use pathway_server::token::Claims;

use crate::Console;

/// Why a page cannot be shown.
#[derive(Debug)]
pub(crate) enum ConsoleError {
    /// The department (or its city) may not see this; the catalog key says why.
    Forbidden(&'static str),
    NotFound,
    /// The log or a read model failed.
    Unavailable(String),
}

/// Rows of one table, every column key first.
pub(crate) struct Rows {
    pub(crate) table: Table,
    pub(crate) rows: Vec<Vec<Value>>,
}

/// One row, read by column name.
#[derive(Clone, Copy)]
pub(crate) struct Row<'a> {
    table: &'a Table,
    values: &'a [Value],
}

impl Rows {
    pub(crate) fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row {
            table: &self.table,
            values,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }
}

impl<'a> Row<'a> {
    pub(crate) fn get(&self, column: &str) -> &'a Value {
        static NULL: Value = Value::Null;
        self.table
            .columns()
            .position(|c| c.name == column)
            .and_then(|i| self.values.get(i))
            .unwrap_or(&NULL)
    }

    pub(crate) fn text(&self, column: &str) -> &'a str {
        match self.get(column) {
            Value::Text(s) => s,
            _ => "",
        }
    }

    pub(crate) fn int(&self, column: &str) -> i64 {
        match self.get(column) {
            Value::Int(i) => *i,
            _ => 0,
        }
    }

    pub(crate) fn flag(&self, column: &str) -> bool {
        matches!(self.get(column), Value::Bool(true))
    }

    /// A count that may be suppressed.
    pub(crate) fn cell(&self, column: &str) -> Cell {
        match self.get(column) {
            Value::Int(i) => Cell::Count(*i),
            Value::Text(t) => Cell::Suppressed(t.clone()),
            _ => Cell::Count(0),
        }
    }
}

/// A person count as a reader may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    Count(i64),
    /// Below the small-cell minimum: the text shown instead (`<5`).
    Suppressed(String),
}

/// A sum of cells: the visible counts, and whether a suppressed one was left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Total {
    pub(crate) visible: i64,
    pub(crate) partial: bool,
}

impl Total {
    pub(crate) fn add(&mut self, cell: &Cell) {
        match cell {
            Cell::Count(n) => self.visible += n,
            Cell::Suppressed(_) => self.partial = true,
        }
    }
}

/// The rows of `model.table` the signed-in department may see, filtered by
/// `filters` (columns equal to values).
pub(crate) async fn rows<S>(
    console: &Console<S>,
    claims: &Claims,
    model: &str,
    table: &str,
    filters: Vec<(&'static str, Value)>,
) -> Result<Rows, ConsoleError> {
    let Scope {
        table,
        filters,
        region_city,
    } = scope(console, claims, model, table, filters, true)?;
    let ((), mut rows) = read(console, model, table, move |target, model, table| {
        Ok(((), runtime::query(target, model, table, &filters)?))
    })
    .await?;
    if let (Some(city), Some(i)) = (
        region_city,
        table.columns().position(|c| c.name == "region"),
    ) {
        rows.retain(|row| matches!(&row[i], Value::Text(r) if city_of(r) == city));
    }
    Ok(Rows { table, rows })
}

/// Which rows [`search_rows`] finds: columns equal to values, a search
/// (text columns, any of which starts with the text), and which page.
#[derive(Debug, Clone)]
pub(crate) struct Find {
    pub(crate) filters: Vec<(&'static str, Value)>,
    pub(crate) search: Option<(&'static [&'static str], String)>,
    /// From 1.
    pub(crate) page: usize,
    pub(crate) per_page: usize,
}

/// One page (`page` from 1, `per_page` rows) of the rows of `model.table`
/// the signed-in department may see that match `filters` (columns equal to
/// values) and `search`, and how many match in all: selected and counted by
/// the read store, so a large table is never read whole. The table must
/// have a `city` column when the token is a city's.
pub(crate) async fn search_rows<S>(
    console: &Console<S>,
    claims: &Claims,
    model: &str,
    table: &str,
    find: Find,
) -> Result<(u64, Rows), ConsoleError> {
    let Find {
        filters,
        search,
        page,
        per_page,
    } = find;
    let Scope { table, filters, .. } = scope(console, claims, model, table, filters, false)?;
    let offset = page.saturating_sub(1).saturating_mul(per_page);
    let (total, rows) = read(console, model, table, move |target, model, table| {
        let search = search
            .as_ref()
            .map(|(columns, prefix)| runtime::Search { columns, prefix });
        runtime::search_page(target, model, table, &filters, search, offset, per_page)
    })
    .await?;
    Ok((total, Rows { table, rows }))
}

/// A read of one table the signed-in department may make.
struct Scope {
    table: Table,
    /// The caller's filters, `city` set to the token's city when it has one.
    filters: Vec<(&'static str, Value)>,
    /// The token's city, for a table limited to it by its `region` column
    /// (rows kept after the read).
    region_city: Option<String>,
}

/// Checks the department may read `model.table` and limits `filters` to the
/// token's city: by the table's `city` column, or (when `by_region`) by its
/// `region` column; a city's token on a table with neither is refused.
fn scope<S>(
    console: &Console<S>,
    claims: &Claims,
    model: &str,
    table: &str,
    mut filters: Vec<(&'static str, Value)>,
    by_region: bool,
) -> Result<Scope, ConsoleError> {
    if !console.ctx.policy.may_read(&claims.dept, model) {
        return Err(ConsoleError::Forbidden("forbidden.model"));
    }
    let table = table_of(model, table)?;
    let has = |c: &str| table.columns().any(|col| col.name == c);
    let mut region_city = None;
    if let Some(city) = &claims.city {
        if has("city") {
            filters.retain(|(c, _)| *c != "city");
            filters.push(("city", Value::Text(city.clone())));
        } else if by_region && has("region") {
            region_city = Some(city.clone());
        } else {
            return Err(ConsoleError::Forbidden("forbidden.city_scope"));
        }
    }
    Ok(Scope {
        table,
        filters,
        region_city,
    })
}

/// Runs `read` on the read store off the async runtime, then suppresses the
/// committee's small cells in the rows it returned.
async fn read<S, T: Send + 'static>(
    console: &Console<S>,
    model: &str,
    table: Table,
    read: impl FnOnce(&ReadStore, &str, &Table) -> Result<(T, Vec<Vec<Value>>), ProjectionError>
    + Send
    + 'static,
) -> Result<(T, Vec<Vec<Value>>), ConsoleError> {
    let target = console.ctx.read_store.clone();
    let model = model.to_owned();
    let today = Utc::now().date_naive();
    tokio::task::spawn_blocking(move || {
        let (extra, mut rows) = read(&target, &model, &table)?;
        models::suppress_small_cells(&model, &table, &mut rows, today);
        Ok::<_, ProjectionError>((extra, rows))
    })
    .await
    .map_err(|e| ConsoleError::Unavailable(format!("query task: {e}")))?
    .map_err(|e| ConsoleError::Unavailable(e.to_string()))
}

/// The table `name` of `model`.
pub(crate) fn table_of(model: &str, name: &str) -> Result<Table, ConsoleError> {
    let projection = models::by_name(model)
        .ok_or_else(|| ConsoleError::Unavailable(format!("no read model {model}")))?;
    projection
        .tables()
        .iter()
        .find(|t| t.name == name)
        .copied()
        .ok_or_else(|| ConsoleError::Unavailable(format!("no table {model}.{name}")))
}
