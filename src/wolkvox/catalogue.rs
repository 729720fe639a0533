//! The 27 billing APIs (`billing.php?api=…`), all with the same request and response shape, and
//! the metric family each one becomes. Values are gauges: month-to-date figures that fall back at
//! the start of a month, never `_total` counters. Units are what Wolkvox bills in; where its
//! documentation names no unit, the metric ends in `_usage` and its HELP text says so. Each API
//! also says which of its values a price applies to by default ([`Charge`]).

use std::fmt;

/// One billing API and its metric family (`{metric}` and `{metric}_max`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Api {
    /// The `api=` value.
    pub name: &'static str,
    pub metric: &'static str,
    /// What the value counts: the start of the HELP text.
    pub counts: &'static str,
    /// Which value is billed unless a price says otherwise.
    pub charge: Charge,
}

/// Which usage of a month a price is charged on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Charge {
    /// The month's highest value (`_max`): licenses and connectors, which Wolkvox reports as the
    /// number active on the query date, so a license active on any day of the month is billed
    /// even when the latest row shows fewer.
    Peak,
    /// The latest row: metered APIs (minutes, calls, characters, uses), whose rows count the
    /// month's consumption up to the query date, so the latest is the month so far.
    Latest,
}

impl Charge {
    pub const ALL: [Charge; 2] = [Charge::Peak, Charge::Latest];

    pub fn as_str(self) -> &'static str {
        match self {
            Charge::Peak => "peak",
            Charge::Latest => "latest",
        }
    }

    /// `peak` or `latest`, as the config file writes it.
    pub fn parse(text: &str) -> Option<Charge> {
        Charge::ALL.into_iter().find(|charge| charge.as_str() == text.trim())
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

const fn api(
    name: &'static str,
    metric: &'static str,
    counts: &'static str,
    charge: Charge,
) -> Api {
    Api { name, metric, counts, charge }
}

use Charge::{Latest, Peak};

/// In the order of Wolkvox's documentation. Licenses and connectors are charged on the month's
/// peak, metered consumption on its latest row (see [`Charge`]).
pub static APIS: [Api; 27] = [
    api("agent_script", "wolkvox_agent_script_licenses", "Agent Script licenses", Peak),
    api("intelligent_dial", "wolkvox_intelligent_dial_licenses", "Smart-dialing licenses", Peak),
    api("gamification", "wolkvox_gamification_licenses", "Active gamification licenses", Peak),
    api(
        "ivr_minutes",
        "wolkvox_ivr_minutes",
        "IVR minutes (minutes, the unit Wolkvox bills in)",
        Latest,
    ),
    api(
        "rec_minutes",
        "wolkvox_rec_minutes",
        "IVR recording minutes (minutes, the unit Wolkvox bills in)",
        Latest,
    ),
    api("amazon_s3", "wolkvox_amazon_s3_licenses", "Licenses with Amazon S3 storage", Peak),
    api("rsync", "wolkvox_rsync_licenses", "Licenses with external (rsync) storage", Peak),
    api("rsync_s3_mp3", "wolkvox_rsync_s3_mp3_audios", "Audios copied to S3", Latest),
    api(
        "rec_screen",
        "wolkvox_rec_screen_usage",
        "Screen-recording time (in the API's own unit, which Wolkvox does not document)",
        Latest,
    ),
    api("interactions", "wolkvox_interactions", "Omnichannel interactions", Latest),
    api(
        "rec_screen_on_demand",
        "wolkvox_rec_screen_on_demand_usage",
        "On-demand screen recording (in the API's own unit, which Wolkvox does not document)",
        Latest,
    ),
    api(
        "speech_analytics",
        "wolkvox_speech_analytics_usage",
        "Speech-analytics time (in the API's own unit, which Wolkvox does not document)",
        Latest,
    ),
    api("wp_connectors", "wolkvox_wp_connectors", "WhatsApp Mobile connectors", Peak),
    api("sentiment_analysis", "wolkvox_sentiment_analyses", "Sentiment analyses", Latest),
    api("chat_licenses", "wolkvox_chat_licenses", "Chat licenses", Peak),
    api("interaction_licenses", "wolkvox_interaction_licenses", "Interaction licenses", Peak),
    api("video_call", "wolkvox_video_call_licenses", "Video-call licenses", Peak),
    api("pbx_licenses", "wolkvox_pbx_licenses", "PBX licenses", Peak),
    api("ivr_calls", "wolkvox_ivr_calls", "IVR calls", Latest),
    api("asr_calls", "wolkvox_asr_playbacks", "ASR (speech recognition) playbacks", Latest),
    api("vision", "wolkvox_vision_uses", "Uses of the Vision component", Latest),
    api("tts_chars", "wolkvox_tts_characters", "Text-to-speech characters", Latest),
    api(
        "wp_connectors_official",
        "wolkvox_wp_connectors_official",
        "Official WhatsApp Business connectors",
        Peak,
    ),
    api(
        "contact_center_licenses",
        "wolkvox_contact_center_licenses",
        "Contact-center licenses",
        Peak,
    ),
    api("amd_ai", "wolkvox_amd_ai_detections", "AI answering-machine detections", Latest),
    api(
        "stereo_rec",
        "wolkvox_stereo_rec_minutes",
        "Stereo-recording minutes (minutes, the unit Wolkvox bills in)",
        Latest,
    ),
    api(
        "nlp_ai",
        "wolkvox_nlp_ai_usage",
        "NLP consumption (in the API's own unit, which Wolkvox does not document)",
        Latest,
    ),
];

/// `information.php?api=token_info`: not billing, but polled on a token's lane like the billing
/// APIs when asked for, so that it gets the same schedule and health metrics (`api="token_info"`).
pub static TOKEN_INFO: Api =
    api("token_info", "", "The token's calls as Wolkvox counts them", Latest);

pub fn gamification() -> &'static Api {
    &APIS[2]
}

