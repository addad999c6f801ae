//! Release gate: checks with thresholds over the figures in `metrics.json`.
//!
//! A check names a metric as `metrics.json` spells it, optional selectors, `min` and/or `max`, a
//! severity and what an indeterminate value means. A check whose selectors match several values
//! applies to each. An unknown metric or selector is an error, never a silent pass.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// The metrics a check may name, with the selectors each accepts.
pub const METRICS: &[(&str, &[&str])] = &[
    ("group_share", &["attribute", "population", "group"]),
    ("representation_ratio", &["attribute", "population", "group"]),
    ("js_distance", &["attribute", "population"]),
    ("kl_divergence", &["attribute", "population"]),
    ("total_variation", &["attribute", "population"]),
    ("normalized_entropy", &["attribute", "population"]),
    ("min_share", &["attribute", "population"]),
    ("disparate_impact", &["attribute", "population", "group"]),
    ("statistical_parity_difference", &["attribute", "population", "group"]),
    ("kappa", &["statistic"]),
    ("max_repeats", &[]),
    ("recorded_sample_failures", &[]),
    ("imbalance_factor", &[]),
    ("empty_clusters", &[]),
];

/// One `[[check]]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    pub metric: String,
    pub attribute: Option<String>,
    pub population: Option<String>,
    pub group: Option<String>,
    pub statistic: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(default = "default_severity")]
    pub severity: String,
    /// `fail` or `pass`; when absent an indeterminate value leaves the gate indeterminate.
    pub on_indeterminate: Option<String>,
    pub name: Option<String>,
}

fn default_severity() -> String {
    "error".into()
}

impl CheckSpec {
    /// Checks the metric, selectors, bounds and enumerations.
    pub fn validate(&self) -> Result<()> {
        let Some((_, selectors)) = METRICS.iter().find(|(m, _)| *m == self.metric) else {
            let names: Vec<&str> = METRICS.iter().map(|(m, _)| *m).collect();
            let hint = match crate::config::closest(&self.metric, names.iter().copied()) {
                Some(c) => format!("did you mean `{c}`? metrics: {}", names.join(", ")),
                None => format!("metrics: {}", names.join(", ")),
            };
            return Err(Error::input_hint(format!("unknown metric `{}`", self.metric), hint));
        };
        let given = [
            ("attribute", self.attribute.is_some()),
            ("population", self.population.is_some()),
            ("group", self.group.is_some()),
            ("statistic", self.statistic.is_some()),
        ];
        for (selector, present) in given {
            if present && !selectors.contains(&selector) {
                return Err(Error::input_hint(
                    format!("metric `{}` has no selector `{selector}`", self.metric),
                    format!("selectors of `{}`: {}", self.metric, if selectors.is_empty() { "none".into() } else { selectors.join(", ") }),
                ));
            }
        }
        if let Some(p) = &self.population {
            if !crate::metrics::representation::POPULATIONS.contains(&p.as_str()) {
                return Err(Error::input_hint(format!("unknown population `{p}`"), "use raw, curated or baseline"));
            }
        }
        if self.min.is_none() && self.max.is_none() {
            return Err(Error::input_hint(format!("check on `{}` has neither min nor max", self.metric), "set min, max or both"));
        }
        if self.severity != "error" && self.severity != "warning" {
            return Err(Error::input_hint(format!("unknown severity `{}`", self.severity), "use \"error\" or \"warning\""));
        }
        if let Some(v) = self.on_indeterminate.as_deref().filter(|v| *v != "fail" && *v != "pass") {
            return Err(Error::input_hint(format!("unknown on_indeterminate `{v}`"), "use \"fail\" or \"pass\""));
        }
        Ok(())
    }

    fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let mut parts = vec![self.metric.clone()];
        for (key, value) in [("attribute", &self.attribute), ("population", &self.population), ("group", &self.group), ("statistic", &self.statistic)] {
            if let Some(v) = value {
                parts.push(format!("{key}={v}"));
            }
        }
        let bounds = match (self.min, self.max) {
            (Some(a), Some(b)) => format!("in [{a}, {b}]"),
            (Some(a), None) => format!(">= {a}"),
            (None, Some(b)) => format!("<= {b}"),
            (None, None) => String::new(),
        };
        format!("{} {bounds}", parts.join(" "))
    }
}

