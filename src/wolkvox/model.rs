//! Tolerant decoding of a billing response, accepting every quirk in `shared/wolkvox-api.md`:
//! `code` as number or string, `error` as null/"null"/"", `data` as array, one object or null,
//! `items` as a (padded) string or a number. Rows that carry no usable number are skipped and
//! counted, never turned into 0. The format of `date` is not documented either: [`super::dates`] reads
//! every usual spelling (ISO with or without a time, `YYYYMMDD[HHMMSS]`, `DD/MM/YYYY` or
//! `MM/DD/YYYY` with an optional time, month only), the order of day and month settled for the
//! whole answer.

use std::borrow::Cow;
use std::fmt;

use indexmap::IndexMap;
use jiff::civil::DateTime;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::dates::{DateOrder, DayMonthOrder, Reading, Window};

/// One usage series after de-duplication: the latest row and the month's highest value.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Series {
    pub operation: String,
    pub description: String,
    pub latest: f64,
    pub max: f64,
    /// The latest date among the series' rows, in the target's zone (None: no row had one). An
    /// operation that stopped appearing keeps its last value; this says how old it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_at: Option<DateTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// `items` missing, null or blank.
    BlankItems,
    /// `items` present but not a finite number.
    InvalidItems,
    /// A row that is not a JSON object.
    MalformedRow,
}

impl SkipReason {
    pub const ALL: [SkipReason; 3] =
        [SkipReason::BlankItems, SkipReason::InvalidItems, SkipReason::MalformedRow];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::BlankItems => "blank_items",
            SkipReason::InvalidItems => "invalid_items",
            SkipReason::MalformedRow => "malformed_row",
        }
    }
}

/// A good answer: its series in the order the response first named them, and what was skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub rows: usize,
    pub series: Vec<Series>,
    pub skipped: Vec<(SkipReason, u64)>,
}

/// What a body said, before the HTTP status is taken into account.
#[derive(Debug, PartialEq)]
pub enum Decoded<T = Report> {
    Answer(T),
    /// The body reports an error (`error` set, or a `code` outside 2xx), whatever the HTTP status.
    ApiError {
        code: Option<u16>,
        text: String,
    },
}

/// Decodes a body with no window known: the order of day and month in `AA/BB/YYYY` dates is the
/// one under which every row's date is valid (day first when both are). See [`decode_in`].
#[cfg(any(test, feature = "test-util"))]
pub fn decode(body: &[u8]) -> Result<Decoded, String> {
    decode_in(body, &Window::ANY)
}

/// Decodes a body answering a request over `window` (the dates asked for: the order of day and
/// month is the one that puts every row's date inside it); `Err` says in one line why it is not a
/// billing response. Rows are read straight from the bytes (labels borrowed where JSON needs no
/// unescaping) and folded into their series as they come, so a 60,000-row answer never exists as
/// a tree of JSON values.
pub fn decode_in(body: &[u8], window: &Window) -> Result<Decoded, String> {
    decode_with(body, Spec { window: *window, keep_rows: false }, Rows::finish)
}

/// A usable row whose date was read, kept whole for history rather than folded into its series;
/// the backfill places it by that date, and keeps it so in the state directory.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatedRow {
    pub operation: String,
    pub description: String,
    /// In the target's zone, read under the order of day and month the answer settled on.
    pub at: DateTime,
    pub value: f64,
}

/// Every usable row of an answer whose date could be read, in the answer's order (rows the live
/// decoder skips are skipped), and how many usable rows had no date that could be read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowsAnswer {
    pub rows: Vec<DatedRow>,
    pub undated: usize,
}

/// Decodes a body answering a request over `window` into its usable rows, dates read under the
/// order of day and month that the whole answer settles on; a row without one is only counted:
/// history cannot place it.
pub fn decode_rows(body: &[u8], window: &Window) -> Result<Decoded<RowsAnswer>, String> {
    decode_with(body, Spec { window: *window, keep_rows: true }, Rows::finish_rows)
}

