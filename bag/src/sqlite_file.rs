//! One sqlite3 file (rosbag2's storage up to Humble): `topics(id, name, type,
//! serialization_format, …)` and `messages(id, topic_id, timestamp, data)`, read by column name
//! (older bags lack some columns), messages a page at a time in time order.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags, params};

use crate::BagError;
use crate::read::{Damage, RawMessage, TopicInfo};

/// Messages fetched per query.
const PAGE: i64 = 256;

fn open(path: &Path) -> Result<Connection, BagError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| BagError::format(path, format!("not a sqlite3 bag: {e}")))
}

fn sql_error(path: &Path, e: rusqlite::Error) -> BagError {
    BagError::format(path, format!("not a rosbag2 sqlite3 file: {e}"))
}

/// The topics of the file with their message counts.
pub(crate) fn topics(path: &Path) -> Result<Vec<TopicInfo>, BagError> {
    let conn = open(path)?;
    let mut statement = conn
        .prepare(
            "SELECT t.name, t.type, t.serialization_format, \
             (SELECT COUNT(*) FROM messages m WHERE m.topic_id = t.id) \
             FROM topics t ORDER BY t.id",
        )
        .map_err(|e| sql_error(path, e))?;
    let rows = statement
        .query_map([], |row| {
            Ok(TopicInfo {
                name: row.get(0)?,
                type_name: row.get(1)?,
                encoding: row.get(2)?,
                count: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
            })
        })
        .map_err(|e| sql_error(path, e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| sql_error(path, e))
}

/// The messages of one sqlite3 file, by receive time.
pub(crate) struct SqliteMessages {
    path: PathBuf,
    conn: Connection,
    topics: HashMap<i64, (Arc<str>, Arc<str>, bool)>,
    after: (i64, i64),
    page: VecDeque<RawMessage>,
    done: bool,
}

impl SqliteMessages {
    pub(crate) fn open(path: &Path) -> Result<Self, BagError> {
        let conn = open(path)?;
        let topics = {
            let mut statement = conn
                .prepare("SELECT id, name, type, serialization_format FROM topics")
                .map_err(|e| sql_error(path, e))?;
            let rows = statement
                .query_map([], |row| {
                    let format: String = row.get(3)?;
                    Ok((
                        row.get::<_, i64>(0)?,
                        (
                            Arc::from(row.get::<_, String>(1)?.as_str()),
                            Arc::from(row.get::<_, String>(2)?.as_str()),
                            format == "cdr",
                        ),
                    ))
                })
                .map_err(|e| sql_error(path, e))?;
            rows.collect::<Result<HashMap<_, _>, _>>()
                .map_err(|e| sql_error(path, e))?
        };
        Ok(Self {
            path: path.to_owned(),
            conn,
            topics,
            after: (i64::MIN, i64::MIN),
            page: VecDeque::new(),
            done: false,
        })
    }

    pub(crate) fn next(&mut self, damage: &mut Damage) -> Option<RawMessage> {
        loop {
            if let Some(message) = self.page.pop_front() {
                return Some(message);
            }
            if self.done {
                return None;
            }
            if let Err(error) = self.fetch(damage) {
                damage.truncated_files += 1;
                damage.note(format!(
                    "{}: read up to where it is damaged ({error}); the rest is skipped",
                    self.path.display()
                ));
                self.done = true;
            }
        }
    }

    fn fetch(&mut self, damage: &mut Damage) -> Result<(), rusqlite::Error> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, topic_id, timestamp, data FROM messages \
             WHERE (timestamp, id) > (?1, ?2) ORDER BY timestamp, id LIMIT ?3",
        )?;
        let mut rows = statement.query(params![self.after.0, self.after.1, PAGE])?;
        let mut fetched = 0;
        while let Some(row) = rows.next()? {
            fetched += 1;
            let id: i64 = row.get(0)?;
            let topic_id: i64 = row.get(1)?;
            let timestamp: i64 = row.get(2)?;
            self.after = (timestamp, id);
            let Some((topic, type_name, cdr)) = self.topics.get(&topic_id) else {
                damage.unusable_messages += 1;
                continue;
            };
            let Ok(log_time_ns) = u64::try_from(timestamp) else {
                damage.bad_records += 1;
                continue;
            };
            if !cdr {
                damage.unusable_messages += 1;
                continue;
            }
            self.page.push_back(RawMessage {
                topic: Arc::clone(topic),
                type_name: Arc::clone(type_name),
                log_time_ns,
                data: row.get(3)?,
            });
        }
        if fetched < PAGE {
            self.done = true;
        }
        Ok(())
    }
}
