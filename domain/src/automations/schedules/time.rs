//! Cron expressions evaluated in the contact's own time zone: the next
//! occurrences, and what a day light saving change does to them.

use super::*;

/// The instant of a wall-clock time in `tz`: a time in a spring-forward gap
/// is moved forward by the gap; a time in a fall-back overlap is the earlier.
pub fn local_instant(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        chrono::LocalResult::None => {
            // Read it with the offset in force before the gap.
            let before = tz
                .offset_from_local_datetime(&(naive - DST_MARGIN))
                .earliest()
                .map(|o| o.fix().local_minus_utc())
                .unwrap_or(0);
            Utc.from_utc_datetime(&(naive - Duration::seconds(i64::from(before))))
        }
    }
}

/// A parsed cron expression, evaluated on wall-clock time.
#[derive(Debug, Clone)]
pub struct CronExpr {
    source: String,
    schedule: cron::Schedule,
}

impl CronExpr {
    /// Parse and check an expression (see the module docs for the forms).
    pub fn parse(raw: &str) -> Result<CronExpr, String> {
        let source = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if source.is_empty() {
            return Err("the cron expression is empty".into());
        }
        if source.len() > 200 {
            return Err("the cron expression is longer than 200 characters".into());
        }
        let normalized = if source.starts_with('@') {
            source.clone()
        } else {
            let fields: Vec<&str> = source.split(' ').collect();
            match fields.len() {
                5 => {
                    let dow = crontab_days_of_week(fields[4])?;
                    format!(
                        "0 {} {} {} {} {dow}",
                        fields[0], fields[1], fields[2], fields[3]
                    )
                }
                6 | 7 => source.clone(),
                n => {
                    return Err(format!(
                        "'{source}' has {n} fields; a cron expression has five (minute hour day-of-month month day-of-week), or six or seven with seconds first (and a year)"
                    ))
                }
            }
        };
        let schedule = cron::Schedule::from_str(&normalized)
            .map_err(|e| format!("'{source}' is not a valid cron expression: {e}"))?;
        let expr = CronExpr { source, schedule };
        if expr.schedule.upcoming(Utc).next().is_none() {
            return Err(format!("'{}' never fires", expr.source));
        }
        Ok(expr)
    }

    /// Parse an expression for a schedule to a person: it may fire at most
    /// once a minute.
    pub fn parse_for_schedule(raw: &str) -> Result<CronExpr, String> {
        let expr = Self::parse(raw)?;
        // Wall-clock times, read as UTC: enough to judge the spacing.
        let upcoming: Vec<DateTime<Utc>> = expr.schedule.upcoming(Utc).take(20).collect();
        if upcoming
            .windows(2)
            .any(|w| w[1] - w[0] < Duration::seconds(60))
        {
            return Err(format!(
                "'{}' fires more often than once a minute",
                expr.source
            ));
        }
        Ok(expr)
    }

    /// The expression as given (whitespace normalized).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Wall-clock candidates from `from` (naive), in order.
    fn candidates(&self, from: NaiveDateTime) -> impl Iterator<Item = NaiveDateTime> + '_ {
        self.schedule
            .after(&Utc.from_utc_datetime(&from))
            .take(MAX_SCAN)
            .map(|t| t.naive_utc())
    }

    /// The first occurrence strictly after `after`, in `tz`.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.with_timezone(&tz).naive_local() - DST_MARGIN;
        let mut best: Option<(DateTime<Utc>, NaiveDateTime)> = None;
        for naive in self.candidates(start) {
            if let Some((_, best_naive)) = best {
                // Later wall-clock times cannot map to an earlier instant
                // once past the largest shift.
                if naive > best_naive + DST_MARGIN {
                    break;
                }
            }
            let at = local_instant(tz, naive);
            if at > after && best.is_none_or(|(b, _)| at < b) {
                best = Some((at, naive));
            }
        }
        best.map(|(at, _)| at)
    }

    /// The first occurrence strictly after `after`, in UTC (Heimdall's own jobs).
    pub fn next_after_utc(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_after(Tz::UTC, after)
    }

    /// Occurrences in `(after, until]` in `tz`, keeping the latest `keep`
    /// (ascending), and how many there were in all.
    pub fn occurrences(
        &self,
        tz: Tz,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        keep: usize,
    ) -> (Vec<DateTime<Utc>>, usize) {
        let start = after.with_timezone(&tz).naive_local() - DST_MARGIN;
        let end = until.with_timezone(&tz).naive_local() + DST_MARGIN;
        let mut kept = BTreeSet::new();
        let mut total = 0;
        for naive in self.candidates(start) {
            if naive > end {
                break;
            }
            let at = local_instant(tz, naive);
            if at > after && at <= until && kept.insert(at) {
                total += 1;
                if kept.len() > keep.max(1) {
                    kept.pop_first();
                }
            }
        }
        (kept.into_iter().collect(), total)
    }
}

/// A five-field day-of-week (0-7, Sunday 0 or 7, or names; lists, ranges,
/// steps) as the `cron` crate's names, which mean the same day in both.
pub(super) fn crontab_days_of_week(field: &str) -> Result<String, String> {
    const NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    if field == "*" || field == "?" {
        return Ok(field.to_string());
    }
    let value = |s: &str| -> Result<u32, String> {
        if let Ok(n) = s.parse::<u32>() {
            return if n <= 7 {
                Ok(n)
            } else {
                Err(format!("day of week {n} is not 0-7"))
            };
        }
        NAMES
            .iter()
            .position(|d| d.eq_ignore_ascii_case(s))
            .map(|p| p as u32)
            .ok_or_else(|| format!("'{s}' is not a day of the week"))
    };
    let mut days = BTreeSet::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s >= 1)
                    .ok_or_else(|| format!("'{s}' is not a step"))?;
                (r, Some(step))
            }
            None => (part, None),
        };
        let (lo, hi) = match range.split_once('-') {
            _ if range == "*" => (0, 6),
            Some((a, b)) => (value(a)?, value(b)?),
            None => {
                let a = value(range)?;
                (a, if step.is_some() { 6 } else { a })
            }
        };
        if lo > hi {
            return Err(format!("'{range}' runs backwards"));
        }
        let mut d = lo;
        while d <= hi {
            days.insert(d % 7);
            d += step.unwrap_or(1);
        }
    }
    Ok(days
        .into_iter()
        .map(|d| NAMES[d as usize])
        .collect::<Vec<_>>()
        .join(","))
}