/// The envelope, its errors and its `data`; `finish` turns the rows into the answer.
fn decode_with<'de, T: Default>(
    body: &'de [u8],
    spec: Spec,
    finish: impl FnOnce(Rows<'de>) -> T,
) -> Result<Decoded<T>, String> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    let envelope = EnvelopeSeed(spec)
        .deserialize(&mut reader)
        .and_then(|envelope| reader.end().map(|()| envelope));
    let envelope = envelope.map_err(|e| format!("not a billing response: {e}"))?;
    let code = envelope.code.as_ref().and_then(code_of);
    if let Some(refusal) =
        api_error(envelope.code.as_ref(), envelope.error.as_ref(), envelope.msg.as_ref())
    {
        return Ok(refusal);
    }
    match envelope.data {
        Data::Rows(rows)
            if rows.count > 0
                && rows.skipped[SkipReason::MalformedRow as usize] == rows.count as u64 =>
        {
            Err(format!("none of the {} rows of `data` is an object", rows.count))
        }
        Data::Rows(rows) => Ok(Decoded::Answer(finish(rows))),
        Data::Missing if code.is_some() => Ok(Decoded::Answer(T::default())),
        Data::Missing => Err("the object has neither `code` nor `data`".to_owned()),
        Data::Invalid(kind) => Err(format!("`data` is {kind}, expected an array of rows")),
    }
}

/// What a decode reads its rows against: the window asked for, and whether the rows are kept.
#[derive(Clone, Copy)]
struct Spec {
    window: Window,
    keep_rows: bool,
}

/// The top-level object. Later duplicates of a key win, as in most JSON readers.
struct Envelope<'de> {
    code: Option<Value>,
    error: Option<Value>,
    msg: Option<Value>,
    data: Data<'de>,
}

enum Data<'de> {
    Missing,
    Rows(Rows<'de>),
    Invalid(&'static str),
}

/// Rows folded per (operation, description): the gauge takes the row with the latest `date`
/// (response order breaks ties and stands in when dates do not parse); `max` is the highest value
/// of all the key's rows.
/// The map keeps the response's order, so the output is as stable as the answer without a sort.
/// Its keys come from the upstream; foldhash's per-process random seed is enough against crafted
/// collisions, at a fraction of SipHash's cost on 60,000 rows.
///
/// Which of day and month comes first in `AA/BB/YYYY` dates is known only once every row has been
/// seen (`order`, narrowed row by row). So from a key's first such date on, its latest row is
/// followed under each order the answer may settle on, and `finish` keeps the one it settled on.
struct Rows<'de> {
    count: usize,
    index: IndexMap<(Cow<'de, str>, Cow<'de, str>), Acc, foldhash::fast::RandomState>,
    skipped: [u64; SkipReason::ALL.len()],
    window: Window,
    order: DateOrder,
    /// Every usable row, for history (`decode_rows`); None for the live decoder.
    kept: Option<Vec<UnreadRow<'de>>>,
}

/// operation, description, value and date of a usable row, its date not yet read: the order of day
/// and month is known only at the end of the answer, when it becomes a [`DatedRow`] or is counted.
type UnreadRow<'de> = (Cow<'de, str>, Cow<'de, str>, f64, Option<Reading>);

struct Acc {
    max: f64,
    /// The latest row read day first, and under every order while `others` is `None`: until the
    /// key's first date whose reading depends on the order, every order agrees.
    latest: Latest,
    /// From that date on, the latest row read month first, and read under neither order (only the
    /// dates one order alone makes valid). Boxed: most answers never need it.
    others: Option<Box<[Latest; 2]>>,
}

#[derive(Clone, Copy)]
struct Latest {
    value: f64,
    date: Option<DateTime>,
}

impl Latest {
    fn fold(&mut self, value: f64, date: Option<DateTime>) {
        let older = matches!((date, self.date), (Some(new), Some(old)) if new < old);
        if !older {
            self.value = value;
            // An undated row takes over by response order, but the latest known date stays the
            // bar that older dated rows must pass.
            self.date = date.or(self.date);
        }
    }
}

impl Acc {
    fn new(value: f64, date: Option<Reading>) -> Acc {
        let mut acc = Acc { max: value, latest: Latest { value, date: None }, others: None };
        acc.add(value, date);
        acc
    }

