//! When a rule is in force: an absolute window (`not_before`, `not_after`) and a weekly schedule in a
//! time zone (`schedule`, `time_zone`).
//!
//! The evaluator never reads the clock: it gets the time as an argument ([`Window::is_open`]), and
//! [`Window::next_edge`] tells the run loop when the next rule opens or closes, so podium re-decides
//! exactly then, not on the next event.
//!
//! A schedule is a list of entries separated by `;`, each days then a time range:
//! `mon-fri 09:00-17:00; sat 10:00-12:30`. Days are `mon` … `sun`, ranges (`mon-fri`, also across the
//! week end as `fri-mon`) and comma lists (`mon,wed`); times are `HH:MM` in the rule's time zone, the
//! end may be `24:00`, and a range must end after it starts (split one that crosses midnight).

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

/// One schedule entry: on these weekdays, from `start` to `end` minutes after local midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    days: [bool; 7],
    start: u32,
    end: u32,
}

/// When a rule is in force.
#[derive(Debug, Clone)]
pub struct Window {
    not_before: Option<Timestamp>,
    not_after: Option<Timestamp>,
    schedule: Vec<Entry>,
    time_zone: TimeZone,
}

impl Window {
    /// Reads the columns; `None` when none is set (the rule is always in force). Errors name the
    /// column.
    pub fn from_columns(
        not_before: Option<&str>,
        not_after: Option<&str>,
        schedule: Option<&str>,
        time_zone: Option<&str>,
    ) -> Result<Option<Window>, String> {
        fn blank(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let (not_before, not_after, schedule, time_zone) = (
            blank(not_before),
            blank(not_after),
            blank(schedule),
            blank(time_zone),
        );
        if not_before.is_none() && not_after.is_none() && schedule.is_none() {
            if let Some(zone) = time_zone {
                TimeZone::get(zone).map_err(|e| format!("time_zone {zone:?}: {e}"))?;
            }
            return Ok(None);
        }
        let instant = |column: &str, text: &str| {
            text.parse::<Timestamp>().map_err(|e| {
                format!(
                    "{column} {text:?} is not an RFC 3339 time such as 2026-12-01T09:00:00Z: {e}"
                )
            })
        };
        let not_before = not_before.map(|t| instant("not_before", t)).transpose()?;
        let not_after = not_after.map(|t| instant("not_after", t)).transpose()?;
        if let (Some(start), Some(end)) = (not_before, not_after)
            && end <= start
        {
            return Err(format!(
                "the window never opens: not_after {end} is not after not_before {start}"
            ));
        }
        let time_zone = match time_zone {
            Some(zone) => TimeZone::get(zone).map_err(|e| format!("time_zone {zone:?}: {e}"))?,
            None => TimeZone::UTC,
        };
        let schedule = match schedule {
            Some(text) => parse_schedule(text).map_err(|e| format!("schedule {text:?}: {e}"))?,
            None => Vec::new(),
        };
        Ok(Some(Window {
            not_before,
            not_after,
            schedule,
            time_zone,
        }))
    }

    /// Whether the rule is in force at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        if self.not_before.is_some_and(|start| now < start) {
            return false;
        }
        if self.not_after.is_some_and(|end| now >= end) {
            return false;
        }
        if self.schedule.is_empty() {
            return true;
        }
        let local = now.to_zoned(self.time_zone.clone());
        let day = local.weekday().to_monday_zero_offset() as usize;
        let minute = u32::from(local.hour() as u8) * 60 + u32::from(local.minute() as u8);
        self.schedule
            .iter()
            .any(|entry| entry.days[day] && entry.start <= minute && minute < entry.end)
    }

    /// Whether the window can never be open again after `now` (its `not_after` has passed).
    pub fn is_over(&self, now: Timestamp) -> bool {
        self.not_after.is_some_and(|end| now >= end)
    }

    /// The first moment after `now` at which [`Window::is_open`] may change.
    pub fn next_edge(&self, now: Timestamp) -> Option<Timestamp> {
        let mut edges: Vec<Timestamp> = [self.not_before, self.not_after]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .collect();
        if !self.schedule.is_empty() {
            let today = now.to_zoned(self.time_zone.clone()).date();
            for offset in 0..=7 {
                let Ok(date) = today.checked_add(offset.days()) else {
                    continue;
                };
                let day = date.weekday().to_monday_zero_offset() as usize;
                for entry in self.schedule.iter().filter(|e| e.days[day]) {
                    for minute in [entry.start, entry.end] {
                        let moment = if minute == 24 * 60 {
                            date.checked_add(1.day())
                                .ok()
                                .map(|next| next.to_datetime(Time::midnight()))
                        } else {
                            Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0)
                                .ok()
                                .map(|time| date.to_datetime(time))
                        };
                        if let Some(instant) = moment
                            .and_then(|dt| dt.to_zoned(self.time_zone.clone()).ok())
                            .map(|zoned| zoned.timestamp())
                            .filter(|t| *t > now)
                        {
                            edges.push(instant);
                        }
                    }
                }
            }
        }
        edges.into_iter().min()
    }
}

fn parse_schedule(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (days, times) = part.rsplit_once(char::is_whitespace).ok_or_else(|| {
            format!("{part:?} needs days and a time range, e.g. mon-fri 09:00-17:00")
        })?;
        let days = parse_days(days.trim())?;
        let (start, end) = times
            .split_once('-')
            .ok_or_else(|| format!("{times:?} is not a time range such as 09:00-17:00"))?;
        let (start, end) = (parse_time(start)?, parse_time(end)?);
        if end <= start {
            return Err(format!(
                "{times:?} ends before it starts (split a range that crosses midnight)"
            ));
        }
        entries.push(Entry { days, start, end });
    }
    if entries.is_empty() {
        return Err("no entry (e.g. mon-fri 09:00-17:00)".into());
    }
    Ok(entries)
}