/// The outcome of one check on one value.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub check: String,
    /// The selected item, e.g. `language=de`, when the check matched several.
    pub subject: String,
    pub severity: String,
    /// `pass`, `fail` or `indeterminate`.
    pub outcome: &'static str,
    /// The verdict after `on_indeterminate` and severity: `pass`, `fail`, `warning` or
    /// `indeterminate`.
    pub verdict: &'static str,
    pub value: Option<f64>,
    pub detail: String,
}

/// All checks with the overall verdict.
#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    /// `pass`, `fail` or `indeterminate`.
    pub verdict: &'static str,
    pub results: Vec<CheckResult>,
}

impl GateReport {
    pub fn failed(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|r| r.verdict == "fail")
    }
}

/// A measured value with its subject and whether it is indeterminate (and why).
struct Observation {
    subject: String,
    value: Option<f64>,
    indeterminate: Option<String>,
}

/// Evaluates `checks` against `metrics` (the content of `metrics.json`).
pub fn evaluate(checks: &[CheckSpec], metrics: &Value) -> Result<GateReport> {
    let mut results = Vec::new();
    for check in checks {
        check.validate()?;
        let observations = select(check, metrics)?;
        for obs in observations {
            let (outcome, detail) = match (obs.value, &obs.indeterminate) {
                (_, Some(reason)) => ("indeterminate", reason.clone()),
                (None, None) => ("indeterminate", "the value is undefined".to_string()),
                (Some(v), None) => {
                    let below = check.min.is_some_and(|m| v < m);
                    let above = check.max.is_some_and(|m| v > m);
                    // Counts print as integers, other measures with four decimals.
                    let formatted = if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.4}") };
                    if below {
                        ("fail", format!("{formatted} is under the minimum {}", check.min.unwrap()))
                    } else if above {
                        ("fail", format!("{formatted} is over the maximum {}", check.max.unwrap()))
                    } else {
                        ("pass", format!("{formatted} is within bounds"))
                    }
                }
            };
            let failing = match (outcome, check.on_indeterminate.as_deref()) {
                ("pass", _) | ("indeterminate", Some("pass")) => Some(false),
                ("fail", _) | ("indeterminate", Some("fail")) => Some(true),
                _ => None,
            };
            let verdict = match (failing, check.severity.as_str()) {
                (Some(false), _) => "pass",
                (None, _) => "indeterminate",
                (Some(true), "warning") => "warning",
                (Some(true), _) => "fail",
            };
            results.push(CheckResult {
                check: check.label(),
                subject: obs.subject,
                severity: check.severity.clone(),
                outcome,
                verdict,
                value: obs.value,
                detail,
            });
        }
    }
    // Only checks of severity "error" decide the gate; an indeterminate warning is shown, not counted.
    let verdict = if results.iter().any(|r| r.verdict == "fail") {
        "fail"
    } else if results.iter().any(|r| r.verdict == "indeterminate" && r.severity == "error") {
        "indeterminate"
    } else {
        "pass"
    };
    Ok(GateReport { verdict, results })
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s == "inf" => Some(f64::INFINITY),
        _ => None,
    }
}

