//! TEMPORARY stub, replaced by the generated table (helper in progress).

use chrono::{DateTime, NaiveTime, Utc};

pub struct InferredZones {
    zones: &'static [chrono_tz::Tz],
    prefix: &'static str,
}

impl InferredZones {
    pub fn zones(&self) -> &'static [chrono_tz::Tz] {
        self.zones
    }
    pub fn primary(&self) -> chrono_tz::Tz {
        self.zones[0]
    }
    pub fn prefix(&self) -> &'static str {
        self.prefix
    }
    pub fn is_single(&self) -> bool {
        self.zones.len() == 1
    }
}

pub fn infer(_e164: &str) -> Option<InferredZones> {
    None
}

pub fn within_hours_everywhere(
    zones: &[chrono_tz::Tz],
    now: DateTime<Utc>,
    start: NaiveTime,
    end: NaiveTime,
) -> bool {
    zones.iter().all(|tz| {
        let t = now.with_timezone(tz).time();
        t >= start && t < end
    })
}

pub fn next_within_hours_everywhere(
    zones: &[chrono_tz::Tz],
    now: DateTime<Utc>,
    start: NaiveTime,
    end: NaiveTime,
) -> Option<DateTime<Utc>> {
    let mut t = now;
    for _ in 0..(8 * 24 * 4) {
        if within_hours_everywhere(zones, t, start, end) {
            return Some(t);
        }
        t += chrono::Duration::minutes(15);
    }
    None
}
