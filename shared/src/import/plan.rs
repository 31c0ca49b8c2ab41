//! The plan of an import: the changes a checked file makes, written to S3 before the first
//! change as gzipped JSON lines (each user as the table stores it), so that a resumed apply
//! writes exactly what the first delivery planned; and the one rule that splits it into the
//! chunks of the apply, each one `TransactWriteItems`, and says which earlier chunks each must
//! wait for (the rest may be written at the same time).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::Planned;
use crate::domain::User;
use crate::store::items;

/// Items one `TransactWriteItems` may hold.
const MAX_TRANSACTION_ITEMS: usize = 100;
/// Items every chunk spends on its journal entry. (The lock and the tenant's counters are not in
/// the chunk's transaction: the counters move once for the whole plan before the first chunk,
/// and the lock's lease is checked between chunks, so chunks in flight touch no common item.)
const CHUNK_OVERHEAD: usize = 1;

/// Invitations one release transaction carries (beside its journal entry).
pub const INVITATIONS_PER_CHUNK: usize = MAX_TRANSACTION_ITEMS - 1;

/// A plan file that can't be written or read back: the job's own data is damaged, and no
/// retry mends it.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The compressed stream failed.
    #[error("the plan's compressed stream")]
    Io(#[source] std::io::Error),
    /// A line is not a change (line 0: writing).
    #[error("plan line {line}")]
    Line {
        /// The line, from 1.
        line: usize,
        /// Why it is not one.
        #[source]
        source: serde_json::Error,
    },
    /// A user in it is not a valid user.
    #[error("a user in the plan")]
    User(#[source] Box<crate::store::StoreError>),
    /// It names a deleted user (plans hold live users only).
    #[error("the plan names a deleted user")]
    DeletedUser,
}

/// The number of items `change` writes.
fn items_of(change: &Planned) -> usize {
    match change {
        Planned::Create { .. } | Planned::Delete { .. } => 3,
        Planned::Update { before, after, .. } => {
            1 + 2 * usize::from(before.profile.email.key() != after.profile.email.key())
                + 2 * usize::from(before.profile.login_id.key() != after.profile.login_id.key())
        }
    }
}

/// The uniqueness claims a change writes or deletes (login id and email, each as the item key
/// part that names it).
fn claims_of(change: &Planned) -> impl Iterator<Item = String> {
    let (before, after) = match change {
        Planned::Create { user, .. } => (None, Some(&**user)),
        Planned::Update { before, after, .. } => (Some(&**before), Some(&**after)),
        Planned::Delete { user, .. } => (Some(&**user), None),
    };
    let keys = |u: &User| {
        [
            format!("login:{}", u.profile.login_id.key()),
            format!("email:{}", u.profile.email.key()),
        ]
    };
    let moved = |before: &User, after: &User| {
        before.profile.login_id.key() != after.profile.login_id.key()
            || before.profile.email.key() != after.profile.email.key()
    };
    let touched: Vec<String> = match (before, after) {
        (Some(b), Some(a)) if !moved(b, a) => Vec::new(),
        (b, a) => b.into_iter().chain(a).flat_map(keys).collect(),
    };
    touched.into_iter()
}

/// Where chunks end, the one rule [`chunk_ranges`] and [`PlanChunks`] share: a chunk ends
/// before a change that would pass the transaction's item budget (with its journal entry), or
/// that touches a claim a change already in the chunk touches. One transaction may touch an
/// item only once, and a file may delete a user and give their email or login id to a new user
/// further down: the delete commits in one chunk, the create in a later one, which waits for it
/// (see [`Chunk::waits_for`]).
#[derive(Default)]
struct ChunkBounds {
    used: usize,
    claims: foldhash::HashSet<String>,
}

impl ChunkBounds {
    /// Adds `change` to the chunk; `false` (and the chunk started again with it) if it had to
    /// begin a new one.
    fn add(&mut self, change: &Planned) -> bool {
        let budget = MAX_TRANSACTION_ITEMS - CHUNK_OVERHEAD;
        let n = items_of(change);
        let claims: Vec<String> = claims_of(change).collect();
        let fits = self.used + n <= budget && claims.iter().all(|c| !self.claims.contains(c));
        if !fits {
            self.used = 0;
            self.claims.clear();
        }
        self.used += n;
        self.claims.extend(claims);
        fits
    }
}

/// Splits `changes` into consecutive chunks that each fit one transaction (see
/// [`ChunkBounds`]). The same changes always split the same way.
pub fn chunk_ranges(changes: &[Planned]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut bounds = ChunkBounds::default();
    let mut start = 0;
    for (i, change) in changes.iter().enumerate() {
        if !bounds.add(change) && i > start {
            ranges.push(start..i);
            start = i;
        }
    }
    if start < changes.len() {
        ranges.push(start..changes.len());
    }
    ranges
}

/// One line of a plan file: a change with its users as the table stores them.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum PlanEntry {
    Create {
        line: usize,
        user: Box<items::UserItem>,
    },
    Update {
        line: usize,
        before: Box<items::UserItem>,
        after: Box<items::UserItem>,
    },
    Delete {
        line: usize,
        user: Box<items::UserItem>,
    },
}