    fn add(&mut self, value: f64, date: Option<Reading>) {
        self.max = self.max.max(value);
        match date {
            Some(reading @ Reading::Ambiguous { .. }) => {
                let latest = self.latest;
                let others = self.others.get_or_insert_with(|| Box::new([latest; 2]));
                self.latest.fold(value, reading.resolve(DateOrder::DAY_FIRST));
                others[0].fold(value, reading.resolve(DateOrder::MONTH_FIRST));
                others[1].fold(value, reading.resolve(DateOrder::NONE));
            }
            _ => {
                let date = date.and_then(|reading| reading.resolve(DateOrder::ANY));
                self.latest.fold(value, date);
                for latest in self.others.iter_mut().flat_map(|others| others.iter_mut()) {
                    latest.fold(value, date);
                }
            }
        }
    }

    /// The latest row under the order the answer settled on.
    fn latest(&self, order: Option<DayMonthOrder>) -> Latest {
        match (&self.others, order) {
            (Some(others), Some(DayMonthOrder::MonthFirst)) => others[0],
            (Some(others), None) => others[1],
            _ => self.latest,
        }
    }
}

impl<'de> Rows<'de> {
    fn new(spec: Spec) -> Rows<'de> {
        let kept = spec.keep_rows.then(Vec::new);
        Rows {
            count: 0,
            index: IndexMap::default(),
            skipped: [0; SkipReason::ALL.len()],
            window: spec.window,
            order: DateOrder::ANY,
            kept,
        }
    }

    fn add(&mut self, row: Row<'de>) {
        self.count += 1;
        let (key, items, date) = match row {
            Row::Malformed => return self.skipped[SkipReason::MalformedRow as usize] += 1,
            Row::Usage { operation, description, items, date } => {
                ((operation, description), items, date)
            }
        };
        let items = match items {
            Ok(items) => items,
            Err(reason) => return self.skipped[reason as usize] += 1,
        };
        // Only the rows that make a series settle the order: a skipped row's date is never read.
        if let Some(reading) = &date {
            self.order.narrow(reading, &self.window);
        }
        if let Some(kept) = &mut self.kept {
            kept.push((key.0.clone(), key.1.clone(), items, date));
        }
        match self.index.get_mut(&key) {
            None => {
                self.index.insert(key, Acc::new(items, date));
            }
            Some(acc) => acc.add(items, date),
        }
    }

    /// The kept rows, each date read under the order the answer settled on; the undated counted.
    fn finish_rows(self) -> RowsAnswer {
        let order = self.order;
        let mut answer = RowsAnswer::default();
        for (operation, description, value, date) in self.kept.unwrap_or_default() {
            match date.and_then(|reading| reading.resolve(order)) {
                Some(at) => answer.rows.push(DatedRow {
                    operation: operation.into_owned(),
                    description: description.into_owned(),
                    at,
                    value,
                }),
                None => answer.undated += 1,
            }
        }
        answer
    }

    fn finish(self) -> Report {
        let settled = self.order.order();
        // Owned in output order, so the labels lie in memory in the order the renderer reads them.
        let series = self
            .index
            .into_iter()
            .map(|((operation, description), acc)| {
                let latest = acc.latest(settled);
                Series {
                    operation: operation.into_owned(),
                    description: description.into_owned(),
                    latest: latest.value,
                    max: acc.max,
                    latest_at: latest.date,
                }
            })
            .collect();
        let skipped = SkipReason::ALL
            .into_iter()
            .map(|r| (r, self.skipped[r as usize]))
            .filter(|(_, n)| *n > 0)
            .collect();
        Report { rows: self.count, series, skipped }
    }
}

enum Row<'de> {
    Usage {
        operation: Cow<'de, str>,
        description: Cow<'de, str>,
        items: Result<f64, SkipReason>,
        date: Option<Reading>,
    },
    Malformed,
}

/// The keys this decoder cares about; the rest are skipped unread.
enum Key {
    Code,
    Error,
    Msg,
    Data,
    Operation,
    Description,
    Items,
    Date,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "code" => Key::Code,
                    "error" => Key::Error,
                    "msg" => Key::Msg,
                    "data" => Key::Data,
                    "operation" => Key::Operation,
                    "description" => Key::Description,
                    "items" => Key::Items,
                    "date" => Key::Date,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Reads an [`Envelope`] whose rows answer a request over the window.
struct EnvelopeSeed(Spec);

impl<'de> DeserializeSeed<'de> for EnvelopeSeed {
    type Value = Envelope<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Envelope<'de>, D::Error> {
        struct EnvelopeVisitor(Spec);
        impl<'de> Visitor<'de> for EnvelopeVisitor {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object with code, error, msg and data")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
                let mut envelope =
                    Envelope { code: None, error: None, msg: None, data: Data::Missing };
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Code => envelope.code = map.next_value::<Scalar>()?.0,
                        Key::Error => envelope.error = map.next_value::<Scalar>()?.0,
                        Key::Msg => envelope.msg = map.next_value::<Scalar>()?.0,
                        Key::Data => envelope.data = map.next_value_seed(DataSeed(self.0))?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(envelope)
            }
        }
        deserializer.deserialize_map(EnvelopeVisitor(self.0))
    }
}

