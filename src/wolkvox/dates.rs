//! Reading the `date` of a billing row. Its format is not documented (only NLP's page says "month
//! and year of report"), so every usual spelling is read, by hand (a large answer has 60,000 dates
//! and `strptime` costs microseconds):
//!
//! - ISO, with or without a time: `2026-11-05`, `2026-11-05 10:00:00`, `2026-11-05T10:00`, with
//!   optional fractional seconds and an optional `Z` or offset, which is ignored: the date is the
//!   date as written. `/` or `.` may stand for `-`.
//! - Compact: `20261105` and `20261105100000`.
//! - Day or month first: `05/11/2026` (Latin America) or `11/05/2026` (United States), `-` or `.`
//!   in place of `/`, day and month of one or two digits, with an optional ` HH:MM[:SS]`.
//! - Month only: `2026-11`, `2026/11`, `11/2026`: the month's last day, at its last instant.
//!
//! Nothing about zones: a date is the civil date-time the row spells. Not read: two-digit years,
//! `AM`/`PM`, month names.
//!
//! Which of day and month comes first in `AA/BB/YYYY` is settled for a whole answer, never row by
//! row: [`settle`] (or [`DateOrder::narrow`], one row at a time as rows stream in) keeps the
//! orders under which every row's date is a valid date inside the [`Window`] that was asked for,
//! and [`parse`] (or [`Reading::resolve`]) reads with the order chosen.

use jiff::civil::{Date, DateTime, Time};

pub(crate) use super::window::Window;

/// Which field of `AA/BB/YYYY` is the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DayMonthOrder {
    /// `DD/MM/YYYY`, as in Latin America.
    DayFirst,
    /// `MM/DD/YYYY`, as in the United States.
    MonthFirst,
}

/// The day/month orders still possible for an answer: those under which every row's date that
/// fits some order is a valid date inside the window. A row that fits neither order (a date of
/// another month under both readings) says nothing about the order and is left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DateOrder {
    day_first: bool,
    month_first: bool,
}

impl Default for DateOrder {
    fn default() -> DateOrder {
        DateOrder::ANY
    }
}

impl From<DayMonthOrder> for DateOrder {
    fn from(order: DayMonthOrder) -> DateOrder {
        match order {
            DayMonthOrder::DayFirst => DateOrder::DAY_FIRST,
            DayMonthOrder::MonthFirst => DateOrder::MONTH_FIRST,
        }
    }
}

impl DateOrder {
    /// Both orders possible (nothing seen yet, or nothing told them apart): read day first.
    pub(crate) const ANY: DateOrder = DateOrder { day_first: true, month_first: true };
    pub(crate) const DAY_FIRST: DateOrder = DateOrder { day_first: true, month_first: false };
    pub(crate) const MONTH_FIRST: DateOrder = DateOrder { day_first: false, month_first: true };
    /// No order fits every row: only dates that are valid under one order alone are read.
    pub(crate) const NONE: DateOrder = DateOrder { day_first: false, month_first: false };

    /// Keeps the orders that fit one more row.
    pub(crate) fn narrow(&mut self, reading: &Reading, window: &Window) {
        if let Reading::Ambiguous { day_first, month_first } = reading {
            let fits = |at: &Option<DateTime>| at.is_some_and(|at| window.contains(at.date()));
            let (day_first, month_first) = (fits(day_first), fits(month_first));
            if day_first || month_first {
                self.day_first &= day_first;
                self.month_first &= month_first;
            }
        }
    }

    /// The order to read with: day first when both fit, none when neither does.
    pub(crate) fn order(self) -> Option<DayMonthOrder> {
        if self.day_first {
            Some(DayMonthOrder::DayFirst)
        } else if self.month_first {
            Some(DayMonthOrder::MonthFirst)
        } else {
            None
        }
    }
}

/// The first pass over an answer's dates: the day/month orders that fit all of them (see
/// [`DateOrder`]), for [`parse`] to read them with. The decoder narrows the order row by row as
/// the rows stream in; these two read a whole list at once, for the tests.
#[cfg(test)]
pub(crate) fn settle<'a>(dates: impl IntoIterator<Item = &'a str>, window: &Window) -> DateOrder {
    let mut order = DateOrder::ANY;
    for reading in dates.into_iter().filter_map(Reading::of) {
        order.narrow(&reading, window);
    }
    order
}

/// Reads one date with the order settled for its answer; `None` if it does not read as a date.
#[cfg(test)]
pub(crate) fn parse(text: &str, order: DateOrder) -> Option<DateTime> {
    Reading::of(text)?.resolve(order)
}