fn parse_day(text: &str) -> Result<usize, String> {
    let text = text.trim().to_ascii_lowercase();
    DAYS.iter()
        .position(|(name, _)| text.starts_with(name) && name.len() >= 3)
        .filter(|_| text.len() >= 3)
        .ok_or_else(|| format!("unknown day {text:?} (mon, tue, wed, thu, fri, sat, sun)"))
}

fn parse_days(text: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for item in text.split(',') {
        match item.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (parse_day(first)?, parse_day(last)?);
                let mut day = first;
                loop {
                    days[day] = true;
                    if day == last {
                        break;
                    }
                    day = (day + 1) % 7;
                }
            }
            None => days[parse_day(item)?] = true,
        }
    }
    Ok(days)
}

fn parse_time(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let parsed = text.split_once(':').and_then(|(h, m)| {
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    });
    parsed.ok_or_else(|| format!("{text:?} is not a time HH:MM between 00:00 and 24:00"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn window(schedule: &str, zone: &str) -> Window {
        Window::from_columns(None, None, Some(schedule), Some(zone))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn test_absolute_window() {
        let w = Window::from_columns(
            Some("2026-12-01T09:00:00Z"),
            Some("2026-12-01T10:00:00Z"),
            None,
            None,
        )
        .unwrap()
        .unwrap();
        assert!(!w.is_open(at("2026-12-01T08:59:59Z")));
        assert!(w.is_open(at("2026-12-01T09:00:00Z")));
        assert!(!w.is_open(at("2026-12-01T10:00:00Z")));
        assert_eq!(
            w.next_edge(at("2026-12-01T08:00:00Z")),
            Some(at("2026-12-01T09:00:00Z"))
        );
        assert_eq!(
            w.next_edge(at("2026-12-01T09:00:00Z")),
            Some(at("2026-12-01T10:00:00Z"))
        );
        assert_eq!(w.next_edge(at("2026-12-01T10:00:00Z")), None);
        assert!(w.is_over(at("2026-12-01T10:00:00Z")));
    }

    #[test]
    fn test_weekly_schedule_in_a_time_zone() {
        // 2026-11-23 is a Monday; Berlin is UTC+1 in November.
        let w = window("mon-fri 09:00-17:00; sat 10:00-12:30", "Europe/Berlin");
        assert!(!w.is_open(at("2026-11-23T07:59:00Z")));
        assert!(w.is_open(at("2026-11-23T08:00:00Z")));
        assert!(!w.is_open(at("2026-11-23T16:00:00Z")));
        assert!(
            w.is_open(at("2026-11-28T09:30:00Z")),
            "saturday 10:30 local"
        );
        assert!(!w.is_open(at("2026-11-29T10:00:00Z")), "sunday");
        assert_eq!(
            w.next_edge(at("2026-11-23T07:00:00Z")),
            Some(at("2026-11-23T08:00:00Z"))
        );
        assert_eq!(
            w.next_edge(at("2026-11-23T08:00:00Z")),
            Some(at("2026-11-23T16:00:00Z"))
        );
        assert_eq!(
            w.next_edge(at("2026-11-27T16:00:00Z")),
            Some(at("2026-11-28T09:00:00Z"))
        );
        // Across the week end and up to midnight.
        let w = window("fri-mon 20:00-24:00", "UTC");
        assert!(w.is_open(at("2026-11-29T23:59:00Z")), "sunday");
        assert!(!w.is_open(at("2026-11-25T21:00:00Z")), "wednesday");
        assert_eq!(
            w.next_edge(at("2026-11-23T21:00:00Z")),
            Some(at("2026-11-24T00:00:00Z"))
        );
    }

    #[test]
    fn test_daylight_saving_edges_follow_the_zone() {
        // Berlin switches to summer time on 2027-03-28: 09:00 local is 08:00Z before, 07:00Z after.
        let w = window("mon-sun 09:00-10:00", "Europe/Berlin");
        assert_eq!(
            w.next_edge(at("2027-03-27T09:30:00Z")),
            Some(at("2027-03-28T07:00:00Z"))
        );
    }

    #[test]
    fn test_invalid_windows_name_the_column() {
        let err = |nb: Option<&str>, na: Option<&str>, s: Option<&str>, z: Option<&str>| {
            Window::from_columns(nb, na, s, z).unwrap_err()
        };
        assert_eq!(
            err(
                Some("2026-12-01T10:00:00Z"),
                Some("2026-12-01T09:00:00Z"),
                None,
                None
            ),
            "the window never opens: not_after 2026-12-01T09:00:00Z is not after not_before 2026-12-01T10:00:00Z"
        );
        assert!(
            err(Some("tomorrow"), None, None, None)
                .starts_with("not_before \"tomorrow\" is not an RFC 3339 time")
        );
        assert!(
            err(None, None, Some("mon-fri 9-5"), None)
                .starts_with("schedule \"mon-fri 9-5\": \"9\" is not a time")
        );
        assert_eq!(
            err(None, None, Some("mon 18:00-02:00"), None),
            "schedule \"mon 18:00-02:00\": \"18:00-02:00\" ends before it starts (split a range that crosses midnight)"
        );
        assert_eq!(
            err(None, None, Some("funday 09:00-10:00"), None),
            "schedule \"funday 09:00-10:00\": unknown day \"funday\" (mon, tue, wed, thu, fri, sat, sun)"
        );
        assert!(
            err(None, None, Some("mon 09:00-10:00"), Some("Mars/Olympus"))
                .starts_with("time_zone \"Mars/Olympus\"")
        );
    }
}