/// Reads `data` into rows that answer a request over the window.
struct DataSeed(Spec);

impl<'de> DeserializeSeed<'de> for DataSeed {
    type Value = Data<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Data<'de>, D::Error> {
        struct DataVisitor(Spec);
        impl<'de> Visitor<'de> for DataVisitor {
            type Value = Data<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("rows")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data<'de>, A::Error> {
                let mut rows = Rows::new(self.0);
                while let Some(row) = seq.next_element::<Row<'de>>()? {
                    rows.add(row);
                }
                Ok(Data::Rows(rows))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Data<'de>, A::Error> {
                let mut rows = Rows::new(self.0);
                rows.add(row_from_map(map)?);
                Ok(Data::Rows(rows))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Data<'de>, E> {
                Ok(Data::Rows(Rows::new(self.0)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Data<'de>, E> {
                Ok(if text.trim().is_empty() {
                    Data::Rows(Rows::new(self.0))
                } else {
                    Data::Invalid("a string")
                })
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Data<'de>, E> {
                Ok(Data::Invalid("a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Data<'de>, E> {
                Ok(Data::Invalid("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Data<'de>, E> {
                Ok(Data::Invalid("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Data<'de>, E> {
                Ok(Data::Invalid("a number"))
            }
        }
        deserializer.deserialize_any(DataVisitor(self.0))
    }
}

fn row_from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Row<'de>, A::Error> {
    let (mut operation, mut description) = (Cow::Borrowed(""), Cow::Borrowed(""));
    let (mut items, mut date) = (Err(SkipReason::BlankItems), None);
    while let Some(key) = map.next_key::<Key>()? {
        match key {
            Key::Operation => operation = map.next_value::<Label<'de>>()?.0,
            Key::Description => description = map.next_value::<Label<'de>>()?.0,
            Key::Items => items = map.next_value::<Items>()?.0,
            Key::Date => date = Reading::of(&map.next_value::<Label<'de>>()?.0),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(Row::Usage { operation, description, items, date })
}

impl<'de> Deserialize<'de> for Row<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Row<'de>, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Row<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a row")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Row<'de>, A::Error> {
                row_from_map(map)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Row<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Row::Malformed)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Row<'de>, E> {
                Ok(Row::Malformed)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Row<'de>, E> {
                Ok(Row::Malformed)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Row<'de>, E> {
                Ok(Row::Malformed)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Row<'de>, E> {
                Ok(Row::Malformed)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Row<'de>, E> {
                Ok(Row::Malformed)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Row<'de>, E> {
                Ok(Row::Malformed)
            }
        }
        deserializer.deserialize_any(RowVisitor)
    }
}

/// A label value: strings as they are (borrowed when no unescaping was needed), numbers and
/// booleans spelled out, anything else empty.
struct Label<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Label<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Label<'de>, D::Error> {
        struct LabelVisitor;
        impl<'de> Visitor<'de> for LabelVisitor {
            type Value = Label<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a label value")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Label<'de>, E> {
                Ok(Label(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Label<'de>, E> {
                Ok(Label(Cow::Owned(text.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Label<'de>, E> {
                Ok(Label(Cow::Owned(value.to_string())))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Label<'de>, E> {
                Ok(Label(Cow::Owned(value.to_string())))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Label<'de>, E> {
                Ok(Label(Cow::Owned(value.to_string())))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Label<'de>, E> {
                Ok(Label(Cow::Owned(value.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Label<'de>, E> {
                Ok(Label(Cow::Borrowed("")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Label<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Label(Cow::Borrowed("")))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Label<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Label(Cow::Borrowed("")))
            }
        }
        deserializer.deserialize_any(LabelVisitor)
    }
}

/// `code`, `error`, `msg`: a string, number or boolean; arrays and objects are skipped unbuilt.
struct Scalar(Option<Value>);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::String(text.to_owned()))))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::Bool(value))))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::from(value))))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::from(value))))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::from(value))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// `items`: a finite count of zero or more, as a number or a (padded) string; blank or unusable
/// otherwise. A negative count is no usage, and a string with grouped thousands (`1.000`, `1,000`)
/// could be one or a thousand: either is skipped and counted, never served as a guess.
struct Items(Result<f64, SkipReason>);