fn stored(u: &User) -> Box<items::UserItem> {
    Box::new(items::user_item(u, u.status.into(), true, None))
}

fn live(u: Box<items::UserItem>) -> Result<Box<User>, PlanError> {
    items::user_from_user_item(*u)
        .map_err(|e| PlanError::User(Box::new(e)))?
        .map(Box::new)
        .ok_or(PlanError::DeletedUser)
}

/// Writes a plan as gzipped JSON lines, one change per line, each user as the table stores it,
/// so a resumed apply reads back exactly the changes the first delivery planned. Compressed as
/// it is written: a 100,000-user plan is a few megabytes, not a hundred.
pub fn encode_plan(changes: &[Planned]) -> Result<Vec<u8>, PlanError> {
    use std::io::Write;
    let failed = PlanError::Io;
    let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for change in changes {
        let entry = match change {
            Planned::Create { line, user } => PlanEntry::Create {
                line: *line,
                user: stored(user),
            },
            Planned::Update {
                line,
                before,
                after,
            } => PlanEntry::Update {
                line: *line,
                before: stored(before),
                after: stored(after),
            },
            Planned::Delete { line, user } => PlanEntry::Delete {
                line: *line,
                user: stored(user),
            },
        };
        serde_json::to_writer(&mut out, &entry)
            .map_err(|e| PlanError::Line { line: 0, source: e })?;
        out.write_all(b"\n").map_err(failed)?;
    }
    out.finish().map_err(failed)
}

/// Reads a plan written by [`encode_plan`] one change at a time, so that applying a plan holds
/// its compressed bytes and one chunk of users, never every user at once.
pub struct PlanReader<'a> {
    lines: std::io::Split<std::io::BufReader<flate2::read::GzDecoder<&'a [u8]>>>,
    line: usize,
}

impl<'a> PlanReader<'a> {
    /// A reader of the plan `bytes`.
    pub fn new(bytes: &'a [u8]) -> PlanReader<'a> {
        use std::io::BufRead;
        PlanReader {
            lines: std::io::BufReader::new(flate2::read::GzDecoder::new(bytes)).split(b'\n'),
            line: 0,
        }
    }

    fn change(&self, text: &[u8]) -> Result<Planned, PlanError> {
        let entry: PlanEntry = serde_json::from_slice(text).map_err(|source| PlanError::Line {
            line: self.line,
            source,
        })?;
        Ok(match entry {
            PlanEntry::Create { line, user } => Planned::Create {
                line,
                user: live(user)?,
            },
            PlanEntry::Update {
                line,
                before,
                after,
            } => Planned::Update {
                line,
                before: live(before)?,
                after: live(after)?,
            },
            PlanEntry::Delete { line, user } => Planned::Delete {
                line,
                user: live(user)?,
            },
        })
    }
}

impl Iterator for PlanReader<'_> {
    type Item = Result<Planned, PlanError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let text = match self.lines.next()? {
                Ok(text) => text,
                Err(e) => return Some(Err(PlanError::Io(e))),
            };
            self.line += 1;
            if !text.is_empty() {
                return Some(self.change(&text));
            }
        }
    }
}