fn select(check: &CheckSpec, metrics: &Value) -> Result<Vec<Observation>> {
    let unmatched = |what: &str| Error::input(format!("check `{}`: {what} matches nothing in metrics.json", check.label()));
    let mut out = Vec::new();
    match check.metric.as_str() {
        "group_share" | "representation_ratio" | "js_distance" | "kl_divergence" | "total_variation" | "normalized_entropy" | "min_share" => {
            let tables = metrics["representation"].as_array().cloned().unwrap_or_default();
            let populations: Vec<&str> = match &check.population {
                Some(p) => vec![p.as_str()],
                None => vec!["curated"],
            };
            let mut matched_attribute = false;
            for table in &tables {
                let attribute = table["attribute"].as_str().unwrap_or_default();
                if check.attribute.as_deref().is_some_and(|a| a != attribute) {
                    continue;
                }
                matched_attribute = true;
                for population in &populations {
                    if check.metric == "group_share" || check.metric == "representation_ratio" {
                        let field = if check.metric == "group_share" { "share" } else { "representation_ratio" };
                        let mut matched_group = false;
                        for row in table["groups"].as_array().into_iter().flatten() {
                            let group = row["group"].as_str().unwrap_or_default();
                            if check.group.as_deref().is_some_and(|g| g != group) {
                                continue;
                            }
                            matched_group = true;
                            let cell = &row[*population];
                            let indeterminate = (cell["status"] == "indeterminate").then(|| cell["reason"].as_str().unwrap_or("indeterminate").to_string());
                            out.push(Observation {
                                subject: format!("{attribute}={group} ({population})"),
                                value: number(&cell[field]),
                                indeterminate,
                            });
                        }
                        if !matched_group {
                            return Err(unmatched(&format!("group `{}`", check.group.as_deref().unwrap_or(""))));
                        }
                    } else {
                        out.push(Observation {
                            subject: format!("{attribute} ({population})"),
                            value: number(&table["summary"][*population][&check.metric]),
                            indeterminate: None,
                        });
                    }
                }
            }
            if !matched_attribute {
                let names: Vec<&str> = tables.iter().filter_map(|t| t["attribute"].as_str()).collect();
                let requested = check.attribute.as_deref().unwrap_or("");
                let hint = match crate::config::closest(requested, names.iter().copied()) {
                    Some(c) => format!("did you mean `{c}`? attributes: {}", names.join(", ")),
                    None => format!("attributes: {}", names.join(", ")),
                };
                return Err(unmatched(&format!("attribute `{requested}`")).with_hint(hint));
            }
        }
        "disparate_impact" | "statistical_parity_difference" => {
            let tables = metrics["outcome"].as_array().cloned().unwrap_or_default();
            if tables.is_empty() {
                return Err(unmatched("the outcome section (no dataset.outcome_column in the config)"));
            }
            let population = check.population.as_deref().unwrap_or("curated");
            let mut matched = false;
            for table in &tables {
                let attribute = table["attribute"].as_str().unwrap_or_default();
                if check.attribute.as_deref().is_some_and(|a| a != attribute) {
                    continue;
                }
                for row in table["groups"].as_array().into_iter().flatten() {
                    let group = row["group"].as_str().unwrap_or_default();
                    // The privileged group is the reference and has no ratio to judge.
                    if row["privileged"] == true || check.group.as_deref().is_some_and(|g| g != group) {
                        continue;
                    }
                    matched = true;
                    let cell = &row[population];
                    let indeterminate = (cell["status"] == "indeterminate").then(|| cell["reason"].as_str().unwrap_or("indeterminate").to_string());
                    out.push(Observation { subject: format!("{attribute}={group} ({population})"), value: number(&cell[&check.metric]), indeterminate });
                }
            }
            if !matched {
                return Err(unmatched("attribute or group"));
            }
        }
        "kappa" => {
            let agreement = &metrics["agreement"];
            if agreement.is_null() {
                return Err(unmatched("the agreement section (no [annotations] in the config)"));
            }
            let names: Vec<String> = match &check.statistic {
                Some(s) => vec![s.clone()],
                None => vec!["cohen".into(), "fleiss".into(), "krippendorff_nominal".into()],
            };
            for name in names {
                let stat = &agreement[&name];
                if stat.is_null() {
                    return Err(unmatched(&format!("statistic `{name}`")));
                }
                let indeterminate = (stat["status"] == "undefined").then(|| stat["reason"].as_str().unwrap_or("undefined").to_string());
                out.push(Observation { subject: name, value: number(&stat["value"]), indeterminate });
            }
        }
        "max_repeats" => out.push(Observation {
            subject: "curated stream".into(),
            value: number(&metrics["sampling"]["max_count"]),
            indeterminate: None,
        }),
        "recorded_sample_failures" => {
            let recorded = &metrics["sampling"]["recorded"];
            if recorded.is_null() {
                return Err(unmatched("a recorded sample (no sampling.recorded in the config)"));
            }
            out.push(Observation {
                subject: recorded["file"].as_str().unwrap_or("recorded sample").to_string(),
                value: recorded["failures"].as_array().map(|f| f.len() as f64),
                indeterminate: None,
            });
        }
        "imbalance_factor" => out.push(Observation {
            subject: "clusters".into(),
            value: number(&metrics["clustering"]["imbalance_factor"]),
            indeterminate: None,
        }),
        "empty_clusters" => out.push(Observation {
            subject: "clusters".into(),
            value: metrics["clustering"]["empty_clusters"].as_array().map(|a| a.len() as f64),
            indeterminate: None,
        }),
        other => return Err(Error::internal(format!("metric `{other}` is listed but not selected"))),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str) -> CheckSpec {
        toml::from_str(toml_text).unwrap()
    }

    fn metrics() -> Value {
        serde_json::json!({
            "representation": [{
                "attribute": "language",
                "groups": [
                    {"group": "de", "raw": {"share": 0.5, "representation_ratio": 1.0, "status": "ok"},
                     "curated": {"share": 0.4, "representation_ratio": 0.8, "status": "ok"}},
                    {"group": "nl", "raw": {"share": 0.005, "representation_ratio": 0.01, "status": "indeterminate", "reason": "count 2 is under the minimum cell count 20"},
                     "curated": {"share": 0.6, "representation_ratio": 1.2, "status": "ok"}}
                ],
                "summary": {"curated": {"js_distance": 0.1}, "raw": {"js_distance": 0.2}}
            }],
            "agreement": {"fleiss": {"value": 0.43, "status": "ok"}, "cohen": {"value": null, "status": "undefined", "reason": "all ratings alike"}},
            "sampling": {"max_count": 3}
        })
    }

    #[test]
    fn gate_passes_and_fails_by_bound() {
        let checks = vec![check("metric = \"js_distance\"\nattribute = \"language\"\nmax = 0.15")];
        assert_eq!(evaluate(&checks, &metrics()).unwrap().verdict, "pass");
        let checks = vec![check("metric = \"max_repeats\"\nmax = 2")];
        let report = evaluate(&checks, &metrics()).unwrap();
        assert_eq!(report.verdict, "fail");
        assert_eq!(report.results[0].value, Some(3.0));
    }

    #[test]
    fn gate_matches_every_group() {
        let checks = vec![check("metric = \"group_share\"\nattribute = \"language\"\npopulation = \"raw\"\nmin = 0.1")];
        let report = evaluate(&checks, &metrics()).unwrap();
        assert_eq!(report.results.len(), 2);
        assert_eq!(report.results[1].outcome, "indeterminate");
        assert_eq!(report.verdict, "indeterminate");
    }

    #[test]
    fn gate_warning_does_not_fail() {
        let checks = vec![check("metric = \"kappa\"\nstatistic = \"fleiss\"\nmin = 0.8\nseverity = \"warning\"")];
        let report = evaluate(&checks, &metrics()).unwrap();
        assert_eq!(report.results[0].verdict, "warning");
        assert_eq!(report.verdict, "pass");
    }

    #[test]
    fn gate_indeterminate_warning_does_not_decide() {
        let checks = vec![check("metric = \"group_share\"\nattribute = \"language\"\npopulation = \"raw\"\nmin = 0.1\nseverity = \"warning\"")];
        let report = evaluate(&checks, &metrics()).unwrap();
        assert_eq!(report.results[1].verdict, "indeterminate");
        assert_eq!(report.verdict, "pass");
    }

    #[test]
    fn gate_undefined_kappa_is_indeterminate() {
        let checks = vec![check("metric = \"kappa\"\nstatistic = \"cohen\"\nmin = 0.8\non_indeterminate = \"pass\"")];
        let report = evaluate(&checks, &metrics()).unwrap();
        assert_eq!(report.results[0].outcome, "indeterminate");
        assert_eq!(report.verdict, "pass");
    }

    #[test]
    fn gate_rejects_unknown_metric_and_selector() {
        let error = check("metric = \"js_distanse\"\nmax = 1").validate().unwrap_err().to_string();
        assert!(error.contains("did you mean `js_distance`"), "{error}");
        let error = check("metric = \"max_repeats\"\ngroup = \"de\"\nmax = 1").validate().unwrap_err().to_string();
        assert!(error.contains("no selector `group`"), "{error}");
        let error = evaluate(&[check("metric = \"js_distance\"\nattribute = \"colour\"\nmax = 1")], &metrics()).unwrap_err().to_string();
        assert!(error.contains("attribute `colour`"), "{error}");
    }
}