/// A name that is not one of the billing APIs; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown API {name:?}; the billing APIs are: {}", names())]
pub struct UnknownApi {
    pub name: String,
}

/// The API called `name` (surrounding whitespace ignored).
pub fn find(name: &str) -> Result<&'static Api, UnknownApi> {
    let name = name.trim();
    APIS.iter().find(|api| api.name == name).ok_or_else(|| UnknownApi { name: name.to_owned() })
}

/// Every `api=` value, comma-separated, for error messages and `--help`.
pub fn names() -> String {
    APIS.iter().map(|api| api.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn gamification_keeps_its_metric() {
        assert_eq!(gamification().name, "gamification");
        assert_eq!(gamification().metric, "wolkvox_gamification_licenses");
    }

    #[test]
    fn names_and_metrics_are_unique_and_follow_the_conventions() {
        let names: HashSet<_> = APIS.iter().map(|api| api.name).collect();
        let metrics: HashSet<_> = APIS.iter().map(|api| api.metric).collect();
        assert_eq!((names.len(), metrics.len()), (27, 27));
        for api in &APIS {
            assert!(
                api.metric.starts_with("wolkvox_") && !api.metric.ends_with("_total"),
                "{}",
                api.metric
            );
            assert!(
                api.metric
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                api.metric
            );
            // The `_max` family of one API must not be the plain family of another.
            assert!(!metrics.contains(format!("{}_max", api.metric).as_str()));
            assert!(!api.counts.is_empty());
        }
    }

    #[test]
    fn licenses_are_charged_on_the_peak_and_metered_apis_on_the_latest_row() {
        for api in &APIS {
            let license = api.metric.ends_with("_licenses") || api.metric.contains("_connectors");
            assert_eq!(api.charge == Charge::Peak, license, "{}", api.name);
        }
        assert_eq!(Charge::parse(" peak "), Some(Charge::Peak));
        assert_eq!(Charge::parse("latest"), Some(Charge::Latest));
        assert_eq!(Charge::parse("max"), None);
    }

    #[test]
    fn unknown_names_are_refused_with_the_list() {
        assert_eq!(find(" chat_licenses ").unwrap().metric, "wolkvox_chat_licenses");
        let error = find("chat").unwrap_err().to_string();
        assert!(
            error.contains("unknown API \"chat\"")
                && error.contains("agent_script, intelligent_dial, gamification"),
            "{error}"
        );
    }
}