/// A date string read once, before the answer's order is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reading {
    /// A spelling with one meaning (also `AA/BB/YYYY` with `AA` = `BB`).
    Fixed(DateTime),
    /// `AA/BB/YYYY` read both ways; at least one of them is a valid date.
    Ambiguous { day_first: Option<DateTime>, month_first: Option<DateTime> },
}

impl Reading {
    /// `None` if `text` is no date under any order.
    pub(crate) fn of(text: &str) -> Option<Reading> {
        let mut text = Cursor { text: text.trim().as_bytes(), at: 0 };
        let run = text.run();
        match run {
            4 => {
                let year = text.number(4)?;
                let separator = text.separator()?;
                let month = text.field(1, 2)?;
                if text.done() {
                    return month_end(year, month).map(Reading::Fixed);
                }
                if !text.eat(separator) {
                    return None;
                }
                let day = text.field(1, 2)?;
                let time = text.time()?;
                Some(Reading::Fixed(date(year, month, day)?.to_datetime(time)))
            }
            8 | 14 => {
                let (year, month, day) = (text.number(4)?, text.number(2)?, text.number(2)?);
                let time = if run == 14 {
                    let (hour, minute, second) =
                        (text.number(2)?, text.number(2)?, text.number(2)?);
                    text.seconds_and_zone(hour, minute, Some(second))?
                } else {
                    text.time()?
                };
                Some(Reading::Fixed(date(year, month, day)?.to_datetime(time)))
            }
            1 | 2 => {
                let first = text.number(run)?;
                let separator = text.separator()?;
                match text.run() {
                    4 => {
                        let year = text.number(4)?;
                        if !text.done() {
                            return None;
                        }
                        month_end(year, first).map(Reading::Fixed)
                    }
                    1 | 2 => {
                        let second = text.field(1, 2)?;
                        if !text.eat(separator) || text.run() != 4 {
                            return None;
                        }
                        let year = text.number(4)?;
                        let time = text.time()?;
                        let day_first = date(year, second, first).map(|d| d.to_datetime(time));
                        if first == second {
                            return day_first.map(Reading::Fixed);
                        }
                        let month_first = date(year, first, second).map(|d| d.to_datetime(time));
                        (day_first.is_some() || month_first.is_some())
                            .then_some(Reading::Ambiguous { day_first, month_first })
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The date under `order`. With no order ([`DateOrder::NONE`]), an ambiguous spelling is read
    /// only if one order alone makes it a valid date.
    pub(crate) fn resolve(self, order: DateOrder) -> Option<DateTime> {
        match self {
            Reading::Fixed(at) => Some(at),
            Reading::Ambiguous { day_first, month_first } => match order.order() {
                Some(DayMonthOrder::DayFirst) => day_first,
                Some(DayMonthOrder::MonthFirst) => month_first,
                None => match (day_first, month_first) {
                    (Some(at), None) | (None, Some(at)) => Some(at),
                    _ => None,
                },
            },
        }
    }
}

fn date(year: i16, month: i16, day: i16) -> Option<Date> {
    Date::new(year, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
}

/// A month-only date: the last instant of the month's last day.
fn month_end(year: i16, month: i16) -> Option<DateTime> {
    Some(date(year, month, 1)?.last_of_month().to_datetime(Time::MAX))
}

/// A position in the (trimmed) text of a date.
struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.at == self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    /// How many digits follow.
    fn run(&self) -> usize {
        self.text[self.at..].iter().take_while(|b| b.is_ascii_digit()).count()
    }

    /// The next `len` bytes as a number (at most 4 digits, so it fits).
    fn number(&mut self, len: usize) -> Option<i16> {
        let digits = self.text.get(self.at..self.at + len)?;
        let value = digits
            .iter()
            .try_fold(0i16, |n, &b| b.is_ascii_digit().then(|| n * 10 + i16::from(b - b'0')))?;
        self.at += len;
        Some(value)
    }

    /// A whole run of `min..=max` digits.
    fn field(&mut self, min: usize, max: usize) -> Option<i16> {
        let run = self.run();
        if run < min || run > max {
            return None;
        }
        self.number(run)
    }

    /// `-`, `/` or `.` between a date's fields.
    fn separator(&mut self) -> Option<u8> {
        let separator = self.peek().filter(|b| matches!(b, b'-' | b'/' | b'.'))?;
        self.at += 1;
        Some(separator)
    }

    /// What follows a date: nothing (midnight), or `T` or spaces and `HH:MM[:SS[.fff]]`, then an
    /// optional zone.
    fn time(&mut self) -> Option<Time> {
        if self.done() {
            return Some(Time::midnight());
        }
        if !self.eat(b'T') && !self.eat(b't') {
            if !self.eat(b' ') {
                return None;
            }
            while self.eat(b' ') {}
        }
        let hour = self.field(1, 2)?;
        if !self.eat(b':') {
            return None;
        }
        let minute = self.number(2)?;
        let second = if self.eat(b':') { Some(self.number(2)?) } else { None };
        self.seconds_and_zone(hour, minute, second)
    }

    /// After the minutes (and seconds, if any): a fraction of a second (only after seconds), then
    /// an optional `Z` or offset (ignored), then the end.
    fn seconds_and_zone(&mut self, hour: i16, minute: i16, second: Option<i16>) -> Option<Time> {
        let mut nanos = 0;
        if second.is_some() && (self.eat(b'.') || self.eat(b',')) {
            let run = self.run();
            if run == 0 {
                return None;
            }
            // Nanoseconds: the first nine digits, padded with zeros; any further ones are dropped.
            let digits = &self.text[self.at..self.at + run];
            nanos =
                (0..9).fold(0, |n, k| n * 10 + digits.get(k).map_or(0, |&d| i32::from(d - b'0')));
            self.at += run;
        }
        while self.eat(b' ') {}
        match self.peek() {
            None => {}
            Some(b'Z' | b'z') => self.at += 1,
            Some(b'+' | b'-') => {
                self.at += 1;
                self.number(2)?;
                if self.eat(b':') || self.run() == 2 {
                    self.number(2)?;
                }
            }
            Some(_) => return None,
        }
        if !self.done() {
            return None;
        }
        let small = |n: i16| i8::try_from(n).ok();
        Time::new(small(hour)?, small(minute)?, small(second.unwrap_or(0))?, nanos).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date as day;

    fn at(y: i16, m: i8, d: i8, h: i8, mi: i8, s: i8) -> Option<DateTime> {
        Some(day(y, m, d).at(h, mi, s, 0))
    }

    fn november() -> Window {
        Window::new(day(2026, 11, 1), day(2026, 11, 30))
    }

    #[test]
    fn iso_spellings() {
        let ten = at(2026, 11, 5, 10, 0, 0);
        for text in [
            "2026-11-05 10:00:00",
            "2026-11-05T10:00:00",
            "2026-11-05t10:00:00",
            "2026-11-05 10:00",
            "2026-11-05T10:00",
            "2026-11-05  10:00:00",
            "2026/11/05 10:00:00",
            "2026.11.05 10:00:00",
            "2026-11-05T10:00:00Z",
            "2026-11-05T10:00:00z",
            "2026-11-05T10:00:00+02:00",
            "2026-11-05T10:00:00-0500",
            "2026-11-05T10:00:00-05",
            "2026-11-05 10:00:00 -05:00",
            " 2026-11-05 10:00:00 ",
            "2026-11-5 10:00:00",
        ] {
            assert_eq!(parse(text, DateOrder::ANY), ten, "{text}");
        }
        for text in ["2026-11-05", "2026/11/05", " 2026-11-05 ", "2026-11-5"] {
            assert_eq!(parse(text, DateOrder::ANY), at(2026, 11, 5, 0, 0, 0), "{text}");
        }
        let fraction = |nanos| Some(day(2026, 11, 5).at(10, 0, 1, nanos));
        assert_eq!(parse("2026-11-05T10:00:01.5", DateOrder::ANY), fraction(500_000_000));
        assert_eq!(parse("2026-11-05 10:00:01,25Z", DateOrder::ANY), fraction(250_000_000));
        assert_eq!(
            parse("2026-11-05T10:00:01.123456789+00:00", DateOrder::ANY),
            fraction(123_456_789)
        );
        assert_eq!(parse("2026-11-05T10:00:01.1234567891", DateOrder::ANY), fraction(123_456_789));
    }

    #[test]
    fn offsets_are_ignored_the_date_is_as_written() {
        assert_eq!(parse("2026-11-30T23:30:00-05:00", DateOrder::ANY), at(2026, 11, 30, 23, 30, 0));
        assert_eq!(parse("2026-12-01T01:00:00+09:00", DateOrder::ANY), at(2026, 12, 1, 1, 0, 0));
    }

    #[test]
    fn compact_spellings() {
        assert_eq!(parse("20261105", DateOrder::ANY), at(2026, 11, 5, 0, 0, 0));
        assert_eq!(parse("20261105103007", DateOrder::ANY), at(2026, 11, 5, 10, 30, 7));
        assert_eq!(parse(" 20261105103007 ", DateOrder::ANY), at(2026, 11, 5, 10, 30, 7));
        for wrong in ["2026110", "202611051030", "20261305", "20261105250000", "202611051030070"] {
            assert_eq!(parse(wrong, DateOrder::ANY), None, "{wrong}");
        }
    }

    #[test]
    fn day_or_month_first_spellings() {
        for text in ["13/11/2026", "13-11-2026", "13.11.2026"] {
            assert_eq!(parse(text, DateOrder::ANY), at(2026, 11, 13, 0, 0, 0), "{text}");
        }
        for text in [
            "13/11/2026 10:30",
            "13/11/2026 10:30:00",
            "13/11/2026T10:30:00",
            "13-11-2026 10:30:00Z",
        ] {
            assert_eq!(parse(text, DateOrder::ANY), at(2026, 11, 13, 10, 30, 0), "{text}");
        }
        assert_eq!(parse("5/11/2026 9:05", DateOrder::DAY_FIRST), at(2026, 11, 5, 9, 5, 0));
        assert_eq!(parse("5/11/2026 9:05", DateOrder::MONTH_FIRST), at(2026, 5, 11, 9, 5, 0));
        assert_eq!(
            parse("11/13/2026 10:30:00", DateOrder::MONTH_FIRST),
            at(2026, 11, 13, 10, 30, 0)
        );
        // The same number twice reads the same either way.
        assert_eq!(
            Reading::of("11/11/2026"),
            Some(Reading::Fixed(day(2026, 11, 11).at(0, 0, 0, 0)))
        );
        for wrong in [
            "13/11-2026",
            "13/11/26",
            "13/11/20266",
            "113/11/2026",
            "13//2026",
            "13/11/2026 10",
            "13/11/2026 10:3",
        ] {
            assert_eq!(Reading::of(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn month_only_stands_for_the_months_last_instant() {
        let end = |y, m, d| Some(day(y, m, d).to_datetime(Time::MAX));
        for text in ["2026-11", "2026/11", "2026.11", "11/2026", "11-2026", "11.2026", " 11/2026 "]
        {
            assert_eq!(parse(text, DateOrder::ANY), end(2026, 11, 30), "{text}");
        }
        assert_eq!(parse("2/2028", DateOrder::ANY), end(2028, 2, 29));
        assert_eq!(parse("2026-2", DateOrder::ANY), end(2026, 2, 28));
        assert_eq!(parse("12/2026", DateOrder::MONTH_FIRST), end(2026, 12, 31));
        for wrong in ["2026-13", "13/2026", "0/2026", "2026-00", "2026-11-", "11/2026 10:00"] {
            assert_eq!(parse(wrong, DateOrder::ANY), None, "{wrong}");
        }
    }

    #[test]
    fn invalid_dates_and_garbage_are_none() {
        for wrong in [
            "31/02/2026",
            "30/02/2026",
            "2026-13-01",
            "2026-02-30 10:00:00",
            "2026-11-03 24:00:00",
            "2026-11-03 10:60:00",
            "2026-11-03 10:00:60",
            "2026-11/03",
            "2026-1a-03",
            "2026-11-03 10:00:00 soon",
            "2026-11-03 10:00:00+",
            "2026-11-03T",
            "2026-11-03 10:00:00.",
            "03/11/26 soon",
            "yesterday",
            "",
            "   ",
            "2026",
            "-2026-11-03",
            "2026-11-03\u{a0}10:00:00",
            "２０２６-11-03",
        ] {
            for order in
                [DateOrder::ANY, DateOrder::DAY_FIRST, DateOrder::MONTH_FIRST, DateOrder::NONE]
            {
                assert_eq!(parse(wrong, order), None, "{wrong} {order:?}");
            }
        }
        // Neither reading is a date: not even a question of order.
        assert_eq!(Reading::of("31/31/2026"), None);
        assert_eq!(Reading::of("00/11/2026"), None);
        assert_eq!(Reading::of("13/13/2026"), None);
        // One reading is a date: the row is read if its answer's order allows it.
        assert_eq!(
            Reading::of("13/11/2026"),
            Some(Reading::Ambiguous { day_first: at(2026, 11, 13, 0, 0, 0), month_first: None })
        );
    }

    #[test]
    fn an_answer_in_day_first_order_is_read_day_first() {
        let order = settle(["05/11/2026", "13/11/2026 08:00:00", "2026-11-20"], &november());
        assert_eq!(order.order(), Some(DayMonthOrder::DayFirst));
        assert_eq!(parse("05/11/2026", order), at(2026, 11, 5, 0, 0, 0));
        assert_eq!(parse("13/11/2026", order), at(2026, 11, 13, 0, 0, 0));
        // Even without a row past the 12th: the other reading falls outside the window.
        let order = settle(["05/11/2026", "06/11/2026"], &november());
        assert_eq!(order, DateOrder::DAY_FIRST);
        assert_eq!(parse("06/11/2026", order), at(2026, 11, 6, 0, 0, 0));
    }

    #[test]
    fn an_answer_in_month_first_order_is_read_month_first() {
        let order = settle(["11/05/2026", "11/13/2026"], &november());
        assert_eq!(order.order(), Some(DayMonthOrder::MonthFirst));
        assert_eq!(parse("11/05/2026", order), at(2026, 11, 5, 0, 0, 0));
        assert_eq!(parse("11/13/2026", order), at(2026, 11, 13, 0, 0, 0));
        let order = settle(["11/05/2026 10:00", "11/06/2026 10:00"], &november());
        assert_eq!(parse("11/05/2026 10:00", order), at(2026, 11, 5, 10, 0, 0));
    }

    #[test]
    fn when_both_orders_fit_day_first_wins() {
        // A window that spans both readings: May 11 and Nov 5 both inside.
        let year = Window::new(day(2026, 1, 1), day(2026, 12, 31));
        let order = settle(["05/11/2026", "06/11/2026"], &year);
        assert_eq!(order, DateOrder::ANY);
        assert_eq!(parse("05/11/2026", order), at(2026, 11, 5, 0, 0, 0));
        // Without any window, validity alone decides.
        assert_eq!(settle(["05/11/2026", "13/11/2026"], &Window::ANY), DateOrder::DAY_FIRST);
        assert_eq!(settle(["11/05/2026", "11/13/2026"], &Window::ANY), DateOrder::MONTH_FIRST);
        // No ambiguous date at all: nothing to settle.
        assert_eq!(
            settle(["2026-11-05", "20261106", "garbage", "11/2026"], &november()),
            DateOrder::ANY
        );
    }

    #[test]
    fn when_no_order_fits_every_row_only_unambiguous_rows_are_read() {
        let order = settle(["13/11/2026", "11/14/2026", "05/11/2026"], &november());
        assert_eq!(order, DateOrder::NONE);
        assert_eq!(order.order(), None);
        assert_eq!(parse("13/11/2026", order), at(2026, 11, 13, 0, 0, 0));
        assert_eq!(parse("11/14/2026", order), at(2026, 11, 14, 0, 0, 0));
        assert_eq!(parse("05/11/2026", order), None);
        assert_eq!(parse("2026-11-05", order), at(2026, 11, 5, 0, 0, 0));
    }

    #[test]
    fn a_row_outside_the_window_under_both_orders_does_not_vote() {
        // Oct 5 / May 10: neither in November, so it cannot tell the orders apart.
        let order = settle(["05/10/2026", "11/13/2026"], &november());
        assert_eq!(order, DateOrder::MONTH_FIRST);
        assert_eq!(parse("05/10/2026", order), at(2026, 5, 10, 0, 0, 0));
        // Under a settled order a date valid only the other way is not read.
        assert_eq!(parse("13/11/2026", order), None);
    }

    #[test]
    fn settling_row_by_row_is_settling_the_whole_answer() {
        let dates = ["05/11/2026", "2026-11-02", "13/11/2026", "junk"];
        let mut order = DateOrder::ANY;
        for reading in dates.iter().filter_map(|d| Reading::of(d)) {
            order.narrow(&reading, &november());
        }
        assert_eq!(order, settle(dates, &november()));
        assert_eq!(DateOrder::from(DayMonthOrder::MonthFirst), DateOrder::MONTH_FIRST);
        assert_eq!(DateOrder::default(), DateOrder::ANY);
    }

    #[test]
    fn windows() {
        assert_eq!(
            Window::month_to_date(day(2026, 11, 27)),
            Window::new(day(2026, 11, 1), day(2026, 11, 27))
        );
        assert!(november().contains(day(2026, 11, 30)) && !november().contains(day(2026, 12, 1)));
        assert!(Window::ANY.contains(Date::MIN) && Window::ANY.contains(Date::MAX));
    }
}
