//! How often a systemd calendar expression fires and how long a duration is: what the
//! derived staleness alerts (backups, restore tests) and their load-time checks need.

/// Seconds in a duration such as `30s`, `1h30m`, `90d` (the `duration` value kind).
pub fn duration_seconds(d: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut num = String::new();
    let mut chars = d.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            "ms"
        } else {
            match c {
                's' => "s",
                'm' => "m",
                'h' => "h",
                'd' => "d",
                'w' => "w",
                'y' => "y",
                _ => return None,
            }
        };
        let n: u64 = num.parse().ok()?;
        num.clear();
        let mult = match unit {
            "ms" => 0,
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            "w" => 7 * 86400,
            _ => 365 * 86400,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
    }
    num.is_empty().then_some(total)
}

/// An upper bound on the gap between two runs of a systemd calendar expression: the named
/// schedules, and `[weekdays] [date] [time]` where the coarsest restriction decides (a day
/// of the month: 31 days, a day of the year: 366, weekdays: 7, a fixed hour: 1 day, any
/// hour: 1 hour). None when the expression is of another form.
pub fn calendar_period(expr: &str) -> Option<u64> {
    const HOUR: u64 = 3600;
    const DAY: u64 = 86400;
    let named = match expr {
        "minutely" => Some(60),
        "hourly" => Some(HOUR),
        "daily" => Some(DAY),
        "weekly" => Some(7 * DAY),
        "monthly" => Some(31 * DAY),
        "quarterly" => Some(92 * DAY),
        "semiannually" => Some(184 * DAY),
        "yearly" | "annually" => Some(366 * DAY),
        _ => None,
    };
    if named.is_some() {
        return named;
    }
    let mut parts: Vec<&str> = expr.split_whitespace().collect();
    let weekdays = parts.first().is_some_and(|w| weekday_spec(w));
    if weekdays {
        parts.remove(0);
    }
    let (date, time) = match parts.as_slice() {
        [d, t] if d.contains('-') && t.contains(':') => (Some(*d), Some(*t)),
        [t] if t.contains(':') => (None, Some(*t)),
        [d] if d.contains('-') => (Some(*d), None),
        [] if weekdays => (None, None),
        _ => return None,
    };
    let date_period = match date {
        None | Some("*-*-*") => None,
        Some(d) => {
            let f: Vec<&str> = d.split('-').collect();
            let digits =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == ',');
            match f.as_slice() {
                [_, "*", day] if digits(day) => Some(31 * DAY),
                [_, month, day] if digits(month) && digits(day) => Some(366 * DAY),
                _ => return None,
            }
        }
    };
    let time_period = match time {
        None => DAY,
        Some(t) => {
            let hour = t.split(':').next().unwrap_or_default();
            if hour == "*" {
                HOUR
            } else if !hour.is_empty()
                && hour
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, ',' | '/' | '.'))
            {
                DAY
            } else {
                return None;
            }
        }
    };
    Some(date_period.unwrap_or(if weekdays { 7 * DAY } else { time_period }))
}

/// `Mon`, `Mon,Thu`, `Mon..Fri`, `Sat,Sun`: systemd weekday lists and ranges.
fn weekday_spec(w: &str) -> bool {
    const DAYS: [&str; 14] = [
        "Mon",
        "Tue",
        "Wed",
        "Thu",
        "Fri",
        "Sat",
        "Sun",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    w.split(',')
        .flat_map(|part| part.split(".."))
        .all(|d| DAYS.contains(&d))
}

/// `seconds` as a Prometheus duration (`2d`, `90m`, `45s`): the largest unit that divides it.
pub fn prometheus_duration(seconds: u64) -> String {
    for (unit, n) in [("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)] {
        if seconds >= n && seconds % n == 0 {
            return format!("{}{unit}", seconds / n);
        }
    }
    format!("{seconds}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_calendars() {
        assert_eq!(duration_seconds("30s"), Some(30));
        assert_eq!(duration_seconds("1h30m"), Some(5400));
        assert_eq!(duration_seconds("2d"), Some(172800));
        assert_eq!(duration_seconds("500ms"), Some(0));
        assert_eq!(duration_seconds("5"), None);
        assert_eq!(calendar_period("daily"), Some(86400));
        assert_eq!(calendar_period("*-*-* 03:00"), Some(86400));
        assert_eq!(calendar_period("Mon,Thu 03:00"), Some(7 * 86400));
        assert_eq!(calendar_period("Sun *-*-* 02:30:00"), Some(7 * 86400));
        assert_eq!(calendar_period("*:0/30"), Some(3600));
        assert_eq!(calendar_period("Mon..Fri *-*-* 03:00:00"), Some(7 * 86400));
        assert_eq!(calendar_period("*-*-01 04:00"), Some(31 * 86400));
        assert_eq!(calendar_period("*-12-24 18:00"), Some(366 * 86400));
        assert_eq!(calendar_period("Sat"), Some(7 * 86400));
        assert_eq!(calendar_period("every day"), None);
        assert_eq!(
            calendar_period("*-*-* 00/6:00"),
            Some(86400),
            "an upper bound"
        );
        assert_eq!(calendar_period("*-*-1/2 03:00"), None);
        assert_eq!(prometheus_duration(2 * 86400), "2d");
        assert_eq!(prometheus_duration(14 * 86400), "2w");
        assert_eq!(prometheus_duration(5400), "90m");
        assert_eq!(prometheus_duration(45), "45s");
    }
}
