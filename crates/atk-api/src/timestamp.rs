//! Timestamps on the verify answer, written as chrono's serde writes them
//! (RFC 3339 in UTC: `Z`, and 0, 3, 6 or 9 fraction digits, the fewest
//! that hold the value) but without going through `Display`: on a cached
//! verification, chrono's formatting machinery cost a twentieth of the
//! whole request. Dates outside years 0 to 9999, and leap seconds, go
//! through chrono.

use chrono::{DateTime, Timelike, Utc};

/// The longest text written here: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const LONGEST: usize = 30;

/// `at` as a JSON string, as chrono's serde writes it.
pub fn write_json(at: &DateTime<Utc>, out: &mut Vec<u8>) {
    let mut text = [0; LONGEST];
    out.push(b'"');
    match rfc3339(at, &mut text) {
        Some(written) => out.extend_from_slice(written.as_bytes()),
        None => out.extend_from_slice(
            at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                .as_bytes(),
        ),
    }
    out.push(b'"');
}

/// `at` written into `text`, or `None` when chrono must write it.
fn rfc3339<'t>(at: &DateTime<Utc>, text: &'t mut [u8; LONGEST]) -> Option<&'t str> {
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    let seconds = at.timestamp();
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let year = u64::try_from(year).ok().filter(|year| *year <= 9999)?;
    let second_of_day = second_of_day as u64;
    let mut out = Out { text, length: 0 };
    out.digits(year, 4);
    out.byte(b'-');
    out.digits(month, 2);
    out.byte(b'-');
    out.digits(day, 2);
    out.byte(b'T');
    out.digits(second_of_day / 3600, 2);
    out.byte(b':');
    out.digits(second_of_day / 60 % 60, 2);
    out.byte(b':');
    out.digits(second_of_day % 60, 2);
    let fraction = match nanos {
        0 => None,
        n if n % 1_000_000 == 0 => Some((n / 1_000_000, 3)),
        n if n % 1_000 == 0 => Some((n / 1_000, 6)),
        n => Some((n, 9)),
    };
    if let Some((value, places)) = fraction {
        out.byte(b'.');
        out.digits(u64::from(value), places);
    }
    out.byte(b'Z');
    let Out { text, length } = out;
    std::str::from_utf8(&text[..length]).ok()
}

struct Out<'t> {
    text: &'t mut [u8; LONGEST],
    length: usize,
}

impl Out<'_> {
    fn byte(&mut self, byte: u8) {
        self.text[self.length] = byte;
        self.length += 1;
    }

    /// `value` in exactly `places` decimal digits (it has no more).
    fn digits(&mut self, value: u64, places: u32) {
        for place in (0..places).rev() {
            self.byte(b'0' + (value / 10u64.pow(place) % 10) as u8);
        }
    }
}

/// Year, month and day of a count of days since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for the proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u64, day as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(at: DateTime<Utc>) -> String {
        let mut out = Vec::new();
        write_json(&at, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn whole_seconds_have_no_fraction_and_milliseconds_three_digits() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(written(at), "\"2027-01-15T08:00:00Z\"");
        let at = DateTime::from_timestamp(1_800_000_000, 120_000_000).unwrap();
        assert_eq!(written(at), "\"2027-01-15T08:00:00.120Z\"");
    }

    proptest! {
        /// Every instant from year -300 to 12000 (both sides of the
        /// range written here), with every kind of fraction, comes out
        /// as chrono's serde writes it.
        #[test]
        fn timestamps_are_written_exactly_as_chrono_writes_them(
            seconds in -71_000_000_000_i64..316_000_000_000,
            nanos in prop_oneof![
                Just(0_u32),
                (0_u32..1000).prop_map(|n| n * 1_000_000),
                (0_u32..1_000_000).prop_map(|n| n * 1_000),
                0_u32..1_000_000_000,
            ],
        ) {
            let at = DateTime::from_timestamp(seconds, nanos).unwrap();
            prop_assert_eq!(written(at), serde_json::to_string(&at).unwrap());
        }
    }
}