/// Reads a whole plan written by [`encode_plan`].
pub fn decode_plan(bytes: &[u8]) -> Result<Vec<Planned>, PlanError> {
    PlanReader::new(bytes).collect()
}

/// One chunk of a plan: its place, its changes, and the earlier chunks that must be committed
/// before it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Its place in the plan, from 0 (the journal entry's number).
    pub index: u32,
    /// The changes, in plan order.
    pub changes: Vec<Planned>,
    /// Earlier chunks touching a claim this one touches (a delete freeing an email a later
    /// create takes): this chunk's conditions hold only once they are committed. Empty for
    /// most chunks, so they may all be in flight at once.
    pub waits_for: Vec<u32>,
}

/// Groups changes, read one at a time, into the chunks [`chunk_ranges`] describes, each with
/// the earlier chunks it waits for.
pub struct PlanChunks<I> {
    changes: I,
    next: Option<Planned>,
    bounds: ChunkBounds,
    index: u32,
    /// The last chunk that touched each claim (by a 64-bit hash of its key: a collision only
    /// makes a chunk wait when it need not).
    last_touch: foldhash::HashMap<u64, u32>,
}

impl<I: Iterator<Item = Result<Planned, PlanError>>> PlanChunks<I> {
    /// Chunks of `changes`.
    pub fn new(changes: I) -> PlanChunks<I> {
        PlanChunks {
            changes,
            next: None,
            bounds: ChunkBounds::default(),
            index: 0,
            last_touch: foldhash::HashMap::default(),
        }
    }

    fn waits_for(&mut self, chunk: &[Planned]) -> Vec<u32> {
        use std::hash::BuildHasher as _;
        let hasher = foldhash::quality::FixedState::with_seed(0);
        let mut waits = Vec::new();
        for claim in chunk.iter().flat_map(claims_of) {
            let key = hasher.hash_one(claim.as_str());
            if let Some(earlier) = self.last_touch.insert(key, self.index)
                && earlier != self.index
                && !waits.contains(&earlier)
            {
                waits.push(earlier);
            }
        }
        waits.sort_unstable();
        waits
    }
}

impl<I: Iterator<Item = Result<Planned, PlanError>>> Iterator for PlanChunks<I> {
    type Item = Result<Chunk, PlanError>;

