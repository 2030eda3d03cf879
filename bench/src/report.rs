use crate::load::Stats;

pub struct Row {
    pub backend: String,
    pub scenario: String,
    pub stats: Option<Stats>,
    /// A figure that is not a load result (a limit, a ratio, memory, start-up time).
    pub value: Option<String>,
}

impl Row {
    pub fn load(backend: &str, scenario: impl Into<String>, stats: Stats) -> Self {
        Self {
            backend: backend.into(),
            scenario: scenario.into(),
            stats: Some(stats),
            value: None,
        }
    }

    pub fn value(backend: &str, scenario: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            backend: backend.into(),
            scenario: scenario.into(),
            stats: None,
            value: Some(value.into()),
        }
    }
}

pub fn print(rows: &[Row], notes: &[String]) {
    println!();
    println!(
        "| backend | scenario | req/s | p50 ms | p99 ms | max ms | ok | 503 | errors | figure |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for r in rows {
        match &r.stats {
            Some(s) => println!(
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |",
                r.backend,
                r.scenario,
                s.rps(),
                s.p50_ms(),
                s.p99_ms(),
                s.max_ms(),
                s.ok,
                s.shed,
                s.errors,
                r.value.clone().unwrap_or_default()
            ),
            None => println!(
                "| {} | {} | | | | | | | | {} |",
                r.backend,
                r.scenario,
                r.value.clone().unwrap_or_default()
            ),
        }
    }
    for n in notes {
        println!("\nnote: {n}");
    }
}