/// `1.000`, `12,500`, `1.000.000`: digits grouped by threes, as Latin America writes thousands.
fn grouped_thousands(text: &str) -> bool {
    let mut groups = text.trim_start_matches('-').split(['.', ',']);
    let first = groups.next().unwrap_or_default();
    let rest: Vec<&str> = groups.collect();
    let digits = |g: &str| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit());
    !rest.is_empty()
        && digits(first)
        && first.len() <= 3
        && rest.iter().all(|g| g.len() == 3 && digits(g))
}

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Items, D::Error> {
        struct ItemsVisitor;
        fn finite(value: f64) -> Items {
            Items(if value.is_finite() && value >= 0.0 {
                Ok(value)
            } else {
                Err(SkipReason::InvalidItems)
            })
        }
        impl<'de> Visitor<'de> for ItemsVisitor {
            type Value = Items;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Items, E> {
                let text = text.trim();
                if text.is_empty() {
                    return Ok(Items(Err(SkipReason::BlankItems)));
                }
                if grouped_thousands(text) {
                    return Ok(Items(Err(SkipReason::InvalidItems)));
                }
                Ok(text.parse::<f64>().map_or(Items(Err(SkipReason::InvalidItems)), finite))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Items, E> {
                Ok(finite(value as f64))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Items, E> {
                Ok(finite(value as f64))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Items, E> {
                Ok(finite(value))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Items, E> {
                Ok(Items(Err(SkipReason::BlankItems)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Items, E> {
                Ok(Items(Err(SkipReason::InvalidItems)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Items(Err(SkipReason::InvalidItems)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Items, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Items(Err(SkipReason::InvalidItems)))
            }
        }
        deserializer.deserialize_any(ItemsVisitor)
    }
}

/// The error an envelope reports (`error` set, or a `code` outside 2xx), if any.
pub(super) fn api_error<T>(
    code: Option<&Value>,
    error: Option<&Value>,
    msg: Option<&Value>,
) -> Option<Decoded<T>> {
    let code = code.and_then(code_of);
    let error = error.and_then(text_of).filter(|e| !e.eq_ignore_ascii_case("null"));
    if error.is_none() && code.is_none_or(|c| (200..300).contains(&c)) {
        return None;
    }
    let msg = msg.and_then(text_of).unwrap_or_default();
    let text = [error.unwrap_or_default(), msg].join(" ").trim().to_owned();
    Some(Decoded::ApiError { code, text })
}

/// `code` as 200 or "200"; anything else is treated as absent.
fn code_of(value: &Value) -> Option<u16> {
    match value {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A non-empty trimmed string.
fn text_of(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(_) | Value::Bool(_) => value.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report of `body`, its series' dates left out (the values are what these tests check;
    /// `the_latest_rows_date_is_kept` checks the dates).
    fn report(body: &str) -> Report {
        match decode(body.as_bytes()) {
            Ok(Decoded::Answer(mut report)) => {
                report.series.iter_mut().for_each(|s| s.latest_at = None);
                report
            }
            other => panic!("expected a report from {body}, got {other:?}"),
        }
    }

    fn series(operation: &str, description: &str, latest: f64, max: f64) -> Series {
        Series {
            operation: operation.into(),
            description: description.into(),
            latest,
            max,
            latest_at: None,
        }
    }

    #[test]
    fn documented_example_decodes() {
        let r = report(
            r#"{"code": 200, "error": null, "msg": "Information found for the current month",
                "data": [{"operation": "ventas", "description": "Gamification", "items": "12", "date": "2026-11-02"}]}"#,
        );
        assert_eq!(r.series, vec![series("ventas", "Gamification", 12.0, 12.0)]);
        assert_eq!(r.rows, 1);
        assert!(r.skipped.is_empty());
    }

    #[test]
    fn code_may_be_a_string_and_error_may_be_null_text_or_empty() {
        for envelope in [
            r#""code": "200", "error": "null""#,
            r#""code": 200, "error": """#,
            r#""code": " 200 ""#,
        ] {
            let r = report(&format!(
                r#"{{{envelope}, "data": [{{"operation": "a", "description": "b", "items": 3}}]}}"#
            ));
            assert_eq!(r.series, vec![series("a", "b", 3.0, 3.0)], "{envelope}");
        }
    }

    #[test]
    fn data_may_be_one_object_or_null() {
        let one = report(
            r#"{"code": 200, "data": {"operation": "a", "description": "b", "items": " 7 "}}"#,
        );
        assert_eq!(one.series, vec![series("a", "b", 7.0, 7.0)]);
        assert_eq!(report(r#"{"code": 200, "error": null, "data": null}"#).series, vec![]);
        assert_eq!(report(r#"{"code": 200, "msg": "no data"}"#).series, vec![]);
    }

    #[test]
    fn the_latest_rows_date_is_kept() {
        let body = r#"{"code": 200, "data": [
            {"operation": "a", "description": "b", "items": "9", "date": "2026-11-03 10:00:00"},
            {"operation": "a", "description": "b", "items": "5", "date": "2026-11-01 10:00:00"},
            {"operation": "c", "description": "d", "items": "1"},
            {"operation": "e", "description": "f", "items": "2", "date": "11/10/2026"},
            {"operation": "e", "description": "f", "items": "3", "date": "2026-11-04"}]}"#;
        let Ok(Decoded::Answer(r)) =
            decode_in(body.as_bytes(), &Window::month_to_date(jiff::civil::date(2026, 11, 15)))
        else {
            panic!()
        };
        let dates: Vec<_> =
            r.series.iter().map(|s| (s.operation.as_str(), s.latest, s.latest_at)).collect();
        let at = |d, h| Some(jiff::civil::date(2026, 11, d).at(h, 0, 0, 0));
        // 11/10/2026 read month first within the window: November 10th, later than the 4th.
        assert_eq!(dates, [("a", 9.0, at(3, 10)), ("c", 1.0, None), ("e", 2.0, at(10, 0))]);
    }

    #[test]
    fn rows_for_history_keep_their_dates_and_only_the_undated_are_counted() {
        let body = r#"{"code": 200, "data": [
            {"operation": "a", "description": "b", "items": "9", "date": "11/10/2026"},
            {"operation": "a", "description": "b", "items": "4"},
            {"operation": "a", "description": "b", "items": ""},
            {"operation": "c", "description": "d", "items": "1", "date": "2026-11-04 08:00:00"},
            {"operation": "c", "description": "d", "items": "2", "date": "soon"}]}"#;
        let Ok(Decoded::Answer(answer)) =
            decode_rows(body.as_bytes(), &Window::month_to_date(jiff::civil::date(2026, 11, 15)))
        else {
            panic!()
        };
        let row = |operation: &str, description: &str, day, hour, value| DatedRow {
            operation: operation.into(),
            description: description.into(),
            at: jiff::civil::date(2026, 11, day).at(hour, 0, 0, 0),
            value,
        };
        // 11/10/2026 read month first within the window, as the live decoder reads it.
        assert_eq!(answer.rows, [row("a", "b", 10, 0, 9.0), row("c", "d", 4, 8, 1.0)]);
        assert_eq!(answer.undated, 2, "the blank row is skipped, not undated");
    }

    #[test]
    fn blank_and_invalid_items_are_skipped_and_counted_not_zeroed() {
        let r = report(
            r#"{"code": 200, "data": [
                {"operation": "a", "description": "b", "items": ""},
                {"operation": "a", "description": "c", "items": " "},
                {"operation": "a", "description": "d"},
                {"operation": "a", "description": "e", "items": "twelve"},
                {"operation": "a", "description": "f", "items": "1e999"},
                {"operation": "a", "description": "g", "items": true},
                "not a row",
                {"operation": "a", "description": "i", "items": "-1"},
                {"operation": "a", "description": "j", "items": -2},
                {"operation": "a", "description": "k", "items": "1.000"},
                {"operation": "a", "description": "l", "items": "12,500"},
                {"operation": "a", "description": "m", "items": "1.000.000"},
                {"operation": "a", "description": "n", "items": "1.25"},
                {"operation": "a", "description": "h", "items": "4.5"}]}"#,
        );
        assert_eq!(r.series, vec![series("a", "n", 1.25, 1.25), series("a", "h", 4.5, 4.5)]);
        assert_eq!(r.rows, 14);
        assert_eq!(
            r.skipped,
            vec![
                (SkipReason::BlankItems, 3),
                (SkipReason::InvalidItems, 8),
                (SkipReason::MalformedRow, 1)
            ]
        );
    }

    #[test]
    fn latest_date_wins_and_max_keeps_the_highest() {
        let r = report(
            r#"{"code": 200, "data": [
                {"operation": "a", "description": "b", "items": "9", "date": "2026-11-03 10:00:00"},
                {"operation": "a", "description": "b", "items": "20", "date": "2026-11-01 10:00:00"},
                {"operation": "a", "description": "b", "items": "5", "date": "2026-11-02 10:00:00"}]}"#,
        );
        assert_eq!(r.series, vec![series("a", "b", 9.0, 20.0)]);
    }

    #[test]
    fn an_undated_row_does_not_let_an_older_dated_row_win() {
        let r = report(
            r#"{"code": 200, "data": [
                {"operation": "a", "description": "b", "items": "9", "date": "2026-11-03"},
                {"operation": "a", "description": "b", "items": "4"},
                {"operation": "a", "description": "b", "items": "5", "date": "2026-11-01"}]}"#,
        );
        assert_eq!(r.series, vec![series("a", "b", 4.0, 9.0)]);
    }

    #[test]
    fn response_order_decides_when_dates_do_not_parse() {
        let r = report(
            r#"{"code": 200, "data": [
                {"operation": "a", "description": "b", "items": "9", "date": "yesterday"},
                {"operation": "a", "description": "b", "items": "4", "date": "today"}]}"#,
        );
        assert_eq!(r.series, vec![series("a", "b", 4.0, 9.0)]);
    }

    #[test]
    fn date_spellings_are_understood() {
        // Each spelling of Nov 3 against a row of Nov 2 that comes after it.
        for text in [
            "2026-11-03 10:00:00",
            "2026-11-03T10:00:00Z",
            "2026-11-03T10:00:00.5-05:00",
            "2026/11/03 10:00",
            " 2026-11-03 ",
            "20261103",
            "20261103100000",
            "03/11/2026 10:00:00",
            "03-11-2026",
            "03.11.2026 10:00",
            "2026-11",
            "11/2026",
        ] {
            let r = report(&format!(
                r#"{{"code": 200, "data": [
                    {{"operation": "a", "description": "b", "items": "9", "date": "{text}"}},
                    {{"operation": "a", "description": "b", "items": "4", "date": "2026-11-02 23:00:00"}}]}}"#
            ));
            assert_eq!(r.series, vec![series("a", "b", 9.0, 9.0)], "{text}");
        }
        for wrong in [
            "03/11/26 soon",
            "2026-13-03",
            "2026-02-30 10:00:00",
            "2026-11-03 24:00:00",
            "31/02/2026",
            "2026-11/03",
            "",
        ] {
            let r = report(&format!(
                r#"{{"code": 200, "data": [
                    {{"operation": "a", "description": "b", "items": "9", "date": "2026-11-02"}},
                    {{"operation": "a", "description": "b", "items": "4", "date": "{wrong}"}}]}}"#
            ));
            // Undated: it takes over by response order.
            assert_eq!(r.series, vec![series("a", "b", 4.0, 9.0)], "{wrong}");
        }
    }

    fn dated(dates: &[(&str, &str, &str)]) -> String {
        let rows: Vec<String> = dates
            .iter()
            .map(|(description, items, date)| {
                format!(r#"{{"operation": "a", "description": "{description}", "items": "{items}", "date": "{date}"}}"#)
            })
            .collect();
        format!(r#"{{"code": 200, "data": [{}]}}"#, rows.join(","))
    }

    /// As [`report`], for an answer to a request over `window`.
    fn report_in(body: &str, window: &Window) -> Report {
        match decode_in(body.as_bytes(), window) {
            Ok(Decoded::Answer(mut report)) => {
                report.series.iter_mut().for_each(|s| s.latest_at = None);
                report
            }
            other => panic!("expected a report from {body}, got {other:?}"),
        }
    }

    fn november() -> Window {
        Window::new(jiff::civil::date(2026, 11, 1), jiff::civil::date(2026, 11, 30))
    }

    #[test]
    fn day_first_dates_pick_the_latest_row_as_day_first() {
        // Read month first, 13/11 is no date and 05/11 is May 11, which would take over: 7, not 9.
        // The 13th, a date only day first, settles the order for the whole answer, "c" included.
        let body = dated(&[
            ("b", "9", "13/11/2026 08:00:00"),
            ("b", "7", "05/11/2026 08:00:00"),
            ("c", "1", "10/11/2026"),
            ("c", "2", "03/11/2026"),
            ("c", "3", "2026-11-04"),
        ]);
        // Month first, "c" would be Oct 11, Mar 11 and Nov 4: 3, not 1.
        let want = vec![series("a", "b", 9.0, 9.0), series("a", "c", 1.0, 3.0)];
        assert_eq!(report(&body).series, want);
        assert_eq!(report_in(&body, &november()).series, want);
        assert_eq!(
            report_in(&body, &Window::month_to_date(jiff::civil::date(2026, 11, 13))).series,
            want
        );
    }

    #[test]
    fn month_first_dates_pick_the_latest_row_as_month_first() {
        let body = dated(&[("b", "9", "11/13/2026"), ("b", "7", "11/05/2026")]);
        assert_eq!(report(&body).series, vec![series("a", "b", 9.0, 9.0)]);
        // Both readings valid (Nov 10 / Oct 11, Nov 3 / Mar 11): only the window tells them apart.
        let body =
            dated(&[("b", "9", "11/10/2026"), ("b", "7", "11/03/2026"), ("b", "3", "2026-11-04")]);
        assert_eq!(report_in(&body, &november()).series, vec![series("a", "b", 9.0, 9.0)]);
        // With no window both orders fit: day first, as Latin America writes dates.
        assert_eq!(report(&body).series, vec![series("a", "b", 3.0, 9.0)]);
    }

    #[test]
    fn with_no_order_fitting_every_row_only_unambiguous_dates_count() {
        // 11/14 is a date only month first, 13/11 only day first: 05/11 is read under neither, so
        // it is undated and takes over "b" by response order.
        let body = dated(&[
            ("b", "1", "11/14/2026"),
            ("b", "2", "13/11/2026"),
            ("b", "3", "05/11/2026"),
            ("c", "4", "11/14/2026"),
            ("c", "5", "13/11/2026"),
        ]);
        assert_eq!(
            report_in(&body, &november()).series,
            vec![series("a", "b", 3.0, 3.0), series("a", "c", 4.0, 5.0)]
        );
    }

    #[test]
    fn error_bodies_are_errors_even_with_code_200_or_http_200() {
        let quota =
            decode(br#"{"code": 403, "error": "FORBIDDEN", "msg": "TOKEN LIMIT EXCEEDED"}"#)
                .unwrap();
        assert_eq!(
            quota,
            Decoded::ApiError { code: Some(403), text: "FORBIDDEN TOKEN LIMIT EXCEEDED".into() }
        );
        let error_only =
            decode(br#"{"code": "200", "error": "SOMETHING", "msg": "went wrong"}"#).unwrap();
        assert_eq!(
            error_only,
            Decoded::ApiError { code: Some(200), text: "SOMETHING went wrong".into() }
        );
    }

    #[test]
    fn non_responses_are_decode_errors() {
        for body in
            ["", "{", "[]", "\"ok\"", "{}", r#"{"code": 200, "data": 5}"#, "<html>502</html>"]
        {
            assert!(decode(body.as_bytes()).is_err(), "{body:?} should not decode");
        }
        assert!(decode(b"\xff\xfe{}").is_err());
    }

    #[test]
    fn label_values_are_kept_as_sent() {
        let r = report(
            r#"{"code": 200, "data": [{"operation": "Ventas \"Norte\"\\\n ñ 😀", "description": 42, "items": 1}]}"#,
        );
        assert_eq!(r.series, vec![series("Ventas \"Norte\"\\\n ñ 😀", "42", 1.0, 1.0)]);
    }
}