    fn next(&mut self) -> Option<Self::Item> {
        // The change that ended the last chunk begins this one (and is counted in `bounds`).
        let mut chunk: Vec<Planned> = self.next.take().into_iter().collect();
        for change in self.changes.by_ref() {
            let change = match change {
                Ok(change) => change,
                Err(e) => return Some(Err(e)),
            };
            if !self.bounds.add(&change) && !chunk.is_empty() {
                self.next = Some(change);
                break;
            }
            chunk.push(change);
        }
        if chunk.is_empty() {
            return None;
        }
        let waits_for = self.waits_for(&chunk);
        let index = self.index;
        self.index += 1;
        Some(Ok(Chunk {
            index,
            changes: chunk,
            waits_for,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;
    use crate::domain::{DisplayName, Email, LoginId, Profile, Role, Status, UserId};
    use chrono::TimeZone as _;
    use chrono::Utc;

    fn user(n: usize, status: Status) -> User {
        let login = format!("u{n}");
        User::new(
            TenantId::parse("acme").unwrap(),
            UserId::generate(),
            Profile::minimal(
                LoginId::parse(&login).unwrap(),
                Email::parse(&format!("{login}@example.com")).unwrap(),
                DisplayName::parse(&format!("髙橋 ① {n}")).unwrap(),
                Role::Member,
            ),
            status,
            Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap(),
        )
    }

    #[test]
    fn a_plan_reads_back_exactly_as_it_was_written() {
        let before = user(2, Status::Active);
        let mut after = before.clone();
        after.profile.name = DisplayName::parse("新しい名前").unwrap();
        after.status = Status::Suspended;
        let changes = vec![
            Planned::Create {
                line: 2,
                user: Box::new(user(1, Status::Invited)),
            },
            Planned::Update {
                line: 3,
                before: Box::new(before),
                after: Box::new(after),
            },
            Planned::Delete {
                line: 4,
                user: Box::new(user(3, Status::Suspended)),
            },
        ];
        let encoded = encode_plan(&changes).unwrap();
        assert_eq!(&encoded[..2], [0x1f, 0x8b], "gzip");
        assert_eq!(decode_plan(&encoded).unwrap(), changes);
        assert!(decode_plan(b"not gzip").is_err());
        let mut corrupt = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut corrupt, b"\n{\"op\": \"create\"}\n").unwrap();
        let e = decode_plan(&corrupt.finish().unwrap()).unwrap_err();
        assert!(e.to_string().contains("plan line 2"), "{e}");
    }

    #[test]
    fn chunks_fit_one_transaction_with_their_journal_entry() {
        let creates: Vec<Planned> = (0..100)
            .map(|n| Planned::Create {
                line: n + 2,
                user: Box::new(user(n, Status::Invited)),
            })
            .collect();
        let ranges = chunk_ranges(&creates);
        assert_eq!(ranges.len(), 4, "{ranges:?}");
        assert_eq!(ranges[0], 0..33);
        assert_eq!(ranges[3], 99..100);
        for r in &ranges {
            assert!(r.len() * 3 + CHUNK_OVERHEAD <= MAX_TRANSACTION_ITEMS);
        }
        assert!(chunk_ranges(&[]).is_empty());
    }

    #[test]
    fn a_claim_a_chunk_frees_is_taken_in_a_later_chunk() {
        let gone = user(1, Status::Active);
        let mut heir = user(2, Status::Invited);
        heir.profile.email = gone.profile.email.clone();
        let mut same_login = user(3, Status::Invited);
        same_login.profile.login_id = gone.profile.login_id.clone();
        let changes = vec![
            Planned::Delete {
                line: 2,
                user: Box::new(gone),
            },
            Planned::Create {
                line: 3,
                user: Box::new(user(4, Status::Invited)),
            },
            Planned::Create {
                line: 4,
                user: Box::new(heir),
            },
            Planned::Create {
                line: 5,
                user: Box::new(same_login),
            },
        ];
        assert_eq!(chunk_ranges(&changes), vec![0..2, 2..4]);
        let encoded = encode_plan(&changes).unwrap();
        let chunks: Vec<Chunk> = PlanChunks::new(PlanReader::new(&encoded))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            chunks,
            vec![
                Chunk {
                    index: 0,
                    changes: changes[0..2].to_vec(),
                    waits_for: vec![]
                },
                Chunk {
                    index: 1,
                    changes: changes[2..4].to_vec(),
                    waits_for: vec![0]
                }
            ],
            "the chunk taking the freed claims waits for the one freeing them"
        );
    }

    #[test]
    fn a_plan_read_a_change_at_a_time_splits_into_the_same_chunks() {
        let mut changes: Vec<Planned> = Vec::new();
        for n in 0..250 {
            changes.push(match n % 4 {
                0 | 1 => Planned::Create {
                    line: n + 2,
                    user: Box::new(user(n, Status::Invited)),
                },
                2 => Planned::Update {
                    line: n + 2,
                    before: Box::new(user(n, Status::Active)),
                    after: Box::new(user(n, Status::Suspended)),
                },
                _ => Planned::Delete {
                    line: n + 2,
                    user: Box::new(user(n, Status::Active)),
                },
            });
        }
        let encoded = encode_plan(&changes).unwrap();
        let chunks: Vec<Chunk> = PlanChunks::new(PlanReader::new(&encoded))
            .collect::<Result<_, _>>()
            .unwrap();
        let ranges = chunk_ranges(&changes);
        assert!(ranges.len() > 3, "{ranges:?}");
        assert_eq!(chunks.len(), ranges.len());
        for (n, (chunk, range)) in chunks.iter().zip(ranges).enumerate() {
            assert_eq!(chunk.changes.as_slice(), &changes[range]);
            assert_eq!(chunk.index as usize, n);
            // Every user is touched once: no chunk waits for another.
            assert!(chunk.waits_for.is_empty(), "{:?}", chunk.waits_for);
        }
        assert_eq!(
            PlanChunks::new(PlanReader::new(&encode_plan(&[]).unwrap())).count(),
            0
        );
    }
}
